//! The cache, the per-source limits and the resilience of the engine, against
//! local servers that count what reaches them.
use crate::common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use common::{Arrivals, TestApp, catalog_from, email_request, test_source};
use enrichd::clock::ManualClock;
use enrichd::proto::v1 as pb;
use pb::source_outcome::Outcome;
use wiremock::matchers::path_regex;
use wiremock::{Mock, MockServer, Request, Respond, ResponseTemplate};

fn found() -> ResponseTemplate {
    ResponseTemplate::new(200).set_body_string(r#"{"user": {"name": "Ann"}}"#)
}

fn outcome<'a>(resp: &'a pb::EnrichResponse, source: &str) -> &'a pb::SourceOutcome {
    resp.sources
        .iter()
        .find(|o| o.source_id == source)
        .unwrap_or_else(|| panic!("{source}"))
}

async fn app(catalog: enrichd::catalog::Catalog, extra: &str) -> TestApp {
    TestApp::with_catalog(&format!("[dns]\nenabled = false\n{extra}"), catalog).await
}

/// The server on a clock the test moves.
async fn app_on(catalog: enrichd::catalog::Catalog, extra: &str) -> (TestApp, Arc<ManualClock>) {
    let clock = ManualClock::new();
    let config = format!("[dns]\nenabled = false\n{extra}");
    let app = TestApp::with_clock(&config, catalog, clock.shared()).await;
    (app, clock)
}

fn with_cache(
    mut request: pb::EnrichRequest,
    mode: pb::cache_policy::Mode,
    max_age: Option<Duration>,
) -> pb::EnrichRequest {
    request.cache = Some(pb::CachePolicy {
        mode: mode.into(),
        max_age: max_age.map(Into::into),
    });
    request
}

#[tokio::test]
async fn concurrent_cold_calls_for_one_person_cost_one_upstream_call_per_source() {
    let server = MockServer::start().await;
    Mock::given(path_regex("^/a/"))
        .respond_with(found().set_delay(Duration::from_millis(200)))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(path_regex("^/b/"))
        .respond_with(ResponseTemplate::new(404))
        .expect(1)
        .mount(&server)
        .await;
    let uri = server.uri();
    let catalog = catalog_from(&format!(
        "{}{}",
        test_source("a", "email_md5", &format!("{uri}/a/{{input}}"), ""),
        test_source("b", "email", &format!("{uri}/b/{{input}}"), ""),
    ));
    let app = app(catalog, "").await;
    let client = app.client().await;
    let calls = (0..100).map(|_| {
        let mut c = client.clone();
        async move {
            c.enrich(email_request("ann@example.test"))
                .await
                .unwrap()
                .into_inner()
        }
    });
    let answers = futures::future::join_all(calls).await;
    for resp in &answers {
        assert_eq!(outcome(resp, "a").outcome(), Outcome::Found);
        assert_eq!(outcome(resp, "b").outcome(), Outcome::NotFound);
    }
    let leaders = answers.iter().filter(|r| !outcome(r, "a").cached).count();
    assert_eq!(leaders, 1, "one call fetched, the others shared it");
    server.verify().await;
}

