//! What an audience report counts of one answered row, kept beside the
//! row's answer (`batch_rows.features`): a few hundred bytes instead of the
//! whole answer, and nothing that names the person.
use serde::{Deserialize, Serialize};

use crate::proto::v1 as pb;

/// The facts of one answered row.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Features {
    /// Anyone was found.
    #[serde(rename = "f", default)]
    pub found: bool,
    /// The platforms of the person's profiles (possible matches left out).
    #[serde(rename = "p", default, skip_serializing_if = "Vec::is_empty")]
    pub platforms: Vec<String>,
    /// IAB Audience Taxonomy ids of their interests (never an Art. 9
    /// category).
    #[serde(rename = "i", default, skip_serializing_if = "Vec::is_empty")]
    pub interests: Vec<String>,
    #[serde(rename = "s", default)]
    pub footprint: u32,
    #[serde(rename = "r", default)]
    pub risk: u32,
    /// Messaging apps they are registered on.
    #[serde(rename = "m", default, skip_serializing_if = "Vec::is_empty")]
    pub messaging: Vec<String>,
    /// When their oldest account was made (ms since the epoch).
    #[serde(rename = "a", default, skip_serializing_if = "Option::is_none")]
    pub oldest_account_ms: Option<i64>,
}

impl Features {
    /// The facts of an answer; `special` says which interest ids are Art. 9
    /// categories (dropped, whatever the answer held).
    pub fn of(answer: &pb::EnrichResponse, special: impl Fn(&str) -> bool) -> Self {
        let mut platforms: Vec<String> =
            answer.profiles.iter().map(|p| p.platform.clone()).collect();
        platforms.sort();
        platforms.dedup();
        let mut interests: Vec<String> = answer
            .interests
            .iter()
            .map(|i| i.id.clone())
            .filter(|id| !special(id))
            .collect();
        interests.sort();
        interests.dedup();
        let mut messaging: Vec<String> = answer
            .messaging_apps
            .iter()
            .filter(|m| m.present)
            .map(|m| m.platform.clone())
            .collect();
        messaging.sort();
        messaging.dedup();
        let oldest_account_ms = answer
            .profiles
            .iter()
            .filter_map(|p| p.created_at.as_ref()?.value.as_ref())
            .map(|t| t.seconds * 1000)
            .min();
        Self {
            found: !answer.profiles.is_empty(),
            platforms,
            interests,
            footprint: answer.footprint.as_ref().map_or(0, |f| f.score),
            risk: answer.risk.as_ref().map_or(0, |r| r.score),
            messaging,
            oldest_account_ms,
        }
    }
}
