//! Data-subject requests: access (GDPR Art. 15), erasure (Art. 17) and
//! objection to direct marketing (Art. 21(3)). What each request suppresses
//! and discloses is decided in `compliance`; this module carries it out on
//! every tier the pipeline writes (the cache, the ledger, the suppression
//! list).
use std::sync::Arc;

use tracing::info;

use crate::auth::Caller;
use crate::cache::Entry;
use crate::compliance::suppression::{self, EraseKind};
use crate::compliance::{profiling, retention};
use crate::error::Error;
use crate::identity::Region;
use crate::ledger::{LedgerOutcome, ProcessingKind, REQUEST_PURPOSE, Record, SuppressionRow};
use crate::model::{BasisEvidence, LawfulBasis};
use crate::pipeline::{Enricher, RawIdentifier, Under, record_of, unavailable};

mod paging;
pub use paging::{DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE, PAGE_BYTES, Page, PageToken};
use paging::{ROWS_AT_A_TIME, record_bytes, row_bytes};

/// What `Erase` did.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Erased {
    pub cache_entries_removed: u32,
    pub ledger_records_redacted: u32,
    pub batch_rows_erased: u32,
    /// The redaction was still running when the erasure answered (it goes
    /// on; `ledger_records_redacted` counts what was done by then).
    pub redaction_pending: bool,
    /// The purposes now suppressed (empty: all of them).
    pub suppressed_purposes: Vec<String>,
    /// A short keyed-hash prefix naming the person in logs and tickets.
    pub tombstone: String,
}

/// What `Access` found.
#[derive(Debug, Clone, Default)]
pub struct AccessReport {
    pub cached: Vec<Arc<Entry>>,
    /// One page of the person's records, oldest first.
    pub records: Vec<Record>,
    /// Where the next page starts; `None` on the last.
    pub next_page: Option<PageToken>,
    /// The records of all the pages together.
    pub records_total: u64,
    /// The person's erasures and objections.
    pub suppressions: Vec<SuppressionRow>,
    /// The logic of the scores, in words.
    pub logic: Vec<String>,
    pub summary: Summary,
    /// Batch-job rows that hold the person: job, row, input, purpose.
    pub batch_rows: Vec<crate::ledger::HeldRow>,
    /// Feedback given on the person's findings, oldest first.
    pub feedback: Vec<crate::ledger::FeedbackRow>,
    /// What a mail exchanger said of the address, as this process keeps it.
    pub smtp: Option<crate::model::SmtpCheck>,
}

/// Art. 15(1)(a)-(d), (g): drawn from the person's records.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Summary {
    /// Purpose, the bases relied on, and its retention.
    pub purposes: Vec<(std::sync::Arc<crate::model::Purpose>, Vec<LawfulBasis>)>,
    pub data_categories: Vec<String>,
    pub recipients: Vec<String>,
    pub sources: Vec<String>,
}

/// A record's outcome as an access report shows it: a redacted record says so.
pub fn outcome_shown(record: &Record) -> String {
    if record.redacted {
        format!("{} (redacted)", record.outcome)
    } else {
        record.outcome.to_string()
    }
}

impl Enricher {
    /// Records a data-subject request: who asked, under which reference,
    /// and what it returned or erased. Kept for `REQUEST_RETENTION`, past
    /// the redaction of the person's other records.
    async fn record_request(
        &self,
        caller: &Caller,
        subject: &str,
        outcome: LedgerOutcome,
        reference: &str,
        detail: String,
    ) -> Result<(), Error> {
        let under = Under {
            purpose_id: REQUEST_PURPOSE,
            basis: Some(LawfulBasis::LegalObligation),
            evidence: &BasisEvidence::default(),
            keep: retention::REQUEST_RETENTION,
        };
        let mut record = record_of(caller, under, subject, outcome, self.clock().utc());
        record.reference = reference.chars().take(256).collect();
        record.detail = detail;
        self.append(record).await.map(drop)
    }

