//! The source engine: for one identifier, every applicable source runs
//! concurrently, each under its own timeout and all under the request's
//! deadline; handles and URLs found become inputs of a next round (pivots),
//! up to a depth limit, each (source, input) asked once.
mod ask;
pub mod detect;
pub mod extract;
mod html;
pub mod http;
pub mod live;
mod pivots;

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use futures::future::join_all;
use tracing::debug;

use crate::cache::{AnswerCache, CacheConfig, Entry};
use crate::cluster::Cluster;
use crate::cluster::cache::SharedCache;
use crate::fetch::HttpClient;
use crate::resilience::{Guard, ResilienceConfig};
use crate::verify::Verifier;
use enrichd_core::catalog::Catalog;
use enrichd_core::catalog::input::{Input, seed_inputs};
use enrichd_core::catalog::source::Source;
use enrichd_core::clock::SharedClock;
use enrichd_core::compliance::policy::{self, FieldPolicy};
use enrichd_core::identity::Identifier;
use enrichd_core::model::{
    CachePolicy, Confidence, InputKind, Outcome, Profile, Purpose, SkipReason, SourceOutcome,
};
use enrichd_core::privacy::KeyedHasher;
pub use pivots::PivotLimits;
use pivots::pivots_of;

/// What the engine found for one request.
#[derive(Debug, Default)]
pub struct Findings {
    /// One per (source, input) asked, then one per source not asked.
    pub outcomes: Vec<SourceOutcome>,
    pub profiles: Vec<Profile>,
    /// The cache keys this request read or wrote.
    pub cache_keys: Vec<String>,
    /// The fresh cache hits: the outcome each answered, its key and entry.
    pub hits: Vec<Hit>,
}

/// A fresh cache hit of one request: which outcome it answered, from which
/// entry under which key.
#[derive(Debug, Clone)]
pub struct Hit {
    pub outcome: usize,
    /// The in-process cache's slot of its key (a memo keeps its hits).
    pub key: crate::cache::Slot,
    pub entry: Arc<Entry>,
}

impl Findings {
    /// Every source asked answered from a fresh cache entry, and every
    /// other was left out by the request itself (its purpose, fields,
    /// inputs, the depth limit or a disabled source): asked again with the
    /// same entries in the cache, the engine would find the same.
    pub fn from_fresh_entries(&self) -> bool {
        let fresh = self
            .outcomes
            .iter()
            .filter(|o| match o.outcome {
                Outcome::Skipped(SkipReason::CacheOnly) => false,
                Outcome::Skipped(_) => true,
                _ => o.cached && !o.stale,
            })
            .count();
        fresh == self.outcomes.len()
            && self.hits.len() == self.outcomes.iter().filter(|o| o.cached).count()
    }
}

pub struct Engine {
    catalog: Arc<Catalog>,
    client: HttpClient,
    verifier: Verifier,
    max_depth: u32,
    pivots: PivotLimits,
    env: Arc<http::Env>,
    cache: Option<AnswerCache>,
    /// The replicas' tier behind `cache`, when they share one.
    shared: Option<SharedCache>,
    stale_grace: std::time::Duration,
    hasher: KeyedHasher,
    clock: SharedClock,
    guards: HashMap<Arc<str>, Guard>,
}

/// What every source asked for one request shares.
pub(crate) struct Asking<'a> {
    /// The subject (keyed hash) the answers are for: their lineage.
    pub subject: &'a str,
    pub deadline: tokio::time::Instant,
    pub policy: CachePolicy,
    /// The cache keys read or written, collected.
    pub keys: &'a std::sync::Mutex<Vec<String>>,
}

/// What the engine needs besides the catalog.
pub struct EngineParts {
    pub client: HttpClient,
    pub verifier: Verifier,
    pub max_depth: u32,
    pub pivots: PivotLimits,
    pub cache: CacheConfig,
    pub resilience: ResilienceConfig,
    pub hasher: KeyedHasher,
    pub clock: SharedClock,
    /// Shared with other replicas: budgets, pauses and the second cache tier.
    pub cluster: Option<Arc<Cluster>>,
}

