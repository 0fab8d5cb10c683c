//! Throwaway PostgreSQL schemas for the tests and the benchmark, so that
//! runs sharing one database never see each other's rows and do not leave
//! their rows behind for ever.
//!
//! A schema is named `<prefix><unix seconds>_<12 hex digits>`. Each process
//! drops, before its first schema, the schemas of its prefix made more than
//! [`STALE_AFTER`] ago (no run lasts that long, so none is still in use),
//! and [`drop_made`] drops what this process made when it knows it is done.
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use sqlx::{AnyConnection, Connection, Row};

/// How old a scratch schema must be for another run to drop it.
pub const STALE_AFTER: Duration = Duration::from_secs(3600);

static SWEPT: AtomicBool = AtomicBool::new(false);
static MADE: Mutex<Vec<(String, String)>> = Mutex::new(Vec::new());

fn now_secs() -> u64 {
    u64::try_from(enrichd_core::clock::SharedClock::system().utc().timestamp()).unwrap_or(0)
}

/// When the schema `name` of `prefix` was made, if it is one.
fn made_at(prefix: &str, name: &str) -> Option<u64> {
    let (secs, id) = name.strip_prefix(prefix)?.split_once('_')?;
    let hex = id.len() == 12 && id.bytes().all(|b| b.is_ascii_hexdigit());
    let digits = !secs.is_empty() && secs.bytes().all(|b| b.is_ascii_digit());
    (hex && digits).then(|| secs.parse().ok()).flatten()
}

/// The scratch schemas of `prefix` among `names` that are older than
/// [`STALE_AFTER`] at `now` (unix seconds).
fn stale<'a>(prefix: &str, names: &'a [String], now: u64) -> Vec<&'a str> {
    names
        .iter()
        .filter(|name| made_at(prefix, name).is_some_and(|at| at + STALE_AFTER.as_secs() < now))
        .map(String::as_str)
        .collect()
}

async fn drop_schema(conn: &mut AnyConnection, name: &str) -> Result<(), sqlx::Error> {
    sqlx::query(&format!("DROP SCHEMA IF EXISTS {name} CASCADE"))
        .execute(conn)
        .await
        .map(drop)
}

/// A new schema in the database `base` names, returned as a URL whose
/// connections use it. `prefix` is lower-case letters only.
pub async fn schema(base: &str, prefix: &str) -> Result<String, sqlx::Error> {
    assert!(
        !prefix.is_empty() && prefix.bytes().all(|b| b.is_ascii_lowercase()),
        "a scratch prefix is lower-case letters"
    );
    sqlx::any::install_default_drivers();
    let mut conn = AnyConnection::connect(base).await?;
    if !SWEPT.swap(true, Ordering::SeqCst) {
        let names: Vec<String> = sqlx::query("SELECT CAST(nspname AS TEXT) FROM pg_namespace")
            .fetch_all(&mut conn)
            .await?
            .iter()
            .map(|row| row.try_get::<String, _>(0))
            .collect::<Result<_, _>>()?;
        for name in stale(prefix, &names, now_secs()) {
            // Another run may be dropping the same one: not ours to fail on.
            let _ = drop_schema(&mut conn, name).await;
        }
    }
    let name = format!(
        "{prefix}{}_{}",
        now_secs(),
        hex::encode(rand::random::<[u8; 6]>())
    );
    sqlx::query(&format!("CREATE SCHEMA {name}"))
        .execute(&mut conn)
        .await?;
    MADE.lock()
        .expect("the list of scratch schemas is only pushed to and drained")
        .push((base.to_owned(), name.clone()));
    let sep = if base.contains('?') { '&' } else { '?' };
    Ok(format!("{base}{sep}options=-c%20search_path%3D{name}"))
}

/// Drops every schema this process made. Anything still using one fails.
pub async fn drop_made() -> Result<(), sqlx::Error> {
    let made = std::mem::take(
        &mut *MADE
            .lock()
            .expect("the list of scratch schemas is only pushed to and drained"),
    );
    for (base, name) in made {
        let mut conn = AnyConnection::connect(&base).await?;
        drop_schema(&mut conn, &name).await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_this_prefixs_schemas_past_the_hour_are_stale() {
        let now = 1_800_000_000;
        let names = [
            format!("t{}_0123456789ab", now - 3601),
            format!("t{}_0123456789ab", now - 3599),
            format!("bench{}_0123456789ab", now - 9999),
            format!("t{}_0123456789a", now - 9999),
            format!("t{}_0123456789xy", now - 9999),
            "t_0123456789ab".to_owned(),
            "public".to_owned(),
            "tx1_0123456789ab".to_owned(),
        ];
        assert_eq!(stale("t", &names, now), vec![names[0].as_str()]);
        assert_eq!(stale("bench", &names, now), vec![names[2].as_str()]);
    }
}
