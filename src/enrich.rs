//! The pipeline of one request, in the order DESIGN.md gives:
//! gate (purpose, lawful basis) -> parse the identifier -> suppression list ->
//! policy (fields, sources) -> verify + sources (cache, limits, pivots) ->
//! merge -> scores -> compliance -> ledger -> answer.
//! Every processing, refusals included, is recorded before it is answered.
use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, TimeZone, Utc};
use tracing::{debug, instrument, warn};

use crate::catalog::{Catalog, CatalogError};
use crate::config::Config;
use crate::engine::{Engine, EngineParts, Findings};
use crate::error::{Error, FieldViolation};
use crate::fetch::HttpClient;
use crate::identity::{Email, Identifier, PhoneNumber, Region};
use crate::ledger::{self, Record, Store, StoreError};
use crate::merge;
use crate::model::{
    CacheInfo, CachePolicy, Compliance, Confidence, Enrichment, NoticeDuty, Outcome, Withheld,
};
use crate::privacy::KeyedHasher;
use crate::purpose::{Claim, FIELDS, LawfulBasis, LawfulGround, PurposeRegistry, SOURCE_FIELDS};
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
    /// Who asked (request metadata `x-caller`, or "cli").
    pub caller: String,
    pub identifier: RawIdentifier,
    /// From the request's hints; falls back to the configured default.
    pub default_region: Option<Region>,
    pub name_hint: Option<String>,
    pub first_contact_at: Option<DateTime<Utc>>,
    pub claim: Claim,
    /// Requested response fields; empty: all the purpose allows.
    pub field_mask: Vec<String>,
    pub cache: CachePolicy,
    /// Profiles below this confidence are dropped.
    pub min_confidence: Option<Confidence>,
    /// Interest threshold and count; `None`: the scoring data's defaults.
    pub min_interest_score: Option<f64>,
    pub max_interests: Option<usize>,
    /// When the sources must have answered.
    pub deadline: tokio::time::Instant,
}

/// What `Erase` did.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Erased {
    pub cache_entries_removed: u32,
    pub ledger_records_redacted: u32,
    pub suppressed_purposes: Vec<String>,
    pub tombstone: String,
}