#[tokio::test]
async fn repeats_within_the_ttl_cost_nothing_and_after_it_one_call() {
    use pb::cache_policy::Mode;
    let arrivals = Arrivals::answering(found());
    let (_server, catalog) = common::one_source(
        "email_md5",
        "limits = { cache_ttl = \"1h\", rate_limit = { per_second = 100, burst = 100 } }",
        arrivals.clone(),
    )
    .await;
    let (app, clock) = app_on(catalog, "").await;
    let mut client = app.client().await;
    let count = || arrivals.len();
    let ann = || email_request("ann@example.test");
    let mut ask =
        async |request: pb::EnrichRequest| client.enrich(request).await.unwrap().into_inner();

    // cache_only on a cold key: skipped, nothing asked.
    let resp = ask(with_cache(ann(), Mode::CacheOnly, None)).await;
    let o = outcome(&resp, "a");
    assert_eq!(
        (o.outcome(), o.skip_reason()),
        (Outcome::Skipped, pb::source_outcome::SkipReason::CacheOnly)
    );
    assert_eq!(count(), 0);

    let first = ask(ann()).await;
    assert!(!outcome(&first, "a").cached);
    assert_eq!(first.cache.as_ref().unwrap().sources_fetched, 1);
    clock.advance(Duration::from_secs(3599));
    let second = ask(ann()).await;
    let o = outcome(&second, "a");
    assert!(o.cached, "{o:?}");
    let age: Duration = o.cache_age.unwrap().try_into().unwrap();
    assert_eq!(age, Duration::from_secs(3599), "the age is the clock's");
    assert_eq!(second.cache.as_ref().unwrap().sources_from_cache, 1);
    assert_eq!(
        second.profiles.len(),
        1,
        "the answer is assembled from the cache"
    );
    assert_eq!(count(), 1);

    // max_age: an entry older than the caller accepts is asked again.
    let young = ask(with_cache(
        ann(),
        Mode::Use,
        Some(Duration::from_secs(3600)),
    ))
    .await;
    assert!(outcome(&young, "a").cached);
    assert_eq!(count(), 1);
    let strict = ask(with_cache(ann(), Mode::Use, Some(Duration::from_secs(600)))).await;
    assert!(
        !outcome(&strict, "a").cached,
        "older than max_age: asked again"
    );
    assert_eq!(count(), 2);

    // refresh: skips the read, asks again.
    ask(with_cache(ann(), Mode::Refresh, None)).await;
    assert_eq!(count(), 3);

    // Within the TTL of the refreshed entry: cached; one second past it: asked.
    clock.advance(Duration::from_secs(3600));
    assert!(outcome(&ask(ann()).await, "a").cached);
    assert_eq!(count(), 3);
    clock.advance(Duration::from_secs(1));
    let third = ask(ann()).await;
    assert!(!outcome(&third, "a").cached);
    assert_eq!(count(), 4);
    // cache_only now finds it.
    let warm = ask(with_cache(ann(), Mode::CacheOnly, None)).await;
    assert!(outcome(&warm, "a").cached);
    assert_eq!(count(), 4);
}

#[tokio::test]
async fn a_rate_limited_source_never_sees_more_than_its_budget() {
    let arrivals = Arrivals::answering(found());
    let (_server, catalog) = common::one_source(
        "email",
        "limits = { rate_limit = { per_second = 5, burst = 2 } }",
        arrivals.clone(),
    )
    .await;
    // Unary calls with a 1.5 s budget for the sources.
    let app = app(catalog, "[sources]\ndeadline = \"1500ms\"\n").await;
    let client = app.client().await;
    let started = Instant::now();
    let calls = (0..200).map(|i| {
        let mut c = client.clone();
        async move {
            c.enrich(email_request(&format!("p{i}@example.test")))
                .await
                .unwrap()
                .into_inner()
        }
    });
    let answers = futures::future::join_all(calls).await;
    let elapsed = started.elapsed();

    let limited = answers
        .iter()
        .filter(|r| outcome(r, "a").outcome() == Outcome::RateLimited)
        .count();
    let found = answers
        .iter()
        .filter(|r| outcome(r, "a").outcome() == Outcome::Found)
        .count();
    assert_eq!(limited + found, 200);
    assert!(
        limited > 150,
        "most lookups are refused, not queued: {limited}"
    );
    let max = arrivals.max_per_second();
    assert!(max <= 5 + 2, "the source saw {max} requests in one second");
    assert!(
        elapsed < Duration::from_secs(5),
        "refusals come at once, not after a hang: {elapsed:?}"
    );
    let refused = answers
        .iter()
        .map(|r| outcome(r, "a"))
        .find(|o| o.outcome() == Outcome::RateLimited)
        .unwrap();
    assert!(
        refused.retry_after.is_some(),
        "a refusal says when a slot frees up"
    );
    println!(
        "200 lookups in {elapsed:?}: {found} asked, {limited} rate_limited, max {max} requests in one second (limit 5/s + burst 2)"
    );
}

