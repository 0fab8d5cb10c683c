//! Per-source outcomes: a source's failure is part of the answer, never the
//! failure of the request.
use std::time::Duration;

use super::finding::InputKind;

/// Why a source was not asked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum SkipReason {
    InputNotApplicable,
    Purpose,
    Disabled,
    Depth,
    /// The fields the caller wants need nothing the source yields.
    FieldMask,
    CacheOnly,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Outcome {
    Found,
    NotFound,
    Error,
    Timeout,
    RateLimited,
    CircuitOpen,
    /// The request would have reached a non-public address, or one the
    /// source may not reach: refused before it was sent. Says nothing about
    /// the source's health.
    Blocked,
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
            Outcome::Blocked => "blocked",
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
    /// A request went to the source for this answer (not a cache hit, a
    /// fetch another call made, or a refusal before sending: the source's
    /// rate budget, its Retry-After, an open circuit).
    pub fetched: bool,
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
            fetched: false,
        }
    }

    pub fn with_detail(mut self, detail: impl Into<String>) -> Self {
        self.detail = Some(detail.into());
        self
    }
}
