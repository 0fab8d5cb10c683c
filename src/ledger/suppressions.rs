//! The suppression list in memory: asked on every enrichment (twice), it
//! costs a hash lookup instead of a database round trip. The database stays
//! the source of truth: this process adds its own erasures and objections to
//! the copy before it answers them, and follows a change counter
//! (`ledger_meta.suppression_version`, moved in the same transaction as every
//! change) to pick up other processes' every `ledger.follow_every` (at once
//! when a replica announces one through Redis). A copy that has not been
//! checked against the database for `TRUST_CHECKS` of those is not trusted:
//! enrichment answers UNAVAILABLE rather than risk serving an erased person.
use std::collections::HashMap;
use std::sync::{Arc, RwLock, Weak};
use std::time::{Duration, Instant};

use sqlx::{Any, AnyPool, Row, Transaction};

use super::LedgerError;

/// How many follow periods a copy is trusted without a successful check
/// (5 s at the default 200 ms).
const TRUST_CHECKS: u32 = 25;

const VERSION: &str = "SELECT value FROM ledger_meta WHERE name = 'suppression_version'";

pub(super) struct Suppressions {
    state: RwLock<State>,
    trust_for: Duration,
    /// Subjects another process suppressed, as this copy learns of them
    /// (this process's caches drop what they held of them).
    news: tokio::sync::broadcast::Sender<String>,
}

struct State {
    version: String,
    scopes: HashMap<String, Vec<String>>,
    checked: Instant,
}

/// Moves the change counter: in the transaction of every change to the list.
pub(super) async fn bump(tx: &mut Transaction<'_, Any>) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE ledger_meta SET value = CAST(CAST(value AS BIGINT) + 1 AS TEXT) \
         WHERE name = 'suppression_version'",
    )
    .execute(&mut **tx)
    .await
    .map(drop)
}

async fn version(pool: &AnyPool) -> Result<String, sqlx::Error> {
    sqlx::query(VERSION).fetch_one(pool).await?.try_get("value")
}

/// The counter, then the list: a change between the two reads shows up as a
/// newer counter at the next check, so none is missed.
async fn read(pool: &AnyPool) -> Result<State, sqlx::Error> {
    let version = version(pool).await?;
    let rows = sqlx::query("SELECT subject, scope FROM suppression")
        .fetch_all(pool)
        .await?;
    let mut scopes: HashMap<String, Vec<String>> = HashMap::new();
    for row in rows {
        scopes
            .entry(row.try_get("subject")?)
            .or_default()
            .push(row.try_get("scope")?);
    }
    Ok(State {
        version,
        scopes,
        checked: Instant::now(),
    })
}

impl Suppressions {
    pub(super) async fn load(pool: &AnyPool, every: Duration) -> Result<Arc<Self>, LedgerError> {
        Ok(Arc::new(Self {
            state: RwLock::new(read(pool).await?),
            trust_for: every * TRUST_CHECKS,
            news: tokio::sync::broadcast::channel(1024).0,
        }))
    }

    pub(super) async fn reload(&self, pool: &AnyPool) -> Result<(), LedgerError> {
        let fresh = read(pool).await?;
        let mut state = self.state.write().unwrap_or_else(|p| p.into_inner());
        for (subject, scopes) in &fresh.scopes {
            let known = state.scopes.get(subject);
            if scopes.iter().any(|s| known.is_none_or(|k| !k.contains(s))) {
                let _ = self.news.send(subject.clone());
            }
        }
        *state = fresh;
        Ok(())
    }

    /// Subjects newly suppressed by other processes, from now on.
    pub(super) fn news(&self) -> tokio::sync::broadcast::Receiver<String> {
        self.news.subscribe()
    }

    /// Adds a change this process committed.
    pub(super) fn add(&self, subject: &str, scope: &str) {
        let mut state = self.state.write().unwrap_or_else(|p| p.into_inner());
        let scopes = state.scopes.entry(subject.to_owned()).or_default();
        if !scopes.iter().any(|s| s == scope) {
            scopes.push(scope.to_owned());
        }
    }

    /// The scopes a subject is suppressed for.
    pub(super) fn scopes(&self, subject: &str) -> Result<Vec<String>, LedgerError> {
        let state = self.state.read().unwrap_or_else(|p| p.into_inner());
        if state.checked.elapsed() > self.trust_for {
            return Err(LedgerError::Write(
                "the suppression list could not be checked against the database".into(),
            ));
        }
        Ok(state.scopes.get(subject).cloned().unwrap_or_default())
    }

    /// Whether `subject` is suppressed for `purpose` (the copy as it stands).
    pub(super) fn stops(&self, subject: &str, purpose: &str) -> bool {
        let state = self.state.read().unwrap_or_else(|p| p.into_inner());
        state
            .scopes
            .get(subject)
            .is_some_and(|scopes| crate::compliance::suppression::stops(scopes, purpose))
    }

    /// The counter as this copy knows it.
    pub(super) fn version(&self) -> String {
        let state = self.state.read().unwrap_or_else(|p| p.into_inner());
        state.version.clone()
    }

    /// One check of the counter; the whole list again when it moved.
    pub(super) async fn follow_once(&self, pool: &AnyPool) -> Result<(), LedgerError> {
        let now = version(pool).await?;
        let known = self
            .state
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .version
            .clone();
        if now == known {
            self.state
                .write()
                .unwrap_or_else(|p| p.into_inner())
                .checked = Instant::now();
            Ok(())
        } else {
            self.reload(pool).await
        }
    }
}

/// Follows the database until the ledger is dropped.
pub(super) fn follow(pool: AnyPool, list: Weak<Suppressions>, every: Duration) {
    tokio::spawn(async move {
        let mut every = tokio::time::interval(every);
        every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            every.tick().await;
            let Some(list) = list.upgrade() else { return };
            if let Err(e) = list.follow_once(&pool).await {
                tracing::warn!(error = %e, "cannot check the suppression list for changes");
            }
        }
    });
}