#[tokio::test]
async fn retry_after_pauses_the_source_for_every_caller_and_no_other() {
    let server = MockServer::start().await;
    Mock::given(path_regex("^/busy/"))
        .respond_with(ResponseTemplate::new(429).insert_header("Retry-After", "7"))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(path_regex("^/ok/"))
        .respond_with(found())
        .expect(5)
        .mount(&server)
        .await;
    let uri = server.uri();
    let catalog = catalog_from(&format!(
        "{}{}",
        test_source("busy", "email", &format!("{uri}/busy/{{input}}"), ""),
        test_source(
            "ok",
            "email",
            &format!("{uri}/ok/{{input}}"),
            "limits = { rate_limit = { per_second = 100, burst = 100 } }"
        ),
    ));
    let app = app(catalog, "").await;
    let mut client = app.client().await;
    for i in 0..5 {
        let resp = client
            .enrich(email_request(&format!("p{i}@example.test")))
            .await
            .unwrap()
            .into_inner();
        let busy = outcome(&resp, "busy");
        assert_eq!(busy.outcome(), Outcome::RateLimited);
        let wait: Duration = busy.retry_after.unwrap().try_into().unwrap();
        assert!(
            wait <= Duration::from_secs(7) && wait > Duration::from_secs(5),
            "{wait:?}"
        );
        assert_eq!(outcome(&resp, "ok").outcome(), Outcome::Found);
        // Only the first call sent "busy" a request: the answers say so.
        let fetched = if i == 0 { 2 } else { 1 };
        assert_eq!(resp.cache.as_ref().unwrap().sources_fetched, fetched, "{i}");
    }
    server.verify().await;
}

/// Hangs (without answering) until healed; then answers 404 at once.
#[derive(Clone)]
struct Sick {
    healed: Arc<AtomicBool>,
    arrivals: Arrivals,
}

impl Respond for Sick {
    fn respond(&self, r: &Request) -> ResponseTemplate {
        if self.healed.load(Ordering::SeqCst) {
            return ResponseTemplate::new(404);
        }
        self.arrivals.respond(r).set_delay(Duration::from_secs(60))
    }
}

#[tokio::test]
async fn a_hanging_source_is_contained_and_its_breaker_opens_then_closes() {
    let server = MockServer::start().await;
    let sick = Sick {
        healed: Arc::default(),
        arrivals: Arrivals::answering(found()),
    };
    Mock::given(path_regex("^/sick/"))
        .respond_with(sick.clone())
        .mount(&server)
        .await;
    Mock::given(path_regex("^/fast/"))
        .respond_with(found())
        .mount(&server)
        .await;
    let uri = server.uri();
    let catalog = catalog_from(&format!(
        "{}{}",
        test_source(
            "sick",
            "email",
            &format!("{uri}/sick/{{input}}"),
            "limits = { timeout = \"10s\", max_concurrency = 2, rate_limit = { per_second = 100, burst = 100 } }",
        ),
        test_source(
            "fast",
            "email",
            &format!("{uri}/fast/{{input}}"),
            "limits = { rate_limit = { per_second = 100, burst = 100 } }"
        ),
    ));
    let (app, clock) = app_on(
        catalog,
        "[sources]\ndeadline = \"800ms\"\n[resilience.breaker]\nconsecutive_failures = 2\nopen_for = \"5m\"\n",
    )
    .await;
    let client = app.client().await;

    // Ten calls at once: the sick source holds its two slots, the rest wait
    // for one until the deadline; the fast source answers every call at once.
    let calls = (0..10).map(|i| {
        let mut c = client.clone();
        async move {
            c.enrich(email_request(&format!("p{i}@example.test")))
                .await
                .unwrap()
                .into_inner()
        }
    });
    let answers = futures::future::join_all(calls).await;
    // The two slots are held until the first calls' deadline; by then those
    // two failures have opened the breaker, so the calls that waited for a
    // slot are not made at all (they used to reach the sick source too,
    // which is what made a batch at high concurrency slower than at low).
    let times = sick.arrivals.times.lock().unwrap().clone();
    // (Between the two failures a waiting call may take the first freed
    // slot while the breaker has counted only one of them: three at most.)
    assert!(
        (2..=3).contains(&times.len()),
        "never more than max_concurrency in flight, and none after the breaker opened: {times:?}"
    );
    let sick_outcomes: Vec<Outcome> = answers
        .iter()
        .map(|resp| outcome(resp, "sick").outcome())
        .collect();
    let timeouts = sick_outcomes
        .iter()
        .filter(|o| **o == Outcome::Timeout)
        .count();
    let open = sick_outcomes
        .iter()
        .filter(|o| **o == Outcome::CircuitOpen)
        .count();
    // (A waiting call whose own deadline passes first reads as a timeout.)
    assert_eq!(timeouts + open, 10, "{sick_outcomes:?}");
    assert!(open >= 1, "{sick_outcomes:?}");
    for resp in &answers {
        let fast = outcome(resp, "fast");
        assert_eq!(fast.outcome(), Outcome::Found);
        let latency: Duration = fast.latency.unwrap().try_into().unwrap();
        assert!(
            latency < Duration::from_millis(400),
            "the fast source kept its latency: {latency:?}"
        );
    }

    // Two failures in a row: the breaker is open and answers at once.
    let mut c = client.clone();
    let resp = c
        .enrich(email_request("q@example.test"))
        .await
        .unwrap()
        .into_inner();
    let before = sick.arrivals.len();
    assert_eq!(outcome(&resp, "sick").outcome(), Outcome::CircuitOpen);
    assert_eq!(sick.arrivals.len(), before, "an open breaker sends nothing");

    // It recovers, but the breaker stays open until its cool-down is over;
    // then a trial call closes it.
    sick.healed.store(true, Ordering::SeqCst);
    clock.advance(Duration::from_secs(299));
    let resp = c
        .enrich(email_request("q2@example.test"))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(outcome(&resp, "sick").outcome(), Outcome::CircuitOpen);
    assert_eq!(sick.arrivals.len(), before, "still open a second early");
    clock.advance(Duration::from_secs(1));
    let resp = c
        .enrich(email_request("r@example.test"))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(outcome(&resp, "sick").outcome(), Outcome::NotFound);
    let resp = c
        .enrich(email_request("s@example.test"))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(outcome(&resp, "sick").outcome(), Outcome::NotFound);
}

