//! SQLite's upkeep: the file made private, the write-ahead log folded
//! back beside the writer (not inside a commit), checkpoints and backups.
use std::time::Duration;

use sqlx::{AnyPool, Row};

use super::{Ledger, LedgerError, suppressions};

/// The file of a `sqlite://PATH?...` URL (none for memory databases).
pub fn sqlite_file(url: &str) -> Option<std::path::PathBuf> {
    let rest = url.strip_prefix("sqlite://")?;
    let path = rest.split('?').next().unwrap_or(rest);
    (!path.is_empty() && !path.contains(":memory:")).then(|| path.into())
}

/// Creates `path` empty with mode 0600 (and its directory, 0700) unless it
/// exists.
pub(crate) fn create_private(path: &std::path::Path) -> std::io::Result<()> {
    if path.exists() {
        return Ok(());
    }
    if let Some(dir) = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty() && !d.exists())
    {
        let mut builder = std::fs::DirBuilder::new();
        builder.recursive(true);
        #[cfg(unix)]
        std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
        builder.create(dir)?;
    }
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    match options.open(path) {
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        other => other.map(drop),
    }
}

/// How often a SQLite ledger's write-ahead log is folded into its file.
pub(crate) const CHECKPOINT_EVERY: Duration = Duration::from_millis(500);

/// Pages the write-ahead log may hold before a checkpoint restarts it
/// (64 MiB of 4 KiB pages).
pub(crate) const WAL_RESTART_PAGES: i64 = 16_384;

/// What a SQLite write-ahead log file is cut back to when it restarts
/// (`journal_size_limit`).
pub(crate) const WAL_KEPT_BYTES: i64 = 64 << 20;

/// Folds the write-ahead log into the database file in the background
/// until the ledger (`alive`) is dropped (`fold_wal`). SQLite's own automatic
/// checkpoint is off: it runs inside the commit that crosses its threshold,
/// and that commit, with every call in its group, waited for the copy and
/// the sync.
pub(crate) fn checkpoints(pool: AnyPool, alive: std::sync::Weak<suppressions::Suppressions>) {
    tokio::spawn(async move {
        let mut every = tokio::time::interval(CHECKPOINT_EVERY);
        every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            every.tick().await;
            if alive.strong_count() == 0 {
                return;
            }
            if let Err(e) = fold_wal(&pool, WAL_RESTART_PAGES).await {
                tracing::warn!(error = %e, "cannot checkpoint the ledger's write-ahead log");
            }
        }
    });
}

/// One checkpoint: PASSIVE (beside the writer and the readers, waiting for
/// neither), then, if the log holds more than `restart_pages`, RESTART.
/// Returns the pages the log held.
///
/// A PASSIVE checkpoint copies the log as far as it stood when it began;
/// the log starts over from its beginning only when a write finds all of it
/// copied. Under steady load a commit always came first, so the log only
/// grew: 675 MB after 14 s of `enrichd-bench hot`, 6.9 GB after a sweep of
/// 1.5 million records, and a restart then waited for all of it to be
/// copied. RESTART holds the next write back while it copies what the
/// PASSIVE one left (little) and makes that write start the log over.
pub(crate) async fn fold_wal(pool: &AnyPool, restart_pages: i64) -> Result<i64, sqlx::Error> {
    // (busy, pages in the log, pages copied)
    let row = sqlx::query("PRAGMA wal_checkpoint(PASSIVE)")
        .fetch_one(pool)
        .await?;
    let pages: i64 = row.try_get(1)?;
    if pages > restart_pages {
        sqlx::query("PRAGMA wal_checkpoint(RESTART)")
            .execute(pool)
            .await?;
    }
    Ok(pages)
}

impl Ledger {
    pub(crate) fn is_sqlite(&self) -> bool {
        self.pool.connect_options().database_url.scheme() == "sqlite"
    }

    /// Folds the write-ahead log into the database file (SQLite), so that
    /// the file alone is a complete copy after a clean stop.
    pub async fn checkpoint(&self) -> Result<(), LedgerError> {
        if self.is_sqlite() {
            sqlx::query("PRAGMA wal_checkpoint(TRUNCATE)")
                .execute(&self.pool)
                .await?;
        }
        Ok(())
    }

    /// One self-contained, consistent copy of a SQLite ledger at `path`,
    /// taken while the ledger is in use (`VACUUM INTO`).
    pub async fn backup(&self, path: &std::path::Path) -> Result<(), LedgerError> {
        // The copy holds what the ledger holds: made empty and private
        // first (VACUUM INTO takes an empty file), as the ledger is.
        if path.exists() {
            return Err(LedgerError::Write(format!(
                "{} exists already; choose a new file",
                path.display()
            )));
        }
        create_private(path)
            .map_err(|e| LedgerError::Write(format!("cannot create {}: {e}", path.display())))?;
        sqlx::query("VACUUM INTO $1")
            .bind(path.display().to_string())
            .execute(&self.pool)
            .await?;
        Ok(())
    }
}
