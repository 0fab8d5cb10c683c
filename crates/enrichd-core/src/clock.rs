//! Time as a dependency. Cache freshness, breakers, pauses after
//! `Retry-After`, ledger times and retention read an injected clock, so tests
//! advance time instead of sleeping.
//!
//! This is the one file that reads the operating system's clocks (clippy's
//! `disallowed-methods` holds the rest of the code to it): what the product
//! decides reads a [`SharedClock`]; how long a piece of work really took (a
//! latency figure, a metric) is a [`Stopwatch`], which decides nothing.
#![allow(clippy::disallowed_methods)] // the one home of the system clocks

use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};

/// A source of monotonic and wall-clock time.
pub trait Clock: Send + Sync + 'static {
    /// Monotonic time, for ages and deadlines.
    fn now(&self) -> Instant;
    /// Wall-clock time, for records and answers.
    fn utc(&self) -> DateTime<Utc>;
}

/// The process clock, cheap to clone.
#[derive(Clone)]
pub struct SharedClock(Arc<dyn Clock>);

impl fmt::Debug for SharedClock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SharedClock")
    }
}

impl Default for SharedClock {
    fn default() -> Self {
        Self::system()
    }
}

impl SharedClock {
    /// The operating system's clocks.
    pub fn system() -> Self {
        Self(Arc::new(SystemClock))
    }

    pub fn now(&self) -> Instant {
        self.0.now()
    }

    pub fn utc(&self) -> DateTime<Utc> {
        self.0.utc()
    }

    /// The same instant on tokio's timer (for `sleep_until` and `timeout_at`).
    pub fn tokio_now(&self) -> tokio::time::Instant {
        tokio::time::Instant::from_std(self.now())
    }
}

struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Instant {
        Instant::now()
    }

    fn utc(&self) -> DateTime<Utc> {
        Utc::now()
    }
}

/// How long real work takes, on the monotonic clock: for latency figures
/// and metrics only. A decision (a deadline, an expiry, a pause) reads the
/// injected [`SharedClock`] instead, so a test can move it.
#[derive(Clone, Copy, Debug)]
pub struct Stopwatch(Instant);

impl Stopwatch {
    pub fn start() -> Self {
        Self(Instant::now())
    }

    pub fn elapsed(&self) -> Duration {
        self.0.elapsed()
    }
}

/// A clock that moves only when told to (tests).
pub struct ManualClock {
    base: Instant,
    base_utc: DateTime<Utc>,
    offset: Mutex<Duration>,
}

impl ManualClock {
    /// A clock standing at the present moment.
    pub fn new() -> Arc<Self> {
        Arc::new(Self {
            base: Instant::now(),
            base_utc: Utc::now(),
            offset: Mutex::new(Duration::ZERO),
        })
    }

    pub fn advance(&self, by: Duration) {
        *self.offset.lock().unwrap_or_else(|p| p.into_inner()) += by;
    }

    fn offset(&self) -> Duration {
        *self.offset.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A handle for the components that read this clock.
    pub fn shared(self: &Arc<Self>) -> SharedClock {
        SharedClock(self.clone())
    }
}

impl Clock for ManualClock {
    fn now(&self) -> Instant {
        self.base + self.offset()
    }

    fn utc(&self) -> DateTime<Utc> {
        self.base_utc + chrono::Duration::from_std(self.offset()).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_manual_clock_moves_both_times_together_and_only_when_told() {
        let manual = ManualClock::new();
        let clock = manual.shared();
        let (t0, u0) = (clock.now(), clock.utc());
        assert_eq!(clock.now(), t0);
        manual.advance(Duration::from_secs(90));
        assert_eq!(clock.now() - t0, Duration::from_secs(90));
        assert_eq!((clock.utc() - u0).num_seconds(), 90);
    }
}