#[tokio::test]
async fn a_failing_source_is_answered_from_its_stale_entry() {
    let server = MockServer::start().await;
    let down = Arc::new(AtomicBool::new(false));
    #[derive(Clone)]
    struct Flipping(Arc<AtomicBool>);
    impl Respond for Flipping {
        fn respond(&self, _: &Request) -> ResponseTemplate {
            if self.0.load(Ordering::SeqCst) {
                ResponseTemplate::new(500)
            } else {
                found()
            }
        }
    }
    Mock::given(path_regex("^/a/"))
        .respond_with(Flipping(down.clone()))
        .mount(&server)
        .await;
    let catalog = catalog_from(&test_source(
        "a",
        "email",
        &format!("{}/a/{{input}}", server.uri()),
        "limits = { cache_ttl = \"1h\", rate_limit = { per_second = 100, burst = 100 } }",
    ));
    let (app, clock) = app_on(catalog, "[cache]\nstale_grace = \"1h\"\n").await;
    let mut client = app.client().await;
    let fresh = client
        .enrich(email_request("ann@example.test"))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(outcome(&fresh, "a").outcome(), Outcome::Found);
    down.store(true, Ordering::SeqCst);
    clock.advance(Duration::from_secs(3601));
    let stale = client
        .enrich(email_request("ann@example.test"))
        .await
        .unwrap()
        .into_inner();
    let o = outcome(&stale, "a");
    assert_eq!(o.outcome(), Outcome::Found);
    assert!(o.stale && o.cached, "{o:?}");
    assert!(o.detail.contains("stale"), "{}", o.detail);
    assert_eq!(stale.profiles.len(), 1);

    // Past the grace period the old answer is no longer served.
    clock.advance(Duration::from_secs(3600));
    let gone = client
        .enrich(email_request("ann@example.test"))
        .await
        .unwrap()
        .into_inner();
    let o = outcome(&gone, "a");
    assert_eq!(o.outcome(), Outcome::Error, "{o:?}");
    assert!(gone.profiles.is_empty());
}

