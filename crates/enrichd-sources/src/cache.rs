//! The answer cache: per source and input, in process (moka).
//!
//! Found answers live for the source's `cache_ttl`, not-found answers for its
//! shorter `negative_ttl`; errors, timeouts and refusals are never cached.
//! Keys are keyed hashes of (source, input kind, input), never the input.
//! The cache is bounded by the bytes its entries weigh. Entries outlive
//! their TTL by a grace period so that a failing source can be answered from
//! its last good answer, marked stale.
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use moka::Expiry;

use enrichd_core::clock::SharedClock;
use enrichd_core::model::{Outcome, Profile};

/// `[cache]` settings.
#[derive(Debug, Clone, PartialEq, eserde::Deserialize, serde::Serialize)]
pub struct CacheConfig {
    pub enabled: bool,
    /// Upper bound of the cache, in (estimated) bytes of its entries.
    pub max_bytes: u64,
    /// How long past its TTL an entry may still be served, marked stale,
    /// when its source fails.
    #[serde(with = "humantime_serde")]
    pub stale_grace: Duration,
}

/// One cached answer of one source for one input. At most 112 bytes, so
/// that with its `Arc` it fits the allocator's 128-byte class (a test
/// holds it there).
#[derive(Debug)]
pub struct Entry {
    /// The catalog's, shared.
    pub source_id: Arc<str>,
    pub outcome: Outcome,
    pub detail: Option<Box<str>>,
    pub http_status: Option<u16>,
    /// Boxed: most entries are "not found", and a profile is 256 bytes
    /// inline.
    pub profile: Option<Box<Profile>>,
    /// When the source answered, on the monotonic clock (for ages) and the
    /// wall clock (for provenance in access reports).
    pub stored_at: Instant,
    pub retrieved_at: DateTime<Utc>,
    ttl_ms: u64,
    weight: u32,
    /// Lineage: the subjects (keyed hashes) whose enrichments asked for or
    /// used this answer. Access shows an entry to these subjects only, and
    /// erasing one of them removes it. Nearly always one or two, so a list
    /// grown one at a time (a set's first node alone is about 280 bytes),
    /// of the 32 bytes each subject's hex digits spell.
    subjects: std::sync::Mutex<Box<[Slot]>>,
    /// Set when this process replaced or removed it (`put`, `remove`):
    /// what was built from it (a memo) is no longer the cache's.
    retired: AtomicBool,
}

/// What a source answered, before it is stored.
pub struct Answer {
    pub outcome: Outcome,
    pub detail: Option<String>,
    pub http_status: Option<u16>,
    pub profile: Option<Profile>,
}

