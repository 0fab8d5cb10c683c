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
use std::time::Duration;

use sqlx::{Any, AnyPool, Row, Transaction};

use super::LedgerError;
use super::feedback::{FeedbackChange, Refuted, read_changes};

/// How many follow periods a copy is trusted without a successful check
/// (5 s at the default 200 ms).
const TRUST_CHECKS: u32 = 25;

const VERSION: &str = "SELECT value FROM ledger_meta WHERE name = 'suppression_version'";

/// The counter as a number, for a row's `version` (a subquery).
pub(super) const VERSION_NUMBER: &str =
    "SELECT CAST(value AS BIGINT) FROM ledger_meta WHERE name = 'suppression_version'";

pub(super) struct Suppressions {
    state: RwLock<State>,
    trust_for: Duration,
    /// Subjects another process suppressed, as this copy learns of them
    /// (this process's caches drop what they held of them).
    news: tokio::sync::broadcast::Sender<String>,
    /// People whose refuted findings another process changed (this
    /// process's memos of their answers are dropped).
    refutation_news: tokio::sync::broadcast::Sender<String>,
    /// Whether the last check reached the database.
    reachable: tokio::sync::watch::Sender<bool>,
}

struct State {
    version: String,
    scopes: HashMap<Subject, Scopes>,
    /// Findings held out of each person's profiles (`feedback`).
    refuted: HashMap<Subject, Vec<Refuted>>,
    checked: tokio::time::Instant,
}

impl State {
    /// One feedback row, in the order they were given: the latest verdict
    /// on a finding wins. Whether the person's refutations changed.
    fn apply(&mut self, row: FeedbackChange) -> bool {
        if row.subject.is_empty() {
            return false;
        }
        let list = self.refuted.entry(Subject::of(&row.subject)).or_default();
        let before = list.len();
        list.retain(|r| !r.same_finding(&row.refuted));
        let removed = list.len() != before;
        if row.holds_out {
            list.push(row.refuted);
            return true;
        }
        removed
    }
}

/// A subject as the copy keeps it: a keyed hash (64 hex digits) as its 32
/// bytes, anything else as written. With a million suppressions the copy
/// held 420 MB as strings; this is a fixed-size key and no allocation.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Subject {
    Hash([u8; 32]),
    Other(Box<str>),
}

impl Subject {
    fn of(subject: &str) -> Self {
        let mut bytes = [0; 32];
        let lower = subject.bytes().all(|b| !b.is_ascii_uppercase());
        match hex::decode_to_slice(subject, &mut bytes) {
            Ok(()) if lower => Self::Hash(bytes),
            _ => Self::Other(subject.into()),
        }
    }

    fn text(&self) -> String {
        match self {
            Self::Hash(bytes) => hex::encode(bytes),
            Self::Other(text) => text.to_string(),
        }
    }
}

/// A subject's scopes: the two the service writes as bits, any other by name.
#[derive(Debug, Clone, Default)]
struct Scopes {
    bits: u8,
    other: Vec<Box<str>>,
}

const KNOWN_SCOPES: [&str; 2] = [
    enrichd_core::compliance::suppression::ALL_PURPOSES,
    enrichd_core::compliance::suppression::MARKETING,
];

impl Scopes {
    fn has(&self, scope: &str) -> bool {
        match KNOWN_SCOPES.iter().position(|k| *k == scope) {
            Some(i) => self.bits & (1 << i) != 0,
            None => self.other.iter().any(|o| **o == *scope),
        }
    }

    /// Adds `scope`; whether it is new.
    fn add(&mut self, scope: &str) -> bool {
        if self.has(scope) {
            return false;
        }
        match KNOWN_SCOPES.iter().position(|k| *k == scope) {
            Some(i) => self.bits |= 1 << i,
            None => self.other.push(scope.into()),
        }
        true
    }

