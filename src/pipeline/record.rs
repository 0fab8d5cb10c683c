//! Stage 9, record: no answer without its record (GDPR Art. 30). Every
//! processing is appended to the ledger before it is answered, refusals
//! included; when the ledger cannot be written, nothing is returned.
use chrono::{DateTime, Utc};

use super::comply::Disclosed;
use super::merge::Merged;
use super::query::EnrichQuery;
use super::{Enricher, unavailable};
use crate::auth::Caller;
use crate::compliance::retention;
use crate::error::Error;
use crate::ledger::{LedgerError, LedgerOutcome, Record, Refusal};
use crate::model::{BasisEvidence, LawfulBasis, LawfulGround, Outcome};
use crate::model::{Completeness, completeness};

/// The claim a record is made under: the accepted ground, or, for a
/// refusal, what the caller claimed.
pub(crate) struct Under<'a> {
    pub purpose_id: &'a str,
    pub basis: Option<LawfulBasis>,
    pub evidence: &'a BasisEvidence,
    /// How long the record is kept.
    pub keep: std::time::Duration,
}

impl<'a> Under<'a> {
    fn ground(ground: &'a LawfulGround) -> Self {
        Self {
            purpose_id: &ground.purpose.id,
            basis: Some(ground.basis),
            evidence: &ground.evidence,
            keep: ground.purpose.retention,
        }
    }
}

/// The one way a ledger record is made.
pub(crate) fn record_of(
    caller: &Caller,
    under: Under<'_>,
    subject: &str,
    outcome: LedgerOutcome,
    now: DateTime<Utc>,
) -> Record {
    let evidence = |r: &Option<String>| r.clone().unwrap_or_default();
    Record {
        id: new_id(now),
        at_ms: now.timestamp_millis(),
        caller: caller.name.clone(),
        caller_id: caller.id.clone(),
        on_behalf_of: caller.on_behalf_of.clone().unwrap_or_default(),
        purpose: under.purpose_id.to_owned(),
        lawful_basis: under
            .basis
            .map(LawfulBasis::as_str)
            .unwrap_or_default()
            .to_owned(),
        consent_ref: evidence(&under.evidence.consent_ref),
        lia_ref: evidence(&under.evidence.legitimate_interest_assessment_ref),
        contract_ref: evidence(&under.evidence.contract_ref),
        subject: subject.to_owned(),
        sources: Vec::new(),
        field_categories: Vec::new(),
        outcome,
        retain_until_ms: retention::keep_until(now, under.keep).timestamp_millis(),
        redacted: false,
        reference: String::new(),
        detail: String::new(),
    }
}

/// A processing id: a UUIDv7 (RFC 9562) as 32 hex digits: the time of the
/// processing in milliseconds, then 74 random bits. Ids in time order keep
/// the ledger's primary-key inserts at the end of its index (one page a
/// commit group, not one random page a record); the time they carry is the
/// answer's own `generatedAt`. The random bits come from the thread's
/// generator (rand's `ThreadRng`, a CSPRNG the OS seeds), not from a
/// system call per id.
pub(crate) fn new_id(now: DateTime<Utc>) -> String {
    let ms = u64::try_from(now.timestamp_millis()).unwrap_or_default();
    uuid::Builder::from_unix_timestamp_millis(ms, &rand::random::<[u8; 10]>())
        .into_uuid()
        .simple()
        .to_string()
}

impl Enricher {
    pub(crate) async fn append(&self, record: Record) -> Result<String, Error> {
        let id = record.id.clone();
        self.ledger.record(record).await.map_err(unavailable)?;
        Ok(id)
    }

    /// Records a refused request (the identifier's hash only if it parses).
    pub(super) async fn record_refusal(
        &self,
        query: &EnrichQuery,
        refusal: Refusal,
    ) -> Result<(), Error> {
        let subject = self
            .subject(&query.identifier, query.default_region)
            .map(|s| s.hash)
            .unwrap_or_default();
        let claim = &query.claim;
        let under = Under {
            purpose_id: &claim.purpose,
            basis: claim.basis,
            evidence: &claim.evidence,
            keep: self
                .purposes
                .get(claim.purpose.trim())
                .map_or(retention::REFUSAL_RETENTION, |p| p.retention),
        };
        let now = self.clock.utc();
        let outcome = LedgerOutcome::Refused(refusal);
        let record = record_of(&query.caller, under, &subject, outcome, now);
        self.append(record).await.map(drop)
    }

    /// Records that a suppressed person was asked about. Returns its id.
    pub(super) async fn record_suppressed(
        &self,
        query: &EnrichQuery,
        ground: &LawfulGround,
        subject: &str,
        now: DateTime<Utc>,
    ) -> Result<String, Error> {
        let under = Under::ground(ground);
        let record = record_of(
            &query.caller,
            under,
            subject,
            LedgerOutcome::Suppressed,
            now,
        );
        self.append(record).await
    }

    /// Records a processing: the sources asked, the fields returned and
    /// whether anyone was found. Returns its id, or `None` when the person
    /// was suppressed (by any process) before it could be recorded.
    pub(super) async fn record(
        &self,
        query: &EnrichQuery,
        disclosed: &Disclosed,
        merged: &Merged,
        subject: &str,
        now: DateTime<Utc>,
    ) -> Result<Option<String>, Error> {
        let outcome = match completeness(merged.found, &merged.coverage) {
            Completeness::Found => LedgerOutcome::Enriched,
            Completeness::NotFound => LedgerOutcome::NotFound,
            Completeness::Incomplete => LedgerOutcome::Incomplete,
        };
        let under = Under::ground(&disclosed.compliance.ground);
        let mut record = record_of(&query.caller, under, subject, outcome, now);
        let asked = super::sorted_unique(
            merged
                .outcomes
                .iter()
                .filter(|o| !matches!(o.outcome, Outcome::Skipped(_)))
                .map(|o| o.source_id.as_str()),
        );
        record.sources = asked.into_iter().map(str::to_owned).collect();
        record.field_categories = disclosed.returned_fields();
        let id = record.id.clone();
        match self.ledger.record(record).await {
            Ok(()) => Ok(Some(id)),
            Err(LedgerError::SuppressedMeanwhile) => Ok(None),
            Err(e) => Err(unavailable(e)),
        }
    }
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;

    #[test]
    fn processing_ids_are_32_hex_digits_in_time_order_and_unique() {
        let at = |ms| Utc.timestamp_millis_opt(ms).single().expect("a time");
        let earlier = new_id(at(1_764_000_000_000));
        let later = new_id(at(1_764_000_000_001));
        assert_eq!(earlier.len(), 32);
        assert!(earlier.bytes().all(|b| b.is_ascii_hexdigit()));
        assert!(earlier < later, "{earlier} sorts before {later}");
        // The same millisecond: still two ids.
        assert_ne!(new_id(at(1_764_000_000_000)), earlier);
        // The time is the id's first 48 bits.
        assert_eq!(&earlier[..12], &format!("{:012x}", 1_764_000_000_000_u64));
    }
}
