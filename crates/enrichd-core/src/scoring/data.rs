//! The data scoring runs on: the IAB Audience Taxonomy's Interest branch, the
//! term lexicon, the tag map, the special-category marks and the weights.
//! All are files (shipped in the binary, replaceable from config), checked
//! against each other at load.
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::PathBuf;

use aho_corasick::{AhoCorasick, AhoCorasickBuilder, MatchKind};
use serde::Deserialize;

const TAXONOMY: &str = include_str!("../../../../data/iab/audience-taxonomy-1.1.tsv");
const LEXICON: &str = include_str!("../../../../data/scoring/lexicon.toml");
const TAGS: &str = include_str!("../../../../data/scoring/tags.toml");
const SPECIAL: &str = include_str!("../../../../data/scoring/special-categories.toml");
const WEIGHTS: &str = include_str!("../../../../data/scoring/weights.toml");

/// `[scoring]` settings: replacement files; unset uses the shipped copy.
#[derive(Debug, Clone, Default, PartialEq, serde::Deserialize, serde::Serialize)]
#[serde(default)]
pub struct ScoringPaths {
    pub lexicon: Option<PathBuf>,
    pub tags: Option<PathBuf>,
    pub special_categories: Option<PathBuf>,
    pub weights: Option<PathBuf>,
}

/// One node of the Interest branch.
#[derive(Debug, Clone)]
pub struct Node {
    pub id: String,
    pub name: String,
    pub parent: Option<String>,
    /// Tier names from the top, "Interest" first.
    pub path: Vec<String>,
    pub depth: usize,
}

#[derive(Debug, Clone, Deserialize)]
pub struct InterestWeights {
    pub tag: f64,
    pub term: f64,
    pub exact: f64,
    pub pivot: f64,
    pub guess: f64,
    pub rollup: f64,
    pub min_score: f64,
    pub max_interests: usize,
}

#[derive(Debug, Clone, Deserialize)]
pub struct FootprintWeights {
    pub platforms: f64,
    pub breadth: f64,
    pub age: f64,
    pub completeness: f64,
    pub activity: f64,
    pub platforms_scale: f64,
    pub breadth_full: usize,
    pub age_full_years: f64,
    pub activity_full_log10: f64,
}

#[derive(Debug, Clone, Deserialize)]
pub struct RiskWeights {
    pub medium: u32,
    pub high: u32,
    /// Points at which the score reaches 63 (1 - 1/e of 100): the score is
    /// `100 * (1 - exp(-points / scale))`.
    pub scale: f64,
    /// An identity whose every piece of evidence (accounts, breaches) is
    /// younger than this many days is new (`only_recent_accounts`).
    #[serde(default = "new_identity_days")]
    pub new_identity_days: i64,
    /// A SIM changed less than this many days ago is a recent swap
    /// (`recent_sim_swap`), as is one the carrier says changed within the
    /// period it was asked about.
    #[serde(default = "sim_swap_days")]
    pub sim_swap_days: i64,
    pub reasons: BTreeMap<String, f64>,
}

fn new_identity_days() -> i64 {
    365
}

fn sim_swap_days() -> i64 {
    7
}

#[derive(Debug, Clone, Deserialize)]
pub struct Weights {
    pub interests: InterestWeights,
    pub footprint: FootprintWeights,
    pub risk: RiskWeights,
}

#[derive(Deserialize)]
struct LexiconFile {
    node: Vec<LexiconNode>,
}

#[derive(Deserialize)]
struct LexiconNode {
    id: String,
    #[serde(flatten)]
    terms: BTreeMap<String, Vec<String>>,
}

#[derive(Deserialize)]
struct TagsFile {
    tags: BTreeMap<String, Vec<String>>,
}

#[derive(Deserialize)]
struct SpecialFile {
    node: Vec<SpecialNode>,
}

#[derive(Deserialize)]
struct SpecialNode {
    id: String,
    category: String,
    #[serde(default)]
    descendants: bool,
    #[serde(default)]
    #[allow(dead_code)]
    note: String,
}

/// Everything scoring reads, loaded and cross-checked.
pub struct ScoringData {
    pub nodes: BTreeMap<String, Node>,
    /// Lexicon terms (lowercase), in the matcher's pattern order, and the
    /// nodes each names.
    pub terms: Vec<(String, Vec<String>)>,
    pub matcher: AhoCorasick,
    pub tags: HashMap<String, Vec<String>>,
    /// Special-category node ids (subtrees expanded) and their Art. 9 category.
    pub special: BTreeMap<String, String>,
    pub weights: Weights,
}

#[derive(Debug, thiserror::Error)]
pub struct ScoringDataError {
    pub problems: Vec<String>,
}

impl std::fmt::Display for ScoringDataError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        crate::error::write_problems(f, "scoring data", &self.problems)
    }
}