    fn names(&self) -> Vec<String> {
        KNOWN_SCOPES
            .iter()
            .enumerate()
            .filter(|(i, _)| self.bits & (1 << i) != 0)
            .map(|(_, k)| (*k).to_owned())
            .chain(self.other.iter().map(|o| o.to_string()))
            .collect()
    }

    fn contains_all_of(&self, other: &Scopes) -> bool {
        other.bits & !self.bits == 0 && other.other.iter().all(|o| self.has(o))
    }
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
    use futures::TryStreamExt;
    let version = version(pool).await?;
    // Row by row: the whole list fetched at once was a second copy of it.
    let mut rows = sqlx::query("SELECT subject, scope FROM suppression").fetch(pool);
    let mut scopes: HashMap<Subject, Scopes> = HashMap::new();
    while let Some(row) = rows.try_next().await? {
        let (subject, scope): (String, String) = (row.try_get("subject")?, row.try_get("scope")?);
        scopes.entry(Subject::of(&subject)).or_default().add(&scope);
    }
    scopes.shrink_to_fit();
    let mut state = State {
        version,
        scopes,
        refuted: HashMap::new(),
        checked: tokio::time::Instant::now(),
    };
    for change in read_changes(pool, None).await? {
        state.apply(change);
    }
    Ok(state)
}

/// The rows added under a counter past `after` (and those written without
/// one, until the next change gives them its counter), as (subject, scope).
/// A change commits its row with the counter it moved (the counter's row is
/// locked until then), so every row under a counter a reader has seen is
/// visible to it.
async fn read_since(pool: &AnyPool, after: i64) -> Result<Vec<(String, String)>, sqlx::Error> {
    sqlx::query("SELECT subject, scope FROM suppression WHERE version > $1 OR version = 0")
        .bind(after)
        .fetch_all(pool)
        .await?
        .iter()
        .map(|row| Ok((row.try_get("subject")?, row.try_get("scope")?)))
        .collect()
}

impl Suppressions {
    pub(super) async fn load(pool: &AnyPool, every: Duration) -> Result<Arc<Self>, LedgerError> {
        Ok(Arc::new(Self {
            state: RwLock::new(read(pool).await?),
            trust_for: every * TRUST_CHECKS,
            news: tokio::sync::broadcast::channel(1024).0,
            refutation_news: tokio::sync::broadcast::channel(1024).0,
            reachable: tokio::sync::watch::Sender::new(true),
        }))
    }

    pub(super) async fn reload(&self, pool: &AnyPool) -> Result<(), LedgerError> {
        let fresh = read(pool).await?;
        let news: Vec<String> = {
            let state = self.state.read().unwrap_or_else(|p| p.into_inner());
            fresh
                .scopes
                .iter()
                .filter(|(subject, scopes)| {
                    state
                        .scopes
                        .get(*subject)
                        .is_none_or(|known| !known.contains_all_of(scopes))
                })
                .map(|(subject, _)| subject.text())
                .collect()
        };
        // The old copy is freed after the lock is let go.
        let old = std::mem::replace(
            &mut *self.state.write().unwrap_or_else(|p| p.into_inner()),
            fresh,
        );
        drop(old);
        for subject in news {
            let _ = self.news.send(subject);
        }
        Ok(())
    }

    /// People whose refuted findings changed in another process.
    pub(super) fn refutation_news(&self) -> tokio::sync::broadcast::Receiver<String> {
        self.refutation_news.subscribe()
    }

    /// Adds feedback this process committed; whether the person's held-out
    /// findings changed.
    pub(super) fn add_feedback(&self, change: FeedbackChange) -> bool {
        self.state
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .apply(change)
    }

    /// Forgets a person's refutations (erased).
    pub(super) fn forget_refuted(&self, subject: &str) {
        self.state
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .refuted
            .remove(&Subject::of(subject));
    }

