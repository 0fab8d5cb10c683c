//! The canary: now and then, each username source is asked for a random
//! name nobody holds (no person's data is ever in it). A source that says
//! it found one claims every name: it is demoted, with the name and its
//! answer as the evidence, until it answers the next canary right. Of the
//! processes on one ledger, one runs each round (`claim_canary_run`).
use std::time::Duration;

use tracing::{info, warn};

use crate::ledger::Canary;
use crate::pipeline::Enricher;

/// `[feedback.canary]` settings.
#[derive(Debug, Clone, PartialEq, serde::Serialize, eserde::Deserialize)]
pub struct CanaryConfig {
    /// Off by default: it sends requests no caller asked for.
    #[serde(default)]
    pub enabled: bool,
    /// How often a round runs (across the replicas of one ledger).
    #[serde(default = "every", with = "humantime_serde")]
    pub every: Duration,
}

fn every() -> Duration {
    Duration::from_secs(24 * 3600)
}

impl Default for CanaryConfig {
    fn default() -> Self {
        Self {
            enabled: false,
            every: every(),
        }
    }
}

impl Enricher {
    /// One canary round, if none ran within `feedback.canary.every` on
    /// this ledger: every username source asked once (each paced by its
    /// own rate limit, through the engine's limiter). Returns how many
    /// sources claimed the name; `None` when another process ran the round.
    pub async fn canary_round(&self) -> Option<usize> {
        let config = &self.standing().config().canary;
        let now = self.clock().utc();
        let every = i64::try_from(config.every.as_millis()).unwrap_or(i64::MAX);
        match self
            .ledger()
            .claim_canary_run(now.timestamp_millis(), every)
            .await
        {
            Ok(true) => {}
            Ok(false) => return None,
            Err(e) => {
                warn!(error = %e, "cannot claim the canary round");
                return None;
            }
        }
        let checks = self.engine().canary().await;
        let mut claimed = 0;
        for check in &checks {
            let at_ms = self.clock().utc().timestamp_millis();
            let canary = Canary {
                source_id: check.source.clone(),
                at_ms,
                claimed: check.got == "found",
                probe: check.account.clone(),
                detail: if check.detail.is_empty() {
                    check.got.clone()
                } else {
                    format!("{}: {}", check.got, check.detail)
                },
            };
            claimed += usize::from(canary.claimed);
            if let Err(e) = self.ledger().put_canary(&canary).await {
                warn!(error = %e, "cannot keep a canary answer");
            }
        }
        info!(asked = checks.len(), claimed, "canary round done");
        if self
            .standing()
            .refresh(self.ledger(), self.clock().utc())
            .await
        {
            self.forget_all_answers();
        }
        Some(claimed)
    }
}
