//! A caller as the service knows it once authenticated.
use std::collections::BTreeSet;
use std::fmt;
use std::str::FromStr;

use serde::Serialize;

/// What a caller may call: one scope per RPC.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    Serialize,
    eserde::Deserialize,
    clap::ValueEnum,
)]
#[serde(rename_all = "snake_case")]
pub enum Scope {
    /// `Enrich`.
    Enrich,
    /// `EnrichStream`.
    Stream,
    /// `ListSources`.
    Sources,
    /// `Access` (Art. 15).
    Access,
    /// `Erase` (Art. 17, 21).
    Erase,
    /// `Feedback` on the answers this caller received.
    Feedback,
    /// `Feedback` on any caller's answers too (a review team, the privacy
    /// desk); needs `feedback` as well.
    #[value(name = "feedback_any")]
    FeedbackAny,
    /// Each person's segment in a batch job's audience (per-person
    /// membership); the report itself needs `stream`, as the job does.
    Segments,
}

impl Scope {
    pub const ALL: [Scope; 8] = [
        Self::Enrich,
        Self::Stream,
        Self::Sources,
        Self::Access,
        Self::Erase,
        Self::Feedback,
        Self::FeedbackAny,
        Self::Segments,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Enrich => "enrich",
            Self::Stream => "stream",
            Self::Sources => "sources",
            Self::Access => "access",
            Self::Erase => "erase",
            Self::Feedback => "feedback",
            Self::FeedbackAny => "feedback_any",
            Self::Segments => "segments",
        }
    }

    /// The scope an `enrichd.v1.Enrichment` method needs.
    pub fn of_method(method: &str) -> Option<Scope> {
        Some(match method {
            "Enrich" => Self::Enrich,
            "EnrichStream" => Self::Stream,
            "ListSources" => Self::Sources,
            "Access" => Self::Access,
            "Erase" => Self::Erase,
            "Feedback" => Self::Feedback,
            _ => return None,
        })
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Scope {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|scope| scope.as_str() == s.trim())
            .ok_or_else(|| {
                let all: Vec<&str> = Self::ALL.iter().map(|s| s.as_str()).collect();
                format!("{s:?} is not a scope ({})", all.join(", "))
            })
    }
}

/// An authenticated caller (stored with a batch job: it holds no secret).
#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize)]
pub struct Caller {
    /// The key id (empty for a client certificate, the command line or an
    /// anonymous caller).
    pub id: String,
    /// The key's name, the certificate's common name, "cli" or "anonymous":
    /// what the ledger records as the caller.
    pub name: String,
    pub scopes: BTreeSet<Scope>,
    /// `None`: any declared purpose.
    pub purposes: Option<BTreeSet<String>>,
    /// Requests per second of its own; `None`: no quota.
    pub quota_per_second: Option<f64>,
    /// Whom the caller says it acts for (`x-caller` metadata): recorded as a
    /// note, never as the caller.
    pub on_behalf_of: Option<String>,
}

impl Caller {
    /// Anyone, when `[auth] required = false` on loopback.
    pub fn anonymous() -> Self {
        Self::trusted("anonymous")
    }

    /// The operator's own command line, working on the ledger in process.
    pub fn operator() -> Self {
        Self::trusted("cli")
    }

    fn trusted(name: &str) -> Self {
        Self {
            id: String::new(),
            name: name.to_owned(),
            scopes: Scope::ALL.into(),
            purposes: None,
            quota_per_second: None,
            on_behalf_of: None,
        }
    }

    pub fn allows(&self, scope: Scope) -> bool {
        self.scopes.contains(&scope)
    }

    pub fn allows_purpose(&self, purpose: &str) -> bool {
        self.purposes.as_ref().is_none_or(|p| p.contains(purpose))
    }
}

/// A comma-separated list ("enrich,stream") as a set.
pub(super) fn list(text: &str) -> BTreeSet<String> {
    text.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect()
}
