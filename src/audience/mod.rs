//! Audience reports: a batch job's list summarised so that it identifies no
//! one. Shares of the list on each platform, its interests by tier of the
//! IAB Audience Taxonomy, footprint, risk and account-age distributions,
//! the channels people can be reached on, and segments (personas) found by
//! clustering, each described by what sets it apart from the whole list.
//!
//! No one identifiable: a cell, bucket or segment of fewer than `k` people
//! is not shown (folded into "other", counted); Art. 9 categories never
//! enter (dropped when the row's facts are kept, and again here); no
//! identifier, name or free text is in a report, only counts, shares and
//! the catalog's and taxonomy's own names; with `epsilon` set, every count
//! gets Laplace noise first (for reports that leave the company).
pub mod features;

use std::collections::{BTreeMap, BTreeSet};

use ndarray::Array2;
use serde::Serialize;

pub use features::Features;

use crate::scoring::data::Node;

/// `[audience]` settings.
#[derive(Debug, Clone, PartialEq, serde::Serialize, eserde::Deserialize)]
pub struct AudienceConfig {
    /// The fewest people a shown cell, bucket or segment may count.
    #[serde(default = "ten")]
    pub k: u64,
    /// The range the number of segments is chosen in (by silhouette).
    #[serde(default = "two")]
    pub min_segments: usize,
    #[serde(default = "eight")]
    pub max_segments: usize,
    /// Laplace noise on every count, with this privacy budget per count
    /// (smaller: more noise); unset: exact counts.
    #[serde(default)]
    pub epsilon: Option<f64>,
}

fn ten() -> u64 {
    10
}
fn two() -> usize {
    2
}
fn eight() -> usize {
    8
}

impl Default for AudienceConfig {
    fn default() -> Self {
        Self {
            k: ten(),
            min_segments: two(),
            max_segments: eight(),
            epsilon: None,
        }
    }
}

impl AudienceConfig {
    pub fn problems(&self) -> Vec<String> {
        let mut p = Vec::new();
        if self.k < 2 {
            p.push("audience.k: must be at least 2 (a cell of one person is that person)".into());
        }
        if self.min_segments < 2 || self.max_segments < self.min_segments {
            p.push(
                "audience.min_segments, max_segments: need 2 <= min_segments <= max_segments"
                    .into(),
            );
        }
        if self.epsilon.is_some_and(|e| !(e > 0.0 && e.is_finite())) {
            p.push("audience.epsilon: must be a positive number".into());
        }
        p
    }
}

/// One shown cell: what it is, how many people, their share of the list.
#[derive(Debug, Clone, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Cell {
    pub key: String,
    pub label: String,
    /// Tier names from the top, for an interest.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub path: Vec<String>,
    pub people: u64,
    pub share: f64,
}

/// What was folded away: how many cells, and how many people they held
/// together (shown only when that is `k` or more).
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Other {
    pub cells: u64,
    pub people: Option<u64>,
}

#[derive(Debug, Clone, Default, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Table {
    pub cells: Vec<Cell>,
    pub other: Other,
}

/// What sets a segment apart: the share of it with a trait, and that share
/// over the whole list's (lift).
#[derive(Debug, Clone, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Trait {
    pub name: String,
    pub share: f64,
    pub lift: f64,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Segment {
    pub id: usize,
    pub label: String,
    pub people: u64,
    /// Of the people found.
    pub share: f64,
    pub interests: Vec<Trait>,
    pub platforms: Vec<Trait>,
}

#[derive(Debug, Clone, Default, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Segments {
    /// The people found, who were clustered.
    pub people: u64,
    pub shown: Vec<Segment>,
    pub other: Other,
    /// How they were made, in words.
    pub method: String,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Noise {
    pub mechanism: &'static str,
    pub epsilon: f64,
}

/// A whole report.
#[derive(Debug, Clone, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Report {
    /// The rows of the list (as submitted).
    pub rows: u64,
    pub k: u64,
    pub noise: Option<Noise>,
    /// Found, not found, incomplete, suppressed, errors.
    pub outcomes: Table,
    /// Share of the list on each platform.
    pub platforms: Table,
    /// Interests by tier (tier 1 first).
    pub interests: Vec<Table>,
    pub footprint: Table,
    pub risk: Table,
    /// Platforms and messaging apps people can be reached on.
    pub channels: Table,
    pub account_age: Table,
    pub segments: Segments,
}

