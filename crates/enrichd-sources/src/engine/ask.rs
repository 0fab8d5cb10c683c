//! Asking one source for one input: through the cache as the request's
//! policy allows, under the source's guard (breaker, pause, rate limit,
//! concurrency cap), with retries for transient failures.
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use super::http::{self, Asked};
use super::{Asking, Engine};
use crate::cache::{Answer, Entry};
use crate::resilience::breaker::State;
use crate::resilience::retry::backoff;
use crate::resilience::{CacheResult, Refusal};
use enrichd_core::catalog::input::Input;
use enrichd_core::catalog::source::{Source, SourceKind};
use enrichd_core::clock::SharedClock;
use enrichd_core::model::MxStatus;
use enrichd_core::model::{CacheMode, Outcome, SkipReason, SourceOutcome};

/// Longest pause between two attempts.
const MAX_BACKOFF: Duration = Duration::from_secs(5);

/// The answers worth keeping: found and not found. Errors, timeouts and
/// refusals say nothing lasting about the person.
fn cacheable(source: &Source, asked: &Asked, clock: &SharedClock) -> Option<Entry> {
    let ttl = match asked.outcome.outcome {
        Outcome::Found => source.limits.cache_ttl,
        Outcome::NotFound => source.limits.negative_ttl,
        _ => return None,
    };
    let answer = Answer {
        outcome: asked.outcome.outcome,
        detail: asked.outcome.detail.clone(),
        http_status: asked.outcome.http_status,
        profile: asked.profile.clone(),
    };
    Some(Entry::new(source.id.clone(), answer, ttl, clock))
}

/// A cached answer as this request's outcome (its input's confidence and depth).
fn from_entry(source: &Source, input: &Input, entry: &Entry, now: Instant) -> Asked {
    let mut outcome = SourceOutcome::new(&source.id, input.kind, input.depth, entry.outcome);
    outcome.detail = entry.detail.as_deref().map(str::to_owned);
    outcome.http_status = entry.http_status;
    outcome.cached = true;
    outcome.cache_age = Some(entry.age(now));
    let profile = entry.profile.as_deref().cloned().map(|mut p| {
        p.provenance.confidence = input.confidence;
        for f in p.fields.values_mut().chain(p.extra.values_mut()) {
            f.provenance.confidence = input.confidence;
        }
        for a in &mut p.accounts {
            a.provenance.confidence = input.confidence;
        }
        p
    });
    Asked {
        outcome,
        profile,
        retryable: false,
        hit: None,
    }
}

fn failed(asked: &Asked) -> bool {
    matches!(
        asked.outcome.outcome,
        Outcome::Error | Outcome::Timeout | Outcome::RateLimited | Outcome::CircuitOpen
    )
}

impl Engine {
    fn cache_metric(&self, source: &Source, result: CacheResult) {
        if let Some(guard) = self.guards.get(&*source.id) {
            guard.count_cache(result);
        }
    }

    pub(super) fn cache_key(&self, source: &Source, input: &Input) -> String {
        let (id, kind, value) = (&source.id, input.kind.as_str(), &input.value);
        self.hasher.hash_parts(&[
            id.as_bytes(),
            b"\0",
            kind.as_bytes(),
            b"\0",
            value.as_bytes(),
        ])
    }

    /// An entry another replica stored, now in this process's cache too.
    async fn shared_entry(&self, key: &str) -> Option<Arc<Entry>> {
        let entry = Arc::new(self.shared.as_ref()?.get(key).await?);
        if let Some(cache) = &self.cache {
            crate::cache::put(cache, crate::cache::slot(key), entry.clone()).await;
        }
        Some(entry)
    }

    /// Ties an entry to the subject whose enrichment uses it, in the shared
    /// tier's lineage too the first time.
    async fn tie(&self, key: &str, entry: &Entry, subject: &str) {
        if entry.tie(subject)
            && let Some(shared) = &self.shared
        {
            Box::pin(shared.tie(key, entry, subject)).await;
        }
    }

