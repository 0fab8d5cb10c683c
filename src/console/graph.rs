//! The identity graph of one answer, drawn on the server as SVG: the
//! identifier on the left, each round of sources in a column to its right,
//! edges for how each profile was reached (the identifier itself, a handle
//! or a link another profile published, a corroboration), and the possible
//! matches apart below a rule, dashed. Each node links to its profile's
//! fields and provenance further down the page.
//!
//! Where a pivot came from is the answer's `found_via` (the source whose
//! profile published the value the engine pivoted on); the edge is named
//! after that value (its URL, or its handle). An answer without it (from an
//! older server) is drawn by matching the values alone.
use maud::{Markup, html};

use crate::proto::v1 as pb;

const COLUMN: f64 = 210.0;
const ROW: f64 = 64.0;
const NODE_W: f64 = 170.0;
const NODE_H: f64 = 44.0;
const MARGIN: f64 = 12.0;

/// How an edge was found.
#[derive(Debug, Clone, PartialEq)]
pub enum Via {
    /// Asked with the identifier (or a hash of it).
    Identifier(String),
    /// A profile's published link.
    Link,
    /// A profile's published handle.
    Handle(String),
    /// A pivot from the named profile, by a value not shown in it.
    Pivot,
    /// A guessed handle (from the email's local part).
    Guess,
    /// What corroborates a guess.
    Corroboration(String),
}

#[derive(Debug)]
pub struct Node {
    /// The anchor of its fields on the page ("p3", "m0").
    pub anchor: String,
    pub label: String,
    pub detail: String,
    pub column: usize,
    pub row: usize,
    pub possible: bool,
}

#[derive(Debug)]
pub struct Edge {
    pub from: usize,
    pub to: usize,
    pub via: Via,
}

/// The graph: node 0 is the identifier.
#[derive(Debug)]
pub struct Graph {
    pub nodes: Vec<Node>,
    pub edges: Vec<Edge>,
}

/// The last non-empty path segment of a URL, without a leading `@`.
fn handle_of(url: &str) -> Option<String> {
    let parsed = url::Url::parse(url).ok()?;
    let last = parsed.path_segments()?.rfind(|s| !s.is_empty())?;
    Some(last.trim_start_matches('@').to_ascii_lowercase())
}

/// The URLs a profile is known by.
fn urls(p: &pb::Profile) -> Vec<String> {
    let mut out: Vec<String> = p.url.iter().map(|u| u.value.clone()).collect();
    out.extend(p.provenance.iter().map(|v| v.url.clone()));
    out
}

/// What a profile publishes that a later round may pivot on: its links
/// (linked accounts, extra fields holding URLs) and handles.
fn published(p: &pb::Profile) -> (Vec<String>, Vec<String>) {
    let mut links: Vec<String> = p.linked_accounts.iter().map(|a| a.url.clone()).collect();
    links.extend(
        p.extra
            .values()
            .map(|v| v.value.clone())
            .filter(|v| v.starts_with("http://") || v.starts_with("https://")),
    );
    let mut handles: Vec<String> = p
        .linked_accounts
        .iter()
        .map(|a| a.username.to_ascii_lowercase())
        .collect();
    handles.extend(p.username.iter().map(|u| u.value.to_ascii_lowercase()));
    links.retain(|l| !l.is_empty());
    handles.retain(|h| !h.is_empty());
    (links, handles)
}

fn confidence(p: &pb::Profile) -> i32 {
    p.provenance.as_ref().map_or(0, |v| v.confidence)
}