    /// Art. 17 erasure (or Art. 21(3) objection): purge, redact, suppress.
    pub async fn erase(
        &self,
        caller: &Caller,
        raw: &RawIdentifier,
        region: Option<Region>,
        kind: EraseKind,
        reference: &str,
    ) -> Result<Erased, Error> {
        let subject = self.subject(raw, region)?;
        let canonical = subject.identifier.canonical();
        // Enrichments of this person in flight either answered before this
        // point or will see the erasure (`fence`).
        let _fenced = self.fence().erase(&subject.hash).await;
        let mut erased = Erased {
            tombstone: self.hasher().log_ref(&canonical),
            suppressed_purposes: kind.reported_purposes(),
            ..Erased::default()
        };
        // Suppressed first: from its commit on, no process records (and so
        // answers) a processing of the person; what one recorded before is
        // redacted next, and what the caches hold is removed.
        let at_ms = self.clock().utc().timestamp_millis();
        let ledger = self.ledger();
        if kind.purges() {
            ledger.erase(&subject.hash, reference, at_ms).await
        } else {
            ledger
                .suppress(&subject.hash, kind.scope(), reference, at_ms)
                .await
        }
        .map_err(unavailable)?;
        if let Some(cluster) = self.cluster() {
            cluster.announce_erasure().await;
        }
        if kind.purges() {
            erased.cache_entries_removed = self.forget(&subject.hash).await;
            self.purge(&subject.hash, &mut erased).await?;
        }
        let (outcome, detail) = match kind {
            EraseKind::Erasure => (
                LedgerOutcome::Erasure,
                format!(
                    "{} cache entries removed, {} records redacted{}, {} batch job rows erased, \
                     suppressed for every purpose",
                    erased.cache_entries_removed,
                    erased.ledger_records_redacted,
                    if erased.redaction_pending {
                        " (the rest being redacted)"
                    } else {
                        ""
                    },
                    erased.batch_rows_erased
                ),
            ),
            EraseKind::ObjectionToMarketing => (
                LedgerOutcome::Objection,
                "suppressed for marketing".to_owned(),
            ),
        };
        self.record_request(caller, &subject.hash, outcome, reference, detail)
            .await?;
        info!(subject = %self.hasher().pii(&canonical), ?kind, "data-subject request carried out");
        Ok(erased)
    }

    /// Redacts the person's records and empties their batch job rows, on a
    /// task of its own: a caller that stops waiting does not cut it short.
    /// Waits `ledger.erase_wait` for it; past that the answer says the
    /// redaction is still going (and the pending purge, committed with the
    /// suppression, has the sweep finish it should this process stop).
    async fn purge(&self, subject: &str, erased: &mut Erased) -> Result<(), Error> {
        use std::sync::atomic::{AtomicU64, Ordering};
        let progress = Arc::new(AtomicU64::new(0));
        let task = tokio::spawn({
            let (ledger, subject, progress) =
                (self.ledger().clone(), subject.to_owned(), progress.clone());
            async move {
                let purged = ledger.purge(&subject, &progress).await;
                if let Err(e) = &purged {
                    tracing::warn!(error = %e, "purge failed; the next sweep finishes it");
                }
                purged
            }
        });
        let count = |n: u64| u32::try_from(n).unwrap_or(u32::MAX);
        match tokio::time::timeout(self.erase_wait(), task).await {
            Ok(Ok(purged)) => {
                let purged = purged.map_err(unavailable)?;
                erased.ledger_records_redacted = count(purged.records_redacted);
                erased.batch_rows_erased = count(purged.job_rows_erased);
            }
            Ok(Err(_)) => {
                return Err(Error::Unavailable(
                    "the redaction of the person's records stopped; the suppression is in force \
                     and the next sweep finishes the redaction: ask again",
                ));
            }
            Err(_) => {
                erased.ledger_records_redacted = count(progress.load(Ordering::Relaxed));
                erased.redaction_pending = true;
            }
        }
        Ok(())
    }

    /// Purposes, data categories, recipients and sources of the processings.
    fn summary(&self, processings: &[ProcessingKind]) -> Summary {
        use std::collections::{BTreeMap, BTreeSet};
        let mut purposes: BTreeMap<&str, BTreeSet<LawfulBasis>> = BTreeMap::new();
        for r in processings {
            let bases = purposes.entry(r.purpose.as_str()).or_default();
            if let Some(b) = LawfulBasis::ALL
                .into_iter()
                .find(|b| b.as_str() == r.lawful_basis)
            {
                bases.insert(b);
            }
        }
        let sources: BTreeSet<&str> = processings
            .iter()
            .flat_map(|r| r.sources.iter().map(String::as_str))
            .collect();
        let data_categories: BTreeSet<&str> = sources
            .iter()
            .filter_map(|id| self.catalog().get(id))
            .flat_map(|s| s.data_categories.iter().map(String::as_str))
            .collect();
        Summary {
            purposes: purposes
                .into_iter()
                .filter_map(|(id, bases)| {
                    let purpose = self.purposes().get(id)?.clone();
                    Some((purpose, bases.into_iter().collect()))
                })
                .collect(),
            data_categories: data_categories.into_iter().map(str::to_owned).collect(),
            recipients: processings
                .iter()
                .map(|r| r.caller.as_str())
                .filter(|c| !c.is_empty())
                .collect::<BTreeSet<_>>()
                .into_iter()
                .map(str::to_owned)
                .collect(),
            sources: sources.into_iter().map(str::to_owned).collect(),
        }
    }