    /// Keeps a fresh answer, in process and for the other replicas.
    async fn store(&self, key: &str, entry: Arc<Entry>, subject: &str) {
        if let Some(shared) = &self.shared {
            shared.put(key, &entry, subject).await;
        }
        if let Some(cache) = &self.cache {
            crate::cache::put(cache, crate::cache::slot(key), entry).await;
        }
    }

    /// Asks a source, through the cache as `policy` allows.
    pub(super) async fn ask(&self, source: &Arc<Source>, input: &Input, ctx: &Asking<'_>) -> Asked {
        let (deadline, policy) = (ctx.deadline, ctx.policy);
        let started = enrichd_core::clock::Stopwatch::start();
        let now = self.clock.now();
        let Some(cache) = &self.cache else {
            return Box::pin(self.call(source, input, deadline)).await;
        };
        let key = self.cache_key(source, input);
        let slot = crate::cache::slot(&key);
        ctx.keys
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(key.clone());
        let tied = |entry: Entry| {
            entry.tie(ctx.subject);
            Arc::new(entry)
        };
        let existing = match policy.mode {
            CacheMode::Refresh => None,
            _ => match cache.get(&slot).await {
                Some(entry) => Some(entry),
                None => Box::pin(self.shared_entry(&key)).await,
            },
        };
        let mut asked = match (existing, policy.mode) {
            (Some(entry), _) if entry.is_fresh(now, policy.max_age) => {
                self.cache_metric(source, CacheResult::Hit);
                self.tie(&key, &entry, ctx.subject).await;
                let mut asked = from_entry(source, input, &entry, now);
                asked.hit = Some((slot, entry));
                asked
            }
            (Some(entry), CacheMode::CacheOnly) => {
                self.cache_metric(source, CacheResult::Stale);
                self.tie(&key, &entry, ctx.subject).await;
                let mut asked = from_entry(source, input, &entry, now);
                asked.outcome.stale = true;
                asked
            }
            (None, CacheMode::CacheOnly) => {
                self.cache_metric(source, CacheResult::Miss);
                Asked::new(
                    SourceOutcome::new(
                        &source.id,
                        input.kind,
                        input.depth,
                        Outcome::Skipped(SkipReason::CacheOnly),
                    )
                    .with_detail("cache-only request and nothing cached"),
                )
            }
            // Past its TTL (or the caller's max_age): ask again, and fall back
            // on the old answer, marked stale, if the source fails.
            (Some(old), _) => {
                self.cache_metric(source, CacheResult::Miss);
                let asked = Box::pin(self.call(source, input, deadline)).await;
                if let Some(entry) = cacheable(source, &asked, &self.clock) {
                    Box::pin(self.store(&key, tied(entry), ctx.subject)).await;
                    asked
                } else if failed(&asked) && old.within_grace(now, self.stale_grace) {
                    self.cache_metric(source, CacheResult::Stale);
                    self.tie(&key, &old, ctx.subject).await;
                    let mut stale = from_entry(source, input, &old, now);
                    stale.outcome.stale = true;
                    stale.outcome.fetched = asked.outcome.fetched;
                    stale.outcome.detail = Some(format!(
                        "served a stale answer: the source failed ({})",
                        asked
                            .outcome
                            .detail
                            .as_deref()
                            .unwrap_or(asked.outcome.outcome.name())
                    ));
                    stale
                } else {
                    asked
                }
            }
            (None, CacheMode::Refresh) => {
                let asked = Box::pin(self.call(source, input, deadline)).await;
                if let Some(entry) = cacheable(source, &asked, &self.clock) {
                    Box::pin(self.store(&key, tied(entry), ctx.subject)).await;
                }
                asked
            }
            // A miss: concurrent misses for one key share one upstream call
            // (across replicas too, through a short lock in the shared tier);
            // if the leading caller goes away, a waiting one takes over.
            (None, _) => {
                self.cache_metric(source, CacheResult::Miss);
                let ran = AtomicBool::new(false);
                // Boxed, as every upstream path here: a cache hit's
                // future stays small (it is moved into the request's join).
                // The upstream call is boxed on its own too: moka's nested
                // futures each hold a copy of what they are given (12 KB a
                // miss with it inline, against 4 KB for the call itself).
                let result = Box::pin(cache.try_get_with(
                    slot,
                    Box::pin(async {
                        if let Some(shared) = &self.shared
                            && let Some(entry) = shared.lock_or_wait(&key, deadline).await
                        {
                            return Ok(Arc::new(entry));
                        }
                        ran.store(true, Ordering::Relaxed);
                        let asked = self.call(source, input, deadline).await;
                        match cacheable(source, &asked, &self.clock) {
                            Some(entry) => {
                                let entry = tied(entry);
                                if let Some(shared) = &self.shared {
                                    shared.put(&key, &entry, ctx.subject).await;
                                }
                                Ok(entry)
                            }
                            None => {
                                if let Some(shared) = &self.shared {
                                    shared.unlock(&key).await;
                                }
                                Err(asked)
                            }
                        }
                    }),
                ))
                .await;
                let ran = ran.load(Ordering::Relaxed);
                match result {
                    Ok(entry) => {
                        // A call that shared another's fetch uses it too.
                        self.tie(&key, &entry, ctx.subject).await;
                        let mut asked = from_entry(source, input, &entry, now);
                        if ran {
                            asked.outcome.cached = false;
                            asked.outcome.cache_age = None;
                            asked.outcome.latency = started.elapsed();
                            asked.outcome.fetched = true;
                        }
                        asked
                    }
                    Err(shared) => {
                        let mut asked = (*shared).clone();
                        // Another call's request, not this one's.
                        asked.outcome.fetched &= ran;
                        asked
                    }
                }
            }
        };
        if asked.outcome.cached {
            asked.outcome.latency = started.elapsed();
        }
        asked
    }

