//! The retention sweep: deletes the records past the date their
//! processing's retention fixed (`compliance::retention`), and first finishes
//! the redactions of erasures that were cut short.
use std::time::Duration;

use tracing::{info, warn};

use super::Ledger;
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
