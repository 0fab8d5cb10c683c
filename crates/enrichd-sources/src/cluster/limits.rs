//! A source's budget across replicas: GCRA in Redis, one atomic script a
//! request, on Redis's clock (replicas' clocks never meet). The same script
//! honours a pause any replica set after the source answered 429, so one
//! replica's Retry-After holds for all, and a breaker one replica opened
//! keeps every replica from calling the source for its cool-down. While
//! Redis is down each replica
//! enforces its share (`1 / cluster.replicas`) of the budget in process.
use std::sync::Arc;
use std::time::Duration;

use super::Cluster;
use crate::limiter::{Limiter, LocalLimiter};
use enrichd_core::catalog::source::RateLimit;

/// GCRA: the key holds the theoretical arrival time (ms, Redis's clock) of
/// the next request; a request is let through when it is no more than
/// `burst` intervals early. A live open-breaker or pause key refuses first.
///
/// KEYS[1] arrival time, KEYS[2] pause, KEYS[3] open breaker; ARGV[1]
/// interval (ms), ARGV[2] burst. Returns {0, 0} granted, {1, ms} the wait
/// for a slot, {2, ms} paused, {3, ms} the breaker open.
const GCRA: &str = r"
local open = redis.call('PTTL', KEYS[3])
if open > 0 then return {3, open} end
local paused = redis.call('PTTL', KEYS[2])
if paused > 0 then return {2, paused} end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + tonumber(t[2]) / 1000
local interval = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local tat = tonumber(redis.call('GET', KEYS[1]) or now)
if tat < now then tat = now end
local early = tat + interval - burst * interval - now
if early > 0 then return {1, math.ceil(early)} end
redis.call('SET', KEYS[1], string.format('%.3f', tat + interval), 'PX', math.ceil(tat + interval - now) + 1000)
return {0, 0}
";

/// What the budget says to one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Grant {
    Now,
    /// No slot yet; one is free after this long.
    Wait(Duration),
    /// The source asked for a pause (any replica saw it); this long remains.
    Paused(Duration),
    /// A replica's breaker for the source is open; this long remains.
    Open(Duration),
}

/// One source's (or caller's) budget, shared through Redis when it is up.
pub struct SharedLimit {
    cluster: Arc<Cluster>,
    tat_key: String,
    pause_key: String,
    open_key: String,
    interval_ms: f64,
    burst: u32,
    script: redis::Script,
    /// This replica's share, while Redis is down.
    fallback: LocalLimiter,
}

impl SharedLimit {
    /// `name`: what the budget belongs to (a source id, a caller), unique
    /// within `kind`.
    pub fn new(cluster: Arc<Cluster>, kind: &str, name: &str, rate: RateLimit) -> Self {
        let share = f64::from(cluster.replicas());
        let fallback = LocalLimiter::new(RateLimit {
            per_second: rate.per_second / share,
            burst: ((f64::from(rate.burst) / share).floor() as u32).max(1),
        });
        Self {
            tat_key: cluster.key(kind, &format!("{name}:tat")),
            pause_key: cluster.key(kind, &format!("{name}:pause")),
            open_key: cluster.key(kind, &format!("{name}:open")),
            cluster,
            interval_ms: 1000.0 / rate.per_second,
            burst: rate.burst.max(1),
            script: redis::Script::new(GCRA),
            fallback,
        }
    }

    /// Takes one slot now, or says how long until one is free.
    pub async fn acquire(&self) -> Grant {
        let Some(mut conn) = self.cluster.conn() else {
            return self.local();
        };
        let answer: Result<(i64, i64), _> = self
            .script
            .key(&self.tat_key)
            .key(&self.pause_key)
            .key(&self.open_key)
            .arg(self.interval_ms)
            .arg(self.burst)
            .invoke_async(&mut conn)
            .await;
        let ms = |n: i64| Duration::from_millis(u64::try_from(n).unwrap_or(0));
        match answer {
            Ok((0, _)) => Grant::Now,
            Ok((2, n)) => Grant::Paused(ms(n)),
            Ok((3, n)) => Grant::Open(ms(n)),
            Ok((_, n)) => Grant::Wait(ms(n)),
            Err(e) => {
                self.cluster.failed(&e);
                self.local()
            }
        }
    }

    fn local(&self) -> Grant {
        match self.fallback.try_acquire() {
            Ok(()) => Grant::Now,
            Err(wait) => Grant::Wait(wait),
        }
    }

    /// Pauses the source for every replica (kept locally too by the caller).
    pub async fn pause(&self, wait: Duration) {
        self.hold(&self.pause_key, wait).await
    }

    /// Keeps every replica from calling the source while this one's
    /// breaker is open.
    pub async fn open(&self, wait: Duration) {
        self.hold(&self.open_key, wait).await
    }

    async fn hold(&self, key: &str, wait: Duration) {
        let Some(mut conn) = self.cluster.conn() else {
            return;
        };
        let ms = u64::try_from(wait.as_millis()).unwrap_or(u64::MAX).max(1);
        let set: Result<(), _> = redis::cmd("SET")
            .arg(key)
            .arg(1)
            .arg("PX")
            .arg(ms)
            .query_async(&mut conn)
            .await;
        if let Err(e) = set {
            self.cluster.failed(&e);
        }
    }
}
