//! Erasure and objection: a person's records redacted a batch at a time
//! (resumed by the sweep if cut short), their batch rows erased, and their
//! suppression recorded.
use sqlx::Row;

use super::retention::pause_after;
use super::{Ledger, LedgerError, REQUEST_PURPOSE, SuppressionRow, lease, suppressions};

/// Records one statement of a purge redacts at most: an UPDATE of columns
/// no index holds, about 5 ms of SQLite's write lock.
pub(crate) const REDACT_BATCH: i64 = 5_000;

/// What a purge did to one person's data.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Purged {
    pub records_redacted: u64,
    pub job_rows_erased: u64,
}

impl Ledger {
    /// Art. 17: removes the personal parts of a subject's records, keeping
    /// the keyed hash as a tombstone, and empties their batch job rows; then
    /// the subject's pending purge (see [`Ledger::erase`]) is done. The
    /// records of data-subject requests stay whole: they hold no personal
    /// data but the hash, and they are the evidence that the requests were
    /// answered. Idempotent.
    ///
    /// A person enriched on every CRM view has hundreds of thousands of
    /// records: they are redacted `REDACT_BATCH` at a time, on SQLite with
    /// the sweep's pauses between, so that no statement holds its write
    /// lock for long (one UPDATE of 1,000,000 records held it 1.1 s, and
    /// every call's record waited). `progress` counts the records redacted
    /// so far, for a caller that stops waiting.
    pub async fn purge(
        &self,
        subject: &str,
        progress: &std::sync::atomic::AtomicU64,
    ) -> Result<Purged, LedgerError> {
        use std::sync::atomic::Ordering;
        self.first_enriched.invalidate(subject);
        let mut redacted = 0;
        // Through the (subject, outcome, at_ms) index, an outcome at a time
        // and in time order within it, so that no batch reads again what
        // an earlier one redacted (only records of the same millisecond).
        let mut outcome: Option<String> = None;
        while let Some(current) = self.next_outcome(subject, outcome.as_deref()).await? {
            let mut from_ms = i64::MIN;
            loop {
                let started = enrichd_core::clock::Stopwatch::start();
                let done = self.redact_batch(subject, &current, from_ms).await?;
                redacted += done.len() as u64;
                progress.fetch_add(done.len() as u64, Ordering::Relaxed);
                if (done.len() as i64) < REDACT_BATCH {
                    break;
                }
                from_ms = done.iter().copied().max().unwrap_or(from_ms);
                // PostgreSQL's row locks leave the calls' inserts alone.
                if self.is_sqlite() {
                    tokio::time::sleep(pause_after(started.elapsed())).await;
                }
            }
            outcome = Some(current);
        }
        let job_rows_erased = self.erase_job_rows(subject).await?;
        self.erase_feedback(subject).await?;
        let erased = subject.to_owned();
        // Only fails without `support_invalidation_closures`, which is set.
        let _ = self
            .histories
            .invalidate_entries_if(move |(s, _, _), _| *s == erased);
        sqlx::query("DELETE FROM pending_purge WHERE subject = $1")
            .bind(subject)
            .execute(&self.pool)
            .await?;
        self.first_enriched.invalidate(subject);
        Ok(Purged {
            records_redacted: redacted,
            job_rows_erased,
        })
    }

    /// The first outcome of a subject's records after `after`, if any.
    pub(crate) async fn next_outcome(
        &self,
        subject: &str,
        after: Option<&str>,
    ) -> Result<Option<String>, LedgerError> {
        let row = match after {
            None => sqlx::query("SELECT MIN(outcome) AS o FROM ledger WHERE subject = $1")
                .bind(subject)
                .fetch_one(&self.pool),
            Some(after) => sqlx::query(
                "SELECT MIN(outcome) AS o FROM ledger WHERE subject = $1 AND outcome > $2",
            )
            .bind(subject)
            .bind(after)
            .fetch_one(&self.pool),
        }
        .await?;
        Ok(row.try_get::<Option<String>, _>("o")?)
    }

