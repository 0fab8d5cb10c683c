//! What feedback and the canary say of each source, as this process knows
//! it: read from the ledger every `feedback.refresh_every` (and at once
//! after this process's own feedback), so every replica demotes the same
//! sources. A demoted source's findings count only when corroborated.
use std::collections::{BTreeMap, HashSet};
use std::sync::{Arc, RwLock};

use chrono::{DateTime, Utc};
use tracing::{info, warn};

use super::FeedbackConfig;
use crate::ledger::{Canary, Ledger, Tally};

/// One source's standing.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct View {
    pub tally: Tally,
    pub demoted: bool,
    /// Why it is demoted, in words.
    pub reason: String,
    pub canary: Option<Canary>,
}

#[derive(Default)]
struct Snapshot {
    tallies: BTreeMap<String, Tally>,
    canaries: BTreeMap<String, Canary>,
    /// Demoted sources and why.
    demoted: BTreeMap<String, String>,
    demoted_set: Arc<HashSet<String>>,
}

pub struct Standing {
    config: FeedbackConfig,
    now: RwLock<Arc<Snapshot>>,
}

impl Standing {
    pub fn new(config: FeedbackConfig) -> Self {
        Self {
            config,
            now: RwLock::default(),
        }
    }

    pub fn config(&self) -> &FeedbackConfig {
        &self.config
    }

    fn snapshot(&self) -> Arc<Snapshot> {
        self.now.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// The sources demoted now.
    pub fn demoted(&self) -> Arc<HashSet<String>> {
        self.snapshot().demoted_set.clone()
    }

    /// One source's standing.
    pub fn of(&self, source_id: &str) -> View {
        let snapshot = self.snapshot();
        let reason = snapshot.demoted.get(source_id).cloned();
        View {
            tally: snapshot.tallies.get(source_id).cloned().unwrap_or_default(),
            demoted: reason.is_some(),
            reason: reason.unwrap_or_default(),
            canary: snapshot.canaries.get(source_id).cloned(),
        }
    }

    /// Why a source with this feedback and canary answer is demoted.
    fn demotion(&self, tally: Option<&Tally>, canary: Option<&Canary>) -> Option<String> {
        if let Some(c) = canary.filter(|c| c.claimed) {
            return Some(format!(
                "it said the random name {:?} exists (canary of {}): it claims every name",
                c.probe,
                DateTime::<Utc>::from_timestamp_millis(c.at_ms)
                    .map(|t| t.to_rfc3339())
                    .unwrap_or_default()
            ));
        }
        let tally = tally?;
        let precision = tally.precision()?;
        (tally.total() >= self.config.min_feedback && precision < self.config.precision_floor).then(
            || {
                format!(
                    "precision {precision:.2} ({} of {} findings confirmed in feedback of the last \
                     {}), under feedback.precision_floor {:.2}",
                    tally.correct,
                    tally.total(),
                    humantime::format_duration(self.config.window),
                    self.config.precision_floor
                )
            },
        )
    }

    /// Reads every source's feedback and canary again. Whether the set of
    /// demoted sources changed (answers held in memory are then stale).
    /// A ledger that does not answer leaves the standing as it was.
    pub async fn refresh(&self, ledger: &Ledger, now: DateTime<Utc>) -> bool {
        let since = now.timestamp_millis()
            - i64::try_from(self.config.window.as_millis()).unwrap_or(i64::MAX);
        let (tallies, canaries) = match (ledger.tallies(since).await, ledger.canaries().await) {
            (Ok(t), Ok(c)) => (t, c),
            (Err(e), _) | (_, Err(e)) => {
                warn!(error = %e, "cannot read the sources' feedback; their standing is kept as it was");
                return false;
            }
        };
        let canaries: BTreeMap<String, Canary> = canaries
            .into_iter()
            .map(|c| (c.source_id.clone(), c))
            .collect();
        let sources: HashSet<&String> = tallies.keys().chain(canaries.keys()).collect();
        let demoted: BTreeMap<String, String> = sources
            .into_iter()
            .filter_map(|s| {
                self.demotion(tallies.get(s), canaries.get(s))
                    .map(|why| (s.clone(), why))
            })
            .collect();
        for (source, tally) in &tallies {
            if let Some(p) = tally.precision() {
                metrics::gauge!("enrichd_source_precision", "source" => source.clone()).set(p);
            }
        }
        let mut guard = self.now.write().unwrap_or_else(|p| p.into_inner());
        let before = guard.clone();
        for (source, why) in &demoted {
            if !before.demoted.contains_key(source) {
                warn!(source = %source, reason = %why,
                    "source demoted: its findings count only when corroborated");
                metrics::gauge!("enrichd_source_demoted", "source" => source.clone()).set(1.0);
            }
        }
        for source in before.demoted.keys() {
            if !demoted.contains_key(source) {
                info!(source = %source, "source no longer demoted");
                metrics::gauge!("enrichd_source_demoted", "source" => source.clone()).set(0.0);
            }
        }
        let changed = before.demoted.keys().ne(demoted.keys());
        let demoted_set = if changed {
            Arc::new(demoted.keys().cloned().collect())
        } else {
            before.demoted_set.clone()
        };
        *guard = Arc::new(Snapshot {
            tallies,
            canaries,
            demoted,
            demoted_set,
        });
        changed
    }
}
