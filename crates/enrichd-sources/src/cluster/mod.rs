//! Several replicas, one budget: what replicas share through Redis (the
//! second cache tier, the sources' rate limits and pauses, erasure news),
//! and what each falls back to when Redis cannot be reached. PostgreSQL
//! stays the source of truth for the ledger and the suppression list; Redis
//! holds nothing that cannot be lost.
//!
//! Redis down never fails a call: the cache is in process only, each
//! source's budget is divided by `cluster.replicas` and enforced locally,
//! and a log line, the `enrichd_cluster_redis_up` metric and the health
//! service `enrichd.cluster` say so until a probe finds Redis again.
mod board;
pub mod cache;
pub mod limits;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use tracing::{info, warn};

/// `[cluster]` settings.
#[derive(Debug, Clone, PartialEq, eserde::Deserialize, serde::Serialize)]
pub struct ClusterConfig {
    /// Redis shared by the replicas; unset: one process, nothing shared.
    #[serde(default)]
    pub redis_url: Option<String>,
    /// Prefix of every key and channel (several deployments, or tests, can
    /// share one Redis).
    pub key_prefix: String,
    /// How many replicas run: while Redis is down each enforces
    /// `1 / replicas` of every source's budget, so together they stay within it.
    pub replicas: u32,
    /// Longest wait for one Redis command before the replica falls back.
    #[serde(with = "humantime_serde")]
    pub redis_timeout: Duration,
}

impl Default for ClusterConfig {
    fn default() -> Self {
        Self {
            redis_url: None,
            key_prefix: "enrichd".into(),
            replicas: 1,
            redis_timeout: Duration::from_millis(250),
        }
    }
}

impl ClusterConfig {
    pub fn problems(&self, ledger_url: &str) -> Vec<String> {
        let mut p = Vec::new();
        if self.replicas == 0 {
            p.push("cluster.replicas: must be at least 1".into());
        }
        if self.key_prefix.is_empty() || self.key_prefix.contains(char::is_whitespace) {
            p.push("cluster.key_prefix: must be a non-empty word without spaces".into());
        }
        if self.redis_timeout.is_zero() {
            p.push("cluster.redis_timeout: must be more than zero".into());
        }
        if let Some(url) = &self.redis_url {
            if let Err(e) = redis::Client::open(url.as_str()) {
                p.push(format!("cluster.redis_url: {e}"));
            }
            if !ledger_url.starts_with("postgres") {
                p.push(
                    "cluster.redis_url: replicas share the ledger and the suppression list, \
                     so ledger.url must name PostgreSQL (postgres://...)"
                        .into(),
                );
            }
        }
        p
    }
}

/// How often a replica that lost Redis tries it again.
const PROBE_EVERY: Duration = Duration::from_millis(500);

/// The replicas' shared store, and whether it can be used right now.
pub struct Cluster {
    client: redis::Client,
    conn: ConnectionManager,
    prefix: String,
    replicas: u32,
    up: AtomicBool,
    /// `up`, as it changes (for health).
    up_news: tokio::sync::watch::Sender<bool>,
    /// Counts erasures other replicas announced (and reconnections, after
    /// which announcements may have been missed).
    erasures: tokio::sync::watch::Sender<u64>,
    /// Dropped with the handle: ends the erasure listener.
    alive: tokio::sync::watch::Sender<()>,
}

impl std::fmt::Debug for Cluster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cluster")
            .field("prefix", &self.prefix)
            .field("up", &self.is_up())
            .finish()
    }
}

impl Cluster {
    /// Connects (lazily: a replica starts while Redis is down, in fallback)
    /// and starts the probe and the erasure listener.
    pub fn start(config: &ClusterConfig) -> Option<Arc<Self>> {
        let url = config.redis_url.as_deref()?;
        let client = redis::Client::open(url).ok()?;
        let manager = ConnectionManagerConfig::new()
            .set_response_timeout(Some(config.redis_timeout))
            .set_connection_timeout(Some(config.redis_timeout))
            .set_number_of_retries(1);
        let conn = ConnectionManager::new_lazy_with_config(client.clone(), manager).ok()?;
        let cluster = Arc::new(Self {
            client,
            conn,
            prefix: config.key_prefix.clone(),
            replicas: config.replicas.max(1),
            // Until the first probe answers.
            up: AtomicBool::new(false),
            up_news: tokio::sync::watch::Sender::new(false),
            erasures: tokio::sync::watch::Sender::new(0),
            alive: tokio::sync::watch::Sender::new(()),
        });
        metrics::gauge!("enrichd_cluster_redis_up").set(0.0);
        probe(Arc::downgrade(&cluster));
        listen(Arc::downgrade(&cluster), cluster.alive.subscribe());
        Some(cluster)
    }

    /// Whether Redis is in use (shared mode).
    pub fn is_up(&self) -> bool {
        self.up.load(Ordering::SeqCst)
    }

    /// Whether Redis is in use, as it changes; closed when the cluster
    /// handle is dropped.
    pub fn up_changes(&self) -> tokio::sync::watch::Receiver<bool> {
        self.up_news.subscribe()
    }

    pub fn replicas(&self) -> u32 {
        self.replicas
    }

    /// A connection for one command, or `None` in fallback.
    pub(crate) fn conn(&self) -> Option<ConnectionManager> {
        self.is_up().then(|| self.conn.clone())
    }

