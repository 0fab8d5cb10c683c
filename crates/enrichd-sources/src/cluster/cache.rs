//! The second cache tier: answers in Redis, shared by the replicas, behind
//! each replica's in-process cache. Same keys (keyed hashes of source,
//! input kind and input, never the input), same lifetimes (the source's TTL
//! plus the stale grace, counted from when the source answered), values in
//! MessagePack. Each subject's lineage (the keys its enrichments used) is a
//! Redis set, so an erasure on any replica removes them all.
//!
//! Concurrent misses for one key across replicas share one upstream call:
//! the first takes a short lock in Redis, the others wait for its answer.
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use redis::AsyncCommands;

use super::Cluster;
use crate::cache::{Answer, Entry};
use enrichd_core::clock::SharedClock;
use enrichd_core::model::{Outcome, Profile};

/// Longest a replica holds the fetch lock of a key (its upstream call is
/// bounded by the source's timeout well before).
const LOCK_FOR: Duration = Duration::from_secs(10);
/// How often a replica waiting for another's fetch looks for its answer.
const POLL_EVERY: Duration = Duration::from_millis(20);

/// What is stored for one entry.
#[derive(serde::Serialize, serde::Deserialize)]
struct Stored {
    source_id: Arc<str>,
    outcome: Outcome,
    detail: Option<String>,
    http_status: Option<u16>,
    profile: Option<Profile>,
    retrieved_at: DateTime<Utc>,
    ttl_ms: u64,
}

pub struct SharedCache {
    cluster: Arc<Cluster>,
    grace: Duration,
    clock: SharedClock,
}

impl SharedCache {
    pub fn new(cluster: Arc<Cluster>, grace: Duration, clock: SharedClock) -> Self {
        Self {
            cluster,
            grace,
            clock,
        }
    }

    fn entry_key(&self, key: &str) -> String {
        self.cluster.key("c", key)
    }

    fn lineage_key(&self, subject: &str) -> String {
        self.cluster.key("l", subject)
    }

    fn lock_key(&self, key: &str) -> String {
        self.cluster.key("k", key)
    }

    /// What is left of an entry's life (TTL and grace) now; `None` if gone.
    fn remaining(&self, entry: &Entry) -> Option<Duration> {
        (entry.ttl() + self.grace).checked_sub(entry.age(self.clock.now()))
    }

    fn decode(&self, bytes: &[u8]) -> Option<Entry> {
        let stored: Stored = rmp_serde::from_slice(bytes).ok()?;
        let answer = Answer {
            outcome: stored.outcome,
            detail: stored.detail,
            http_status: stored.http_status,
            profile: stored.profile,
        };
        let ttl = Duration::from_millis(stored.ttl_ms);
        Some(Entry::restored(
            stored.source_id,
            answer,
            ttl,
            stored.retrieved_at,
            &self.clock,
        ))
    }

    /// The entry another replica stored under `key`, if any.
    pub async fn get(&self, key: &str) -> Option<Entry> {
        let mut conn = self.cluster.conn()?;
        match conn.get::<_, Option<Vec<u8>>>(self.entry_key(key)).await {
            Ok(bytes) => self.decode(&bytes?),
            Err(e) => {
                self.cluster.failed(&e);
                None
            }
        }
    }

    /// Stores an entry for every replica, in `subject`'s lineage.
    pub async fn put(&self, key: &str, entry: &Entry, subject: &str) {
        let Some(mut conn) = self.cluster.conn() else {
            return;
        };
        let Some(left) = self.remaining(entry) else {
            return;
        };
        let stored = Stored {
            source_id: entry.source_id.clone(),
            outcome: entry.outcome,
            detail: entry.detail.as_deref().map(str::to_owned),
            http_status: entry.http_status,
            profile: entry.profile.as_deref().cloned(),
            retrieved_at: entry.retrieved_at,
            ttl_ms: u64::try_from(entry.ttl().as_millis()).unwrap_or(u64::MAX),
        };
        let Ok(bytes) = rmp_serde::to_vec_named(&stored) else {
            return;
        };
        let ms = millis(left);
        let mut pipe = redis::pipe();
        pipe.atomic()
            .cmd("SET")
            .arg(self.entry_key(key))
            .arg(bytes)
            .arg("PX")
            .arg(ms)
            .ignore();
        self.add_lineage(&mut pipe, key, subject, ms);
        pipe.del(self.lock_key(key)).ignore();
        let done: Result<(), _> = pipe.query_async(&mut conn).await;
        if let Err(e) = done {
            self.cluster.failed(&e);
        }
    }

