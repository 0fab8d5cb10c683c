//! Configuration: the shipped defaults (`config/enrichd.toml`, built into the
//! binary), then an optional file, then `ENRICHD__`-prefixed environment
//! variables. `validate()` reports every problem at once.
use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use figment::Figment;
use figment::providers::{Env, Format, Toml};
use serde::{Deserialize, Serialize};

use crate::auth::AuthConfig;
use crate::cache::CacheConfig;
use crate::fetch::HttpConfig;
use crate::identity::Region;
use crate::ledger::LedgerConfig;
use crate::model::{FIELDS, LawfulBasis};
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

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
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
    pub reference: ReferencePaths,
    #[serde(default)]
    pub scoring: ScoringPaths,
    pub purposes: BTreeMap<String, PurposeConfig>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct SourcesConfig {
    #[serde(default)]
    pub catalog: Option<std::path::PathBuf>,
    pub max_depth: u32,
    #[serde(with = "humantime_serde")]
    pub deadline: Duration,
    /// Share (0..=1) of the sources asked that must answer (found or not
    /// found) before an empty answer means "not found"; below it the answer
    /// is incomplete.
    pub min_coverage: f64,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ServerConfig {
    pub listen: SocketAddr,
    #[serde(default)]
    pub metrics_listen: Option<SocketAddr>,
    /// JSON over HTTP (the same API as gRPC); unset: gRPC only.
    #[serde(default)]
    pub http_listen: Option<SocketAddr>,
    pub max_concurrent_requests: usize,
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
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct StorageConfig {
    /// Empty: the platform's data directory. Absolute once loaded.
    #[serde(default)]
    pub data_dir: std::path::PathBuf,
}

/// `[server.tls]`: PEM files.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct TlsConfig {
    pub cert: std::path::PathBuf,
    pub key: std::path::PathBuf,
    /// Clients may present a certificate signed by this CA (mTLS).
    #[serde(default)]
    pub client_ca: Option<std::path::PathBuf>,
}

#[derive(Clone, Serialize, Deserialize, PartialEq)]
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

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default)]
pub struct PhoneConfig {
    #[serde(default)]
    pub default_region: Option<String>,
}

/// `[batch]` settings: streamed enrichment.
#[derive(Debug, Clone, PartialEq, serde::Deserialize, serde::Serialize)]
pub struct BatchConfig {
    /// Requests of one stream in progress at once.
    pub max_in_flight: usize,
    /// Answers buffered for a slow reader before reading stops.
    pub buffer: usize,
    /// Budget of each streamed request: it waits for rate-limit slots within it.
    #[serde(with = "humantime_serde")]
    pub deadline: Duration,
}

impl Default for BatchConfig {
    fn default() -> Self {
        Self {
            max_in_flight: 32,
            buffer: 16,
            deadline: Duration::from_secs(120),
        }
    }
}

fn all_fields() -> Vec<String> {
    FIELDS.iter().map(|f| f.to_string()).collect()
}

/// A purpose as declared in config.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PurposeConfig {
    pub description: String,
    /// The lawful bases a caller may rely on for this purpose.
    pub lawful_bases: Vec<LawfulBasis>,
    /// How long records of this processing are kept.
    #[serde(with = "humantime_serde")]
    pub retention: Duration,
    /// Data-protection impact assessment reference.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dpia_ref: Option<String>,
    /// Response fields it may return (default: all).
    #[serde(default = "all_fields")]
    pub fields: Vec<String>,
    /// Sources it may ask (default: every source whose catalog entry lists
    /// the purpose).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sources: Option<Vec<String>>,
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
        Self::from_figment(Figment::from(Toml::string(SHIPPED)))
            .expect("the shipped configuration is valid (tested)")
    }
}

impl Config {
    /// Shipped defaults, then `file` (if any), then the environment, then
    /// `data_dir` (the command line's `--data-dir`).
    pub fn load_with(file: Option<&Path>, data_dir: Option<&Path>) -> Result<Self, ConfigError> {
        let mut config = Self::load(file)?;
        if let Some(dir) = data_dir {
            // Paths that came from the old data directory follow the new
            // one; a ledger URL or key file configured on purpose stays.
            let (ledger, key) = config.default_paths();
            if config.ledger.url == ledger {
                config.ledger.url.clear();
            }
            if config.privacy.hash_key_file == key {
                config.privacy.hash_key_file = std::path::PathBuf::new();
            }
            config.storage.data_dir = absolute(dir)?;
            config.resolve_paths()?;
        }
        Ok(config)
    }

