//! `cold`, `sites`, `budget`, `cluster` and `memory`.
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use crate::fixtures::{Server, catalog, client, pg_schema, request, serve_sites, start, start_on};
use crate::{Args, ms, percentile};
use enrichd::proto::v1 as pb;
use serde_json::{Value, json};
pub(crate) async fn cold(args: &Args) -> Value {
    const SOURCES: usize = 20;
    let delay = Duration::from_millis(100);
    let (origin, _) = serve_sites(delay).await;
    let server = start(
        catalog(origin, SOURCES, "email", false, (1e6, 1_000_000)),
        "[cache]\nenabled = false\n",
    )
    .await;
    let mut c = client(server.addr).await;
    // The floor: the same twenty requests to the same sites at once from a
    // plain pooled HTTP client, with no pipeline at all. A site's 100 ms
    // sleep ends on the timer's next millisecond, and twenty answers
    // arrive over a little while, so the slowest of twenty is a little
    // over 100 ms whoever asks.
    let plain = reqwest::Client::new();
    let fan_out = |person: String| {
        let plain = plain.clone();
        async move {
            let t = Instant::now();
            futures::future::join_all(
                (0..SOURCES).map(|s| plain.get(format!("http://{origin}/s{s}/{person}")).send()),
            )
            .await
            .into_iter()
            .for_each(|r| drop(r.expect("a site answers")));
            t.elapsed()
        }
    };
    c.enrich(request("warmup@example.test")).await.unwrap();
    fan_out("warmup@example.test".into()).await;
    let (mut lat, mut floor) = (Vec::new(), Vec::new());
    // Alternated, so that both see the machine as it is at that moment.
    for i in 0..args.cold_calls {
        let t = Instant::now();
        c.enrich(request(&format!("cold{i}@example.test")))
            .await
            .unwrap();
        lat.push(t.elapsed());
        floor.push(fan_out(format!("plain{i}@example.test")).await);
    }
    lat.sort();
    floor.sort();
    let (p50, p99) = (percentile(&lat, 0.5), percentile(&lat, 0.99));
    let (f50, f99) = (percentile(&floor, 0.5), percentile(&floor, 0.99));
    json!({
        "scenario": "cold", "sources": SOURCES, "source_latency_ms": 100.0,
        "p50_ms": ms(p50), "p99_ms": ms(p99),
        "plain_fan_out_p50_ms": ms(f50), "plain_fan_out_p99_ms": ms(f99),
        "overhead_p50_ms": ms(p50.saturating_sub(f50)), "overhead_p99_ms": ms(p99.saturating_sub(f99)),
        "overhead_p50_over_sleep_ms": ms(p50.saturating_sub(delay)),
        "ratio_p50_to_plain": (p50.as_secs_f64() / f50.as_secs_f64() * 1000.0).round() / 1000.0,
    })
}

pub(crate) async fn sites(args: &Args) -> Value {
    let (origin, state) = serve_sites(Duration::ZERO).await;
    let server = start(
        catalog(origin, args.sites, "username", true, (1e6, 1_000_000)),
        "[cache]\nenabled = false\n",
    )
    .await;
    let mut c = client(server.addr).await;
    let t = Instant::now();
    let resp = c
        .enrich(request("person@example.test"))
        .await
        .unwrap()
        .into_inner();
    let wall = t.elapsed();
    let found = resp
        .sources
        .iter()
        .filter(|o| o.outcome() == pb::source_outcome::Outcome::Found)
        .count();
    let not_found = resp
        .sources
        .iter()
        .filter(|o| o.outcome() == pb::source_outcome::Outcome::NotFound)
        .count();
    json!({
        "scenario": "sites", "sites": args.sites, "found": found, "not_found": not_found,
        "other": resp.sources.len() - found - not_found, "requests_seen": state.hits.load(Ordering::Relaxed),
        "wall_ms": ms(wall), "checks_per_second": (args.sites as f64 / wall.as_secs_f64()).round(),
    })
}

