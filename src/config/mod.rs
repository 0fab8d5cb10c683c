//! Configuration: the shipped defaults (`config/enrichd.toml`, built into the
//! binary), then an optional file, then `ENRICHD__`-prefixed environment
//! variables. `validate()` reports every problem at once.
mod load;
mod validate;

use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;
use std::time::Duration;

use serde::Serialize;

use crate::auth::AuthConfig;
use crate::cache::CacheConfig;
use crate::fetch::HttpConfig;
use crate::ledger::LedgerConfig;
pub use crate::model::PurposeConfig;
use crate::reference::ReferencePaths;
use crate::resilience::ResilienceConfig;
use crate::scoring::ScoringPaths;
use crate::telemetry::LogConfig;
use crate::verify::DnsConfig;

/// The shipped configuration: every key with its default and its comment.
pub const SHIPPED: &str = include_str!("../../config/enrichd.toml");

/// Environment variables with this prefix override config keys;
/// `__` separates sections (`ENRICHD__SERVER__LISTEN`).
pub const ENV_PREFIX: &str = "ENRICHD__";

#[derive(Debug, Clone, Serialize, eserde::Deserialize, PartialEq)]
pub struct Config {
    pub server: ServerConfig,
    #[serde(default)]
    pub auth: AuthConfig,
    pub log: LogConfig,
    pub privacy: PrivacyConfig,
    #[serde(default)]
    pub storage: StorageConfig,
    pub dns: DnsConfig,
    pub phone: PhoneConfig,
    pub sources: SourcesConfig,
    pub batch: BatchConfig,
    pub ledger: LedgerConfig,
    pub http: HttpConfig,
    pub cache: CacheConfig,
    pub resilience: ResilienceConfig,
    #[serde(default)]
    pub cluster: crate::cluster::ClusterConfig,
    /// The web console (`/console/` on the HTTP listener).
    #[serde(default)]
    pub console: crate::console::ConsoleConfig,
    /// Feedback on findings: precision, demotion, the canary.
    #[serde(default)]
    pub feedback: crate::feedback::FeedbackConfig,
    /// Audience reports of batch jobs.
    #[serde(default)]
    pub audience: crate::audience::AudienceConfig,
    /// Mailbox deliverability by SMTP (off by default).
    #[serde(default)]
    pub smtp: enrichd_sources::smtp::SmtpConfig,
    #[eserde(compat)]
    pub reference: ReferencePaths,
    #[serde(default)]
    #[eserde(compat)]
    pub scoring: ScoringPaths,
    pub purposes: BTreeMap<String, PurposeConfig>,
}

#[derive(Debug, Clone, Serialize, eserde::Deserialize, PartialEq)]
pub struct SourcesConfig {
    #[serde(default)]
    pub catalog: Option<std::path::PathBuf>,
    /// Source packs shipped in the binary to add (e.g. "whatsmyname").
    #[serde(default)]
    pub packs: Vec<String>,
    pub max_depth: u32,
    /// Pivot inputs taken from one profile (its first links and handles).
    #[serde(default = "pivots_per_profile")]
    pub max_pivots_per_profile: usize,
    /// Pivot inputs one call may add, over every round.
    #[serde(default = "pivots_per_call")]
    pub max_pivots_per_call: usize,
    #[serde(with = "humantime_serde")]
    pub deadline: Duration,
    /// Share (0..=1) of the sources asked that must answer (found or not
    /// found) before an empty answer means "not found"; below it the answer
    /// is incomplete.
    pub min_coverage: f64,
}

fn per_caller() -> usize {
    256
}

fn pivots_per_profile() -> usize {
    crate::engine::PivotLimits::default().per_profile
}

fn pivots_per_call() -> usize {
    crate::engine::PivotLimits::default().per_call
}

