//! What every scenario stands on: local sites with controlled latency, a
//! catalog of them, and servers on loopback over SQLite or PostgreSQL.
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use enrichd::catalog::Catalog;
use enrichd::config::Config;
use enrichd::privacy::KeyedHasher;
use enrichd::proto::v1 as pb;
use enrichd::server::Application;
use tonic::transport::Channel;
#[derive(Clone)]
pub(crate) struct Sites {
    pub(crate) delay: Duration,
    pub(crate) hits: Arc<AtomicUsize>,
    pub(crate) arrivals: Arc<std::sync::Mutex<Vec<Instant>>>,
}

pub(crate) async fn site(
    State(s): State<Sites>,
    Path((site, user)): Path<(String, String)>,
) -> Response {
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

pub(crate) async fn serve_sites(delay: Duration) -> (SocketAddr, Sites) {
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
pub(crate) fn catalog(
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

pub(crate) struct Server {
    pub(crate) addr: SocketAddr,
    pub(crate) _dir: tempfile::TempDir,
}

/// A ledger of its own: a SQLite file in `dir`, or a fresh schema in the
/// PostgreSQL database BENCH_LEDGER_URL names.
pub(crate) async fn ledger_url(dir: &tempfile::TempDir) -> String {
    match std::env::var("BENCH_LEDGER_URL") {
        Ok(base) => pg_schema(&base).await,
        Err(_) => format!(
            "sqlite://{}?mode=rwc",
            dir.path().join("ledger.db").display()
        ),
    }
}

/// A fresh schema in the PostgreSQL database `base` names, as a URL.
pub(crate) async fn pg_schema(base: &str) -> String {
    enrichd::ledger::scratch::schema(base, "bench")
        .await
        .unwrap_or_else(|e| panic!("PostgreSQL at {base}: {e}"))
}

pub(crate) fn hasher() -> KeyedHasher {
    KeyedHasher::new(b"bench".to_vec())
}

pub(crate) async fn start(catalog: Catalog, extra: &str) -> Server {
    let dir = tempfile::tempdir().unwrap();
    let url = ledger_url(&dir).await;
    start_on(catalog, extra, dir, url).await
}

pub(crate) async fn start_on(
    catalog: Catalog,
    extra: &str,
    dir: tempfile::TempDir,
    url: String,
) -> Server {
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

pub(crate) async fn client(addr: SocketAddr) -> pb::enrichment_client::EnrichmentClient<Channel> {
    let channel = Channel::from_shared(format!("http://{addr}"))
        .unwrap()
        .connect()
        .await
        .unwrap();
    pb::enrichment_client::EnrichmentClient::new(channel)
}

pub(crate) fn request(email: &str) -> pb::EnrichRequest {
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

/// The person of `hot` and `history`: found on all 10 sources.
pub(crate) const HOT: &str = "found-hot@example.test";
