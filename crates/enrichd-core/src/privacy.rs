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

/// The process's keyed hasher: a chain of keys, oldest first. A rotation
/// adds a key and re-hashes every stored reference under it, so a
/// reference is `HMAC(k_n, … HMAC(k_2, HMAC(k_1, identifier)))`: whoever
/// holds an old key alone (a leaked one) can no longer test guesses against
/// the stored references. Cheap to clone.
#[derive(Clone)]
pub struct KeyedHasher {
    keys: Arc<[Vec<u8>]>,
    /// Each key's HMAC state, keyed once: every enrichment hashes its
    /// subject and each source's cache key, and keying is half the work.
    keyed: Arc<[HmacSha256]>,
}

fn keyed(key: &[u8]) -> HmacSha256 {
    HmacSha256::new_from_slice(key).expect("HMAC-SHA-256 accepts keys of any length")
}

/// The MAC of the parts one after the other (as of their concatenation), hex.
fn mac_with(keyed: &HmacSha256, parts: &[&[u8]]) -> String {
    let mut mac = keyed.clone();
    for part in parts {
        mac.update(part);
    }
    let mut out = [0u8; 64];
    hex::encode_to_slice(mac.finalize().into_bytes(), &mut out)
        .expect("32 bytes are 64 hex digits");
    String::from_utf8(out.to_vec()).expect("hex digits are ASCII")
}

fn invalid(message: String) -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::InvalidData, message)
}

impl fmt::Debug for KeyedHasher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("KeyedHasher(<redacted>)")
    }
}

impl KeyedHasher {
    pub fn new(key: impl Into<Vec<u8>>) -> Self {
        Self::chain(vec![key.into()])
    }

    /// A hasher over several keys, oldest first (at least one).
    pub fn chain(keys: Vec<Vec<u8>>) -> Self {
        assert!(!keys.is_empty(), "a hash key chain holds at least one key");
        Self {
            keyed: keys.iter().map(|k| keyed(k)).collect(),
            keys: Arc::from(keys),
        }
    }

    /// An inline key (`privacy.hash_key`): its bytes, or after a rotation
    /// several keys separated by whitespace, oldest first.
    pub fn inline(text: &str) -> Self {
        Self::chain(
            text.split_whitespace()
                .map(|k| k.as_bytes().to_vec())
                .collect(),
        )
    }

    /// Parses a key file: one hex key per line, oldest first.
    pub fn parse_file(text: &str) -> std::io::Result<Self> {
        let keys = text
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .enumerate()
            .map(|(i, line)| {
                hex::decode(line)
                    .map_err(|e| invalid(format!("line {}: not a hex key: {e}", i + 1)))
            })
            .collect::<std::io::Result<Vec<_>>>()?;
        if keys.is_empty() {
            return Err(invalid("the file holds no key".into()));
        }
        Ok(Self::chain(keys))
    }

    /// The key file's text for this chain (one hex key per line).
    pub fn file_text(&self) -> String {
        self.keys.iter().map(|k| hex::encode(k) + "\n").collect()
    }

    /// The inline form of this chain (`privacy.hash_key`).
    pub fn inline_text(&self) -> String {
        self.keys
            .iter()
            .map(|k| String::from_utf8_lossy(k).into_owned())
            .collect::<Vec<_>>()
            .join(" ")
    }

    /// This chain with a new random key after the others. The new key is
    /// 64 hex characters, so it reads the same inline and in a file.
    pub fn rotated(&self) -> Self {
        let fresh: [u8; 32] = rand::random();
        let mut keys = self.keys.to_vec();
        keys.push(hex::encode(fresh).into_bytes());
        Self::chain(keys)
    }

    /// How many keys the chain holds.
    pub fn generation(&self) -> usize {
        self.keys.len()
    }

    /// Re-keys a reference made by the chain without its last key: what
    /// `hash` would give with this chain. The empty reference (an
    /// identifier that did not parse) stays empty.
    pub fn rehash(&self, previous: &str) -> String {
        if previous.is_empty() {
            return String::new();
        }
        mac_with(
            self.keyed.last().expect("non-empty"),
            &[previous.as_bytes()],
        )
    }

    /// A hash under the first key alone, stable across rotations: for what
    /// does not need a rotation's protection (API-key secrets are random
    /// and long, so their MAC key is not what guards them).
    pub fn root_hash(&self, value: &str) -> String {
        mac_with(&self.keyed[0], &[value.as_bytes()])
    }

    /// A hash under the chain's key of `generation` alone (1 is the first;
    /// past the chain's end, its newest): for a secret that must outlive
    /// later rotations, with its generation stored beside it.
    pub fn generation_hash(&self, generation: usize, value: &str) -> String {
        let at = generation.clamp(1, self.keyed.len()) - 1;
        mac_with(&self.keyed[at], &[value.as_bytes()])
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
            Ok(text) => Ok((Self::parse_file(&text)?, false)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let key: [u8; 32] = rand::random();
                let hasher = Self::new(key.to_vec());
                write_private(path, &hasher.file_text(), true)?;
                Ok((hasher, true))
            }
            Err(e) => Err(e),
        }
    }

    /// The full keyed hash, hex-encoded (64 characters).
    pub fn hash(&self, value: &str) -> String {
        self.hash_parts(&[value.as_bytes()])
    }

    /// `hash` of the parts' concatenation, without building it (cache keys
    /// on the hot path).
    pub fn hash_parts(&self, parts: &[&[u8]]) -> String {
        let (first, rest) = self.keyed.split_first().expect("non-empty");
        rest.iter()
            .fold(mac_with(first, parts), |h, k| mac_with(k, &[h.as_bytes()]))
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

/// Writes `text` to `path` with mode 0600 and flushes it to disk;
/// `new` refuses an existing file.
pub fn write_private(path: &std::path::Path, text: &str, new: bool) -> std::io::Result<()> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true);
    if new {
        options.create_new(true);
    } else {
        options.create(true).truncate(true);
    }
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    use std::io::Write as _;
    let mut file = options.open(path)?;
    file.write_all(text.as_bytes())?;
    file.sync_all()
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
        assert_eq!(
            a.hash_parts(&[b"jane@", b"example.com"]),
            a.hash("jane@example.com")
        );
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
    fn a_rotated_chain_rehashes_old_references_to_its_own() {
        let one = KeyedHasher::new(b"key-a".to_vec());
        let two = one.rotated();
        assert_eq!(two.generation(), 2);
        let old = one.hash("jane@example.com");
        assert_ne!(two.hash("jane@example.com"), old);
        assert_eq!(two.rehash(&old), two.hash("jane@example.com"));
        assert_eq!(two.rehash(""), "");
        assert_ne!(one.fingerprint(), two.fingerprint());
        assert_eq!(one.root_hash("x"), two.root_hash("x"));
        // Both written forms read back as the same chain.
        let from_file = KeyedHasher::parse_file(&two.file_text()).expect("file");
        let inline = KeyedHasher::inline(&two.inline_text());
        assert_eq!(from_file.hash("x"), two.hash("x"));
        assert_eq!(inline.hash("x"), two.hash("x"));
        // A one-key chain hashes as the single key always did.
        assert_eq!(
            one.hash("x"),
            KeyedHasher::parse_file(&hex::encode(b"key-a"))
                .expect("one")
                .hash("x")
        );
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
