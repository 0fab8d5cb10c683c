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
use serde::Serialize;

use crate::auth::AuthConfig;
use crate::cache::CacheConfig;
use crate::fetch::HttpConfig;
use crate::identity::Region;
use crate::ledger::LedgerConfig;
pub use crate::model::PurposeConfig;
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
    #[serde(with = "humantime_serde")]
    pub deadline: Duration,
    /// Share (0..=1) of the sources asked that must answer (found or not
    /// found) before an empty answer means "not found"; below it the answer
    /// is incomplete.
    pub min_coverage: f64,
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
        let config: Config = match value.deserialize() {
            Ok(config) => config,
            Err(first) => {
                let mut problems = every_problem(&value, &figment);
                if problems.is_empty() {
                    problems.push(first.to_string());
                }
                return Err(ConfigError { problems });
            }
        };
        let mut problems = unknown_keys(&value);
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
        let known = crate::catalog::pack_names();
        for pack in &self.sources.packs {
            if !known.contains(&pack.as_str()) {
                p.push(format!(
                    "sources.packs: no pack {pack:?} (the packs: {})",
                    known.join(", ")
                ));
            }
        }
        let b = &self.batch;
        if b.max_job_rows == 0 {
            p.push("batch.max_job_rows: must be at least 1".into());
        }
        if b.max_running_jobs == 0 {
            p.push("batch.max_running_jobs: must be at least 1".into());
        }
        if b.max_upload_bytes < 1024 {
            p.push("batch.max_upload_bytes: must be at least 1024".into());
        }
        for origin in &b.webhook_private_origins {
            let ok = url::Url::parse(origin).is_ok_and(|u| {
                matches!(u.scheme(), "http" | "https") && u.host().is_some() && u.path() == "/"
            });
            if !ok {
                p.push(format!(
                    "batch.webhook_private_origins: {origin:?} is not an origin \
                     (scheme://host[:port], e.g. \"http://10.0.0.7:8080\")"
                ));
            }
        }
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
        // The HTTP port speaks plain HTTP/1.1: beside a TLS gRPC port, off
        // loopback, it would take the same API keys in the clear.
        if let (Some(_), Some(addr)) = (&s.tls, s.http_listen)
            && !addr.ip().is_loopback()
        {
            p.push(format!(
                "server.http_listen: {addr} would serve plain HTTP (API keys in the clear) while \
                 [server.tls] protects the gRPC port; listen on a loopback address behind a \
                 TLS-terminating proxy, or leave it unset"
            ));
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

/// Every problem in a configuration that does not deserialize, each with
/// its key path and where the value came from (file, environment variable):
/// every value of the wrong type or shape (serde stops at the first; eserde
/// visits the whole document), then every unknown key (serde_ignored, over
/// the document with the wrong values set back to their defaults).
fn every_problem(value: &figment::value::Value, figment: &Figment) -> Vec<String> {
    let Ok(text) = toml::to_string(value) else {
        return Vec::new();
    };
    let Err(errors) = eserde::toml::from_str::<Config>(&text) else {
        return Vec::new();
    };
    let defaults = Figment::from(Toml::string(SHIPPED))
        .extract::<figment::value::Value>()
        .ok();
    let mut repaired = value.clone();
    let mut problems = Vec::new();
    for e in errors.iter() {
        let path = e.path().map(|p| p.to_string()).unwrap_or_default();
        let from = figment
            .find_metadata(&path)
            .map(|m| match &m.source {
                // The path as configured (figment would print it relative
                // to the working directory).
                Some(figment::Source::File(path)) => format!(" (from {})", path.display()),
                Some(source) => format!(" (from {source})"),
                None => format!(" (from {})", m.name),
            })
            .unwrap_or_default();
        problems.push(format!("{path}: {}{from}", e.message().trim()));
        // The value's key, not an element of it ("a.b[2]" is "a.b").
        let key = path.split('[').next().unwrap_or_default();
        let default = defaults.as_ref().and_then(|d| d.find_ref(key)).cloned();
        set_at(&mut repaired, key, default);
    }
    problems.extend(unknown_keys(&repaired));
    problems
}

/// Every key of `value` that `Config` does not read, with a guess at the
/// key meant.
fn unknown_keys(value: &figment::value::Value) -> Vec<String> {
    let mut unknown = Vec::new();
    let _ = serde_ignored::deserialize::<_, _, Config>(value, |p| unknown.push(p.to_string()));
    if unknown.is_empty() {
        return unknown;
    }
    let known = known_keys();
    unknown
        .into_iter()
        .map(|key| match did_you_mean(&known, &key) {
            Some(guess) => format!("{key}: unknown key; did you mean {guess}?"),
            None => format!("{key}: unknown key"),
        })
        .collect()
}

/// Puts `new` at the dotted `path` of `value`, or removes the key there.
fn set_at(value: &mut figment::value::Value, path: &str, new: Option<figment::value::Value>) {
    let mut node = value;
    let mut segments = path.split('.').peekable();
    while let Some(segment) = segments.next() {
        let figment::value::Value::Dict(_, dict) = node else {
            return;
        };
        if segments.peek().is_none() {
            match new {
                Some(v) => {
                    dict.insert(segment.to_owned(), v);
                }
                None => {
                    dict.remove(segment);
                }
            }
            return;
        }
        match dict.get_mut(segment) {
            Some(next) => node = next,
            None => return,
        }
    }
}

/// Every key path the configuration knows: the shipped file's and the
/// defaults' (which include the optional keys the shipped file leaves out).
fn known_keys() -> Vec<String> {
    let mut keys = Vec::new();
    let shipped = Figment::from(Toml::string(SHIPPED));
    let Ok(config) = shipped.extract::<Config>() else {
        return keys;
    };
    let defaults = Figment::from(figment::providers::Serialized::defaults(config));
    for figment in [shipped, defaults] {
        if let Ok(figment::value::Value::Dict(_, dict)) = figment.extract::<figment::value::Value>()
        {
            collect_keys(&dict, "", &mut keys);
        }
    }
    keys.sort();
    keys.dedup();
    keys
}

fn collect_keys(dict: &figment::value::Dict, prefix: &str, out: &mut Vec<String>) {
    for (key, value) in dict {
        let path = if prefix.is_empty() {
            key.clone()
        } else {
            format!("{prefix}.{key}")
        };
        if let figment::value::Value::Dict(_, inner) = value {
            collect_keys(inner, &path, out);
        }
        out.push(path);
    }
}

/// The known key closest to an unknown one among its siblings (same parent,
/// or the same place in another entry of a table of tables such as
/// `purposes`), if one is close enough to be a slip.
fn did_you_mean(known: &[String], unknown: &str) -> Option<String> {
    let (parent, leaf) = unknown.rsplit_once('.').unwrap_or(("", unknown));
    let depth = unknown.matches('.').count();
    let grand = parent.rsplit_once('.').map_or("", |(g, _)| g);
    known
        .iter()
        .filter_map(|k| {
            let (k_parent, k_leaf) = k.rsplit_once('.').unwrap_or(("", k.as_str()));
            let sibling = k_parent == parent
                || (k.matches('.').count() == depth
                    && k_parent.rsplit_once('.').map_or("", |(g, _)| g) == grand
                    && !grand.is_empty());
            let distance = strsim::damerau_levenshtein(leaf, k_leaf);
            (sibling && distance > 0 && distance <= 2.max(leaf.len() / 4)).then(|| {
                (
                    distance,
                    format!(
                        "{parent}{}{k_leaf}",
                        if parent.is_empty() { "" } else { "." }
                    ),
                )
            })
        })
        .min()
        .map(|(_, guess)| guess)
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
        let err = Config::load(Some(Path::new("/nonexistent/enrichd.toml"))).expect_err("missing");
        assert!(err.to_string().contains("/nonexistent/enrichd.toml"));
    }
}
