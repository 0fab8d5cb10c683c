//! Stage 9, record: no answer without its record (GDPR Art. 30). Every
//! processing is appended to the ledger before it is answered, refusals
//! included; when the ledger cannot be written, nothing is returned.
use std::collections::BTreeSet;

use chrono::{DateTime, Utc};

use super::comply::Disclosed;
use super::merge::Merged;
use super::query::EnrichQuery;
use super::{Enricher, unavailable};
use crate::compliance::retention;
use crate::error::Error;
use crate::ledger::{LedgerOutcome, Record, Refusal};
use crate::model::{BasisEvidence, LawfulBasis, LawfulGround, Outcome, Purpose};

/// The claim a record is made under: the accepted ground, or, for a
/// refusal, what the caller claimed.
struct Under<'a> {
    purpose_id: &'a str,
    /// The declared purpose, whose retention applies.
    purpose: Option<&'a Purpose>,
    basis: Option<LawfulBasis>,
    evidence: &'a BasisEvidence,
}

impl<'a> Under<'a> {
    fn ground(ground: &'a LawfulGround) -> Self {
        Self {
            purpose_id: &ground.purpose.id,
            purpose: Some(&ground.purpose),
            basis: Some(ground.basis),
            evidence: &ground.evidence,
        }
    }
}

fn record_of(
    query: &EnrichQuery,
    under: Under<'_>,
    subject: &str,
    outcome: LedgerOutcome,
    now: DateTime<Utc>,
) -> Record {
    let evidence = |r: &Option<String>| r.clone().unwrap_or_default();
    Record {
        id: new_id(),
        at_ms: now.timestamp_millis(),
        caller: query.caller.clone(),
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
        retain_until_ms: retention::retain_until(now, under.purpose).timestamp_millis(),
        redacted: false,
    }
}

/// A processing id: 128 random bits, hex.
fn new_id() -> String {
    hex::encode(rand::random::<[u8; 16]>())
}

impl Enricher {
    async fn append(&self, record: Record) -> Result<String, Error> {
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
            purpose: self.purposes.get(claim.purpose.trim()).map(|p| &**p),
            basis: claim.basis,
            evidence: &claim.evidence,
        };
        let now = self.clock.utc();
        let record = record_of(query, under, &subject, LedgerOutcome::Refused(refusal), now);
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
        let record = record_of(query, under, subject, LedgerOutcome::Suppressed, now);
        self.append(record).await
    }

    /// Records a processing: the sources asked, the fields returned and
    /// whether anyone was found. Returns its id.
    pub(super) async fn record(
        &self,
        query: &EnrichQuery,
        disclosed: &Disclosed,
        merged: &Merged,
        subject: &str,
        now: DateTime<Utc>,
    ) -> Result<String, Error> {
        let outcome = if merged.profiles.is_empty() {
            LedgerOutcome::NotFound
        } else {
            LedgerOutcome::Enriched
        };
        let under = Under::ground(&disclosed.compliance.ground);
        let mut record = record_of(query, under, subject, outcome, now);
        let asked: BTreeSet<&str> = merged
            .outcomes
            .iter()
            .filter(|o| !matches!(o.outcome, Outcome::Skipped(_)))
            .map(|o| o.source_id.as_str())
            .collect();
        record.sources = asked.into_iter().map(str::to_owned).collect();
        record.field_categories = disclosed.returned_fields();
        self.append(record).await
    }
}