    /// An upstream call under the source's guard, with retries.
    async fn call(
        &self,
        source: &Arc<Source>,
        input: &Input,
        deadline: tokio::time::Instant,
    ) -> Asked {
        let started = enrichd_core::clock::Stopwatch::start();
        let Some(guard) = self.guards.get(&*source.id) else {
            let mut asked = self.attempt(source, input, deadline).await;
            asked.outcome.fetched = true;
            return asked;
        };
        let refuse = |outcome: Outcome, retry_after: Option<Duration>, why: &str| {
            let mut o =
                SourceOutcome::new(&source.id, input.kind, input.depth, outcome).with_detail(why);
            o.retry_after = retry_after;
            o.latency = started.elapsed();
            metrics::counter!("enrichd_source_outcomes_total", "source" => source.id.clone(), "outcome" => outcome.name())
                .increment(1);
            Asked::new(o)
        };
        if let SourceKind::Http(h) = &source.kind
            && let Err(refused) = http::preflight(source, h, input, self.env.as_ref())
        {
            metrics::counter!("enrichd_source_outcomes_total", "source" => source.id.clone(), "outcome" => refused.outcome.outcome.name())
                .increment(1);
            return *refused;
        }
        let _slot = match guard.admit(deadline).await {
            Ok(slot) => slot,
            Err(Refusal::RateLimited(wait)) => {
                return refuse(
                    Outcome::RateLimited,
                    Some(wait),
                    "no request slot before the deadline (the source's rate limit or its Retry-After)",
                );
            }
            Err(Refusal::CircuitOpen(wait)) => {
                return refuse(
                    Outcome::CircuitOpen,
                    Some(wait),
                    "the source failed repeatedly; calls resume after a cool-down",
                );
            }
            Err(Refusal::Saturated) => {
                return refuse(
                    Outcome::Timeout,
                    None,
                    "no concurrency slot for the source before the deadline",
                );
            }
        };
        guard.budget.deposit();
        let idempotent = match &source.kind {
            SourceKind::Http(h) => matches!(
                h.request.method,
                reqwest::Method::GET | reqwest::Method::HEAD
            ),
            SourceKind::DnsMx => true,
        };
        let mut retries = 0;
        let mut asked = loop {
            metrics::counter!("enrichd_source_requests_total", "source" => source.id.clone())
                .increment(1);
            let asked = self.attempt(source, input, deadline).await;
            if !(asked.retryable && idempotent && retries + 1 < source.limits.retry.attempts) {
                break asked;
            }
            let delay = backoff(source.limits.retry.backoff, retries, MAX_BACKOFF);
            if tokio::time::Instant::now() + delay >= deadline || !guard.budget.try_withdraw() {
                break asked;
            }
            tokio::time::sleep(delay).await;
            // A retry is a request like any other: it needs a rate-limit slot.
            if guard.rate_slot(deadline).await.is_err() {
                break asked;
            }
            retries += 1;
        };
        match asked.outcome.outcome {
            Outcome::RateLimited => {
                let wait = guard.pause(asked.outcome.retry_after);
                guard.share_pause(wait).await;
                asked.outcome.retry_after = Some(wait);
                guard.breaker.release_trial();
            }
            Outcome::Found | Outcome::NotFound => {
                guard.breaker.record(true);
                guard.succeeded();
            }
            Outcome::Error | Outcome::Timeout => {
                guard.breaker.record(false);
                guard.share_open().await;
            }
            _ => guard.breaker.release_trial(),
        }
        if retries > 0 {
            let detail = asked.outcome.detail.take().unwrap_or_default();
            asked.outcome.detail = Some(format!("{detail} (after {retries} retries)"));
        }
        asked.outcome.latency = started.elapsed();
        asked.outcome.fetched = true;
        let state = match guard.breaker.state() {
            State::Closed => 0.0,
            State::HalfOpen { .. } => 1.0,
            State::Open { .. } => 2.0,
        };
        metrics::gauge!("enrichd_source_breaker_state", "source" => source.id.clone()).set(state);
        metrics::counter!("enrichd_source_outcomes_total", "source" => source.id.clone(), "outcome" => asked.outcome.outcome.name())
            .increment(1);
        metrics::histogram!("enrichd_source_latency_seconds", "source" => source.id.clone())
            .record(asked.outcome.latency.as_secs_f64());
        asked
    }

