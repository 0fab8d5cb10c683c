//! What keeps enrichd polite to every source and calm when one is sick: per
//! source a rate limiter, a concurrency cap (bulkhead), a pause honouring
//! `Retry-After`, a retry budget and a circuit breaker.
pub mod breaker;
pub mod retry;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::Semaphore;

use crate::cluster::Cluster;
use crate::cluster::limits::{Grant, SharedLimit};
use crate::limiter::{self, Limiter, LocalLimiter};
use breaker::{Breaker, BreakerConfig};
use enrichd_core::catalog::source::Source;
use enrichd_core::clock::SharedClock;
use retry::RetryBudget;

/// The least time a waited-for rate slot must leave before the deadline for
/// the request itself.
const REQUEST_ROOM: Duration = Duration::from_millis(100);

/// `[resilience]` settings.
#[derive(Debug, Clone, PartialEq, eserde::Deserialize, serde::Serialize)]
pub struct ResilienceConfig {
    pub breaker: BreakerConfig,
    /// Share of calls that may be retries.
    pub retry_ratio: f64,
    /// Longest pause after a 429/503 without Retry-After (the cool-down
    /// doubles from one second up to this).
    #[serde(with = "humantime_serde")]
    pub max_cool_down: Duration,
    /// How late a request admitted by a source's limiter may reach the
    /// source; the limiter keeps this margin so the source never counts more
    /// than `per_second + burst` in a second (see `limiter::admission`).
    #[serde(with = "humantime_serde")]
    pub delivery_jitter: Duration,
}

/// Why a call may not go ahead now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// Paused after the source asked us to wait, or the rate limit has no
    /// slot before the deadline: retry after this long.
    RateLimited(Duration),
    CircuitOpen(Duration),
    /// No concurrency slot before the deadline.
    Saturated,
}

/// The per-source state every caller shares.
pub struct Guard {
    /// The source's catalog id (a metric label; never personal data).
    id: Arc<str>,
    limiter: Box<dyn Limiter>,
    /// The budget across replicas, when they share one (then `limiter` is unused).
    shared: Option<SharedLimit>,
    slots: Semaphore,
    pause: Mutex<Pause>,
    pub breaker: Breaker,
    pub budget: RetryBudget,
    max_cool_down: Duration,
    clock: SharedClock,
    /// `enrichd_source_cache_total` by result, registered on first use (a
    /// cache hit then counts without building and looking up its labels).
    cache_counters: std::sync::OnceLock<[metrics::Counter; 3]>,
}

/// What the cache did for one (source, input).
#[derive(Debug, Clone, Copy)]
pub enum CacheResult {
    Hit,
    Stale,
    Miss,
}

#[derive(Default)]
struct Pause {
    until: Option<Instant>,
    cool_down: Duration,
}

/// A concurrency slot, held for the duration of one upstream call.
pub struct Slot<'a>(#[allow(dead_code)] tokio::sync::SemaphorePermit<'a>);

impl Guard {
    pub fn new(
        source: &Source,
        config: &ResilienceConfig,
        clock: SharedClock,
        cluster: Option<&Arc<Cluster>>,
    ) -> Self {
        let rate = limiter::admission(source.limits.rate_limit, config.delivery_jitter);
        Self {
            id: source.id.clone(),
            limiter: Box::new(LocalLimiter::new(rate)),
            shared: cluster.map(|c| SharedLimit::new(c.clone(), "source", &source.id, rate)),
            slots: Semaphore::new(source.limits.max_concurrency as usize),
            pause: Mutex::new(Pause::default()),
            breaker: Breaker::new(config.breaker, clock.clone()),
            budget: RetryBudget::new(config.retry_ratio, 2.0, 10.0),
            max_cool_down: config.max_cool_down,
            clock,
            cache_counters: std::sync::OnceLock::new(),
        }
    }

    /// Counts what the cache did for this source.
    pub fn count_cache(&self, result: CacheResult) {
        let counters = self.cache_counters.get_or_init(|| {
            ["hit", "stale", "miss"].map(|r| {
                metrics::counter!("enrichd_source_cache_total", "source" => self.id.clone(), "result" => r)
            })
        });
        counters[result as usize].increment(1);
    }