pub(crate) async fn budget(args: &Args) -> Value {
    let (origin, state) = serve_sites(Duration::ZERO).await;
    let server = start(
        catalog(
            origin,
            1,
            "email",
            false,
            (args.budget_rate, args.budget_burst),
        ),
        "",
    )
    .await;
    let mut c = client(server.addr).await;
    let n = args.budget_ids;
    let requests = tokio_stream::iter((0..n).map(|i| request(&format!("b{i}@example.test"))));
    let t = Instant::now();
    let mut answers = c.enrich_stream(requests).await.unwrap().into_inner();
    let mut got = 0;
    while answers.message().await.unwrap().is_some() {
        got += 1;
    }
    let secs = t.elapsed().as_secs_f64();
    let times = state.arrivals.lock().unwrap().clone();
    let max = max_in_one_second(times.clone());
    let achieved = times.len() as f64 / secs;
    json!({
        "scenario": "budget", "identifiers": n, "answers": got, "limit_per_second": args.budget_rate, "burst": args.budget_burst,
        "achieved_per_second": (achieved * 10.0).round() / 10.0, "ratio": (achieved / args.budget_rate * 1000.0).round() / 1000.0,
        "max_in_one_second": max, "within_budget": max as f64 <= args.budget_rate + args.budget_burst as f64,
    })
}

/// The most arrivals in any one-second window.
pub(crate) fn max_in_one_second(mut times: Vec<Instant>) -> usize {
    times.sort();
    let (mut max, mut start) = (0, 0);
    for end in 0..times.len() {
        while times[end] - times[start] >= Duration::from_secs(1) {
            start += 1;
        }
        max = max.max(end - start + 1);
    }
    max
}

/// `n` identifiers streamed, half through each server: the rate the
/// source saw, and the most it saw in any one second.
pub(crate) async fn split_stream(
    a: &Server,
    b: &Server,
    n: usize,
    arrivals: &std::sync::Mutex<Vec<Instant>>,
) -> (f64, usize) {
    let half = |server: SocketAddr, from: usize, to: usize| async move {
        let mut c = client(server).await;
        let requests =
            tokio_stream::iter((from..to).map(|i| request(&format!("c{i}@example.test"))));
        let mut answers = c.enrich_stream(requests).await.unwrap().into_inner();
        while answers.message().await.unwrap().is_some() {}
    };
    let t = Instant::now();
    tokio::join!(half(a.addr, 0, n / 2), half(b.addr, n / 2, n));
    let secs = t.elapsed().as_secs_f64();
    let times = arrivals.lock().unwrap().clone();
    (times.len() as f64 / secs, max_in_one_second(times))
}

