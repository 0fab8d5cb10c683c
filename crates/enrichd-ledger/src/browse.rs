//! The ledger as a privacy officer browses it: every processing, newest
//! first, filtered by caller, purpose, outcome and period, a page at a time;
//! and how many people the suppression list holds.
use sqlx::Row;

use super::reads::to_records;
use super::{COLUMNS, Ledger, LedgerError, Record};

/// What to list. Empty strings match everything.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Browse {
    pub caller: String,
    pub purpose: String,
    /// An outcome ("enriched", "not_found", ...) or its start ("refused").
    pub outcome: String,
    /// Written at or after this time (ms since the epoch).
    pub from_ms: i64,
    /// Written before this time.
    pub until_ms: i64,
    /// The page after this record (its time and id), newest first.
    pub before: Option<(i64, String)>,
    pub limit: u32,
}

impl Ledger {
    /// One page of records matching `b`, newest first.
    pub async fn browse(&self, b: &Browse) -> Result<Vec<Record>, LedgerError> {
        let (before_ms, before_id) = b.before.clone().unwrap_or((i64::MAX, String::new()));
        let rows = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM ledger WHERE ($1 = '' OR caller = $1) \
             AND ($2 = '' OR purpose = $2) AND ($3 = '' OR outcome LIKE $4) \
             AND at_ms >= $5 AND at_ms < $6 \
             AND (at_ms < $7 OR (at_ms = $7 AND ($8 = '' OR id < $8))) \
             ORDER BY at_ms DESC, id DESC LIMIT $9"
        ))
        .bind(&b.caller)
        .bind(&b.purpose)
        .bind(&b.outcome)
        .bind(format!("{}%", b.outcome.replace('%', "")))
        .bind(b.from_ms)
        .bind(b.until_ms)
        .bind(before_ms)
        .bind(&before_id)
        .bind(i64::from(b.limit))
        .fetch_all(&self.pool)
        .await?;
        to_records(&rows)
    }

    /// People on the suppression list, by scope ("all", "marketing").
    pub async fn suppression_counts(&self) -> Result<Vec<(String, i64)>, LedgerError> {
        let rows = sqlx::query("SELECT scope, COUNT(*) AS n FROM suppression GROUP BY scope")
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|r| Ok((r.try_get("scope")?, r.try_get("n")?)))
            .collect::<Result<_, sqlx::Error>>()
            .map_err(Into::into)
    }
}
