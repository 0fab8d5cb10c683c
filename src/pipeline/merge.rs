//! Stage 6, merge: the findings become one account of the person: profiles
//! the caller's confidence floor admits, best match first; attributes that
//! keep every distinct value with all of its provenance (none is silently
//! dropped); what the cache contributed.
use std::collections::HashMap;

use chrono::{DateTime, Utc};

use super::gather::Gathered;
use super::query::EnrichQuery;
use super::roles::RoleFindings;
use crate::catalog::Catalog;
use crate::engine::Findings;
use crate::model::{
    Attribute, AttributeValue, CacheInfo, CacheMode, Coverage, Field, MessagingApp, Outcome,
    Profile, SkipReason, SourceOutcome, Verification,
};

/// The merged findings of one request.
#[derive(Clone)]
pub(super) struct Merged {
    pub verification: Option<Verification>,
    /// The person's profiles, best match first: confirmed, and guesses
    /// something corroborates (`corroborate`).
    pub profiles: Vec<Profile>,
    /// Guesses nothing ties to the person: where they are, nothing more.
    pub possible_matches: Vec<Profile>,
    /// Whether anyone was found (kept when the profiles move to the answer).
    pub found: bool,
    /// One per (source, input) asked, then one per source not asked.
    pub outcomes: Vec<SourceOutcome>,
    pub cache: CacheInfo,
    pub coverage: Coverage,
    /// The cache keys the sources read or wrote for this request (shared
    /// with a memo's every answer).
    pub cache_keys: std::sync::Arc<[String]>,
    /// Breaches, phone line and mailbox check (not profiles).
    pub roles: RoleFindings,
    pub messaging_apps: Vec<MessagingApp>,
}

pub(super) fn merge(
    gathered: Gathered,
    query: &EnrichQuery,
    catalog: &Catalog,
    min_coverage: f64,
    doubts: &super::corroborate::Doubts,
    now: DateTime<Utc>,
) -> Merged {
    let Gathered {
        verification,
        findings:
            Findings {
                mut profiles,
                outcomes,
                cache_keys,
                ..
            },
    } = gathered;
    if let Some(min) = query.min_confidence {
        profiles.retain(|p| p.confidence() >= min);
    }
    let roles = super::roles::split(&mut profiles, catalog);
    let (mut profiles, possible_matches) =
        super::corroborate::corroborate(profiles, query.name_hint.as_deref(), doubts);
    order_profiles(&mut profiles, catalog);
    let messaging_apps =
        super::roles::messaging_apps(&profiles, &outcomes, catalog, &roles.messaging_apps, now);
    let cache = cache_info(&outcomes, query.cache.mode);
    let coverage = coverage(&outcomes, min_coverage);
    Merged {
        found: !profiles.is_empty(),
        coverage,
        cache_keys: cache_keys.into(),
        verification,
        profiles,
        possible_matches,
        outcomes,
        cache,
        roles,
        messaging_apps,
    }
}

/// How many sources answered, could not answer, or were left out; and
/// whether at least one and at least `min_coverage` of those asked answered.
fn coverage(outcomes: &[SourceOutcome], min_coverage: f64) -> Coverage {
    let count = |f: &dyn Fn(&Outcome) -> bool| {
        u32::try_from(outcomes.iter().filter(|o| f(&o.outcome)).count()).unwrap_or(u32::MAX)
    };
    let answered = count(&|o| matches!(o, Outcome::Found | Outcome::NotFound));
    let unanswered = count(&|o| {
        matches!(
            o,
            Outcome::Error
                | Outcome::Timeout
                | Outcome::RateLimited
                | Outcome::CircuitOpen
                | Outcome::Skipped(SkipReason::CacheOnly)
        )
    });
    let asked = f64::from(answered) + f64::from(unanswered);
    Coverage {
        answered,
        unanswered,
        skipped: u32::try_from(outcomes.len()).unwrap_or(u32::MAX) - answered - unanswered,
        sufficient: answered > 0 && f64::from(answered) >= min_coverage * asked,
    }
}

/// How many sources answered from the cache, how many were sent a request
/// (one refused before sending, by its rate budget, a Retry-After or an
/// open circuit, is neither), and the oldest cached answer used.
pub(super) fn cache_info(outcomes: &[SourceOutcome], mode: CacheMode) -> CacheInfo {
    let count = |n: usize| u32::try_from(n).unwrap_or(u32::MAX);
    let from_cache = outcomes.iter().filter(|o| o.cached).count();
    let fetched = outcomes.iter().filter(|o| o.fetched).count();
    CacheInfo {
        policy: mode,
        sources_from_cache: count(from_cache),
        sources_fetched: count(fetched),
        oldest_entry_age: outcomes.iter().filter_map(|o| o.cache_age).max(),
    }
}

/// Fields merged across profiles, and the attribute names they get.
const MERGED: [(Field, &str); 5] = [
    (Field::DisplayName, "name"),
    (Field::Username, "username"),
    (Field::Location, "location"),
    (Field::AvatarUrl, "avatar_url"),
    (Field::Url, "profile_url"),
];

/// The field an attribute's name is merged from ("name", "location" ...).
pub(crate) fn field_named(name: &str) -> Option<Field> {
    MERGED.iter().find(|(_, n)| *n == name).map(|(f, _)| *f)
}

/// Best match first: confidence, then the source's catalog weight.
fn order_profiles(profiles: &mut [Profile], catalog: &Catalog) {
    let weight = |p: &Profile| catalog.get(&p.source_id).map_or(0.0, |s| s.weight);
    profiles.sort_by(|a, b| {
        b.confidence()
            .cmp(&a.confidence())
            .then(weight(b).total_cmp(&weight(a)))
            .then(a.source_id.cmp(&b.source_id))
    });
}

/// Distinct values per attribute (compared case- and space-insensitively),
/// the most supported first.
pub fn attributes(profiles: &[Profile]) -> Vec<Attribute> {
    let mut out = Vec::new();
    for (field, name) in MERGED {
        let mut values: Vec<AttributeValue> = Vec::new();
        let mut index: HashMap<String, usize> = HashMap::new();
        for profile in profiles {
            let Some(found) = profile.fields.get(&field) else {
                continue;
            };
            let text = found.value.as_text();
            let key = text
                .split_whitespace()
                .collect::<Vec<_>>()
                .join(" ")
                .to_lowercase();
            match index.get(&key) {
                Some(&i) => values[i].provenance.push(found.provenance.clone()),
                None => {
                    index.insert(key, values.len());
                    values.push(AttributeValue {
                        value: text,
                        provenance: vec![found.provenance.clone()],
                    });
                }
            }
        }
        if values.is_empty() {
            continue;
        }
        values.sort_by(|a, b| {
            let best = |v: &AttributeValue| v.provenance.iter().map(|p| p.confidence).max();
            b.provenance
                .len()
                .cmp(&a.provenance.len())
                .then(best(b).cmp(&best(a)))
        });
        out.push(Attribute { name, values });
    }
    out
}
