//! Feedback on findings, where the answer is used: a caller that received
//! an answer says one of its findings is someone else's (`WRONG_PERSON`),
//! not there at all (`NOT_THERE`) or right (`CORRECT`). A refuted finding is
//! held out of that person's profiles from then on, in every process (the
//! ledger keeps it and processes follow it as they follow the suppression
//! list); every verdict counts toward its source's precision, and a source
//! whose precision falls under the floor is demoted ([`standing`]). The
//! canary ([`canary`]) asks username sources for names nobody holds.
pub mod canary;
pub mod standing;

use std::num::NonZeroU32;
use std::time::Duration;

use governor::{DefaultKeyedRateLimiter, Quota};
use tracing::{info, warn};

pub use standing::{Standing, View};

use crate::auth::{Caller, Scope};
use crate::compliance::retention;
use crate::error::{Error, FieldViolation, PreconditionViolation};
use crate::ledger::{FeedbackRow, FindingKind, LedgerOutcome};
use crate::model::{BasisEvidence, LawfulBasis};
use crate::pipeline::{Enricher, Under, new_id, record_of, unavailable};

/// The longest note a piece of feedback keeps, in characters.
pub const NOTE_MAX_CHARS: usize = 1_000;
/// The longest URL, attribute value or id a piece of feedback names.
const FIELD_MAX_CHARS: usize = 2_048;

/// `[feedback]` settings.
#[derive(Debug, Clone, PartialEq, serde::Serialize, eserde::Deserialize)]
pub struct FeedbackConfig {
    /// A source whose share of confirmed findings (over `window`) falls
    /// under this is demoted: its findings count only when corroborated.
    #[serde(default = "floor")]
    pub precision_floor: f64,
    /// Feedback on a source within `window` before its precision can
    /// demote it.
    #[serde(default = "min_feedback")]
    pub min_feedback: u64,
    /// The sliding window precision is counted over.
    #[serde(default = "window", with = "humantime_serde")]
    pub window: Duration,
    /// How often each process reads every source's precision again (its
    /// own feedback is counted at once).
    #[serde(default = "refresh", with = "humantime_serde")]
    pub refresh_every: Duration,
    /// Feedback one caller may give per minute.
    #[serde(default = "per_minute")]
    pub per_key_per_minute: u32,
    #[serde(default)]
    pub canary: canary::CanaryConfig,
}

fn floor() -> f64 {
    0.5
}
fn min_feedback() -> u64 {
    10
}
fn window() -> Duration {
    Duration::from_secs(30 * 24 * 3600)
}
fn refresh() -> Duration {
    Duration::from_secs(30)
}
fn per_minute() -> u32 {
    60
}

impl Default for FeedbackConfig {
    fn default() -> Self {
        Self {
            precision_floor: floor(),
            min_feedback: min_feedback(),
            window: window(),
            refresh_every: refresh(),
            per_key_per_minute: per_minute(),
            canary: canary::CanaryConfig::default(),
        }
    }
}

impl FeedbackConfig {
    /// What is wrong with these settings, by key.
    pub fn problems(&self) -> Vec<String> {
        let mut problems = Vec::new();
        if !(0.0..=1.0).contains(&self.precision_floor) {
            problems.push(format!(
                "feedback.precision_floor: {} is not a share between 0 and 1",
                self.precision_floor
            ));
        }
        if self.per_key_per_minute == 0 {
            problems.push("feedback.per_key_per_minute: must be at least 1".to_owned());
        }
        if self.refresh_every.is_zero() {
            problems.push("feedback.refresh_every: must be longer than 0 s".to_owned());
        }
        if self.canary.enabled && self.canary.every < Duration::from_secs(60) {
            problems.push("feedback.canary.every: must be at least 1 minute".to_owned());
        }
        problems
    }
}

/// The verdict on a finding.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    WrongPerson,
    NotThere,
    Correct,
}

impl Verdict {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::WrongPerson => crate::ledger::WRONG_PERSON,
            Self::NotThere => crate::ledger::NOT_THERE,
            Self::Correct => crate::ledger::CORRECT,
        }
    }
}

/// The finding feedback is on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Finding {
    Profile {
        source_id: String,
        url: String,
    },
    Attribute {
        source_id: String,
        name: String,
        value: String,
    },
}

impl Finding {
    fn source_id(&self) -> &str {
        match self {
            Self::Profile { source_id, .. } | Self::Attribute { source_id, .. } => source_id,
        }
    }

    /// The field that names its source, for errors.
    fn source_field(&self) -> &'static str {
        match self {
            Self::Profile { .. } => "profile.source_id",
            Self::Attribute { .. } => "attribute.source_id",
        }
    }

    fn stored(&self) -> (FindingKind, String) {
        match self {
            Self::Profile { url, .. } => (FindingKind::Profile, url.clone()),
            Self::Attribute { name, value, .. } => {
                (FindingKind::Attribute, format!("{name}={value}"))
            }
        }
    }
}

