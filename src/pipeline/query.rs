//! What the pipeline is asked: a request, structurally valid (the adapters
//! saw to that), not yet judged lawful.
use chrono::{DateTime, Utc};

use crate::auth::Caller;
use crate::identity::Region;
use crate::model::{CachePolicy, Claim, Confidence};

/// The identifier as the caller sent it; parsed after the lawful-basis gate.
#[derive(Debug, Clone)]
pub enum RawIdentifier {
    Email(String),
    Phone(String),
}

/// One enrichment request.
#[derive(Clone)]
pub struct EnrichQuery {
    pub request_id: String,
    /// Who asked, as authenticated.
    pub caller: Caller,
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
