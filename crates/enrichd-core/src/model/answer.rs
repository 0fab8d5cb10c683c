//! The domain answer of one enrichment, before it becomes a proto message.
use std::time::Duration;

use chrono::{DateTime, Utc};

use super::finding::{Breach, Confidence, Profile, Provenance, Sourced};
use super::outcome::SourceOutcome;
use super::purpose::LawfulGround;
use super::score::{Footprint, Interest, Risk};
use super::verification::Verification;
use crate::identity::Identifier;

/// How the caller allows the cache to be used.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum CacheMode {
    #[default]
    Use,
    Refresh,
    CacheOnly,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CachePolicy {
    pub mode: CacheMode,
    pub max_age: Option<Duration>,
}

/// GDPR Art. 14 information duty of one answer (decided by
/// `compliance::notice`).
#[derive(Debug, Clone, PartialEq)]
pub struct NoticeDuty {
    pub required: bool,
    /// Art. 14 (data obtained elsewhere) rather than Art. 13 applies.
    pub data_not_from_subject: bool,
    pub data_categories: Vec<String>,
    pub sources: Vec<String>,
    pub notify_by: Option<DateTime<Utc>>,
    pub exemption: Option<String>,
}

/// Why something was left out of an answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SuppressionReason {
    /// The person erased their data or objected.
    DataSubjectRequest,
    /// GDPR Art. 9 special-category data.
    SpecialCategory,
    /// The purpose may not return it.
    Purpose,
    /// The caller's field mask left it out.
    FieldMask,
}

/// One thing left out of an answer, and why, in words.
#[derive(Debug, Clone, PartialEq)]
pub struct Suppression {
    /// "identifier", "interests", or a response field.
    pub target: String,
    pub reason: SuppressionReason,
    pub detail: String,
}

/// The compliance block of one answer, as `compliance` decided it.
#[derive(Debug, Clone, PartialEq)]
pub struct Compliance {
    pub ground: LawfulGround,
    pub notice: NoticeDuty,
    /// Where the data came from (GDPR Art. 14(2)(f) wording).
    pub source_of_data: &'static str,
    pub special_categories_suppressed: u32,
    /// The person is on the suppression list for this purpose.
    pub identifier_suppressed: bool,
    /// Everything left out, with its reason.
    pub suppressions: Vec<Suppression>,
    /// The response fields left out (by purpose or field mask).
    pub fields_withheld: Vec<String>,
    /// Profiles found but left out because the purpose does not return
    /// them (fraud prevention): found, not absent.
    pub profiles_withheld: u32,
    pub retain_until: DateTime<Utc>,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct CacheInfo {
    pub policy: CacheMode,
    pub sources_from_cache: u32,
    pub sources_fetched: u32,
    pub oldest_entry_age: Option<Duration>,
}

/// Whether an empty answer means "nobody found": the sources asked that
/// answered (found or not found) against those that could not (errors,
/// timeouts, rate limits, open breakers, cache-only misses). Sources left
/// out by the catalog or the purpose are not counted.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Coverage {
    pub answered: u32,
    pub unanswered: u32,
    pub skipped: u32,
    /// Enough sources answered for "not found" to be a finding
    /// (`sources.min_coverage`).
    pub sufficient: bool,
}

/// What the answer as a whole says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Completeness {
    Found,
    /// Enough sources answered, and none found the person.
    NotFound,
    /// Nothing found, but too few sources answered to say nobody is there.
    Incomplete,
}

pub fn completeness(found: bool, coverage: &Coverage) -> Completeness {
    match (found, coverage.sufficient) {
        (true, _) => Completeness::Found,
        (false, true) => Completeness::NotFound,
        (false, false) => Completeness::Incomplete,
    }
}

/// One answer. Fields the purpose or the field mask leave out are `None`
/// or empty; a suppressed person's answer holds the compliance block alone.
#[derive(Debug, Clone)]
pub struct Enrichment {
    pub request_id: String,
    pub processing_id: String,
    pub identifier: Option<Identifier>,
    pub verification: Option<Verification>,
    /// Best match first.
    pub profiles: Vec<Profile>,
    /// Found only through a guessed username, with nothing tying them to
    /// the person: where they are, apart from the profiles.
    pub possible_matches: Vec<Profile>,
    pub attributes: Vec<Attribute>,
    pub sources: Vec<SourceOutcome>,
    pub interests: Vec<Interest>,
    pub footprint: Option<Footprint>,
    pub risk: Option<Risk>,
    /// Breaches the address appears in (sensitive ones suppressed).
    pub breaches: Vec<Breach>,
    /// What the phone network says of the number.
    pub phone_line: Option<PhoneLine>,
    /// A mailbox check of the address by an email verifier.
    pub mailbox: Option<Mailbox>,
    /// Messaging platforms asked about the identifier, present or not.
    pub messaging_apps: Vec<MessagingApp>,
    pub compliance: Compliance,
    pub cache: CacheInfo,
    pub coverage: Coverage,
    pub generated_at: DateTime<Utc>,
}

impl Enrichment {
    pub fn completeness(&self) -> Completeness {
        completeness(!self.profiles.is_empty(), &self.coverage)
    }

    /// How closely the answer is tied to the identifier: its best profile's match.
    pub fn confidence(&self) -> Option<Confidence> {
        self.profiles.iter().map(Profile::confidence).max()
    }
}

