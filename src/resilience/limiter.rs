//! Per-source request budgets, behind a trait so that another limiter (for
//! example one shared by several processes) can stand in for the
//! in-process one.
use std::num::NonZeroU32;
use std::time::Duration;

use governor::clock::{Clock, DefaultClock};
use governor::{Quota, RateLimiter};

use crate::catalog::source::RateLimit;

/// A source's request budget.
pub trait Limiter: Send + Sync {
    /// Takes one slot now, or says how long until one is free.
    fn try_acquire(&self) -> Result<(), Duration>;
}

/// GCRA in process (governor): `per_second` sustained, `burst` at once.
pub struct LocalLimiter {
    limiter: governor::DefaultDirectRateLimiter,
    clock: DefaultClock,
}

impl LocalLimiter {
    pub fn new(rate: RateLimit) -> Self {
        let period = Duration::from_secs_f64(1.0 / rate.per_second);
        let quota = Quota::with_period(period)
            .unwrap_or_else(|| Quota::per_second(NonZeroU32::MAX))
            .allow_burst(NonZeroU32::new(rate.burst).unwrap_or(NonZeroU32::MIN));
        let clock = DefaultClock::default();
        Self {
            limiter: RateLimiter::direct_with_clock(quota, clock.clone()),
            clock,
        }
    }
}

impl Limiter for LocalLimiter {
    fn try_acquire(&self) -> Result<(), Duration> {
        self.limiter
            .check()
            .map_err(|not_until| not_until.wait_time_from(self.clock.now()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_burst_is_granted_then_the_wait_is_told() {
        let l = LocalLimiter::new(RateLimit {
            per_second: 2.0,
            burst: 3,
        });
        for _ in 0..3 {
            assert!(l.try_acquire().is_ok());
        }
        let wait = l.try_acquire().expect_err("over the burst");
        assert!(
            wait > Duration::ZERO && wait <= Duration::from_millis(500),
            "{wait:?}"
        );
    }
}
