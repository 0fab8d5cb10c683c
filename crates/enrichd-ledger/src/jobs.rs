//! Batch jobs' state in the ledger database (see
//! migrations/20261126000001_batch_jobs.sql): a job, its rows, each row's
//! answer once it is in.
use sqlx::{FromRow, Row};

use super::{Ledger, LedgerError};

/// A job as stored.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct JobRow {
    pub id: String,
    pub caller: String,
    pub caller_id: String,
    pub template: String,
    pub webhook_url: String,
    pub state: String,
    pub reason: String,
    pub rows_total: i64,
    pub created_ms: i64,
    pub finished_ms: i64,
    pub webhook_state: String,
    /// The hash-key generation its webhook secret derives from.
    pub key_generation: i64,
}

/// A row as submitted.
#[derive(Debug, Clone)]
pub struct JobRowInput {
    pub number: i64,
    pub subject: String,
    pub input: String,
    pub request: String,
    /// For a row answered at once (no usable identifier): its line and
    /// outcome.
    pub answered: Option<(String, String)>,
}

/// A batch row that holds a person, as Access shows it.
#[derive(Debug, Clone, PartialEq)]
pub struct HeldRow {
    pub job_id: String,
    pub row: i64,
    /// The row's columns (JSON object).
    pub input: String,
    /// The job's purpose.
    pub purpose: String,
    /// The audience segment it was exported with, if it was.
    pub segment: Option<String>,
}

/// A row's output: number, input columns, answer line (None: pending).
pub type RowOutput = (i64, String, Option<String>);

const JOB_COLUMNS: &str = "id, caller, caller_id, template, webhook_url, state, reason, \
    rows_total, created_ms, finished_ms, webhook_state, key_generation";

/// A job's rows by outcome: read from the index `batch_rows_outcome` alone.
const COUNTS_BY_OUTCOME: &str =
    "SELECT outcome, COUNT(*) AS n FROM batch_rows WHERE job_id = $1 GROUP BY outcome";

/// A page of a job's rows of one outcome: the index `batch_rows_outcome`'s
/// expression, word for word, so that the rows are found in it.
const ROWS_OF_OUTCOME: &str = "SELECT row_number, input, result FROM batch_rows \
     WHERE job_id = $1 AND row_number > $2 \
     AND (CASE WHEN outcome LIKE 'error:%' THEN 'error' ELSE outcome END) = $4 \
     ORDER BY row_number LIMIT $3";

impl Ledger {
    /// Stores a job and all its rows in one transaction: a job exists whole
    /// or not at all.
    pub async fn insert_job(&self, job: &JobRow, rows: &[JobRowInput]) -> Result<(), LedgerError> {
        let mut tx = self.pool.begin().await?;
        sqlx::query(&format!(
            "INSERT INTO batch_jobs ({JOB_COLUMNS}) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)"
        ))
        .bind(&job.id)
        .bind(&job.caller)
        .bind(&job.caller_id)
        .bind(&job.template)
        .bind(&job.webhook_url)
        .bind(&job.state)
        .bind(&job.reason)
        .bind(job.rows_total)
        .bind(job.created_ms)
        .bind(job.finished_ms)
        .bind(&job.webhook_state)
        .bind(job.key_generation)
        .execute(&mut *tx)
        .await?;
        for row in rows {
            let (result, outcome) = match &row.answered {
                Some((line, outcome)) => (Some(line.as_str()), outcome.as_str()),
                None => (None, "pending"),
            };
            sqlx::query(
                "INSERT INTO batch_rows (job_id, row_number, subject, input, request, result, outcome) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7)",
            )
            .bind(&job.id)
            .bind(row.number)
            .bind(&row.subject)
            .bind(&row.input)
            .bind(&row.request)
            .bind(result)
            .bind(outcome)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    pub async fn job(&self, id: &str) -> Result<Option<JobRow>, LedgerError> {
        let row = sqlx::query(&format!(
            "SELECT {JOB_COLUMNS} FROM batch_jobs WHERE id = $1"
        ))
        .bind(id)
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.as_ref().map(JobRow::from_row).transpose()?)
    }

    /// Jobs not finished, or finished with their webhook not yet delivered.
    pub async fn unfinished_jobs(&self) -> Result<Vec<JobRow>, LedgerError> {
        let rows = sqlx::query(&format!(
            "SELECT {JOB_COLUMNS} FROM batch_jobs \
             WHERE state = 'running' OR webhook_state = 'pending' ORDER BY created_ms"
        ))
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .iter()
            .map(JobRow::from_row)
            .collect::<Result<_, _>>()?)
    }

