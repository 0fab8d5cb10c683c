//! Stage 8, comply: what this answer may disclose, and the compliance block
//! that goes with it. Fields the purpose or the field mask withhold are
//! dropped, special-category interests are suppressed (Art. 9), and the
//! notice duty is decided (Art. 14), all by `compliance`.

use chrono::{DateTime, TimeZone, Utc};

use super::merge::{self, Merged};
use super::policy::Permitted;
use super::query::EnrichQuery;
use super::score::Scores;
use super::{Enricher, unavailable};
use crate::compliance::{notice, retention, special};
use crate::error::Error;
use crate::model::{
    Attribute, Breach, Compliance, Footprint, Interest, Mailbox, MessagingApp, PhoneLine, Profile,
    ResponseField, Risk, Verification,
};

/// What the answer may carry.
pub(super) struct Disclosed {
    pub verification: Option<Verification>,
    pub profiles: Vec<Profile>,
    pub possible_matches: Vec<Profile>,
    pub attributes: Vec<Attribute>,
    pub interests: Vec<Interest>,
    pub footprint: Option<Footprint>,
    pub risk: Option<Risk>,
    pub breaches: Vec<Breach>,
    pub phone_line: Option<PhoneLine>,
    pub mailbox: Option<Mailbox>,
    pub messaging_apps: Vec<MessagingApp>,
    pub compliance: Compliance,
}

impl Disclosed {
    /// The response fields that carry something (the ledger's field categories).
    pub fn returned_fields(&self) -> Vec<String> {
        [
            ("verification", self.verification.is_some()),
            ("profiles", !self.profiles.is_empty()),
            ("attributes", !self.attributes.is_empty()),
            ("interests", !self.interests.is_empty()),
            ("footprint", self.footprint.is_some()),
            ("risk", self.risk.is_some()),
            ("breaches", !self.breaches.is_empty()),
            ("phone_line", self.phone_line.is_some()),
            ("messaging_apps", !self.messaging_apps.is_empty()),
        ]
        .iter()
        .filter(|(_, present)| *present)
        .map(|(f, _)| f.to_string())
        .collect()
    }
}

impl Enricher {
    pub(super) async fn comply(
        &self,
        permitted: Permitted,
        merged: &mut Merged,
        scores: Scores,
        subject: &str,
        query: &EnrichQuery,
        now: DateTime<Utc>,
    ) -> Result<Disclosed, Error> {
        let Permitted { ground, fields } = permitted;
        let (interests, special_left_out) = special::suppress(scores.interests);
        let notice = self.notice(merged, subject, query, now).await?;
        let mut suppressions: Vec<_> = special::explanation(special_left_out).into_iter().collect();
        let sensitive_breaches = merged.roles.sensitive_breaches_withheld;
        suppressions.extend(special::breaches_explanation(sensitive_breaches));
        if fields.needs_sources() {
            suppressions.extend(self.art9_sites_not_asked.clone());
        }
        suppressions.extend(fields.withheld.iter().cloned());
        let wants = |f: ResponseField| fields.wants(f);
        // What the answer carries is moved out of the merge, never copied
        // (the merge keeps what the record needs: outcomes, coverage, found).
        let attributes = if wants(ResponseField::Attributes) {
            merge::attributes(&merged.profiles)
        } else {
            Vec::new()
        };
        let profiles_withheld = if wants(ResponseField::Profiles) {
            0
        } else {
            u32::try_from(merged.profiles.len()).unwrap_or(u32::MAX)
        };
        let roles = &mut merged.roles;
        Ok(Disclosed {
            verification: merged
                .verification
                .take()
                .filter(|_| wants(ResponseField::Verification)),
            profiles: take(wants(ResponseField::Profiles), &mut merged.profiles),
            possible_matches: take(wants(ResponseField::Profiles), &mut merged.possible_matches),
            attributes,
            interests: if wants(ResponseField::Interests) {
                interests
            } else {
                Vec::new()
            },
            footprint: wants(ResponseField::Footprint).then_some(scores.footprint),
            risk: scores.risk,
            breaches: take(wants(ResponseField::Breaches), &mut roles.breaches),
            phone_line: roles
                .phone_line
                .take()
                .filter(|_| wants(ResponseField::PhoneLine))
                .map(|line| *line),
            mailbox: roles
                .mailbox
                .take()
                .filter(|_| wants(ResponseField::Verification))
                .map(|mailbox| *mailbox),
            messaging_apps: take(
                wants(ResponseField::MessagingApps),
                &mut merged.messaging_apps,
            ),
            compliance: Compliance {
                retain_until: retention::retain_until(now, Some(&ground.purpose)),
                ground,
                notice,
                source_of_data: notice::SOURCE_OF_DATA,
                special_categories_suppressed: special_left_out + sensitive_breaches,
                identifier_suppressed: false,
                suppressions,
                fields_withheld: fields.withheld_fields(),
                profiles_withheld,
            },
        })
    }

    /// The Art. 14 duty: the sources that yielded personal data, their data
    /// categories, and the deadline, counted from the person's first
    /// processing (asked of the ledger only when there is something to notify).
    async fn notice(
        &self,
        merged: &Merged,
        subject: &str,
        query: &EnrichQuery,
        now: DateTime<Utc>,
    ) -> Result<crate::model::NoticeDuty, Error> {
        let found = super::sorted_unique(
            merged
                .profiles
                .iter()
                .map(|p| &*p.source_id)
                .chain(merged.roles.sources.iter().map(String::as_str)),
        );
        let catalog = self.catalog();
        let categories = super::sorted_unique(
            found
                .iter()
                .filter_map(|id| catalog.get(id))
                .flat_map(|s| s.data_categories.iter().map(String::as_str)),
        );
        let first = if found.is_empty() {
            None
        } else {
            self.ledger
                .first_enriched_ms(subject)
                .await
                .map_err(unavailable)?
        };
        let first = first.map_or(now, |ms| time_of(ms, now));
        Ok(notice::duty(
            notice::deadline(first, query.first_contact_at),
            found.iter().map(|s| (*s).to_owned()).collect(),
            categories.into_iter().map(str::to_owned).collect(),
        ))
    }
}

/// The items, moved out, if the answer may carry them; else none.
fn take<T>(wanted: bool, items: &mut Vec<T>) -> Vec<T> {
    if wanted {
        std::mem::take(items)
    } else {
        Vec::new()
    }
}

/// A ledger time back as a date (`fallback` if out of range).
fn time_of(ms: i64, fallback: DateTime<Utc>) -> DateTime<Utc> {
    Utc.timestamp_millis_opt(ms).single().unwrap_or(fallback)
}