/// What a report is made from.
pub struct Inputs<'a> {
    pub rows: u64,
    /// Rows by the batch outcome (enriched, not_found, ...).
    pub outcomes: &'a BTreeMap<String, u64>,
    /// The facts of the answered rows.
    pub people: &'a [Features],
    pub taxonomy: &'a BTreeMap<String, Node>,
    /// Art. 9 interest ids.
    pub special: &'a dyn Fn(&str) -> bool,
    pub now_ms: i64,
    /// Where the noise comes from (with `epsilon`): the same seed and rows
    /// give the same report. A job's report is asked for again and again;
    /// fresh noise each time would let the asker average it away.
    pub noise_seed: [u8; 32],
}

/// A cell before it is shown: key, label, tier path, people.
type Count = (String, String, Vec<String>, u64);

/// Counts as shown: with noise when configured, and none under `k`.
struct Counter<'a> {
    config: &'a AudienceConfig,
    /// The noise's draws, in the order the report is built.
    draws: std::cell::RefCell<rand_xoshiro::Xoshiro256PlusPlus>,
}

impl<'a> Counter<'a> {
    fn new(config: &'a AudienceConfig, seed: [u8; 32]) -> Self {
        use rand_xoshiro::rand_core::SeedableRng;
        let draws = rand_xoshiro::Xoshiro256PlusPlus::from_seed(seed);
        Self {
            config,
            draws: std::cell::RefCell::new(draws),
        }
    }

    fn noisy(&self, n: u64) -> u64 {
        use rand_xoshiro::rand_core::RngCore;
        let Some(epsilon) = self.config.epsilon else {
            return n;
        };
        // Laplace(0, 1/epsilon) by inverse transform: each person moves a
        // count by one at most. 53 random bits, uniform in [-0.5, 0.5).
        let bits = self.draws.borrow_mut().next_u64() >> 11;
        let u = bits as f64 / (1_u64 << 53) as f64 - 0.5;
        let noise = -u.signum() * (1.0 - 2.0 * u.abs()).max(f64::MIN_POSITIVE).ln() / epsilon;
        (n as f64 + noise).round().max(0.0) as u64
    }

    fn shown(&self, n: u64) -> Option<u64> {
        Some(self.noisy(n)).filter(|&n| n >= self.config.k)
    }

    /// The cells of `counts` (key, label, path, people) over `total`, the
    /// small ones folded.
    fn table(&self, counts: Vec<Count>, total: u64) -> Table {
        let mut table = Table::default();
        let mut folded = 0;
        for (key, label, path, n) in counts {
            // No noisy count above the rows it is a count of.
            match self.shown(n).map(|people| people.min(total)) {
                Some(people) => table.cells.push(Cell {
                    key,
                    label,
                    path,
                    people,
                    share: share(people, total),
                }),
                None => {
                    table.other.cells += 1;
                    folded += n;
                }
            }
        }
        if table.other.cells > 0 {
            table.other.people = self.shown(folded);
        }
        table
            .cells
            .sort_by(|a, b| b.people.cmp(&a.people).then(a.key.cmp(&b.key)));
        table
    }
}

fn share(n: u64, total: u64) -> f64 {
    if total == 0 {
        return 0.0;
    }
    (n as f64 / total as f64 * 1000.0).round() / 1000.0
}

/// Counts per name.
fn tally<'a>(names: impl Iterator<Item = &'a String>) -> BTreeMap<&'a str, u64> {
    let mut counts = BTreeMap::new();
    for name in names {
        *counts.entry(name.as_str()).or_default() += 1;
    }
    counts
}

const SCORE_BUCKETS: [(u32, u32); 5] = [(0, 19), (20, 39), (40, 59), (60, 79), (80, 100)];
const AGE_BUCKETS: [(&str, f64, f64); 5] = [
    ("under 1 year", 0.0, 1.0),
    ("1-3 years", 1.0, 3.0),
    ("3-5 years", 3.0, 5.0),
    ("5-10 years", 5.0, 10.0),
    ("10 years or more", 10.0, f64::INFINITY),
];

