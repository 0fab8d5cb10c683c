//! Test harness: the real server on port 0, a real DNS server on loopback,
//! and helpers to hold a call in flight without sleeping.
#![allow(dead_code)]

pub mod dns;
pub mod proxy;

use std::net::SocketAddr;
use std::sync::Arc;

use enrichd::catalog::Catalog;
use enrichd::clock::SharedClock;
use enrichd::config::Config;
use enrichd::pipeline::{Enricher, Settings};
use enrichd::privacy::KeyedHasher;
use enrichd::proto::v1 as pb;
use enrichd::server::Application;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tonic::transport::Channel;

/// The hash key of test servers and of the binary in CLI tests.
pub const TEST_HASH_KEY: &str = "a-test-key-of-at-least-thirty-two-characters";

/// `TEST_LOG=1 cargo test` shows the server's logs.
pub fn init_logs() {
    if std::env::var_os("TEST_LOG").is_some() {
        enrichd::telemetry::init_tracing(&enrichd::telemetry::LogConfig {
            format: enrichd::telemetry::LogFormat::Text,
            filter: "debug".into(),
        });
    }
}

pub struct TestApp {
    pub addr: SocketAddr,
    /// The ledger's database URL (keys live there too).
    pub ledger_url: String,
    pub clock: SharedClock,
    /// Holds the test's SQLite ledger.
    pub dir: tempfile::TempDir,
    pub metrics_addr: Option<SocketAddr>,
    /// The JSON-over-HTTP address, when `[server] http_listen` is set.
    pub http_addr: Option<SocketAddr>,
    /// The pipeline the server runs (to look inside, as an operator cannot).
    pub enricher: Arc<Enricher>,
    shutdown: Option<oneshot::Sender<()>>,
    pub handle: JoinHandle<Result<(), enrichd::server::ServerError>>,
}

impl TestApp {
    /// Starts the server with the shipped config plus `overrides` (TOML), on
    /// 127.0.0.1:0.
    pub async fn spawn(overrides: &str) -> TestApp {
        Self::with_catalog(overrides, Catalog::default()).await
    }

    /// Starts the server with `catalog` as its sources.
    pub async fn with_catalog(overrides: &str, catalog: Catalog) -> TestApp {
        Self::with_clock(overrides, catalog, SharedClock::system()).await
    }

    /// Starts the server with `catalog`, reading time from `clock` (a
    /// `ManualClock` lets a test advance time instead of sleeping).
    pub async fn with_clock(overrides: &str, catalog: Catalog, clock: SharedClock) -> TestApp {
        Self::with_hasher(overrides, catalog, clock, KeyedHasher::new(TEST_HASH_KEY)).await
    }

    /// Starts the server hashing with `hasher` (a rotated chain, say).
    pub async fn with_hasher(
        overrides: &str,
        catalog: Catalog,
        clock: SharedClock,
        hasher: KeyedHasher,
    ) -> TestApp {
        init_logs();
        let mut config = Config::from_toml(overrides).expect("test config is valid");
        config.server.listen = "127.0.0.1:0".parse().unwrap();
        // Tests of other concerns call without keys (on loopback); the
        // callers' tests turn authentication on with an [auth] table.
        if !overrides.contains("[auth]") {
            config.auth.required = false;
        }
        let dir = tempfile::tempdir().unwrap();
        if config.ledger.url == Config::default().ledger.url {
            config.ledger.url = format!(
                "sqlite://{}?mode=rwc",
                dir.path().join("ledger.db").display()
            );
        }
        let ledger_url = config.ledger.url.clone();
        let settings = Settings::from_config(&config).with_clock(clock.clone());
        let enricher = Enricher::build(settings, hasher, catalog)
            .await
            .expect("pipeline builds");
        let enricher = Arc::new(enricher);
        let app = Application::with_enricher(config, enricher.clone())
            .await
            .expect("server builds");
        let addr = app.local_addr();
        let metrics_addr = app.metrics_addr();
        let http_addr = app.http_addr();
        let (tx, rx) = oneshot::channel::<()>();
        let handle = tokio::spawn(app.run_until_stopped(async move {
            let _ = rx.await;
        }));
        TestApp {
            addr,
            ledger_url,
            clock,
            dir,
            metrics_addr,
            http_addr,
            enricher,
            shutdown: Some(tx),
            handle,
        }
    }

    /// Starts the server with MX checks against `dns`.
    pub async fn with_dns(dns: SocketAddr, extra: &str) -> TestApp {
        Self::spawn(&format!(
            "[dns]\nnameservers = [\"{dns}\"]\ntimeout = \"5s\"\n{extra}"
        ))
        .await
    }

