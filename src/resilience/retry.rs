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

/// Full jitter: a random delay in [0, min(cap, base * 2^attempt)).
pub fn backoff(base: Duration, attempt: u32, cap: Duration) -> Duration {
    let ceiling = base.saturating_mul(1u32 << attempt.min(16)).min(cap);
    ceiling.mul_f64(rand::random::<f64>())
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
    fn backoff_stays_under_its_ceiling() {
        for attempt in 0..6 {
            let d = backoff(Duration::from_millis(100), attempt, Duration::from_secs(1));
            assert!(d < Duration::from_millis(100) * (1 << attempt).min(10));
        }
    }
}
