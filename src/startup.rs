//! Start-up shared by the server, the command line, the tests and the
//! bench: the hash key, the catalog (configured or sandbox), and an
//! in-process service.
use std::sync::Arc;

use tracing::{info, warn};

use crate::api::grpc::EnrichmentService;
use crate::catalog::{Catalog, CatalogError};
use crate::config::Config;
use crate::pipeline::{BuildError, Enricher, Settings};
use crate::privacy::KeyedHasher;
use crate::sandbox::Sandbox;

#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    // (The causes are in the messages, not the errors' chains: printed
    // with its chain, an error said its cause twice.)
    #[error("cannot read or create the hash key file {path}: {cause}")]
    HashKey {
        path: std::path::PathBuf,
        cause: std::io::Error,
    },
    #[error("cannot create the data directory {path}: {cause}")]
    DataDir {
        path: std::path::PathBuf,
        cause: std::io::Error,
    },
    #[error(
        "there is no ledger at {0}: enrichd has recorded nothing there. Is the data \
         directory right (--data-dir, storage.data_dir, ledger.url)?"
    )]
    NoLedger(std::path::PathBuf),
    #[error("{}", crate::error::problems_text("state paths", .0))]
    Paths(Vec<String>),
    #[error("cannot start the sandbox: {0}")]
    Sandbox(#[source] std::io::Error),
    #[error(transparent)]
    Catalog(#[from] CatalogError),
    #[error(transparent)]
    Build(#[from] BuildError),
}

/// The catalog the config names: its directory, or the shipped one.
pub fn configured_catalog(config: &Config) -> Result<Catalog, CatalogError> {
    Catalog::configured(
        config.sources.catalog.as_deref(),
        &config.sources.packs,
        &config.purpose_ids(),
    )
}

/// Checks, before anything is created, that the data directory, the SQLite
/// ledger and the key file can be where the configuration puts them: each
/// problem names its key, and a failure leaves nothing behind.
pub fn check_paths(config: &Config) -> Result<(), StartupError> {
    use std::path::Path;
    fn check(key: &str, path: &Path, want_dir: bool, out: &mut Vec<String>) {
        if let Ok(meta) = std::fs::metadata(path) {
            match (want_dir, meta.is_dir()) {
                (true, false) => out.push(format!("{key}: {} is not a directory", path.display())),
                (false, true) => out.push(format!("{key}: {} is a directory", path.display())),
                _ => {}
            }
            return;
        }
        // The nearest ancestor that exists must be a directory for the
        // rest to be created in it.
        if let Some(blocker) = path
            .ancestors()
            .skip(1)
            .find(|a| a.exists() || a.is_symlink())
        {
            if !blocker.is_dir() {
                out.push(format!(
                    "{key}: {} cannot be created: {} is not a directory",
                    path.display(),
                    blocker.display()
                ));
            }
        }
    }
    let mut problems = Vec::new();
    check(
        "storage.data_dir",
        &config.storage.data_dir,
        true,
        &mut problems,
    );
    if let Some(ledger) = config.sqlite_path() {
        check("ledger.url", &ledger, false, &mut problems);
    }
    if config.privacy.hash_key.is_none() {
        check(
            "privacy.hash_key_file",
            &config.privacy.hash_key_file,
            false,
            &mut problems,
        );
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(StartupError::Paths(problems))
    }
}

/// Creates the data directory (mode 0700) and says where state lives.
pub fn prepare_data_dir(config: &Config) -> Result<(), StartupError> {
    check_paths(config)?;
    let dir = &config.storage.data_dir;
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder.create(dir).map_err(|cause| StartupError::DataDir {
        path: dir.clone(),
        cause,
    })?;
    info!(
        data_dir = %dir.display(),
        ledger = %config.sqlite_path().map_or_else(|| "(database server)".to_owned(), |p| p.display().to_string()),
        hash_key_file = %config.privacy.hash_key_file.display(),
        "state"
    );
    Ok(())
}

/// The key file's directory, created if missing.
fn key_file_dir(config: &Config) -> Result<(), StartupError> {
    match config.privacy.hash_key_file.parent() {
        Some(dir) if !dir.as_os_str().is_empty() && !dir.exists() => prepare_data_dir(config),
        _ => Ok(()),
    }
}

/// For commands that read what enrichd recorded (access, erase): the
/// SQLite ledger must exist already; an empty new one would answer
/// "nothing recorded" for anyone.
pub fn existing_ledger(config: &Config) -> Result<(), StartupError> {
    match config.sqlite_path() {
        Some(path) if !path.exists() => Err(StartupError::NoLedger(path)),
        _ => Ok(()),
    }
}

/// The configured hash key, or the key file's (created on first use, so
/// keyed hashes in the ledger and the suppression list stay stable).
pub fn hasher(config: &Config) -> Result<KeyedHasher, StartupError> {
    if let Some(key) = &config.privacy.hash_key {
        return Ok(KeyedHasher::inline(key));
    }
    check_paths(config)?;
    key_file_dir(config)?;
    let path = &config.privacy.hash_key_file;
    let (hasher, created) =
        KeyedHasher::load_or_create(path).map_err(|cause| StartupError::HashKey {
            path: path.clone(),
            cause,
        })?;
    if created {
        warn!(
            file = %path.display(),
            "privacy.hash_key is not set: created a key file; in production set \
             privacy.hash_key from a secret store so every replica shares it"
        );
    }
    Ok(hasher)
}

/// The catalog to run: the sandbox's (whose servers must stay alive as long
/// as the catalog is used), or the configured one. In sandbox mode MX
/// checks go to the sandbox's own DNS server and SMTP checks to its own
/// exchanger, so nothing leaves the process.
pub async fn catalog(
    config: &mut Config,
    sandbox: bool,
) -> Result<(Catalog, Option<Sandbox>), StartupError> {
    if sandbox {
        let sb = Sandbox::start().await.map_err(StartupError::Sandbox)?;
        info!(addr = %sb.addr(), dns = %sb.dns_addr(), "sandbox sites and DNS serving on loopback");
        config.dns.nameservers = vec![sb.dns_addr()];
        sb.smtp_config(&mut config.smtp);
        Ok((sb.catalog(&config.purpose_ids())?, Some(sb)))
    } else {
        Ok((configured_catalog(config)?, None))
    }
}

/// The pipeline with the configured settings, hash key and `catalog`.
pub async fn enricher(config: &Config, catalog: Catalog) -> Result<Enricher, StartupError> {
    prepare_data_dir(config)?;
    Ok(Enricher::build(Settings::from_config(config), hasher(config)?, catalog).await?)
}

/// A service for in-process commands: the configured catalog (or the
/// sandbox's), ledger and keys.
pub async fn local_service(
    config: &Config,
    sandbox: bool,
) -> Result<(EnrichmentService, Option<Sandbox>), StartupError> {
    let mut config = config.clone();
    let (catalog, sb) = catalog(&mut config, sandbox).await?;
    let enricher = enricher(&config, catalog).await?;
    let service = EnrichmentService::new(Arc::new(enricher), config.sources.deadline)
        .with_batch(config.batch.clone());
    Ok((service, sb))
}
