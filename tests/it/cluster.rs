//! Several replicas on one Redis and one PostgreSQL: a shared cache, one
//! budget per source across replicas, erasure that reaches every replica,
//! and a replica that keeps answering within its share when Redis goes away.
//! Each test has its own key prefix and schema, so they run in parallel on
//! the shared Redis (127.0.0.1:6379) and PostgreSQL; they fail, never skip,
//! when either cannot be reached.
use crate::common;

use std::time::{Duration, Instant};

use common::{Arrivals, HUNG, TestApp, catalog_from, email_request, outcome_of, test_source};
use enrichd::proto::v1 as pb;
use pb::source_outcome::Outcome;
use tonic_health::pb::health_check_response::ServingStatus;
use wiremock::ResponseTemplate;

const SHARED_REDIS: &str = "redis://127.0.0.1:6379";

fn found() -> ResponseTemplate {
    ResponseTemplate::new(200).set_body_string(r#"{"user": {"name": "Ann Example"}}"#)
}

/// A deployment: its site, its Redis key prefix and its PostgreSQL schema.
struct Deployment {
    site: wiremock::MockServer,
    prefix: String,
    redis: String,
    ledger: String,
    limits: String,
}

impl Deployment {
    async fn new(redis: &str, responder: impl wiremock::Respond + 'static, limits: &str) -> Self {
        let site = wiremock::MockServer::start().await;
        wiremock::Mock::given(wiremock::matchers::path_regex("^/a/"))
            .respond_with(responder)
            .mount(&site)
            .await;
        Self {
            site,
            prefix: format!("t{}", hex::encode(rand::random::<[u8; 6]>())),
            redis: redis.to_owned(),
            ledger: common::postgres_url().await,
            limits: limits.to_owned(),
        }
    }

    /// One more replica of the deployment.
    async fn replica(&self) -> TestApp {
        self.replica_with("200ms", "").await
    }

    /// A replica that reads the suppression list every `every` (longer than
    /// a test: only Redis's announcement can tell it of an erasure), with
    /// `extra` configuration.
    async fn replica_with(&self, every: &str, extra: &str) -> TestApp {
        let url = format!("{}/a/{{input}}", self.site.uri());
        let catalog = catalog_from(&test_source("a", "email", &url, &self.limits));
        let config = format!(
            "[dns]\nenabled = false\n[sources]\ndeadline = \"5s\"\n\
             [ledger]\nurl = \"{}\"\nfollow_every = \"{every}\"\n\
             [cluster]\nredis_url = \"{}\"\nkey_prefix = \"{}\"\nreplicas = 2\n{extra}",
            self.ledger, self.redis, self.prefix
        );
        let app = TestApp::with_catalog(&config, catalog).await;
        until_cluster_is(&app, ServingStatus::Serving).await;
        app
    }

    async fn redis_keys(&self, kind: &str) -> Vec<String> {
        let client = redis::Client::open(self.redis.as_str()).unwrap();
        let mut conn = client.get_multiplexed_async_connection().await.unwrap();
        redis::cmd("KEYS")
            .arg(format!("{}:{kind}:*", self.prefix))
            .query_async(&mut conn)
            .await
            .unwrap()
    }
}

async fn cluster_status(app: &TestApp) -> ServingStatus {
    let mut client = tonic_health::pb::health_client::HealthClient::new(app.channel().await);
    let answer = client
        .check(tonic_health::pb::HealthCheckRequest {
            service: enrichd::api::CLUSTER_HEALTH.into(),
        })
        .await;
    answer.map_or(ServingStatus::Unknown, |a| a.into_inner().status())
}

/// Waits (bounded) for the replica's health to say shared or fallback.
async fn until_cluster_is(app: &TestApp, wanted: ServingStatus) {
    common::eventually(&format!("enrichd.cluster becomes {wanted:?}"), || async {
        (cluster_status(app).await == wanted).then_some(())
    })
    .await;
}

/// What the replica holds in its own process.
async fn in_process(app: &TestApp) -> u64 {
    let cache = app.enricher.engine().local_cache().unwrap();
    cache.run_pending_tasks().await;
    cache.iter().count() as u64
}

async fn enrich(app: &TestApp, email: &str) -> pb::EnrichResponse {
    app.client()
        .await
        .enrich(email_request(email))
        .await
        .unwrap()
        .into_inner()
}

fn cached(answer: &pb::EnrichResponse) -> bool {
    answer
        .sources
        .iter()
        .any(|o| o.source_id == "a" && o.cached)
}

#[tokio::test]
async fn a_person_enriched_on_one_replica_is_a_cache_hit_on_the_other() {
    let arrivals = Arrivals::answering(found());
    let deployment = Deployment::new(SHARED_REDIS, arrivals.clone(), "").await;
    let (a, b) = (deployment.replica().await, deployment.replica().await);

    let first = enrich(&a, "ann@example.test").await;
    assert_eq!(outcome_of(&first, "a"), Outcome::Found);
    assert!(!cached(&first));
    let second = enrich(&b, "ann@example.test").await;
    assert_eq!(outcome_of(&second, "a"), Outcome::Found);
    assert!(cached(&second), "B answers from what A fetched");
    assert_eq!(second.profiles.len(), 1);
    assert_eq!(arrivals.len(), 1, "one request to the site in all");
    // The shared tier holds a keyed hash, never the address.
    let keys = deployment.redis_keys("*").await;
    assert!(!keys.is_empty());
    assert!(keys.iter().all(|k| !k.contains("ann")), "{keys:?}");
}

#[tokio::test]
async fn concurrent_cold_calls_on_two_replicas_cause_one_request() {
    let arrivals = Arrivals::answering(found().set_delay(Duration::from_millis(300)));
    let deployment = Deployment::new(SHARED_REDIS, arrivals.clone(), "").await;
    let (a, b) = (deployment.replica().await, deployment.replica().await);
    let calls = (0..100).map(|i| {
        let app = if i % 2 == 0 { &a } else { &b };
        async move { enrich(app, "cold@example.test").await }
    });
    let answers = futures::future::join_all(calls).await;
    assert!(answers.iter().all(|r| outcome_of(r, "a") == Outcome::Found));
    assert_eq!(arrivals.len(), 1, "2 replicas x 50 cold calls, one fetch");
}

#[tokio::test]
async fn an_erasure_on_one_replica_holds_on_the_other_at_once() {
    let deployment = Deployment::new(SHARED_REDIS, found(), "").await;
    let a = deployment.replica().await;
    let b = deployment.replica_with("30s", "").await;
    enrich(&a, "ann@example.test").await;
    assert!(cached(&enrich(&b, "ann@example.test").await));
    assert_eq!(in_process(&b).await, 1, "B holds the entry in process");

    let erased = a
        .client()
        .await
        .erase(pb::EraseRequest {
            identifier: Some(pb::erase_request::Identifier::Email(
                "ann@example.test".into(),
            )),
            kind: pb::erase_request::Kind::Erasure.into(),
            reference: "DSR-9".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(erased.cache_entries_removed, 1);

    // B's own copy goes at once: B reads the suppression list only every
    // 30 s, so it is Redis's announcement that tells it.
    common::eventually("B drops what it cached of the erased person", || async {
        (in_process(&b).await == 0).then_some(())
    })
    .await;
    // And B's next call answers as for a suppressed person.
    let again = enrich(&b, "ann@example.test").await;
    assert!(again.compliance.unwrap().identifier_suppressed);
    assert!(again.profiles.is_empty());
    assert!(deployment.redis_keys("c").await.is_empty());
    assert!(deployment.redis_keys("l").await.is_empty());
}

#[tokio::test]
async fn a_caller_s_quota_holds_for_the_replicas_together() {
    let deployment = Deployment::new(SHARED_REDIS, found(), "").await;
    let auth = "[auth]\nrequired = true\n";
    let a = deployment.replica_with("200ms", auth).await;
    let b = deployment.replica_with("200ms", auth).await;
    let key = a
        .keys()
        .await
        .create(enrichd::auth::keys::NewKey {
            name: "crm".into(),
            scopes: [enrichd::auth::Scope::Sources].into_iter().collect(),
            purposes: Default::default(),
            quota_per_second: Some(5.0),
            expires_in: None,
        })
        .await
        .unwrap();
    let (mut on_a, mut on_b) = (a.client().await, b.client().await);
    let mut ok = 0;
    for i in 0..12 {
        let client = if i % 2 == 0 { &mut on_a } else { &mut on_b };
        let request = common::with_key(pb::ListSourcesRequest::default(), &key.secret);
        ok += usize::from(client.list_sources(request).await.is_ok());
    }
    // A second's worth (5) at once across both replicas; each alone would
    // have granted 5 of its own 6.
    assert!(
        (5..=6).contains(&ok),
        "{ok} calls admitted on a quota of 5/s"
    );
}

#[tokio::test]
async fn a_breaker_one_replica_opened_keeps_the_other_from_the_sick_source() {
    let arrivals = Arrivals::answering(ResponseTemplate::new(500));
    let deployment = Deployment::new(SHARED_REDIS, arrivals.clone(), "").await;
    let (a, b) = (deployment.replica().await, deployment.replica().await);
    // Five failures in a row open A's breaker (the shipped threshold).
    let mut n = 0;
    loop {
        let answer = enrich(&a, &format!("p{n}@example.test")).await;
        n += 1;
        if outcome_of(&answer, "a") == Outcome::CircuitOpen {
            break;
        }
        assert!(n < 20, "A's breaker never opened");
    }
    let seen = arrivals.len();
    let answer = enrich(&b, "someone-else@example.test").await;
    assert_eq!(outcome_of(&answer, "a"), Outcome::CircuitOpen);
    assert_eq!(arrivals.len(), seen, "B did not call the sick source");
}

/// `clients` loops per replica, each enriching new people until `until`.
async fn load(apps: &[&TestApp], clients: usize, until: Instant) -> Vec<pb::EnrichResponse> {
    let mut calls = Vec::new();
    for (r, app) in apps.iter().enumerate() {
        for c in 0..clients {
            let mut client = app.client().await;
            calls.push(async move {
                let mut answers = Vec::new();
                let mut n = 0;
                while Instant::now() < until {
                    let email = format!("r{r}c{c}n{n}@example.test");
                    answers.push(
                        client
                            .enrich(email_request(&email))
                            .await
                            .unwrap()
                            .into_inner(),
                    );
                    n += 1;
                }
                answers
            });
        }
    }
    futures::future::join_all(calls).await.concat()
}

#[tokio::test]
async fn replicas_together_keep_to_one_budget_and_use_it() {
    let arrivals = Arrivals::answering(found());
    let (rate, burst) = (20.0, 4);
    let limits = format!("limits = {{ rate_limit = {{ per_second = {rate}, burst = {burst} }} }}");
    let deployment = Deployment::new(SHARED_REDIS, arrivals.clone(), &limits).await;
    let (a, b) = (deployment.replica().await, deployment.replica().await);
    load(&[&a, &b], 8, Instant::now() + Duration::from_secs(3)).await;

    let most = arrivals.max_per_second();
    assert!(
        most <= rate as usize + burst,
        "{most} requests in one second; the budget is {rate}/s + {burst}"
    );
    let times = arrivals.times.lock().unwrap().clone();
    let span = (*times.iter().max().unwrap() - *times.iter().min().unwrap()).as_secs_f64();
    let budget = rate * span + burst as f64;
    assert!(
        times.len() as f64 >= 0.95 * budget,
        "{} requests in {span:.2}s: under 95% of the budget ({budget:.0})",
        times.len()
    );
}

/// A private Redis on a free port, for a test to stop and start.
struct PrivateRedis {
    port: u16,
    child: std::process::Child,
}

impl PrivateRedis {
    fn start_on(port: u16) -> Self {
        let child = std::process::Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .stdout(std::process::Stdio::null())
            .spawn()
            .expect("redis-server is installed");
        let started = Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(started.elapsed() < HUNG, "redis-server did not start");
            std::thread::sleep(Duration::from_millis(10));
        }
        Self { port, child }
    }

    fn start() -> Self {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        Self::start_on(port)
    }

    fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    fn kill(&mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }
}

impl Drop for PrivateRedis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test]
async fn without_redis_replicas_keep_answering_within_their_share_and_rejoin() {
    let mut redis = PrivateRedis::start();
    let arrivals = Arrivals::answering(found());
    let (rate, burst) = (20.0, 2);
    let limits = format!("limits = {{ rate_limit = {{ per_second = {rate}, burst = {burst} }} }}");
    let deployment = Deployment::new(&redis.url(), arrivals.clone(), &limits).await;
    let (a, b) = (deployment.replica().await, deployment.replica().await);

    redis.kill();
    let killed = Instant::now();
    // Every call is answered while Redis is away (found, or rate limited
    // when no slot of the local share is free in time).
    let answers = load(&[&a, &b], 4, killed + Duration::from_secs(3)).await;
    assert!(
        answers
            .iter()
            .all(|r| matches!(outcome_of(r, "a"), Outcome::Found | Outcome::RateLimited))
    );
    assert_eq!(cluster_status(&a).await, ServingStatus::NotServing);
    let times: Vec<Instant> = arrivals.times.lock().unwrap().clone();
    let after: Vec<&Instant> = times.iter().filter(|t| **t > killed).collect();
    let most = {
        let mut per = std::collections::BTreeMap::new();
        for t in &after {
            *per.entry((**t - killed).as_secs()).or_insert(0usize) += 1;
        }
        per.into_values().max().unwrap_or(0)
    };
    assert!(
        most <= rate as usize + burst,
        "{most} requests in one second while Redis was down"
    );
    assert!(!after.is_empty(), "the replicas kept asking the source");

    // Redis is back: shared again (a person fetched on A is a hit on B).
    let _redis = PrivateRedis::start_on(redis.port);
    until_cluster_is(&a, ServingStatus::Serving).await;
    until_cluster_is(&b, ServingStatus::Serving).await;
    enrich(&a, "back@example.test").await;
    assert!(cached(&enrich(&b, "back@example.test").await));
}

/// `enrichd keys rotate-hash` against a deployment's ledger and Redis, with
/// the test servers' inline hash key (the new one goes to `out`).
fn rotate_hash(
    deployment: &Deployment,
    redis: &str,
    out: &std::path::Path,
) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_enrichd"))
        .args(["keys", "rotate-hash", "--out"])
        .arg(out)
        .env("ENRICHD__LEDGER__URL", &deployment.ledger)
        .env("ENRICHD__CLUSTER__REDIS_URL", redis)
        .env("ENRICHD__CLUSTER__KEY_PREFIX", &deployment.prefix)
        .env("ENRICHD__PRIVACY__HASH_KEY", common::TEST_HASH_KEY)
        .env("ENRICHD__DNS__ENABLED", "false")
        .env_remove("RUST_LOG")
        .output()
        .unwrap()
}