/// One piece of feedback, checked for shape.
#[derive(Debug, Clone)]
pub struct FeedbackQuery {
    pub processing_id: String,
    pub finding: Finding,
    pub verdict: Verdict,
    pub note: String,
}

impl FeedbackQuery {
    /// Every problem of its shape at once, by field.
    pub fn check(&self) -> Result<(), Error> {
        let mut bad = Vec::new();
        let mut field = |name: &str, value: &str, max: usize| {
            if value.trim().is_empty() {
                bad.push(FieldViolation::new(name, "is required"));
            } else if value.chars().count() > max {
                bad.push(FieldViolation::new(
                    name,
                    format!("is longer than {max} characters"),
                ));
            }
        };
        field("processing_id", &self.processing_id, 64);
        match &self.finding {
            Finding::Profile { source_id, url } => {
                field("profile.source_id", source_id, 128);
                field("profile.url", url, FIELD_MAX_CHARS);
            }
            Finding::Attribute {
                source_id,
                name,
                value,
            } => {
                field("attribute.source_id", source_id, 128);
                field("attribute.value", value, FIELD_MAX_CHARS);
                if crate::pipeline::attribute_field(name).is_none() {
                    bad.push(FieldViolation::new(
                        "attribute.name",
                        format!(
                            "{name:?} is not an attribute (name, username, location, avatar_url, \
                             profile_url)"
                        ),
                    ));
                }
            }
        }
        if !self
            .processing_id
            .trim()
            .bytes()
            .all(|b| b.is_ascii_hexdigit())
        {
            bad.push(FieldViolation::new(
                "processing_id",
                "is not an answer's id (the `processingId` of an Enrich answer: hex digits)",
            ));
        }
        if self.note.chars().count() > NOTE_MAX_CHARS {
            bad.push(FieldViolation::new(
                "note",
                format!("is longer than {NOTE_MAX_CHARS} characters"),
            ));
        }
        if bad.is_empty() {
            Ok(())
        } else {
            Err(Error::InvalidArgument(bad))
        }
    }
}

/// What feedback did.
#[derive(Debug, Clone)]
pub struct Given {
    pub id: String,
    /// The finding is held out of the person's profiles now.
    pub held_out: bool,
    pub standing: View,
    /// The source's known accounts are being asked again.
    pub check_scheduled: bool,
}

/// Per-caller bounds on feedback, and the known-account checks scheduled.
pub(crate) struct Bounds {
    per_caller: DefaultKeyedRateLimiter<String>,
    /// Sources whose known-account check ran within the hour.
    checked: moka::sync::Cache<String, ()>,
}

impl Bounds {
    pub(crate) fn new(config: &FeedbackConfig) -> Self {
        let per_minute = NonZeroU32::new(config.per_key_per_minute).unwrap_or(NonZeroU32::MIN);
        Self {
            per_caller: governor::RateLimiter::keyed(Quota::per_minute(per_minute)),
            checked: moka::sync::Cache::builder()
                .max_capacity(10_000)
                .time_to_live(Duration::from_secs(3600))
                .build(),
        }
    }

    fn admit(&self, caller: &Caller) -> Result<(), Error> {
        let key = if caller.id.is_empty() {
            format!("name:{}", caller.name)
        } else {
            caller.id.clone()
        };
        self.per_caller.check_key(&key).map_err(|not_until| {
            use governor::clock::{Clock, DefaultClock};
            Error::Exhausted {
                why: "this caller gave more feedback than feedback.per_key_per_minute allows; \
                      retry after the delay in RetryInfo"
                    .to_owned(),
                retry_after: not_until.wait_time_from(DefaultClock::default().now()),
            }
        })
    }
}

/// Whether `caller` is the one the record's answer went to.
fn received(caller: &Caller, record: &crate::ledger::Record) -> bool {
    if caller.id.is_empty() {
        record.caller_id.is_empty() && record.caller == caller.name
    } else {
        record.caller_id == caller.id
    }
}

