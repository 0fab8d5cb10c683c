//! enrichd-bench: measures enrichd against its ceilings, side by side, in one
//! run, on loopback: local sources with controlled latency, the real server,
//! and a baseline measured in the same run wherever one exists.
//!
//!   cargo run --release -p enrichd-bench -- [hot] [history] [cold] [sites] [budget] [memory] [cluster] [audience] [oneshot] [large]
//!
//! (`oneshot` and `large` run the release `enrichd` binary: `cargo build --release --bins` first.)
//!
//! Prints one table and writes bench-results.json. The ledger is SQLite in a
//! temporary directory, or PostgreSQL when BENCH_LEDGER_URL names one (each
//! server gets a schema of its own); `cluster` runs two replicas on Redis
//! and PostgreSQL (BENCH_REDIS_URL, BENCH_LEDGER_URL; local by default).
//!
//! Files: `fixtures` (the sites, catalog and servers), `echo` (the baselines
//! beside the real service), `load` (the load generator), `hot` (the hot
//! path and history), `scenarios` (cold, sites, budget, cluster, memory),
//! `oneshot` (many private origins, one call) and `large` (the real catalog
//! at full size).
// A benchmark measures the machine's real time.
#![allow(clippy::disallowed_methods)]

mod echo;
mod fixtures;
mod hot;
mod large;
mod load;
mod oneshot;
mod scenarios;

use std::time::Duration;

use crate::hot::{history, hot};
use crate::scenarios::{audience, budget, cluster, cold, memory, sites};
use clap::Parser;
use serde_json::json;
/// The server's allocator (see src/main.rs), so that what is measured is
/// what `enrichd serve` runs.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(about = "Benchmarks enrichd against baselines measured in the same run")]
pub(crate) struct Args {
    /// Scenarios to run (default: all): hot, history, cold, sites, budget,
    /// memory, cluster (needs Redis, BENCH_REDIS_URL, and PostgreSQL,
    /// BENCH_LEDGER_URL; both default to the local ones), audience,
    /// oneshot and large (both run the release `enrichd` beside this one).
    pub(crate) scenarios: Vec<String>,
    /// history: ledger rows written before measuring, and how many of them
    /// are the measured person's.
    #[arg(long, default_value_t = 1_000_000)]
    pub(crate) history_rows: usize,
    #[arg(long, default_value_t = 100_000)]
    pub(crate) history_person_rows: usize,
    /// hot: concurrent clients.
    #[arg(long, default_value_t = 16)]
    pub(crate) clients: usize,
    /// hot: seconds of load per side.
    #[arg(long, default_value_t = 5)]
    pub(crate) seconds: u64,
    /// hot: load only this server, `enrichd` or `floor` (the recorded
    /// echo), for `--seconds`, and print its calls and CPU time: a run to
    /// profile one side alone (`perf record`, `valgrind --tool=callgrind`).
    #[arg(long, value_parser = ["enrichd", "floor"])]
    pub(crate) only: Option<String>,
    /// cold: calls measured (each beside a plain fan-out to the same sites).
    #[arg(long, default_value_t = 100)]
    pub(crate) cold_calls: usize,
    /// sites: number of sites.
    #[arg(long, default_value_t = 600)]
    pub(crate) sites: usize,
    /// budget, cluster: identifiers streamed, and the source's rate limit.
    #[arg(long, default_value_t = 5000)]
    pub(crate) budget_ids: usize,
    #[arg(long, default_value_t = 500.0)]
    pub(crate) budget_rate: f64,
    #[arg(long, default_value_t = 10)]
    pub(crate) budget_burst: u32,
    /// memory: people cached in each of its two steps (the second step's
    /// growth is the figure; at 20,000 it moved by ±700 bytes from run to
    /// run, at 50,000 by ±50).
    #[arg(long, default_value_t = 50_000)]
    pub(crate) identities: usize,
    /// audience: rows of the job reported on.
    #[arg(long, default_value_t = 50_000)]
    pub(crate) audience_rows: usize,
    /// oneshot: private-origin sources, and each one's latency (also the
    /// latency of `large`'s replica).
    #[arg(long, default_value_t = 600)]
    pub(crate) oneshot_sites: usize,
    #[arg(long, default_value_t = 100)]
    pub(crate) oneshot_latency_ms: u64,
    /// Where the JSON results go.
    #[arg(long, default_value = "bench-results.json")]
    pub(crate) json: String,
}

pub(crate) fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

pub(crate) fn ms(d: Duration) -> f64 {
    (d.as_secs_f64() * 1e5).round() / 100.0
}

/// A local site: `/{site}/{user}` with a per-site behaviour.
fn main() {
    // As `enrichd serve` does (see src/main.rs), before the runtime's
    // threads start.
    enrichd_alloc::small_pages();
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("a runtime")
        .block_on(run());
}

async fn run() {
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
        "hot", "history", "cold", "sites", "budget", "memory", "cluster", "audience", "oneshot",
        "large",
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
            "audience" => audience(&args).await,
            "oneshot" => oneshot::oneshot(&args).await,
            "large" => large::large(&args).await,
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
