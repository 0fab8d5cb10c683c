//! The digital footprint, 0-100: how present and how established a person is
//! online, with the contribution of each component.
use std::collections::BTreeSet;

use chrono::{DateTime, Utc};

use super::data::ScoringData;
use crate::catalog::Catalog;

use crate::model::{Component, Confidence, Field, Footprint, Profile, Value};

fn round2(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}

/// Tags that say nothing about what a person does online.
const GENERIC_TAGS: &[&str] = &["identity", "avatar"];

/// The footprint of `profiles` as of `now`.
pub fn score(
    profiles: &[Profile],
    catalog: &Catalog,
    data: &ScoringData,
    now: DateTime<Utc>,
) -> Footprint {
    Basis::of(profiles, catalog, data).at(data, now)
}

/// What of a footprint does not depend on the time: every component but
/// the oldest account's age, and when that account was created. A fully
/// cached answer's memo keeps it, so a repeated call only ages it.
#[derive(Debug, Clone)]
pub struct Basis {
    /// platforms, breadth (before the age), completeness, activity (after).
    before_age: [Component; 2],
    after_age: [Component; 2],
    /// The earliest account creation date any profile gives.
    oldest_created: Option<DateTime<Utc>>,
}

impl Basis {
    pub fn of(profiles: &[Profile], catalog: &Catalog, data: &ScoringData) -> Self {
        let w = &data.weights.footprint;
        let i = &data.weights.interests;
        let conf = |c: Confidence| match c {
            Confidence::Exact => i.exact,
            Confidence::Pivot => i.pivot,
            Confidence::Guess => i.guess,
        };
        // One platform counts once, at its best match.
        let mut best: std::collections::BTreeMap<&str, f64> = Default::default();
        for p in profiles {
            let weight = catalog.get(&p.source_id).map_or(0.0, |s| s.weight) * conf(p.confidence());
            let e = best.entry(&*p.source_id).or_insert(0.0);
            *e = e.max(weight);
        }
        let weighted: f64 = best.values().sum();
        let platforms = w.platforms * (1.0 - (-weighted / w.platforms_scale).exp());

        let tags: BTreeSet<String> = best
            .keys()
            .filter_map(|id| catalog.get(id))
            .flat_map(|s| s.tags.iter().map(|t| t.to_lowercase()))
            .filter(|t| !GENERIC_TAGS.contains(&t.as_str()))
            .collect();
        let breadth = w.breadth * (tags.len() as f64 / w.breadth_full.max(1) as f64).min(1.0);

        let oldest_created = profiles
            .iter()
            .filter_map(
                |p| match p.fields.get(&Field::CreatedAt).map(|s| &s.value) {
                    Some(Value::Time(t)) => Some(*t),
                    _ => None,
                },
            )
            .min();

        let completeness_ratio = if profiles.is_empty() {
            0.0
        } else {
            profiles
                .iter()
                .map(|p| {
                    let has = |f: Field| p.fields.contains_key(&f);
                    let parts = [
                        has(Field::DisplayName),
                        has(Field::Bio),
                        has(Field::AvatarUrl),
                        has(Field::Url) || !p.accounts.is_empty(),
                    ];
                    parts.iter().filter(|b| **b).count() as f64 / parts.len() as f64
                })
                .sum::<f64>()
                / profiles.len() as f64
        };
        let completeness = w.completeness * completeness_ratio;

        let mut activity_total = 0i64;
        for p in profiles {
            for f in [Field::Followers, Field::Posts] {
                if let Some(Value::Count(n)) = p.fields.get(&f).map(|s| &s.value) {
                    activity_total += n;
                }
            }
            if let Some(karma) = p
                .extra
                .get("karma")
                .and_then(|s| s.value.as_text().parse::<i64>().ok())
            {
                activity_total += karma.max(0);
            }
        }
        let activity_log = ((1 + activity_total.max(0)) as f64).log10();
        let activity = w.activity * (activity_log / w.activity_full_log10).min(1.0);

        Self {
            before_age: [
                Component {
                    name: "platforms",
                    value: round2(weighted),
                    contribution: round2(platforms),
                    explanation: format!(
                        "{} platforms found, catalog weights {:.2} in all (scaled by match confidence)",
                        best.len(),
                        weighted
                    ),
                },
                Component {
                    name: "breadth",
                    value: tags.len() as f64,
                    contribution: round2(breadth),
                    explanation: format!(
                        "{} distinct site categories: {}",
                        tags.len(),
                        tags.iter().cloned().collect::<Vec<_>>().join(", ")
                    ),
                },
            ],
            after_age: [
                Component {
                    name: "completeness",
                    value: round2(completeness_ratio),
                    contribution: round2(completeness),
                    explanation:
                        "share of name, bio, avatar and links present, averaged over profiles"
                            .to_owned(),
                },
                Component {
                    name: "activity",
                    value: activity_total as f64,
                    contribution: round2(activity),
                    explanation: "followers, posts and karma where a source gives them (log scale)"
                        .to_owned(),
                },
            ],
            oldest_created,
        }
    }

    /// The footprint as of `now` (an account "created" after `now` does
    /// not count).
    pub fn at(&self, data: &ScoringData, now: DateTime<Utc>) -> Footprint {
        let w = &data.weights.footprint;
        // The earliest date is at or before `now`, or none is.
        let oldest = self.oldest_created.filter(|t| *t <= now);
        let years = oldest.map_or(0.0, |t| (now - t).num_days() as f64 / 365.25);
        let age = w.age * (years / w.age_full_years).min(1.0);
        let account_age = Component {
            name: "account_age",
            value: round2(years),
            contribution: round2(age),
            explanation: match oldest {
                Some(t) => format!("oldest account seen created {}", t.format("%Y-%m-%d")),
                None => "no account creation date seen".to_owned(),
            },
        };
        let components: Vec<Component> = self
            .before_age
            .iter()
            .cloned()
            .chain(std::iter::once(account_age))
            .chain(self.after_age.iter().cloned())
            .collect();
        let total: f64 = components.iter().map(|c| c.contribution).sum();
        Footprint {
            score: total.round().clamp(0.0, 100.0) as u32,
            components,
        }
    }
}
