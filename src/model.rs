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

    /// The duty that follows from the sources that yielded personal data.
    pub fn for_sources(
        obtained_at: DateTime<Utc>,
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
            notify_by: Some(obtained_at + chrono::Duration::days(Self::DEADLINE_DAYS)),
            exemption: None,
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Compliance {
    pub ground: LawfulGround,
    pub notice: NoticeDuty,
    pub special_categories_suppressed: u32,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct CacheInfo {
    pub policy: CacheMode,
    pub sources_from_cache: u32,
    pub sources_fetched: u32,
    pub oldest_entry_age: Option<Duration>,
}

/// One enriched answer.
#[derive(Debug, Clone)]
pub struct Enrichment {
    pub request_id: String,
    pub identifier: Identifier,
    pub verification: Verification,
    pub compliance: Compliance,
    pub cache: CacheInfo,
    pub generated_at: DateTime<Utc>,
}
