//! enrichd-bench: measures enrichd against its ceilings, side by side, in one
//! run, on loopback: local sources with controlled latency, the real server,
//! and a baseline measured in the same run wherever one exists.
//!
//!   cargo run --release --bin enrichd-bench -- [hot] [history] [cold] [sites] [budget] [memory] [cluster]
//!
//! Prints one table and writes bench-results.json. The ledger is SQLite in a
//! temporary directory, or PostgreSQL when BENCH_LEDGER_URL names one (each
//! server gets a schema of its own); `cluster` runs two replicas on Redis
//! and PostgreSQL (BENCH_REDIS_URL, BENCH_LEDGER_URL; local by default).
//!
//! (Over 400 lines: one file per binary; each scenario is one function and
//! the shared load generator, echo baseline and table are at the end.)
// A benchmark measures the machine's real time.
#![allow(clippy::disallowed_methods)]
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use clap::Parser;
use enrichd::catalog::Catalog;
use enrichd::config::Config;
use enrichd::privacy::KeyedHasher;
use enrichd::proto::v1 as pb;
use enrichd::server::Application;
use serde_json::{Value, json};
use tonic::transport::Channel;

/// The server's allocator (see src/main.rs), so that what is measured is
/// what `enrichd serve` runs.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(about = "Benchmarks enrichd against baselines measured in the same run")]
struct Args {
    /// Scenarios to run (default: all): hot, history, cold, sites, budget,
    /// memory, cluster (needs Redis, BENCH_REDIS_URL, and PostgreSQL,
    /// BENCH_LEDGER_URL; both default to the local ones).
    scenarios: Vec<String>,
    /// history: ledger rows written before measuring, and how many of them
    /// are the measured person's.
    #[arg(long, default_value_t = 1_000_000)]
    history_rows: usize,
    #[arg(long, default_value_t = 100_000)]
    history_person_rows: usize,
    /// hot: concurrent clients.
    #[arg(long, default_value_t = 16)]
    clients: usize,
    /// hot: seconds of load per side.
    #[arg(long, default_value_t = 5)]
    seconds: u64,
    /// cold: calls measured.
    #[arg(long, default_value_t = 30)]
    cold_calls: usize,
    /// sites: number of sites.
    #[arg(long, default_value_t = 600)]
    sites: usize,
    /// budget, cluster: identifiers streamed, and the source's rate limit.
    #[arg(long, default_value_t = 5000)]
    budget_ids: usize,
    #[arg(long, default_value_t = 500.0)]
    budget_rate: f64,
    #[arg(long, default_value_t = 10)]
    budget_burst: u32,
    /// memory: identities cached.
    #[arg(long, default_value_t = 20_000)]
    identities: usize,
    /// Where the JSON results go.
    #[arg(long, default_value = "bench-results.json")]
    json: String,
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

fn ms(d: Duration) -> f64 {
    (d.as_secs_f64() * 1e5).round() / 100.0
}

/// A local site: `/{site}/{user}` with a per-site behaviour.
#[derive(Clone)]
struct Sites {
    delay: Duration,
    hits: Arc<AtomicUsize>,
    arrivals: Arc<std::sync::Mutex<Vec<Instant>>>,
}

async fn site(State(s): State<Sites>, Path((site, user)): Path<(String, String)>) -> Response {
    s.hits.fetch_add(1, Ordering::Relaxed);
    s.arrivals.lock().unwrap().push(Instant::now());
    if !s.delay.is_zero() {
        tokio::time::sleep(s.delay).await;
    }
    let n: usize = site.trim_start_matches('s').parse().unwrap_or(0);
    // Every other site knows the person; "found…" users are known everywhere.
    let found = user.starts_with("found") || n % 2 == 0;
    match (n % 3, found) {
        (0, true) | (1, true) => (
            StatusCode::OK,
            format!("{{\"user\":{{\"name\":\"{user}\"}}}} profile-card"),
        )
            .into_response(),
        (0, false) => (StatusCode::NOT_FOUND, "no").into_response(),
        (1, false) => (StatusCode::OK, "no such user").into_response(),
        (_, true) => (StatusCode::OK, "profile-card").into_response(),
        (_, false) => Redirect::to("/").into_response(),
    }
}

async fn serve_sites(delay: Duration) -> (SocketAddr, Sites) {
    let state = Sites {
        delay,
        hits: Arc::default(),
        arrivals: Arc::default(),
    };
    let app = axum::Router::new()
        .route("/{site}/{user}", axum::routing::get(site))
        .route("/", axum::routing::get(|| async { "home" }))
        .with_state(state.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    (addr, state)
}

/// `count` sources at `origin`, keyed on `input`.
fn catalog(
    origin: SocketAddr,
    count: usize,
    input: &str,
    kinds: bool,
    rate: (f64, u32),
) -> Catalog {
    let mut text = String::new();
    for i in 0..count {
        let detect = match (kinds, i % 3) {
            (false, _) | (true, 0) => {
                "response_format = \"text\"\n[source.detect]\nnot_found_status = [404]\n"
            }
            (true, 1) => {
                "response_format = \"text\"\n[source.detect]\nabsent = [\"no such user\"]\npresent = [\"profile-card\"]\n"
            }
            _ => "response_format = \"text\"\n[source.detect]\nredirect_means_absent = true\n",
        };
        text.push_str(&format!(
            "[[source]]\nid = \"s{i}\"\nname = \"s{i}\"\nplatform = \"S{i}\"\ntags = [\"technology\"]\npurposes = [\"marketing\"]\ninput = \"{input}\"\nnetwork = {{ allow_private = true }}\nlimits = {{ timeout = \"10s\", max_concurrency = 64, rate_limit = {{ per_second = {}, burst = {} }} }}\n[source.request]\nurl = \"http://{origin}/s{i}/{{input}}\"\n{detect}\n",
            rate.0, rate.1
        ));
    }
    Catalog::from_files(
        &[("bench.toml".into(), text)],
        &["marketing".into()],
        &|_| None,
    )
    .expect("bench catalog")
}

struct Server {
    addr: SocketAddr,
    _dir: tempfile::TempDir,
}

/// A ledger of its own: a SQLite file in `dir`, or a fresh schema in the
/// PostgreSQL database BENCH_LEDGER_URL names.
async fn ledger_url(dir: &tempfile::TempDir) -> String {
    match std::env::var("BENCH_LEDGER_URL") {
        Ok(base) => pg_schema(&base).await,
        Err(_) => format!(
            "sqlite://{}?mode=rwc",
            dir.path().join("ledger.db").display()
        ),
    }
}

/// A fresh schema in the PostgreSQL database `base` names, as a URL.
async fn pg_schema(base: &str) -> String {
    enrichd::ledger::scratch::schema(base, "bench")
        .await
        .unwrap_or_else(|e| panic!("PostgreSQL at {base}: {e}"))
}

fn hasher() -> KeyedHasher {
    KeyedHasher::new(b"bench".to_vec())
}

async fn start(catalog: Catalog, extra: &str) -> Server {
    let dir = tempfile::tempdir().unwrap();
    let url = ledger_url(&dir).await;
    start_on(catalog, extra, dir, url).await
}

async fn start_on(catalog: Catalog, extra: &str, dir: tempfile::TempDir, url: String) -> Server {
    let mut config = Config::from_toml(&format!(
        "[dns]\nenabled = false\n[auth]\nrequired = false\n[server]\nmax_concurrent_requests = 4096\n[batch]\nmax_in_flight = 256\n[ledger]\nurl = \"{url}\"\n{extra}"
    ))
    .unwrap();
    config.server.listen = "127.0.0.1:0".parse().unwrap();
    let app = Application::build(config, hasher(), catalog).await.unwrap();
    let addr = app.local_addr();
    tokio::spawn(app.run_until_stopped(std::future::pending()));
    Server { addr, _dir: dir }
}

async fn client(addr: SocketAddr) -> pb::enrichment_client::EnrichmentClient<Channel> {
    let channel = Channel::from_shared(format!("http://{addr}"))
        .unwrap()
        .connect()
        .await
        .unwrap();
    pb::enrichment_client::EnrichmentClient::new(channel)
}

fn request(email: &str) -> pb::EnrichRequest {
    pb::EnrichRequest {
        request_id: email.into(),
        identifier: Some(pb::enrich_request::Identifier::Email(email.into())),
        purpose: "marketing".into(),
        lawful_basis: pb::LawfulBasis::LegitimateInterests.into(),
        evidence: Some(pb::BasisEvidence {
            legitimate_interest_assessment_ref: "LIA-BENCH".into(),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// The baselines of `hot`: the same tonic server, a handler that answers at
/// once, with an empty answer or with a copy of the real one (what the
/// transport alone costs for an answer of that size); with a ledger, it
/// first commits the record a real call writes through enrichd's own
/// ledger writer: the floor under any `Enrich` that records every call.
#[derive(Clone)]
struct Echo {
    answer: Arc<pb::EnrichResponse>,
    ledger: Option<Arc<enrichd::ledger::Ledger>>,
    subject: Arc<str>,
}

/// A record like the one `Enrich` writes for `HOT` (ten sources, five
/// field categories, the same claim).
fn hot_record(subject: &str) -> enrichd::ledger::Record {
    let now = chrono::Utc::now();
    let ms = u64::try_from(now.timestamp_millis()).unwrap_or_default();
    let list = |prefix: &str, n: usize| (0..n).map(|i| format!("{prefix}{i}")).collect();
    enrichd::ledger::Record {
        id: uuid::Builder::from_unix_timestamp_millis(ms, &rand::random::<[u8; 10]>())
            .into_uuid()
            .simple()
            .to_string(),
        at_ms: now.timestamp_millis(),
        caller: "anonymous".into(),
        caller_id: String::new(),
        on_behalf_of: String::new(),
        purpose: "marketing".into(),
        lawful_basis: "legitimate_interests".into(),
        consent_ref: String::new(),
        lia_ref: "LIA-BENCH".into(),
        contract_ref: String::new(),
        subject: subject.to_owned(),
        sources: list("s", 10),
        field_categories: vec![
            "profiles".into(),
            "attributes".into(),
            "interests".into(),
            "footprint".into(),
            "messaging_apps".into(),
        ],
        outcome: enrichd::ledger::LedgerOutcome::Enriched,
        retain_until_ms: now.timestamp_millis() + 365 * 86_400_000,
        redacted: false,
        reference: String::new(),
        detail: String::new(),
    }
}

fn hot_subject() -> String {
    use enrichd::identity::{Email, Identifier};
    hasher().hash(&Identifier::Email(Email::parse(HOT).unwrap()).canonical())
}

#[tonic::async_trait]
impl pb::enrichment_server::Enrichment for Echo {
    async fn enrich(
        &self,
        r: tonic::Request<pb::EnrichRequest>,
    ) -> Result<tonic::Response<pb::EnrichResponse>, tonic::Status> {
        if let Some(ledger) = &self.ledger {
            ledger
                .record(hot_record(&self.subject))
                .await
                .map_err(|e| tonic::Status::unavailable(e.to_string()))?;
        }
        let mut answer = (*self.answer).clone();
        answer.request_id = r.into_inner().request_id;
        Ok(tonic::Response::new(answer))
    }
    type EnrichStreamStream = std::pin::Pin<
        Box<dyn futures::Stream<Item = Result<pb::EnrichResponse, tonic::Status>> + Send>,
    >;
    async fn enrich_stream(
        &self,
        _: tonic::Request<tonic::Streaming<pb::EnrichRequest>>,
    ) -> Result<tonic::Response<Self::EnrichStreamStream>, tonic::Status> {
        Err(tonic::Status::unimplemented("echo"))
    }
    async fn erase(
        &self,
        _: tonic::Request<pb::EraseRequest>,
    ) -> Result<tonic::Response<pb::EraseResponse>, tonic::Status> {
        Err(tonic::Status::unimplemented("echo"))
    }
    async fn access(
        &self,
        _: tonic::Request<pb::AccessRequest>,
    ) -> Result<tonic::Response<pb::AccessResponse>, tonic::Status> {
        Err(tonic::Status::unimplemented("echo"))
    }
    async fn list_sources(
        &self,
        _: tonic::Request<pb::ListSourcesRequest>,
    ) -> Result<tonic::Response<pb::ListSourcesResponse>, tonic::Status> {
        Err(tonic::Status::unimplemented("echo"))
    }
}

async fn start_echo(
    answer: pb::EnrichResponse,
    ledger: Option<enrichd::ledger::Ledger>,
) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(
        tonic::transport::Server::builder()
            .timeout(Duration::from_secs(30))
            .add_service(pb::enrichment_server::EnrichmentServer::new(Echo {
                answer: Arc::new(answer),
                ledger: ledger.map(Arc::new),
                subject: hot_subject().into(),
            }))
            .serve_with_incoming(
                tonic::transport::server::TcpIncoming::from(listener).with_nodelay(Some(true)),
            ),
    );
    addr
}

/// What a load run calls.
#[derive(Clone, Copy)]
enum Call {
    /// Enrich for one person (every source cached after the first call).
    Enrich(&'static str),
    /// grpc.health.v1.Health/Check on the same server: the transport's ceiling.
    Health,
}

impl Call {
    /// The method's path and its request, encoded once.
    fn wire(self) -> (&'static str, bytes::Bytes) {
        match self {
            Call::Enrich(email) => (
                "/enrichd.v1.Enrichment/Enrich",
                prost::Message::encode_to_vec(&request(email)).into(),
            ),
            Call::Health => (
                "/grpc.health.v1.Health/Check",
                prost::Message::encode_to_vec(&tonic_health::pb::HealthCheckRequest::default())
                    .into(),
            ),
        }
    }
}

/// The load generator's codec, as h2load works: requests are bytes encoded
/// once, answers are counted, never decoded, so generating the load costs
/// the same whatever the method and the size of its answer, and the ratio
/// is the server's alone.
#[derive(Clone, Copy, Default)]
struct Raw;

impl tonic::codec::Codec for Raw {
    type Encode = bytes::Bytes;
    type Decode = usize;
    type Encoder = Raw;
    type Decoder = Raw;
    fn encoder(&mut self) -> Raw {
        Raw
    }
    fn decoder(&mut self) -> Raw {
        Raw
    }
}

impl tonic::codec::Encoder for Raw {
    type Item = bytes::Bytes;
    type Error = tonic::Status;
    fn encode(
        &mut self,
        item: bytes::Bytes,
        dst: &mut tonic::codec::EncodeBuf<'_>,
    ) -> Result<(), tonic::Status> {
        bytes::BufMut::put(dst, item);
        Ok(())
    }
}

impl tonic::codec::Decoder for Raw {
    type Item = usize;
    type Error = tonic::Status;
    fn decode(
        &mut self,
        src: &mut tonic::codec::DecodeBuf<'_>,
    ) -> Result<Option<usize>, tonic::Status> {
        let n = bytes::Buf::remaining(src);
        bytes::Buf::advance(src, n);
        Ok(Some(n))
    }
}

/// CPU time this process has used (user and system, all threads), from
/// /proc/self/stat in clock ticks (100 a second on Linux).
fn cpu_seconds() -> f64 {
    std::fs::read_to_string("/proc/self/stat")
        .ok()
        .and_then(|s| {
            // Fields after the command name (which may hold spaces).
            let rest = s.rsplit_once(')')?.1;
            let f: Vec<&str> = rest.split_whitespace().collect();
            let ticks = f.get(11)?.parse::<f64>().ok()? + f.get(12)?.parse::<f64>().ok()?;
            Some(ticks / 100.0)
        })
        .unwrap_or(0.0)
}

/// What one load run measured.
struct Run {
    rps: f64,
    p50: Duration,
    p99: Duration,
    /// CPU time of the whole process (server and load generator) per call,
    /// in microseconds: less at the mercy of a shared machine's neighbours
    /// than calls per second.
    cpu_us: f64,
}

/// `clients` loops calling `call` for `seconds`, each as fast as it can or,
/// with `rate`, paced so that all together send `rate` calls a second.
async fn load(
    addr: SocketAddr,
    clients: usize,
    seconds: u64,
    call: Call,
    rate: Option<f64>,
) -> Run {
    let until = Instant::now() + Duration::from_secs(seconds);
    let (path, body) = call.wire();
    let path = tonic::codegen::http::uri::PathAndQuery::from_static(path);
    let mut tasks = Vec::new();
    for n in 0..clients {
        let channel = Channel::from_shared(format!("http://{addr}"))
            .unwrap()
            .connect()
            .await
            .unwrap();
        let mut grpc = tonic::client::Grpc::new(channel);
        let every = rate.map(|r| Duration::from_secs_f64(clients as f64 / r));
        let (path, body) = (path.clone(), body.clone());
        tasks.push(tokio::spawn(async move {
            let mut lat = Vec::new();
            let mut next =
                Instant::now() + every.map_or(Duration::ZERO, |e| e * n as u32 / clients as u32);
            while Instant::now() < until {
                if let Some(every) = every {
                    tokio::time::sleep_until(next.into()).await;
                    next += every;
                }
                let t = Instant::now();
                grpc.ready().await.unwrap();
                let answer = grpc
                    .unary(tonic::Request::new(body.clone()), path.clone(), Raw)
                    .await
                    .unwrap();
                assert!(*answer.get_ref() > 0, "an empty answer");
                lat.push(t.elapsed());
            }
            lat
        }));
    }
    let started = Instant::now();
    let cpu = cpu_seconds();
    let mut all: Vec<Duration> = Vec::new();
    for t in tasks {
        all.extend(t.await.unwrap());
    }
    let cpu = cpu_seconds() - cpu;
    let secs = started.elapsed().as_secs_f64().max(seconds as f64);
    all.sort();
    Run {
        rps: all.len() as f64 / secs,
        p50: percentile(&all, 0.5),
        p99: percentile(&all, 0.99),
        cpu_us: cpu * 1e6 / all.len().max(1) as f64,
    }
}

/// The person of `hot` and `history`: found on all 10 sources.
const HOT: &str = "found-hot@example.test";

/// A server whose 10 sources have all answered for `HOT`, and its answer.
async fn hot_server(dir: tempfile::TempDir, url: String) -> (Server, pb::EnrichResponse) {
    let (origin, _) = serve_sites(Duration::ZERO).await;
    let server = start_on(
        catalog(origin, 10, "email", false, (1e6, 1_000_000)),
        "",
        dir,
        url,
    )
    .await;
    let answer = client(server.addr)
        .await
        .enrich(request(HOT))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        answer.profiles.len(),
        10,
        "the hot person is found everywhere"
    );
    (server, answer)
}

async fn hot(args: &Args) -> Value {
    let dir = tempfile::tempdir().unwrap();
    let url = ledger_url(&dir).await;
    let (server, answer) = hot_server(dir, url).await;
    let answer_bytes = prost::Message::encoded_len(&answer);
    let echo = start_echo(pb::EnrichResponse::default(), None).await;
    let run = |addr, call, rate| load(addr, args.clients, args.seconds, call, rate);
    let echo = run(echo, Call::Enrich(HOT), None).await;
    let sized = start_echo(answer.clone(), None).await;
    let sized = run(sized, Call::Enrich(HOT), None).await;
    let floor_dir = tempfile::tempdir().unwrap();
    let floor_ledger = enrichd::ledger::Ledger::open(&ledger_url(&floor_dir).await)
        .await
        .unwrap();
    let floor = start_echo(answer, Some(floor_ledger)).await;
    let floor = run(floor, Call::Enrich(HOT), None).await;
    let health = run(server.addr, Call::Health, None).await;
    let own = run(server.addr, Call::Enrich(HOT), None).await;
    // Half the health check's throughput, paced: the latency a CRM sees.
    let paced = run(server.addr, Call::Enrich(HOT), Some(health.rps / 2.0)).await;
    // Half of what Enrich itself sustains: the latency below saturation.
    let light = run(server.addr, Call::Enrich(HOT), Some(own.rps / 2.0)).await;
    let ratio = |a: f64, b: f64| (a / b * 1000.0).round() / 1000.0;
    json!({
        "scenario": "hot", "clients": args.clients, "profiles": 10, "answer_bytes": answer_bytes,
        "enrichd_rps": own.rps.round(), "health_rps": health.rps.round(), "ratio_to_health": ratio(own.rps, health.rps),
        "echo_rps": echo.rps.round(), "ratio_to_echo": ratio(own.rps, echo.rps),
        "sized_echo_rps": sized.rps.round(), "ratio_to_sized_echo": ratio(own.rps, sized.rps),
        "recorded_echo_rps": floor.rps.round(), "ratio_to_recorded_echo": ratio(own.rps, floor.rps),
        "recorded_echo_ratio_to_health": ratio(floor.rps, health.rps), "recorded_echo_cpu_us": floor.cpu_us.round(),
        "recorded_echo_p99_ms": ms(floor.p99),
        "enrichd_cpu_us": own.cpu_us.round(), "health_cpu_us": health.cpu_us.round(), "sized_echo_cpu_us": sized.cpu_us.round(),
        "cpu_ratio_to_health": ratio(health.cpu_us, own.cpu_us), "cpu_ratio_to_sized_echo": ratio(sized.cpu_us, own.cpu_us),
        "enrichd_p50_ms": ms(own.p50), "enrichd_p99_ms": ms(own.p99),
        "health_p50_ms": ms(health.p50), "health_p99_ms": ms(health.p99),
        "echo_p50_ms": ms(echo.p50), "echo_p99_ms": ms(echo.p99),
        "paced_rps": paced.rps.round(), "paced_p50_ms": ms(paced.p50), "paced_p99_ms": ms(paced.p99),
        "half_own_rps": light.rps.round(), "half_own_p50_ms": ms(light.p50), "half_own_p99_ms": ms(light.p99),
    })
}

/// Writes `rows` ledger rows, `person` of them for `HOT`'s subject (as
/// enriched), the rest for other subjects, in multi-row inserts.
async fn fill_ledger(url: &str, rows: usize, person: usize) {
    let ledger = enrichd::ledger::Ledger::open(url).await.unwrap();
    drop(ledger); // migrated; the rows go in through a plain connection
    sqlx::any::install_default_drivers();
    let mut conn = <sqlx::AnyConnection as sqlx::Connection>::connect(url)
        .await
        .unwrap();
    let subject = hot_subject();
    let now = chrono::Utc::now().timestamp_millis();
    let chunk = 500;
    let mut written = 0;
    while written < rows {
        let n = chunk.min(rows - written);
        let mut sql = String::from(
            "INSERT INTO ledger (id, at_ms, caller, purpose, lawful_basis, consent_ref, lia_ref, \
             contract_ref, subject, sources, field_categories, outcome, retain_until_ms, redacted, \
             caller_id, on_behalf_of, reference, detail) VALUES ",
        );
        for i in written..written + n {
            let who = if i < person {
                subject.clone()
            } else {
                format!("{:064x}", i)
            };
            let outcome = if i % 3 == 0 { "not_found" } else { "enriched" };
            if i > written {
                sql.push(',');
            }
            sql.push_str(&format!(
                "('h{i}', {}, 'bench', 'marketing', 'legitimate_interests', '', 'LIA', '', '{who}', \
                 '[\"s0\"]', '[\"profiles\"]', '{outcome}', {}, 0, '', '', '', '')",
                now - 1_000_000 + i as i64,
                now + 86_400_000_000,
            ));
        }
        sqlx::query(&sql).execute(&mut conn).await.unwrap();
        written += n;
    }
}

async fn history(args: &Args) -> Value {
    let empty_dir = tempfile::tempdir().unwrap();
    let empty_url = ledger_url(&empty_dir).await;
    let full_dir = tempfile::tempdir().unwrap();
    let full_url = ledger_url(&full_dir).await;
    let t = Instant::now();
    fill_ledger(&full_url, args.history_rows, args.history_person_rows).await;
    eprintln!(
        "history: {} rows written in {:.1}s",
        args.history_rows,
        t.elapsed().as_secs_f64()
    );
    let (empty, _) = hot_server(empty_dir, empty_url).await;
    let (full, _) = hot_server(full_dir, full_url).await;
    let run = |addr| load(addr, args.clients, args.seconds, Call::Enrich(HOT), None);
    let empty = run(empty.addr).await;
    let full = run(full.addr).await;
    json!({
        "scenario": "history", "clients": args.clients, "ledger_rows": args.history_rows, "person_rows": args.history_person_rows,
        "empty_rps": empty.rps.round(), "full_rps": full.rps.round(),
        "ratio_full_to_empty": (full.rps / empty.rps * 1000.0).round() / 1000.0,
        "empty_p99_ms": ms(empty.p99), "full_p99_ms": ms(full.p99),
        "empty_cpu_us": empty.cpu_us.round(), "full_cpu_us": full.cpu_us.round(),
    })
}

async fn cold(args: &Args) -> Value {
    let delay = Duration::from_millis(100);
    let (origin, _) = serve_sites(delay).await;
    let server = start(
        catalog(origin, 20, "email", false, (1e6, 1_000_000)),
        "[cache]\nenabled = false\n",
    )
    .await;
    let mut c = client(server.addr).await;
    c.enrich(request("warmup@example.test")).await.unwrap();
    let mut lat = Vec::new();
    for i in 0..args.cold_calls {
        let t = Instant::now();
        c.enrich(request(&format!("cold{i}@example.test")))
            .await
            .unwrap();
        lat.push(t.elapsed());
    }
    lat.sort();
    let (p50, p99) = (percentile(&lat, 0.5), percentile(&lat, 0.99));
    json!({
        "scenario": "cold", "sources": 20, "source_latency_ms": 100.0,
        "p50_ms": ms(p50), "p99_ms": ms(p99),
        "overhead_p50_ms": ms(p50.saturating_sub(delay)), "ratio_p50_to_slowest": (p50.as_secs_f64() / delay.as_secs_f64() * 1000.0).round() / 1000.0,
    })
}

async fn sites(args: &Args) -> Value {
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

async fn budget(args: &Args) -> Value {
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
fn max_in_one_second(mut times: Vec<Instant>) -> usize {
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
async fn split_stream(
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
async fn cluster(args: &Args) -> Value {
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

fn rss_bytes() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok())
        })
        .map_or(0, |kb| kb * 1024)
}

async fn memory(args: &Args) -> Value {
    let (origin, _) = serve_sites(Duration::ZERO).await;
    let server = start(catalog(origin, 1, "email", false, (1e6, 1_000_000)), "").await;
    let mut c = client(server.addr).await;
    c.enrich(request("warm@example.test")).await.unwrap();
    let before = rss_bytes();
    let n = args.identities;
    let requests = tokio_stream::iter((0..n).map(|i| request(&format!("found{i}@example.test"))));
    let mut answers = c.enrich_stream(requests).await.unwrap().into_inner();
    while answers.message().await.unwrap().is_some() {}
    let after = rss_bytes();
    let per = after.saturating_sub(before) as f64 / n as f64;
    json!({
        "scenario": "memory", "identities": n, "rss_before_mb": before / (1 << 20), "rss_after_mb": after / (1 << 20),
        "bytes_per_identity": per.round(),
    })
}

#[tokio::main]
async fn main() {
    let args = Args::parse();
    // As `enrichd serve` runs: a log subscriber (warnings only here, so the
    // table stays readable; the pipeline's spans are debug either way) and
    // the Prometheus recorder, so every counter and histogram is paid for.
    enrichd::telemetry::init_tracing(&enrichd::telemetry::LogConfig {
        format: enrichd::telemetry::LogFormat::Text,
        filter: "warn".into(),
    });
    let _ = enrichd::telemetry::prometheus();
    let all = [
        "hot", "history", "cold", "sites", "budget", "memory", "cluster",
    ];
    let chosen: Vec<&str> = if args.scenarios.is_empty() {
        all.to_vec()
    } else {
        args.scenarios.iter().map(String::as_str).collect()
    };
    let mut results = Vec::new();
    for s in chosen {
        eprintln!("running {s}...");
        let r = match s {
            "hot" => hot(&args).await,
            "history" => history(&args).await,
            "cold" => cold(&args).await,
            "sites" => sites(&args).await,
            "budget" => budget(&args).await,
            "memory" => memory(&args).await,
            "cluster" => cluster(&args).await,
            other => {
                eprintln!("unknown scenario {other}; choose from {}", all.join(", "));
                std::process::exit(2);
            }
        };
        results.push(r);
    }
    // The PostgreSQL schemas the scenarios filled (a million rows each for
    // `history`) go now rather than at the next run's sweep.
    if let Err(e) = enrichd::ledger::scratch::drop_made().await {
        eprintln!("could not drop this run's PostgreSQL schemas: {e}");
    }
    println!("{:<8} RESULT", "SCENARIO");
    for r in &results {
        let mut fields: Vec<String> = Vec::new();
        if let Some(map) = r.as_object() {
            for (k, v) in map.iter().filter(|(k, _)| *k != "scenario") {
                fields.push(format!("{k}={v}"));
            }
        }
        println!(
            "{:<8} {}",
            r["scenario"].as_str().unwrap_or("?"),
            fields.join("  ")
        );
    }
    let doc = json!({
        "machine": { "cpus": std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0), "os": std::env::consts::OS },
        "ledger": if std::env::var("BENCH_LEDGER_URL").is_ok() { "postgresql" } else { "sqlite" },
        "results": results,
    });
    std::fs::write(&args.json, serde_json::to_vec_pretty(&doc).unwrap()).unwrap();
    eprintln!("wrote {}", args.json);
}
