//! The ledger (one append-only record per processing, refusals included) and
//! the suppression list, in SQLite by default or PostgreSQL when configured:
//! one schema, one set of migrations, through sqlx's `Any` driver.
mod browse;
mod erasure;
mod feedback;
mod jobs;
mod keys;
mod lease;
mod outcome;
mod reads;
mod rekey;
pub mod retention;
#[doc(hidden)]
pub mod scratch;
mod sqlite;
mod suppressions;
mod writer;

use std::sync::Arc;
use std::time::Duration;

use sqlx::AnyPool;
use sqlx::any::{AnyPoolOptions, install_default_drivers};

pub use browse::Browse;
pub use erasure::Purged;
pub use feedback::{
    CORRECT, Canary, FeedbackRow, FindingKind, NOT_THERE, Refuted, Tally, WRONG_PERSON,
};
pub use jobs::{HeldRow, JobRow, JobRowInput, RowOutput};
pub use keys::KeyRow;
pub use lease::{Holder, LEASE_FOR, Lease, RENEW_EVERY};
use retention::{SWEEP_BATCH, in_batches};
pub use sqlite::sqlite_file;
use sqlite::{WAL_KEPT_BYTES, checkpoints, create_private};

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
    // Not a `source`: its text is in this one, and a chain printed whole
    // would say it twice.
    #[error("ledger database: {0}")]
    Db(sqlx::Error),
    #[error("ledger.url: cannot reach the ledger database at {at}: {error}")]
    Unreachable { at: String, error: String },
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
    #[error(
        "{} server(s) serve from this ledger: {}. A rotation while they run would leave them \
         hashing with the old key, and their erasures would be found by no one. Stop them \
         (a server that died without stopping is forgotten {} s after it was last seen), \
         rotate, then start them with the new key",
        .0.len(),
        .0.iter().map(ToString::to_string).collect::<Vec<_>>().join(", "),
        LEASE_FOR.as_secs()
    )]
    Held(Vec<Holder>),
}

impl From<sqlx::Error> for LedgerError {
    fn from(e: sqlx::Error) -> Self {
        Self::Db(e)
    }
}

/// How long the first connection to a database server may take at start.
const CONNECT_WITHIN: Duration = Duration::from_secs(5);

/// Where a database URL points, without its credentials: `host:port/db`.
fn server_of(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(u) => format!(
            "{}:{}{}",
            u.host_str().unwrap_or("localhost"),
            u.port().unwrap_or(5432),
            u.path()
        ),
        Err(_) => "(an unreadable URL)".to_owned(),
    }
}

/// One connection to a database server before the pool is made: a pool
/// only says it timed out, this says what went wrong and where.
async fn first_connection(url: &str) -> Result<(), LedgerError> {
    use sqlx::Connection;
    let unreachable = |error: String| LedgerError::Unreachable {
        at: server_of(url),
        error,
    };
    match tokio::time::timeout(CONNECT_WITHIN, sqlx::AnyConnection::connect(url)).await {
        Ok(Ok(conn)) => {
            let _ = conn.close().await;
            Ok(())
        }
        Ok(Err(e)) => Err(unreachable(e.to_string())),
        Err(_) => Err(unreachable(format!(
            "no answer within {} s",
            CONNECT_WITHIN.as_secs()
        ))),
    }
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
    /// The fingerprint of the hash key this process bound the ledger to
    /// (`bind_hash_key`): its erasures are refused once the ledger moved
    /// to another.
    bound: Arc<std::sync::OnceLock<String>>,
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

/// Subjects whose first enrichment time is kept in memory.
const FIRST_ENRICHED_KEPT: u64 = 100_000;

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("../../migrations");

fn json(list: &[String]) -> String {
    serde_json::to_string(list).unwrap_or_else(|_| "[]".into())
}

fn list(text: &str) -> Vec<String> {
    serde_json::from_str(text).unwrap_or_default()
}

/// Every table that holds a subject's keyed hash: what a hash-key
/// rotation must move, or erasure and access would no longer find it.
pub const SUBJECT_TABLES: [&str; 5] = [
    "ledger",
    "suppression",
    "batch_rows",
    "pending_purge",
    "feedback",
];

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
        if !sqlite {
            first_connection(url).await?;
        }
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
            bound: Arc::default(),
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

    /// Whether the writer task runs, as it changes: it only ever goes from
    /// true to false (the channel closes with the ledger).
    pub fn writer_state(&self) -> tokio::sync::watch::Receiver<bool> {
        self.writer.running_changes()
    }

    /// Whether the database answered this process's last check of the
    /// suppression list (every `ledger.follow_every`), as it changes: while
    /// it does not, no call can be answered (nothing without its record,
    /// nothing without a checked suppression list).
    pub fn reachable(&self) -> tokio::sync::watch::Receiver<bool> {
        self.suppressed.reachable()
    }

    /// Appends a record; returns once it is committed.
    pub async fn record(&self, record: Record) -> Result<(), LedgerError> {
        self.writer.write(record).await
    }
}
