//! The ledger (one append-only record per processing, refusals included) and
//! the suppression list, in SQLite by default or PostgreSQL when configured:
//! one schema, one set of migrations, through sqlx's `Any` driver.
use std::time::Duration;

use sqlx::any::{AnyPoolOptions, install_default_drivers};
use sqlx::{AnyPool, Row};

/// `[ledger]` settings.
#[derive(Debug, Clone, PartialEq, serde::Deserialize, serde::Serialize)]
pub struct LedgerConfig {
    /// `sqlite://PATH?mode=rwc` (created at start) or `postgres://...`.
    pub url: String,
    /// How often rows past their purpose's retention are deleted.
    #[serde(with = "humantime_serde")]
    pub sweep_every: Duration,
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("ledger database: {0}")]
    Db(#[from] sqlx::Error),
    #[error("ledger write failed: {0}")]
    Write(String),
    #[error("ledger migrations: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
}

/// One processing, as recorded.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Record {
    pub id: String,
    pub at_ms: i64,
    pub caller: String,
    pub purpose: String,
    pub lawful_basis: String,
    pub consent_ref: String,
    pub lia_ref: String,
    pub contract_ref: String,
    pub subject: String,
    pub sources: Vec<String>,
    pub field_categories: Vec<String>,
    pub outcome: String,
    pub retain_until_ms: i64,
    pub redacted: bool,
}

/// Suppression scopes.
pub const ALL_PURPOSES: &str = "all";
pub const MARKETING: &str = "marketing";

type Pending = (Record, tokio::sync::oneshot::Sender<Result<(), String>>);

#[derive(Clone)]
pub struct Store {
    pool: AnyPool,
    /// Records go through one writer that commits whatever has queued up in
    /// one transaction (group commit): each caller still waits until its own
    /// record is committed, but concurrent calls share the commit.
    writer: tokio::sync::mpsc::Sender<Pending>,
}

/// Most records committed in one transaction.
const GROUP: usize = 256;

async fn commit(pool: &AnyPool, group: &[Pending]) -> Result<(), sqlx::Error> {
    let mut tx = pool.begin().await?;
    for (r, _) in group {
        sqlx::query(
            "INSERT INTO ledger (id, at_ms, caller, purpose, lawful_basis, consent_ref, lia_ref, \
             contract_ref, subject, sources, field_categories, outcome, retain_until_ms, redacted) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, 0)",
        )
        .bind(&r.id)
        .bind(r.at_ms)
        .bind(&r.caller)
        .bind(&r.purpose)
        .bind(&r.lawful_basis)
        .bind(&r.consent_ref)
        .bind(&r.lia_ref)
        .bind(&r.contract_ref)
        .bind(&r.subject)
        .bind(json(&r.sources))
        .bind(json(&r.field_categories))
        .bind(&r.outcome)
        .bind(r.retain_until_ms)
        .execute(&mut *tx)
        .await?;
    }
    tx.commit().await
}

async fn write_loop(pool: AnyPool, mut queue: tokio::sync::mpsc::Receiver<Pending>) {
    let mut group = Vec::with_capacity(GROUP);
    while queue.recv_many(&mut group, GROUP).await > 0 {
        let result = commit(&pool, &group).await.map_err(|e| e.to_string());
        for (_, reply) in group.drain(..) {
            let _ = reply.send(result.clone());
        }
    }
}

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

fn json(list: &[String]) -> String {
    serde_json::to_string(list).unwrap_or_else(|_| "[]".into())
}

fn list(text: &str) -> Vec<String> {
    serde_json::from_str(text).unwrap_or_default()
}

impl Store {
    /// Connects and migrates.
    pub async fn open(url: &str) -> Result<Self, StoreError> {
        install_default_drivers();
        let sqlite = url.starts_with("sqlite");
        // An in-memory SQLite database lives in its one connection.
        let memory = sqlite && url.contains(":memory:");
        let pool = AnyPoolOptions::new()
            // WAL lets readers run beside the one writer.
            .max_connections(if memory { 1 } else { 8 })
            .acquire_timeout(Duration::from_secs(5))
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
                    }
                    Ok(())
                })
            })
            .connect(url)
            .await?;
        MIGRATOR.run(&pool).await?;
        let (writer, queue) = tokio::sync::mpsc::channel(4 * GROUP);
        tokio::spawn(write_loop(pool.clone(), queue));
        Ok(Self { pool, writer })
    }

    /// Appends a record; returns once it is committed.
    pub async fn record(&self, r: &Record) -> Result<(), StoreError> {
        let stopped = || StoreError::Write("the ledger writer stopped".into());
        let (reply, done) = tokio::sync::oneshot::channel();
        self.writer
            .send((r.clone(), reply))
            .await
            .map_err(|_| stopped())?;
        done.await
            .map_err(|_| stopped())?
            .map_err(StoreError::Write)
    }

    /// Every record of a subject, oldest first.
    pub async fn records(&self, subject: &str) -> Result<Vec<Record>, StoreError> {
        let rows = sqlx::query(
            "SELECT id, at_ms, caller, purpose, lawful_basis, consent_ref, lia_ref, contract_ref, \
             subject, sources, field_categories, outcome, retain_until_ms, redacted \
             FROM ledger WHERE subject = $1 ORDER BY at_ms, id",
        )
        .bind(subject)
        .fetch_all(&self.pool)
        .await?;
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
                    outcome: row.try_get("outcome")?,
                    retain_until_ms: row.try_get("retain_until_ms")?,
                    redacted: row.try_get::<i64, _>("redacted")? != 0,
                })
            })
            .collect::<Result<_, sqlx::Error>>()
            .map_err(Into::into)
    }

    /// When this subject was first enriched, if ever.
    pub async fn first_enriched_ms(&self, subject: &str) -> Result<Option<i64>, StoreError> {
        let row = sqlx::query(
            "SELECT MIN(at_ms) AS first FROM ledger WHERE subject = $1 AND outcome = 'enriched'",
        )
        .bind(subject)
        .fetch_one(&self.pool)
        .await?;
        Ok(row.try_get::<Option<i64>, _>("first")?)
    }

    /// Art. 17: removes the personal parts of a subject's records, keeping
    /// the keyed hash as a tombstone. Returns how many records changed.
    pub async fn redact(&self, subject: &str) -> Result<u64, StoreError> {
        let done = sqlx::query(
            "UPDATE ledger SET caller = '', consent_ref = '', lia_ref = '', contract_ref = '', \
             sources = '[]', field_categories = '[]', redacted = 1 \
             WHERE subject = $1 AND redacted = 0",
        )
        .bind(subject)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected())
    }

    pub async fn suppress(
        &self,
        subject: &str,
        scope: &str,
        reference: &str,
        at_ms: i64,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO suppression (subject, scope, at_ms, reference) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (subject, scope) DO NOTHING",
        )
        .bind(subject)
        .bind(scope)
        .bind(at_ms)
        .bind(reference)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// The scopes a subject is suppressed for.
    pub async fn suppressions(&self, subject: &str) -> Result<Vec<String>, StoreError> {
        let rows = sqlx::query("SELECT scope FROM suppression WHERE subject = $1 ORDER BY scope")
            .bind(subject)
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|r| r.try_get("scope").map_err(Into::into))
            .collect()
    }

    /// Deletes records past their retention. Returns how many.
    pub async fn sweep(&self, now_ms: i64) -> Result<u64, StoreError> {
        let done = sqlx::query("DELETE FROM ledger WHERE retain_until_ms < $1")
            .bind(now_ms)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected())
    }
}