#[derive(Debug, Clone, Serialize, eserde::Deserialize, PartialEq)]
pub struct ServerConfig {
    pub listen: SocketAddr,
    #[serde(default)]
    pub metrics_listen: Option<SocketAddr>,
    /// JSON over HTTP (the same API as gRPC); unset: gRPC only.
    #[serde(default)]
    pub http_listen: Option<SocketAddr>,
    pub max_concurrent_requests: usize,
    /// Of those, the most one caller (a key, a certificate) may hold.
    #[serde(default = "per_caller")]
    pub max_concurrent_per_caller: usize,
    #[serde(with = "humantime_serde")]
    pub request_timeout: Duration,
    pub max_request_bytes: usize,
    #[serde(with = "humantime_serde")]
    pub drain_timeout: Duration,
    #[serde(with = "humantime_serde")]
    pub shed_retry_after: Duration,
    /// Open connections at most; more are closed at once.
    pub max_connections: usize,
    /// A connection with no open stream for this long is closed.
    #[serde(with = "humantime_serde")]
    pub idle_timeout: Duration,
    /// Open connections from one client address at most.
    pub max_connections_per_address: usize,
    /// A connection that opens no call this long after it was accepted is
    /// closed (at most `idle_timeout`).
    #[serde(with = "humantime_serde")]
    pub first_call_within: Duration,
    /// HTTP/2 pings to each connection this often; a peer that does not
    /// answer within `http2_keepalive_timeout` is dropped.
    #[serde(with = "humantime_serde")]
    pub http2_keepalive_interval: Duration,
    #[serde(with = "humantime_serde")]
    pub http2_keepalive_timeout: Duration,
    /// Concurrent HTTP/2 streams (calls) per connection.
    pub max_concurrent_streams: u32,
    /// An EnrichStream with nothing in progress that receives no request,
    /// or whose reader takes no answer, for this long is ended.
    #[serde(with = "humantime_serde")]
    pub stream_idle_timeout: Duration,
    /// Any EnrichStream is ended this long after it opened.
    #[serde(with = "humantime_serde")]
    pub stream_max_duration: Duration,
    /// Connections older than this are asked to close (GOAWAY) and closed
    /// after `drain_timeout` more. Unset: no age limit.
    #[serde(default, with = "humantime_serde")]
    pub max_connection_age: Option<Duration>,
    #[serde(default)]
    pub tls: Option<TlsConfig>,
}

/// `[storage]`: where state lives.
#[derive(Debug, Clone, Default, Serialize, eserde::Deserialize, PartialEq)]
pub struct StorageConfig {
    /// Empty: the platform's data directory. Absolute once loaded.
    #[serde(default)]
    pub data_dir: std::path::PathBuf,
}

/// `[server.tls]`: PEM files.
#[derive(Debug, Clone, Serialize, eserde::Deserialize, PartialEq)]
pub struct TlsConfig {
    pub cert: std::path::PathBuf,
    pub key: std::path::PathBuf,
    /// Clients may present a certificate signed by this CA (mTLS).
    #[serde(default)]
    pub client_ca: Option<std::path::PathBuf>,
}

#[derive(Clone, Serialize, eserde::Deserialize, PartialEq)]
pub struct PrivacyConfig {
    #[serde(default)]
    pub hash_key: Option<String>,
    /// Where the key lives when `hash_key` is not set (created on first use;
    /// empty: `hash.key` in `storage.data_dir`).
    #[serde(default)]
    pub hash_key_file: std::path::PathBuf,
}

// The key is a secret: never print it.
impl fmt::Debug for PrivacyConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PrivacyConfig")
            .field("hash_key", &self.hash_key.as_ref().map(|_| "<redacted>"))
            .field("hash_key_file", &self.hash_key_file)
            .finish()
    }
}

#[derive(Debug, Clone, Serialize, eserde::Deserialize, PartialEq, Default)]
pub struct PhoneConfig {
    #[serde(default)]
    pub default_region: Option<String>,
}