impl Entry {
    /// The answer of `source_id`, stored now by `clock`, kept for `ttl`.
    pub fn new(source_id: Arc<str>, answer: Answer, ttl: Duration, clock: &SharedClock) -> Self {
        let weight = estimate(&answer.detail, &answer.profile);
        Self {
            source_id,
            outcome: answer.outcome,
            detail: answer.detail.map(String::into_boxed_str),
            http_status: answer.http_status,
            profile: answer.profile.map(Box::new),
            stored_at: clock.now(),
            retrieved_at: clock.utc(),
            ttl_ms: u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX),
            weight,
            subjects: Default::default(),
            retired: AtomicBool::new(false),
        }
    }

    /// An answer stored elsewhere (another replica) at `retrieved_at`: its
    /// age counts from then, on this process's clocks.
    pub fn restored(
        source_id: Arc<str>,
        answer: Answer,
        ttl: Duration,
        retrieved_at: DateTime<Utc>,
        clock: &SharedClock,
    ) -> Self {
        let mut entry = Self::new(source_id, answer, ttl, clock);
        let age = (clock.utc() - retrieved_at).to_std().unwrap_or_default();
        entry.stored_at = entry.stored_at.checked_sub(age).unwrap_or(entry.stored_at);
        entry.retrieved_at = retrieved_at;
        entry
    }

    /// Ties the entry to a subject whose enrichment used it; `true` if it
    /// was not tied to it yet.
    pub fn tie(&self, subject: &str) -> bool {
        let subject = slot(subject);
        let mut subjects = self.subjects.lock().unwrap_or_else(|p| p.into_inner());
        if subjects.contains(&subject) {
            return false;
        }
        let mut grown = Vec::with_capacity(subjects.len() + 1);
        grown.extend_from_slice(&subjects);
        grown.push(subject);
        *subjects = grown.into_boxed_slice();
        true
    }

    /// Whether a subject's enrichment used this entry (`subject`: the slot
    /// of its keyed hash, made once by a caller that looks through many).
    pub fn is_tied_to(&self, subject: &Slot) -> bool {
        self.subjects
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .contains(subject)
    }

    /// Whether this process's cache replaced or removed it.
    pub fn is_retired(&self) -> bool {
        self.retired.load(Ordering::Acquire)
    }

    /// How long it is fresh for.
    pub fn ttl(&self) -> Duration {
        Duration::from_millis(self.ttl_ms)
    }

    /// Its estimated size in bytes (what it weighs in the cache).
    pub fn weight(&self) -> u32 {
        self.weight
    }

    pub fn age(&self, now: Instant) -> Duration {
        now.saturating_duration_since(self.stored_at)
    }

    /// Fresh: within its TTL and the caller's `max_age`.
    pub fn is_fresh(&self, now: Instant, max_age: Option<Duration>) -> bool {
        let age = self.age(now);
        age <= self.ttl() && max_age.is_none_or(|m| age <= m)
    }

    /// Still servable as a stale answer when its source fails.
    pub fn within_grace(&self, now: Instant, grace: Duration) -> bool {
        self.age(now) <= self.ttl() + grace
    }
}

/// What an entry holds in memory beside its text: the entry itself (128
/// bytes with its `Arc`), the cache's node, timer and queue slots for it,
/// its key and its subjects. With `PROFILE` and the text, a person found
/// on one source weighs about 750 bytes, of the 830-970 resident bytes
/// `enrichd-bench memory` measures (the rest is the allocator's; the
/// estimate was under 400 before it was measured).
const ENTRY: usize = 448;
/// A boxed profile (256 bytes, its allocator class). Its source id and
/// platform are the catalog's, shared.
const PROFILE: usize = 256;

/// The memory an entry holds (what it weighs in the cache): the fixed
/// parts above and the text it keeps.
fn estimate(detail: &Option<String>, profile: &Option<Profile>) -> u32 {
    let mut bytes = ENTRY + detail.as_ref().map_or(0, String::len);
    if let Some(p) = profile {
        let prov = |url: &str, sel: &str| 96 + url.len() + sel.len();
        bytes += PROFILE + p.provenance.url.len();
        for f in p.fields.values().chain(p.extra.values()) {
            bytes += 48 + f.value.as_text().len() + prov(&f.provenance.url, &f.provenance.selector);
        }
        for a in &p.accounts {
            bytes += 64
                + [&a.platform, &a.url, &a.username]
                    .iter()
                    .map(|s| s.as_ref().map_or(0, String::len))
                    .sum::<usize>()
                + prov(&a.provenance.url, &a.provenance.selector);
        }
    }
    u32::try_from(bytes).unwrap_or(u32::MAX)
}

struct EntryExpiry {
    grace: Duration,
}

impl Expiry<Slot, Arc<Entry>> for EntryExpiry {
    fn expire_after_create(
        &self,
        _slot: &Slot,
        value: &Arc<Entry>,
        _at: std::time::Instant,
    ) -> Option<Duration> {
        Some(value.ttl() + self.grace)
    }
}

/// What the in-process cache is keyed by, and an entry's subjects held as:
/// the 32 bytes a keyed hash's 64 hex digits spell (half the size, in
/// place of a string of its own for each).
pub type Slot = [u8; 32];

