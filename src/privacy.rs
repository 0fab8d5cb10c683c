//! Keyed hashing of personal identifiers.
//!
//! Raw email addresses and phone numbers never reach a log line, a metric
//! label or a cache key. Everything that needs to *refer* to a person uses an
//! HMAC-SHA-256 of the canonical identifier under a secret key, so the same
//! person gets the same reference without the reference revealing them (a
//! plain hash of an email can be reversed with a dictionary; a keyed one
//! cannot without the key).
use std::fmt;
use std::sync::Arc;

use hmac::{Hmac, Mac};
use sha2::Sha256;

type HmacSha256 = Hmac<Sha256>;

/// How many hex characters of the keyed hash a log line shows.
const LOG_PREFIX_LEN: usize = 12;

/// The process's keyed hasher. Cheap to clone.
#[derive(Clone)]
pub struct KeyedHasher {
    key: Arc<[u8]>,
}

impl fmt::Debug for KeyedHasher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("KeyedHasher(<redacted>)")
    }
}

impl KeyedHasher {
    pub fn new(key: impl Into<Vec<u8>>) -> Self {
        Self {
            key: Arc::from(key.into()),
        }
    }

    /// A hasher with a random key: references are stable for this process only.
    pub fn random() -> Self {
        let key: [u8; 32] = rand::random();
        Self::new(key.to_vec())
    }

    /// The key in `path`, or a new random one written there (mode 0600).
    /// Returns whether the file was created.
    pub fn load_or_create(path: &std::path::Path) -> std::io::Result<(Self, bool)> {
        match std::fs::read_to_string(path) {
            Ok(text) => {
                let key = hex::decode(text.trim()).map_err(|e| {
                    std::io::Error::new(
                        std::io::ErrorKind::InvalidData,
                        format!("not a hex key: {e}"),
                    )
                })?;
                Ok((Self::new(key), false))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let key: [u8; 32] = rand::random();
                let mut options = std::fs::OpenOptions::new();
                options.write(true).create_new(true);
                #[cfg(unix)]
                std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
                use std::io::Write as _;
                options.open(path)?.write_all(hex::encode(key).as_bytes())?;
                Ok((Self::new(key.to_vec()), true))
            }
            Err(e) => Err(e),
        }
    }

    /// The full keyed hash, hex-encoded (64 characters).
    pub fn hash(&self, value: &str) -> String {
        let mut mac =
            HmacSha256::new_from_slice(&self.key).expect("HMAC-SHA-256 accepts keys of any length");
        mac.update(value.as_bytes());
        hex::encode(mac.finalize().into_bytes())
    }

    /// Names the key without revealing it (16 hex characters), so a ledger
    /// can tell the key it was written with from another.
    pub fn fingerprint(&self) -> String {
        let mut full = self.hash("enrichd hash key fingerprint v1");
        full.truncate(16);
        full
    }

    /// A short prefix of the keyed hash, for log lines.
    pub fn log_ref(&self, value: &str) -> String {
        let mut full = self.hash(value);
        full.truncate(LOG_PREFIX_LEN);
        full
    }

    /// Wraps a value so that `Display`/`Debug` print its keyed-hash prefix.
    pub fn pii<'a>(&self, value: &'a str) -> Pii<'a> {
        Pii {
            value,
            hasher: self.clone(),
        }
    }
}

/// Personal data that must not be printed: formats as a keyed-hash prefix.
pub struct Pii<'a> {
    value: &'a str,
    hasher: KeyedHasher,
}

impl fmt::Display for Pii<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "h:{}", self.hasher.log_ref(self.value))
    }
}

impl fmt::Debug for Pii<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keyed_hash_is_stable_per_key_and_differs_across_keys() {
        let a = KeyedHasher::new(b"key-a".to_vec());
        let b = KeyedHasher::new(b"key-b".to_vec());
        assert_eq!(a.hash("jane@example.com"), a.hash("jane@example.com"));
        assert_ne!(a.hash("jane@example.com"), b.hash("jane@example.com"));
        assert_eq!(a.hash("x").len(), 64);
    }

    #[test]
    fn a_key_file_is_created_once_and_reused() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("k");
        let (a, created) = KeyedHasher::load_or_create(&path).expect("created");
        assert!(created);
        let (b, created) = KeyedHasher::load_or_create(&path).expect("read");
        assert!(!created);
        assert_eq!(a.hash("x"), b.hash("x"));
    }

    #[test]
    fn pii_never_prints_the_value() {
        let h = KeyedHasher::new(b"k".to_vec());
        let shown = format!(
            "{} {:?}",
            h.pii("jane@example.com"),
            h.pii("jane@example.com")
        );
        assert!(!shown.contains("jane"), "{shown}");
        assert!(shown.starts_with("h:"), "{shown}");
        assert_eq!(format!("{}", h.pii("a")).len(), 2 + LOG_PREFIX_LEN);
    }
}
