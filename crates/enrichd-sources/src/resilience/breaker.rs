//! A circuit breaker per source: after enough failures it answers
//! `circuit_open` at once instead of calling a sick source, then lets a few
//! trial calls through after a cool-down.
use std::collections::VecDeque;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use enrichd_core::clock::SharedClock;

/// Breaker settings (config `[resilience]`).
#[derive(Debug, Clone, Copy, PartialEq, eserde::Deserialize, serde::Serialize)]
pub struct BreakerConfig {
    /// Opens after this many failures in a row (Envoy's default is 5).
    pub consecutive_failures: u32,
    /// ...or when at least this share of the last `window` calls failed.
    pub failure_rate: f64,
    pub window: u32,
    /// How long it stays open before trial calls.
    #[serde(with = "humantime_serde")]
    pub open_for: Duration,
    /// Trial calls let through while half-open.
    pub trial_calls: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    Closed,
    Open { until: Instant },
    HalfOpen { in_flight: u32 },
}

struct Inner {
    state: State,
    consecutive: u32,
    recent: VecDeque<bool>,
}

pub struct Breaker {
    config: BreakerConfig,
    inner: Mutex<Inner>,
    clock: SharedClock,
}

impl Breaker {
    pub fn new(config: BreakerConfig, clock: SharedClock) -> Self {
        Self {
            config,
            clock,
            inner: Mutex::new(Inner {
                state: State::Closed,
                consecutive: 0,
                recent: VecDeque::new(),
            }),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// May a call go ahead? `Err` carries how long the breaker stays open.
    pub fn admit(&self) -> Result<(), Duration> {
        let mut inner = self.lock();
        let now = self.clock.now();
        match inner.state {
            State::Closed => Ok(()),
            State::Open { until } if now < until => Err(until - now),
            State::Open { .. } => {
                inner.state = State::HalfOpen { in_flight: 1 };
                Ok(())
            }
            State::HalfOpen { in_flight } if in_flight < self.config.trial_calls => {
                inner.state = State::HalfOpen {
                    in_flight: in_flight + 1,
                };
                Ok(())
            }
            State::HalfOpen { .. } => Err(Duration::ZERO),
        }
    }

    /// Is it open now? `Err` carries how long it stays open. A call
    /// admitted before a wait (for its rate slot, a concurrency slot) asks
    /// again after it: the calls ahead of it may have opened the breaker
    /// meanwhile, and then it goes no further.
    pub fn still_closed(&self) -> Result<(), Duration> {
        let now = self.clock.now();
        match self.lock().state {
            State::Open { until } if now < until => Err(until - now),
            _ => Ok(()),
        }
    }

    /// Records how an admitted call ended.
    pub fn record(&self, success: bool) {
        let mut inner = self.lock();
        inner.recent.push_back(success);
        while inner.recent.len() > self.config.window as usize {
            inner.recent.pop_front();
        }
        inner.consecutive = if success { 0 } else { inner.consecutive + 1 };
        let failures = inner.recent.iter().filter(|ok| !**ok).count();
        let rate_tripped = inner.recent.len() >= self.config.window as usize
            && failures as f64 >= self.config.failure_rate * inner.recent.len() as f64;
        let open = || State::Open {
            until: self.clock.now() + self.config.open_for,
        };
        inner.state = match (inner.state, success) {
            (State::HalfOpen { .. }, true) => {
                inner.recent.clear();
                State::Closed
            }
            (State::HalfOpen { .. }, false) => open(),
            (State::Closed, false)
                if inner.consecutive >= self.config.consecutive_failures || rate_tripped =>
            {
                open()
            }
            (state, _) => state,
        };
    }

    /// An admitted trial that never reached the source gives its place back.
    pub fn release_trial(&self) {
        let mut inner = self.lock();
        if let State::HalfOpen { in_flight } = inner.state {
            inner.state = State::HalfOpen {
                in_flight: in_flight.saturating_sub(1),
            };
        }
    }

    pub fn state(&self) -> State {
        self.lock().state
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use enrichd_core::clock::ManualClock;

    fn config() -> BreakerConfig {
        BreakerConfig {
            consecutive_failures: 3,
            failure_rate: 0.5,
            window: 10,
            open_for: Duration::from_millis(50),
            trial_calls: 1,
        }
    }

    #[test]
    fn opens_after_consecutive_failures_and_closes_after_a_good_trial() {
        let clock = ManualClock::new();
        let b = Breaker::new(config(), clock.shared());
        for _ in 0..3 {
            assert!(b.admit().is_ok());
            b.record(false);
        }
        assert!(matches!(b.state(), State::Open { .. }));
        assert!(b.admit().is_err());
        clock.advance(Duration::from_millis(49));
        assert!(
            b.admit().is_err(),
            "still open just before the cool-down ends"
        );
        clock.advance(Duration::from_millis(1));
        assert!(b.admit().is_ok(), "a trial call after the cool-down");
        assert!(b.admit().is_err(), "only one trial at a time");
        b.record(true);
        assert_eq!(b.state(), State::Closed);
    }

    #[test]
    fn a_failed_trial_opens_again_and_a_high_failure_rate_opens_too() {
        let clock = ManualClock::new();
        let b = Breaker::new(config(), clock.shared());
        for ok in [
            true, false, true, false, true, false, true, false, true, false,
        ] {
            b.record(ok);
        }
        assert!(
            matches!(b.state(), State::Open { .. }),
            "half of the window failed"
        );
        clock.advance(Duration::from_millis(50));
        assert!(b.admit().is_ok());
        b.record(false);
        assert!(matches!(b.state(), State::Open { .. }));
    }
}
