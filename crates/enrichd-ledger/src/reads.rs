//! Reading a person's records: pages for Access, the history of their
//! processing, and when they were first enriched.
use std::sync::Arc;

use sqlx::Row;

use super::{COLUMNS, History, Ledger, LedgerError, LedgerOutcome, ProcessingKind, Record, list};

/// Rows of `SELECT {COLUMNS}` as records.
pub(crate) fn to_records(rows: &[sqlx::any::AnyRow]) -> Result<Vec<Record>, LedgerError> {
    rows.iter()
        .map(|row| {
            Ok(Record {
                id: row.try_get("id")?,
                at_ms: row.try_get("at_ms")?,
                caller: row.try_get("caller")?,
                purpose: row.try_get("purpose")?,
                lawful_basis: row.try_get("lawful_basis")?,
                consent_ref: row.try_get("consent_ref")?,
                lia_ref: row.try_get("lia_ref")?,
                contract_ref: row.try_get("contract_ref")?,
                subject: row.try_get("subject")?,
                sources: list(&row.try_get::<String, _>("sources")?),
                field_categories: list(&row.try_get::<String, _>("field_categories")?),
                outcome: outcome(row.try_get("outcome")?)?,
                retain_until_ms: row.try_get("retain_until_ms")?,
                redacted: row.try_get::<i64, _>("redacted")? != 0,
                caller_id: row.try_get("caller_id")?,
                on_behalf_of: row.try_get("on_behalf_of")?,
                reference: row.try_get("reference")?,
                detail: row.try_get("detail")?,
            })
        })
        .collect::<Result<_, sqlx::Error>>()
        .map_err(Into::into)
}

pub(crate) fn outcome(text: String) -> Result<LedgerOutcome, sqlx::Error> {
    LedgerOutcome::parse(&text)
        .ok_or_else(|| sqlx::Error::Decode(format!("unknown ledger outcome {text:?}").into()))
}

impl Ledger {
    /// Every record of a subject, oldest first.
    pub async fn records(&self, subject: &str) -> Result<Vec<Record>, LedgerError> {
        let rows = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM ledger WHERE subject = $1 ORDER BY at_ms, id"
        ))
        .bind(subject)
        .fetch_all(&self.pool)
        .await?;
        to_records(&rows)
    }

    /// One page of a subject's records, oldest first: those written at or
    /// before `until_ms`, after `after` (time and id) when given, at most
    /// `limit`.
    pub async fn records_page(
        &self,
        subject: &str,
        until_ms: i64,
        after: Option<(i64, &str)>,
        limit: u32,
    ) -> Result<Vec<Record>, LedgerError> {
        let (after_ms, after_id) = after.unwrap_or((i64::MIN, ""));
        let rows = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM ledger WHERE subject = $1 AND at_ms <= $2 \
             AND (at_ms > $3 OR (at_ms = $3 AND id > $4)) ORDER BY at_ms, id LIMIT $5"
        ))
        .bind(subject)
        .bind(until_ms)
        .bind(after_ms)
        .bind(after_id)
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?;
        to_records(&rows)
    }

    /// How many records of `subject` were written at or before `until_ms`,
    /// and the kinds of processing among them: computed for the first page
    /// of an access, kept for its next pages (until an erasure or another
    /// change of the suppression list, or ten minutes).
    pub async fn history(&self, subject: &str, until_ms: i64) -> Result<Arc<History>, LedgerError> {
        let key = (subject.to_owned(), until_ms, self.suppressed.version());
        if let Some(known) = self.histories.get(&key) {
            return Ok(known);
        }
        let history = Arc::new(History {
            records: self.count_records(subject, until_ms).await?,
            kinds: self.processing_kinds(subject, until_ms).await?,
        });
        self.histories.insert(key, history.clone());
        Ok(history)
    }

    /// How many records of a subject were written at or before `until_ms`.
    pub(crate) async fn count_records(
        &self,
        subject: &str,
        until_ms: i64,
    ) -> Result<u64, LedgerError> {
        let row =
            sqlx::query("SELECT COUNT(*) AS n FROM ledger WHERE subject = $1 AND at_ms <= $2")
                .bind(subject)
                .bind(until_ms)
                .fetch_one(&self.pool)
                .await?;
        Ok(u64::try_from(row.try_get::<i64, _>("n")?).unwrap_or_default())
    }

    /// The distinct (purpose, lawful basis, caller, sources) of a subject's
    /// processings that asked the sources (enriched or not found): what an
    /// access report's summary is drawn from, however many records there are.
    pub(crate) async fn processing_kinds(
        &self,
        subject: &str,
        until_ms: i64,
    ) -> Result<Vec<ProcessingKind>, LedgerError> {
        let rows = sqlx::query(
            "SELECT DISTINCT purpose, lawful_basis, caller, sources FROM ledger \
             WHERE subject = $1 AND outcome IN ($2, $3) AND at_ms <= $4",
        )
        .bind(subject)
        .bind(LedgerOutcome::Enriched.as_str())
        .bind(LedgerOutcome::NotFound.as_str())
        .bind(until_ms)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|row| {
                Ok(ProcessingKind {
                    purpose: row.try_get("purpose")?,
                    lawful_basis: row.try_get("lawful_basis")?,
                    caller: row.try_get("caller")?,
                    sources: list(&row.try_get::<String, _>("sources")?),
                })
            })
            .collect::<Result<_, sqlx::Error>>()
            .map_err(Into::into)
    }

    /// When this subject was first enriched, if ever.
    pub async fn first_enriched_ms(&self, subject: &str) -> Result<Option<i64>, LedgerError> {
        if let Some(first) = self.first_enriched.get(subject) {
            return Ok(Some(first));
        }
        let row = sqlx::query(
            "SELECT MIN(at_ms) AS first FROM ledger WHERE subject = $1 AND outcome = $2",
        )
        .bind(subject)
        .bind(LedgerOutcome::Enriched.as_str())
        .fetch_one(&self.pool)
        .await?;
        let first = row.try_get::<Option<i64>, _>("first")?;
        if let Some(first) = first {
            self.first_enriched.insert(subject.to_owned(), first);
        }
        Ok(first)
    }
}
