//! The API-key table: rows as stored. The rules (what a key may do, how a
//! secret is checked) are `auth`'s.
use sqlx::FromRow;

use super::{Ledger, LedgerError};

/// One API key as stored: never the secret, only its keyed hash.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct KeyRow {
    pub id: String,
    pub name: String,
    pub secret_hash: String,
    /// Comma-separated.
    pub scopes: String,
    /// Comma-separated; empty: any purpose.
    pub purposes: String,
    /// Requests per second; 0: none of its own.
    pub quota_per_second: f64,
    pub created_ms: i64,
    /// 0: never.
    pub expires_ms: i64,
    /// 0: live.
    pub revoked_ms: i64,
}

const KEY_COLUMNS: &str = "id, name, secret_hash, scopes, purposes, quota_per_second, \
     created_ms, expires_ms, revoked_ms";

impl Ledger {
    pub async fn insert_key(&self, key: &KeyRow) -> Result<(), LedgerError> {
        sqlx::query(&format!(
            "INSERT INTO api_keys ({KEY_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)"
        ))
        .bind(&key.id)
        .bind(&key.name)
        .bind(&key.secret_hash)
        .bind(&key.scopes)
        .bind(&key.purposes)
        .bind(key.quota_per_second)
        .bind(key.created_ms)
        .bind(key.expires_ms)
        .bind(key.revoked_ms)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    pub async fn key(&self, id: &str) -> Result<Option<KeyRow>, LedgerError> {
        let row = sqlx::query(&format!("SELECT {KEY_COLUMNS} FROM api_keys WHERE id = $1"))
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.as_ref().map(KeyRow::from_row).transpose()?)
    }

    /// Every key, oldest first.
    pub async fn keys(&self) -> Result<Vec<KeyRow>, LedgerError> {
        let rows = sqlx::query(&format!(
            "SELECT {KEY_COLUMNS} FROM api_keys ORDER BY created_ms, id"
        ))
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .iter()
            .map(KeyRow::from_row)
            .collect::<Result<_, _>>()?)
    }

    /// Revokes the live keys of `name` (only `id` if given). Returns how many.
    pub async fn revoke_keys(
        &self,
        name: &str,
        id: Option<&str>,
        at_ms: i64,
    ) -> Result<u64, LedgerError> {
        let done = sqlx::query(
            "UPDATE api_keys SET revoked_ms = $1 \
             WHERE name = $2 AND revoked_ms = 0 AND ($3 = '' OR id = $3)",
        )
        .bind(at_ms)
        .bind(name)
        .bind(id.unwrap_or_default())
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected())
    }
}
