//! Loading: the shipped defaults, then an optional file, then `ENRICHD__`
//! environment variables; every problem reported at once, each with its key
//! and where its value came from.
use std::path::Path;

use figment::Figment;
use figment::providers::{Env, Format, Toml};

use super::{Config, ConfigError, ENV_PREFIX, SHIPPED};

/// `path` from the working directory.
pub(crate) fn absolute(path: &Path) -> Result<std::path::PathBuf, ConfigError> {
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
pub(crate) fn every_problem(value: &figment::value::Value, figment: &Figment) -> Vec<String> {
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
pub(crate) fn unknown_keys(value: &figment::value::Value) -> Vec<String> {
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
pub(crate) fn set_at(
    value: &mut figment::value::Value,
    path: &str,
    new: Option<figment::value::Value>,
) {
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
pub(crate) fn known_keys() -> Vec<String> {
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

pub(crate) fn collect_keys(dict: &figment::value::Dict, prefix: &str, out: &mut Vec<String>) {
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
pub(crate) fn did_you_mean(known: &[String], unknown: &str) -> Option<String> {
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

    /// The config file used when none is named (`--config`,
    /// `ENRICHD_CONFIG`): the user's (`$XDG_CONFIG_HOME/enrichd/enrichd.toml`,
    /// usually `~/.config/enrichd/enrichd.toml`), else the system's
    /// (`/etc/enrichd/enrichd.toml`), the first that exists.
    pub fn default_file() -> Option<std::path::PathBuf> {
        let user = directories::ProjectDirs::from("", "", "enrichd")
            .map(|dirs| dirs.config_dir().join("enrichd.toml"));
        user.into_iter()
            .chain(std::iter::once(std::path::PathBuf::from(
                "/etc/enrichd/enrichd.toml",
            )))
            .find(|path| path.is_file())
    }

    /// Whether the operator's own settings (the config `file` or the
    /// environment), not the shipped defaults, set `key` ("auth.required").
    pub fn operator_sets(file: Option<&Path>, key: &str) -> bool {
        let mut figment = Figment::new();
        if let Some(path) = file {
            figment = figment.merge(Toml::file(path));
        }
        figment = figment.merge(Env::prefixed(ENV_PREFIX).split("__"));
        figment.find_value(key).is_ok()
    }

    /// Shipped defaults, then a TOML string (tests, embedded use).
    pub fn from_toml(overrides: &str) -> Result<Self, ConfigError> {
        Self::from_figment(Figment::from(Toml::string(SHIPPED)).merge(Toml::string(overrides)))
    }

    pub(crate) fn from_figment(figment: Figment) -> Result<Self, ConfigError> {
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
    pub(crate) fn resolve_paths(&mut self) -> Result<(), ConfigError> {
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
    pub(crate) fn default_paths(&self) -> (String, std::path::PathBuf) {
        let db = self.storage.data_dir.join("ledger.db");
        (
            format!("sqlite://{}?mode=rwc", db.display()),
            self.storage.data_dir.join("hash.key"),
        )
    }
}