impl Engine {
    pub fn new(catalog: Arc<Catalog>, parts: EngineParts) -> Self {
        let secrets = catalog.secrets().clone();
        let guards = catalog
            .sources()
            .iter()
            .map(|s| {
                let guard = Guard::new(
                    s,
                    &parts.resilience,
                    parts.clock.clone(),
                    parts.cluster.as_ref(),
                );
                (s.id.clone(), guard)
            })
            .collect();
        Self {
            catalog,
            client: parts.client,
            verifier: parts.verifier,
            max_depth: parts.max_depth,
            pivots: parts.pivots,
            env: Arc::new(move |name: &str| secrets.get(name)),
            cache: crate::cache::build(&parts.cache),
            shared: parts
                .cluster
                .filter(|_| parts.cache.enabled)
                .map(|c| SharedCache::new(c, parts.cache.stale_grace, parts.clock.clone())),
            stale_grace: parts.cache.stale_grace,
            hasher: parts.hasher,
            clock: parts.clock,
            guards,
        }
    }

    /// Removes every cached entry a subject's enrichments used (their
    /// lineage), pivots and guesses included, in this process and in the
    /// replicas' shared tier. Returns how many there were.
    /// The canary: every username source asked for a random name nobody
    /// holds, each within its own rate budget (shared with the calls, and
    /// across replicas when they share one).
    pub async fn canary(&self) -> Vec<live::Check> {
        use futures::StreamExt;
        let asks: Vec<_> = live::canary_sources(&self.catalog, None)
            .map(|source| self.canary_one(source))
            .collect();
        let mut checks: Vec<live::Check> = futures::stream::iter(asks)
            .buffer_unordered(16)
            .filter_map(std::future::ready)
            .collect()
            .await;
        checks.sort_by(|a, b| a.source.cmp(&b.source));
        checks
    }

    async fn canary_one(&self, source: &Source) -> Option<live::Check> {
        if let Some(guard) = self.guards.get(&*source.id) {
            let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(60);
            guard.rate_slot(deadline).await.ok()?;
        }
        live::canary_check(source, &self.client, self.catalog.secrets()).await
    }

    pub async fn forget(&self, subject: &str) -> u32 {
        let mut removed: HashSet<String> = match &self.cache {
            Some(cache) => crate::cache::forget(cache, subject).await,
            None => return 0,
        };
        if let Some(shared) = &self.shared {
            removed.extend(shared.forget(subject).await);
        }
        u32::try_from(removed.len()).unwrap_or(u32::MAX)
    }

    /// The in-process cache, for what must reach it from outside a call
    /// (erasures learnt from other processes).
    /// The HTTP client sources are asked with (batch webhooks use it too,
    /// under the same rules on private addresses).
    pub fn http_client(&self) -> &HttpClient {
        &self.client
    }

    pub fn local_cache(&self) -> Option<AnswerCache> {
        self.cache.clone()
    }

    /// Removes these entries (an enrichment cleaning up after an erasure
    /// that overtook it).
    pub async fn drop_entries(&self, keys: &[String]) {
        if let Some(cache) = &self.cache {
            for key in keys {
                crate::cache::remove(cache, &crate::cache::slot(key)).await;
            }
        }
        if let Some(shared) = &self.shared {
            shared.drop_entries(keys).await;
        }
    }

    /// The cached entries a subject's enrichments used (those still
    /// servable), in this process and the shared tier.
    pub async fn cached(&self, subject: &str) -> Vec<Arc<Entry>> {
        let Some(cache) = &self.cache else {
            return Vec::new();
        };
        let now = self.clock.now();
        let mut keys = HashSet::new();
        let tied_to = crate::cache::slot(subject);
        let mut out: Vec<Arc<Entry>> = cache
            .iter()
            .filter(|(_, e)| e.is_tied_to(&tied_to) && e.within_grace(now, self.stale_grace))
            .map(|(slot, entry)| {
                keys.insert(crate::cache::key_of(&slot));
                entry
            })
            .collect();
        if let Some(shared) = &self.shared {
            for (key, entry) in shared.of_subject(subject).await {
                if !keys.contains(&key) && entry.within_grace(now, self.stale_grace) {
                    entry.tie(subject);
                    out.push(Arc::new(entry));
                }
            }
        }
        out.sort_by(|a, b| a.source_id.cmp(&b.source_id));
        out
    }

