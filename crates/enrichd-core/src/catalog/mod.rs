//! The source catalog: sources declared as data (TOML files), never as Rust.
//! An operator adds a site by adding a file; `enrichd sources check` validates
//! a catalog and reports every problem at once.
mod compile;
pub mod import;
pub mod input;
pub mod source;
pub mod spec;
pub mod template;

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

pub use source::Source;

/// The catalog built into the binary: `config/sources/*.toml`, listed by build.rs.
const SHIPPED: &[(&str, &str)] = include!(concat!(env!("OUT_DIR"), "/shipped_catalog.rs"));

/// Source packs shipped in the binary, by name (`config/packs/<name>.toml`),
/// added to the catalog when `sources.packs` names them.
pub const PACKS: &[(&str, &str)] = include!(concat!(env!("OUT_DIR"), "/packs.rs"));

/// The names of the shipped packs.
pub fn pack_names() -> Vec<&'static str> {
    PACKS.iter().map(|(name, _)| *name).collect()
}

/// Every problem found in a catalog.
#[derive(Debug, thiserror::Error)]
pub struct CatalogError {
    pub problems: Vec<String>,
}

impl fmt::Display for CatalogError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        crate::error::write_problems(f, "source catalog", &self.problems)
    }
}

/// Reads secrets (`{env.NAME}`) from the process environment.
pub fn process_env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

/// The secrets (`{env.NAME}`) the catalog's sources name, read once when
/// it was compiled. Shown by name only.
#[derive(Clone, Default)]
pub struct Secrets(Arc<HashMap<String, String>>);

impl fmt::Debug for Secrets {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_set().entries(self.0.keys()).finish()
    }
}

impl Secrets {
    fn read(sources: &[Arc<Source>], env: &dyn Fn(&str) -> Option<String>) -> Self {
        let mut out = HashMap::new();
        for source in sources {
            let source::SourceKind::Http(h) = &source.kind else {
                continue;
            };
            let r = &h.request;
            let names = r
                .url
                .env_vars()
                .chain(r.headers.iter().flat_map(|(_, t)| t.env_vars()))
                .chain(r.optional_headers.iter().flat_map(|(_, t)| t.env_vars()))
                .chain(
                    r.basic_auth
                        .iter()
                        .flat_map(|(u, p)| u.env_vars().chain(p.env_vars())),
                )
                .chain(r.body.iter().flat_map(|(t, _)| t.env_vars()));
            for name in names {
                if let Some(value) = env(name) {
                    out.insert(name.to_owned(), value);
                }
            }
        }
        Self(Arc::new(out))
    }

    pub fn get(&self, name: &str) -> Option<String> {
        self.0.get(name).cloned()
    }
}

#[derive(Debug, Clone, Default)]
pub struct Catalog {
    sources: Vec<Arc<Source>>,
    secrets: Secrets,
    /// Each source's position by id: `get` is asked per profile while
    /// answers are merged and scored.
    index: Arc<HashMap<String, usize>>,
}

fn shipped_files() -> Vec<(PathBuf, String)> {
    SHIPPED
        .iter()
        .map(|(name, text)| {
            (
                PathBuf::from("config/sources").join(name),
                (*text).to_owned(),
            )
        })
        .collect()
}

/// Every `*.toml` file in `dir` (sorted by name) with its text; a directory
/// with none is an error.
fn dir_files(dir: &Path) -> Result<Vec<(PathBuf, String)>, CatalogError> {
    let mut paths: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(|e| CatalogError {
            problems: vec![format!(
                "cannot read catalog directory {}: {e}",
                dir.display()
            )],
        })?
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "toml"))
        .collect();
    paths.sort();
    if paths.is_empty() {
        return Err(CatalogError {
            problems: vec![format!(
                "{}: holds no *.toml file; a catalog declares at least one [[source]]",
                dir.display()
            )],
        });
    }
    let mut problems = Vec::new();
    let mut files = Vec::new();
    for path in paths {
        match std::fs::read_to_string(&path) {
            Ok(text) => files.push((path, text)),
            Err(e) => problems.push(format!("{}: cannot read: {e}", path.display())),
        }
    }
    if problems.is_empty() {
        Ok(files)
    } else {
        Err(CatalogError { problems })
    }
}

impl Catalog {
    /// The catalog shipped in the binary.
    pub fn shipped(purposes: &[String]) -> Result<Self, CatalogError> {
        Self::from_files(&shipped_files(), purposes, &process_env)
    }

    /// Every `*.toml` file in `dir` (sorted by name).
    pub fn load_dir(dir: &Path, purposes: &[String]) -> Result<Self, CatalogError> {
        Self::from_files(&dir_files(dir)?, purposes, &process_env)
    }