    /// Art. 15 access: what enrichd holds, and the logic of its scores.
    pub async fn access(
        &self,
        caller: &Caller,
        raw: &RawIdentifier,
        region: Option<Region>,
        reference: &str,
        page: &Page,
    ) -> Result<AccessReport, Error> {
        let subject = self.subject(raw, region)?;
        let ledger = self.ledger();
        let suppressions = ledger
            .suppression_records(&subject.hash)
            .await
            .map_err(unavailable)?;
        // Erased by another process sharing the ledger (the command line,
        // another replica): what this process still caches of the person is
        // purged, not shown.
        if suppressions
            .iter()
            .any(|s| s.scope == suppression::ALL_PURPOSES)
        {
            let _fenced = self.fence().erase(&subject.hash).await;
            self.forget(&subject.hash).await;
        }
        let cached = self.engine().cached(&subject.hash).await;
        let cached_bytes: usize = cached.iter().map(|e| e.weight() as usize).sum();
        let mut room = PAGE_BYTES.saturating_sub(cached_bytes).max(PAGE_BYTES / 4);
        // Every page of one access ends where its first page began.
        let until_ms = page
            .token
            .as_ref()
            .map_or_else(|| self.clock().utc().timestamp_millis(), |t| t.until_ms);
        let mut next = page.token.clone().unwrap_or(PageToken {
            until_ms,
            after_ms: i64::MIN,
            after_id: "-".into(),
            rows_offset: 0,
        });
        let mut records = Vec::new();
        if !next.records_done() {
            let after = page
                .token
                .as_ref()
                .map(|t| (t.after_ms, t.after_id.as_str()));
            let fetched = ledger
                .records_page(&subject.hash, until_ms, after, page.size)
                .await
                .map_err(unavailable)?;
            let full = fetched.len() >= page.size as usize;
            let mut cut = false;
            for record in fetched {
                let bytes = record_bytes(&record);
                if bytes > room && !records.is_empty() {
                    cut = true;
                    break;
                }
                room = room.saturating_sub(bytes);
                records.push(record);
            }
            // A full page may be the last: the next one is then empty.
            match records.last() {
                Some(last) if full || cut => {
                    next.after_ms = last.at_ms;
                    next.after_id.clone_from(&last.id);
                    room = 0;
                }
                _ => next.after_id.clear(),
            }
        }
        let mut batch_rows = Vec::new();
        while room > 0 {
            let fetched = ledger
                .job_rows_of(&subject.hash, until_ms, next.rows_offset, ROWS_AT_A_TIME)
                .await
                .map_err(unavailable)?;
            let last = (fetched.len() as u64) < ROWS_AT_A_TIME;
            for row in fetched {
                let bytes = row_bytes(&row);
                if bytes > room && !(records.is_empty() && batch_rows.is_empty()) {
                    room = 0;
                    break;
                }
                room = room.saturating_sub(bytes);
                next.rows_offset += 1;
                batch_rows.push(row);
            }
            if last && room > 0 {
                break;
            }
        }
        let history = ledger
            .history(&subject.hash, until_ms)
            .await
            .map_err(unavailable)?;
        let feedback = ledger
            .feedback_of(&subject.hash)
            .await
            .map_err(unavailable)?;
        // More to come unless the records are done and the rows ran out
        // with room to spare.
        let next_page = (!next.records_done() || room == 0).then_some(next);
        let report = AccessReport {
            batch_rows,
            summary: self.summary(&history.kinds),
            cached,
            records,
            next_page,
            records_total: history.records,
            suppressions,
            logic: profiling::logic(),
            feedback,
            smtp: self.kept_smtp_check(&subject.hash),
        };
        let detail = format!(
            "{} cached findings, {} of {} records, {} suppressions, {} batch rows, {} feedback \
             returned",
            report.cached.len(),
            report.records.len(),
            report.records_total,
            report.suppressions.len(),
            report.batch_rows.len(),
            report.feedback.len()
        );
        self.record_request(
            caller,
            &subject.hash,
            LedgerOutcome::Access,
            reference,
            detail,
        )
        .await?;
        Ok(report)
    }
}
