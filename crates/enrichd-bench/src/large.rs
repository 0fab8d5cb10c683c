//! The real catalog at full size, as an operator runs it: `enrichd serve`
//! (the release binary beside this one) over the shipped sources
//! (`config/sources/`) and the WhatsMyName pack (`config/packs/`), every
//! site's host moved to one loopback replica that answers every path "not
//! found" after `--oneshot-latency-ms`; beside the same with the shipped
//! sources alone. Start time (to the port accepting), memory after start,
//! one cold call for person@example.test (email sources, and username
//! sources through the address's local part), memory after it.
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use axum::http::StatusCode;
use serde_json::{Value, json};

use crate::Args;
use crate::oneshot::serve_catalog;

/// The repository's config directory (the bench runs from the workspace).
fn config_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../config")
}

/// One loopback replica for every site: 404 "not found" after `delay`;
/// counts the requests it is sent.
async fn replica(delay: Duration, seen: Arc<AtomicUsize>) -> SocketAddr {
    let app = axum::Router::new().fallback(move || {
        seen.fetch_add(1, Ordering::Relaxed);
        async move {
            tokio::time::sleep(delay).await;
            (StatusCode::NOT_FOUND, "not found")
        }
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    addr
}

/// The shipped catalog files (and the pack, if `with_pack`), each site's
/// host moved under `origin`, written to a catalog directory in `dir`;
/// returns it and how many sources it holds.
fn moved_catalog(dir: &Path, origin: SocketAddr, with_pack: bool) -> (PathBuf, usize) {
    let catalog = dir.join("catalog");
    std::fs::create_dir_all(&catalog).unwrap();
    let mut files: Vec<PathBuf> = std::fs::read_dir(config_dir().join("sources"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "toml"))
        .collect();
    if with_pack {
        files.push(config_dir().join("packs/whatsmyname.toml"));
    }
    let host = regex::Regex::new(r#"(?m)^url = "https?://([^/"?]+)"#).unwrap();
    let moved = format!("url = \"http://{origin}/$1");
    let mut sources = 0;
    for path in files {
        let text = std::fs::read_to_string(&path).unwrap();
        let text = host.replace_all(&text, moved.as_str()).replace(
            "[[source]]",
            "[[source]]\nnetwork = { allow_private = true }",
        );
        sources += text.matches("[[source]]").count();
        std::fs::write(catalog.join(path.file_name().unwrap()), text).unwrap();
    }
    (catalog, sources)
}

pub(crate) async fn large(args: &Args) -> Value {
    let seen = Arc::new(AtomicUsize::new(0));
    let origin = replica(Duration::from_millis(args.oneshot_latency_ms), seen.clone()).await;
    let mut runs = Vec::new();
    for with_pack in [false, true] {
        let dir = tempfile::tempdir().unwrap();
        let (catalog, sources) = moved_catalog(dir.path(), origin, with_pack);
        let before = seen.load(Ordering::Relaxed);
        let served = serve_catalog(dir.path(), &catalog).await;
        let requests = seen.load(Ordering::Relaxed) - before;
        let asked = served
            .answer
            .sources
            .iter()
            .filter(|o| o.outcome() != enrichd::proto::v1::source_outcome::Outcome::Skipped)
            .count();
        runs.push((sources, asked, requests, served));
    }
    let [
        (few, few_asked, few_seen, base),
        (all, all_asked, all_seen, big),
    ] = &runs[..]
    else {
        unreachable!("two runs")
    };
    // The floor under the big call: as many requests to the same replica at
    // once from a plain pooled HTTP client (its connections made fresh, as
    // a cold server's are), with no pipeline at all.
    // (reqwest is built without a crypto provider; enrichd's is ring.)
    let _ = rustls::crypto::ring::default_provider().install_default();
    let plain = reqwest::Client::new();
    let started = std::time::Instant::now();
    futures::future::join_all(
        (0..*all_asked).map(|i| plain.get(format!("http://{origin}/site{i}/person")).send()),
    )
    .await
    .into_iter()
    .for_each(|r| drop(r.expect("the replica answers")));
    let plain_ms = crate::ms(started.elapsed());
    json!({
        "scenario": "large", "latency_ms": args.oneshot_latency_ms,
        "shipped_sources": few, "shipped_asked": few_asked, "shipped_requests_seen": few_seen,
        "shipped_start_ms": base.start_ms, "shipped_start_mb": base.start_mb,
        "shipped_first_call_ms": base.first_call_ms, "shipped_after_mb": base.after_mb,
        "all_sources": all, "all_asked": all_asked, "all_requests_seen": all_seen,
        "all_start_ms": big.start_ms, "all_start_mb": big.start_mb,
        "all_first_call_ms": big.first_call_ms, "all_after_mb": big.after_mb,
        "start_ratio": (big.start_ms / base.start_ms * 100.0).round() / 100.0,
        "first_call_ratio": (big.first_call_ms / base.first_call_ms * 100.0).round() / 100.0,
        "plain_fan_out_ms": plain_ms,
        "all_first_call_ratio_to_plain": (big.first_call_ms / plain_ms * 100.0).round() / 100.0,
    })
}