    fn paused_for(&self) -> Option<Duration> {
        let pause = self.pause.lock().unwrap_or_else(|p| p.into_inner());
        pause
            .until
            .and_then(|until| until.checked_duration_since(self.clock.now()))
            .filter(|d| !d.is_zero())
    }

    /// The source asked us to wait (`Retry-After`), or, without a header,
    /// an exponential cool-down.
    pub fn pause(&self, retry_after: Option<Duration>) -> Duration {
        let mut pause = self.pause.lock().unwrap_or_else(|p| p.into_inner());
        let wait = match retry_after {
            Some(d) => d,
            None => {
                pause.cool_down =
                    (pause.cool_down * 2).clamp(Duration::from_secs(1), self.max_cool_down);
                pause.cool_down
            }
        };
        pause.until = Some(self.clock.now() + wait);
        wait
    }

    /// Tells the other replicas this replica's breaker for the source opened
    /// (for as long as it stays open here).
    pub async fn share_open(&self) {
        if let (Some(shared), breaker::State::Open { until }) = (&self.shared, self.breaker.state())
        {
            shared
                .open(until.saturating_duration_since(self.clock.now()))
                .await;
        }
    }

    /// Tells the other replicas about a pause (see `pause`).
    pub async fn share_pause(&self, wait: Duration) {
        if let Some(shared) = &self.shared {
            shared.pause(wait).await;
        }
    }

    pub fn succeeded(&self) {
        let mut pause = self.pause.lock().unwrap_or_else(|p| p.into_inner());
        pause.cool_down = Duration::ZERO;
    }

    /// Waits for a rate-limit slot; refuses at once when the wait would
    /// leave less than `REQUEST_ROOM` before the deadline (unary callers get
    /// `rate_limited` rather than a hang, and no slot is spent on a request
    /// that would be cut off).
    pub async fn rate_slot(&self, deadline: tokio::time::Instant) -> Result<(), Refusal> {
        loop {
            if let Some(paused) = self.paused_for() {
                return Err(Refusal::RateLimited(paused));
            }
            let grant = match &self.shared {
                Some(shared) => shared.acquire().await,
                None => match self.limiter.try_acquire() {
                    Ok(()) => Grant::Now,
                    Err(wait) => Grant::Wait(wait),
                },
            };
            match grant {
                Grant::Now => return Ok(()),
                Grant::Paused(wait) => return Err(Refusal::RateLimited(wait)),
                Grant::Open(wait) => return Err(Refusal::CircuitOpen(wait)),
                Grant::Wait(wait)
                    if tokio::time::Instant::now() + wait + REQUEST_ROOM > deadline =>
                {
                    metrics::counter!("enrichd_source_limiter_refusals_total", "source" => self.id.clone())
                        .increment(1);
                    return Err(Refusal::RateLimited(wait));
                }
                Grant::Wait(wait) => {
                    metrics::counter!("enrichd_source_limiter_waits_total", "source" => self.id.clone())
                        .increment(1);
                    tokio::time::sleep(wait).await
                }
            }
        }
    }

    /// Breaker, pause and rate limit, then a concurrency slot.
    pub async fn admit(&self, deadline: tokio::time::Instant) -> Result<Slot<'_>, Refusal> {
        self.breaker.admit().map_err(Refusal::CircuitOpen)?;
        let admitted = async {
            self.rate_slot(deadline).await?;
            let slot = match tokio::time::timeout_at(deadline, self.slots.acquire()).await {
                Ok(Ok(permit)) => Slot(permit),
                _ => return Err(Refusal::Saturated),
            };
            // The calls ahead of this one may have opened the breaker while
            // it waited: then it is not made (the rate slot is spent).
            self.breaker.still_closed().map_err(Refusal::CircuitOpen)?;
            Ok(slot)
        }
        .await;
        if admitted.is_err() {
            // Not a call: release a half-open trial without judging the source.
            self.breaker.release_trial();
        }
        admitted
    }
}