/// `[batch]` settings: streamed enrichment.
#[derive(Debug, Clone, PartialEq, eserde::Deserialize, serde::Serialize)]
pub struct BatchConfig {
    /// Requests of one stream in progress at once.
    pub max_in_flight: usize,
    /// Answers buffered for a slow reader before reading stops.
    pub buffer: usize,
    /// Budget of each streamed request: it waits for rate-limit slots within it.
    #[serde(with = "humantime_serde")]
    pub deadline: Duration,
    /// Rows one batch job submitted over HTTP may hold.
    pub max_job_rows: usize,
    /// Bytes of one uploaded list (`POST /v1/batches`).
    pub max_upload_bytes: usize,
    /// Batch jobs that run at once on this server; later ones wait their
    /// turn (RUNNING, no row done yet).
    pub max_running_jobs: usize,
    /// Uploaded lists read and stored at once on this server (each holds
    /// about a hundred megabytes while it is: 100,000 rows took 110 MB);
    /// more are refused with 429 until one is stored.
    pub max_concurrent_uploads: usize,
    /// A finished job and its rows (personal data) are deleted this long
    /// after it finished.
    #[serde(with = "humantime_serde")]
    pub job_retention: Duration,
    /// Origins a job's webhook may reach on a private address (like a
    /// source's `network.private_origins`); empty: public addresses only.
    #[serde(default)]
    pub webhook_private_origins: Vec<String>,
}

impl Default for BatchConfig {
    fn default() -> Self {
        Self {
            max_in_flight: 32,
            buffer: 16,
            deadline: Duration::from_secs(120),
            max_job_rows: 100_000,
            max_upload_bytes: 16 << 20,
            max_running_jobs: 4,
            max_concurrent_uploads: 4,
            job_retention: Duration::from_secs(7 * 86_400),
            webhook_private_origins: Vec::new(),
        }
    }
}

/// Every problem found in a configuration.
#[derive(Debug, thiserror::Error)]
pub struct ConfigError {
    pub problems: Vec<String>,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        crate::error::write_problems(f, "configuration", &self.problems)
    }
}

impl ConfigError {
    fn one(problem: impl Into<String>) -> Self {
        Self {
            problems: vec![problem.into()],
        }
    }
}

impl Default for Config {
    /// The shipped configuration alone.
    fn default() -> Self {
        Self::from_toml("").expect("the shipped configuration is valid (tested)")
    }
}

impl Config {
    /// The SQLite ledger's file, if the ledger is SQLite on a file.
    pub fn sqlite_path(&self) -> Option<std::path::PathBuf> {
        crate::ledger::sqlite_file(&self.ledger.url)
    }

    /// Anonymous callers are allowed only on loopback addresses (gRPC and,
    /// when served, HTTP).
    pub fn anonymous_problem(&self) -> Option<String> {
        if self.auth.required {
            return None;
        }
        let open = std::iter::once(self.server.listen)
            .chain(self.server.http_listen)
            .find(|addr| !addr.ip().is_loopback())?;
        Some(format!(
            "auth.required = false lets anyone who reaches {open} call enrichd; it is \
             allowed only when server.listen and server.http_listen are loopback addresses"
        ))
    }

