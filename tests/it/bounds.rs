//! Hostile clients: streams that hold their permits and end when idle,
//! connections that are capped and closed when idle, health that is never
//! shed. Run over real loopback connections. (The memory and descriptor
//! bound runs alone in tests/loopback_bounds.rs, so that its measurements
//! are its own.)
use crate::common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use common::{HUNG, TestApp, closed_by_peer, email_request, health, idle_stream};
use enrichd::proto::v1 as pb;
use tokio::net::TcpStream;
use tonic::Code;
use tonic_health::pb::health_check_response::ServingStatus;

#[tokio::test]
async fn a_stream_holds_its_permit_until_it_ends_idle_and_health_is_never_shed() {
    let app = TestApp::spawn(
        "[dns]\nenabled = false\n[server]\nmax_concurrent_requests = 2\nstream_idle_timeout = \"400ms\"\n",
    )
    .await;
    let mut client = app.client().await;
    let opened = Instant::now();
    let (mut first, _keep1) = idle_stream(&mut client).await;
    let (mut second, _keep2) = idle_stream(&mut client).await;

    // Both permits are held by streams that do nothing: a call is shed,
    // health still answers.
    let shed = client
        .enrich(email_request("ann@example.test"))
        .await
        .expect_err("no permit left");
    assert_eq!(shed.code(), Code::ResourceExhausted, "{shed:?}");
    assert_eq!(health(&app).await.unwrap(), ServingStatus::Serving);

    // Idle streams are ended by their timeout, and their permits return.
    for answers in [&mut first, &mut second] {
        let ended = tokio::time::timeout(HUNG, answers.message())
            .await
            .expect("the idle stream is ended")
            .expect_err("with a status");
        assert_eq!(ended.code(), Code::DeadlineExceeded);
        assert!(ended.message().contains("stream_idle_timeout"), "{ended:?}");
    }
    assert!(opened.elapsed() >= Duration::from_millis(400));
    client
        .enrich(email_request("ann@example.test"))
        .await
        .expect("a permit is free again");
}

