//! Many private-origin sources, as an operator runs them: the release
//! `enrichd` binary (beside this one) asked once from the command line
//! (`enrichd enrich`), and served (`enrichd serve`: resident memory after
//! start, one cold call, memory after), with `--oneshot-sites` sources that
//! each trust their own loopback origin (`network.allow_private`) and
//! answer in `--oneshot-latency-ms`, beside the same runs with 3 sources.
//!
//! Peak memory of the one-shot is the process's high-water mark
//! (`VmHWM`), read from /proc while it runs.
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::fixtures::{Sites, client, request};
use crate::{Args, ms};

/// The release `enrichd` beside this benchmark.
fn enrichd_binary() -> PathBuf {
    let bin = std::env::current_exe()
        .expect("the benchmark's own path")
        .with_file_name("enrichd");
    assert!(
        bin.exists(),
        "{} is missing: build it first (cargo build --release --bins)",
        bin.display()
    );
    bin
}

/// `count` loopback sites, each on its own port (origin), answering as the
/// `sites` scenario's do after `delay`.
async fn serve_origins(count: usize, delay: Duration) -> Vec<SocketAddr> {
    let mut origins = Vec::with_capacity(count);
    for _ in 0..count {
        let (addr, _state): (SocketAddr, Sites) = crate::fixtures::serve_sites(delay).await;
        origins.push(addr);
    }
    origins
}

/// A catalog directory of one source per origin, each trusting its own.
fn catalog_dir(dir: &Path, origins: &[SocketAddr]) -> PathBuf {
    let catalog = dir.join("catalog");
    std::fs::create_dir_all(&catalog).unwrap();
    let mut text = String::new();
    for (i, origin) in origins.iter().enumerate() {
        text.push_str(&format!(
            "[[source]]\nid = \"s{i}\"\nname = \"s{i}\"\nplatform = \"S{i}\"\ntags = [\"technology\"]\n\
             purposes = [\"marketing\"]\ninput = \"email\"\nnetwork = {{ allow_private = true }}\n\
             limits = {{ timeout = \"10s\" }}\n[source.request]\nurl = \"http://{origin}/s{i}/{{input}}\"\n\
             response_format = \"text\"\n[source.detect]\nnot_found_status = [404]\n\n"
        ));
    }
    std::fs::write(catalog.join("sites.toml"), text).unwrap();
    catalog
}

fn command(dir: &Path, catalog: &Path) -> Command {
    let mut cmd = Command::new(enrichd_binary());
    cmd.env_clear()
        .env("HOME", dir)
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("ENRICHD__SOURCES__CATALOG", catalog)
        .env("ENRICHD__DNS__ENABLED", "false")
        .env(
            "ENRICHD__LEDGER__URL",
            format!("sqlite://{}?mode=rwc", dir.join("ledger.db").display()),
        )
        .env("ENRICHD__STORAGE__DATA_DIR", dir.join("data"))
        .env(
            "ENRICHD__PRIVACY__HASH_KEY",
            "a-bench-key-of-at-least-thirty-two-characters",
        )
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    cmd
}

/// A /proc/<pid>/status field, in bytes (the kernel gives kB).
/// (`pid` "self" is this process.)
pub(crate) fn status_bytes(pid: impl std::fmt::Display, field: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with(field))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