fn read(path: &Option<PathBuf>, shipped: &str, problems: &mut Vec<String>) -> String {
    match path {
        None => shipped.to_owned(),
        Some(p) => std::fs::read_to_string(p).unwrap_or_else(|e| {
            problems.push(format!("{}: {e}", p.display()));
            shipped.to_owned()
        }),
    }
}

fn parse<T: serde::de::DeserializeOwned>(
    text: &str,
    what: &str,
    problems: &mut Vec<String>,
) -> Option<T> {
    toml::from_str(text)
        .map_err(|e| problems.push(format!("{what}: {}", e.to_string().trim())))
        .ok()
}

/// The Interest branch of the shipped Audience Taxonomy 1.1.
pub fn taxonomy() -> BTreeMap<String, Node> {
    let mut nodes = BTreeMap::new();
    for line in TAXONOMY.lines().skip(1) {
        let cols: Vec<&str> = line.split('\t').collect();
        if cols.len() < 10 || cols[4] != "Interest" {
            continue;
        }
        let path: Vec<String> = cols[4..10]
            .iter()
            .map(|s| s.trim())
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
            .collect();
        let id = cols[1].trim().to_owned();
        nodes.insert(
            id.clone(),
            Node {
                name: path.last().cloned().unwrap_or_default(),
                depth: path.len(),
                path,
                parent: Some(cols[2].trim().to_owned()).filter(|p| !p.is_empty()),
                id,
            },
        );
    }
    nodes
}

impl ScoringData {
    pub fn load(paths: &ScoringPaths) -> Result<Self, ScoringDataError> {
        let mut problems = Vec::new();
        let nodes = taxonomy();
        let lexicon: Option<LexiconFile> = parse(
            &read(&paths.lexicon, LEXICON, &mut problems),
            "lexicon",
            &mut problems,
        );
        let tags: Option<TagsFile> = parse(
            &read(&paths.tags, TAGS, &mut problems),
            "tags",
            &mut problems,
        );
        let special: Option<SpecialFile> = parse(
            &read(&paths.special_categories, SPECIAL, &mut problems),
            "special categories",
            &mut problems,
        );
        let weights: Option<Weights> = parse(
            &read(&paths.weights, WEIGHTS, &mut problems),
            "weights",
            &mut problems,
        );
        let known = |id: &str, what: &str, problems: &mut Vec<String>| {
            if !nodes.contains_key(id) {
                problems.push(format!(
                    "{what}: {id:?} is not an Interest node of the IAB Audience Taxonomy 1.1"
                ));
            }
        };

        let mut terms = Vec::new();
        for n in lexicon.iter().flat_map(|l| &l.node) {
            known(&n.id, "lexicon", &mut problems);
            for words in n.terms.values() {
                for w in words {
                    terms.push((w.to_lowercase(), n.id.clone()));
                }
            }
        }
        let tag_map: HashMap<String, Vec<String>> = tags
            .map(|t| {
                t.tags
                    .into_iter()
                    .map(|(k, v)| (k.to_lowercase(), v))
                    .collect()
            })
            .unwrap_or_default();
        for id in tag_map.values().flatten() {
            known(id, "tags", &mut problems);
        }
        let mut marked = BTreeMap::new();
        for s in special.iter().flat_map(|s| &s.node) {
            known(&s.id, "special categories", &mut problems);
            marked.insert(s.id.clone(), s.category.clone());
            if s.descendants {
                let mut frontier = vec![s.id.clone()];
                while let Some(parent) = frontier.pop() {
                    for child in nodes
                        .values()
                        .filter(|n| n.parent.as_deref() == Some(&parent))
                    {
                        marked.insert(child.id.clone(), s.category.clone());
                        frontier.push(child.id.clone());
                    }
                }
            }
        }
        let patterns: BTreeSet<&str> = terms.iter().map(|(t, _)| t.as_str()).collect();
        let matcher = AhoCorasickBuilder::new()
            .ascii_case_insensitive(true)
            .match_kind(MatchKind::LeftmostLongest)
            .build(patterns.iter().copied());
        let matcher = match matcher {
            Ok(m) => Some(m),
            Err(e) => {
                problems.push(format!("lexicon: {e}"));
                None
            }
        };
        match (weights, matcher, problems.is_empty()) {
            (Some(weights), Some(matcher), true) => {
                // The matcher's pattern ids index this sorted, deduplicated list.
                let ordered: Vec<String> = patterns.iter().map(|s| s.to_string()).collect();
                let terms = ordered
                    .into_iter()
                    .map(|t| {
                        let mut ids: Vec<String> = terms
                            .iter()
                            .filter(|(w, _)| *w == t)
                            .map(|(_, n)| n.clone())
                            .collect();
                        ids.dedup();
                        (t, ids)
                    })
                    .collect();
                Ok(Self {
                    nodes,
                    terms,
                    matcher,
                    tags: tag_map,
                    special: marked,
                    weights,
                })
            }
            _ => Err(ScoringDataError { problems }),
        }
    }

    pub fn is_special(&self, id: &str) -> bool {
        self.special.contains_key(id)
    }
}