/// The segments' columns: platforms and interests common enough to show.
fn columns(people: &[&Features], counter: &Counter<'_>) -> (Vec<String>, Vec<String>) {
    let k = counter.config.k;
    let platforms = tally(people.iter().flat_map(|p| &p.platforms))
        .into_iter()
        .filter(|(_, n)| *n >= k)
        .map(|(name, _)| name.to_owned())
        .collect();
    let interests = tally(people.iter().flat_map(|p| &p.interests))
        .into_iter()
        .filter(|(_, n)| *n >= k)
        .map(|(id, _)| id.to_owned())
        .collect();
    (platforms, interests)
}

/// Builds the report; also each answered row's shown segment (by the index
/// of `inputs.people`; `None` for the not found and the folded).
pub fn build(inputs: &Inputs<'_>, config: &AudienceConfig) -> (Report, Vec<Option<usize>>) {
    let counter = Counter::new(config, inputs.noise_seed);
    let total = inputs.rows;
    let outcomes = counter.table(
        inputs
            .outcomes
            .iter()
            .filter(|(o, _)| *o != "pending")
            .map(|(o, n)| (o.clone(), outcome_label(o).to_owned(), Vec::new(), *n))
            .collect(),
        total,
    );
    let people = inputs.people;
    let platforms = counter.table(
        tally(people.iter().flat_map(|p| &p.platforms))
            .into_iter()
            .map(|(name, n)| (name.to_owned(), name.to_owned(), Vec::new(), n))
            .collect(),
        total,
    );
    let interest_counts = tally(
        people
            .iter()
            .flat_map(|p| &p.interests)
            .filter(|id| !(inputs.special)(id)),
    );
    let mut tiers: Vec<Vec<Count>> = vec![Vec::new(); 3];
    for (id, n) in interest_counts {
        let Some(node) = inputs.taxonomy.get(id) else {
            continue;
        };
        // The path starts with "Interest": depth 2 is tier 1.
        if let Some(tier) = node.depth.checked_sub(2).filter(|t| *t < 3) {
            tiers[tier].push((id.to_owned(), node.name.clone(), node.path[1..].to_vec(), n));
        }
    }
    let interests = tiers
        .into_iter()
        .map(|cells| counter.table(cells, total))
        .collect();
    let buckets = |score: &dyn Fn(&Features) -> u32| {
        SCORE_BUCKETS
            .iter()
            .map(|(lo, hi)| {
                let n = people
                    .iter()
                    .filter(|p| (*lo..=*hi).contains(&score(p)))
                    .count();
                (
                    format!("{lo}-{hi}"),
                    format!("{lo}-{hi}"),
                    Vec::new(),
                    n as u64,
                )
            })
            .collect::<Vec<_>>()
    };
    let footprint = counter.table(buckets(&|p| p.footprint), total);
    let risk = counter.table(buckets(&|p| p.risk), total);
    let channels = counter.table(
        tally(
            people
                .iter()
                .flat_map(|p| p.platforms.iter().chain(&p.messaging)),
        )
        .into_iter()
        .map(|(name, n)| (name.to_owned(), name.to_owned(), Vec::new(), n))
        .collect(),
        total,
    );
    let year_ms = 365.25 * 24.0 * 3600.0 * 1000.0;
    let ages: Vec<f64> = people
        .iter()
        .filter_map(|p| p.oldest_account_ms)
        .map(|ms| (inputs.now_ms - ms) as f64 / year_ms)
        .collect();
    let mut age_cells: Vec<_> = AGE_BUCKETS
        .iter()
        .map(|(label, lo, hi)| {
            let n = ages.iter().filter(|a| **a >= *lo && **a < *hi).count() as u64;
            (label.to_string(), label.to_string(), Vec::new(), n)
        })
        .collect();
    let found = people.iter().filter(|p| p.found).count() as u64;
    age_cells.push((
        "unknown".into(),
        "no account date".into(),
        Vec::new(),
        found.saturating_sub(ages.len() as u64),
    ));
    let account_age = counter.table(age_cells, total);
    let (segments, membership) = segments_of(inputs, &counter);
    let report = Report {
        rows: total,
        k: config.k,
        noise: config.epsilon.map(|epsilon| Noise {
            mechanism: "laplace",
            epsilon,
        }),
        outcomes,
        platforms,
        interests,
        footprint,
        risk,
        channels,
        account_age,
        segments,
    };
    (report, membership)
}