    /// One attempt at one source, bounded by its timeout and the deadline.
    pub(super) async fn attempt(
        &self,
        source: &Arc<Source>,
        input: &Input,
        deadline: tokio::time::Instant,
    ) -> http::Asked {
        let started = enrichd_core::clock::Stopwatch::start();
        let budget = tokio::time::Instant::now() + source.limits.timeout;
        let until = budget.min(deadline);
        let work = async {
            match &source.kind {
                SourceKind::Http(h) => {
                    http::run(
                        source,
                        h,
                        input,
                        &self.client,
                        self.env.as_ref(),
                        &self.clock,
                    )
                    .await
                }
                SourceKind::DnsMx => {
                    let check = self.verifier.check_mx(&input.value).await;
                    let (outcome, detail) = match check.status {
                        MxStatus::Found { hosts } => (
                            Outcome::Found,
                            hosts
                                .iter()
                                .map(|h| format!("{} ({})", h.exchange, h.preference))
                                .collect::<Vec<_>>()
                                .join(", "),
                        ),
                        MxStatus::None { detail } => (Outcome::NotFound, detail),
                        MxStatus::Error { detail } => (Outcome::Error, detail),
                        MxStatus::Skipped => (
                            Outcome::Skipped(SkipReason::Disabled),
                            "MX checks are disabled".into(),
                        ),
                    };
                    let mut o = SourceOutcome::new(&source.id, input.kind, input.depth, outcome)
                        .with_detail(detail);
                    o.latency = check.latency;
                    http::Asked::new(o)
                }
            }
        };
        match tokio::time::timeout_at(until, work).await {
            Ok(asked) => asked,
            Err(_) => {
                let why = if until == deadline && deadline < budget {
                    "the request's deadline came first"
                } else {
                    "the source's timeout elapsed"
                };
                let mut o =
                    SourceOutcome::new(&source.id, input.kind, input.depth, Outcome::Timeout)
                        .with_detail(why);
                o.latency = started.elapsed();
                http::Asked::new(o)
            }
        }
    }
}
