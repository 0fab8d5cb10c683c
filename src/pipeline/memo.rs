//! The memo of a fully cached answer. A CRM asks about the same contact
//! every time someone opens it; when every source answered from a fresh
//! cache entry, what the sources found, merged, the interests scored from
//! it and its footprint (all but the accounts' age) can only change when
//! one of those entries does. So they are kept per person (with the
//! entries they came from) and reused while every entry is still the one
//! under its key in the cache and still fresh for the caller. Everything
//! else is done again for each call: the gate, the suppression list, the
//! verification (the MX cache has its own TTL), the cache ages, the
//! accounts' age and the risk (they depend on the time), the compliance
//! block and the ledger record.
//!
//! A memo is a copy of what the cache holds of a person, so it goes where
//! the cache goes: an erasure removes it with the person's cache entries
//! (under the erasure fence), one learnt from another process removes it
//! too, and it expires when the first of its entries stops being fresh.
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use chrono::{DateTime, Utc};

use super::merge::{self, Merged};
use super::parse::Subject;
use super::policy::Permitted;
use super::query::EnrichQuery;
use super::score::Lasting;
use super::{Enricher, roles};
use crate::clock::SharedClock;
use crate::compliance::policy::FieldPolicy;
use crate::engine::{Engine, Hit};
use crate::identity::Identifier;
use crate::model::{CacheMode, Confidence};
use enrichd_sources::cache::{Slot, slot};

/// What of a request decides what the sources find, how it is merged and
/// which interests are scored (the cache policy decides only whether the
/// entries may be used, and is checked against them on each call).
struct Shape {
    identifier: Identifier,
    purpose: String,
    fields: FieldPolicy,
    min_confidence: Option<Confidence>,
    name_hint: Option<String>,
    min_interest_score: Option<f64>,
    max_interests: Option<usize>,
}

impl Shape {
    fn of(subject: &Subject, permitted: &Permitted, query: &EnrichQuery) -> Self {
        Self {
            identifier: subject.identifier.clone(),
            purpose: permitted.ground.purpose.id.clone(),
            fields: permitted.fields.clone(),
            min_confidence: query.min_confidence,
            name_hint: query.name_hint.clone(),
            min_interest_score: query.min_interest_score,
            max_interests: query.max_interests,
        }
    }

    fn fits(&self, subject: &Subject, permitted: &Permitted, query: &EnrichQuery) -> bool {
        self.identifier == subject.identifier
            && self.purpose == permitted.ground.purpose.id
            && self.fields == permitted.fields
            && self.min_confidence == query.min_confidence
            && self.name_hint == query.name_hint
            && self.min_interest_score == query.min_interest_score
            && self.max_interests == query.max_interests
    }
}

/// How often a memo in use asks the cache whether its entries are still
/// there (it reads them, so they stay: the entries of a person answered
/// from the memo are not evicted as unused).
const RECHECK_MS: u64 = 1_000;

/// What a memo holds beside its entries' copies: itself (984 bytes), the
/// request's shape, the scores and the cache's node for it.
const MEMO: u32 = 2_400;

/// One person's fully cached findings, merged, and what of their scores
/// does not depend on the time.
pub(super) struct Memo {
    shape: Shape,
    /// Without the verification, which is done for each call.
    merged: Merged,
    lasting: Lasting,
    hits: Vec<Hit>,
    /// How long until the first of its entries stops being fresh.
    fresh_for: Duration,
    weight: u32,
    /// When it was made, and how long after that its entries were last
    /// found in the cache (milliseconds).
    made: std::time::Instant,
    checked_ms: AtomicU64,
}

impl Memo {
    /// The memo of a request whose sources all answered from the cache.
    pub(super) fn of(
        subject: &Subject,
        permitted: &Permitted,
        query: &EnrichQuery,
        merged: &Merged,
        lasting: &Lasting,
        hits: Vec<Hit>,
        clock: &SharedClock,
    ) -> Option<Self> {
        // A refresh asks every source: it has no hits, so no memo.
        if hits.is_empty() {
            return None;
        }
        let now = clock.now();
        let fresh_for = hits
            .iter()
            .map(|h| h.entry.ttl().saturating_sub(h.entry.age(now)))
            .min()?;
        // Its own copy of the findings, and the entries it keeps alive
        // (a memo over one source held 1.5-3.3 KB in `enrichd-bench memory`).
        let weight = hits
            .iter()
            .fold(MEMO, |w, h| w.saturating_add(h.entry.weight()));
        let mut merged = merged.clone();
        merged.verification = None;
        Some(Self {
            shape: Shape::of(subject, permitted, query),
            merged,
            lasting: lasting.clone(),
            hits,
            fresh_for,
            weight,
            made: now,
            checked_ms: AtomicU64::new(0),
        })
    }
}