    /// The declared purpose ids.
    pub fn purpose_ids(&self) -> Vec<String> {
        self.purposes.keys().cloned().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shipped_config_is_valid_and_declares_the_three_purposes() {
        let c = Config::default();
        let ids: Vec<&str> = c.purposes.keys().map(String::as_str).collect();
        assert_eq!(ids, ["crm_enrichment", "fraud_prevention", "marketing"]);
        assert_eq!(c.server.listen.port(), 50051);
        assert!(c.dns.enabled);
    }

    #[test]
    fn a_file_overrides_the_defaults_and_keeps_the_rest() {
        let c = Config::from_toml("[server]\nmax_concurrent_requests = 7\n").expect("valid");
        assert_eq!(c.server.max_concurrent_requests, 7);
        assert_eq!(c.server.request_timeout, Duration::from_secs(30));
    }

    #[test]
    fn plain_http_off_loopback_is_refused_beside_tls() {
        let tls = "[server.tls]\ncert = \"c.pem\"\nkey = \"k.pem\"\n[server]\n";
        let err = Config::from_toml(&format!("{tls}http_listen = \"0.0.0.0:8080\"\n"))
            .expect_err("plain HTTP beside TLS");
        assert!(
            err.to_string()
                .contains("server.http_listen: 0.0.0.0:8080 would serve plain HTTP"),
            "{err}"
        );
        Config::from_toml(&format!("{tls}http_listen = \"127.0.0.1:8080\"\n"))
            .expect("loopback, behind a proxy");
        Config::from_toml("[server]\nhttp_listen = \"0.0.0.0:8080\"\n").expect("no TLS at all");
    }

    #[test]
    fn every_problem_is_reported_at_once() {
        let err = Config::from_toml(
            r#"
            [server]
            max_concurrent_requests = 0
            listn = "x"
            [dns]
            timeout = "0s"
            [phone]
            default_region = "ZZ"
            [batch]
            webhook_private_origins = ["10.0.0.7:8080/hooks"]
            [privacy]
            hash_key = "short"
            [purposes.Bad-Id]
            description = ""
            lawful_bases = ["vital_interests"]
            retention = "1day"
            "#,
        )
        .expect_err("invalid");
        let text = err.to_string();
        for needle in [
            "server.listn: unknown key",
            "server.max_concurrent_requests",
            "dns.timeout",
            "phone.default_region",
            "privacy.hash_key",
            "purposes.Bad-Id: ids use",
            "purposes.Bad-Id.description",
            "purposes.Bad-Id.lawful_bases: vital_interests",
            "batch.webhook_private_origins: \"10.0.0.7:8080/hooks\" is not an origin",
        ] {
            assert!(text.contains(needle), "missing {needle:?} in:\n{text}");
        }
        assert_eq!(err.problems.len(), 9, "{text}");
    }

    #[test]
    fn type_errors_and_unknown_keys_are_all_reported_in_one_pass() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let file = tmp.path().join("enrichd.toml");
        std::fs::write(
            &file,
            r#"
            [server]
            max_concurrent_requests = "many"
            request_timeout = 5
            max_conections = 10
            [dns]
            timeout = "fast"
            [purposes.marketing]
            retenion = "30d"
            [servr]
            listen = "127.0.0.1:1"
            "#,
        )
        .expect("write");
        let err = Config::load(Some(&file)).expect_err("invalid");
        let text = err.to_string();
        let from = format!("(from {})", file.display());
        for needle in [
            format!(
                "server.max_concurrent_requests: invalid type: string \"many\", expected usize {from}"
            ),
            format!(
                "server.request_timeout: invalid type: integer `5`, expected a duration {from}"
            ),
            "dns.timeout: ".to_owned(),
            "server.max_conections: unknown key; did you mean server.max_connections?".to_owned(),
            "purposes.marketing.retenion: unknown key; did you mean purposes.marketing.retention?"
                .to_owned(),
            "servr: unknown key; did you mean server?".to_owned(),
        ] {
            assert!(text.contains(&needle), "missing {needle:?} in:\n{text}");
        }
        assert_eq!(err.problems.len(), 6, "{text}");
    }

    #[test]
    fn an_unknown_key_far_from_any_known_one_gets_no_guess() {
        let err = Config::from_toml("[server]\ncolour = \"blue\"\n").expect_err("invalid");
        assert_eq!(err.problems, ["server.colour: unknown key"]);
    }

    #[test]
    fn type_errors_name_the_key() {
        let err =
            Config::from_toml("[server]\nlisten = \"not an address\"\n").expect_err("invalid");
        assert!(err.to_string().contains("listen"), "{err}");
    }

    #[test]
    fn data_dir_moves_the_default_paths_and_keeps_configured_ones() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let data = tmp.path().join("state");
        let plain = tmp.path().join("plain.toml");
        std::fs::write(&plain, "").expect("write");
        let c = Config::load_with(Some(&plain), Some(&data)).expect("valid");
        assert_eq!(c.storage.data_dir, data);
        assert_eq!(c.sqlite_path(), Some(data.join("ledger.db")));
        assert_eq!(c.privacy.hash_key_file, data.join("hash.key"));

        let pg = tmp.path().join("pg.toml");
        std::fs::write(&pg, "[ledger]\nurl = \"postgres://db.internal/enrichd\"\n").expect("write");
        let c = Config::load_with(Some(&pg), Some(&data)).expect("valid");
        assert_eq!(c.ledger.url, "postgres://db.internal/enrichd");
        assert_eq!(c.privacy.hash_key_file, data.join("hash.key"));
    }

    #[test]
    fn a_missing_file_is_an_error() {
        let err = Config::load(Some(std::path::Path::new("/nonexistent/enrichd.toml")))
            .expect_err("missing");
        assert!(err.to_string().contains("/nonexistent/enrichd.toml"));
    }
}