/// The slot of a cache key or subject. Both are the hasher's hex digits;
/// anything else (never made here) gets the slot of its SHA-256.
pub fn slot(key: &str) -> Slot {
    let mut out = [0; 32];
    if hex::decode_to_slice(key, &mut out).is_err() {
        use sha2::Digest as _;
        out = sha2::Sha256::digest(key.as_bytes()).into();
    }
    out
}

/// A slot as its key again (the shared tier and the ledger name keys so).
pub fn key_of(slot: &Slot) -> String {
    hex::encode(slot)
}

/// The answer cache: keyed hashes to entries, bounded by weight.
pub type AnswerCache = moka::future::Cache<Slot, Arc<Entry>>;

/// Stores `entry` under `slot`, retiring the entry it replaces (the
/// cache's only way in: what a memo was built from is then known to be
/// gone without asking the cache).
pub async fn put(cache: &AnswerCache, slot: Slot, entry: Arc<Entry>) {
    cache
        .entry(slot)
        .and_compute_with(|old| {
            if let Some(old) = old {
                old.into_value().retired.store(true, Ordering::Release);
            }
            std::future::ready(moka::ops::compute::Op::Put(entry))
        })
        .await;
}

/// Removes the entry under `slot`, retiring it (the cache's only way out
/// but expiry and eviction).
pub async fn remove(cache: &AnswerCache, slot: &Slot) {
    if let Some(entry) = cache.remove(slot).await {
        entry.retired.store(true, Ordering::Release);
    }
}

/// Removes every entry tied to `subject`; returns their keys.
pub async fn forget(cache: &AnswerCache, subject: &str) -> std::collections::HashSet<String> {
    let mut removed = std::collections::HashSet::new();
    let subject = slot(subject);
    for (slot, entry) in cache.iter() {
        if entry.is_tied_to(&subject) {
            remove(cache, &slot).await;
            removed.insert(key_of(&slot));
        }
    }
    removed
}

/// Builds the cache, or `None` when it is disabled.
pub fn build(config: &CacheConfig) -> Option<AnswerCache> {
    config.enabled.then(|| {
        moka::future::Cache::builder()
            .max_capacity(config.max_bytes)
            .weigher(|_slot: &Slot, entry: &Arc<Entry>| entry.weight)
            .expire_after(EntryExpiry {
                grace: config.stale_grace,
            })
            .build()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_and_its_slot_name_each_other() {
        let key = "0123456789abcdef".repeat(4);
        assert_eq!(key_of(&slot(&key)), key);
        assert_eq!(slot(&key)[..2], [0x01, 0x23]);
        // Not hex: a slot all the same, distinct from another key's.
        assert_eq!(slot("not a key"), slot("not a key"));
        assert_ne!(slot("not a key"), slot("not a key!"));
        assert_ne!(slot("not a key"), slot(&key));
    }

    #[test]
    fn an_entry_is_tied_to_each_subject_once_and_to_no_other() {
        let answer = Answer {
            outcome: Outcome::NotFound,
            detail: None,
            http_status: Some(404),
            profile: None,
        };
        let entry = Entry::new(
            "s".into(),
            answer,
            Duration::from_secs(60),
            &SharedClock::system(),
        );
        let tied = |subject: &str| entry.is_tied_to(&slot(subject));
        assert!(!tied("a"));
        assert!(entry.tie("a"), "first tie");
        assert!(!entry.tie("a"), "tied already");
        assert!(entry.tie("b"));
        assert!(tied("a") && tied("b"));
        assert!(!tied("c") && !tied(""));
        let held = entry.subjects.lock().unwrap();
        assert_eq!(held.len(), 2);
    }

    #[test]
    fn an_entry_fits_the_allocator_s_128_byte_class_with_its_arc() {
        // An `Arc`'s two counts and the entry: past 128 bytes it takes the
        // next class (160), 32 bytes more for every cached answer.
        assert!(std::mem::size_of::<Entry>() + 16 <= 128);
        assert!(
            std::mem::size_of::<Profile>() <= 256,
            "a boxed profile's class"
        );
    }
}
