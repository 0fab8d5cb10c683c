//! Interests on the IAB Audience Taxonomy 1.1, from the tags of the sites a
//! person was found on and the words of their bios. Independent evidence
//! counts more than repeated evidence: evidence combines within a source,
//! then across sources (1 - prod(1 - w)); scores roll up to parents.
//! Special-category nodes are scored only to be suppressed, and never roll
//! up into their parents.
use std::collections::BTreeMap;

use super::data::ScoringData;
use crate::catalog::Catalog;

use crate::model::{Confidence, Evidence, EvidenceKind, Field, Interest, Profile, ScoredInterests};

#[derive(Debug, Clone, Copy)]
pub struct InterestOptions {
    pub min_score: f64,
    pub max: usize,
}

/// Characters of context kept on each side of a matched term.
const SPAN_CONTEXT: usize = 40;

fn span(text: &str, start: usize, end: usize) -> String {
    let from = text[..start]
        .char_indices()
        .rev()
        .nth(SPAN_CONTEXT - 1)
        .map_or(0, |(i, _)| i);
    let to = text[end..]
        .char_indices()
        .nth(SPAN_CONTEXT)
        .map_or(text.len(), |(i, _)| end + i);
    text[from..to].trim().to_owned()
}

fn is_word_boundary(text: &str, start: usize, end: usize) -> bool {
    let before = text[..start].chars().next_back();
    let after = text[end..].chars().next();
    !before.is_some_and(char::is_alphanumeric) && !after.is_some_and(char::is_alphanumeric)
}

fn factor(data: &ScoringData, c: Confidence) -> f64 {
    let w = &data.weights.interests;
    match c {
        Confidence::Exact => w.exact,
        Confidence::Pivot => w.pivot,
        Confidence::Guess => w.guess,
    }
}

/// Texts of a profile that describe the person.
fn texts(p: &Profile) -> Vec<String> {
    let mut out: Vec<String> = [Field::Bio, Field::DisplayName]
        .iter()
        .filter_map(|f| p.fields.get(f).map(|s| s.value.as_text()))
        .collect();
    out.extend(
        p.extra
            .values()
            .map(|s| s.value.as_text())
            .filter(|t| !t.starts_with("http")),
    );
    out
}

pub fn score(
    profiles: &[Profile],
    catalog: &Catalog,
    data: &ScoringData,
    options: InterestOptions,
) -> ScoredInterests {
    let w = &data.weights.interests;
    // node -> source -> (evidence key -> (weight, evidence))
    type PerSource = BTreeMap<String, BTreeMap<(EvidenceKind, String), (f64, Evidence)>>;
    let mut found: BTreeMap<String, PerSource> = BTreeMap::new();
    let mut add = |node: &str, source: &str, weight: f64, ev: Evidence| {
        let key = (ev.kind, ev.matched.to_lowercase());
        let slot = found
            .entry(node.to_owned())
            .or_default()
            .entry(source.to_owned())
            .or_default()
            .entry(key)
            .or_insert((0.0, ev));
        // The same tag or term twice from one source is one piece of evidence.
        slot.0 = slot.0.max(weight);
    };
    for p in profiles {
        let f = factor(data, p.confidence());
        if let Some(source) = catalog.get(&p.source_id) {
            for tag in &source.tags {
                for node in data.tags.get(&tag.to_lowercase()).into_iter().flatten() {
                    let ev = Evidence {
                        source_id: p.source_id.clone(),
                        kind: EvidenceKind::SourceTag,
                        matched: tag.clone(),
                        span: String::new(),
                    };
                    add(node, &p.source_id, w.tag * f, ev);
                }
            }
        }
        for text in texts(p) {
            for m in data.matcher.find_iter(&text) {
                if !is_word_boundary(&text, m.start(), m.end()) {
                    continue;
                }
                let (term, nodes) = &data.terms[m.pattern().as_usize()];
                for node in nodes {
                    let ev = Evidence {
                        source_id: p.source_id.clone(),
                        kind: EvidenceKind::TextTerm,
                        matched: term.clone(),
                        span: span(&text, m.start(), m.end()),
                    };
                    add(node, &p.source_id, w.term * f, ev);
                }
            }
        }
    }

    // Combine within each source, then across sources.
    let mut scores: BTreeMap<String, (f64, Vec<Evidence>)> = BTreeMap::new();
    for (node, sources) in found {
        let mut miss = 1.0;
        let mut evidence = Vec::new();
        for pieces in sources.into_values() {
            let source_miss: f64 = pieces
                .values()
                .map(|(w, _)| 1.0 - w.clamp(0.0, 1.0))
                .product();
            miss *= source_miss;
            evidence.extend(pieces.into_values().map(|(_, e)| e));
        }
        scores.insert(node, (1.0 - miss, evidence));
    }

    // Roll up, deepest first; a special-category child never feeds its parent.
    let mut order: Vec<String> = scores.keys().cloned().collect();
    let mut i = 0;
    while i < order.len() {
        if let Some(parent) = data.nodes.get(&order[i]).and_then(|n| n.parent.clone())
            && data.nodes.get(&parent).is_some_and(|p| p.depth > 1)
            && !order.contains(&parent)
        {
            order.push(parent);
        }
        i += 1;
    }
    order.sort_by_key(|id| std::cmp::Reverse(data.nodes.get(id).map_or(0, |n| n.depth)));
    for id in &order {
        let Some((child_score, _)) = scores.get(id).cloned() else {
            continue;
        };
        if data.is_special(id) {
            continue;
        }
        let Some(parent) = data.nodes.get(id).and_then(|n| n.parent.clone()) else {
            continue;
        };
        if data.nodes.get(&parent).is_none_or(|p| p.depth <= 1) {
            continue;
        }
        let name = data
            .nodes
            .get(id)
            .map(|n| n.name.clone())
            .unwrap_or_default();
        let entry = scores.entry(parent).or_insert((0.0, Vec::new()));
        entry.0 = 1.0 - (1.0 - entry.0) * (1.0 - w.rollup * child_score);
        entry.1.push(Evidence {
            source_id: "".into(),
            kind: EvidenceKind::Child,
            matched: name,
            span: String::new(),
        });
    }

    let interest = |id: &String, (score, evidence): &(f64, Vec<Evidence>)| {
        let node = data.nodes.get(id)?;
        Some(Interest {
            id: id.clone(),
            name: node.name.clone(),
            tier_path: node.path.clone(),
            score: (score * 1000.0).round() / 1000.0,
            evidence: evidence.clone(),
        })
    };
    let (special, ordinary): (Vec<_>, Vec<_>) =
        scores.iter().partition(|(id, _)| data.is_special(id));
    let mut ranked: Vec<Interest> = ordinary
        .into_iter()
        .filter(|(_, (score, _))| *score >= options.min_score)
        .filter_map(|(id, scored)| interest(id, scored))
        .collect();
    ranked.sort_by(|a, b| b.score.total_cmp(&a.score).then(a.id.cmp(&b.id)));
    ranked.truncate(options.max);
    ScoredInterests {
        ranked,
        special: special
            .into_iter()
            .filter_map(|(id, scored)| interest(id, scored))
            .collect(),
    }
}
