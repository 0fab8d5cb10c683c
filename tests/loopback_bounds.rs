//! The loopback bound, alone in its test binary so that the memory and
//! descriptors it measures are its own: 100 idle streams and 1,000 idle
//! connections leave memory and descriptors bounded and health SERVING,
//! and all are closed by their timeouts.
// Tests time real servers and processes from outside; the code they test
// reads the injected clock (clippy.toml).
#![allow(clippy::disallowed_methods)]
#[path = "it/common/mod.rs"]
mod common;

use std::time::{Duration, Instant};

use common::{HUNG, TestApp, closed_by_peer, health, idle_stream};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tonic::Code;
use tonic_health::pb::health_check_response::ServingStatus;

const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

fn descriptors() -> usize {
    std::fs::read_dir("/proc/self/fd").unwrap().count()
}

fn rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches(" kB").trim().parse().ok())
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_streams_and_idle_connections_stay_bounded_and_are_all_closed_by_their_timeouts() {
    let app = TestApp::spawn(
        // One address (loopback) makes every connection here.
        "[dns]\nenabled = false\n[server]\nstream_idle_timeout = \"1s\"\nidle_timeout = \"1500ms\"\nmax_connections_per_address = 4096\n",
    )
    .await;
    let (fds_before, rss_before) = (descriptors(), rss_kib());

    // 100 streams that never send, on 10 connections.
    let mut streams = Vec::new();
    for _ in 0..10 {
        let mut client = app.client().await;
        for _ in 0..10 {
            streams.push(idle_stream(&mut client).await);
        }
    }
    // 500 silent TCP connections and 500 that send only the HTTP/2 preface.
    let mut conns = Vec::new();
    for i in 0..1000 {
        let mut conn = TcpStream::connect(app.addr).await.unwrap();
        if i % 2 == 1 {
            conn.write_all(PREFACE).await.unwrap();
        }
        conns.push(conn);
    }
    let rss_open = rss_kib();
    assert_eq!(health(&app).await.unwrap(), ServingStatus::Serving);
    let grown_mib = rss_open.saturating_sub(rss_before) / 1024;
    assert!(grown_mib < 96, "memory grew {grown_mib} MiB");

    // Every stream is ended and every connection closed by the server.
    for (answers, _keep) in &mut streams {
        let ended = tokio::time::timeout(HUNG, answers.message())
            .await
            .expect("ended")
            .expect_err("with a status");
        assert_eq!(ended.code(), Code::DeadlineExceeded);
    }
    let closed = futures::future::join_all(conns.into_iter().map(closed_by_peer)).await;
    let open = closed.iter().filter(|c| !**c).count();
    assert_eq!(open, 0, "{open} idle connections were never closed");
    drop(streams);
    assert_eq!(health(&app).await.unwrap(), ServingStatus::Serving);

    // Their descriptors are returned (the health client's own may linger).
    let deadline = Instant::now() + HUNG;
    while descriptors() > fds_before + 20 && Instant::now() < deadline {
        tokio::task::yield_now().await;
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let fds_after = descriptors();
    assert!(
        fds_after <= fds_before + 20,
        "descriptors: {fds_before} before, {fds_after} after"
    );
    println!(
        "rss: {} MiB before, {} MiB with 100 streams and 1000 connections open, {} MiB after; fds {fds_before} -> {fds_after}",
        rss_before / 1024,
        rss_open / 1024,
        rss_kib() / 1024
    );
}