    /// Up to `limit` rows of a job with no answer yet, from `after` on:
    /// number and request.
    pub async fn pending_rows(
        &self,
        id: &str,
        after: i64,
        limit: i64,
    ) -> Result<Vec<(i64, String)>, LedgerError> {
        self.row_page(id, after, limit, "request", false).await
    }

    /// One column of a job's rows after row `after`, answered or not, in
    /// order, at most `limit`.
    async fn row_page(
        &self,
        id: &str,
        after: i64,
        limit: i64,
        column: &'static str,
        answered: bool,
    ) -> Result<Vec<(i64, String)>, LedgerError> {
        Ok(sqlx::query_as(&format!(
            "SELECT row_number, {column} FROM batch_rows WHERE job_id = $1 \
             AND result IS {} NULL AND row_number > $2 ORDER BY row_number LIMIT $3",
            if answered { "NOT" } else { "" }
        ))
        .bind(id)
        .bind(after)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?)
    }

    /// Stores a row's answer, unless it has one already (an erasure's
    /// placeholder wins over an answer that arrives after it).
    pub async fn put_row_result(
        &self,
        id: &str,
        number: i64,
        line: &str,
        outcome: &str,
        features: Option<&str>,
    ) -> Result<(), LedgerError> {
        sqlx::query(
            "UPDATE batch_rows SET result = $1, outcome = $2, features = $3 \
             WHERE job_id = $4 AND row_number = $5 AND result IS NULL",
        )
        .bind(line)
        .bind(outcome)
        .bind(features)
        .bind(id)
        .bind(number)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Rows of a job by outcome (`pending` for those not answered yet).
    pub async fn job_counts(&self, id: &str) -> Result<Vec<(String, i64)>, LedgerError> {
        Ok(sqlx::query_as(COUNTS_BY_OUTCOME)
            .bind(id)
            .fetch_all(&self.pool)
            .await?)
    }

    /// A page of a job's rows in order, from `after` on; with `outcome`,
    /// only the rows of that outcome (`error` stands for every
    /// `error:<CODE>`), found by the index `batch_rows_outcome`.
    pub async fn job_rows(
        &self,
        id: &str,
        after: i64,
        limit: i64,
        outcome: Option<&str>,
    ) -> Result<Vec<RowOutput>, LedgerError> {
        let query = match outcome {
            None => sqlx::query_as(
                "SELECT row_number, input, result FROM batch_rows \
                 WHERE job_id = $1 AND row_number > $2 ORDER BY row_number LIMIT $3",
            ),
            Some(_) => sqlx::query_as(ROWS_OF_OUTCOME),
        };
        let query = query.bind(id).bind(after).bind(limit);
        let query = match outcome {
            Some(named) => query.bind(named),
            None => query,
        };
        Ok(query.fetch_all(&self.pool).await?)
    }

    /// Ends a job: `done` or `failed` with the reason.
    pub async fn finish_job(
        &self,
        id: &str,
        state: &str,
        reason: &str,
        at_ms: i64,
    ) -> Result<(), LedgerError> {
        sqlx::query(
            "UPDATE batch_jobs SET state = $1, reason = $2, finished_ms = $3 \
             WHERE id = $4 AND state = 'running'",
        )
        .bind(state)
        .bind(reason)
        .bind(at_ms)
        .bind(id)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Cancels a running job: its rows not answered yet are marked
    /// `cancelled` (they never run; a row in flight keeps its answer) and
    /// the job ends `cancelled`, in one transaction. Whether it was running.
    pub async fn cancel_job(&self, id: &str, at_ms: i64) -> Result<bool, LedgerError> {
        let mut tx = self.pool.begin().await?;
        let ended = sqlx::query(
            "UPDATE batch_jobs SET state = 'cancelled', reason = 'cancelled by its owner', \
             finished_ms = $1 WHERE id = $2 AND state = 'running'",
        )
        .bind(at_ms)
        .bind(id)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if ended == 1 {
            sqlx::query(
                "UPDATE batch_rows SET result = '{\"cancelled\": true}', outcome = 'cancelled' \
                 WHERE job_id = $1 AND result IS NULL",
            )
            .bind(id)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(ended == 1)
    }

    /// The jobs submitted with key `caller_id` (for certificates and
    /// anonymous callers, '' and the name is checked by the caller), newest
    /// first, made before `before` (created_ms, id), at most `limit`.
    pub async fn jobs_of(
        &self,
        caller_id: &str,
        before: Option<(i64, &str)>,
        limit: i64,
    ) -> Result<Vec<JobRow>, LedgerError> {
        let (before_ms, before_id) = before.unwrap_or((i64::MAX, ""));
        let rows = sqlx::query(&format!(
            "SELECT {JOB_COLUMNS} FROM batch_jobs WHERE caller_id = $1 \
             AND (created_ms < $2 OR (created_ms = $2 AND id < $3)) \
             ORDER BY created_ms DESC, id DESC LIMIT $4"
        ))
        .bind(caller_id)
        .bind(before_ms)
        .bind(before_id)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .iter()
            .map(JobRow::from_row)
            .collect::<Result<_, _>>()?)
    }

    pub async fn set_webhook_state(&self, id: &str, state: &str) -> Result<(), LedgerError> {
        sqlx::query("UPDATE batch_jobs SET webhook_state = $1 WHERE id = $2")
            .bind(state)
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// The input columns of a job's answered rows after row `after`, in
    /// order, at most `limit` (without their answers, which are large).
    pub async fn job_inputs(
        &self,
        id: &str,
        after: i64,
        limit: i64,
    ) -> Result<Vec<(i64, String)>, LedgerError> {
        self.row_page(id, after, limit, "input", true).await
    }

    /// Art. 15: the rows of batch jobs made up to `until_ms` that hold a
    /// subject, in the order jobs were made, `limit` from `offset`: job id,
    /// row, input columns, the job's purpose (from its stored request).
    pub async fn job_rows_of(
        &self,
        subject: &str,
        until_ms: i64,
        offset: u64,
        limit: u64,
    ) -> Result<Vec<HeldRow>, LedgerError> {
        let rows = sqlx::query(
            "SELECT r.job_id, r.row_number, r.input, r.segment, j.template FROM batch_rows r \
             JOIN batch_jobs j ON j.id = r.job_id \
             WHERE r.subject = $1 AND r.outcome <> 'erased' AND j.created_ms <= $2 \
             ORDER BY j.created_ms, r.job_id, r.row_number LIMIT $3 OFFSET $4",
        )
        .bind(subject)
        .bind(until_ms)
        .bind(i64::try_from(limit).unwrap_or(i64::MAX))
        .bind(i64::try_from(offset).unwrap_or(i64::MAX))
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                let template: String = r.try_get("template")?;
                let purpose = serde_json::from_str::<serde_json::Value>(&template)
                    .ok()
                    .and_then(|t| t["purpose"].as_str().map(str::to_owned))
                    .unwrap_or_default();
                Ok(HeldRow {
                    job_id: r.try_get("job_id")?,
                    row: r.try_get("row_number")?,
                    input: r.try_get("input")?,
                    purpose,
                    segment: r.try_get("segment")?,
                })
            })
            .collect::<Result<_, sqlx::Error>>()
            .map_err(Into::into)
    }

    /// A page of the audience facts of a job's answered rows after row
    /// `after`, in order: row number and facts (erased rows have none).
    pub async fn job_features(
        &self,
        id: &str,
        after: i64,
        limit: i64,
    ) -> Result<Vec<(i64, String)>, LedgerError> {
        Ok(sqlx::query_as(
            "SELECT row_number, features FROM batch_rows WHERE job_id = $1 AND row_number > $2 \
             AND features IS NOT NULL AND outcome <> 'erased' ORDER BY row_number LIMIT $3",
        )
        .bind(id)
        .bind(after)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?)
    }

    /// Keeps the segments rows were exported with (per-person membership).
    pub async fn put_segments(&self, id: &str, rows: &[(i64, String)]) -> Result<(), LedgerError> {
        let mut tx = self.pool.begin().await?;
        for (row, segment) in rows {
            sqlx::query(
                "UPDATE batch_rows SET segment = $1 WHERE job_id = $2 AND row_number = $3 \
                 AND outcome <> 'erased'",
            )
            .bind(segment)
            .bind(id)
            .bind(row)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Art. 17 reaches batch jobs: the person's rows keep their number and
    /// lose their input, request and answer. Returns how many rows.
    pub async fn erase_job_rows(&self, subject: &str) -> Result<u64, LedgerError> {
        let done = sqlx::query(
            "UPDATE batch_rows SET input = '{}', request = '', \
             result = '{\"erased\":true}', outcome = 'erased', features = NULL, \
             segment = NULL WHERE subject = $1",
        )
        .bind(subject)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected())
    }

    /// Deletes the jobs (and rows) that finished before `before_ms`.
    pub async fn sweep_jobs(&self, before_ms: i64) -> Result<u64, LedgerError> {
        let expired: Vec<String> = sqlx::query_scalar(
            "SELECT id FROM batch_jobs WHERE state <> 'running' AND finished_ms < $1",
        )
        .bind(before_ms)
        .fetch_all(&self.pool)
        .await?;
        // A job's rows (up to the 16 MiB an upload holds) go a batch at a
        // time, so that no statement holds SQLite's write lock for long;
        // the job goes last, so an interrupted sweep finds it again.
        for job in &expired {
            super::in_batches(|| async {
                let done = sqlx::query(
                    "DELETE FROM batch_rows WHERE job_id = $1 AND row_number IN \
                     (SELECT row_number FROM batch_rows WHERE job_id = $1 LIMIT $2)",
                )
                .bind(job)
                .bind(i64::try_from(super::SWEEP_BATCH).unwrap_or(i64::MAX))
                .execute(&self.pool)
                .await?;
                Ok(done.rows_affected())
            })
            .await?;
            sqlx::query("DELETE FROM batch_jobs WHERE id = $1")
                .bind(job)
                .execute(&self.pool)
                .await?;
        }
        Ok(u64::try_from(expired.len()).unwrap_or(u64::MAX))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A job's rows of one outcome are found in the index, and its counts
    /// by outcome are read from it alone, not by reading every row (whose
    /// answer, on SQLite, is stored before its outcome).
    #[tokio::test]
    async fn rows_by_outcome_are_found_in_the_index() {
        let ledger = crate::Ledger::open("sqlite::memory:").await.unwrap();
        let steps = |plan: Vec<(i64, i64, i64, String)>| -> Vec<String> {
            plan.into_iter().map(|(.., step)| step).collect()
        };
        let rows = sqlx::query_as(&format!("EXPLAIN QUERY PLAN {ROWS_OF_OUTCOME}"))
            .bind("job")
            .bind(0_i64)
            .bind(256_i64)
            .bind("invalid")
            .fetch_all(&ledger.pool)
            .await
            .unwrap();
        assert_eq!(
            steps(rows),
            [
                "SEARCH batch_rows USING INDEX batch_rows_outcome (job_id=? AND <expr>=? AND row_number>?)"
            ]
        );
        let counts = sqlx::query_as(&format!("EXPLAIN QUERY PLAN {COUNTS_BY_OUTCOME}"))
            .bind("job")
            .fetch_all(&ledger.pool)
            .await
            .unwrap();
        assert_eq!(
            steps(counts)[0],
            "SEARCH batch_rows USING COVERING INDEX batch_rows_outcome (job_id=?)"
        );
    }
}
