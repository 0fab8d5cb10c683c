//! API keys: created with a random secret shown once, stored as a keyed
//! hash, looked up by the public id the secret carries.
//!
//! Why a keyed fast hash (HMAC-SHA-256) and not a password hash: a secret
//! is 256 random bits, so no amount of guessing per second finds it, and a
//! slow hash would only slow every call down. The key (derived from the
//! service's first hash key, so keys outlive a rotation of the hash key)
//! makes a copied table useless on its own.
use std::collections::BTreeSet;
use std::time::Duration;

use hmac::{Hmac, Mac};
use sha2::Sha256;

use super::caller::{Caller, Scope, list};
use crate::clock::SharedClock;
use crate::ledger::{KeyRow, Ledger, LedgerError};
use crate::privacy::KeyedHasher;

/// Secrets look like `ek_<id>_<secret>`.
const PREFIX: &str = "ek_";
/// Live keys one name may hold at once (old and new, during a rotation).
pub const MAX_LIVE_PER_NAME: usize = 2;
/// The shortest and the longest life a key may be given.
const MIN_EXPIRY: Duration = Duration::from_secs(60);
const MAX_EXPIRY: Duration = Duration::from_secs(100 * 366 * 24 * 3600);

#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error(transparent)]
    Ledger(#[from] LedgerError),
    #[error("{0}")]
    Invalid(String),
}

/// Why a presented secret was refused (said to the caller in these words,
/// never with the secret).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    Unknown,
    Revoked,
    Expired,
}

impl Refused {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Unknown => "the API key is not known",
            Self::Revoked => "the API key was revoked",
            Self::Expired => "the API key has expired",
        }
    }
}

/// What a new key may do.
#[derive(Debug, Clone)]
pub struct NewKey {
    pub name: String,
    pub scopes: BTreeSet<Scope>,
    /// Empty: any declared purpose.
    pub purposes: BTreeSet<String>,
    pub quota_per_second: Option<f64>,
    pub expires_in: Option<Duration>,
}

/// A created key: the only time its secret exists in clear.
pub struct Issued {
    pub id: String,
    pub secret: String,
}

/// The API keys of one ledger database.
#[derive(Clone)]
pub struct Keys {
    ledger: Ledger,
    mac_key: Vec<u8>,
    clock: SharedClock,
}

impl Keys {
    pub fn new(ledger: Ledger, hasher: &KeyedHasher, clock: SharedClock) -> Self {
        // A key of its own, derived from the service's hash key, so key
        // hashes and subject hashes never share a key.
        let mac_key = hasher.root_hash("enrichd api keys v1").into_bytes();
        Self {
            ledger,
            mac_key,
            clock,
        }
    }