    /// Shipped defaults, then `file` (if any), then the environment.
    pub fn load(file: Option<&Path>) -> Result<Self, ConfigError> {
        let mut figment = Figment::from(Toml::string(SHIPPED));
        if let Some(path) = file {
            if !path.exists() {
                return Err(ConfigError::one(format!(
                    "config file {} does not exist",
                    path.display()
                )));
            }
            figment = figment.merge(Toml::file(path));
        }
        figment = figment.merge(Env::prefixed(ENV_PREFIX).split("__"));
        Self::from_figment(figment)
    }

    /// Shipped defaults, then a TOML string (tests, embedded use).
    pub fn from_toml(overrides: &str) -> Result<Self, ConfigError> {
        Self::from_figment(Figment::from(Toml::string(SHIPPED)).merge(Toml::string(overrides)))
    }

    fn from_figment(figment: Figment) -> Result<Self, ConfigError> {
        let value: figment::value::Value = figment.extract().map_err(|e| ConfigError {
            problems: e.into_iter().map(|e| e.to_string()).collect(),
        })?;
        let mut unknown = Vec::new();
        let config: Config =
            match serde_ignored::deserialize(&value, |path| unknown.push(path.to_string())) {
                Ok(config) => config,
                // Figment's own extraction names the key and where its value came from.
                Err(plain) => {
                    let problems = match figment.extract::<Config>() {
                        Err(e) => e.into_iter().map(|e| e.to_string()).collect(),
                        Ok(_) => vec![plain.to_string()],
                    };
                    return Err(ConfigError { problems });
                }
            };
        let mut problems: Vec<String> = unknown
            .into_iter()
            .map(|key| format!("{key}: unknown key"))
            .collect();
        problems.extend(config.problems());
        if !problems.is_empty() {
            return Err(ConfigError { problems });
        }
        let mut config = config;
        config.resolve_paths()?;
        Ok(config)
    }

    /// Makes `storage.data_dir` absolute (the platform's data directory when
    /// empty) and puts the ledger and the key file there unless configured.
    fn resolve_paths(&mut self) -> Result<(), ConfigError> {
        self.storage.data_dir = if self.storage.data_dir.as_os_str().is_empty() {
            directories::ProjectDirs::from("", "", "enrichd")
                .map(|dirs| dirs.data_dir().to_owned())
                .ok_or_else(|| {
                    ConfigError::one(
                        "storage.data_dir: no platform data directory (is HOME set?); set it",
                    )
                })?
        } else {
            absolute(&self.storage.data_dir)?
        };
        let (ledger, key) = self.default_paths();
        if self.ledger.url.trim().is_empty() {
            self.ledger.url = ledger;
        }
        if self.privacy.hash_key_file.as_os_str().is_empty() {
            self.privacy.hash_key_file = key;
        } else {
            self.privacy.hash_key_file = absolute(&self.privacy.hash_key_file)?;
        }
        Ok(())
    }

    /// The ledger URL and key file that `storage.data_dir` implies.
    fn default_paths(&self) -> (String, std::path::PathBuf) {
        let db = self.storage.data_dir.join("ledger.db");
        (
            format!("sqlite://{}?mode=rwc", db.display()),
            self.storage.data_dir.join("hash.key"),
        )
    }

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