/// A site that holds each request 150 ms and remembers the most it held at once.
async fn holding_site() -> (String, Arc<AtomicUsize>) {
    let (now, max) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let (n, m) = (now.clone(), max.clone());
    let app = axum::Router::new().route(
        "/a/{x}",
        axum::routing::get(move || {
            let (now, max) = (n.clone(), m.clone());
            async move {
                let held = now.fetch_add(1, Ordering::SeqCst) + 1;
                max.fetch_max(held, Ordering::SeqCst);
                tokio::time::sleep(Duration::from_millis(150)).await;
                now.fetch_sub(1, Ordering::SeqCst);
                axum::http::StatusCode::NOT_FOUND
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let origin = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    (origin, max)
}

#[tokio::test]
async fn streams_together_never_run_more_enrichments_than_the_concurrency_limit() {
    let (origin, max) = holding_site().await;
    let catalog = common::catalog_from(&common::test_source(
        "a",
        "email",
        &format!("{origin}/a/{{input}}"),
        "limits = { rate_limit = { per_second = 10000, burst = 10000 }, max_concurrency = 1000 }",
    ));
    let app = TestApp::with_catalog(
        "[dns]\nenabled = false\n[server]\nmax_concurrent_requests = 8\n",
        catalog,
    )
    .await;
    let mut streams = Vec::new();
    for s in 0..3 {
        let mut client = app.client().await;
        let requests: Vec<_> = (0..8)
            .map(|i| pb::EnrichRequest {
                request_id: format!("{s}-{i}"),
                ..email_request(&format!("p{s}x{i}@example.test"))
            })
            .collect();
        streams.push(tokio::spawn(async move {
            let mut answers = client
                .enrich_stream(tokio_stream::iter(requests))
                .await
                .unwrap()
                .into_inner();
            let mut n = 0;
            while let Some(answer) = answers.message().await.unwrap() {
                assert!(answer.error.is_none(), "{:?}", answer.error);
                n += 1;
            }
            n
        }));
    }
    for s in streams {
        assert_eq!(tokio::time::timeout(HUNG, s).await.unwrap().unwrap(), 8);
    }
    let max = max.load(Ordering::SeqCst);
    assert!(
        (1..=8).contains(&max),
        "the site saw {max} enrichments at once (limit 8)"
    );
}

/// A new connection to each of `addrs` is closed by the connection cap:
/// at once, long before the tests' idle timeout (700 ms).
async fn refused_at_once(addrs: &[std::net::SocketAddr]) {
    let started = Instant::now();
    for addr in addrs {
        assert!(closed_by_peer(TcpStream::connect(addr).await.unwrap()).await);
    }
    assert!(
        started.elapsed() < Duration::from_millis(600),
        "closed by the cap, not by the idle timeout"
    );
}

#[tokio::test]
async fn connections_beyond_the_cap_are_closed_at_once_and_service_resumes_when_idle_ones_close() {
    let app = TestApp::spawn(
        "[dns]\nenabled = false\n[server]\nmax_connections = 20\nidle_timeout = \"700ms\"\n",
    )
    .await;
    let mut silent = Vec::new();
    for _ in 0..20 {
        silent.push(TcpStream::connect(app.addr).await.unwrap());
    }
    // The 21st is accepted and closed straight away, long before any timeout.
    refused_at_once(&[app.addr]).await;
    // The silent ones are closed by the idle timeout; then service resumes.
    for conn in silent {
        assert!(closed_by_peer(conn).await);
    }
    assert_eq!(health(&app).await.unwrap(), ServingStatus::Serving);
}

/// An HTTP/1.1 connection that has been served once (so it is surely
/// accepted) and then sent half of a second request's headers.
async fn half_sent_http(addr: std::net::SocketAddr) -> TcpStream {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut conn = TcpStream::connect(addr).await.unwrap();
    conn.write_all(b"GET /openapi.json HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .await
        .unwrap();
    // Read the whole first answer (its length is in its headers).
    let mut got = Vec::new();
    let mut buf = [0u8; 8192];
    let total = loop {
        let n = tokio::time::timeout(HUNG, conn.read(&mut buf))
            .await
            .expect("answered")
            .unwrap();
        assert!(n > 0, "answered before closing");
        got.extend_from_slice(&buf[..n]);
        let text = String::from_utf8_lossy(&got).to_lowercase();
        if let Some(end) = text.find("\r\n\r\n") {
            let length: usize = text[..end]
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .map(|v| v.trim().parse().unwrap())
                .expect("a content-length");
            break end + 4 + length;
        }
    };
    while got.len() < total {
        let n = conn.read(&mut buf).await.unwrap();
        assert!(n > 0);
        got.extend_from_slice(&buf[..n]);
    }
    assert!(got.starts_with(b"HTTP/1.1 200"));
    conn.write_all(b"GET /openapi.json HTTP/1.1\r\nHost: localhost\r\n")
        .await
        .unwrap();
    conn
}

/// A gRPC connection that sent the HTTP/2 preface and got the server's
/// settings (so it is surely accepted), then nothing more.
async fn preface_only(addr: std::net::SocketAddr) -> TcpStream {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut conn = TcpStream::connect(addr).await.unwrap();
    conn.write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00\x00\x04\x00\x00\x00\x00\x00")
        .await
        .unwrap();
    let mut frame = [0u8; 9];
    tokio::time::timeout(HUNG, conn.read_exact(&mut frame))
        .await
        .expect("the server's settings")
        .unwrap();
    assert_eq!(frame[3], 4, "a SETTINGS frame");
    conn
}

#[tokio::test]
async fn the_http_listener_shares_the_connection_cap_and_closes_half_sent_requests() {
    let app = TestApp::spawn(
        "[dns]\nenabled = false\n[server]\nhttp_listen = \"127.0.0.1:0\"\nmax_connections = 8\nidle_timeout = \"700ms\"\n",
    )
    .await;
    let http = app.http_addr.expect("HTTP is served");
    // The cap (8) is reached across both listeners.
    let mut held = Vec::new();
    for _ in 0..4 {
        held.push(preface_only(app.addr).await);
        held.push(half_sent_http(http).await);
    }
    // The next, on either port, is closed at once.
    refused_at_once(&[http, app.addr]).await;
    // Those held are closed by the idle timeout, half-sent headers too;
    // then both ports serve again.
    for conn in held {
        assert!(closed_by_peer(conn).await);
    }
    let answer = reqwest::get(format!("http://{http}/openapi.json"))
        .await
        .unwrap();
    assert_eq!(answer.status(), 200);
    assert_eq!(health(&app).await.unwrap(), ServingStatus::Serving);
}

#[tokio::test]
async fn an_http_call_longer_than_the_idle_timeout_is_answered() {
    let (_site, catalog) = common::one_source(
        "email",
        "",
        wiremock::ResponseTemplate::new(404).set_delay(Duration::from_millis(1500)),
    )
    .await;
    let app = TestApp::with_catalog(
        "[dns]\nenabled = false\n[server]\nhttp_listen = \"127.0.0.1:0\"\nidle_timeout = \"300ms\"\n",
        catalog,
    )
    .await;
    let http = app.http_addr.expect("HTTP is served");
    let answer = reqwest::Client::new()
        .post(format!("http://{http}/v1/enrich"))
        .header("content-type", "application/json")
        .body(
            serde_json::json!({
                "email": "slow@example.test",
                "purpose": "marketing",
                "lawfulBasis": "LAWFUL_BASIS_LEGITIMATE_INTERESTS",
                "evidence": { "legitimateInterestAssessmentRef": "LIA-1" },
            })
            .to_string(),
        )
        .send()
        .await
        .expect("the connection is not cut while its call runs");
    assert_eq!(answer.status(), 200);
}

#[tokio::test]
async fn an_http_body_that_trickles_in_is_refused_at_the_request_timeout() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let app = TestApp::spawn(
        "[dns]\nenabled = false\n[server]\nhttp_listen = \"127.0.0.1:0\"\nrequest_timeout = \"500ms\"\nidle_timeout = \"300ms\"\n",
    )
    .await;
    let http = app.http_addr.expect("HTTP is served");
    let conn = TcpStream::connect(http).await.unwrap();
    let (mut read, mut write) = conn.into_split();
    write
        .write_all(
            b"POST /v1/enrich HTTP/1.1\r\nHost: localhost\r\ncontent-type: application/json\r\ncontent-length: 100\r\n\r\n",
        )
        .await
        .unwrap();
    // A byte every 100 ms: never idle, never done (99 of 100 bytes).
    let trickle = tokio::spawn(async move {
        for _ in 0..99 {
            tokio::time::sleep(Duration::from_millis(100)).await;
            if write.write_all(b" ").await.is_err() {
                return;
            }
        }
        std::future::pending::<()>().await;
    });
    let started = Instant::now();
    let mut answer = Vec::new();
    tokio::time::timeout(HUNG, read.read_to_end(&mut answer))
        .await
        .expect("answered and closed, not held while the body trickles")
        .ok();
    trickle.abort();
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(
        answer.contains("did not arrive within server.request_timeout (500ms)"),
        "{answer}"
    );
    assert!(
        answer.contains("\"status\":\"DEADLINE_EXCEEDED\""),
        "{answer}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn the_metrics_port_keeps_its_own_small_cap_and_closes_idle_connections() {
    let app = TestApp::spawn(
        "[dns]\nenabled = false\n[server]\nmetrics_listen = \"127.0.0.1:0\"\nidle_timeout = \"700ms\"\n",
    )
    .await;
    let metrics = app.metrics_addr.expect("metrics are served");
    let mut silent = Vec::new();
    for _ in 0..16 {
        silent.push(TcpStream::connect(metrics).await.unwrap());
    }
    // The 17th is closed at once; the API port is not touched by the flood.
    refused_at_once(&[metrics]).await;
    assert_eq!(health(&app).await.unwrap(), ServingStatus::Serving);
    for conn in silent {
        assert!(closed_by_peer(conn).await);
    }
    let scraped = reqwest::get(format!("http://{metrics}/metrics"))
        .await
        .unwrap();
    assert_eq!(scraped.status(), 200);
}

/// A client that sends many requests on a stream and never reads: the server
/// stops working for it once its answers back up (bounded by the stream's
/// buffer, its parallelism and the client's HTTP/2 window, not by what the
/// client sent), ends the stream after `stream_idle_timeout`, and the
/// client, reading at last, gets what was answered and then that status.
#[tokio::test]
async fn a_client_that_never_reads_gets_bounded_work_and_then_a_status() {
    let name = "x".repeat(1500);
    let site = common::Arrivals::answering(
        wiremock::ResponseTemplate::new(200)
            .set_body_json(serde_json::json!({ "user": { "name": name } })),
    );
    let limits =
        "limits = { rate_limit = { per_second = 10000, burst = 10000 }, max_concurrency = 64 }";
    let (_server, catalog) = common::one_source("email", limits, site.clone()).await;
    let app = TestApp::with_catalog(
        "[dns]\nenabled = false\n[cache]\nenabled = false\n\
         [server]\nstream_idle_timeout = \"1s\"\n[batch]\nmax_in_flight = 8\nbuffer = 4\n",
        catalog,
    )
    .await;
    // A small receive window, as a slow or hostile client would keep.
    let channel = tonic::transport::Channel::from_shared(format!("http://{}", app.addr))
        .unwrap()
        .initial_stream_window_size(65_535)
        .initial_connection_window_size(65_535)
        .connect()
        .await
        .unwrap();
    let mut client = pb::enrichment_client::EnrichmentClient::new(channel);
    let sent = 400;
    let (tx, rx) = tokio::sync::mpsc::channel(sent);
    for i in 0..sent {
        tx.send(email_request(&format!("p{i}@example.test")))
            .await
            .unwrap();
    }
    let mut answers = client
        .enrich_stream(tokio_stream::wrappers::ReceiverStream::new(rx))
        .await
        .unwrap()
        .into_inner();

    // Not reading for well past the idle timeout is the behaviour under test.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let worked = site.len();
    assert!(
        worked < sent / 4,
        "{worked} of {sent} requests were worked on for a client that read nothing"
    );
    assert_eq!(health(&app).await.unwrap(), ServingStatus::Serving);

    let mut answered = 0;
    let ended = loop {
        match tokio::time::timeout(HUNG, answers.message())
            .await
            .expect("not hung")
        {
            Ok(Some(_)) => answered += 1,
            Ok(None) => panic!("the stream ended as if complete after {answered} answers"),
            Err(status) => break status,
        }
    };
    assert_eq!(ended.code(), Code::DeadlineExceeded, "{ended:?}");
    assert!(ended.message().contains("took no answer"), "{ended:?}");
    assert!(
        answered <= worked,
        "{answered} answers for {worked} lookups"
    );
    drop(tx);
    assert_eq!(site.len(), worked, "no work after the stream ended");
}

#[tokio::test]
async fn http_headers_that_trickle_in_are_cut_off_at_the_request_timeout() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    // The idle timeout is far off: only the headers' deadline can close it.
    let app = TestApp::spawn(
        "[dns]\nenabled = false\n[server]\nhttp_listen = \"127.0.0.1:0\"\nrequest_timeout = \"500ms\"\nidle_timeout = \"10m\"\n",
    )
    .await;
    let http = app.http_addr.expect("HTTP is served");
    let conn = TcpStream::connect(http).await.unwrap();
    let (mut read, mut write) = conn.into_split();
    // A header byte every 100 ms, never the blank line that ends them.
    let trickle = tokio::spawn(async move {
        write.write_all(b"GET /healthz HTTP/1.1\r\n").await.unwrap();
        loop {
            tokio::time::sleep(Duration::from_millis(100)).await;
            if write.write_all(b"x").await.is_err() {
                return;
            }
        }
    });
    let mut answer = Vec::new();
    tokio::time::timeout(HUNG, read.read_to_end(&mut answer))
        .await
        .expect("closed, not held while the headers trickle")
        .ok();
    trickle.abort();
    assert!(answer.is_empty(), "{}", String::from_utf8_lossy(&answer));

    // A client that sends its request at once is served as before.
    let mut conn = TcpStream::connect(http).await.unwrap();
    conn.write_all(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut answer = Vec::new();
    tokio::time::timeout(HUNG, conn.read_to_end(&mut answer))
        .await
        .expect("answered")
        .unwrap();
    assert!(
        answer.starts_with(b"HTTP/1.1 200"),
        "{}",
        String::from_utf8_lossy(&answer)
    );
}

/// One key cannot take every slot: its streams that send nothing hold at
/// most `server.max_concurrent_per_caller` permits, the next is refused
/// naming the share, and another key's calls are served meanwhile.
#[tokio::test]
async fn one_key_holds_at_most_its_share_of_the_slots() {
    use enrichd::auth::Scope;
    use enrichd::auth::keys::NewKey;
    let app = TestApp::spawn(
        "[dns]\nenabled = false\n[auth]\nrequired = true\n\
         [server]\nmax_concurrent_requests = 8\nmax_concurrent_per_caller = 4\n\
         http_listen = \"127.0.0.1:0\"\n",
    )
    .await;
    let keys = app.keys().await;
    let key = |name: &str| NewKey {
        name: name.into(),
        scopes: [Scope::Stream, Scope::Enrich].into(),
        purposes: Default::default(),
        quota_per_second: None,
        expires_in: None,
    };
    let hog = keys.create(key("hog")).await.unwrap().secret;
    let other = keys.create(key("other")).await.unwrap().secret;
    let mut client = app.client().await;
    let mut held = Vec::new();
    let mut refused = Vec::new();
    for _ in 0..8 {
        let (tx, rx) = tokio::sync::mpsc::channel::<pb::EnrichRequest>(1);
        let mut request = tonic::Request::new(tokio_stream::wrappers::ReceiverStream::new(rx));
        request
            .metadata_mut()
            .insert("authorization", format!("Bearer {hog}").parse().unwrap());
        match client.enrich_stream(request).await {
            Ok(answers) => held.push((answers, tx)),
            Err(status) => refused.push(status),
        }
    }
    assert_eq!(held.len(), 4, "{refused:?}");
    assert_eq!(refused[0].code(), Code::ResourceExhausted);
    assert!(
        refused[0].message().contains("max_concurrent_per_caller"),
        "{}",
        refused[0]
    );
    let served = client
        .enrich(common::with_key(email_request("ann@example.com"), &other))
        .await;
    assert!(served.is_ok(), "{served:?}");
    // Batch uploads take their place from the same pool and share.
    let upload = reqwest::Client::new()
        .post(format!(
            "http://{}/v1/batches?purpose=marketing",
            app.http_addr.unwrap()
        ))
        .bearer_auth(&hog)
        .header("content-type", "text/csv")
        .body("email\nann@example.com\n")
        .send()
        .await
        .unwrap();
    assert_eq!(upload.status().as_u16(), 429);
    let said = upload.text().await.unwrap();
    assert!(said.contains("max_concurrent_per_caller"), "{said}");
    // A stream given back is a slot for the same key again.
    drop(held.pop());
    common::eventually("the hog's slot comes back", || {
        let mut client = client.clone();
        let hog = hog.clone();
        async move {
            let (_tx, rx) = tokio::sync::mpsc::channel::<pb::EnrichRequest>(1);
            let mut request = tonic::Request::new(tokio_stream::wrappers::ReceiverStream::new(rx));
            request
                .metadata_mut()
                .insert("authorization", format!("Bearer {hog}").parse().unwrap());
            client.enrich_stream(request).await.ok().map(drop)
        }
    })
    .await;
}

/// A connection to `addr` from the loopback address `from` (any of
/// 127.0.0.0/8 is this machine).
async fn connect_from(from: &str, addr: std::net::SocketAddr) -> TcpStream {
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.bind(format!("{from}:0").parse().unwrap()).unwrap();
    socket.connect(addr).await.unwrap()
}

/// One client address cannot take every connection: past
/// `max_connections_per_address` its new ones are closed at once while
/// another address is still served, and a connection that opens no call is
/// closed after `first_call_within`, long before the idle timeout.
#[tokio::test]
async fn one_address_holds_at_most_its_share_of_the_connections_and_silent_ones_go_early() {
    let app = TestApp::spawn(
        "[dns]\nenabled = false\n[server]\nmax_connections = 20\n\
         max_connections_per_address = 5\nfirst_call_within = \"1500ms\"\nidle_timeout = \"1h\"\n",
    )
    .await;
    let started = Instant::now();
    let mut silent = Vec::new();
    for _ in 0..5 {
        silent.push(connect_from("127.0.0.1", app.addr).await);
    }
    refused_at_once(&[app.addr]).await;
    // Another address has the slots that are left.
    let mut other = connect_from("127.0.0.2", app.addr).await;
    let mut buf = [0u8; 1024];
    // The server's HTTP/2 settings may come; the end of the connection not.
    let ended = tokio::time::timeout(Duration::from_millis(300), async {
        loop {
            match tokio::io::AsyncReadExt::read(&mut other, &mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
    })
    .await;
    assert!(ended.is_err(), "another address's connection stays open");
    // The silent ones go after `first_call_within`, not the hour.
    for conn in silent {
        assert!(closed_by_peer(conn).await);
    }
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_millis(1400) && waited < HUNG,
        "closed after {waited:?}"
    );
    assert_eq!(health(&app).await.unwrap(), ServingStatus::Serving);
}