/// Waits for `child`, reading its memory high-water mark as it runs.
async fn wait_with_peak(mut child: Child) -> (std::process::ExitStatus, u64, String) {
    let pid = child.id();
    let mut peak = 0;
    loop {
        if let Some(hwm) = status_bytes(pid, "VmHWM:") {
            peak = peak.max(hwm);
        }
        if let Some(status) = child.try_wait().unwrap() {
            let mut stderr = String::new();
            if let Some(mut e) = child.stderr.take() {
                use std::io::Read as _;
                let _ = e.read_to_string(&mut stderr);
            }
            return (status, peak, stderr);
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

/// One `enrichd enrich` over `sites` sources: wall time and peak memory.
async fn one_shot(sites: usize, latency: Duration) -> (f64, f64) {
    let dir = tempfile::tempdir().unwrap();
    let origins = serve_origins(sites, latency).await;
    let catalog = catalog_dir(dir.path(), &origins);
    let started = Instant::now();
    let child = command(dir.path(), &catalog)
        .args([
            "enrich",
            "--email",
            "person@example.test",
            "--purpose",
            "marketing",
            "--basis",
            "legitimate_interests",
            "--lia-ref",
            "LIA-1",
        ])
        .spawn()
        .unwrap();
    let (status, peak, stderr) = wait_with_peak(child).await;
    let wall = started.elapsed();
    assert!(status.success(), "enrichd enrich failed: {stderr}");
    (ms(wall), mb(peak))
}

fn mb(bytes: u64) -> f64 {
    (bytes as f64 / f64::from(1 << 20) * 10.0).round() / 10.0
}

/// `enrichd serve` over `sites` sources: memory after start, one cold
/// call's time, memory after it.
async fn served(sites: usize, latency: Duration) -> (f64, f64, f64) {
    let dir = tempfile::tempdir().unwrap();
    let origins = serve_origins(sites, latency).await;
    let catalog = catalog_dir(dir.path(), &origins);
    let s = serve_catalog(dir.path(), &catalog).await;
    (s.start_mb, s.first_call_ms, s.after_mb)
}

/// What `enrichd serve` over one catalog directory took.
pub(crate) struct Served {
    /// From the process's start to its port accepting.
    pub(crate) start_ms: f64,
    /// Resident memory once started, and after one cold call.
    pub(crate) start_mb: f64,
    pub(crate) after_mb: f64,
    pub(crate) first_call_ms: f64,
    pub(crate) answer: enrichd::proto::v1::EnrichResponse,
}

/// `enrichd serve` over the catalog directory `catalog` (state in `dir`):
/// its start, memory, and one cold call for person@example.test.
pub(crate) async fn serve_catalog(dir: &Path, catalog: &Path) -> Served {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let addr: SocketAddr = ([127, 0, 0, 1], port).into();
    let started = Instant::now();
    let child = command(dir, catalog)
        .env("ENRICHD__SERVER__LISTEN", addr.to_string())
        .env("ENRICHD__AUTH__REQUIRED", "false")
        .arg("serve")
        .spawn()
        .unwrap();
    let child = KillOnDrop(child);
    let pid = child.0.id();
    while tokio::net::TcpStream::connect(addr).await.is_err() {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "enrichd serve did not start"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let start_ms = ms(started.elapsed());
    // Settled: what start-up allocated is resident.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let after_start = status_bytes(pid, "VmRSS:").unwrap_or(0);
    let mut c = client(addr).await;
    let t = Instant::now();
    let answer = c
        .enrich(request("person@example.test"))
        .await
        .unwrap()
        .into_inner();
    let first = t.elapsed();
    let after_call = status_bytes(pid, "VmRSS:").unwrap_or(0);
    Served {
        start_ms,
        start_mb: mb(after_start),
        after_mb: mb(after_call),
        first_call_ms: ms(first),
        answer,
    }
}

struct KillOnDrop(Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

pub(crate) async fn oneshot(args: &Args) -> Value {
    let latency = Duration::from_millis(args.oneshot_latency_ms);
    let n = args.oneshot_sites;
    let (few_ms, few_mb) = one_shot(3, latency).await;
    let (many_ms, many_mb) = one_shot(n, latency).await;
    let (few_start, few_first, few_after) = served(3, latency).await;
    let (many_start, many_first, many_after) = served(n, latency).await;
    json!({
        "scenario": "oneshot", "sites": n, "latency_ms": args.oneshot_latency_ms,
        "cli_3_ms": few_ms, "cli_3_peak_mb": few_mb,
        "cli_many_ms": many_ms, "cli_many_peak_mb": many_mb,
        "cli_wall_ratio": (many_ms / few_ms * 100.0).round() / 100.0,
        "serve_3_start_mb": few_start, "serve_3_first_call_ms": few_first, "serve_3_after_mb": few_after,
        "serve_many_start_mb": many_start, "serve_many_first_call_ms": many_first, "serve_many_after_mb": many_after,
    })
}