impl Enricher {
    /// Feedback on one finding of an answer (see the module).
    pub async fn feedback(&self, caller: &Caller, query: FeedbackQuery) -> Result<Given, Error> {
        query.check()?;
        self.feedback_bounds().admit(caller)?;
        let record = self
            .ledger()
            .record_by_id(query.processing_id.trim())
            .await
            .map_err(unavailable)?
            .ok_or_else(|| {
                Error::NotFound(
                    "processing_id: no answer has this id (it is the `processingId` of an \
                     Enrich answer, and records past their retention are gone)"
                        .to_owned(),
                )
            })?;
        let precondition = |description: &str| {
            Error::Precondition(PreconditionViolation {
                kind: "ANSWER",
                subject: "processing_id".to_owned(),
                description: description.to_owned(),
            })
        };
        // First: an erased person's records keep no caller to check against.
        if record.redacted {
            return Err(precondition(
                "the person that answer was about was erased; nothing of them is kept to correct",
            ));
        }
        if !received(caller, &record) && !caller.allows(Scope::FeedbackAny) {
            return Err(Error::PermissionDenied(
                "processing_id: that answer went to another caller; feedback on it needs the \
                 key that received it, or the feedback_any scope"
                    .to_owned(),
            ));
        }
        if record.outcome != LedgerOutcome::Enriched {
            return Err(precondition(&format!(
                "that processing found nothing to give feedback on (its outcome: {})",
                record.outcome
            )));
        }
        let source_id = query.finding.source_id().trim().to_owned();
        if !record.sources.contains(&source_id) {
            return Err(Error::InvalidArgument(vec![FieldViolation::new(
                query.finding.source_field(),
                format!("{source_id:?} was not asked for that answer"),
            )]));
        }
        let now = self.clock().utc();
        let (kind, finding) = query.finding.stored();
        let row = FeedbackRow {
            id: new_id(now),
            at_ms: now.timestamp_millis(),
            subject: record.subject.clone(),
            processing_id: record.id.clone(),
            source_id: source_id.clone(),
            kind,
            finding: finding.trim().to_owned(),
            verdict: query.verdict.as_str().to_owned(),
            caller: caller.name.clone(),
            caller_id: caller.id.clone(),
            note: query.note.trim().to_owned(),
        };
        let changed = self
            .ledger()
            .give_feedback(&row)
            .await
            .map_err(unavailable)?;
        if changed {
            self.forget_answers_of(&record.subject);
        }
        self.record_feedback(caller, &record, &row).await?;
        let demotions = self.standing().refresh(self.ledger(), now).await;
        if demotions {
            self.forget_all_answers();
        }
        let check_scheduled = query.verdict == Verdict::NotThere && self.schedule_check(&source_id);
        info!(
            source = %source_id,
            verdict = query.verdict.as_str(),
            kind = kind.as_str(),
            subject = record.subject.get(..12).unwrap_or_default(),
            "feedback given"
        );
        Ok(Given {
            id: row.id,
            held_out: query.verdict != Verdict::Correct,
            standing: self.standing().of(&source_id),
            check_scheduled,
        })
    }

    /// The feedback's own record: under the answer's purpose and basis,
    /// kept as long as that purpose keeps its records.
    async fn record_feedback(
        &self,
        caller: &Caller,
        answered: &crate::ledger::Record,
        row: &FeedbackRow,
    ) -> Result<(), Error> {
        let basis = LawfulBasis::ALL
            .into_iter()
            .find(|b| b.as_str() == answered.lawful_basis);
        let keep = self
            .purposes()
            .get(&answered.purpose)
            .map_or(retention::REQUEST_RETENTION, |p| p.retention);
        let under = Under {
            purpose_id: &answered.purpose,
            basis,
            evidence: &BasisEvidence::default(),
            keep,
        };
        let mut record = record_of(
            caller,
            under,
            &answered.subject,
            LedgerOutcome::Feedback,
            self.clock().utc(),
        );
        record.sources = vec![row.source_id.clone()];
        record.reference = answered.id.clone();
        record.detail = format!(
            "{} on a {} of {}",
            row.verdict,
            row.kind.as_str(),
            row.source_id
        );
        self.append(record).await.map(drop)
    }

    /// Asks the source's known accounts again (at most once an hour per
    /// source), its result in the log. Whether one was scheduled.
    fn schedule_check(&self, source_id: &str) -> bool {
        let Some(source) = self.catalog().get(source_id) else {
            return false;
        };
        if source.known_present.is_empty() && source.known_absent.is_empty() {
            return false;
        }
        let bounds = self.feedback_bounds();
        if bounds.checked.contains_key(source_id) {
            return false;
        }
        bounds.checked.insert(source_id.to_owned(), ());
        let (catalog, http, id) = (
            self.engine().catalog().clone(),
            self.http_config().clone(),
            source_id.to_owned(),
        );
        tokio::spawn(async move {
            match crate::engine::live::check(&catalog, &http, Some(&id)).await {
                Ok(checks) => {
                    let checks: Vec<_> = checks.into_iter().filter(|c| c.source == id).collect();
                    let broken = checks.iter().filter(|c| !c.holds()).count();
                    if broken > 0 {
                        warn!(source = %id, broken, asked = checks.len(),
                            "known-account check after NOT_THERE feedback: the detection no longer tells accounts apart");
                    } else {
                        info!(source = %id, asked = checks.len(),
                            "known-account check after NOT_THERE feedback: the detection holds");
                    }
                }
                Err(e) => warn!(source = %id, error = %e, "known-account check could not run"),
            }
        });
        true
    }
}