    /// A command failed: fall back until the probe finds Redis again.
    pub(crate) fn failed(&self, e: &redis::RedisError) {
        if self.up.swap(false, Ordering::SeqCst) {
            self.up_news.send_replace(false);
            warn!(error = %e, "Redis unreachable: cache in process only, each source at its local share of the budget");
            metrics::gauge!("enrichd_cluster_redis_up").set(0.0);
        }
    }

    /// The full name of a key.
    pub(crate) fn key(&self, kind: &str, name: &str) -> String {
        format!("{}:{kind}:{name}", self.prefix)
    }

    /// A small shared value (nothing personal), or `None` (absent, or
    /// Redis down).
    pub(crate) async fn get(&self, key: &str) -> Option<String> {
        let mut conn = self.conn()?;
        match redis::cmd("GET").arg(key).query_async(&mut conn).await {
            Ok(value) => value,
            Err(e) => {
                self.failed(&e);
                None
            }
        }
    }

    /// Keeps a small shared value for `ttl` (nothing, with Redis down).
    pub(crate) async fn set_for(&self, key: &str, value: &str, ttl: Duration) {
        let Some(mut conn) = self.conn() else {
            return;
        };
        let ms = u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX).max(1);
        let set: Result<(), _> = redis::cmd("SET")
            .arg(key)
            .arg(value)
            .arg("PX")
            .arg(ms)
            .query_async(&mut conn)
            .await;
        if let Err(e) = set {
            self.failed(&e);
        }
    }

    fn channel(&self) -> String {
        format!("{}:erasures", self.prefix)
    }

    /// Tells every replica that the suppression list changed (they read it
    /// from PostgreSQL at once, and drop what they cached of the people
    /// newly on it).
    pub async fn announce_erasure(&self) {
        let Some(mut conn) = self.conn() else { return };
        let sent: Result<i64, _> = redis::cmd("PUBLISH")
            .arg(self.channel())
            .arg("suppression")
            .query_async(&mut conn)
            .await;
        if let Err(e) = sent {
            self.failed(&e);
        }
    }

    /// Changes when another replica announces an erasure; closed when the
    /// cluster handle is dropped.
    pub fn erasure_news(&self) -> tokio::sync::watch::Receiver<u64> {
        self.erasures.subscribe()
    }
}

/// Pings Redis while it is down; when it answers, shared mode resumes.
fn probe(cluster: Weak<Cluster>) {
    tokio::spawn(async move {
        let mut first = true;
        loop {
            let Some(c) = cluster.upgrade() else { return };
            if !c.is_up() {
                let mut conn = c.conn.clone();
                let pong: Result<String, _> = redis::cmd("PING").query_async(&mut conn).await;
                if let Err(e) = &pong
                    && std::mem::take(&mut first)
                {
                    // The address only: the URL may hold a password.
                    warn!(
                        redis = %c.client.get_connection_info().addr(),
                        error = %e,
                        "Redis does not answer at start: this replica works alone (its own \
                         cache, 1/replicas of each budget) until it does"
                    );
                }
                first = false;
                if pong.is_ok() && !c.up.swap(true, Ordering::SeqCst) {
                    c.up_news.send_replace(true);
                    info!("Redis reachable: cache, rate limits and erasure news shared");
                    metrics::gauge!("enrichd_cluster_redis_up").set(1.0);
                    // Whatever was announced while away is read now.
                    c.erasures.send_modify(|n| *n += 1);
                }
            }
            drop(c);
            tokio::time::sleep(PROBE_EVERY).await;
        }
    });
}

/// Subscribes to the erasure channel (again after every loss of Redis),
/// until the handle is dropped.
fn listen(cluster: Weak<Cluster>, mut alive: tokio::sync::watch::Receiver<()>) {
    use futures::StreamExt;
    tokio::spawn(async move {
        loop {
            let Some(c) = cluster.upgrade() else { return };
            let (client, channel) = (c.client.clone(), c.channel());
            drop(c);
            if let Ok(mut pubsub) = client.get_async_pubsub().await
                && pubsub.subscribe(&channel).await.is_ok()
            {
                let mut messages = pubsub.on_message();
                loop {
                    tokio::select! {
                        message = messages.next() => {
                            let Some(_) = message else { break };
                            let Some(c) = cluster.upgrade() else { return };
                            c.erasures.send_modify(|n| *n += 1);
                        }
                        _ = alive.changed() => return,
                    }
                }
            }
            tokio::select! {
                _ = tokio::time::sleep(PROBE_EVERY) => {}
                _ = alive.changed() => return,
            }
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replicas_need_a_postgresql_ledger_and_a_valid_redis_url() {
        let config = ClusterConfig {
            redis_url: Some("redis://127.0.0.1:6379".into()),
            ..ClusterConfig::default()
        };
        let sqlite = config.problems("sqlite:///tmp/l.db?mode=rwc");
        assert_eq!(sqlite.len(), 1, "{sqlite:?}");
        assert!(sqlite[0].starts_with("cluster.redis_url:") && sqlite[0].contains("PostgreSQL"));
        assert!(config.problems("postgres://u@h/db").is_empty());

        let bad = ClusterConfig {
            redis_url: Some("http://nowhere".into()),
            replicas: 0,
            ..ClusterConfig::default()
        };
        let problems = bad.problems("postgres://u@h/db");
        assert!(
            problems.iter().any(|p| p.starts_with("cluster.redis_url:")),
            "{problems:?}"
        );
        assert!(
            problems.iter().any(|p| p.starts_with("cluster.replicas:")),
            "{problems:?}"
        );
        // One process: nothing to check against the ledger.
        assert!(ClusterConfig::default().problems("sqlite://x").is_empty());
    }
}