    /// The findings held out of a person's profiles.
    pub(super) fn refuted(&self, subject: &str) -> Vec<Refuted> {
        let state = self.state.read().unwrap_or_else(|p| p.into_inner());
        state
            .refuted
            .get(&Subject::of(subject))
            .cloned()
            .unwrap_or_default()
    }

    /// Whether the database answered the last check, as it changes.
    pub(super) fn reachable(&self) -> tokio::sync::watch::Receiver<bool> {
        self.reachable.subscribe()
    }

    /// Subjects newly suppressed by other processes, from now on.
    pub(super) fn news(&self) -> tokio::sync::broadcast::Receiver<String> {
        self.news.subscribe()
    }

    /// Adds a change this process committed.
    pub(super) fn add(&self, subject: &str, scope: &str) {
        let mut state = self.state.write().unwrap_or_else(|p| p.into_inner());
        state
            .scopes
            .entry(Subject::of(subject))
            .or_default()
            .add(scope);
    }

    /// The scopes a subject is suppressed for.
    pub(super) fn scopes(&self, subject: &str) -> Result<Vec<String>, LedgerError> {
        let state = self.state.read().unwrap_or_else(|p| p.into_inner());
        if state.checked.elapsed() > self.trust_for {
            return Err(LedgerError::Write(
                "the suppression list could not be checked against the database".into(),
            ));
        }
        Ok(state
            .scopes
            .get(&Subject::of(subject))
            .map(Scopes::names)
            .unwrap_or_default())
    }

    /// Whether `subject` is suppressed for `purpose` (the copy as it stands).
    pub(super) fn stops(&self, subject: &str, purpose: &str) -> bool {
        let state = self.state.read().unwrap_or_else(|p| p.into_inner());
        state
            .scopes
            .get(&Subject::of(subject))
            .is_some_and(|scopes| {
                enrichd_core::compliance::suppression::stops_where(|s| scopes.has(s), purpose)
            })
    }

    /// The counter as this copy knows it.
    pub(super) fn version(&self) -> String {
        let state = self.state.read().unwrap_or_else(|p| p.into_inner());
        state.version.clone()
    }

    /// One check of the counter; when it moved, the rows added since.
    /// Returns how many rows it read.
    pub(super) async fn follow_once(&self, pool: &AnyPool) -> Result<usize, LedgerError> {
        let now = version(pool).await?;
        let known = self.version();
        if now == known {
            self.state
                .write()
                .unwrap_or_else(|p| p.into_inner())
                .checked = tokio::time::Instant::now();
            return Ok(0);
        }
        let (Ok(after), Ok(now_n)) = (known.parse::<i64>(), now.parse::<i64>()) else {
            self.reload(pool).await?;
            return Ok(self
                .state
                .read()
                .unwrap_or_else(|p| p.into_inner())
                .scopes
                .len());
        };
        let added = read_since(pool, after).await?;
        let feedback = read_changes(pool, Some(after)).await?;
        let read = added.len() + feedback.len();
        let mut news = Vec::new();
        let mut refuted_news = Vec::new();
        {
            let mut state = self.state.write().unwrap_or_else(|p| p.into_inner());
            for (subject, scope) in added {
                let scopes = state.scopes.entry(Subject::of(&subject)).or_default();
                if scopes.add(&scope) {
                    news.push(subject);
                }
            }
            for change in feedback {
                let subject = change.subject.clone();
                if state.apply(change) {
                    refuted_news.push(subject);
                }
            }
            // Another check may have got further meanwhile: never back.
            if !matches!(state.version.parse::<i64>(), Ok(v) if v >= now_n) {
                state.version = now;
            }
            state.checked = tokio::time::Instant::now();
        }
        for subject in news {
            let _ = self.news.send(subject);
        }
        for subject in refuted_news {
            let _ = self.refutation_news.send(subject);
        }
        Ok(read)
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
            // Said once when the database goes out of reach and once when
            // it is back, not at every check.
            match list.follow_once(&pool).await {
                Ok(_) => {
                    if list.reachable.send_replace(true) {
                        continue;
                    }
                    tracing::info!("the ledger database answers again");
                }
                Err(e) => {
                    if !list.reachable.send_replace(false) {
                        continue;
                    }
                    tracing::warn!(
                        error = %e,
                        "the ledger database does not answer: calls are refused until it does"
                    );
                }
            }
        }
    });
}

