//! Per-caller quotas: requests per second of each key or certificate,
//! apart from the sources' own budgets (one process; several replicas would
//! share them through a store).
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::Caller;
use crate::catalog::source::RateLimit;
use crate::resilience::limiter::{Limiter, LocalLimiter};

#[derive(Default)]
pub(super) struct Quotas {
    limiters: Mutex<HashMap<String, (f64, Arc<LocalLimiter>)>>,
}

impl Quotas {
    /// Takes one request of the caller's quota, or says how long to wait.
    pub(super) fn take(&self, caller: &Caller) -> Result<(), Duration> {
        let Some(rate) = caller.quota_per_second else {
            return Ok(());
        };
        let who = format!("{}\u{0}{}", caller.name, caller.id);
        let limiter = {
            let mut limiters = self.limiters.lock().unwrap_or_else(|p| p.into_inner());
            let entry = limiters.entry(who).or_insert_with(|| (rate, limiter(rate)));
            if entry.0 != rate {
                *entry = (rate, limiter(rate));
            }
            entry.1.clone()
        };
        limiter.try_acquire()
    }
}

/// `rate` per second, a second's worth at once.
fn limiter(rate: f64) -> Arc<LocalLimiter> {
    Arc::new(LocalLimiter::new(RateLimit {
        per_second: rate,
        burst: rate.ceil().max(1.0) as u32,
    }))
}
