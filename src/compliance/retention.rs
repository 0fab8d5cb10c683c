//! Storage limitation (GDPR Art. 5(1)(e)): every record carries the date
//! until which it is kept, fixed when it is written (refreshing a finding
//! never extends it), and a sweep deletes what is past it.
use std::time::Duration;

use chrono::{DateTime, Utc};
use tracing::{info, warn};

use crate::clock::SharedClock;
use crate::ledger::Ledger;
use crate::model::Purpose;

/// How long a refusal's record is kept when it names no declared purpose.
pub const REFUSAL_RETENTION: Duration = Duration::from_secs(30 * 24 * 3600);

/// How long the record of a data-subject request (who asked for access or
/// erasure, when, under which reference) is kept: the evidence that it was
/// answered (GDPR Art. 5(2), 12(3)), for a limitation period of three years.
pub const REQUEST_RETENTION: Duration = Duration::from_secs(3 * 365 * 24 * 3600);

/// Until when a record of processing under `purpose` (or of a refusal that
/// named no valid purpose) written at `at` is kept.
/// In whole milliseconds, as the ledger stores it.
pub fn retain_until(at: DateTime<Utc>, purpose: Option<&Purpose>) -> DateTime<Utc> {
    keep_until(at, purpose.map_or(REFUSAL_RETENTION, |p| p.retention))
}

/// `at` plus `keep`, in whole milliseconds.
pub fn keep_until(at: DateTime<Utc>, keep: Duration) -> DateTime<Utc> {
    let until = at + chrono::Duration::from_std(keep).unwrap_or(chrono::Duration::MAX);
    DateTime::from_timestamp_millis(until.timestamp_millis()).unwrap_or(until)
}

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