#[tokio::test]
async fn near_the_callers_deadline_the_answer_is_partial_not_deadline_exceeded() {
    let server = MockServer::start().await;
    Mock::given(path_regex("^/slow/"))
        .respond_with(found().set_delay(Duration::from_secs(30)))
        .mount(&server)
        .await;
    Mock::given(path_regex("^/fast/"))
        .respond_with(found())
        .mount(&server)
        .await;
    let uri = server.uri();
    let catalog = catalog_from(&format!(
        "{}{}",
        test_source(
            "slow",
            "email",
            &format!("{uri}/slow/{{input}}"),
            "limits = { timeout = \"20s\" }"
        ),
        test_source("fast", "email", &format!("{uri}/fast/{{input}}"), ""),
    ));
    let app = app(catalog, "").await;
    let mut client = app.client().await;
    let mut request = tonic::Request::new(email_request("ann@example.test"));
    request.set_timeout(Duration::from_millis(1000));
    let started = Instant::now();
    let resp = client
        .enrich(request)
        .await
        .expect("a partial answer, not DEADLINE_EXCEEDED")
        .into_inner();
    assert!(started.elapsed() < Duration::from_millis(1000));
    assert_eq!(outcome(&resp, "fast").outcome(), Outcome::Found);
    let slow = outcome(&resp, "slow");
    assert_eq!(slow.outcome(), Outcome::Timeout);
    assert!(slow.detail.contains("deadline"), "{}", slow.detail);
}

/// An answer with what differs between two calls of the same findings
/// taken out: its ids, its times and the sources' latencies.
fn timeless(mut r: pb::EnrichResponse) -> pb::EnrichResponse {
    r.generated_at = None;
    if let Some(c) = r.compliance.as_mut() {
        c.processing_id.clear();
        c.retain_until = None;
    }
    if let Some(c) = r.cache.as_mut() {
        c.oldest_entry_age = None;
    }
    for o in &mut r.sources {
        o.latency = None;
        o.cache_age = None;
    }
    r
}

fn age_of(r: &pb::EnrichResponse, source: &str) -> Duration {
    outcome(r, source).cache_age.unwrap().try_into().unwrap()
}

#[tokio::test]
async fn a_fully_cached_answer_comes_again_from_its_memo_as_of_its_own_time() {
    // Found by its address, not found on a messaging site, and a handle
    // guessed from the local part that the name hint corroborates.
    let server = MockServer::start().await;
    for (path, template) in [
        ("^/a/", found()),
        ("^/b/", ResponseTemplate::new(404)),
        ("^/c/", found()),
    ] {
        Mock::given(path_regex(path))
            .respond_with(template)
            .mount(&server)
            .await;
    }
    let limits = "limits = { cache_ttl = \"1h\", negative_ttl = \"1h\" }";
    let url = |id: &str| format!("{}/{id}/{{input}}", server.uri());
    let catalog = catalog_from(&format!(
        "{}{}{}",
        test_source("a", "email_md5", &url("a"), limits),
        test_source(
            "b",
            "email_md5",
            &url("b"),
            &format!("tags = [\"messaging\"]\n{limits}")
        ),
        test_source("c", "username", &url("c"), limits),
    ));
    let (app, clock) = app_on(catalog, "").await;
    let mut client = app.client().await;
    let mut ask = async || {
        let mut request = email_request("ann@example.test");
        request.hints.get_or_insert_with(Default::default).name = "Ann".into();
        client.enrich(request).await.unwrap().into_inner()
    };
    // Fetched, then every source from the cache: that answer is kept.
    ask().await;
    assert_eq!(app.enricher.memos_held(), 0);
    let cached = ask().await;
    assert_eq!(
        app.enricher.memos_held(),
        1,
        "a fully cached answer is kept"
    );
    assert!(
        cached.sources.iter().all(|o| o.cached),
        "{:?}",
        cached.sources
    );
    assert_eq!(cached.profiles.len(), 2, "{:?}", cached.profiles);

    let again = ask().await;
    let id = |r: &pb::EnrichResponse| r.compliance.as_ref().unwrap().processing_id.clone();
    assert_ne!(id(&again), id(&cached), "its own record");
    assert_eq!(timeless(again.clone()), timeless(cached.clone()));
    assert!(again.verification.is_some() && again.risk.is_some());
    assert!(!again.messaging_apps.is_empty(), "{again:?}");

    // Later: the same findings, as of the later time.
    clock.advance(Duration::from_secs(90));
    let later = ask().await;
    assert_eq!(timeless(later.clone()), timeless(again.clone()));
    let seconds = |t: &Option<pbjson_types::Timestamp>| t.as_ref().unwrap().seconds;
    assert_eq!(
        seconds(&later.generated_at),
        seconds(&again.generated_at) + 90
    );
    let retain = |r: &pb::EnrichResponse| seconds(&r.compliance.as_ref().unwrap().retain_until);
    assert_eq!(retain(&later), retain(&again) + 90);
    let source = &again.sources.iter().find(|o| o.cached).unwrap().source_id;
    assert_eq!(
        age_of(&later, source),
        age_of(&again, source) + Duration::from_secs(90)
    );
    let oldest = |r: &pb::EnrichResponse| -> Duration {
        r.cache
            .as_ref()
            .unwrap()
            .oldest_entry_age
            .unwrap()
            .try_into()
            .unwrap()
    };
    assert_eq!(oldest(&later), oldest(&again) + Duration::from_secs(90));

    // A request of another shape is not answered from it: without the name
    // hint the guessed handle is only a possible match; above guesses, it
    // is left out.
    let sources = |profiles: &[pb::Profile]| -> Vec<String> {
        profiles.iter().map(|p| p.source_id.clone()).collect()
    };
    let mut bare = email_request("ann@example.test");
    let unhinted = client.enrich(bare.clone()).await.unwrap().into_inner();
    assert_eq!(sources(&unhinted.profiles), ["a"]);
    assert_eq!(sources(&unhinted.possible_matches), ["c"]);
    bare.hints.get_or_insert_with(Default::default).name = "Ann".into();
    bare.options = Some(pb::EnrichOptions {
        min_confidence: pb::MatchConfidence::Exact.into(),
        ..Default::default()
    });
    let exact = client.enrich(bare).await.unwrap().into_inner();
    assert_eq!(sources(&exact.profiles), ["a"]);
    assert!(exact.possible_matches.is_empty());
    assert!(exact.sources.iter().all(|o| o.cached));
}