/// Two replicas on one Redis and one PostgreSQL ledger: the budget of one
/// source held across them, and how often one replica's fetch is the
/// other's cache hit.
pub(crate) async fn cluster(args: &Args) -> Value {
    let (origin, state) = serve_sites(Duration::ZERO).await;
    let rate = (args.budget_rate, args.budget_burst);
    let redis =
        std::env::var("BENCH_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into());
    let base = std::env::var("BENCH_LEDGER_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into());
    let dir = tempfile::tempdir().unwrap();
    let url = pg_schema(&base).await;
    let prefix = format!("bench{}", hex::encode(rand::random::<[u8; 6]>()));
    let extra =
        format!("[cluster]\nredis_url = \"{redis}\"\nkey_prefix = \"{prefix}\"\nreplicas = 2\n");
    let a = start_on(
        catalog(origin, 1, "email", false, rate),
        &extra,
        dir,
        url.clone(),
    )
    .await;
    let b = start_on(
        catalog(origin, 1, "email", false, rate),
        &extra,
        tempfile::tempdir().unwrap(),
        url,
    )
    .await;
    let n = args.budget_ids;
    let (achieved, max) = split_stream(&a, &b, n, &state.arrivals).await;
    // What A fetched, asked of B.
    let asked = n.min(500) / 2;
    let mut c = client(b.addr).await;
    let requests = tokio_stream::iter((0..asked).map(|i| request(&format!("c{i}@example.test"))));
    let mut answers = c.enrich_stream(requests).await.unwrap().into_inner();
    let mut hits = 0;
    while let Some(answer) = answers.message().await.unwrap() {
        hits += usize::from(answer.sources.iter().any(|o| o.cached));
    }
    // The baseline: the same two replicas without Redis (each on its own).
    let (origin, alone) = serve_sites(Duration::ZERO).await;
    let solo = || async { start(catalog(origin, 1, "email", false, rate), "").await };
    let (c, d) = (solo().await, solo().await);
    let (unshared, unshared_max) = split_stream(&c, &d, n, &alone.arrivals).await;
    json!({
        "scenario": "cluster", "replicas": 2, "identifiers": n, "limit_per_second": rate.0, "burst": rate.1,
        "unshared_ratio": (unshared / rate.0 * 1000.0).round() / 1000.0, "unshared_max_in_one_second": unshared_max,
        "achieved_per_second": (achieved * 10.0).round() / 10.0, "ratio": (achieved / rate.0 * 1000.0).round() / 1000.0,
        "max_in_one_second": max, "within_budget": max as f64 <= rate.0 + rate.1 as f64,
        "cross_replica_hit_ratio": (hits as f64 / asked as f64 * 1000.0).round() / 1000.0,
    })
}

pub(crate) fn rss_bytes() -> u64 {
    crate::oneshot::status_bytes("self", "VmRSS:").unwrap_or(0)
}

pub(crate) async fn memory(args: &Args) -> Value {
    let (origin, _) = serve_sites(Duration::ZERO).await;
    let server = start(catalog(origin, 1, "email", false, (1e6, 1_000_000)), "").await;
    let mut c = client(server.addr).await;
    c.enrich(request("warm@example.test")).await.unwrap();
    let n = args.identities;
    // Two equal steps of new people: the first also grows what is bounded
    // and not per person (SQLite's page and statement caches, the
    // allocator's pools for the requests in flight); the second's growth
    // is what each further cached person costs. Then the second step's
    // people are asked again: their answers come from the cache, and each
    // gets the memo of a fully cached answer (what a CRM's repeat call
    // keeps in memory on top).
    let mut rss = vec![rss_bytes()];
    for step in [0, 1, 1] {
        let requests = tokio_stream::iter(
            (step * n..(step + 1) * n).map(|i| request(&format!("found{i}@example.test"))),
        );
        let mut answers = c.enrich_stream(requests).await.unwrap().into_inner();
        while answers.message().await.unwrap().is_some() {}
        rss.push(rss_bytes());
    }
    let per = |from: usize| rss[from + 1].saturating_sub(rss[from]) as f64 / n as f64;
    json!({
        "scenario": "memory", "identities": 2 * n, "rss_before_mb": rss[0] / (1 << 20), "rss_after_mb": rss[3] / (1 << 20),
        "first_step_bytes_per_identity": per(0).round(), "bytes_per_identity": per(1).round(),
        "memo_bytes_per_reasked_identity": per(2).round(),
    })
}

/// The audience report of a big job: `--audience-rows` people (50,000) in
/// five planted groups, from their kept facts to the whole report
/// (tables, k-means over 2-8 segments, silhouettes), as
/// `GET /v1/batches/{id}/audience` builds it.
pub(crate) async fn audience(args: &Args) -> serde_json::Value {
    use enrichd::audience::{AudienceConfig, Features, Inputs, build};
    let groups: [(&[&str], &[&str]); 5] = [
        (&["CodeHub", "SandboxBlog"], &["687", "702", "688", "693"]),
        (
            &["SandboxRunner", "Photogram"],
            &["408", "410", "625", "720"],
        ),
        (
            &["SandboxGamer", "SandboxForum"],
            &["733", "743", "740", "446"],
        ),
        (
            &["SandboxForum", "SandboxBlog"],
            &["458", "371", "541", "534"],
        ),
        (&["Photogram", "SandboxBlog"], &["431", "719", "727", "467"]),
    ];
    let people: Vec<Features> = (0..args.audience_rows)
        .map(|n| {
            let (platforms, interests) = groups[n % 5];
            // Each person misses one of their group's interests.
            let skip = (n / 5) % interests.len();
            Features {
                found: n % 10 != 9,
                platforms: platforms.iter().map(|p| p.to_string()).collect(),
                interests: interests
                    .iter()
                    .enumerate()
                    .filter(|(i, _)| *i != skip)
                    .map(|(_, id)| id.to_string())
                    .collect(),
                footprint: (n % 100) as u32,
                risk: (n % 37) as u32,
                messaging: Vec::new(),
                oldest_account_ms: Some(1_300_000_000_000 + (n as i64 % 400) * 86_400_000 * 10),
            }
        })
        .collect();
    let outcomes =
        std::collections::BTreeMap::from([("enriched".to_owned(), args.audience_rows as u64)]);
    let taxonomy = enrichd::scoring::data::taxonomy();
    let inputs = Inputs {
        rows: args.audience_rows as u64,
        outcomes: &outcomes,
        people: &people,
        taxonomy: &taxonomy,
        special: &|_| false,
        now_ms: 1_765_000_000_000,
        noise_seed: [0; 32],
    };
    let started = std::time::Instant::now();
    let (report, _) = build(&inputs, &AudienceConfig::default());
    let took = started.elapsed();
    json!({
        "scenario": "audience",
        "rows": args.audience_rows,
        "build_s": (took.as_secs_f64() * 100.0).round() / 100.0,
        "rows_per_s": (args.audience_rows as f64 / took.as_secs_f64()).round(),
        "segments": report.segments.shown.len(),
    })
}
