//! The domain answer of one enrichment, before it becomes a proto message.
use std::time::Duration;

use chrono::{DateTime, Utc};

use crate::identity::Identifier;
use crate::purpose::LawfulGround;
use crate::verify::Verification;

/// How the caller allows the cache to be used.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum CacheMode {
    #[default]
    Use,
    Refresh,
    CacheOnly,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CachePolicy {
    pub mode: CacheMode,
    pub max_age: Option<Duration>,
}

/// GDPR Art. 14 information duty of one answer.
#[derive(Debug, Clone, PartialEq)]
pub struct NoticeDuty {
    pub required: bool,
    pub data_categories: Vec<String>,
    pub sources: Vec<String>,
    pub notify_by: Option<DateTime<Utc>>,
    pub exemption: Option<String>,
}

impl NoticeDuty {
    /// Art. 14(3)(a): at the latest within one month of obtaining the data.
    pub const DEADLINE_DAYS: i64 = 30;

    /// The latest notice date: a month after the first processing of this
    /// person, or the planned first contact if earlier (Art. 14(3)).
    pub fn deadline(
        first_processed: DateTime<Utc>,
        first_contact: Option<DateTime<Utc>>,
    ) -> DateTime<Utc> {
        let month = first_processed + chrono::Duration::days(Self::DEADLINE_DAYS);
        first_contact.map_or(month, |c| c.min(month))
    }

    /// The duty that follows from the sources that yielded personal data.
    pub fn for_sources(
        notify_by: DateTime<Utc>,
        sources: Vec<String>,
        data_categories: Vec<String>,
    ) -> Self {
        if sources.is_empty() {
            return Self {
                required: false,
                data_categories,
                sources,
                notify_by: None,
                exemption: Some(
                    "no personal data was obtained from third-party sources".to_owned(),
                ),
            };
        }
        Self {
            required: true,
            data_categories,
            sources,
            notify_by: Some(notify_by),
            exemption: None,
        }
    }
}

/// Why a response field was left out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Withheld {
    Purpose,
    FieldMask,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Compliance {
    pub ground: LawfulGround,
    pub notice: NoticeDuty,
    pub special_categories_suppressed: u32,
    /// The person is on the suppression list for this purpose.
    pub identifier_suppressed: bool,
    pub withheld: Vec<(String, Withheld)>,
    pub retain_until: DateTime<Utc>,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct CacheInfo {
    pub policy: CacheMode,
    pub sources_from_cache: u32,
    pub sources_fetched: u32,
    pub oldest_entry_age: Option<Duration>,
}

/// One answer. Fields the purpose or the field mask leave out are `None`
/// or empty; a suppressed person's answer holds the compliance block alone.
#[derive(Debug, Clone)]
pub struct Enrichment {
    pub request_id: String,
    pub processing_id: String,
    pub identifier: Option<Identifier>,
    pub verification: Option<Verification>,
    /// Best match first.
    pub profiles: Vec<Profile>,
    pub attributes: Vec<Attribute>,
    pub sources: Vec<SourceOutcome>,
    pub interests: Vec<crate::scoring::interests::Interest>,
    pub footprint: Option<crate::scoring::footprint::Footprint>,
    pub risk: Option<crate::scoring::risk::Risk>,
    pub compliance: Compliance,
    pub cache: CacheInfo,
    pub generated_at: DateTime<Utc>,
}

pub use crate::catalog::input::{Confidence, InputKind};

/// How a value was obtained.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    JsonPointer,
    CssSelector,
    Regex,
    Detection,
    Dns,
}

/// Where a value came from.
#[derive(Debug, Clone, PartialEq)]
pub struct Provenance {
    pub source_id: String,
    pub url: String,
    pub retrieved_at: DateTime<Utc>,
    pub method: Method,
    pub selector: String,
    pub confidence: Confidence,
}

/// An extracted value, typed where the field has a type.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Text(String),
    Time(DateTime<Utc>),
    Count(i64),
}

impl Value {
    pub fn as_text(&self) -> String {
        match self {
            Value::Text(s) => s.clone(),
            Value::Time(t) => t.to_rfc3339(),
            Value::Count(n) => n.to_string(),
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Sourced {
    pub value: Value,
    pub provenance: Provenance,
}

#[derive(Debug, Clone, PartialEq)]
pub struct LinkedAccount {
    pub platform: Option<String>,
    pub url: Option<String>,
    pub username: Option<String>,
    pub provenance: Provenance,
}

/// A profile found on one source.
#[derive(Debug, Clone, PartialEq)]
pub struct Profile {
    pub source_id: String,
    pub platform: String,
    pub provenance: Provenance,
    pub fields: std::collections::BTreeMap<crate::catalog::source::Field, Sourced>,
    pub extra: std::collections::BTreeMap<String, Sourced>,
    pub accounts: Vec<LinkedAccount>,
}

impl Profile {
    pub fn confidence(&self) -> Confidence {
        self.provenance.confidence
    }
}

/// Why a source was not asked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SkipReason {
    InputNotApplicable,
    Purpose,
    Disabled,
    Depth,
    CacheOnly,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Found,
    NotFound,
    Error,
    Timeout,
    RateLimited,
    CircuitOpen,
    Skipped(SkipReason),
}

impl Outcome {
    pub fn name(self) -> &'static str {
        match self {
            Outcome::Found => "found",
            Outcome::NotFound => "not_found",
            Outcome::Error => "error",
            Outcome::Timeout => "timeout",
            Outcome::RateLimited => "rate_limited",
            Outcome::CircuitOpen => "circuit_open",
            Outcome::Skipped(_) => "skipped",
        }
    }
}

/// What one source said about one input.
#[derive(Debug, Clone, PartialEq)]
pub struct SourceOutcome {
    pub source_id: String,
    pub outcome: Outcome,
    pub detail: Option<String>,
    pub latency: Duration,
    pub http_status: Option<u16>,
    pub depth: u32,
    pub retry_after: Option<Duration>,
    pub input: InputKind,
    pub cached: bool,
    pub cache_age: Option<Duration>,
    pub stale: bool,
}

impl SourceOutcome {
    pub fn new(source_id: &str, input: InputKind, depth: u32, outcome: Outcome) -> Self {
        Self {
            source_id: source_id.to_owned(),
            outcome,
            detail: None,
            latency: Duration::ZERO,
            http_status: None,
            depth,
            retry_after: None,
            input,
            cached: false,
            cache_age: None,
            stale: false,
        }
    }

    pub fn with_detail(mut self, detail: impl Into<String>) -> Self {
        self.detail = Some(detail.into());
        self
    }
}

/// A merged attribute: every distinct value, most supported first.
#[derive(Debug, Clone, PartialEq)]
pub struct Attribute {
    pub name: &'static str,
    pub values: Vec<AttributeValue>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct AttributeValue {
    pub value: String,
    pub provenance: Vec<Provenance>,
}
