//! The ledger (one append-only record per processing, refusals included) and
//! the suppression list, in SQLite by default or PostgreSQL when configured:
//! one schema, one set of migrations, through sqlx's `Any` driver.
mod jobs;
mod keys;
mod outcome;
pub mod retention;
#[doc(hidden)]
pub mod scratch;
mod suppressions;
mod writer;

use std::sync::Arc;
use std::time::Duration;

use sqlx::any::{AnyPoolOptions, install_default_drivers};
use sqlx::{AnyPool, Row};

pub use jobs::{JobRow, JobRowInput, RowOutput};
pub use keys::KeyRow;

/// The purpose column of a data-subject request's record: answering one is
/// a legal obligation (GDPR Art. 6(1)(c), Art. 12).
pub const REQUEST_PURPOSE: &str = "data_subject_request";
pub use outcome::{LedgerOutcome, Refusal};

/// `[ledger]` settings.
#[derive(Debug, Clone, PartialEq, eserde::Deserialize, serde::Serialize)]
pub struct LedgerConfig {
    /// `sqlite://PATH?mode=rwc` (created at start) or `postgres://...`.
    pub url: String,
    /// How often rows past their purpose's retention are deleted.
    #[serde(with = "humantime_serde")]
    pub sweep_every: Duration,
    /// How often the suppression list's change counter is read (how soon
    /// another process's erasure is seen without Redis to announce it).
    #[serde(with = "humantime_serde")]
    pub follow_every: Duration,
    /// How long an erasure waits for its redaction before answering.
    #[serde(with = "humantime_serde")]
    pub erase_wait: Duration,
}

/// The shipped `ledger.follow_every`.
pub const FOLLOW_EVERY: Duration = Duration::from_millis(200);

#[derive(Debug, thiserror::Error)]
pub enum LedgerError {
    #[error("ledger database: {0}")]
    Db(#[from] sqlx::Error),
    #[error("ledger write failed: {0}")]
    Write(String),
    /// The person was erased or objected (in any process) while the
    /// processing ran: its record was not written, and nothing may be
    /// answered but the suppressed answer.
    #[error("the person was suppressed while the processing ran")]
    SuppressedMeanwhile,
    #[error("ledger migrations: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error(
        "the ledger was written with another hash key (fingerprint {stored}; this key's is \
         {given}): with this key every erasure and suppression would silently stop matching. \
         Start with the key the ledger was written with (privacy.hash_key, or the file \
         privacy.hash_key_file names); if `enrichd keys rotate-hash` was interrupted, run it \
         again to finish"
    )]
    HashKeyChanged { stored: String, given: String },
}

/// One processing, as recorded.
#[derive(Debug, Clone, PartialEq)]
pub struct Record {
    pub id: String,
    pub at_ms: i64,
    /// The authenticated caller's name (an API key's name, a client
    /// certificate's subject, "cli" for the operator's command line).
    pub caller: String,
    /// The caller's key id (empty for a certificate or the command line).
    pub caller_id: String,
    /// Whom the caller says it acts for (`x-caller`): a claim, not checked.
    pub on_behalf_of: String,
    pub purpose: String,
    pub lawful_basis: String,
    pub consent_ref: String,
    pub lia_ref: String,
    pub contract_ref: String,
    /// Keyed hash of the canonical identifier; empty when it did not parse.
    pub subject: String,
    pub sources: Vec<String>,
    pub field_categories: Vec<String>,
    pub outcome: LedgerOutcome,
    pub retain_until_ms: i64,
    pub redacted: bool,
    /// The data-subject request's reference (Access, Erase).
    pub reference: String,
    /// What a data-subject request returned or erased, in words.
    pub detail: String,
}

/// What processings of one kind had in common: an access report's summary
/// is drawn from these.
#[derive(Debug, Clone, PartialEq)]
pub struct ProcessingKind {
    pub purpose: String,
    pub lawful_basis: String,
    pub caller: String,
    pub sources: Vec<String>,
}

/// What an access report says of a subject's whole history up to a time,
/// whichever page it is: how many records, and the kinds of processing.
#[derive(Debug, Clone, PartialEq)]
pub struct History {
    pub records: u64,
    pub kinds: Vec<ProcessingKind>,
}