#[cfg(test)]
mod tests {
    use super::super::Ledger;
    use super::{Scopes, Subject};
    use enrichd_core::compliance::suppression::{ALL_PURPOSES, MARKETING};

    #[test]
    fn a_kept_subject_and_its_scopes_read_back_as_written() {
        let hash = "0123456789abcdef".repeat(4);
        assert!(matches!(Subject::of(&hash), Subject::Hash(_)));
        assert_eq!(Subject::of(&hash).text(), hash);
        for other in [hash.to_uppercase(), "s1".to_owned(), hash[..62].to_owned()] {
            assert_eq!(Subject::of(&other), Subject::Other(other.clone().into()));
            assert_eq!(Subject::of(&other).text(), other);
        }
        let mut scopes = Scopes::default();
        assert!(scopes.add(MARKETING) && scopes.add("research") && !scopes.add(MARKETING));
        assert_eq!(scopes.names(), [MARKETING, "research"]);
        assert!(scopes.has("research") && !scopes.has(ALL_PURPOSES));
        let mut all = Scopes::default();
        all.add(ALL_PURPOSES);
        assert!(!all.contains_all_of(&scopes) && scopes.contains_all_of(&Scopes::default()));
    }

    /// A process following the list reads the rows added since the counter
    /// it knows, not the whole list again (with a million suppressions that
    /// took seconds on every change, and every call waited), and the rows a
    /// process of an earlier version writes without a counter too.
    #[tokio::test]
    async fn a_follower_reads_only_what_changed() {
        let dir = tempfile::tempdir().expect("tempdir");
        let url = format!("sqlite://{}?mode=rwc", dir.path().join("l.db").display());
        let one = Ledger::open(&url).await.expect("opens");
        // Another process's copy, followed by this test alone.
        let pool = Ledger::open(&url).await.expect("opens").pool;
        let other = super::Suppressions::load(&pool, std::time::Duration::from_secs(1))
            .await
            .expect("loads");
        for n in 0..500 {
            one.suppress(&format!("s{n}"), MARKETING, "OBJ", 1)
                .await
                .expect("suppressed");
        }
        let follows = || async { other.follow_once(&pool).await.expect("follows") };
        assert_eq!(follows().await, 500, "all of them, once");
        assert_eq!(follows().await, 0, "no change, nothing read");
        one.erase("s7", "DSR", 2).await.expect("erased");
        one.suppress("new", MARKETING, "OBJ", 2)
            .await
            .expect("suppressed");
        assert_eq!(follows().await, 2, "the two rows added");
        assert!(other.stops("s7", "research") && other.stops("new", MARKETING));

        // A row written without a counter, as an earlier version does.
        let mut tx = one.pool.begin().await.expect("begins");
        sqlx::query("INSERT INTO suppression (subject, scope, at_ms, reference) VALUES ('old', 'all', 3, 'DSR')")
            .execute(&mut *tx)
            .await
            .expect("inserted");
        super::bump(&mut tx).await.expect("bumped");
        tx.commit().await.expect("commits");
        assert_eq!(follows().await, 1);
        assert!(other.stops("old", MARKETING));
        // The next change gives it a counter: read once more, then no longer.
        one.suppress("newer", MARKETING, "OBJ", 4)
            .await
            .expect("suppressed");
        assert_eq!(follows().await, 2, "the new row and the adopted one");
        one.suppress("newest", MARKETING, "OBJ", 5)
            .await
            .expect("suppressed");
        assert_eq!(follows().await, 1);
    }
}