/// The graph of `answer`.
pub fn of(answer: &pb::EnrichResponse) -> Graph {
    use pb::MatchConfidence as C;
    let identifier = match answer.identifier.as_ref().and_then(|i| i.kind.as_ref()) {
        Some(pb::normalized_identifier::Kind::Email(e)) => e.address.clone(),
        Some(pb::normalized_identifier::Kind::Phone(p)) => p.international.clone(),
        None => "identifier".to_owned(),
    };
    let mut nodes = vec![Node {
        anchor: "identity".to_owned(),
        label: identifier,
        detail: "the identifier asked about".to_owned(),
        column: 0,
        row: 0,
        possible: false,
    }];
    let mut edges = Vec::new();
    // Where each source first answered FOUND: its round and its input.
    let found = |source: &str| {
        answer
            .sources
            .iter()
            .filter(|o| {
                o.source_id == source && o.outcome == pb::source_outcome::Outcome::Found as i32
            })
            .min_by_key(|o| o.depth)
    };
    let depth_of = |source: &str| found(source).map_or(0, |o| o.depth);
    let input_of = |source: &str| found(source).map(|o| o.input.clone()).unwrap_or_default();
    let mut rows = [1usize; 16];
    for (i, p) in answer.profiles.iter().enumerate() {
        let column = (depth_of(&p.source_id) as usize + 1).min(rows.len() - 1);
        let pivot = confidence(p) == C::Pivot as i32;
        nodes.push(Node {
            anchor: format!("p{i}"),
            label: p.platform.clone(),
            detail: p.source_id.clone(),
            column: if pivot { column.max(2) } else { column },
            row: 0,
            possible: false,
        });
    }
    for node in nodes.iter_mut().skip(1) {
        node.row = rows[node.column] - 1;
        rows[node.column] += 1;
    }
    // Edges: the identifier's own finds, then each pivot's parent(s).
    for (i, p) in answer.profiles.iter().enumerate() {
        let me = i + 1;
        if confidence(p) != C::Pivot as i32 {
            let via = if confidence(p) == C::Guess as i32 {
                Via::Guess
            } else {
                Via::Identifier(input_of(&p.source_id))
            };
            edges.push(Edge {
                from: 0,
                to: me,
                via,
            });
            continue;
        }
        let mine = urls(p);
        let my_handles: Vec<String> = mine.iter().filter_map(|u| handle_of(u)).collect();
        let mut parents = Vec::new();
        for (j, q) in answer.profiles.iter().enumerate() {
            if i == j || nodes[j + 1].column >= nodes[me].column {
                continue;
            }
            // The engine names the source it pivoted from; older answers
            // (and cached ones) do not, and are matched on values alone.
            let named = !p.found_via.is_empty();
            if named && q.source_id != p.found_via {
                continue;
            }
            let (links, handles) = published(q);
            if links.iter().any(|l| mine.contains(l)) {
                parents.push((j + 1, Via::Link));
            } else if let Some(h) = handles.iter().find(|h| my_handles.contains(h)) {
                parents.push((j + 1, Via::Handle(h.clone())));
            } else if links
                .iter()
                .filter_map(|l| handle_of(l))
                .any(|h| my_handles.contains(&h))
            {
                parents.push((j + 1, Via::Link));
            } else if named {
                parents.push((j + 1, Via::Pivot));
            }
        }
        if parents.is_empty() {
            edges.push(Edge {
                from: 0,
                to: me,
                via: Via::Identifier(input_of(&p.source_id)),
            });
        }
        edges.extend(
            parents
                .into_iter()
                .map(|(from, via)| Edge { from, to: me, via }),
        );
    }
    for (i, p) in answer.profiles.iter().enumerate() {
        for c in &p.corroborated_by {
            let kind = pb::Corroboration::try_from(*c).map_or("corroborated".to_owned(), |c| {
                super::pages::words(c.as_str_name(), "CORROBORATION_")
            });
            edges.push(Edge {
                from: 0,
                to: i + 1,
                via: Via::Corroboration(kind),
            });
        }
    }
    // Possible matches: a row of their own below the rest.
    let below = rows.iter().copied().max().unwrap_or(1);
    for (i, p) in answer.possible_matches.iter().enumerate() {
        let me = nodes.len();
        nodes.push(Node {
            anchor: format!("m{i}"),
            label: p.platform.clone(),
            detail: format!("{} · possible match", p.source_id),
            column: 1 + i % 3,
            row: below + i / 3,
            possible: true,
        });
        edges.push(Edge {
            from: 0,
            to: me,
            via: Via::Guess,
        });
    }
    Graph { nodes, edges }
}

fn x(column: usize) -> f64 {
    MARGIN + column as f64 * COLUMN
}
fn y(row: usize) -> f64 {
    MARGIN + row as f64 * ROW
}

impl Via {
    fn label(&self) -> String {
        match self {
            Via::Identifier(input) if input.is_empty() => "identifier".to_owned(),
            Via::Identifier(input) => input.replace('_', " "),
            Via::Link => "link".to_owned(),
            Via::Pivot => "pivot".to_owned(),
            Via::Handle(h) => format!("handle {h}"),
            Via::Guess => "guessed handle".to_owned(),
            Via::Corroboration(kind) => format!("corroborated: {kind}"),
        }
    }

    fn class(&self) -> &'static str {
        match self {
            Via::Identifier(_) => "edge exact",
            Via::Link | Via::Handle(_) | Via::Pivot => "edge pivot",
            Via::Guess => "edge guess",
            Via::Corroboration(_) => "edge corroboration",
        }
    }
}