/// What the phone network says of a number (sources with role
/// `phone_line`), each value with where it came from.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PhoneLine {
    pub carrier: Option<Sourced>,
    /// As the source names it ("mobile", "landline", "nonFixedVoip").
    pub line_type: Option<Sourced>,
    /// The name registered for the number (CNAM), where the source has one.
    pub caller_name: Option<Sourced>,
    /// When the number's SIM last changed (a carrier's SIM-swap answer).
    pub last_sim_swap: Option<Sourced>,
    /// "true" when the SIM changed within `sim_swap_period`, "false" when not.
    pub sim_swapped_in_period: Option<Sourced>,
    /// The period the carrier was asked about (ISO 8601, "PT24H").
    pub sim_swap_period: Option<Sourced>,
    /// "true" when the carrier says calls are unconditionally forwarded.
    pub call_forwarding: Option<Sourced>,
}

impl PhoneLine {
    /// The SIM changed recently: within the period the carrier was asked
    /// about, or on a date less than `days` ago.
    pub fn sim_swapped_within(&self, days: i64, now: chrono::DateTime<chrono::Utc>) -> bool {
        let said = |s: &Option<Sourced>| {
            s.as_ref()
                .is_some_and(|v| v.value.as_text().eq_ignore_ascii_case("true"))
        };
        said(&self.sim_swapped_in_period)
            || self.last_sim_swap.as_ref().is_some_and(|s| match &s.value {
                crate::model::Value::Time(t) => (now - *t).num_days() < days,
                _ => false,
            })
    }

    /// Calls to the number are forwarded elsewhere, the carrier says.
    pub fn forwarded(&self) -> bool {
        self.call_forwarding
            .as_ref()
            .is_some_and(|v| v.value.as_text().eq_ignore_ascii_case("true"))
    }

    /// A VoIP number (fixed or not), by the source's line type.
    pub fn is_voip(&self) -> bool {
        self.line_type
            .as_ref()
            .is_some_and(|t| t.value.as_text().to_ascii_lowercase().contains("voip"))
    }
}

/// A mailbox check by an email verifier (sources with role `mailbox`).
#[derive(Debug, Clone, PartialEq)]
pub struct Mailbox {
    /// deliverable, undeliverable, risky or unknown (lowercased as given).
    pub status: Sourced,
    /// The verifier's own score, as it gives it.
    pub score: Option<Sourced>,
}

impl Mailbox {
    pub fn undeliverable(&self) -> bool {
        self.status.value.as_text() == "undeliverable"
    }
}

/// Whether the identifier has an account on a messaging platform (sources
/// tagged `messaging`).
#[derive(Debug, Clone, PartialEq)]
pub struct MessagingApp {
    pub platform: String,
    pub source_id: String,
    pub present: bool,
    /// The account's page, when present and the source gives one.
    pub url: Option<String>,
    /// When the source answered.
    pub checked_at: DateTime<Utc>,
    pub confidence: Confidence,
}

/// A merged attribute: every distinct value, most supported first.
#[derive(Debug, Clone, PartialEq)]
pub struct Attribute {
    pub name: &'static str,
    pub values: Vec<AttributeValue>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct AttributeValue {
    pub value: String,
    pub provenance: Vec<Provenance>,
}

/// The earliest evidence that an identifier existed, and where it is from.
#[derive(Debug, Clone, PartialEq)]
pub struct FirstSeen {
    pub at: chrono::DateTime<chrono::Utc>,
    /// "account" (a profile's creation date) or "breach" (a breach date).
    pub kind: &'static str,
    pub provenance: super::Provenance,
}

/// A breach date ("2019-05-14", or a timestamp) as a time; none before
/// [`is_online_era`].
pub fn breach_time(date: &str) -> Option<chrono::DateTime<chrono::Utc>> {
    let date = date.trim();
    chrono::DateTime::parse_from_rfc3339(date)
        .map(|t| t.with_timezone(&chrono::Utc))
        .ok()
        .or_else(|| {
            chrono::NaiveDate::parse_from_str(date.get(..10)?, "%Y-%m-%d")
                .ok()?
                .and_hms_opt(0, 0, 0)
                .map(|t| t.and_utc())
        })
        .filter(|t| is_online_era(*t))
}

/// Whether `t` could date an account or a breach: from 1990 on, before the
/// web and any source's site. APIs write 0 (1970-01-01) or 0001-01-01 for
/// "unknown"; read as dates they would make an identity decades old, which
/// lowers its risk.
pub fn is_online_era(t: chrono::DateTime<chrono::Utc>) -> bool {
    // 1990-01-01T00:00:00Z
    t.timestamp() >= 631_152_000
}

/// The earliest of the profiles' creation dates (those at least `floor`
/// confident: a guess nothing ties to the person is not evidence) and the
/// breach dates.
pub fn first_seen<'a>(
    profiles: impl IntoIterator<Item = &'a super::Profile>,
    breaches: &[super::Breach],
    floor: super::Confidence,
) -> Option<FirstSeen> {
    let accounts = profiles
        .into_iter()
        .filter(|p| p.confidence() >= floor || !p.corroborated_by.is_empty())
        .filter_map(|p| match p.fields.get(&super::Field::CreatedAt) {
            Some(super::Sourced {
                value: super::Value::Time(t),
                provenance,
            }) => Some(FirstSeen {
                at: *t,
                kind: "account",
                provenance: provenance.clone(),
            }),
            _ => None,
        });
    let breached = breaches.iter().filter_map(|b| {
        Some(FirstSeen {
            at: breach_time(b.date.as_deref()?)?,
            kind: "breach",
            provenance: b.provenance.clone(),
        })
    });
    accounts.chain(breached).min_by_key(|f| f.at)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_breach_dated_unknown_is_no_date() {
        assert_eq!(
            breach_time("2019-05-14").map(|t| t.to_rfc3339()).as_deref(),
            Some("2019-05-14T00:00:00+00:00")
        );
        for unknown in ["0001-01-01", "1970-01-01T00:00:00Z", "someday"] {
            assert_eq!(breach_time(unknown), None, "{unknown}");
        }
    }
}