    fn mac(&self, secret: &str) -> Hmac<Sha256> {
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.mac_key)
            .expect("HMAC-SHA-256 accepts keys of any length");
        mac.update(secret.as_bytes());
        mac
    }

    /// Creates a key; refuses a third live key for one name.
    pub async fn create(&self, new: NewKey) -> Result<Issued, KeyError> {
        let name = new.name.trim();
        if name.is_empty() || name.chars().count() > 64 || name.chars().any(|c| c.is_control()) {
            return Err(KeyError::Invalid(
                "--name: 1 to 64 characters, no control characters".into(),
            ));
        }
        if new.scopes.is_empty() {
            return Err(KeyError::Invalid(
                "--scopes: name at least one scope".into(),
            ));
        }
        if new
            .quota_per_second
            .is_some_and(|q| !(q > 0.0 && q.is_finite()))
        {
            return Err(KeyError::Invalid(
                "--quota: must be more than 0 per second".into(),
            ));
        }
        // A key that is dead on arrival, or whose expiry overflows the
        // clock's milliseconds (and would read as long past), is a typo.
        let expires_in_ms = match new.expires_in {
            None => None,
            Some(d) if d < MIN_EXPIRY || d > MAX_EXPIRY => {
                return Err(KeyError::Invalid(
                    "--expires: from 1 minute to 100 years (leave it out for a key \
                     that does not expire)"
                        .into(),
                ));
            }
            Some(d) => Some(d.as_millis() as i64),
        };
        let now = self.clock.utc().timestamp_millis();
        let live = self
            .ledger
            .keys()
            .await?
            .iter()
            .filter(|k| k.name == name && is_live(k, now))
            .count();
        if live >= MAX_LIVE_PER_NAME {
            return Err(KeyError::Invalid(format!(
                "--name: {name:?} already has {live} live keys; revoke one first \
                 (`enrichd keys revoke {name} --id ID`)"
            )));
        }
        let id = hex::encode(rand::random::<[u8; 8]>());
        let secret = format!("{PREFIX}{id}_{}", hex::encode(rand::random::<[u8; 32]>()));
        let join = |set: Vec<String>| set.join(",");
        let row = KeyRow {
            id: id.clone(),
            name: name.to_owned(),
            secret_hash: hex::encode(self.mac(&secret).finalize().into_bytes()),
            scopes: join(new.scopes.iter().map(|s| s.to_string()).collect()),
            purposes: join(new.purposes.into_iter().collect()),
            quota_per_second: new.quota_per_second.unwrap_or(0.0),
            created_ms: now,
            expires_ms: expires_in_ms.map_or(0, |ms| now.saturating_add(ms)),
            revoked_ms: 0,
        };
        self.ledger.insert_key(&row).await?;
        Ok(Issued { id, secret })
    }

    pub async fn list(&self) -> Result<Vec<KeyRow>, KeyError> {
        Ok(self.ledger.keys().await?)
    }

    /// Revokes the live keys of `name` (only `id` if given). Returns how many.
    pub async fn revoke(&self, name: &str, id: Option<&str>) -> Result<u64, KeyError> {
        let now = self.clock.utc().timestamp_millis();
        Ok(self.ledger.revoke_keys(name, id, now).await?)
    }

    /// The caller a secret stands for. Read from the database on every call,
    /// so a revocation by another process holds at once.
    pub async fn authenticate(&self, secret: &str) -> Result<Result<Caller, Refused>, KeyError> {
        let Some(id) = secret
            .strip_prefix(PREFIX)
            .and_then(|rest| rest.split_once('_'))
            .map(|(id, _)| id)
            .filter(|id| id.len() == 16 && id.bytes().all(|b| b.is_ascii_hexdigit()))
        else {
            return Ok(Err(Refused::Unknown));
        };
        let row = self.ledger.key(id).await?;
        // The same work whether the id exists or not: a secret is always
        // checked (in constant time) against a stored MAC or a stand-in, so
        // the time of a refusal does not tell which ids exist.
        let stored = row
            .as_ref()
            .and_then(|row| hex::decode(&row.secret_hash).ok())
            .unwrap_or_else(|| vec![0; 32]);
        let matches = self.mac(secret).verify_slice(&stored).is_ok();
        let Some(row) = row.filter(|_| matches) else {
            return Ok(Err(Refused::Unknown));
        };
        let now = self.clock.utc().timestamp_millis();
        if row.revoked_ms != 0 {
            return Ok(Err(Refused::Revoked));
        }
        if row.expires_ms != 0 && row.expires_ms <= now {
            return Ok(Err(Refused::Expired));
        }
        let purposes = list(&row.purposes);
        Ok(Ok(Caller {
            id: row.id,
            name: row.name,
            scopes: list(&row.scopes)
                .iter()
                .filter_map(|s| s.parse().ok())
                .collect(),
            purposes: (!purposes.is_empty()).then_some(purposes),
            quota_per_second: (row.quota_per_second > 0.0).then_some(row.quota_per_second),
            on_behalf_of: None,
        }))
    }
}

/// Neither revoked nor expired at `now_ms`.
pub fn is_live(key: &KeyRow, now_ms: i64) -> bool {
    key.revoked_ms == 0 && (key.expires_ms == 0 || key.expires_ms > now_ms)
}