    pub async fn channel(&self) -> Channel {
        Channel::from_shared(format!("http://{}", self.addr))
            .unwrap()
            .connect()
            .await
            .expect("connects")
    }

    pub async fn client(&self) -> pb::enrichment_client::EnrichmentClient<Channel> {
        pb::enrichment_client::EnrichmentClient::new(self.channel().await)
    }

    /// The server's API keys, as another process (`enrichd keys`) sees them.
    pub async fn keys(&self) -> enrichd::auth::keys::Keys {
        let ledger = enrichd::ledger::Ledger::open(&self.ledger_url)
            .await
            .expect("the test ledger opens");
        enrichd::auth::keys::Keys::new(ledger, &KeyedHasher::new(TEST_HASH_KEY), self.clock.clone())
    }

    /// Asks the server to stop (as SIGTERM would).
    pub fn stop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}

/// A lawful email request: marketing on legitimate interests with an LIA.
pub fn email_request(email: &str) -> pb::EnrichRequest {
    pb::EnrichRequest {
        request_id: "req-1".into(),
        identifier: Some(pb::enrich_request::Identifier::Email(email.into())),
        purpose: "marketing".into(),
        lawful_basis: pb::LawfulBasis::LegitimateInterests.into(),
        evidence: Some(pb::BasisEvidence {
            legitimate_interest_assessment_ref: "LIA-1".into(),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// A lawful phone request: fraud prevention on legitimate interests.
pub fn phone_request(phone: &str) -> pb::EnrichRequest {
    pb::EnrichRequest {
        identifier: Some(pb::enrich_request::Identifier::Phone(phone.into())),
        purpose: "fraud_prevention".into(),
        ..email_request("unused@example.test")
    }
}

/// Shared notifications for a held call.
#[derive(Clone, Default)]
pub struct Gate {
    pub arrived: Arc<tokio::sync::Notify>,
    pub release: Arc<tokio::sync::Notify>,
}

/// The real catalog (`config/sources/`) pointed at `origin` instead of the
/// real sites, and allowed to reach it on loopback; no secrets set.
pub fn real_catalog(origin: &str) -> Catalog {
    real_catalog_with(origin, &|_| None)
}

/// The same, reading secrets (`{env.NAME}`) from `env`.
pub fn real_catalog_with(origin: &str, env: &dyn Fn(&str) -> Option<String>) -> Catalog {
    // Read once per test binary; each call moves the hosts to its origin.
    static SHIPPED: std::sync::OnceLock<Vec<(std::path::PathBuf, String)>> =
        std::sync::OnceLock::new();
    let shipped = SHIPPED.get_or_init(|| {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/config/sources");
        let mut files: Vec<_> = std::fs::read_dir(dir)
            .unwrap()
            .map(|entry| entry.unwrap().path())
            .filter(|path| path.extension().is_some_and(|e| e == "toml"))
            .map(|path| {
                let text = std::fs::read_to_string(&path).unwrap();
                (path, text)
            })
            .collect();
        files.sort();
        files
    });
    let host = regex::Regex::new(r#"(?m)^url = "https://[^/"]+"#).unwrap();
    let moved = format!("url = \"{origin}");
    let files: Vec<_> = shipped
        .iter()
        .map(|(path, text)| {
            let text = host.replace_all(text, moved.as_str()).replace(
                "[[source]]",
                "[[source]]\nnetwork = { allow_private = true }",
            );
            // Tests never reach the internet: every real host is moved.
            assert!(
                text.lines()
                    .filter(|l| l.starts_with("url = \""))
                    .all(|l| l.starts_with(&moved) || l == "url = \"{input}\""),
                "{}: a host not moved to the local server",
                path.display()
            );
            (path.clone(), text)
        })
        .collect();
    let purposes = Config::default().purpose_ids();
    Catalog::from_files(&files, &purposes, env).expect("the real catalog compiles")
}

/// The codes of an answer's risk reasons.
pub fn risk_codes(answer: &enrichd::proto::v1::EnrichResponse) -> Vec<String> {
    answer
        .risk
        .as_ref()
        .map(|r| r.reasons.iter().map(|r| r.code.clone()).collect())
        .unwrap_or_default()
}

/// A fixture file's text.
pub fn fixture(path: &str) -> String {
    std::fs::read_to_string(format!(
        "{}/tests/fixtures/{path}",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap_or_else(|e| panic!("fixture {path}: {e}"))
}

/// The real server with `catalog`, resolving through a loopback DNS
/// server (kept alive by the second value).
pub async fn app_with_dns(catalog: Catalog) -> (TestApp, dns::TestDns) {
    let dns = dns::start().await;
    let app = TestApp::with_catalog(
        &format!(
            "[dns]\nnameservers = [\"{}\"]\ntimeout = \"5s\"\n",
            dns.addr
        ),
        catalog,
    )
    .await;
    (app, dns)
}

/// Enriches through the real server with `catalog` and the loopback DNS.
pub async fn enrich_with(catalog: Catalog, request: pb::EnrichRequest) -> pb::EnrichResponse {
    let (app, _dns) = app_with_dns(catalog).await;
    app.client()
        .await
        .enrich(request)
        .await
        .expect("enriched")
        .into_inner()
}

/// The outcome record of `source` in a response (the first when asked twice).
pub fn source_outcome<'a>(resp: &'a pb::EnrichResponse, source: &str) -> &'a pb::SourceOutcome {
    resp.sources
        .iter()
        .find(|o| o.source_id == source)
        .unwrap_or_else(|| panic!("no outcome for {source}"))
}

/// The outcome name of `source` in a response (the first when asked twice).
pub fn outcome_of(resp: &pb::EnrichResponse, source: &str) -> pb::source_outcome::Outcome {
    source_outcome(resp, source).outcome()
}

pub fn profile_of<'a>(resp: &'a pb::EnrichResponse, source: &str) -> &'a pb::Profile {
    resp.profiles
        .iter()
        .find(|p| p.source_id == source)
        .unwrap_or_else(|| panic!("no profile from {source}"))
}

/// The server with the sandbox's catalog (keep the sandbox alive while used).
pub async fn sandbox_app() -> (TestApp, enrichd::sandbox::Sandbox) {
    sandbox_app_with("").await
}

/// The sandbox server with `extra` config (TOML), its MX checks answered by
/// the sandbox's DNS as `serve --sandbox` does.
pub async fn sandbox_app_with(extra: &str) -> (TestApp, enrichd::sandbox::Sandbox) {
    let sandbox = enrichd::sandbox::Sandbox::start().await.unwrap();
    let catalog = sandbox.catalog(&Config::default().purpose_ids()).unwrap();
    let dns = format!("[dns]\nnameservers = [\"{}\"]\n", sandbox.dns_addr());
    let app = TestApp::with_catalog(&format!("{dns}{extra}"), catalog).await;
    (app, sandbox)
}

/// A key of `name` with `scopes`, for any purpose, without quota or expiry.
pub fn key(name: &str, scopes: &[enrichd::auth::Scope]) -> enrichd::auth::keys::NewKey {
    enrichd::auth::keys::NewKey {
        name: name.into(),
        scopes: scopes.iter().copied().collect(),
        purposes: Default::default(),
        quota_per_second: None,
        expires_in: None,
    }
}

/// A request that carries `secret` as its bearer API key.
pub fn with_key<T>(message: T, secret: &str) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    request
        .metadata_mut()
        .insert("authorization", format!("Bearer {secret}").parse().unwrap());
    request
}

/// Compiles catalog TOML written in a test.
pub fn catalog_from(text: &str) -> Catalog {
    Catalog::from_files(
        &[("test.toml".into(), text.to_owned())],
        &Config::default().purpose_ids(),
        &|_| None,
    )
    .expect("test catalog compiles")
}

/// A source declaration for tests: `input`, JSON at `url`, found when `/user`
/// exists, reachable on loopback; `extra` is TOML added to the source table.
pub fn test_source(id: &str, input: &str, url: &str, extra: &str) -> String {
    format!(
        r#"
[[source]]
id = "{id}"
name = "{id}"
platform = "Test"
purposes = ["marketing", "crm_enrichment", "fraud_prevention"]
input = "{input}"
network = {{ allow_private = true }}
{extra}
[source.request]
url = "{url}"
response_format = "json"
[source.detect]
json_pointer = "/user"
[source.extract]
display_name = {{ json = "/user/name" }}
"#
    )
}

/// A wiremock responder that records when each request arrived, then
/// answers with `template`.
#[derive(Clone)]
pub struct Arrivals {
    pub times: std::sync::Arc<std::sync::Mutex<Vec<std::time::Instant>>>,
    template: wiremock::ResponseTemplate,
}

impl Arrivals {
    pub fn answering(template: wiremock::ResponseTemplate) -> Self {
        Self {
            times: Default::default(),
            template,
        }
    }

    pub fn len(&self) -> usize {
        self.times.lock().unwrap().len()
    }

    /// The most requests seen in any one-second window.
    pub fn max_per_second(&self) -> usize {
        let mut t = self.times.lock().unwrap().clone();
        t.sort();
        let (mut max, mut start) = (0, 0);
        for end in 0..t.len() {
            while t[end] - t[start] >= std::time::Duration::from_secs(1) {
                start += 1;
            }
            max = max.max(end - start + 1);
        }
        max
    }
}

impl wiremock::Respond for Arrivals {
    fn respond(&self, _: &wiremock::Request) -> wiremock::ResponseTemplate {
        self.times.lock().unwrap().push(std::time::Instant::now());
        self.template.clone()
    }
}

/// A local site whose `/a/` paths answer with `responder`, and a catalog
/// holding one source `a` on it (taking `input`; `extra` is added TOML).
pub async fn one_source(
    input: &str,
    extra: &str,
    responder: impl wiremock::Respond + 'static,
) -> (wiremock::MockServer, Catalog) {
    let server = wiremock::MockServer::start().await;
    wiremock::Mock::given(wiremock::matchers::path_regex("^/a/"))
        .respond_with(responder)
        .mount(&server)
        .await;
    let url = format!("{}/a/{{input}}", server.uri());
    (server, catalog_from(&test_source("a", input, &url, extra)))
}

/// A PostgreSQL URL in a fresh schema of its own, so tests never see each
/// other's rows. Fails (never skips) when PostgreSQL cannot be reached.
pub async fn postgres_url() -> String {
    let base = std::env::var("ENRICHD_TEST_POSTGRES")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_owned());
    enrichd::ledger::scratch::schema(&base, "t")
        .await
        .unwrap_or_else(|e| panic!("PostgreSQL at {base} is required for this test: {e}"))
}

/// How long any one wait in a test may take before it counts as hung.
pub const HUNG: std::time::Duration = std::time::Duration::from_secs(20);

/// The server's overall health.
pub async fn health(
    app: &TestApp,
) -> Result<tonic_health::pb::health_check_response::ServingStatus, tonic::Status> {
    let mut client = tonic_health::pb::health_client::HealthClient::new(app.channel().await);
    let answer = client
        .check(tonic_health::pb::HealthCheckRequest {
            service: String::new(),
        })
        .await?;
    Ok(answer.into_inner().status())
}

/// A stream whose sender stays open and never sends: its answers, and the
/// sender to keep alive.
pub async fn idle_stream(
    client: &mut pb::enrichment_client::EnrichmentClient<tonic::transport::Channel>,
) -> (
    tonic::Streaming<pb::EnrichResponse>,
    tokio::sync::mpsc::Sender<pb::EnrichRequest>,
) {
    let (tx, rx) = tokio::sync::mpsc::channel(1);
    let answers = client
        .enrich_stream(tokio_stream::wrappers::ReceiverStream::new(rx))
        .await
        .expect("stream opens")
        .into_inner();
    (answers, tx)
}

/// Asks `check` again (every 20 ms) until it gives `Some`, and returns
/// that; panics naming `what` when it has not within [`HUNG`]. For what
/// another task does in its own time (a sweep, a job, a process): the one
/// place a test waits on something it does not drive.
pub async fn eventually<T, F, Fut>(what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let waited = tokio::time::timeout(HUNG, async {
        loop {
            if let Some(done) = check().await {
                return done;
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    })
    .await;
    waited.unwrap_or_else(|_| panic!("never happened within {HUNG:?}: {what}"))
}

/// A child process killed when the test ends, passed or failed.
pub struct KillOnDrop(pub std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Reads until the peer closes; true when it did (EOF or reset).
pub async fn closed_by_peer(mut conn: tokio::net::TcpStream) -> bool {
    let mut buf = [0u8; 4096];
    loop {
        match tokio::time::timeout(HUNG, tokio::io::AsyncReadExt::read(&mut conn, &mut buf)).await {
            Err(_) => return false,
            Ok(Ok(0)) | Ok(Err(_)) => return true,
            Ok(Ok(_)) => {}
        }
    }
}

/// The files whose blocks marked `<!-- runnable: name -->` are run by the
/// tests: the README and every page of docs/.
pub fn doc_files() -> Vec<std::path::PathBuf> {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut files = vec![root.join("README.md")];
    let mut pages: Vec<_> = std::fs::read_dir(root.join("docs"))
        .expect("docs/")
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "md"))
        .collect();
    pages.sort();
    files.extend(pages);
    files
}

/// Every runnable block: (file, name, the `sh` script between
/// `<!-- runnable: name -->` and `<!-- /runnable -->`).
pub fn runnable_blocks() -> Vec<(String, String, String)> {
    // At the start of a line (prose may mention the marker).
    const OPEN: &str = "\n<!-- runnable: ";
    let mut blocks = Vec::new();
    for file in doc_files() {
        let text = std::fs::read_to_string(&file).unwrap();
        let shown = file.file_name().unwrap().to_string_lossy().into_owned();
        for rest in text.split(OPEN).skip(1) {
            let (name, rest) = rest.split_once(" -->").expect("a block's name");
            let script = rest
                .split("<!-- /runnable -->")
                .next()
                .and_then(|block| block.trim().strip_prefix("```sh"))
                .and_then(|s| s.strip_suffix("```"))
                .unwrap_or_else(|| panic!("{shown}: block {name} is one sh fence"));
            blocks.push((shown.clone(), name.to_owned(), script.to_owned()));
        }
    }
    blocks
}

/// Runs the runnable block `name` with bash (`-euo pipefail`) in `cwd`:
/// `ENRICHD` is `base`, `enrichd` is this build's binary (first on `PATH`),
/// `HOME` is `cwd` (so a CLI's state stays there); off the runtime that
/// serves its calls. Returns its standard output; fails if the script does.
pub async fn run_doc_block(name: &str, base: String, cwd: &std::path::Path) -> String {
    let (file, _, script) = runnable_blocks()
        .into_iter()
        .find(|(_, n, _)| n == name)
        .unwrap_or_else(|| panic!("no runnable block {name}"));
    let bin = std::path::Path::new(env!("CARGO_BIN_EXE_enrichd"))
        .parent()
        .unwrap()
        .to_owned();
    let path = format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let cwd = cwd.to_owned();
    let out = tokio::task::spawn_blocking(move || {
        std::process::Command::new("bash")
            .args(["-euo", "pipefail", "-c", &script])
            .env("ENRICHD", &base)
            .env("PATH", path)
            .env("HOME", &cwd)
            .env_remove("XDG_DATA_HOME")
            .current_dir(&cwd)
            .output()
    })
    .await
    .unwrap()
    .expect("bash runs");
    assert!(
        out.status.success(),
        "{file}: block {name} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// The JSON documents a block printed, one after another.
pub fn json_documents(text: &str) -> Vec<serde_json::Value> {
    serde_json::Deserializer::from_str(text)
        .into_iter::<serde_json::Value>()
        .collect::<Result<_, _>>()
        .unwrap_or_else(|e| panic!("{e}: {text}"))
}

/// The child's stderr, line by line, read to its end by a thread of its own
/// (a reader that stops early would close the pipe under the process).
pub fn stderr_lines(child: &mut std::process::Child) -> std::sync::mpsc::Receiver<String> {
    let log = std::io::BufReader::new(child.stderr.take().expect("stderr piped"));
    let (lines, read) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in std::io::BufRead::lines(log).map_while(Result::ok) {
            let _ = lines.send(line);
        }
    });
    read
}

/// Lines of `lines` up to the first that contains `wanted`, that one included.
pub fn lines_until(lines: &std::sync::mpsc::Receiver<String>, wanted: &str) -> Vec<String> {
    let mut seen = Vec::new();
    while !seen.last().is_some_and(|l: &String| l.contains(wanted)) {
        seen.push(
            lines
                .recv_timeout(HUNG)
                .unwrap_or_else(|_| panic!("no line with {wanted:?} in {seen:?}")),
        );
    }
    seen
}

/// A running `enrichd serve` (the binary), killed when the test ends.
pub struct Served {
    pub child: KillOnDrop,
    /// Its log lines after the one that says it serves.
    pub lines: std::sync::mpsc::Receiver<String>,
    /// Its log lines up to that one.
    pub start: Vec<String>,
    /// The gRPC address it listens on.
    pub addr: String,
}

/// `enrichd serve --listen 127.0.0.1:0` as `configure` sets it up (more
/// arguments, environment), without `RUST_LOG`; returns once it serves.
pub fn serve(configure: impl FnOnce(&mut std::process::Command)) -> Served {
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_enrichd"));
    cmd.args(["serve", "--listen", "127.0.0.1:0"])
        .env_remove("RUST_LOG")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped());
    configure(&mut cmd);
    let mut child = KillOnDrop(cmd.spawn().unwrap());
    let lines = stderr_lines(&mut child.0);
    let start = lines_until(&lines, "enrichd serving gRPC");
    let serving = start.last().expect("the serving line");
    let addr = serving
        .split_whitespace()
        .find_map(|w| w.strip_prefix("addr="))
        .unwrap_or_else(|| panic!("no address in {serving}"))
        .to_owned();
    Served {
        child,
        lines,
        start,
        addr,
    }
}