    /// The lineage lives as long as the longest entry in it.
    fn add_lineage(&self, pipe: &mut redis::Pipeline, key: &str, subject: &str, ms: u64) {
        let lineage = self.lineage_key(subject);
        pipe.sadd(&lineage, key).ignore();
        for how in ["NX", "GT"] {
            pipe.cmd("PEXPIRE").arg(&lineage).arg(ms).arg(how).ignore();
        }
    }

    /// Adds an entry to another subject's lineage (a pivot or guess that
    /// two people's enrichments both used).
    pub async fn tie(&self, key: &str, entry: &Entry, subject: &str) {
        let (Some(mut conn), Some(left)) = (self.cluster.conn(), self.remaining(entry)) else {
            return;
        };
        let mut pipe = redis::pipe();
        self.add_lineage(&mut pipe, key, subject, millis(left));
        let done: Result<(), _> = pipe.query_async(&mut conn).await;
        if let Err(e) = done {
            self.cluster.failed(&e);
        }
    }

    /// Takes the fetch lock of `key`, or waits for the replica holding it
    /// to store its answer. `None`: this replica fetches (it holds the lock,
    /// the holder gave up or Redis is unavailable); `Some`: the answer
    /// another replica fetched.
    pub async fn lock_or_wait(&self, key: &str, deadline: tokio::time::Instant) -> Option<Entry> {
        let lock = self.lock_key(key);
        loop {
            let mut conn = self.cluster.conn()?;
            let taken: Result<Option<String>, _> = redis::cmd("SET")
                .arg(&lock)
                .arg(1)
                .arg("NX")
                .arg("PX")
                .arg(millis(LOCK_FOR))
                .query_async(&mut conn)
                .await;
            match taken {
                // Taken: unless the answer was stored between this
                // replica's miss and its lock (the holder stores, then
                // lets go), this replica fetches.
                Ok(Some(_)) => {
                    let stored = self.get(key).await;
                    if stored.is_some() {
                        self.unlock(key).await;
                    }
                    return stored;
                }
                Ok(None) => {}
                Err(e) => {
                    self.cluster.failed(&e);
                    return None;
                }
            }
            // Another replica is fetching: its answer, or its lock's end.
            while tokio::time::Instant::now() + POLL_EVERY < deadline {
                tokio::time::sleep(POLL_EVERY).await;
                if let Some(entry) = self.get(key).await {
                    return Some(entry);
                }
                let mut conn = self.cluster.conn()?;
                match conn.exists::<_, bool>(&lock).await {
                    Ok(true) => {}
                    Ok(false) => break,
                    Err(e) => {
                        self.cluster.failed(&e);
                        return None;
                    }
                }
            }
            if tokio::time::Instant::now() + POLL_EVERY >= deadline {
                return None;
            }
        }
    }

    /// Lets the next replica fetch `key` (this one's call failed).
    pub async fn unlock(&self, key: &str) {
        if let Some(mut conn) = self.cluster.conn()
            && let Err(e) = conn.del::<_, ()>(self.lock_key(key)).await
        {
            self.cluster.failed(&e);
        }
    }

