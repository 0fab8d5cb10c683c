//! The pipeline of one request, as named stages:
//!
//! gate -> parse -> suppress -> policy -> gather -> merge -> score -> comply
//! -> record -> answer
//!
//! Each stage is a function in the file of its name, with typed input and
//! output; the rules they apply live in `compliance` and `scoring`. Every
//! processing, refusals included, is recorded before it is answered.
mod answer;
mod comply;
mod corroborate;
mod gate;
mod gather;
mod memo;
mod merge;
mod parse;
mod policy;
mod query;
mod record;
mod roles;
mod score;
mod suppress;

use std::collections::BTreeMap;
use std::sync::Arc;

use tracing::{instrument, warn};

pub(crate) use merge::field_named as attribute_field;
pub use parse::{Subject, parse_identifier};
pub use query::{EnrichQuery, RawIdentifier};
pub(crate) use record::{Under, new_id, record_of};

use crate::cache::CacheConfig;
use crate::catalog::{Catalog, CatalogError};
use crate::clock::SharedClock;
use crate::cluster::{Cluster, ClusterConfig};
use crate::compliance::PurposeRegistry;
use crate::config::{Config, PurposeConfig};
use crate::engine::{Engine, EngineParts};
use crate::error::Error;
use crate::fence::ErasureFence;
use crate::fetch::{HttpClient, HttpConfig};
use crate::identity::Region;
use crate::ledger::{Ledger, LedgerError};
use crate::model::Enrichment;
use crate::privacy::KeyedHasher;
use crate::reference::{DomainLists, ReferenceError, ReferencePaths};
use crate::resilience::ResilienceConfig;
use crate::scoring::{ScoringData, ScoringPaths};
use crate::verify::{DnsConfig, ResolverError, Verifier};