    /// The shipped catalog or the one in `dir`, with the named packs.
    pub fn configured(
        dir: Option<&Path>,
        packs: &[String],
        purposes: &[String],
    ) -> Result<Self, CatalogError> {
        let mut files = match dir {
            Some(dir) => dir_files(dir)?,
            None => shipped_files(),
        };
        for name in packs {
            let Some((_, text)) = PACKS.iter().find(|(n, _)| n == name) else {
                return Err(CatalogError {
                    problems: vec![format!(
                        "sources.packs: no pack {name:?} (the packs: {})",
                        pack_names().join(", ")
                    )],
                });
            };
            files.push((
                PathBuf::from(format!("config/packs/{name}.toml")),
                (*text).to_owned(),
            ));
        }
        Self::from_files(&files, purposes, &process_env)
    }

    /// Compiles catalog files given as (path, text).
    pub fn from_files(
        files: &[(PathBuf, String)],
        purposes: &[String],
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Self, CatalogError> {
        let mut problems = Vec::new();
        let mut sources: Vec<Arc<Source>> = Vec::new();
        let mut seen: BTreeMap<String, PathBuf> = BTreeMap::new();
        for (path, text) in files {
            let file = path.display().to_string();
            let value: toml::Value = match toml::from_str(text) {
                Ok(v) => v,
                Err(e) => {
                    problems.push(format!("{file}: {}", e.to_string().trim()));
                    continue;
                }
            };
            // Each source is read on its own, so one bad declaration does not
            // hide the problems of the others.
            let mut specs = Vec::new();
            match value {
                toml::Value::Table(mut table) => {
                    let entries = match table.remove("source") {
                        Some(toml::Value::Array(entries)) => entries,
                        Some(_) => {
                            problems.push(format!(
                                "{file}: `source` must be an array of tables ([[source]])"
                            ));
                            Vec::new()
                        }
                        None => Vec::new(),
                    };
                    for key in table.keys() {
                        problems.push(format!(
                            "{file}: {key}: unknown key (declare sources as [[source]])"
                        ));
                    }
                    for (i, entry) in entries.into_iter().enumerate() {
                        let id = entry
                            .get("id")
                            .and_then(|v| v.as_str())
                            .unwrap_or("?")
                            .to_owned();
                        let mut unknown = Vec::new();
                        match serde_ignored::deserialize::<_, _, spec::SourceSpec>(entry, |p| {
                            unknown.push(p.to_string())
                        }) {
                            Ok(spec) => specs.push(spec),
                            Err(e) => problems.push(format!("{file}: source[{i}] {id:?}: {e}")),
                        }
                        for key in unknown {
                            problems
                                .push(format!("{file}: source[{i}] {id:?}: {key}: unknown key"));
                        }
                    }
                }
                _ => problems.push(format!("{file}: not a TOML table")),
            }
            for spec in &specs {
                let mut p = compile::Problems {
                    prefix: format!("{file}: source {:?}", spec.id),
                    out: &mut problems,
                };
                if let Some(previous) = seen.insert(spec.id.clone(), path.clone()) {
                    p.push_dup(&previous);
                }
                if let Some(source) = compile::compile(spec, path, purposes, env, &mut p) {
                    sources.push(Arc::new(source));
                }
            }
        }
        if problems.is_empty() && sources.is_empty() {
            problems.push(
                "the catalog declares no source; a catalog declares at least one [[source]]"
                    .to_owned(),
            );
        }
        if problems.is_empty() {
            let secrets = Secrets::read(&sources, env);
            Ok(Self {
                secrets,
                ..Self::from_sources(sources)
            })
        } else {
            Err(CatalogError { problems })
        }
    }

    /// A catalog of already compiled sources (a subset of another, say).
    pub fn from_sources(sources: Vec<Arc<Source>>) -> Self {
        let mut index = HashMap::new();
        for (i, s) in sources.iter().enumerate() {
            index.entry(s.id.to_string()).or_insert(i);
        }
        Self {
            sources,
            secrets: Secrets::default(),
            index: Arc::new(index),
        }
    }

    /// The same sources with another's secrets (for a subset of it).
    pub fn with_secrets_of(mut self, other: &Catalog) -> Self {
        self.secrets = other.secrets.clone();
        self
    }

    /// The secrets its sources name, as read when it was compiled.
    pub fn secrets(&self) -> &Secrets {
        &self.secrets
    }

    pub fn sources(&self) -> &[Arc<Source>] {
        &self.sources
    }

    pub fn get(&self, id: &str) -> Option<&Arc<Source>> {
        self.index.get(id).map(|&i| &self.sources[i])
    }

    pub fn is_empty(&self) -> bool {
        self.sources.is_empty()
    }

    /// The sources that may reach private origins, with those origins.
    pub fn private_origins(&self) -> impl Iterator<Item = (&str, &[url::Origin])> {
        self.sources
            .iter()
            .filter(|s| !s.network.private_origins.is_empty())
            .map(|s| (&*s.id, s.network.private_origins.as_slice()))
    }
}
