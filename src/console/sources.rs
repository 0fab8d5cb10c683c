//! Sources at a glance: the catalog as the caller may see it, with how each
//! source has answered since this process started (its outcomes, breaker,
//! cache hits, limiter waits), read from the process's own Prometheus
//! counters: those a server keeps when its metrics are on
//! (`server.metrics_listen`); the console does not turn them on, so a
//! server without metrics pays nothing for them per call.
use std::collections::BTreeMap;
use std::sync::Arc;

use axum::Extension;
use axum::body::Body;
use axum::extract::State;
use axum::http::Method;
use axum::response::Response;
use maud::{Markup, html};

use super::pages;
use super::session::Session;
use super::{Console, html as respond};
use crate::proto::v1 as pb;

/// The outcome classes drawn, in order, with their CSS class.
const CLASSES: [(&str, &str); 5] = [
    ("found", "found"),
    ("not_found", "not-found"),
    ("error", "error"),
    ("rate_limited", "rate-limited"),
    ("blocked", "blocked"),
];

/// What the counters say of one source.
#[derive(Default, Debug, PartialEq)]
pub struct Seen {
    pub outcomes: BTreeMap<String, f64>,
    pub breaker: Option<f64>,
    pub cache_hits: f64,
    pub cache_misses: f64,
    pub limiter_waits: f64,
}

/// The board the replicas post their source counters to.
const BOARD: &str = "source-counters";
/// How often a replica posts them, and how old a post may be to count.
const POST_EVERY: std::time::Duration = std::time::Duration::from_secs(15);
const FRESH_MS: i64 = 60_000;

/// This process's source counters, in the Prometheus text format.
fn own() -> String {
    let Some(handle) = crate::telemetry::recording() else {
        return String::new();
    };
    handle
        .render()
        .lines()
        .filter(|l| l.starts_with("enrichd_source_") || l.starts_with("# TYPE enrichd_source_"))
        .fold(String::new(), |mut out, l| {
            out.push_str(l);
            out.push('\n');
            out
        })
}

/// With replicas, posts this one's counters every `POST_EVERY` while the
/// cluster lives, so the page on any replica counts them all.
pub fn keep_posting(c: &Console) {
    let Some(cluster) = &c.cluster else { return };
    let (cluster, clock, replica) = (Arc::downgrade(cluster), c.clock.clone(), c.replica.clone());
    tokio::spawn(async move {
        let mut every = tokio::time::interval(POST_EVERY);
        loop {
            every.tick().await;
            let Some(cluster) = cluster.upgrade() else {
                return;
            };
            let now = clock.utc().timestamp_millis();
            cluster.post(BOARD, &replica, &own(), now).await;
        }
    });
}

/// Every replica's counters (this one's as they are now), and how many
/// replicas they come from.
async fn counters(c: &Console) -> (BTreeMap<String, Seen>, usize) {
    let mine = own();
    if let Some(cluster) = &c.cluster {
        let now = c.clock.utc().timestamp_millis();
        cluster.post(BOARD, &c.replica, &mine, now).await;
        if let Some(posts) = cluster.read_board(BOARD, now - FRESH_MS).await
            && !posts.is_empty()
        {
            let n = posts.len();
            return (merged(posts.iter().map(String::as_str)), n);
        }
    }
    (seen(&mine), 1)
}

/// Several replicas' counters as one: counts add up, a breaker shows its
/// worst state.
pub fn merged<'a>(expositions: impl Iterator<Item = &'a str>) -> BTreeMap<String, Seen> {
    let mut all: BTreeMap<String, Seen> = BTreeMap::new();
    for one in expositions {
        for (source, s) in seen(one) {
            let into = all.entry(source).or_default();
            for (outcome, n) in s.outcomes {
                *into.outcomes.entry(outcome).or_default() += n;
            }
            into.breaker = match (into.breaker, s.breaker) {
                (Some(a), Some(b)) => Some(a.max(b)),
                (a, b) => a.or(b),
            };
            into.cache_hits += s.cache_hits;
            into.cache_misses += s.cache_misses;
            into.limiter_waits += s.limiter_waits;
        }
    }
    all
}