impl Memo {
    /// Whether its entries are still the cache's, asked of the cache when
    /// `RECHECK_MS` has passed since it last was (else taken as still so).
    async fn recheck(&self, engine: &Engine, now: std::time::Instant) -> bool {
        let since_made =
            u64::try_from(now.saturating_duration_since(self.made).as_millis()).unwrap_or(u64::MAX);
        let checked = self.checked_ms.load(Ordering::Relaxed);
        if since_made.saturating_sub(checked) < RECHECK_MS {
            return true;
        }
        self.checked_ms.store(since_made, Ordering::Relaxed);
        Box::pin(engine.still_cached(&self.hits)).await
    }
}

/// The memos of this process, by subject (the 32 bytes of its keyed hash),
/// bounded in (estimated) bytes.
#[derive(Clone)]
pub(crate) struct Memos(moka::sync::Cache<Slot, Arc<Memo>>);

struct UntilStale;

impl moka::Expiry<Slot, Arc<Memo>> for UntilStale {
    fn expire_after_create(
        &self,
        _subject: &Slot,
        memo: &Arc<Memo>,
        _at: std::time::Instant,
    ) -> Option<Duration> {
        Some(memo.fresh_for)
    }
}

impl Memos {
    /// At most `max_bytes` of memos (a quarter of the answer cache's bound:
    /// they are copies of its entries).
    pub(crate) fn new(max_bytes: u64) -> Self {
        Self(
            moka::sync::Cache::builder()
                .max_capacity(max_bytes)
                .weigher(|_: &Slot, memo: &Arc<Memo>| memo.weight)
                .expire_after(UntilStale)
                .build(),
        )
    }

    /// Drops the person's memo (an erasure, or an answer withheld).
    pub(crate) fn forget(&self, subject: &str) {
        self.0.invalidate(&slot(subject));
    }

    pub(crate) fn held(&self) -> u64 {
        self.0.run_pending_tasks();
        self.0.entry_count()
    }

    pub(crate) fn forget_all(&self) {
        self.0.invalidate_all();
    }

    /// Keeps `memo` for the person, unless one of its entries left the
    /// cache meanwhile (an erasure learnt from another process removes the
    /// entries, then the memo: whichever order this runs in, none is left).
    pub(super) async fn keep(&self, subject: &str, memo: Box<Memo>, engine: &Engine) {
        let hits = memo.hits.clone();
        self.0.insert(slot(subject), Arc::from(memo));
        if !engine.still_cached(&hits).await {
            self.forget(subject);
        }
    }
}

impl Enricher {
    /// The merged findings and lasting scores of the person's memo, restamped
    /// for `now`, if the request fits it and its entries are all still
    /// cached and fresh for the caller.
    pub(super) async fn recall(
        &self,
        subject: &Subject,
        permitted: &Permitted,
        query: &EnrichQuery,
        now: DateTime<Utc>,
    ) -> Option<(Merged, Lasting)> {
        if query.cache.mode == CacheMode::Refresh {
            return None;
        }
        let started = crate::clock::Stopwatch::start();
        let memo = self.memos.0.get(&slot(&subject.hash))?;
        if !memo.shape.fits(subject, permitted, query) {
            return None;
        }
        let ages = self.engine.still_fresh(&memo.hits, query.cache.max_age)?;
        if !memo.recheck(&self.engine, self.clock.now()).await {
            return None;
        }
        // What answering from the cache took (the verification is not part of it).
        let latency = started.elapsed();
        let verification = self
            .verify(subject, &permitted.fields, query.deadline)
            .await;
        // The memo's findings, but for what is made again below.
        let kept = &memo.merged;
        let mut merged = Merged {
            verification: None,
            profiles: kept.profiles.clone(),
            possible_matches: kept.possible_matches.clone(),
            found: kept.found,
            outcomes: kept.outcomes.clone(),
            cache: kept.cache.clone(),
            coverage: kept.coverage,
            cache_keys: kept.cache_keys.clone(),
            roles: kept.roles.clone(),
            messaging_apps: Vec::new(),
        };
        for (hit, age) in memo.hits.iter().zip(ages) {
            let outcome = &mut merged.outcomes[hit.outcome];
            outcome.cache_age = Some(age);
            outcome.latency = latency;
        }
        merged.verification = verification;
        merged.cache = merge::cache_info(&merged.outcomes, query.cache.mode);
        merged.messaging_apps = roles::messaging_apps(
            &merged.profiles,
            &merged.outcomes,
            self.catalog(),
            &merged.roles.messaging_apps,
            now,
        );
        Some((merged, memo.lasting.clone()))
    }
}