    /// Whether each of these hits' entries is still the one under its key
    /// in this process's cache (an erasure, an eviction or a refresh
    /// replaced or removed it otherwise). Each counts as a read of its
    /// entry, which keeps it from being evicted as unused.
    pub async fn still_cached(&self, hits: &[Hit]) -> bool {
        let Some(cache) = self.cache.as_ref() else {
            return false;
        };
        for hit in hits {
            match cache.get(&hit.key).await {
                Some(entry) if Arc::ptr_eq(&entry, &hit.entry) => {}
                _ => return false,
            }
        }
        true
    }

    /// The ages of these hits' entries, if none was replaced or removed
    /// from this process's cache (`Entry::is_retired`) and every one is
    /// still fresh for `max_age`; counted as the cache hits they stand for.
    /// Expiry and eviction retire nothing: a memo expires with its first
    /// entry, and checks it is still the cache's (`still_cached`) now and then.
    pub fn still_fresh(
        &self,
        hits: &[Hit],
        max_age: Option<std::time::Duration>,
    ) -> Option<Vec<std::time::Duration>> {
        let now = self.clock.now();
        if !hits
            .iter()
            .all(|h| !h.entry.is_retired() && h.entry.is_fresh(now, max_age))
        {
            return None;
        }
        for hit in hits {
            if let Some(guard) = self.guards.get(&hit.entry.source_id) {
                guard.count_cache(crate::resilience::CacheResult::Hit);
            }
        }
        Some(hits.iter().map(|h| h.entry.age(now)).collect())
    }

    pub fn catalog(&self) -> &Arc<Catalog> {
        &self.catalog
    }

    /// Runs every applicable source for `identifier` under `purpose`, of
    /// those that feed a field in `fields`.
    pub async fn run(
        &self,
        identifier: &Identifier,
        purpose: &Purpose,
        fields: &FieldPolicy,
        subject: &str,
        deadline: tokio::time::Instant,
        policy: CachePolicy,
    ) -> Findings {
        let keys = std::sync::Mutex::new(Vec::new());
        let ctx = Asking {
            subject,
            deadline,
            policy,
            keys: &keys,
        };
        let mut findings = self.rounds(identifier, purpose, fields, &ctx).await;
        findings.cache_keys = keys.into_inner().unwrap_or_else(|p| p.into_inner());
        findings
    }