/// How long the history of one access is kept for its next pages.
const HISTORY_KEPT_FOR: Duration = Duration::from_secs(600);

/// One entry of the suppression list.
#[derive(Debug, Clone, PartialEq)]
pub struct SuppressionRow {
    pub scope: String,
    pub at_ms: i64,
    pub reference: String,
}

/// The ledger's columns, in the order the writer binds them.
const COLUMNS: &str = "id, at_ms, caller, purpose, lawful_basis, consent_ref, lia_ref, \
     contract_ref, subject, sources, field_categories, outcome, retain_until_ms, redacted, \
     caller_id, on_behalf_of, reference, detail";

/// The ledger and the suppression list. Cheap to clone.
#[derive(Clone)]
pub struct Ledger {
    pool: AnyPool,
    writer: writer::Writer,
    /// The suppression list in memory, kept in step with the database.
    suppressed: Arc<suppressions::Suppressions>,
    /// When each subject was first enriched, once known (it only moves when
    /// records are swept, re-keyed or a person erased, which clear it).
    first_enriched: moka::sync::Cache<String, i64>,
    /// The histories of recent accesses, by subject, the time their first
    /// page was asked for and the suppression list's counter: every page
    /// of one access carries the same summary, and drawing it from a
    /// million records took a second a page.
    histories: moka::sync::Cache<(String, i64, String), Arc<History>>,
}

/// Reads the suppression list again when told another process changed it.
pub struct Follower {
    pool: AnyPool,
    list: std::sync::Weak<suppressions::Suppressions>,
}

impl Follower {
    /// One check now; `false` once the ledger is gone.
    pub async fn follow_now(&self) -> bool {
        let Some(list) = self.list.upgrade() else {
            return false;
        };
        if let Err(e) = list.follow_once(&self.pool).await {
            tracing::warn!(error = %e, "cannot check the suppression list for changes");
        }
        true
    }
}

/// Records one statement of a retention sweep deletes at most: a few
/// milliseconds of SQLite's write lock.
const SWEEP_BATCH: u64 = 500;

/// The least pause between two statements of a sweep. A writer that met
/// the sweep's lock waits in SQLite's busy handler, which sleeps 1, 2, 5,
/// 10, 15, 20, 25 ms... (longer the longer it has waited): the pause is at
/// least three times what the statement took, so that the writer wakes
/// within it and commits.
const SWEEP_PAUSE: Duration = Duration::from_millis(25);

/// Runs `delete` (one statement deleting at most `SWEEP_BATCH` rows) until
/// it deletes fewer, pausing between statements (`SWEEP_PAUSE`). Returns
/// how many rows it deleted.
async fn in_batches<F, Fut>(mut delete: F) -> Result<u64, LedgerError>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<u64, LedgerError>>,
{
    let mut deleted = 0;
    loop {
        let started = enrichd_core::clock::Stopwatch::start();
        let n = delete().await?;
        deleted += n;
        if n < SWEEP_BATCH {
            return Ok(deleted);
        }
        tokio::time::sleep(pause_after(started.elapsed())).await;
    }
}

/// How long a long task (a sweep, a purge) pauses after one of its
/// statements took `statement`, so that the records of calls get written.
fn pause_after(statement: Duration) -> Duration {
    SWEEP_PAUSE.max(statement * 3)
}

/// Records one statement of a purge redacts at most: an UPDATE of columns
/// no index holds, about 5 ms of SQLite's write lock.
const REDACT_BATCH: i64 = 5_000;

/// What a purge did to one person's data.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Purged {
    pub records_redacted: u64,
    pub job_rows_erased: u64,
}

/// Subjects whose first enrichment time is kept in memory.
const FIRST_ENRICHED_KEPT: u64 = 100_000;

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("../../migrations");

fn json(list: &[String]) -> String {
    serde_json::to_string(list).unwrap_or_else(|_| "[]".into())
}

fn list(text: &str) -> Vec<String> {
    serde_json::from_str(text).unwrap_or_default()
}

