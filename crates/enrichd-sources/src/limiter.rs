//! Per-source request budgets, behind a trait so that another limiter (for
//! example one shared by several processes) can stand in for the
//! in-process one.
use std::num::NonZeroU32;
use std::time::Duration;

use governor::clock::{Clock, DefaultClock};
use governor::{Quota, RateLimiter};

use enrichd_core::catalog::source::RateLimit;

/// A source's request budget.
pub trait Limiter: Send + Sync {
    /// Takes one slot now, or says how long until one is free.
    fn try_acquire(&self) -> Result<(), Duration>;
}

/// What a source's limiter admits so that the source itself, seeing the
/// admissions shifted by up to `jitter` of delivery (queues, connection
/// set-up, the network), never counts more than `per_second + burst` in any
/// one second.
///
/// Admissions under GCRA(r, b) number at most `b + floor(r * L)` in any
/// window of length L, and a one-second window at the source holds
/// admissions from a window of `1 s + jitter`: the margin
/// `floor(R(1 + J)) - floor(R)` comes out of the burst. At most half the
/// burst goes so (a waiter woken a timer tick late catches up within the
/// burst; with a burst of 1 every late wake-up is a slot lost); the rest of
/// the margin comes out of the rate: `(floor(R) + B - b) / (1 + J)`.
pub fn admission(rate: RateLimit, jitter: Duration) -> RateLimit {
    let j = jitter.as_secs_f64();
    let (r, b) = (rate.per_second, rate.burst.max(1));
    let whole = r.floor();
    // f64 -> u32 saturates; a margin beyond u32 is beyond any burst.
    let margin = ((r * (1.0 + j)).floor() - whole) as u32;
    let kept = b.div_ceil(2);
    if b.saturating_sub(margin) >= kept {
        return RateLimit {
            per_second: r,
            burst: b - margin,
        };
    }
    RateLimit {
        per_second: ((whole + f64::from(b - kept)) / (1.0 + j)).min(r),
        burst: kept,
    }
}

/// The governor quota of a rate: one cell every `1 / per_second`, `burst`
/// at once.
fn quota(rate: RateLimit) -> Quota {
    let period = Duration::from_secs_f64(1.0 / rate.per_second);
    Quota::with_period(period)
        .unwrap_or_else(|| Quota::per_second(NonZeroU32::MAX))
        .allow_burst(NonZeroU32::new(rate.burst).unwrap_or(NonZeroU32::MIN))
}

/// GCRA in process (governor): `per_second` sustained, `burst` at once.
pub struct LocalLimiter {
    limiter: governor::DefaultDirectRateLimiter,
    clock: DefaultClock,
}

impl LocalLimiter {
    pub fn new(rate: RateLimit) -> Self {
        let clock = DefaultClock::default();
        Self {
            limiter: RateLimiter::direct_with_clock(quota(rate), clock.clone()),
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

    /// The most requests a source sees in any one-second window when a
    /// limiter of `rate` is kept busy for `secs` and what it admits before
    /// `slow_until` reaches the source `jitter` late, the rest at once (the
    /// worst bunching: first requests slow, say on new connections, then
    /// fast ones catching up).
    fn busiest_second_at_source(
        rate: RateLimit,
        jitter: Duration,
        slow_until: Duration,
        secs: u64,
    ) -> usize {
        use governor::clock::FakeRelativeClock;
        let clock = FakeRelativeClock::default();
        let limiter = RateLimiter::direct_with_clock(quota(rate), clock.clone());
        let step = Duration::from_micros(100);
        let mut arrivals = Vec::new();
        let mut t = Duration::ZERO;
        while t < Duration::from_secs(secs) {
            while limiter.check().is_ok() {
                let late = if t < slow_until {
                    jitter
                } else {
                    Duration::ZERO
                };
                arrivals.push(t + late);
            }
            clock.advance(step);
            t += step;
        }
        arrivals.sort();
        let (mut most, mut first) = (0, 0);
        for last in 0..arrivals.len() {
            while arrivals[last] - arrivals[first] > Duration::from_secs(1) {
                first += 1;
            }
            most = most.max(last - first + 1);
        }
        most
    }

    /// The busiest second over several points where delivery speeds up.
    fn worst_second_at_source(rate: RateLimit, jitter: Duration) -> usize {
        [250, 1000, 2500]
            .into_iter()
            .map(|ms| busiest_second_at_source(rate, jitter, Duration::from_millis(ms), 4))
            .max()
            .unwrap_or(0)
    }

    #[test]
    fn delivery_jitter_never_takes_a_source_over_its_budget() {
        let jitter = Duration::from_millis(20);
        for (per_second, burst) in [
            (500.0, 10),
            (500.0, 40),
            (500.0, 11),
            (50.0, 5),
            (7.5, 3),
            (1.0, 1),
            (1000.0, 1),
        ] {
            let rate = RateLimit { per_second, burst };
            let budget = per_second.floor() as usize + burst as usize;
            let admitted = admission(rate, jitter);
            let seen = worst_second_at_source(admitted, jitter);
            assert!(
                seen <= budget,
                "R={per_second} B={burst}: the source saw {seen} in a second (budget {budget}), admitted as {admitted:?}"
            );
            // Up to the budget, not far below it.
            let sustained = admitted.per_second / per_second;
            assert!(sustained >= 0.97, "R={per_second} B={burst}: {admitted:?}");
        }
        // Without the margin the same jitter takes it over.
        let rate = RateLimit {
            per_second: 500.0,
            burst: 10,
        };
        assert!(worst_second_at_source(rate, jitter) > 510);
    }

    #[test]
    fn the_margin_comes_out_of_the_burst_while_it_can() {
        let ms = Duration::from_millis;
        let r = |per_second, burst| RateLimit { per_second, burst };
        assert_eq!(admission(r(500.0, 10), ms(0)), r(500.0, 10));
        assert_eq!(admission(r(500.0, 10), ms(10)), r(500.0, 5));
        assert_eq!(admission(r(0.016, 10), ms(20)), r(0.016, 10));
        // Half the burst stays; the rest of the margin lowers the rate.
        let low = admission(r(500.0, 10), ms(20));
        assert_eq!(low.burst, 5);
        assert!((low.per_second - 505.0 / 1.02).abs() < 1e-9, "{low:?}");
        let one = admission(r(1000.0, 1), ms(20));
        assert_eq!(one.burst, 1);
        assert!((one.per_second - 1000.0 / 1.02).abs() < 1e-9, "{one:?}");
    }
}