/// Per source, from the Prometheus text `exposition`.
pub fn seen(exposition: &str) -> BTreeMap<String, Seen> {
    let lines = exposition.lines().map(|l| Ok(l.to_owned()));
    let Ok(scrape) = prometheus_parse::Scrape::parse(lines) else {
        return BTreeMap::new();
    };
    let mut out: BTreeMap<String, Seen> = BTreeMap::new();
    for sample in scrape.samples {
        let Some(source) = sample.labels.get("source") else {
            continue;
        };
        let value = match sample.value {
            prometheus_parse::Value::Counter(v)
            | prometheus_parse::Value::Gauge(v)
            | prometheus_parse::Value::Untyped(v) => v,
            _ => continue,
        };
        let seen = out.entry(source.to_owned()).or_default();
        match sample.metric.as_str() {
            "enrichd_source_outcomes_total" => {
                let outcome = sample.labels.get("outcome").unwrap_or("other");
                // Timeouts and open breakers are errors to the eye.
                let class = match outcome {
                    "timeout" | "circuit_open" => "error",
                    other => other,
                };
                *seen.outcomes.entry(class.to_owned()).or_default() += value;
            }
            "enrichd_source_breaker_state" => seen.breaker = Some(value),
            "enrichd_source_cache_total" => match sample.labels.get("result") {
                Some("hit") => seen.cache_hits += value,
                Some(_) => seen.cache_misses += value,
                None => {}
            },
            "enrichd_source_limiter_waits_total" => seen.limiter_waits += value,
            _ => {}
        }
    }
    out
}

/// A source's outcomes as one stacked bar.
fn bar(seen: Option<&Seen>) -> Markup {
    let total: f64 = seen.map_or(0.0, |s| s.outcomes.values().sum());
    if total == 0.0 {
        return html! { span.muted { "not asked yet" } };
    }
    let seen = seen.expect("counted above");
    let mut x = 0.0;
    let segments: Vec<(&str, f64, f64)> = CLASSES
        .iter()
        .map(|(name, class)| {
            let w = seen.outcomes.get(*name).copied().unwrap_or(0.0) / total * 120.0;
            x += w;
            (*class, x - w, w)
        })
        .filter(|(_, _, w)| *w > 0.0)
        .collect();
    html! {
        svg.stack role="img" viewBox="0 0 120 12" width="120" height="12" {
            title { @for (name, _) in CLASSES { (name) " " (seen.outcomes.get(name).copied().unwrap_or(0.0)) "; " } }
            @for (class, x, w) in segments {
                rect class=(format!("outcome-{class}")) x=(x) y="0" width=(w) height="12" {}
            }
        }
    }
}

/// What feedback and the canary say of a source: its precision, and
/// whether it is demoted and why.
fn precision(standing: Option<&pb::SourceStanding>) -> Markup {
    let st = standing.cloned().unwrap_or_default();
    let all = st.correct + st.wrong_person + st.not_there;
    html! {
        td.precision.demoted[st.demoted] title=(st.demoted_reason) {
            @match st.precision {
                Some(p) => { (format!("{p:.2}")) " (" (st.correct) "/" (all) ")" }
                None => { "—" }
            }
            @if st.canary_claimed { " · claims every name" }
            @else if st.demoted { " · demoted" }
        }
    }
}

fn breaker(state: Option<f64>) -> &'static str {
    match state {
        Some(s) if s >= 2.0 => "open",
        Some(s) if s >= 1.0 => "half-open",
        Some(_) => "closed",
        None => "—",
    }
}