/// The graph as an SVG figure.
pub fn svg(graph: &Graph) -> Markup {
    let columns = graph.nodes.iter().map(|n| n.column).max().unwrap_or(0) + 1;
    let rows = graph.nodes.iter().map(|n| n.row).max().unwrap_or(0) + 1;
    let width = x(columns) + MARGIN;
    let height = y(rows) + MARGIN;
    let rule = graph
        .nodes
        .iter()
        .filter(|n| n.possible)
        .map(|n| n.row)
        .min();
    html! {
        figure.graph {
            svg #identity-graph role="group" aria-labelledby="graph-title"
                viewBox=(format!("0 0 {width} {height}")) width=(width) height=(height) {
                title #graph-title { "Identity graph: " (graph.nodes.len() - 1) " profiles and how each was reached" }
                @if let Some(row) = rule {
                    line.rule x1="0" x2=(width) y1=(y(row) - 10.0) y2=(y(row) - 10.0) {}
                    text.rule-label x=(MARGIN) y=(y(row) - 14.0) { "possible matches (not tied to the person)" }
                }
                @for e in &graph.edges {
                    @let (a, b) = (&graph.nodes[e.from], &graph.nodes[e.to]);
                    @let (x1, y1) = (x(a.column) + NODE_W, y(a.row) + NODE_H / 2.0);
                    @let (x2, y2) = (x(b.column), y(b.row) + NODE_H / 2.0);
                    g class=(e.via.class()) data-from=(a.anchor) data-to=(b.anchor) data-via=(e.via.label()) {
                        path d=(format!("M{x1},{y1} C{},{y1} {},{y2} {x2},{y2}", x1 + 30.0, x2 - 30.0)) {}
                        title { (a.label) " → " (b.label) ": " (e.via.label()) }
                    }
                }
                @for n in &graph.nodes {
                    a href=(format!("#{}", n.anchor)) class=(if n.possible { "node possible" } else if n.column == 0 { "node root" } else { "node" }) data-node=(n.anchor) {
                        title { (n.label) " (" (n.detail) ")" }
                        rect x=(x(n.column)) y=(y(n.row)) width=(NODE_W) height=(NODE_H) rx="6" {}
                        text x=(x(n.column) + 8.0) y=(y(n.row) + 18.0) { (truncate(&n.label, 24)) }
                        text.sub x=(x(n.column) + 8.0) y=(y(n.row) + 35.0) { (truncate(&n.detail, 28)) }
                    }
                }
            }
            figcaption {
                "Solid: reached with the identifier. Blue: a pivot (a link or handle an earlier profile published). "
                "Dashed: a guess from the address's local part. Select a node for its fields and where each came from."
            }
        }
    }
}

fn truncate(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        s.to_owned()
    } else {
        let mut t: String = s.chars().take(max - 1).collect();
        t.push('…');
        t
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn profile(source: &str, url: &str, confidence: pb::MatchConfidence) -> pb::Profile {
        pb::Profile {
            source_id: source.to_owned(),
            platform: source.to_owned(),
            provenance: Some(pb::Provenance {
                confidence: confidence as i32,
                ..Default::default()
            }),
            url: Some(pb::TextValue {
                value: url.to_owned(),
                provenance: None,
            }),
            ..Default::default()
        }
    }

    #[test]
    fn a_pivot_hangs_from_the_profile_that_published_its_link_or_handle() {
        use pb::MatchConfidence as C;
        let mut code = profile("code", "http://code.test/jd", C::Pivot);
        code.extra.insert(
            "blog".to_owned(),
            pb::TextValue {
                value: "http://home.test/jane".to_owned(),
                provenance: None,
            },
        );
        let mut avatar = profile("avatar", "http://avatar.test/jd", C::Exact);
        avatar.username = Some(pb::TextValue {
            value: "JD".to_owned(),
            provenance: None,
        });
        let home = profile("home", "http://home.test/jane", C::Pivot);
        let found = |source: &str, depth| pb::SourceOutcome {
            source_id: source.to_owned(),
            outcome: pb::source_outcome::Outcome::Found as i32,
            depth,
            input: "username".to_owned(),
            ..Default::default()
        };
        let answer = pb::EnrichResponse {
            profiles: vec![avatar, code, home],
            sources: vec![found("avatar", 0), found("code", 1), found("home", 2)],
            ..Default::default()
        };
        let g = of(&answer);
        let edge = |from: &str, to: &str| {
            g.edges
                .iter()
                .find(|e| g.nodes[e.from].anchor == from && g.nodes[e.to].anchor == to)
                .map(|e| e.via.clone())
        };
        assert_eq!(
            edge("identity", "p0"),
            Some(Via::Identifier("username".into()))
        );
        assert_eq!(edge("p0", "p1"), Some(Via::Handle("jd".into())));
        assert_eq!(edge("p1", "p2"), Some(Via::Link));
        assert_eq!(edge("identity", "p2"), None);
        assert_eq!(g.nodes[3].column, 3);

        // Named by the engine: only that source's profile is the parent.
        let mut named = answer.clone();
        named.profiles[2].found_via = "avatar".to_owned();
        let g = of(&named);
        let parents: Vec<&str> = g
            .edges
            .iter()
            .filter(|e| g.nodes[e.to].anchor == "p2")
            .map(|e| g.nodes[e.from].anchor.as_str())
            .collect();
        assert_eq!(
            parents,
            ["p0"],
            "the link in p1 does not count: the engine said avatar"
        );
        assert_eq!(
            g.edges
                .iter()
                .find(|e| g.nodes[e.to].anchor == "p2")
                .map(|e| e.via.clone()),
            Some(Via::Pivot)
        );
    }
}