/// A batch row's outcome as a report counts it: errors by any code are one
/// row of the table.
pub fn outcome_key(outcome: String) -> String {
    if outcome.starts_with("error:") {
        "error".to_owned()
    } else {
        outcome
    }
}

fn outcome_label(outcome: &str) -> &str {
    match outcome {
        "enriched" => "found",
        "not_found" => "not found",
        "incomplete" => "too few sources answered",
        "suppressed" => "suppressed (erased or objected)",
        "invalid" => "not an email address or phone number",
        "erased" => "erased since",
        _ => "not answered (error)",
    }
}

fn segments_of(inputs: &Inputs<'_>, counter: &Counter<'_>) -> (Segments, Vec<Option<usize>>) {
    let config = counter.config;
    let found: Vec<(usize, &Features)> = inputs
        .people
        .iter()
        .enumerate()
        .filter(|(_, p)| p.found)
        .collect();
    let mut membership = vec![None; inputs.people.len()];
    let people: Vec<&Features> = found.iter().map(|(_, p)| *p).collect();
    let (platforms, interests) = columns(&people, counter);
    let width = platforms.len() + interests.len();
    let mut segments = Segments {
        people: people.len() as u64,
        ..Segments::default()
    };
    let vectors = Array2::from_shape_fn((people.len(), width), |(i, j)| {
        let p = people[i];
        let on = if j < platforms.len() {
            p.platforms.contains(&platforms[j])
        } else {
            p.interests.contains(&interests[j - platforms.len()])
        };
        f64::from(u8::from(on))
    });
    let max = config
        .max_segments
        .min((people.len() as u64 / config.k.max(1)) as usize);
    let Some(labels) = enrichd_segments::assign(&vectors, config.min_segments, max) else {
        segments.method = "too few people found to segment".into();
        segments.other.people = counter.shown(people.len() as u64);
        return (segments, membership);
    };
    let k_found = labels.iter().copied().max().map_or(0, |m| m + 1);
    segments.method = format!(
        "k-means on {} platform and {} interest columns (each held by {} or more people); \
         {k_found} segments, chosen by silhouette between {} and {max}",
        platforms.len(),
        interests.len(),
        config.k,
        config.min_segments
    );
    let overall = |j: usize| vectors.column(j).sum() / people.len() as f64;
    let mut folded = 0;
    let mut labels_seen = BTreeSet::new();
    for c in 0..k_found {
        let members: Vec<usize> = (0..people.len()).filter(|&i| labels[i] == c).collect();
        let Some(shown) = counter.shown(members.len() as u64) else {
            segments.other.cells += 1;
            folded += members.len() as u64;
            continue;
        };
        let traits = |range: std::ops::Range<usize>, name: &dyn Fn(usize) -> String| {
            let mut t: Vec<Trait> = range
                .map(|j| {
                    let share_in = members.iter().map(|&i| vectors[[i, j]]).sum::<f64>()
                        / members.len() as f64;
                    let base = overall(j);
                    Trait {
                        name: name(j),
                        share: (share_in * 1000.0).round() / 1000.0,
                        lift: if base > 0.0 {
                            ((share_in / base) * 100.0).round() / 100.0
                        } else {
                            0.0
                        },
                    }
                })
                .filter(|t| t.share >= 0.4 && t.lift >= 1.2)
                .collect();
            t.sort_by(|a, b| b.lift.total_cmp(&a.lift).then(b.share.total_cmp(&a.share)));
            t
        };
        let interest_traits = traits(platforms.len()..width, &|j| {
            let id = &interests[j - platforms.len()];
            inputs
                .taxonomy
                .get(id)
                .map_or_else(|| id.clone(), |n| n.name.clone())
        });
        let platform_traits = traits(0..platforms.len(), &|j| platforms[j].clone());
        // A segment is described by its most specific interests: a parent
        // whose child sets it apart as well says less.
        let ancestors: BTreeSet<&str> = interest_traits
            .iter()
            .filter_map(|t| inputs.taxonomy.values().find(|n| n.name == t.name))
            .flat_map(|n| {
                n.path[..n.path.len().saturating_sub(1)]
                    .iter()
                    .map(String::as_str)
            })
            .collect();
        let mut interest_traits: Vec<Trait> = interest_traits
            .into_iter()
            .filter(|t| !ancestors.contains(t.name.as_str()))
            .collect();
        interest_traits.truncate(5);
        let mut platform_traits = platform_traits;
        platform_traits.truncate(5);
        let mut label = label_of(&interest_traits, &platform_traits);
        if !labels_seen.insert(label.clone()) {
            label = format!("{label} ({})", c + 1);
        }
        for &i in &members {
            membership[found[i].0] = Some(c);
        }
        segments.shown.push(Segment {
            id: c,
            label,
            people: shown,
            share: share(shown, people.len() as u64),
            interests: interest_traits,
            platforms: platform_traits,
        });
    }
    if segments.other.cells > 0 {
        segments.other.people = counter.shown(folded);
    }
    segments
        .shown
        .sort_by(|a, b| b.people.cmp(&a.people).then(a.id.cmp(&b.id)));
    (segments, membership)
}

