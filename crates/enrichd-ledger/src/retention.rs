//! The retention sweep: deletes the records past the date their
//! processing's retention fixed (`compliance::retention`), and first finishes
//! the redactions of erasures that were cut short.
use std::time::Duration;

use tracing::{info, warn};

use super::{Ledger, LedgerError};
use enrichd_core::clock::SharedClock;

/// Deletes the records past their retention, once now and then `every`.
pub async fn sweep_every(ledger: Ledger, clock: SharedClock, every: Duration) {
    let mut tick = tokio::time::interval(every);
    loop {
        tick.tick().await;
        sweep(&ledger, &clock).await;
    }
}

/// One sweep; returns how many records it deleted. It first finishes the
/// purges of erasures that were cut short (by any process on the ledger).
pub async fn sweep(ledger: &Ledger, clock: &SharedClock) -> u64 {
    match ledger.finish_purges().await {
        Ok(0) => {}
        Ok(n) => info!(subjects = n, "interrupted erasures' redactions finished"),
        Err(e) => warn!(error = %e, "finishing interrupted erasures failed"),
    }
    match ledger.sweep(clock.utc().timestamp_millis()).await {
        Ok(0) => 0,
        Ok(n) => {
            info!(deleted = n, "ledger records past their retention deleted");
            n
        }
        Err(e) => {
            warn!(error = %e, "ledger retention sweep failed");
            0
        }
    }
}

/// Records one statement of a retention sweep deletes at most: a few
/// milliseconds of SQLite's write lock.
pub(crate) const SWEEP_BATCH: u64 = 500;

/// The least pause between two statements of a sweep. A writer that met
/// the sweep's lock waits in SQLite's busy handler, which sleeps 1, 2, 5,
/// 10, 15, 20, 25 ms... (longer the longer it has waited): the pause is at
/// least three times what the statement took, so that the writer wakes
/// within it and commits.
pub(crate) const SWEEP_PAUSE: Duration = Duration::from_millis(25);

/// Runs `delete` (one statement deleting at most `SWEEP_BATCH` rows) until
/// it deletes fewer, pausing between statements (`SWEEP_PAUSE`). Returns
/// how many rows it deleted.
pub(crate) async fn in_batches<F, Fut>(mut delete: F) -> Result<u64, LedgerError>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<u64, LedgerError>>,
{
    let mut deleted = 0;
    loop {
        let started = enrichd_core::clock::Stopwatch::start();
        let n = delete().await?;
        deleted += n;
        if n < SWEEP_BATCH {
            return Ok(deleted);
        }
        tokio::time::sleep(pause_after(started.elapsed())).await;
    }
}

/// How long a long task (a sweep, a purge) pauses after one of its
/// statements took `statement`, so that the records of calls get written.
pub(crate) fn pause_after(statement: Duration) -> Duration {
    SWEEP_PAUSE.max(statement * 3)
}

impl Ledger {
    /// Deletes records past their retention, a bounded batch at a time
    /// (`SWEEP_BATCH`), pausing between batches (`SWEEP_PAUSE`) so that the
    /// records of calls are committed meanwhile. Returns how many.
    ///
    /// One statement for everything held SQLite's write lock for as long as
    /// it ran: 2,000,000 expired rows took 12 s, every call in that time
    /// waited, and those past the 5 s busy timeout failed (UNAVAILABLE).
    pub async fn sweep(&self, now_ms: i64) -> Result<u64, LedgerError> {
        in_batches(|| self.sweep_at_most(now_ms, SWEEP_BATCH)).await
    }

    /// Deletes at most `limit` records past their retention, the earliest
    /// expired first, in one statement. Returns how many.
    pub async fn sweep_at_most(&self, now_ms: i64, limit: u64) -> Result<u64, LedgerError> {
        let done = sqlx::query(
            "DELETE FROM ledger WHERE id IN (SELECT id FROM ledger \
             WHERE retain_until_ms < $1 ORDER BY retain_until_ms LIMIT $2)",
        )
        .bind(now_ms)
        .bind(i64::try_from(limit).unwrap_or(i64::MAX))
        .execute(&self.pool)
        .await?;
        if done.rows_affected() > 0 {
            self.first_enriched.invalidate_all();
        }
        Ok(done.rows_affected())
    }
}
