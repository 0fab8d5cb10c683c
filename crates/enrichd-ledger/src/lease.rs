//! Who serves from the ledger: every server holds a lease (a row of
//! `ledger_holders` with its hash key's fingerprint, renewed every
//! [`RENEW_EVERY`]), and `enrichd keys rotate-hash` refuses while a lease is
//! live. A server still hashing with the old key after a rotation would
//! write its erasures under a reference no one could find again.
use std::time::Duration;

use sqlx::{AnyPool, Row};

use super::{Ledger, LedgerError};

/// How often a holder renews its lease.
pub const RENEW_EVERY: Duration = Duration::from_secs(5);
/// How long a lease lasts without renewal: a server that died without
/// saying so stops blocking a rotation after this long.
pub const LEASE_FOR: Duration = Duration::from_secs(15);

/// A live lease, as a rotation reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Holder {
    pub host: String,
    pub pid: i64,
    /// Milliseconds since its last renewal.
    pub seen_ago_ms: i64,
}

impl std::fmt::Display for Holder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} pid {} (seen {:.1} s ago)",
            self.host,
            self.pid,
            self.seen_ago_ms as f64 / 1000.0
        )
    }
}

/// Every statement that reads or changes who holds the ledger writes this
/// row first: a rotation and a server taking its lease then run one after
/// the other, on SQLite and PostgreSQL alike.
const SERIALIZE: &str = "INSERT INTO ledger_meta (name, value) VALUES ('holders', '') \
     ON CONFLICT (name) DO UPDATE SET value = excluded.value";

/// This server's lease; renewed by a task until [`Lease::release`] or the
/// ledger is dropped.
pub struct Lease {
    id: String,
    pool: AnyPool,
    renewing: tokio::task::JoinHandle<()>,
}

impl Lease {
    /// Gives the lease back (at a clean stop): a rotation may start at once.
    pub async fn release(self) {
        self.renewing.abort();
        if let Err(e) = sqlx::query("DELETE FROM ledger_holders WHERE id = $1")
            .bind(&self.id)
            .execute(&self.pool)
            .await
        {
            tracing::warn!(error = %e, "cannot give back the ledger lease; it lapses by itself");
        }
    }
}

fn host_name() -> String {
    gethostname::gethostname().to_string_lossy().into_owned()
}

pub(crate) async fn live_holders(
    conn: &mut sqlx::AnyConnection,
    now_ms: i64,
) -> Result<Vec<Holder>, LedgerError> {
    let since = now_ms - LEASE_FOR.as_millis() as i64;
    sqlx::query("DELETE FROM ledger_holders WHERE seen_ms <= $1")
        .bind(since)
        .execute(&mut *conn)
        .await?;
    let rows = sqlx::query("SELECT host, pid, seen_ms FROM ledger_holders ORDER BY started_ms")
        .fetch_all(&mut *conn)
        .await?;
    rows.iter()
        .map(|r| {
            Ok(Holder {
                host: r.try_get("host")?,
                pid: r.try_get("pid")?,
                seen_ago_ms: now_ms - r.try_get::<i64, _>("seen_ms")?,
            })
        })
        .collect::<Result<_, sqlx::Error>>()
        .map_err(Into::into)
}

pub(crate) async fn serialize(conn: &mut sqlx::AnyConnection) -> Result<(), LedgerError> {
    sqlx::query(SERIALIZE).execute(conn).await?;
    Ok(())
}

impl Ledger {
    /// Takes a lease for a server hashing with `fingerprint`, refused (as
    /// `bind_hash_key` refuses) when the ledger is bound to another key.
    /// `now_ms` reads the server's clock, now and at every renewal.
    pub async fn hold(
        &self,
        fingerprint: &str,
        now_ms: impl Fn() -> i64 + Send + 'static,
    ) -> Result<Lease, LedgerError> {
        let id = uuid::Uuid::now_v7().to_string();
        let mut tx = self.pool.begin().await?;
        serialize(&mut tx).await?;
        self.check_fingerprint(&mut tx, fingerprint).await?;
        let now = now_ms();
        sqlx::query(
            "INSERT INTO ledger_holders (id, host, pid, fingerprint, started_ms, seen_ms) \
             VALUES ($1, $2, $3, $4, $5, $5)",
        )
        .bind(&id)
        .bind(host_name())
        .bind(i64::from(std::process::id()))
        .bind(fingerprint)
        .bind(now)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        let renewing = tokio::spawn(renew(self.pool.clone(), id.clone(), now_ms));
        Ok(Lease {
            id,
            pool: self.pool.clone(),
            renewing,
        })
    }

    /// The servers that hold a live lease now.
    pub async fn holders(&self, now_ms: i64) -> Result<Vec<Holder>, LedgerError> {
        let mut tx = self.pool.begin().await?;
        serialize(&mut tx).await?;
        let holders = live_holders(&mut tx, now_ms).await?;
        tx.commit().await?;
        Ok(holders)
    }

    /// Refuses with [`LedgerError::HashKeyChanged`] unless the ledger is
    /// bound to `fingerprint` (or to no key yet).
    pub(crate) async fn check_fingerprint(
        &self,
        conn: &mut sqlx::AnyConnection,
        fingerprint: &str,
    ) -> Result<(), LedgerError> {
        let stored: Option<String> =
            sqlx::query("SELECT value FROM ledger_meta WHERE name = 'hash_key_fingerprint'")
                .fetch_optional(conn)
                .await?
                .map(|r| r.try_get("value"))
                .transpose()?;
        match stored {
            Some(stored) if stored != fingerprint => Err(LedgerError::HashKeyChanged {
                stored,
                given: fingerprint.to_owned(),
            }),
            _ => Ok(()),
        }
    }
}

async fn renew(pool: AnyPool, id: String, now_ms: impl Fn() -> i64) {
    let mut every = tokio::time::interval(RENEW_EVERY);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    every.tick().await;
    loop {
        every.tick().await;
        // A lapsed lease (the database was out of reach longer than
        // `LEASE_FOR`) is not taken again: a rotation may have run, and this
        // server's erasures are then refused by the fingerprint check.
        let renewed = sqlx::query("UPDATE ledger_holders SET seen_ms = $1 WHERE id = $2")
            .bind(now_ms())
            .bind(&id)
            .execute(&pool)
            .await;
        match renewed {
            Ok(done) if done.rows_affected() == 1 => {}
            Ok(_) => tracing::error!(
                "this server's ledger lease lapsed; a hash-key rotation may have run meanwhile, \
                 and erasures are refused if it did: restart the server"
            ),
            Err(e) => tracing::warn!(error = %e, "cannot renew the ledger lease"),
        }
    }
}