/// "Video Gaming & Board Games and Puzzles · SandboxGamer, SandboxForum".
fn label_of(interests: &[Trait], platforms: &[Trait]) -> String {
    fn names(t: &[Trait]) -> Vec<&str> {
        t.iter().take(2).map(|t| t.name.as_str()).collect()
    }
    let (i, p) = (names(interests), names(platforms));
    match (i.is_empty(), p.is_empty()) {
        (true, true) => "No distinct traits".to_owned(),
        (false, true) => i.join(" & "),
        (true, false) => p.join(", "),
        (false, false) => format!("{} · {}", i.join(" & "), p.join(", ")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn person(platforms: &[&str], interests: &[&str]) -> Features {
        Features {
            found: true,
            platforms: platforms.iter().map(|s| s.to_string()).collect(),
            interests: interests.iter().map(|s| s.to_string()).collect(),
            footprint: 30,
            risk: 10,
            ..Features::default()
        }
    }

    #[test]
    fn no_cell_under_k_is_shown_and_what_is_folded_is_counted() {
        let taxonomy = crate::scoring::data::taxonomy();
        let mut people = vec![person(&["A"], &["733"]); 12];
        people.extend(vec![person(&["B"], &["371"]); 3]);
        people.push(person(&["C"], &["466"]));
        let outcomes = BTreeMap::from([("enriched".to_owned(), 16), ("not_found".to_owned(), 4)]);
        let inputs = Inputs {
            rows: 20,
            outcomes: &outcomes,
            people: &people,
            taxonomy: &taxonomy,
            special: &|id: &str| id == "466",
            now_ms: 0,
            noise_seed: [7; 32],
        };
        let (report, _) = build(&inputs, &AudienceConfig::default());
        let keys: Vec<&str> = report
            .platforms
            .cells
            .iter()
            .map(|c| c.key.as_str())
            .collect();
        assert_eq!(keys, ["A"]);
        assert_eq!(
            report.platforms.other,
            Other {
                cells: 2,
                people: None
            },
            "4 people: not shown"
        );
        assert_eq!(report.outcomes.other.cells, 1, "4 not found: folded");
        let text = serde_json::to_string(&report).unwrap();
        assert!(!text.contains("Medical"), "no Art. 9 interest: {text}");
        for table in std::iter::once(&report.platforms).chain(&report.interests) {
            assert!(table.cells.iter().all(|c| c.people >= 10));
        }
    }

    #[test]
    fn the_noise_is_the_seed_s() {
        let config = AudienceConfig {
            epsilon: Some(0.5),
            ..AudienceConfig::default()
        };
        let draws = |seed| {
            let counter = Counter::new(&config, seed);
            (0..100).map(|_| counter.noisy(1000)).collect::<Vec<_>>()
        };
        assert_eq!(draws([1; 32]), draws([1; 32]));
        assert_ne!(draws([1; 32]), draws([2; 32]));
    }

    #[test]
    fn laplace_noise_moves_counts_by_about_one_over_epsilon() {
        let config = AudienceConfig {
            epsilon: Some(0.5),
            ..AudienceConfig::default()
        };
        let counter = Counter::new(&config, rand::random());
        let draws: Vec<f64> = (0..4000)
            .map(|_| counter.noisy(1000) as f64 - 1000.0)
            .collect();
        let mean_abs = draws.iter().map(|d| d.abs()).sum::<f64>() / draws.len() as f64;
        // E|Laplace(0, b)| = b = 2.
        assert!((1.7..2.3).contains(&mean_abs), "{mean_abs}");
        assert!(draws.iter().any(|d| *d != 0.0));
    }
}
