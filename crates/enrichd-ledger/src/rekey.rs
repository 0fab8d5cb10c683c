//! The hash key the ledger is bound to, and moving every subject to a new
//! one (`enrichd keys rotate-hash`).
use sqlx::Row;

use super::{Ledger, LedgerError, SUBJECT_TABLES, lease, suppressions};

impl Ledger {
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
            let _ = self.bound.set(stored);
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
    /// unless the ledger is bound to `previous`, and while a server holds a
    /// lease on it (see [`Ledger::hold`]); `now_ms` is the time the leases
    /// are judged at. Returns how many subjects.
    pub async fn rekey(
        &self,
        previous: &str,
        rotated: &enrichd_core::privacy::KeyedHasher,
        now_ms: i64,
    ) -> Result<u64, LedgerError> {
        let mut tx = self.pool.begin().await?;
        lease::serialize(&mut tx).await?;
        let holders = lease::live_holders(&mut tx, now_ms).await?;
        if !holders.is_empty() {
            return Err(LedgerError::Held(holders));
        }
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
}