#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    #[error(transparent)]
    Reference(#[from] ReferenceError),
    #[error(transparent)]
    Resolver(#[from] ResolverError),
    #[error(transparent)]
    Catalog(#[from] CatalogError),
    #[error("HTTP client: {0}")]
    Http(String),
    #[error(transparent)]
    Scoring(#[from] crate::scoring::data::ScoringDataError),
    #[error(transparent)]
    Ledger(#[from] LedgerError),
}

/// What the pipeline needs from the configuration, and nothing else.
#[derive(Debug, Clone)]
pub struct Settings {
    pub purposes: BTreeMap<String, PurposeConfig>,
    pub reference: ReferencePaths,
    pub dns: DnsConfig,
    pub http: HttpConfig,
    pub cache: CacheConfig,
    pub resilience: ResilienceConfig,
    pub scoring: ScoringPaths,
    pub cluster: ClusterConfig,
    /// Where the ledger lives (`sqlite://…` or `postgres://…`).
    pub ledger_url: String,
    /// How often the ledger's suppression list is followed.
    pub ledger_follow_every: std::time::Duration,
    /// How long an erasure waits for its redaction before answering
    /// (`ledger.erase_wait`, at most half of `server.request_timeout`).
    pub erase_wait: std::time::Duration,
    /// Pivot rounds after the identifier's own inputs.
    pub max_depth: u32,
    /// How many inputs pivots may add, per profile and per call.
    pub pivots: crate::engine::PivotLimits,
    /// Region for national phone numbers when the request names none.
    pub default_region: Option<Region>,
    /// Share of the sources asked that must answer for "not found".
    pub min_coverage: f64,
    /// Feedback on findings: precision, demotion, the canary.
    pub feedback: crate::feedback::FeedbackConfig,
    /// Mailbox deliverability by SMTP.
    pub smtp: enrichd_sources::smtp::SmtpConfig,
    pub clock: SharedClock,
}

impl Settings {
    pub fn from_config(config: &Config) -> Self {
        Self {
            purposes: config.purposes.clone(),
            reference: config.reference.clone(),
            dns: config.dns.clone(),
            http: config.http.clone(),
            cache: config.cache.clone(),
            resilience: config.resilience.clone(),
            scoring: config.scoring.clone(),
            cluster: config.cluster.clone(),
            ledger_url: config.ledger.url.clone(),
            ledger_follow_every: config.ledger.follow_every,
            // An erasure answers well within its request's time.
            erase_wait: config
                .ledger
                .erase_wait
                .min(config.server.request_timeout / 2),
            max_depth: config.sources.max_depth,
            pivots: crate::engine::PivotLimits {
                per_profile: config.sources.max_pivots_per_profile,
                per_call: config.sources.max_pivots_per_call,
            },
            min_coverage: config.sources.min_coverage,
            feedback: config.feedback.clone(),
            smtp: config.smtp.clone(),
            default_region: config
                .phone
                .default_region
                .as_deref()
                .and_then(|r| r.parse().ok()),
            clock: SharedClock::system(),
        }
    }

    /// The same settings, reading time from `clock`.
    pub fn with_clock(mut self, clock: SharedClock) -> Self {
        self.clock = clock;
        self
    }
}

/// Everything one enrichment needs, built once per process and shared.
pub struct Enricher {
    purposes: PurposeRegistry,
    scoring: ScoringData,
    verifier: Verifier,
    engine: Engine,
    ledger: Ledger,
    hasher: KeyedHasher,
    default_region: Option<Region>,
    min_coverage: f64,
    clock: SharedClock,
    erase_wait: std::time::Duration,
    fence: ErasureFence,
    /// Fully cached answers' findings, per person (`memo`).
    memos: memo::Memos,
    cluster: Option<Arc<Cluster>>,
    /// The catalog's Art. 9 sites, never asked, as every answer that ran
    /// the sources accounts for them.
    art9_sites_not_asked: Option<crate::model::Suppression>,
    /// What feedback and the canary say of each source.
    standing: Arc<crate::feedback::Standing>,
    feedback_bounds: Arc<crate::feedback::Bounds>,
    /// The HTTP settings (for known-account checks feedback schedules).
    http: HttpConfig,
}

/// The distinct names among `names`, in order: a call's few sources and
/// categories, where sorting a vector costs a fraction of building a set.
fn sorted_unique<'a>(names: impl Iterator<Item = &'a str>) -> Vec<&'a str> {
    let mut names: Vec<&str> = names.collect();
    names.sort_unstable();
    names.dedup();
    names
}

/// The ledger could not be written or read: no answer without its record.
pub(crate) fn unavailable(e: LedgerError) -> Error {
    warn!(error = %e, "ledger write failed; the answer is withheld");
    Error::Unavailable("the record of this processing could not be written; nothing was returned")
}

/// Refutations committed by other processes reach this one's memos of
/// fully cached answers: the person's next answer is merged again.
fn follow_refutations(ledger: &Ledger, memos: &memo::Memos) {
    let mut news = ledger.refutation_news();
    let memos = memos.clone();
    tokio::spawn(async move {
        loop {
            match news.recv().await {
                Ok(subject) => memos.forget(&subject),
                Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => memos.forget_all(),
                Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
            }
        }
    });
}

/// Erasures committed by other processes reach this one's cache: the
/// people the suppression list gains (read every 200 ms, and at once when a
/// replica announces an erasure through Redis) are dropped from it.
fn follow_erasures(
    ledger: &Ledger,
    engine: &Engine,
    memos: &memo::Memos,
    prober: Option<Arc<enrichd_sources::smtp::Prober>>,
    cluster: Option<&Cluster>,
) {
    let cache = engine.local_cache();
    if cache.is_some() || prober.is_some() {
        let mut news = ledger.suppression_news();
        let memos = memos.clone();
        tokio::spawn(async move {
            loop {
                match news.recv().await {
                    Ok(subject) => {
                        if let Some(cache) = &cache {
                            drop(crate::cache::forget(cache, &subject).await);
                        }
                        memos.forget(&subject);
                        if let Some(prober) = &prober {
                            prober.forget(&subject);
                        }
                    }
                    // Too many at once to tell which: drop everything.
                    Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {
                        if let Some(cache) = &cache {
                            cache.invalidate_all();
                        }
                        memos.forget_all();
                        if let Some(prober) = &prober {
                            prober.forget_all();
                        }
                    }
                    Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
                }
            }
        });
    }
    if let Some(cluster) = cluster {
        let mut announced = cluster.erasure_news();
        let follower = ledger.follower();
        tokio::spawn(async move {
            while announced.changed().await.is_ok() {
                if !follower.follow_now().await {
                    return;
                }
            }
        });
    }
}

impl Enricher {
    /// Builds the pipeline around `catalog`, opening (and migrating) the
    /// ledger. Sources disabled for a missing secret are announced here.
    pub async fn build(
        settings: Settings,
        hasher: KeyedHasher,
        catalog: Catalog,
    ) -> Result<Self, BuildError> {
        for source in catalog.sources() {
            if let Some(why) = &source.disabled
                && why.starts_with("secret")
            {
                warn!(source = %source.id, reason = %why, "source disabled");
            }
        }
        let lists = DomainLists::load(&settings.reference)?;
        let http = settings.http.clone();
        let cluster = Cluster::start(&settings.cluster);
        let verifier =
            Verifier::new(lists, &settings.dns)?.with_smtp(&settings.smtp, cluster.clone());
        let client = HttpClient::build(&settings.http, catalog.private_origins())
            .map_err(BuildError::Http)?;
        let art9_sites_not_asked = crate::compliance::special::sites_not_asked(&catalog);
        let memos = memo::Memos::new(settings.cache.max_bytes / 4);
        let engine = Engine::new(
            Arc::new(catalog),
            EngineParts {
                client,
                verifier: verifier.clone(),
                max_depth: settings.max_depth,
                pivots: settings.pivots,
                cache: settings.cache,
                resilience: settings.resilience,
                hasher: hasher.clone(),
                clock: settings.clock.clone(),
                cluster: cluster.clone(),
            },
        );
        let scoring = ScoringData::load(&settings.scoring)?;
        // The last step that can refuse the build: a ledger is bound to its
        // key only by a start that goes on (a refused start leaves no key).
        let ledger =
            Ledger::open_following(&settings.ledger_url, settings.ledger_follow_every).await?;
        ledger.bind_hash_key(&hasher.fingerprint()).await?;
        follow_erasures(
            &ledger,
            &engine,
            &memos,
            verifier.prober(),
            cluster.as_deref(),
        );
        follow_refutations(&ledger, &memos);
        let standing = Arc::new(crate::feedback::Standing::new(settings.feedback.clone()));
        standing.refresh(&ledger, settings.clock.utc()).await;
        Ok(Self {
            purposes: PurposeRegistry::new(&settings.purposes),
            scoring,
            verifier,
            engine,
            ledger,
            hasher,
            default_region: settings.default_region,
            min_coverage: settings.min_coverage,
            clock: settings.clock,
            erase_wait: settings.erase_wait,
            fence: ErasureFence::default(),
            memos,
            cluster,
            art9_sites_not_asked,
            feedback_bounds: Arc::new(crate::feedback::Bounds::new(&settings.feedback)),
            standing,
            http,
        })
    }

    /// Keeps the sources' standing in step with the ledger (every
    /// `feedback.refresh_every`) and runs the canary when it is on, until
    /// the enricher is dropped. For servers; a one-shot command needs
    /// neither.
    pub fn follow_standing(self: &Arc<Self>) {
        let weak = Arc::downgrade(self);
        let every = self.standing.config().refresh_every;
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            tick.tick().await;
            loop {
                tick.tick().await;
                let Some(me) = weak.upgrade() else { return };
                if me.standing.refresh(&me.ledger, me.clock.utc()).await {
                    me.forget_all_answers();
                }
            }
        });
        let canary = self.standing.config().canary.clone();
        if canary.enabled {
            let weak = Arc::downgrade(self);
            tokio::spawn(async move {
                // A round is claimed on the ledger: asking every few minutes
                // runs one per `every` across the replicas.
                let period = canary.every.min(std::time::Duration::from_secs(300));
                let mut tick =
                    tokio::time::interval_at(tokio::time::Instant::now() + period, period);
                tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                loop {
                    tick.tick().await;
                    let Some(me) = weak.upgrade() else { return };
                    me.canary_round().await;
                }
            });
        }
    }

    /// Whether an interest id is an Art. 9 special category.
    pub fn is_special_interest(&self, id: &str) -> bool {
        self.scoring.is_special(id)
    }

    /// What feedback and the canary say of each source.
    pub fn standing(&self) -> &crate::feedback::Standing {
        &self.standing
    }

    pub(crate) fn feedback_bounds(&self) -> &crate::feedback::Bounds {
        &self.feedback_bounds
    }

    pub(crate) fn http_config(&self) -> &HttpConfig {
        &self.http
    }

    /// Drops this process's memo of a person's fully cached answer (their
    /// refuted findings changed).
    pub(crate) fn forget_answers_of(&self, subject: &str) {
        self.memos.forget(subject);
    }

    /// Drops every memo of a fully cached answer (the demoted sources
    /// changed).
    pub(crate) fn forget_all_answers(&self) {
        self.memos.forget_all();
    }

    /// What feedback and the sources' standing say against a person's
    /// findings.
    fn doubts(&self, subject: &str) -> corroborate::Doubts {
        corroborate::Doubts {
            refuted: self.ledger.refuted(subject),
            demoted: self.standing.demoted(),
        }
    }

    /// The replicas' shared store, when there is one.
    pub fn cluster(&self) -> Option<&Arc<Cluster>> {
        self.cluster.as_ref()
    }

    pub fn purposes(&self) -> &PurposeRegistry {
        &self.purposes
    }

    pub fn catalog(&self) -> &Catalog {
        self.engine.catalog()
    }

    pub fn ledger(&self) -> &Ledger {
        &self.ledger
    }

    pub fn clock(&self) -> &SharedClock {
        &self.clock
    }

    /// The source engine (its caches, for tests and embedders).
    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    pub(crate) fn hasher(&self) -> &KeyedHasher {
        &self.hasher
    }

    /// How long an erasure waits for its redaction before answering.
    pub(crate) fn erase_wait(&self) -> std::time::Duration {
        self.erase_wait
    }

    /// How many people's fully cached answers this process holds (tests).
    #[doc(hidden)]
    pub fn memos_held(&self) -> u64 {
        self.memos.held()
    }

    pub(crate) fn fence(&self) -> &ErasureFence {
        &self.fence
    }

    /// One enrichment, stage by stage. What a cached call skips (the
    /// sources, a suppressed person's answer, keeping a memo, recording a
    /// refusal) is boxed where it is awaited: held inline, each of those
    /// futures would be part of every call's state, copied with it.
    #[instrument(level = "debug", skip_all, fields(request_id = %query.request_id, purpose = %query.claim.purpose))]
    pub async fn enrich(&self, query: EnrichQuery) -> Result<Enrichment, Error> {
        let ground = self.gate(&query).await?;
        let subject = self.parse(&query).await?;
        let now = self.clock.utc();
        if self.suppressed(&ground, &subject.hash).await? {
            return Box::pin(self.answer_suppressed(query, ground, &subject.hash, now)).await;
        }
        let permitted = policy::policy(ground, &query);
        let (mut merged, lasting, memo) = match self.recall(&subject, &permitted, &query, now).await
        {
            Some((merged, lasting)) => (merged, lasting, None),
            None => {
                let mut gathered = Box::pin(self.gather(&subject, &permitted, &query)).await;
                let fresh = gathered.findings.from_fresh_entries();
                let hits = std::mem::take(&mut gathered.findings.hits);
                let doubts = self.doubts(&subject.hash);
                let merged = merge::merge(
                    gathered,
                    &query,
                    self.catalog(),
                    self.min_coverage,
                    &doubts,
                    now,
                );
                let lasting = self.lasting(&merged, &query);
                let memo = fresh
                    .then(|| {
                        let clock = &self.clock;
                        memo::Memo::of(&subject, &permitted, &query, &merged, &lasting, hits, clock)
                    })
                    .flatten()
                    .map(Box::new);
                (merged, lasting, memo)
            }
        };
        let verdict_at = permitted.ground.purpose.verdict;
        let scores = self.score(&merged, lasting, &permitted.fields, verdict_at, &query, now);
        let disclosed = self
            .comply(permitted, &mut merged, scores, &subject.hash, &query, now)
            .await?;
        // An erasure that overtook the sources wins: nothing of the person
        // is answered, and nothing this call cached of them is left. This
        // process's erasures are in the list at once; another process's are
        // found by the ledger writer before it records (and so before this
        // answers), which returns no id.
        let _fenced = self.fence.read(&subject.hash).await;
        let ground = &disclosed.compliance.ground;
        let id = if self.suppressed(ground, &subject.hash).await? {
            None
        } else {
            self.record(&query, &disclosed, &merged, &subject.hash, now)
                .await?
        };
        let Some(id) = id else {
            self.memos.forget(&subject.hash);
            if let Some(prober) = self.verifier.prober() {
                prober.forget(&subject.hash);
            }
            self.engine.drop_entries(&merged.cache_keys).await;
            let ground = disclosed.compliance.ground;
            return Box::pin(self.answer_suppressed(query, ground, &subject.hash, now)).await;
        };
        // Kept while the fence is held: an erasure removes it after.
        if let Some(memo) = memo {
            Box::pin(self.memos.keep(&subject.hash, memo, &self.engine)).await;
        }
        Ok(answer::enriched(query, id, subject, disclosed, merged, now))
    }

    /// Removes what this process holds of the person beyond the ledger:
    /// the cached answers their enrichments used (here and in the shared
    /// tier) and the memo of their fully cached answer. Returns how many
    /// cache entries there were.
    pub(crate) async fn forget(&self, subject: &str) -> u32 {
        self.memos.forget(subject);
        if let Some(prober) = self.verifier.prober() {
            prober.forget(subject);
        }
        self.engine.forget(subject).await
    }

    /// How many people's mailbox answers this process keeps.
    pub fn kept_smtp_answers(&self) -> u64 {
        self.verifier.prober().map_or(0, |prober| prober.held())
    }

    /// What a mail exchanger said of the person's address, if this process
    /// keeps it (`smtp.result_ttl`).
    pub(crate) fn kept_smtp_check(&self, subject: &str) -> Option<crate::model::SmtpCheck> {
        self.verifier.prober()?.known(subject)
    }

    /// A suppressed person's answer, recorded.
    async fn answer_suppressed(
        &self,
        query: EnrichQuery,
        ground: crate::model::LawfulGround,
        subject: &str,
        now: chrono::DateTime<chrono::Utc>,
    ) -> Result<Enrichment, Error> {
        let id = self
            .record_suppressed(&query, &ground, subject, now)
            .await?;
        Ok(answer::suppressed(query, id, ground, now))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_erasure_waits_at_most_half_its_request_s_time() {
        let shipped = Config::default();
        assert_eq!(
            Settings::from_config(&shipped).erase_wait,
            std::time::Duration::from_secs(10)
        );
        let short = Config::from_toml("[server]\nrequest_timeout = \"4s\"\n").expect("valid");
        assert_eq!(
            Settings::from_config(&short).erase_wait,
            std::time::Duration::from_secs(2)
        );
    }
}
