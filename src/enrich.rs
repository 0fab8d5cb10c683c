//! The pipeline of one request:
//! gate (purpose, lawful basis) -> parse the identifier -> verify -> answer.
//!
//! Later stages (suppression, sources, cache, scoring, ledger) plug in here in
//! the order DESIGN.md gives; each stage is a function of what came before.
use chrono::Utc;
use tracing::{debug, instrument};

use crate::config::Config;
use crate::error::{Error, FieldViolation};
use crate::identity::{Email, Identifier, PhoneNumber, Region};
use crate::model::{CacheInfo, CachePolicy, Compliance, Enrichment, NoticeDuty};
use crate::privacy::KeyedHasher;
use crate::purpose::{Claim, PurposeRegistry};
use crate::reference::{DomainLists, ReferenceError};
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
}

#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    #[error(transparent)]
    Reference(#[from] ReferenceError),
    #[error(transparent)]
    Resolver(#[from] ResolverError),
}

/// Everything one enrichment needs, built once per process and shared.
pub struct Enricher {
    purposes: PurposeRegistry,
    verifier: Verifier,
    hasher: KeyedHasher,
    default_region: Option<Region>,
}

impl Enricher {
    pub fn build(config: &Config, hasher: KeyedHasher) -> Result<Self, BuildError> {
        let lists = DomainLists::load(&config.reference)?;
        Ok(Self {
            purposes: PurposeRegistry::new(&config.purposes),
            verifier: Verifier::new(lists, &config.dns)?,
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
        debug!(
            subject = %self.hasher.pii(&identifier.canonical()),
            kind = identifier.kind(),
            "identifier accepted"
        );

        // 3. Verify the identifier itself.
        let verification = match &identifier {
            Identifier::Email(email) => Verification::Email(self.verifier.check_email(email).await),
            Identifier::Phone(phone) => Verification::Phone(self.verifier.check_phone(phone)),
        };

        let now = Utc::now();
        Ok(Enrichment {
            request_id: query.request_id,
            identifier,
            verification,
            compliance: Compliance {
                ground,
                // No source is asked yet, so nothing was obtained from third parties.
                notice: NoticeDuty::for_sources(now, Vec::new(), Vec::new()),
                special_categories_suppressed: 0,
            },
            cache: CacheInfo {
                policy: query.cache.mode,
                ..CacheInfo::default()
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
