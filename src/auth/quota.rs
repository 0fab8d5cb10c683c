//! Per-caller quotas: requests per second of each key or certificate,
//! apart from the sources' own budgets. With `[cluster]` Redis a quota holds
//! for the replicas together (GCRA in Redis, as the sources' budgets); while
//! Redis is down each replica enforces its share of it.
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::Caller;
use crate::catalog::source::RateLimit;
use crate::cluster::Cluster;
use crate::cluster::limits::{Grant, SharedLimit};
use crate::limiter::{Limiter, LocalLimiter};

#[derive(Default)]
pub(super) struct Quotas {
    limiters: Mutex<HashMap<String, (f64, Arc<Quota>)>>,
    cluster: Option<Arc<Cluster>>,
}

enum Quota {
    Local(LocalLimiter),
    Shared(SharedLimit),
}

impl Quotas {
    pub(super) fn new(cluster: Option<Arc<Cluster>>) -> Self {
        Self {
            limiters: Mutex::default(),
            cluster,
        }
    }

    /// Takes one request of the caller's quota, or says how long to wait.
    pub(super) async fn take(&self, caller: &Caller) -> Result<(), Duration> {
        let Some(rate) = caller.quota_per_second else {
            return Ok(());
        };
        let who = format!("{}:{}", caller.name, caller.id);
        let quota = {
            let mut limiters = self.limiters.lock().unwrap_or_else(|p| p.into_inner());
            let fresh = || (rate, Arc::new(self.quota(&who, rate)));
            let entry = limiters.entry(who.clone()).or_insert_with(fresh);
            if entry.0 != rate {
                *entry = fresh();
            }
            entry.1.clone()
        };
        match quota.as_ref() {
            Quota::Local(limiter) => limiter.try_acquire(),
            Quota::Shared(shared) => match shared.acquire().await {
                Grant::Now => Ok(()),
                Grant::Wait(wait) | Grant::Paused(wait) | Grant::Open(wait) => Err(wait),
            },
        }
    }

    /// `rate` per second, a second's worth at once.
    fn quota(&self, who: &str, rate: f64) -> Quota {
        let rate = RateLimit {
            per_second: rate,
            burst: rate.ceil().max(1.0) as u32,
        };
        match &self.cluster {
            Some(cluster) => Quota::Shared(SharedLimit::new(cluster.clone(), "caller", who, rate)),
            None => Quota::Local(LocalLimiter::new(rate)),
        }
    }
}

/// One caller's quota, charged item by item where one call carries many
/// (the requests of a stream, the rows of a batch job): each item waits for
/// its unit, so a stream runs at the caller's quota and never over it.
#[derive(Clone)]
pub struct Meter {
    quotas: Arc<Quotas>,
    caller: Caller,
}

impl Meter {
    /// The meter of `caller`'s quota; `None` when it has none.
    pub(super) fn of(quotas: &Arc<Quotas>, caller: &Caller) -> Option<Self> {
        caller.quota_per_second.map(|_| Self {
            quotas: quotas.clone(),
            caller: caller.clone(),
        })
    }

    /// Waits until one unit of the quota is free, and takes it.
    pub async fn pace(&self) {
        while let Err(wait) = self.quotas.take(&self.caller).await {
            metrics::counter!("enrichd_caller_quota_paced_total", "caller" => self.caller.name.clone())
                .increment(1);
            tokio::time::sleep(wait.max(Duration::from_millis(1))).await;
        }
    }
}