    /// Redacts at most `REDACT_BATCH` records of `subject` and `outcome`
    /// written at or after `from_ms`, the earliest first; returns their
    /// times.
    pub(crate) async fn redact_batch(
        &self,
        subject: &str,
        outcome: &str,
        from_ms: i64,
    ) -> Result<Vec<i64>, LedgerError> {
        let rows = sqlx::query(
            "UPDATE ledger SET caller = '', caller_id = '', on_behalf_of = '', consent_ref = '', \
             lia_ref = '', contract_ref = '', sources = '[]', field_categories = '[]', \
             detail = '', redacted = 1 \
             WHERE id IN (SELECT id FROM ledger WHERE subject = $1 AND outcome = $2 \
             AND at_ms >= $3 AND redacted = 0 AND purpose <> $4 ORDER BY at_ms LIMIT $5) \
             RETURNING at_ms",
        )
        .bind(subject)
        .bind(outcome)
        .bind(from_ms)
        .bind(REQUEST_PURPOSE)
        .bind(REDACT_BATCH)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|row| row.try_get::<i64, _>("at_ms"))
            .collect::<Result<_, _>>()
            .map_err(Into::into)
    }

    /// Finishes every purge an erasure left undone (its caller stopped
    /// waiting, its process stopped or died); returns how many subjects.
    pub async fn finish_purges(&self) -> Result<u64, LedgerError> {
        let pending: Vec<String> =
            sqlx::query_scalar("SELECT subject FROM pending_purge ORDER BY since_ms")
                .fetch_all(&self.pool)
                .await?;
        let progress = std::sync::atomic::AtomicU64::new(0);
        for subject in &pending {
            self.purge(subject, &progress).await?;
        }
        Ok(pending.len() as u64)
    }

    /// Art. 17: suppresses `subject` for every purpose and, in the same
    /// transaction, marks their purge pending, so that it is finished even
    /// when the [`Ledger::purge`] that follows is cut short.
    pub async fn erase(
        &self,
        subject: &str,
        reference: &str,
        at_ms: i64,
    ) -> Result<(), LedgerError> {
        let everything = enrichd_core::compliance::suppression::ALL_PURPOSES;
        self.suppress_purging(subject, everything, reference, at_ms, true)
            .await
    }

    /// Adds a subject to the suppression list for `scope` (idempotent).
    pub async fn suppress(
        &self,
        subject: &str,
        scope: &str,
        reference: &str,
        at_ms: i64,
    ) -> Result<(), LedgerError> {
        self.suppress_purging(subject, scope, reference, at_ms, false)
            .await
    }

    pub(crate) async fn suppress_purging(
        &self,
        subject: &str,
        scope: &str,
        reference: &str,
        at_ms: i64,
        purge: bool,
    ) -> Result<(), LedgerError> {
        let mut tx = self.pool.begin().await?;
        // After a rotation this process's references are the old key's: an
        // erasure written with them would be found by no one. Serialized
        // with a rotation, which cannot start between this check and the
        // commit.
        lease::serialize(&mut tx).await?;
        if let Some(fingerprint) = self.bound.get() {
            self.check_fingerprint(&mut tx, fingerprint).await?;
        }
        if purge {
            sqlx::query(
                "INSERT INTO pending_purge (subject, since_ms) VALUES ($1, $2) \
                 ON CONFLICT (subject) DO NOTHING",
            )
            .bind(subject)
            .bind(at_ms)
            .execute(&mut *tx)
            .await?;
        }
        // The counter first: the row carries the value it moved to, and so
        // do rows written without one (see migrations/*_suppression_versions).
        suppressions::bump(&mut tx).await?;
        sqlx::query(&format!(
            "UPDATE suppression SET version = ({}) WHERE version = 0",
            suppressions::VERSION_NUMBER
        ))
        .execute(&mut *tx)
        .await?;
        sqlx::query(&format!(
            "INSERT INTO suppression (subject, scope, at_ms, reference, version) \
             VALUES ($1, $2, $3, $4, ({})) ON CONFLICT (subject, scope) DO NOTHING",
            suppressions::VERSION_NUMBER
        ))
        .bind(subject)
        .bind(scope)
        .bind(at_ms)
        .bind(reference)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        // In force in this process before the erasure is answered; other
        // processes see the counter move within their `ledger.follow_every`.
        self.suppressed.add(subject, scope);
        Ok(())
    }

    /// A subject's suppressions: scope, when, reference.
    pub async fn suppression_records(
        &self,
        subject: &str,
    ) -> Result<Vec<SuppressionRow>, LedgerError> {
        let rows = sqlx::query(
            "SELECT scope, at_ms, reference FROM suppression WHERE subject = $1 ORDER BY at_ms, scope",
        )
        .bind(subject)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(SuppressionRow {
                    scope: r.try_get("scope")?,
                    at_ms: r.try_get("at_ms")?,
                    reference: r.try_get("reference")?,
                })
            })
            .collect::<Result<_, sqlx::Error>>()
            .map_err(Into::into)
    }

    /// The scopes a subject is suppressed for, from the in-memory copy of
    /// the list. Fails (and so does every enrichment) while that copy cannot
    /// be kept in step with the database.
    pub fn suppressions(&self, subject: &str) -> Result<Vec<String>, LedgerError> {
        self.suppressed.scopes(subject)
    }
}