/// Answers "Ann 1", "Ann 2", … one a call.
struct Numbered(Arc<std::sync::atomic::AtomicUsize>);

impl Respond for Numbered {
    fn respond(&self, _: &Request) -> ResponseTemplate {
        let n = self.0.fetch_add(1, Ordering::SeqCst) + 1;
        ResponseTemplate::new(200).set_body_string(format!(r#"{{"user": {{"name": "Ann {n}"}}}}"#))
    }
}

/// One source `a` that answers "Ann <n>" on its n-th call, cached for an
/// hour, and a server on a clock the test moves; with the count of calls.
async fn ann_on_one_cached_source() -> (
    MockServer,
    TestApp,
    Arc<ManualClock>,
    Arc<std::sync::atomic::AtomicUsize>,
) {
    let calls = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let (server, catalog) = common::one_source(
        "email_md5",
        "limits = { cache_ttl = \"1h\", rate_limit = { per_second = 100, burst = 100 } }",
        Numbered(calls.clone()),
    )
    .await;
    let (app, clock) = app_on(catalog, "").await;
    (server, app, clock, calls)
}

#[tokio::test]
async fn a_memo_serves_only_the_entries_in_the_cache_and_goes_with_an_erasure() {
    use pb::cache_policy::Mode;
    let (_server, app, clock, calls) = ann_on_one_cached_source().await;
    let mut client = app.client().await;
    let ann = || email_request("ann@example.test");
    let mut ask =
        async |request: pb::EnrichRequest| client.enrich(request).await.unwrap().into_inner();
    let name = |r: &pb::EnrichResponse| {
        let p = &r.profiles[0];
        p.display_name.as_ref().unwrap().value.clone()
    };

    assert_eq!(name(&ask(ann()).await), "Ann 1");
    assert_eq!(name(&ask(ann()).await), "Ann 1");
    assert_eq!(app.enricher.memos_held(), 1);
    assert_eq!(name(&ask(ann()).await), "Ann 1", "from the memo");
    // A refresh replaces the entry: the memo of the old one is not served.
    assert_eq!(
        name(&ask(with_cache(ann(), Mode::Refresh, None)).await),
        "Ann 2"
    );
    let next = ask(ann()).await;
    assert_eq!(name(&next), "Ann 2");
    assert!(outcome(&next, "a").cached);
    assert_eq!(calls.load(Ordering::SeqCst), 2);
    // Past the entry's TTL, the source is asked again.
    ask(ann()).await;
    clock.advance(Duration::from_secs(3601));
    assert_eq!(name(&ask(ann()).await), "Ann 3");

    // An erasure removes the memo with the cache entries.
    ask(ann()).await;
    assert_eq!(app.enricher.memos_held(), 1);
    let erase = pb::EraseRequest {
        identifier: Some(pb::erase_request::Identifier::Email(
            "ann@example.test".into(),
        )),
        kind: pb::erase_request::Kind::Erasure.into(),
        reference: "DSR-1".into(),
        ..Default::default()
    };
    let erased = client.erase(erase).await.unwrap().into_inner();
    assert_eq!(erased.cache_entries_removed, 1);
    assert_eq!(app.enricher.memos_held(), 0, "nothing of Ann is held");
}

/// An entry the cache drops on its own (evicted for room, or expired)
/// retires nothing: the memo finds out by asking the cache, at most a
/// second after it last did.
#[tokio::test]
async fn a_memo_whose_entry_the_cache_dropped_on_its_own_is_noticed_within_a_second() {
    let (_server, app, clock, calls) = ann_on_one_cached_source().await;
    let mut client = app.client().await;
    let mut ask = async || {
        let r = client
            .enrich(email_request("ann@example.test"))
            .await
            .unwrap()
            .into_inner();
        r.profiles[0].display_name.as_ref().unwrap().value.clone()
    };
    assert_eq!(ask().await, "Ann 1");
    assert_eq!(ask().await, "Ann 1");
    assert_eq!(app.enricher.memos_held(), 1);
    // As an eviction would: the cache drops the entry without this process
    // replacing or removing it.
    let cache = app.enricher.engine().local_cache().unwrap();
    cache.invalidate_all();
    cache.run_pending_tasks().await;
    clock.advance(Duration::from_millis(1_001));
    assert_eq!(ask().await, "Ann 2", "the source is asked again");
    assert_eq!(calls.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn a_memo_s_footprint_ages_its_oldest_account_with_the_clock() {
    use pb::cache_policy::Mode;
    let server = MockServer::start().await;
    Mock::given(path_regex("^/a/"))
        .respond_with(ResponseTemplate::new(200).set_body_string(
            r#"{"user": {"name": "Ann", "created": "2016-02-11T10:11:12+00:00"}}"#,
        ))
        .mount(&server)
        .await;
    let source = test_source(
        "a",
        "email_md5",
        &format!("{}/a/{{input}}", server.uri()),
        "limits = { cache_ttl = \"200d\" }",
    )
    .replace(
        "[source.extract]\n",
        "[source.extract]\ncreated_at = { json = \"/user/created\" }\n",
    );
    let (app, clock) = app_on(catalog_from(&source), "").await;
    let mut client = app.client().await;
    let mut ask = async |mode| {
        let request = with_cache(email_request("ann@example.test"), mode, None);
        client.enrich(request).await.unwrap().into_inner()
    };
    let years = |r: &pb::EnrichResponse| {
        let footprint = r.footprint.as_ref().expect("a footprint");
        let age = footprint
            .components
            .iter()
            .find(|c| c.name == "account_age");
        age.expect("an account age").value
    };
    ask(Mode::Use).await;
    let before = ask(Mode::Use).await;
    assert_eq!(
        app.enricher.memos_held(),
        1,
        "a fully cached answer is kept"
    );

    // 73 days later (a fifth of a year), still within the cache's TTL: the
    // answer comes from the memo, its oldest account a fifth of a year older.
    clock.advance(Duration::from_secs(73 * 86_400));
    let later = ask(Mode::Use).await;
    assert_eq!(app.enricher.memos_held(), 1);
    assert!(
        later.sources.iter().all(|o| o.cached),
        "{:?}",
        later.sources
    );
    let grown = years(&later) - years(&before);
    assert!(
        (grown - 0.2).abs() < 0.011,
        "{} -> {}",
        years(&before),
        years(&later)
    );
    // As the whole pipeline scores it at that time.
    let fetched = ask(Mode::Refresh).await;
    assert!(
        fetched.sources.iter().all(|o| !o.cached),
        "{:?}",
        fetched.sources
    );
    assert_eq!(later.footprint, fetched.footprint);
}