    async fn rounds(
        &self,
        identifier: &Identifier,
        purpose: &Purpose,
        fields: &FieldPolicy,
        ctx: &Asking<'_>,
    ) -> Findings {
        let mut findings = Findings::default();
        let mut eligible: Vec<&Arc<Source>> = Vec::new();
        for source in self.catalog.sources() {
            let refusal = policy::source_refusal(source, purpose)
                .or_else(|| policy::field_refusal(source, fields));
            match refusal {
                Some((reason, why)) => findings.outcomes.push(
                    SourceOutcome::new(&source.id, source.input, 0, Outcome::Skipped(reason))
                        .with_detail(why),
                ),
                None => eligible.push(source),
            }
        }

        let seeds = seed_inputs(identifier);
        let seed_keys: HashSet<(InputKind, String)> =
            seeds.iter().map(|i| (i.kind, i.value.clone())).collect();
        let mut asked: HashSet<(Arc<str>, String)> = HashSet::new();
        let mut profile_inputs: Vec<String> = Vec::new();
        let mut confirmed: HashSet<(InputKind, String)> = HashSet::new();
        let mut beyond_depth: HashSet<InputKind> = HashSet::new();
        let mut pivots_added = 0;
        let mut pattern_skips: HashMap<Arc<str>, String> = HashMap::new();
        let mut round = seeds;

        while !round.is_empty() {
            let mut tasks = Vec::new();
            for input in &round {
                for source in eligible.iter().filter(|s| s.input == input.kind) {
                    if let Some(pattern) = &source.input_pattern
                        && !pattern.is_match(&input.value)
                    {
                        pattern_skips.insert(
                            source.id.clone(),
                            format!("the input does not match {}", pattern.as_str()),
                        );
                        continue;
                    }
                    if asked.insert((source.id.clone(), input.value.clone())) {
                        tasks.push((Arc::clone(source), input.clone()));
                    }
                }
            }
            debug!(tasks = tasks.len(), depth = round[0].depth, "source round");
            let results = join_all(tasks.iter().map(|(s, i)| self.ask(s, i, ctx))).await;
            let mut next = Vec::new();
            for ((source, input), asked_result) in tasks.iter().zip(results) {
                if let Some(profile) = &asked_result.profile {
                    let pivots = pivots_of(source, profile, input);
                    if pivots.len() > self.pivots.per_profile {
                        debug!(
                            source = %source.id,
                            links = pivots.len(),
                            kept = self.pivots.per_profile,
                            "a profile's links past sources.max_pivots_per_profile left out"
                        );
                    }
                    for pivot in pivots.into_iter().take(self.pivots.per_profile) {
                        let key = (pivot.kind, pivot.value.clone());
                        if seed_keys.contains(&key) {
                            // Never re-query the seed; a pivot confirms a guessed handle.
                            confirmed.insert(key);
                        } else if pivot.depth > self.max_depth {
                            beyond_depth.insert(pivot.kind);
                        } else if pivots_added >= self.pivots.per_call {
                            // sources.max_pivots_per_call reached: no more.
                        } else if let Some(same) = next
                            .iter_mut()
                            .find(|n: &&mut Input| n.kind == pivot.kind && n.value == pivot.value)
                        {
                            // Reached twice: the better-founded path counts.
                            same.confidence = same.confidence.max(pivot.confidence);
                        } else {
                            pivots_added += 1;
                            next.push(pivot);
                        }
                    }
                }
                if let Some((key, entry)) = asked_result.hit {
                    let outcome = findings.outcomes.len();
                    findings.hits.push(Hit {
                        outcome,
                        key,
                        entry,
                    });
                }
                findings.outcomes.push(asked_result.outcome);
                if let Some(mut p) = asked_result.profile {
                    p.found_via = input.via.clone();
                    findings.profiles.push(p);
                    profile_inputs.push(input.value.clone());
                }
            }
            round = next;
        }

        // A handle guessed from the local part and confirmed by an exact match's
        // pivot is a pivot, not a guess.
        for (profile, value) in findings.profiles.iter_mut().zip(&profile_inputs) {
            if profile.provenance.confidence == Confidence::Guess
                && confirmed.contains(&(InputKind::Username, value.clone()))
            {
                profile.provenance.confidence = Confidence::Pivot;
                for f in profile
                    .fields
                    .values_mut()
                    .chain(profile.extra.values_mut())
                {
                    f.provenance.confidence = Confidence::Pivot;
                }
            }
        }

        let answered: HashSet<&str> = findings
            .outcomes
            .iter()
            .map(|o| o.source_id.as_str())
            .collect();
        let mut unasked = Vec::new();
        for source in eligible.iter().filter(|s| !answered.contains(&*s.id)) {
            let (reason, why) = if let Some(why) = pattern_skips.get(&*source.id) {
                (SkipReason::InputNotApplicable, why.clone())
            } else if beyond_depth.contains(&source.input) {
                (
                    SkipReason::Depth,
                    format!(
                        "its input came beyond the pivot depth limit ({})",
                        self.max_depth
                    ),
                )
            } else {
                (
                    SkipReason::InputNotApplicable,
                    format!("no {} input for this identifier", source.input),
                )
            };
            unasked.push(
                SourceOutcome::new(&source.id, source.input, 0, Outcome::Skipped(reason))
                    .with_detail(why),
            );
        }
        findings.outcomes.extend(unasked);
        findings
    }
}
