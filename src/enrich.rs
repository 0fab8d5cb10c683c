//! The pipeline of one request:
//! gate (purpose, lawful basis) -> parse the identifier -> verify -> sources
//! (with pivots) -> merge -> compliance -> answer.
//!
//! Later stages (suppression, cache, scoring, ledger) plug in here in the
//! order DESIGN.md gives; each stage is a function of what came before.
use std::collections::BTreeSet;
use std::sync::Arc;

use chrono::Utc;
use tracing::{debug, instrument};

use crate::catalog::{Catalog, CatalogError};
use crate::config::Config;
use crate::engine::{Engine, EngineParts};
use crate::error::{Error, FieldViolation};
use crate::fetch::HttpClient;
use crate::identity::{Email, Identifier, PhoneNumber, Region};
use crate::merge;
use crate::model::{
    CacheInfo, CachePolicy, Compliance, Confidence, Enrichment, NoticeDuty, Outcome,
};
use crate::privacy::KeyedHasher;
use crate::purpose::{Claim, PurposeRegistry};
use crate::reference::{DomainLists, ReferenceError};
use crate::scoring::{ScoringData, footprint, interests, risk};
use crate::verify::{ResolverError, Verification, Verifier};

/// The identifier as the caller sent it; parsed after the lawful-basis gate.
#[derive(Clone)]
pub enum RawIdentifier {
    Email(String),
    Phone(String),
}

/// A request, structurally valid, not yet judged lawful.
#[derive(Clone)]
pub struct EnrichQuery {
    pub request_id: String,
    pub identifier: RawIdentifier,
    /// From the request's hints; falls back to the configured default.
    pub default_region: Option<Region>,
    pub name_hint: Option<String>,
    pub claim: Claim,
    pub cache: CachePolicy,
    /// Profiles below this confidence are dropped.
    pub min_confidence: Option<Confidence>,
    /// Interest threshold and count; `None`: the scoring data's defaults.
    pub min_interest_score: Option<f64>,
    pub max_interests: Option<usize>,
    /// When the sources must have answered.
    pub deadline: tokio::time::Instant,
}

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
}

/// The catalog the config names: its directory, or the shipped one.
pub fn configured_catalog(config: &Config) -> Result<Catalog, CatalogError> {
    let purposes = config.purpose_ids();
    match &config.sources.catalog {
        Some(dir) => Catalog::load_dir(dir, &purposes),
        None => Catalog::shipped(&purposes),
    }
}

/// Everything one enrichment needs, built once per process and shared.
pub struct Enricher {
    purposes: PurposeRegistry,
    scoring: ScoringData,
    verifier: Verifier,
    engine: Engine,
    hasher: KeyedHasher,
    default_region: Option<Region>,
}

impl Enricher {
    /// Builds the pipeline around `catalog`. Sources disabled for a missing
    /// secret are announced here, once, at start.
    pub fn build(
        config: &Config,
        hasher: KeyedHasher,
        catalog: Catalog,
    ) -> Result<Self, BuildError> {
        for source in catalog.sources() {
            if let Some(why) = &source.disabled
                && why.starts_with("secret")
            {
                tracing::warn!(source = %source.id, reason = %why, "source disabled");
            }
        }
        let lists = DomainLists::load(&config.reference)?;
        let verifier = Verifier::new(lists, &config.dns)?;
        let client = HttpClient::build(&config.http, catalog.trusted_private_hosts())
            .map_err(BuildError::Http)?;
        let engine = Engine::new(
            Arc::new(catalog),
            EngineParts {
                client,
                verifier: verifier.clone(),
                max_depth: config.sources.max_depth,
                cache: config.cache.clone(),
                resilience: config.resilience.clone(),
                hasher: hasher.clone(),
            },
        );
        Ok(Self {
            purposes: PurposeRegistry::new(&config.purposes),
            scoring: ScoringData::load(&config.scoring)?,
            verifier,
            engine,
            hasher,
            default_region: config
                .phone
                .default_region
                .as_deref()
                .and_then(|r| r.parse().ok()),
        })
    }

    pub fn purposes(&self) -> &PurposeRegistry {
        &self.purposes
    }

    pub fn catalog(&self) -> &Catalog {
        self.engine.catalog()
    }

    pub fn hasher(&self) -> &KeyedHasher {
        &self.hasher
    }

