//! Retries: full-jitter exponential backoff, and a budget per source so that
//! retries stay a small share of calls and a dead source is not hammered.
use std::sync::Mutex;
use std::time::Duration;

/// Each call deposits `ratio` of a retry; a retry withdraws one. The balance
/// starts at `initial` (so a fresh process can retry a little) and is capped.
pub struct RetryBudget {
    ratio: f64,
    cap: f64,
    balance: Mutex<f64>,
}

impl RetryBudget {
    pub fn new(ratio: f64, initial: f64, cap: f64) -> Self {
        Self {
            ratio,
            cap,
            balance: Mutex::new(initial),
        }
    }

    pub fn deposit(&self) {
        let mut b = self.balance.lock().unwrap_or_else(|p| p.into_inner());
        *b = (*b + self.ratio).min(self.cap);
    }

    pub fn try_withdraw(&self) -> bool {
        let mut b = self.balance.lock().unwrap_or_else(|p| p.into_inner());
        if *b >= 1.0 {
            *b -= 1.0;
            true
        } else {
            false
        }
    }
}

/// The longest wait before retry number `attempt` (from 0): `base * 2^attempt`,
/// never more than `cap`.
pub fn ceiling(base: Duration, attempt: u32, cap: Duration) -> Duration {
    base.saturating_mul(1u32 << attempt.min(16)).min(cap)
}

/// Full jitter: a random delay in [0, ceiling).
pub fn backoff(base: Duration, attempt: u32, cap: Duration) -> Duration {
    ceiling(base, attempt, cap).mul_f64(rand::random::<f64>())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_budget_allows_about_one_retry_in_ten_calls() {
        let budget = RetryBudget::new(0.1, 0.0, 10.0);
        let mut retries = 0;
        for _ in 0..100 {
            budget.deposit();
            if budget.try_withdraw() {
                retries += 1;
            }
        }
        assert!((9..=10).contains(&retries), "{retries}");
    }

    #[test]
    fn the_ceiling_doubles_up_to_its_cap() {
        let ms = Duration::from_millis;
        let got: Vec<Duration> = (0..6).map(|a| ceiling(ms(100), a, ms(1000))).collect();
        assert_eq!(
            got,
            [ms(100), ms(200), ms(400), ms(800), ms(1000), ms(1000)]
        );
        assert_eq!(ceiling(ms(100), 40, ms(1000)), ms(1000), "no overflow");
    }

    #[test]
    fn backoff_is_jittered_below_the_ceiling() {
        let ms = Duration::from_millis;
        let delays: Vec<Duration> = (0..200).map(|_| backoff(ms(100), 5, ms(1000))).collect();
        assert!(delays.iter().all(|d| *d < ms(1000)));
        // Full jitter spreads over the whole range, not a fixed delay.
        assert!(delays.iter().any(|d| *d < ms(250)) && delays.iter().any(|d| *d > ms(750)));
    }
}