/// `GET /console/sources`.
pub async fn page(State(c): State<Console>, Extension(s): Extension<Arc<Session>>) -> Response {
    let catalog: pb::ListSourcesResponse = match c
        .call(
            &s,
            Method::GET,
            "/v1/sources",
            Body::empty(),
            "application/json",
        )
        .await
    {
        Ok((_, bytes)) => serde_json::from_slice(&bytes).unwrap_or_default(),
        Err(refused) => return refused.page("Sources", &s),
    };
    let (counters, replicas) = counters(&c).await;
    let body = html! {
        @if crate::telemetry::recording().is_none() {
            p.hint { "This server records no counters: set server.metrics_listen to see how each source answers." }
        }
        p #counted { (catalog.sources.len()) " sources. Outcomes, breakers and cache since each server started, across "
            strong { (replicas) } @if replicas == 1 { " replica." } @else { " replicas." } }
        ul.legend { @for (name, class) in CLASSES { li { span class=(format!("swatch outcome-{class}")) {} " " (pages::words(name, "")) } } }
        table #sources {
            thead { tr {
                th scope="col" { "Source" } th scope="col" { "Platform" } th scope="col" { "Input" }
                th scope="col" { "Outcomes" } th scope="col" { "Found" } th scope="col" { "Breaker" }
                th scope="col" { "Cache hits" } th scope="col" { "Waited for budget" } th scope="col" { "Precision" } th scope="col" { "Rate limit" } th scope="col" { "Enabled" }
            } }
            tbody {
                @for src in &catalog.sources {
                    @let seen = counters.get(&src.id);
                    tr data-source=(src.id) {
                        th scope="row" { (src.id) }
                        td { (src.platform) }
                        td { (src.input) }
                        td { (bar(seen)) }
                        td { (seen.and_then(|s| s.outcomes.get("found")).copied().unwrap_or(0.0)) }
                        td { (breaker(seen.and_then(|s| s.breaker))) }
                        td { @if let Some(s) = seen { @let all = s.cache_hits + s.cache_misses;
                            @if all > 0.0 { (format!("{:.0} %", s.cache_hits / all * 100.0)) } @else { "—" } } @else { "—" } }
                        td { (seen.map_or(0.0, |s| s.limiter_waits)) }
                        (precision(src.standing.as_ref()))
                        td { (format!("{}/s", src.rate_limit_per_second)) }
                        td { @if src.enabled { "yes" } @else { "no: " (src.disabled_reason) } }
                    }
                }
            }
        }
    };
    respond(pages::page("Sources", &s, body))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_are_read_per_source_with_timeouts_as_errors() {
        let text = "\
# TYPE enrichd_source_outcomes_total counter
enrichd_source_outcomes_total{source=\"a\",outcome=\"found\"} 3
enrichd_source_outcomes_total{source=\"a\",outcome=\"timeout\"} 2
enrichd_source_outcomes_total{source=\"a\",outcome=\"error\"} 1
# TYPE enrichd_source_breaker_state gauge
enrichd_source_breaker_state{source=\"a\"} 2
# TYPE enrichd_source_cache_total counter
enrichd_source_cache_total{source=\"a\",result=\"hit\"} 4
enrichd_source_cache_total{source=\"a\",result=\"miss\"} 1
";
        let seen = seen(text);
        let a = &seen["a"];
        assert_eq!(a.outcomes["found"], 3.0);
        assert_eq!(a.outcomes["error"], 3.0);
        assert_eq!(breaker(a.breaker), "open");
        assert_eq!((a.cache_hits, a.cache_misses), (4.0, 1.0));

        let closed = text.replace(
            "breaker_state{source=\"a\"} 2",
            "breaker_state{source=\"a\"} 0",
        );
        let both = merged([text, closed.as_str()].into_iter());
        assert_eq!(both["a"].outcomes["found"], 6.0, "counts add up");
        assert_eq!(
            breaker(both["a"].breaker),
            "open",
            "the worst breaker shows"
        );
    }
}