/// What `Access` found.
#[derive(Debug, Clone, Default)]
pub struct AccessReport {
    pub cached: Vec<Arc<crate::cache::Entry>>,
    pub records: Vec<Record>,
    pub suppressed: Vec<String>,
    pub logic: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EraseKind {
    /// Art. 17: purge every tier and suppress for every purpose.
    Erasure,
    /// Art. 21(3): suppress for marketing only.
    ObjectionToMarketing,
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
    #[error(transparent)]
    Ledger(#[from] StoreError),
}

/// The catalog the config names: its directory, or the shipped one.
pub fn configured_catalog(config: &Config) -> Result<Catalog, CatalogError> {
    let purposes = config.purpose_ids();
    match &config.sources.catalog {
        Some(dir) => Catalog::load_dir(dir, &purposes),
        None => Catalog::shipped(&purposes),
    }
}

/// How long a refusal's record is kept when it names no valid purpose.
const REFUSAL_RETENTION: Duration = Duration::from_secs(30 * 24 * 3600);

fn ms(t: DateTime<Utc>) -> i64 {
    t.timestamp_millis()
}

/// A ledger time back as a date (`fallback` if out of range).
fn time_of(ms: i64, fallback: DateTime<Utc>) -> DateTime<Utc> {
    Utc.timestamp_millis_opt(ms).single().unwrap_or(fallback)
}

fn unavailable(e: StoreError) -> Error {
    warn!(error = %e, "ledger write failed; the answer is withheld");
    Error::Unavailable("the record of this processing could not be written; nothing was returned")
}

/// Everything one enrichment needs, built once per process and shared.
pub struct Enricher {
    purposes: PurposeRegistry,
    scoring: ScoringData,
    verifier: Verifier,
    engine: Engine,
    store: Store,
    hasher: KeyedHasher,
    default_region: Option<Region>,
}

impl Enricher {
    /// Builds the pipeline around `catalog`, opening (and migrating) the
    /// ledger. Sources disabled for a missing secret are announced here.
    pub async fn build(
        config: &Config,
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
            store: Store::open(&config.ledger.url).await?,
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

    pub fn store(&self) -> &Store {
        &self.store
    }

    fn subject(&self, identifier: &Identifier) -> String {
        self.hasher.hash(&identifier.canonical())
    }

    /// Records a refused request (the identifier's hash only if it parses).
    async fn record_refusal(&self, query: &EnrichQuery, why: &str) -> Result<(), Error> {
        let now = Utc::now();
        let subject = self
            .parse(&query.identifier, query.default_region)
            .map(|id| self.subject(&id));
        let retention = self
            .purposes
            .get(query.claim.purpose.trim())
            .map_or(REFUSAL_RETENTION, |p| p.retention);
        let record = Record {
            id: new_id(),
            at_ms: ms(now),
            caller: query.caller.clone(),
            purpose: query.claim.purpose.clone(),
            lawful_basis: query
                .claim
                .basis
                .map(LawfulBasis::as_str)
                .unwrap_or_default()
                .to_owned(),
            consent_ref: query.claim.evidence.consent_ref.clone().unwrap_or_default(),
            lia_ref: query
                .claim
                .evidence
                .legitimate_interest_assessment_ref
                .clone()
                .unwrap_or_default(),
            contract_ref: query
                .claim
                .evidence
                .contract_ref
                .clone()
                .unwrap_or_default(),
            subject: subject.unwrap_or_default(),
            sources: Vec::new(),
            field_categories: Vec::new(),
            outcome: format!("refused: {why}"),
            retain_until_ms: ms(now) + retention.as_millis() as i64,
            redacted: false,
        };
        self.store.record(&record).await.map_err(unavailable)
    }

    fn record_of(
        &self,
        ground: &LawfulGround,
        query: &EnrichQuery,
        subject: &str,
        now: DateTime<Utc>,
    ) -> Record {
        let e = &ground.evidence;
        Record {
            id: new_id(),
            at_ms: ms(now),
            caller: query.caller.clone(),
            purpose: ground.purpose.id.clone(),
            lawful_basis: ground.basis.as_str().to_owned(),
            consent_ref: e.consent_ref.clone().unwrap_or_default(),
            lia_ref: e
                .legitimate_interest_assessment_ref
                .clone()
                .unwrap_or_default(),
            contract_ref: e.contract_ref.clone().unwrap_or_default(),
            subject: subject.to_owned(),
            sources: Vec::new(),
            field_categories: Vec::new(),
            outcome: String::new(),
            retain_until_ms: ms(now) + ground.purpose.retention.as_millis() as i64,
            redacted: false,
        }
    }

    #[instrument(skip_all, fields(request_id = %query.request_id, purpose = %query.claim.purpose))]
    pub async fn enrich(&self, query: EnrichQuery) -> Result<Enrichment, Error> {
        // 1. No processing without a purpose and a lawful basis.
        let ground = match self.purposes.check(&query.claim) {
            Ok(g) => g,
            Err(violations) => {
                self.record_refusal(&query, "no lawful ground").await?;
                return Err(Error::NoLawfulGround(violations));
            }
        };
        let unknown: Vec<&String> = query
            .field_mask
            .iter()
            .filter(|f| !FIELDS.contains(&f.as_str()))
            .collect();
        if !unknown.is_empty() {
            self.record_refusal(&query, "invalid field mask").await?;
            return Err(Error::InvalidArgument(
                unknown
                    .iter()
                    .map(|f| {
                        FieldViolation::new(
                            "field_mask",
                            format!("{f:?} is not a response field ({})", FIELDS.join(", ")),
                        )
                    })
                    .collect(),
            ));
        }

        // 2. Parse the identifier, once.
        let identifier = match self.parse_identifier(&query) {
            Ok(id) => id,
            Err(e) => {
                self.record_refusal(&query, "invalid identifier").await?;
                return Err(e);
            }
        };
        let subject = self.subject(&identifier);
        debug!(subject = %self.hasher.pii(&identifier.canonical()), kind = identifier.kind(), "identifier accepted");
        let now = Utc::now();
        let mut record = self.record_of(&ground, &query, &subject, now);

        // 3. The suppression list, before the cache and any source.
        let scopes = self
            .store
            .suppressions(&subject)
            .await
            .map_err(unavailable)?;
        let suppressed = scopes
            .iter()
            .any(|s| s == ledger::ALL_PURPOSES || *s == ground.purpose.id);
        if suppressed {
            record.outcome = "suppressed".into();
            self.store.record(&record).await.map_err(unavailable)?;
            return Ok(Enrichment {
                request_id: query.request_id,
                processing_id: record.id,
                identifier: None,
                verification: None,
                profiles: Vec::new(),
                attributes: Vec::new(),
                sources: Vec::new(),
                interests: Vec::new(),
                footprint: None,
                risk: None,
                compliance: Compliance {
                    notice: NoticeDuty::for_sources(now, Vec::new(), Vec::new()),
                    ground,
                    special_categories_suppressed: 0,
                    identifier_suppressed: true,
                    withheld: Vec::new(),
                    retain_until: time_of(record.retain_until_ms, now),
                },
                cache: CacheInfo {
                    policy: query.cache.mode,
                    ..CacheInfo::default()
                },
                generated_at: now,
            });
        }

        // 4. Policy: the fields this answer may carry.
        let mut withheld = Vec::new();
        let wanted: Vec<&str> = FIELDS
            .iter()
            .copied()
            .filter(|f| {
                if !ground.purpose.allows_field(f) {
                    withheld.push((f.to_string(), Withheld::Purpose));
                    false
                } else if !query.field_mask.is_empty() && !query.field_mask.iter().any(|m| m == f) {
                    withheld.push((f.to_string(), Withheld::FieldMask));
                    false
                } else {
                    true
                }
            })
            .collect();
        let wants = |f: &str| wanted.contains(&f);
        let needs_sources = SOURCE_FIELDS.iter().any(|f| wants(f));

        // 5. Verify the identifier while the sources run.
        let verification = async {
            if !(wants("verification") || wants("risk")) {
                return None;
            }
            Some(match &identifier {
                Identifier::Email(email) => {
                    Verification::Email(self.verifier.check_email(email).await)
                }
                Identifier::Phone(phone) => Verification::Phone(self.verifier.check_phone(phone)),
            })
        };
        let sources = async {
            if needs_sources {
                self.engine
                    .run(
                        &identifier,
                        &ground.purpose,
                        &subject,
                        query.deadline,
                        query.cache,
                    )
                    .await
            } else {
                Findings::default()
            }
        };
        let (verification, mut findings) = tokio::join!(verification, sources);

        // 6. Merge and score.
        if let Some(min) = query.min_confidence {
            findings.profiles.retain(|p| p.confidence() >= min);
        }
        merge::order_profiles(&mut findings.profiles, self.catalog());
        let weights = &self.scoring.weights.interests;
        let options = interests::InterestOptions {
            min_score: query.min_interest_score.unwrap_or(weights.min_score),
            max: query.max_interests.unwrap_or(weights.max_interests),
        };
        let scored = interests::score(&findings.profiles, self.catalog(), &self.scoring, options);
        let footprint = footprint::score(&findings.profiles, self.catalog(), &self.scoring, now);
        let risk = verification.as_ref().filter(|_| wants("risk")).map(|v| {
            risk::score(
                v,
                &findings.profiles,
                &footprint,
                query.name_hint.as_deref(),
                &self.scoring,
                now,
            )
        });

        // 7. Compliance: what was obtained from third parties, and the notice it calls for.
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
        // The notice deadline counts from the first processing; ask the
        // ledger only when there is something to notify.
        let first = if found_sources.is_empty() {
            None
        } else {
            self.store
                .first_enriched_ms(&subject)
                .await
                .map_err(unavailable)?
        };
        let first = first.map_or(now, |m| time_of(m, now));
        let notice = NoticeDuty::for_sources(
            NoticeDuty::deadline(first, query.first_contact_at),
            found_sources.iter().map(|s| s.to_string()).collect(),
            categories.into_iter().collect(),
        );
        let asked: BTreeSet<String> = findings
            .outcomes
            .iter()
            .filter(|o| !matches!(o.outcome, Outcome::Skipped(_)))
            .map(|o| o.source_id.clone())
            .collect();
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

        let profiles = if wants("profiles") {
            findings.profiles.clone()
        } else {
            Vec::new()
        };
        let attributes = if wants("attributes") {
            merge::attributes(&findings.profiles)
        } else {
            Vec::new()
        };
        let interests_out = if wants("interests") {
            scored.interests
        } else {
            Vec::new()
        };
        let returned: Vec<String> = [
            (
                "verification",
                verification.is_some() && wants("verification"),
            ),
            ("profiles", !profiles.is_empty()),
            ("attributes", !attributes.is_empty()),
            ("interests", !interests_out.is_empty()),
            ("footprint", wants("footprint")),
            ("risk", risk.is_some()),
        ]
        .iter()
        .filter(|(_, present)| *present)
        .map(|(f, _)| f.to_string())
        .collect();

        // 8. The ledger: no answer without its record.
        record.sources = asked.into_iter().collect();
        record.field_categories = returned;
        record.outcome = if findings.profiles.is_empty() {
            "not_found"
        } else {
            "enriched"
        }
        .into();
        self.store.record(&record).await.map_err(unavailable)?;

        Ok(Enrichment {
            request_id: query.request_id,
            processing_id: record.id,
            identifier: Some(identifier),
            verification: verification.filter(|_| wants("verification")),
            profiles,
            attributes,
            sources: findings.outcomes,
            interests: interests_out,
            footprint: wants("footprint").then_some(footprint),
            risk,
            compliance: Compliance {
                ground,
                notice,
                special_categories_suppressed: scored.special_suppressed,
                identifier_suppressed: false,
                withheld,
                retain_until: time_of(record.retain_until_ms, now),
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

    fn parse(
        &self,
        raw: &RawIdentifier,
        region: Option<Region>,
    ) -> Result<Identifier, FieldViolation> {
        match raw {
            RawIdentifier::Email(raw) => Email::parse(raw)
                .map(Identifier::Email)
                .map_err(|e| FieldViolation::new("email", format!("email address {e}"))),
            RawIdentifier::Phone(raw) => PhoneNumber::parse(raw, region.or(self.default_region))
                .map(Identifier::Phone)
                .map_err(|e| FieldViolation::new("phone", format!("phone number {e}"))),
        }
    }

    fn parse_identifier(&self, query: &EnrichQuery) -> Result<Identifier, Error> {
        self.parse(&query.identifier, query.default_region)
            .map_err(|v| Error::InvalidArgument(vec![v]))
    }

    /// Art. 17 erasure (or Art. 21(3) objection): purge, redact, suppress.
    pub async fn erase(
        &self,
        raw: &RawIdentifier,
        region: Option<Region>,
        kind: EraseKind,
        reference: &str,
    ) -> Result<Erased, Error> {
        let identifier = self
            .parse(raw, region)
            .map_err(|v| Error::InvalidArgument(vec![v]))?;
        let subject = self.subject(&identifier);
        let now = ms(Utc::now());
        let mut erased = Erased {
            tombstone: self.hasher.log_ref(&identifier.canonical()),
            ..Erased::default()
        };
        match kind {
            EraseKind::Erasure => {
                erased.cache_entries_removed = self.engine.forget(&subject, &identifier).await;
                erased.ledger_records_redacted =
                    u32::try_from(self.store.redact(&subject).await.map_err(unavailable)?)
                        .unwrap_or(u32::MAX);
                self.store
                    .suppress(&subject, ledger::ALL_PURPOSES, reference, now)
                    .await
                    .map_err(unavailable)?;
                erased.suppressed_purposes = Vec::new();
            }
            EraseKind::ObjectionToMarketing => {
                self.store
                    .suppress(&subject, ledger::MARKETING, reference, now)
                    .await
                    .map_err(unavailable)?;
                erased.suppressed_purposes = vec![ledger::MARKETING.to_owned()];
            }
        }
        tracing::info!(subject = %self.hasher.pii(&identifier.canonical()), ?kind, "data-subject request carried out");
        Ok(erased)
    }

    /// Art. 15 access: what enrichd holds, and the logic of its scores.
    pub async fn access(
        &self,
        raw: &RawIdentifier,
        region: Option<Region>,
    ) -> Result<AccessReport, Error> {
        let identifier = self
            .parse(raw, region)
            .map_err(|v| Error::InvalidArgument(vec![v]))?;
        let subject = self.subject(&identifier);
        Ok(AccessReport {
            cached: self.engine.cached(&subject, &identifier).await,
            records: self.store.records(&subject).await.map_err(unavailable)?,
            suppressed: self
                .store
                .suppressions(&subject)
                .await
                .map_err(unavailable)?,
            logic: LOGIC.iter().map(|s| s.to_string()).collect(),
        })
    }
}

/// The logic of the scores, in words (Art. 15(1)(h)).
const LOGIC: &[&str] = &[
    "Profiles: public sources of the catalog were asked about the identifier (or its hash); handles and links they published were asked of other sources. Each finding carries its source, URL, time and how closely it is tied to the identifier (exact, through a pivot, or a guess from the email's local part).",
    "Interests: each site the person was found on has topics (tags) and each bio is matched against a term list per interest of the IAB Audience Taxonomy; evidence combines within a source, then across sources, into a score between 0 and 1. Health, political and religious interests are never kept.",
    "Digital footprint: 0 to 100 from the platforms found (weighted), the breadth of their topics, the age of the oldest account, how complete the profiles are and public activity counts.",
    "Contact risk: 0 to 100, the sum of the weights of the reasons found (for example a disposable email domain, a domain without mail servers, an invalid or VoIP number, no online presence, a name that does not match). It supports a human decision and is never a decision by itself.",
];

/// A processing id: 128 random bits, hex.
fn new_id() -> String {
    hex::encode(rand::random::<[u8; 16]>())
}