    /// Semantic checks that types alone cannot express.
    fn problems(&self) -> Vec<String> {
        let mut p = Vec::new();
        let s = &self.server;
        if s.max_concurrent_requests == 0 {
            p.push("server.max_concurrent_requests: must be at least 1".into());
        }
        if s.max_request_bytes < 1024 {
            p.push("server.max_request_bytes: must be at least 1024".into());
        }
        if s.request_timeout.is_zero() {
            p.push("server.request_timeout: must be more than zero".into());
        }
        if s.max_connections == 0 {
            p.push("server.max_connections: must be at least 1".into());
        }
        if s.max_concurrent_streams == 0 {
            p.push("server.max_concurrent_streams: must be at least 1".into());
        }
        for (name, value) in [
            ("idle_timeout", s.idle_timeout),
            ("http2_keepalive_interval", s.http2_keepalive_interval),
            ("http2_keepalive_timeout", s.http2_keepalive_timeout),
            ("stream_idle_timeout", s.stream_idle_timeout),
            ("stream_max_duration", s.stream_max_duration),
        ] {
            if value.is_zero() {
                p.push(format!("server.{name}: must be more than zero"));
            }
        }
        if let Some(problem) = self.anonymous_problem() {
            p.push(problem);
        }
        for (name, client) in &self.auth.clients {
            if client.scopes.is_empty() {
                p.push(format!(
                    "auth.clients.{name:?}.scopes: name at least one scope"
                ));
            }
            for purpose in &client.purposes {
                if !self.purposes.contains_key(purpose) {
                    p.push(format!(
                        "auth.clients.{name:?}.purposes: {purpose:?} is not a declared purpose"
                    ));
                }
            }
        }
        if !self.auth.clients.is_empty()
            && self
                .server
                .tls
                .as_ref()
                .is_none_or(|t| t.client_ca.is_none())
        {
            p.push("auth.clients: client certificates need server.tls.client_ca".into());
        }
        p.extend(self.cluster.problems(&self.ledger.url));
        for (name, value) in [
            ("sweep_every", self.ledger.sweep_every),
            ("follow_every", self.ledger.follow_every),
        ] {
            if value.is_zero() {
                p.push(format!("ledger.{name}: must be more than zero"));
            }
        }
        if self.sources.max_depth > 5 {
            p.push("sources.max_depth: at most 5".into());
        }
        if self.sources.deadline.is_zero() {
            p.push("sources.deadline: must be more than zero".into());
        }
        if self.http.max_body_bytes < 1024 {
            p.push("http.max_body_bytes: must be at least 1024".into());
        }
        let b = &self.resilience.breaker;
        if b.consecutive_failures == 0 || b.window == 0 || b.trial_calls == 0 {
            p.push("resilience.breaker: consecutive_failures, window and trial_calls must be at least 1".into());
        }
        if !(0.0..=1.0).contains(&b.failure_rate) {
            p.push("resilience.breaker.failure_rate: must be within 0..=1".into());
        }
        if !(0.0..=1.0).contains(&self.sources.min_coverage) {
            p.push("sources.min_coverage: must be within 0..=1".into());
        }
        if !(0.0..=1.0).contains(&self.resilience.retry_ratio) {
            p.push("resilience.retry_ratio: must be within 0..=1".into());
        }
        if self.dns.timeout.is_zero() {
            p.push("dns.timeout: must be more than zero".into());
        }
        if let Some(key) = &self.privacy.hash_key
            && (key.split_whitespace().next().is_none()
                || key.split_whitespace().any(|k| k.len() < 32))
        {
            p.push(
                "privacy.hash_key: must be at least 32 characters (after a rotation: keys of \
                 at least 32 characters separated by spaces)"
                    .into(),
            );
        }
        if let Some(region) = &self.phone.default_region
            && let Err(e) = region.parse::<Region>()
        {
            p.push(format!("phone.default_region: {e}"));
        }
        if self.purposes.is_empty() {
            p.push("purposes: at least one purpose must be declared".into());
        }
        for (id, purpose) in &self.purposes {
            if id.is_empty()
                || !id
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
            {
                p.push(format!(
                    "purposes.{id}: ids use lowercase letters, digits and '_' only"
                ));
            }
            if purpose.description.trim().is_empty() {
                p.push(format!("purposes.{id}.description: must not be empty"));
            }
            if purpose.lawful_bases.is_empty() {
                p.push(format!(
                    "purposes.{id}.lawful_bases: at least one lawful basis is required"
                ));
            }
            if purpose.lawful_bases.contains(&LawfulBasis::VitalInterests) {
                p.push(format!(
                    "purposes.{id}.lawful_bases: vital_interests never justifies enrichment"
                ));
            }
            for field in &purpose.fields {
                if !FIELDS.contains(&field.as_str()) {
                    p.push(format!(
                        "purposes.{id}.fields: {field:?} is not a response field ({})",
                        FIELDS.join(", ")
                    ));
                }
            }
            if purpose.retention.is_zero() {
                p.push(format!("purposes.{id}.retention: must be more than zero"));
            }
        }
        p
    }
}

/// `path` from the working directory.
fn absolute(path: &Path) -> Result<std::path::PathBuf, ConfigError> {
    std::path::absolute(path).map_err(|e| {
        ConfigError::one(format!(
            "{}: cannot make the path absolute: {e}",
            path.display()
        ))
    })
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
        ] {
            assert!(text.contains(needle), "missing {needle:?} in:\n{text}");
        }
        assert_eq!(err.problems.len(), 8, "{text}");
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
        let err = Config::load(Some(Path::new("/nonexistent/enrichd.toml"))).expect_err("missing");
        assert!(err.to_string().contains("/nonexistent/enrichd.toml"));
    }
}