    /// The keys in `subject`'s lineage with their entries (those present).
    pub async fn of_subject(&self, subject: &str) -> Vec<(String, Entry)> {
        let Some(mut conn) = self.cluster.conn() else {
            return Vec::new();
        };
        let keys: Vec<String> = match conn.smembers(self.lineage_key(subject)).await {
            Ok(keys) => keys,
            Err(e) => {
                self.cluster.failed(&e);
                return Vec::new();
            }
        };
        if keys.is_empty() {
            return Vec::new();
        }
        let full: Vec<String> = keys.iter().map(|k| self.entry_key(k)).collect();
        let values: Vec<Option<Vec<u8>>> = match conn.mget(&full).await {
            Ok(values) => values,
            Err(e) => {
                self.cluster.failed(&e);
                return Vec::new();
            }
        };
        keys.into_iter()
            .zip(values)
            .filter_map(|(k, v)| Some((k, self.decode(&v?)?)))
            .collect()
    }

    /// Removes every entry in `subject`'s lineage, and the lineage.
    /// Returns the keys that were in it.
    pub async fn forget(&self, subject: &str) -> Vec<String> {
        let Some(mut conn) = self.cluster.conn() else {
            return Vec::new();
        };
        let lineage = self.lineage_key(subject);
        let keys: Vec<String> = match conn.smembers(&lineage).await {
            Ok(keys) => keys,
            Err(e) => {
                self.cluster.failed(&e);
                return Vec::new();
            }
        };
        let mut doomed: Vec<String> = keys.iter().map(|k| self.entry_key(k)).collect();
        doomed.push(lineage);
        if let Err(e) = conn.del::<_, ()>(doomed).await {
            self.cluster.failed(&e);
        }
        keys
    }

    /// Removes these entries (an enrichment overtaken by an erasure).
    pub async fn drop_entries(&self, keys: &[String]) {
        if keys.is_empty() {
            return;
        }
        let Some(mut conn) = self.cluster.conn() else {
            return;
        };
        let full: Vec<String> = keys.iter().map(|k| self.entry_key(k)).collect();
        if let Err(e) = conn.del::<_, ()>(full).await {
            self.cluster.failed(&e);
        }
    }
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX).max(1)
}

/// `text` with the glob characters of Redis's `SCAN MATCH` escaped.
fn glob_literal(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if matches!(c, '*' | '?' | '[' | ']' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// Keys removed per UNLINK while clearing.
const CLEAR_CHUNK: usize = 500;

/// Removes every shared cache entry and lineage under the configured
/// prefix (nothing without `[cluster]`); returns how many keys. A hash-key
/// rotation does this: entries and lineages named by the old key's hashes
/// could no longer be served, nor be found by an erasure, and would keep
/// people's findings in Redis until they expire.
pub async fn clear(config: &super::ClusterConfig) -> Result<u64, redis::RedisError> {
    let Some(url) = config.redis_url.as_deref() else {
        return Ok(0);
    };
    let timeouts = redis::AsyncConnectionConfig::new()
        .set_connection_timeout(Some(config.redis_timeout))
        .set_response_timeout(Some(config.redis_timeout));
    let mut scan = redis::Client::open(url)?
        .get_multiplexed_async_connection_with_config(&timeouts)
        .await?;
    let mut unlink = scan.clone();
    let mut removed = 0;
    for kind in ["c", "l"] {
        let pattern = format!("{}:{kind}:*", glob_literal(&config.key_prefix));
        let options = redis::ScanOptions::default()
            .with_pattern(pattern)
            .with_count(CLEAR_CHUNK);
        let mut keys = scan.scan_options::<String>(options).await?;
        let mut chunk = Vec::with_capacity(CLEAR_CHUNK);
        loop {
            let next = keys.next_item().await.transpose()?;
            let done = next.is_none();
            chunk.extend(next);
            if chunk.len() >= CLEAR_CHUNK || (done && !chunk.is_empty()) {
                let n: u64 = redis::cmd("UNLINK")
                    .arg(&chunk)
                    .query_async(&mut unlink)
                    .await?;
                removed += n;
                chunk.clear();
            }
            if done {
                break;
            }
        }
    }
    Ok(removed)
}