/// After a hash-key rotation no erasure could find what the shared cache
/// holds under the old key's hashes, so the rotation clears it (entries and
/// lineages, nothing else of the prefix); with Redis out of reach it
/// changes nothing.
#[tokio::test]
async fn a_hash_key_rotation_clears_the_shared_cache_it_would_orphan() {
    let deployment = Deployment::new(SHARED_REDIS, found(), "").await;
    let mut a = deployment.replica().await;
    assert_eq!(
        outcome_of(&enrich(&a, "ann@example.test").await, "a"),
        Outcome::Found
    );
    let (entries, lineages) = (
        deployment.redis_keys("c").await,
        deployment.redis_keys("l").await,
    );
    assert!(!entries.is_empty() && !lineages.is_empty());
    let client = redis::Client::open(SHARED_REDIS).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    let other = format!("{}:other:x", deployment.prefix);
    let () = redis::cmd("SET")
        .arg(&other)
        .arg("1")
        .query_async(&mut conn)
        .await
        .unwrap();
    a.stop();
    let _ = a.handle.await;

    let dir = tempfile::tempdir().unwrap();
    let refused = rotate_hash(&deployment, "redis://127.0.0.1:1", &dir.path().join("k1"));
    assert!(!refused.status.success());
    let said = String::from_utf8_lossy(&refused.stderr);
    assert!(
        said.contains("cluster.redis_url") && said.contains("nothing was changed"),
        "{said}"
    );
    assert_eq!(
        deployment.redis_keys("c").await,
        entries,
        "nothing was changed"
    );

    let done = rotate_hash(&deployment, SHARED_REDIS, &dir.path().join("k2"));
    let said = String::from_utf8_lossy(&done.stdout);
    assert!(
        done.status.success(),
        "{said}{}",
        String::from_utf8_lossy(&done.stderr)
    );
    let removed = entries.len() + lineages.len();
    assert!(
        said.contains(&format!("removed {removed} shared cache key(s)")),
        "{said}"
    );
    assert!(deployment.redis_keys("c").await.is_empty());
    assert!(deployment.redis_keys("l").await.is_empty());
    let kept: Option<String> = redis::cmd("GET")
        .arg(&other)
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(kept.as_deref(), Some("1"), "only entries and lineages go");
}

#[tokio::test]
async fn the_console_s_sources_page_counts_every_replica() {
    let arrivals = Arrivals::answering(found());
    let deployment = Deployment::new(SHARED_REDIS, arrivals.clone(), "").await;
    let http = "[server]\nhttp_listen = \"127.0.0.1:0\"\nmetrics_listen = \"127.0.0.1:0\"\n";
    let a = deployment.replica_with("200ms", http).await;
    let b = deployment.replica_with("200ms", http).await;
    assert_eq!(
        outcome_of(&enrich(&a, "ann@example.test").await, "a"),
        Outcome::Found
    );

    let mut browser = crate::console::Browser::new(b.http_addr.unwrap());
    browser.sign_in("").await;
    let page = browser.get("/console/sources").await.text().await.unwrap();
    assert!(
        page.contains("across <strong>2</strong> replicas"),
        "A posted, B reads"
    );
    let row = &page[page.find("data-source=\"a\"").expect("the source's row")..];
    assert!(!row[..row.find("</tr>").unwrap()].contains("not asked yet"));
}