/// The file of a `sqlite://PATH?...` URL (none for memory databases).
pub fn sqlite_file(url: &str) -> Option<std::path::PathBuf> {
    let rest = url.strip_prefix("sqlite://")?;
    let path = rest.split('?').next().unwrap_or(rest);
    (!path.is_empty() && !path.contains(":memory:")).then(|| path.into())
}

/// Creates `path` empty with mode 0600 (and its directory, 0700) unless it
/// exists.
fn create_private(path: &std::path::Path) -> std::io::Result<()> {
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
const CHECKPOINT_EVERY: Duration = Duration::from_millis(500);

/// Pages the write-ahead log may hold before a checkpoint restarts it
/// (64 MiB of 4 KiB pages).
const WAL_RESTART_PAGES: i64 = 16_384;

/// What a SQLite write-ahead log file is cut back to when it restarts
/// (`journal_size_limit`).
const WAL_KEPT_BYTES: i64 = 64 << 20;

/// Folds the write-ahead log into the database file in the background
/// until the ledger (`alive`) is dropped (`fold_wal`). SQLite's own automatic
/// checkpoint is off: it runs inside the commit that crosses its threshold,
/// and that commit, with every call in its group, waited for the copy and
/// the sync.
fn checkpoints(pool: AnyPool, alive: std::sync::Weak<suppressions::Suppressions>) {
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
async fn fold_wal(pool: &AnyPool, restart_pages: i64) -> Result<i64, sqlx::Error> {
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

/// Rows of `SELECT {COLUMNS}` as records.
fn to_records(rows: &[sqlx::any::AnyRow]) -> Result<Vec<Record>, LedgerError> {
    rows.iter()
        .map(|row| {
            Ok(Record {
                id: row.try_get("id")?,
                at_ms: row.try_get("at_ms")?,
                caller: row.try_get("caller")?,
                purpose: row.try_get("purpose")?,
                lawful_basis: row.try_get("lawful_basis")?,
                consent_ref: row.try_get("consent_ref")?,
                lia_ref: row.try_get("lia_ref")?,
                contract_ref: row.try_get("contract_ref")?,
                subject: row.try_get("subject")?,
                sources: list(&row.try_get::<String, _>("sources")?),
                field_categories: list(&row.try_get::<String, _>("field_categories")?),
                outcome: outcome(row.try_get("outcome")?)?,
                retain_until_ms: row.try_get("retain_until_ms")?,
                redacted: row.try_get::<i64, _>("redacted")? != 0,
                caller_id: row.try_get("caller_id")?,
                on_behalf_of: row.try_get("on_behalf_of")?,
                reference: row.try_get("reference")?,
                detail: row.try_get("detail")?,
            })
        })
        .collect::<Result<_, sqlx::Error>>()
        .map_err(Into::into)
}

fn outcome(text: String) -> Result<LedgerOutcome, sqlx::Error> {
    LedgerOutcome::parse(&text)
        .ok_or_else(|| sqlx::Error::Decode(format!("unknown ledger outcome {text:?}").into()))
}

/// Every table that holds a subject's keyed hash: what a hash-key
/// rotation must move, or erasure and access would no longer find it.
pub const SUBJECT_TABLES: [&str; 4] = ["ledger", "suppression", "batch_rows", "pending_purge"];

impl Ledger {
    /// Connects and migrates. A new SQLite file is created private (0600;
    /// SQLite gives its -wal and -shm files the same mode), in a private
    /// directory if that is missing too.
    pub async fn open(url: &str) -> Result<Self, LedgerError> {
        Self::open_following(url, FOLLOW_EVERY).await
    }

    /// `open`, reading the suppression list's change counter every `every`.
    pub async fn open_following(url: &str, every: Duration) -> Result<Self, LedgerError> {
        install_default_drivers();
        if let Some(path) = sqlite_file(url) {
            create_private(&path).map_err(|e| {
                LedgerError::Write(format!("cannot create {}: {e}", path.display()))
            })?;
        }
        let sqlite = url.starts_with("sqlite");
        // An in-memory SQLite database lives in its one connection.
        let memory = sqlite && url.contains(":memory:");
        let pool = AnyPoolOptions::new()
            // WAL lets readers run beside the one writer.
            .max_connections(if memory { 1 } else { 8 })
            .acquire_timeout(Duration::from_secs(5))
            // No ping before every use: a broken connection fails its query,
            // which is reported as such (UNAVAILABLE), and is not reused.
            .test_before_acquire(false)
            .after_connect(move |conn, _| {
                Box::pin(async move {
                    if sqlite {
                        // Write-ahead log: appends stay fast and durable
                        // across a crash of the process.
                        sqlx::query("PRAGMA journal_mode = WAL")
                            .execute(&mut *conn)
                            .await?;
                        sqlx::query("PRAGMA synchronous = NORMAL")
                            .execute(&mut *conn)
                            .await?;
                        // Checkpoints run beside the writer (see
                        // `checkpoints`), never inside a commit: one that
                        // copies the log into the file and syncs it held
                        // every caller of its group for milliseconds.
                        sqlx::query("PRAGMA wal_autocheckpoint = 0")
                            .execute(&mut *conn)
                            .await?;
                        // A log that restarts is cut back to this size.
                        sqlx::query(&format!("PRAGMA journal_size_limit = {WAL_KEPT_BYTES}"))
                            .execute(&mut *conn)
                            .await?;
                    }
                    Ok(())
                })
            })
            .connect(url)
            .await?;
        MIGRATOR.run(&pool).await?;
        let suppressed = suppressions::Suppressions::load(&pool, every).await?;
        let writer = writer::Writer::start(pool.clone(), suppressed.clone(), !sqlite, !memory);
        suppressions::follow(pool.clone(), Arc::downgrade(&suppressed), every);
        if sqlite && !memory {
            checkpoints(pool.clone(), Arc::downgrade(&suppressed));
        }
        Ok(Self {
            pool,
            writer,
            suppressed,
            first_enriched: moka::sync::Cache::builder()
                .max_capacity(FIRST_ENRICHED_KEPT)
                .build(),
            histories: moka::sync::Cache::builder()
                .max_capacity(256)
                .time_to_live(HISTORY_KEPT_FOR)
                .support_invalidation_closures()
                .build(),
        })
    }

    /// Subjects other processes suppress, as this process learns of them
    /// (within `ledger.follow_every`, or at once after `follower`'s
    /// `follow_now`).
    pub fn suppression_news(&self) -> tokio::sync::broadcast::Receiver<String> {
        self.suppressed.news()
    }

    /// A handle that reads the suppression list again on demand, without
    /// keeping the ledger open.
    pub fn follower(&self) -> Follower {
        Follower {
            pool: self.pool.clone(),
            list: Arc::downgrade(&self.suppressed),
        }
    }

    /// Whether the writer task is running: every call needs it.
    pub fn writer_running(&self) -> bool {
        self.writer.running()
    }

    /// Binds the ledger to a hash key: the first key's fingerprint is kept;
    /// another one is refused.
    pub async fn bind_hash_key(&self, fingerprint: &str) -> Result<(), LedgerError> {
        sqlx::query(
            "INSERT INTO ledger_meta (name, value) VALUES ('hash_key_fingerprint', $1) \
             ON CONFLICT (name) DO NOTHING",
        )
        .bind(fingerprint)
        .execute(&self.pool)
        .await?;
        let row = sqlx::query("SELECT value FROM ledger_meta WHERE name = 'hash_key_fingerprint'")
            .fetch_one(&self.pool)
            .await?;
        let stored: String = row.try_get("value")?;
        if stored == fingerprint {
            Ok(())
        } else {
            Err(LedgerError::HashKeyChanged {
                stored,
                given: fingerprint.to_owned(),
            })
        }
    }

    /// The fingerprint of the hash key the ledger is bound to, if any yet.
    pub async fn hash_key_fingerprint(&self) -> Result<Option<String>, LedgerError> {
        let row = sqlx::query("SELECT value FROM ledger_meta WHERE name = 'hash_key_fingerprint'")
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.map(|r| r.try_get("value")).transpose()?)
    }

    /// Re-keys every stored subject (every table of [`SUBJECT_TABLES`])
    /// from the chain `rotated` extends to `rotated` and binds the ledger to
    /// it, in one transaction: either every reference moves or none. Refuses
    /// unless the ledger is bound to `previous`. Returns how many subjects.
    pub async fn rekey(
        &self,
        previous: &str,
        rotated: &enrichd_core::privacy::KeyedHasher,
    ) -> Result<u64, LedgerError> {
        let mut tx = self.pool.begin().await?;
        let stored: Option<String> =
            sqlx::query("SELECT value FROM ledger_meta WHERE name = 'hash_key_fingerprint'")
                .fetch_optional(&mut *tx)
                .await?
                .map(|r| r.try_get("value"))
                .transpose()?;
        if let Some(stored) = stored.filter(|s| s != previous) {
            return Err(LedgerError::HashKeyChanged {
                stored,
                given: previous.to_owned(),
            });
        }
        let every = SUBJECT_TABLES
            .map(|table| format!("SELECT subject FROM {table} WHERE subject <> ''"))
            .join(" UNION ");
        let subjects: Vec<String> = sqlx::query(&every)
            .fetch_all(&mut *tx)
            .await?
            .iter()
            .map(|r| r.try_get("subject"))
            .collect::<Result<_, _>>()?;
        for old in &subjects {
            let new = rotated.rehash(old);
            for table in SUBJECT_TABLES {
                sqlx::query(&format!(
                    "UPDATE {table} SET subject = $1 WHERE subject = $2"
                ))
                .bind(&new)
                .bind(old)
                .execute(&mut *tx)
                .await?;
            }
        }
        sqlx::query(
            "INSERT INTO ledger_meta (name, value) VALUES ('hash_key_fingerprint', $1) \
             ON CONFLICT (name) DO UPDATE SET value = excluded.value",
        )
        .bind(rotated.fingerprint())
        .execute(&mut *tx)
        .await?;
        suppressions::bump(&mut tx).await?;
        // Every row again for processes that follow the list (they are meant
        // to be stopped; this keeps one that is not from missing the moves).
        sqlx::query(&format!(
            "UPDATE suppression SET version = ({})",
            suppressions::VERSION_NUMBER
        ))
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        self.suppressed.reload(&self.pool).await?;
        self.first_enriched.invalidate_all();
        Ok(subjects.len() as u64)
    }

    fn is_sqlite(&self) -> bool {
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
        sqlx::query("VACUUM INTO $1")
            .bind(path.display().to_string())
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Appends a record; returns once it is committed.
    pub async fn record(&self, record: Record) -> Result<(), LedgerError> {
        self.writer.write(record).await
    }

    /// Every record of a subject, oldest first.
    pub async fn records(&self, subject: &str) -> Result<Vec<Record>, LedgerError> {
        let rows = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM ledger WHERE subject = $1 ORDER BY at_ms, id"
        ))
        .bind(subject)
        .fetch_all(&self.pool)
        .await?;
        to_records(&rows)
    }

    /// One page of a subject's records, oldest first: those written at or
    /// before `until_ms`, after `after` (time and id) when given, at most
    /// `limit`.
    pub async fn records_page(
        &self,
        subject: &str,
        until_ms: i64,
        after: Option<(i64, &str)>,
        limit: u32,
    ) -> Result<Vec<Record>, LedgerError> {
        let (after_ms, after_id) = after.unwrap_or((i64::MIN, ""));
        let rows = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM ledger WHERE subject = $1 AND at_ms <= $2 \
             AND (at_ms > $3 OR (at_ms = $3 AND id > $4)) ORDER BY at_ms, id LIMIT $5"
        ))
        .bind(subject)
        .bind(until_ms)
        .bind(after_ms)
        .bind(after_id)
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?;
        to_records(&rows)
    }

    /// How many records of `subject` were written at or before `until_ms`,
    /// and the kinds of processing among them: computed for the first page
    /// of an access, kept for its next pages (until an erasure or another
    /// change of the suppression list, or ten minutes).
    pub async fn history(&self, subject: &str, until_ms: i64) -> Result<Arc<History>, LedgerError> {
        let key = (subject.to_owned(), until_ms, self.suppressed.version());
        if let Some(known) = self.histories.get(&key) {
            return Ok(known);
        }
        let history = Arc::new(History {
            records: self.count_records(subject, until_ms).await?,
            kinds: self.processing_kinds(subject, until_ms).await?,
        });
        self.histories.insert(key, history.clone());
        Ok(history)
    }

    /// How many records of a subject were written at or before `until_ms`.
    async fn count_records(&self, subject: &str, until_ms: i64) -> Result<u64, LedgerError> {
        let row =
            sqlx::query("SELECT COUNT(*) AS n FROM ledger WHERE subject = $1 AND at_ms <= $2")
                .bind(subject)
                .bind(until_ms)
                .fetch_one(&self.pool)
                .await?;
        Ok(u64::try_from(row.try_get::<i64, _>("n")?).unwrap_or_default())
    }

    /// The distinct (purpose, lawful basis, caller, sources) of a subject's
    /// processings that asked the sources (enriched or not found): what an
    /// access report's summary is drawn from, however many records there are.
    async fn processing_kinds(
        &self,
        subject: &str,
        until_ms: i64,
    ) -> Result<Vec<ProcessingKind>, LedgerError> {
        let rows = sqlx::query(
            "SELECT DISTINCT purpose, lawful_basis, caller, sources FROM ledger \
             WHERE subject = $1 AND outcome IN ($2, $3) AND at_ms <= $4",
        )
        .bind(subject)
        .bind(LedgerOutcome::Enriched.as_str())
        .bind(LedgerOutcome::NotFound.as_str())
        .bind(until_ms)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|row| {
                Ok(ProcessingKind {
                    purpose: row.try_get("purpose")?,
                    lawful_basis: row.try_get("lawful_basis")?,
                    caller: row.try_get("caller")?,
                    sources: list(&row.try_get::<String, _>("sources")?),
                })
            })
            .collect::<Result<_, sqlx::Error>>()
            .map_err(Into::into)
    }

    /// When this subject was first enriched, if ever.
    pub async fn first_enriched_ms(&self, subject: &str) -> Result<Option<i64>, LedgerError> {
        if let Some(first) = self.first_enriched.get(subject) {
            return Ok(Some(first));
        }
        let row = sqlx::query(
            "SELECT MIN(at_ms) AS first FROM ledger WHERE subject = $1 AND outcome = $2",
        )
        .bind(subject)
        .bind(LedgerOutcome::Enriched.as_str())
        .fetch_one(&self.pool)
        .await?;
        let first = row.try_get::<Option<i64>, _>("first")?;
        if let Some(first) = first {
            self.first_enriched.insert(subject.to_owned(), first);
        }
        Ok(first)
    }

    /// Art. 17: removes the personal parts of a subject's records, keeping
    /// the keyed hash as a tombstone, and empties their batch job rows; then
    /// the subject's pending purge (see [`Ledger::erase`]) is done. The
    /// records of data-subject requests stay whole: they hold no personal
    /// data but the hash, and they are the evidence that the requests were
    /// answered. Idempotent.
    ///
    /// A person enriched on every CRM view has hundreds of thousands of
    /// records: they are redacted `REDACT_BATCH` at a time, on SQLite with
    /// the sweep's pauses between, so that no statement holds its write
    /// lock for long (one UPDATE of 1,000,000 records held it 1.1 s, and
    /// every call's record waited). `progress` counts the records redacted
    /// so far, for a caller that stops waiting.
    pub async fn purge(
        &self,
        subject: &str,
        progress: &std::sync::atomic::AtomicU64,
    ) -> Result<Purged, LedgerError> {
        use std::sync::atomic::Ordering;
        self.first_enriched.invalidate(subject);
        let mut redacted = 0;
        // Through the (subject, outcome, at_ms) index, an outcome at a time
        // and in time order within it, so that no batch reads again what
        // an earlier one redacted (only records of the same millisecond).
        let mut outcome: Option<String> = None;
        while let Some(current) = self.next_outcome(subject, outcome.as_deref()).await? {
            let mut from_ms = i64::MIN;
            loop {
                let started = enrichd_core::clock::Stopwatch::start();
                let done = self.redact_batch(subject, &current, from_ms).await?;
                redacted += done.len() as u64;
                progress.fetch_add(done.len() as u64, Ordering::Relaxed);
                if (done.len() as i64) < REDACT_BATCH {
                    break;
                }
                from_ms = done.iter().copied().max().unwrap_or(from_ms);
                // PostgreSQL's row locks leave the calls' inserts alone.
                if self.is_sqlite() {
                    tokio::time::sleep(pause_after(started.elapsed())).await;
                }
            }
            outcome = Some(current);
        }
        let job_rows_erased = self.erase_job_rows(subject).await?;
        let erased = subject.to_owned();
        // Only fails without `support_invalidation_closures`, which is set.
        let _ = self
            .histories
            .invalidate_entries_if(move |(s, _, _), _| *s == erased);
        sqlx::query("DELETE FROM pending_purge WHERE subject = $1")
            .bind(subject)
            .execute(&self.pool)
            .await?;
        self.first_enriched.invalidate(subject);
        Ok(Purged {
            records_redacted: redacted,
            job_rows_erased,
        })
    }

    /// The first outcome of a subject's records after `after`, if any.
    async fn next_outcome(
        &self,
        subject: &str,
        after: Option<&str>,
    ) -> Result<Option<String>, LedgerError> {
        let row = match after {
            None => sqlx::query("SELECT MIN(outcome) AS o FROM ledger WHERE subject = $1")
                .bind(subject)
                .fetch_one(&self.pool),
            Some(after) => sqlx::query(
                "SELECT MIN(outcome) AS o FROM ledger WHERE subject = $1 AND outcome > $2",
            )
            .bind(subject)
            .bind(after)
            .fetch_one(&self.pool),
        }
        .await?;
        Ok(row.try_get::<Option<String>, _>("o")?)
    }

    /// Redacts at most `REDACT_BATCH` records of `subject` and `outcome`
    /// written at or after `from_ms`, the earliest first; returns their
    /// times.
    async fn redact_batch(
        &self,
        subject: &str,
        outcome: &str,
        from_ms: i64,
    ) -> Result<Vec<i64>, LedgerError> {
        let rows = sqlx::query(
            "UPDATE ledger SET caller = '', caller_id = '', on_behalf_of = '', consent_ref = '', \
             lia_ref = '', contract_ref = '', sources = '[]', field_categories = '[]', \
             detail = '', redacted = 1 \
             WHERE id IN (SELECT id FROM ledger WHERE subject = $1 AND outcome = $2 \
             AND at_ms >= $3 AND redacted = 0 AND purpose <> $4 ORDER BY at_ms LIMIT $5) \
             RETURNING at_ms",
        )
        .bind(subject)
        .bind(outcome)
        .bind(from_ms)
        .bind(REQUEST_PURPOSE)
        .bind(REDACT_BATCH)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|row| row.try_get::<i64, _>("at_ms"))
            .collect::<Result<_, _>>()
            .map_err(Into::into)
    }

    /// Finishes every purge an erasure left undone (its caller stopped
    /// waiting, its process stopped or died); returns how many subjects.
    pub async fn finish_purges(&self) -> Result<u64, LedgerError> {
        let pending: Vec<String> =
            sqlx::query_scalar("SELECT subject FROM pending_purge ORDER BY since_ms")
                .fetch_all(&self.pool)
                .await?;
        let progress = std::sync::atomic::AtomicU64::new(0);
        for subject in &pending {
            self.purge(subject, &progress).await?;
        }
        Ok(pending.len() as u64)
    }

    /// Art. 17: suppresses `subject` for every purpose and, in the same
    /// transaction, marks their purge pending, so that it is finished even
    /// when the [`Ledger::purge`] that follows is cut short.
    pub async fn erase(
        &self,
        subject: &str,
        reference: &str,
        at_ms: i64,
    ) -> Result<(), LedgerError> {
        let everything = enrichd_core::compliance::suppression::ALL_PURPOSES;
        self.suppress_purging(subject, everything, reference, at_ms, true)
            .await
    }

    /// Adds a subject to the suppression list for `scope` (idempotent).
    pub async fn suppress(
        &self,
        subject: &str,
        scope: &str,
        reference: &str,
        at_ms: i64,
    ) -> Result<(), LedgerError> {
        self.suppress_purging(subject, scope, reference, at_ms, false)
            .await
    }

    async fn suppress_purging(
        &self,
        subject: &str,
        scope: &str,
        reference: &str,
        at_ms: i64,
        purge: bool,
    ) -> Result<(), LedgerError> {
        let mut tx = self.pool.begin().await?;
        if purge {
            sqlx::query(
                "INSERT INTO pending_purge (subject, since_ms) VALUES ($1, $2) \
                 ON CONFLICT (subject) DO NOTHING",
            )
            .bind(subject)
            .bind(at_ms)
            .execute(&mut *tx)
            .await?;
        }
        // The counter first: the row carries the value it moved to, and so
        // do rows written without one (see migrations/*_suppression_versions).
        suppressions::bump(&mut tx).await?;
        sqlx::query(&format!(
            "UPDATE suppression SET version = ({}) WHERE version = 0",
            suppressions::VERSION_NUMBER
        ))
        .execute(&mut *tx)
        .await?;
        sqlx::query(&format!(
            "INSERT INTO suppression (subject, scope, at_ms, reference, version) \
             VALUES ($1, $2, $3, $4, ({})) ON CONFLICT (subject, scope) DO NOTHING",
            suppressions::VERSION_NUMBER
        ))
        .bind(subject)
        .bind(scope)
        .bind(at_ms)
        .bind(reference)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        // In force in this process before the erasure is answered; other
        // processes see the counter move within their `ledger.follow_every`.
        self.suppressed.add(subject, scope);
        Ok(())
    }

    /// A subject's suppressions: scope, when, reference.
    pub async fn suppression_records(
        &self,
        subject: &str,
    ) -> Result<Vec<SuppressionRow>, LedgerError> {
        let rows = sqlx::query(
            "SELECT scope, at_ms, reference FROM suppression WHERE subject = $1 ORDER BY at_ms, scope",
        )
        .bind(subject)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(SuppressionRow {
                    scope: r.try_get("scope")?,
                    at_ms: r.try_get("at_ms")?,
                    reference: r.try_get("reference")?,
                })
            })
            .collect::<Result<_, sqlx::Error>>()
            .map_err(Into::into)
    }

    /// The scopes a subject is suppressed for, from the in-memory copy of
    /// the list. Fails (and so does every enrichment) while that copy cannot
    /// be kept in step with the database.
    pub fn suppressions(&self, subject: &str) -> Result<Vec<String>, LedgerError> {
        self.suppressed.scopes(subject)
    }

    /// Deletes records past their retention, a bounded batch at a time
    /// (`SWEEP_BATCH`), pausing between batches (`SWEEP_PAUSE`) so that the
    /// records of calls are committed meanwhile. Returns how many.
    ///
    /// One statement for everything held SQLite's write lock for as long as
    /// it ran: 2,000,000 expired rows took 12 s, every call in that time
    /// waited, and those past the 5 s busy timeout failed (UNAVAILABLE).
    pub async fn sweep(&self, now_ms: i64) -> Result<u64, LedgerError> {
        in_batches(|| self.sweep_at_most(now_ms, SWEEP_BATCH)).await
    }

    /// Deletes at most `limit` records past their retention, the earliest
    /// expired first, in one statement. Returns how many.
    pub async fn sweep_at_most(&self, now_ms: i64, limit: u64) -> Result<u64, LedgerError> {
        let done = sqlx::query(
            "DELETE FROM ledger WHERE id IN (SELECT id FROM ledger \
             WHERE retain_until_ms < $1 ORDER BY retain_until_ms LIMIT $2)",
        )
        .bind(now_ms)
        .bind(i64::try_from(limit).unwrap_or(i64::MAX))
        .execute(&self.pool)
        .await?;
        if done.rows_affected() > 0 {
            self.first_enriched.invalidate_all();
        }
        Ok(done.rows_affected())
    }
}