    #[instrument(skip_all, fields(request_id = %query.request_id, purpose = %query.claim.purpose))]
    pub async fn enrich(&self, query: EnrichQuery) -> Result<Enrichment, Error> {
        // 1. No processing without a purpose and a lawful basis.
        let ground = self
            .purposes
            .check(&query.claim)
            .map_err(Error::NoLawfulGround)?;

        // 2. Parse the identifier, once.
        let identifier = self.parse_identifier(&query)?;
        debug!(subject = %self.hasher.pii(&identifier.canonical()), kind = identifier.kind(), "identifier accepted");

        // 3. Verify the identifier itself, while the sources run.
        let verification = async {
            match &identifier {
                Identifier::Email(email) => {
                    Verification::Email(self.verifier.check_email(email).await)
                }
                Identifier::Phone(phone) => Verification::Phone(self.verifier.check_phone(phone)),
            }
        };
        let sources = self
            .engine
            .run(&identifier, &ground.purpose.id, query.deadline, query.cache);
        let (verification, mut findings) = tokio::join!(verification, sources);

        // 4. Merge.
        if let Some(min) = query.min_confidence {
            findings.profiles.retain(|p| p.confidence() >= min);
        }
        merge::order_profiles(&mut findings.profiles, self.catalog());
        let attributes = merge::attributes(&findings.profiles);

        // 5. Scores, each with its evidence.
        let now = Utc::now();
        let weights = &self.scoring.weights.interests;
        let options = interests::InterestOptions {
            min_score: query.min_interest_score.unwrap_or(weights.min_score),
            max: query.max_interests.unwrap_or(weights.max_interests),
        };
        let scored = interests::score(&findings.profiles, self.catalog(), &self.scoring, options);
        let footprint = footprint::score(&findings.profiles, self.catalog(), &self.scoring, now);
        let risk = risk::score(
            &verification,
            &findings.profiles,
            &footprint,
            query.name_hint.as_deref(),
            &self.scoring,
            now,
        );

        // 6. Compliance: what was obtained from third parties, and the notice it calls for.
        let found_sources: BTreeSet<&str> = findings
            .profiles
            .iter()
            .map(|p| p.source_id.as_str())
            .collect();
        let categories: BTreeSet<String> = found_sources
            .iter()
            .filter_map(|id| self.catalog().get(id))
            .flat_map(|s| s.data_categories.iter().cloned())
            .collect();
        let notice = NoticeDuty::for_sources(
            now,
            found_sources.iter().map(|s| s.to_string()).collect(),
            categories.into_iter().collect(),
        );
        let fetched = findings
            .outcomes
            .iter()
            .filter(|o| !matches!(o.outcome, Outcome::Skipped(_)))
            .count();
        let cached = findings.outcomes.iter().filter(|o| o.cached).count();
        let oldest = findings.outcomes.iter().filter_map(|o| o.cache_age).max();
        let count = |n: usize| u32::try_from(n).unwrap_or(u32::MAX);
        debug!(
            found = findings.profiles.len(),
            asked = fetched,
            "sources answered"
        );

        Ok(Enrichment {
            request_id: query.request_id,
            identifier,
            verification,
            profiles: findings.profiles,
            attributes,
            sources: findings.outcomes,
            interests: scored.interests,
            footprint,
            risk,
            compliance: Compliance {
                ground,
                notice,
                special_categories_suppressed: scored.special_suppressed,
            },
            cache: CacheInfo {
                policy: query.cache.mode,
                sources_from_cache: count(cached),
                sources_fetched: count(fetched - cached),
                oldest_entry_age: oldest,
            },
            generated_at: now,
        })
    }

    fn parse_identifier(&self, query: &EnrichQuery) -> Result<Identifier, Error> {
        match &query.identifier {
            RawIdentifier::Email(raw) => Email::parse(raw).map(Identifier::Email).map_err(|e| {
                Error::InvalidArgument(vec![FieldViolation::new(
                    "email",
                    format!("email address {e}"),
                )])
            }),
            RawIdentifier::Phone(raw) => {
                let region = query.default_region.or(self.default_region);
                PhoneNumber::parse(raw, region)
                    .map(Identifier::Phone)
                    .map_err(|e| {
                        Error::InvalidArgument(vec![FieldViolation::new(
                            "phone",
                            format!("phone number {e}"),
                        )])
                    })
            }
        }
    }
}
