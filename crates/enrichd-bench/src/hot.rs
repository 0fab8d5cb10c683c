//! `hot` (a fully cached person, against the health check and the echoes)
//! and `history` (the same on a ledger of a million rows).
use std::time::{Duration, Instant};

use crate::echo::{hot_subject, start_echo};
use crate::fixtures::{HOT, Server, catalog, client, ledger_url, request, serve_sites, start_on};
use crate::load::{Call, alternate, load};
use crate::{Args, ms};
use enrichd::proto::v1 as pb;
use serde_json::{Value, json};

/// A server whose 10 sources have all answered for `HOT`, and its answer.
pub(crate) async fn hot_server(
    dir: tempfile::TempDir,
    url: String,
) -> (Server, pb::EnrichResponse) {
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

pub(crate) async fn hot(args: &Args) -> Value {
    let dir = tempfile::tempdir().unwrap();
    let url = ledger_url(&dir).await;
    let (server, answer) = hot_server(dir, url).await;
    let answer_bytes = prost::Message::encoded_len(&answer);
    let run = |addr, call, rate| load(addr, args.clients, args.seconds, call, rate);
    let floor_dir = tempfile::tempdir().unwrap();
    let floor_ledger = enrichd::ledger::Ledger::open(&ledger_url(&floor_dir).await)
        .await
        .unwrap();
    let floor = start_echo(answer.clone(), Some(floor_ledger)).await;
    if let Some(only) = &args.only {
        let addr = if only == "floor" { floor } else { server.addr };
        let alone = run(addr, Call::Enrich(HOT), None).await;
        let calls = (alone.rps * args.seconds as f64).round();
        return json!({"scenario": "hot", "only": only, "calls": calls, "rps": alone.rps.round(), "cpu_us": (alone.cpu_us * 10.0).round() / 10.0});
    }
    let (prost_ns, exact_ns) = encodings(&answer);
    let echo = start_echo(pb::EnrichResponse::default(), None).await;
    let echo = run(echo, Call::Enrich(HOT), None).await;
    let sized = start_echo(answer, None).await;
    let sized = run(sized, Call::Enrich(HOT), None).await;
    let health = run(server.addr, Call::Health, None).await;
    // The floor and Enrich in turn, a second each: their ratio is the
    // issue's figure, and the machine's drift falls on both alike.
    let (floor, own) = alternate(
        floor,
        server.addr,
        args.clients,
        args.seconds,
        Call::Enrich(HOT),
    )
    .await;
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
        "encode_ns": exact_ns, "prost_codec_encode_ns": prost_ns, "encode_ratio": ratio(prost_ns, exact_ns),
        "enrichd_cpu_us": own.cpu_us.round(), "health_cpu_us": health.cpu_us.round(), "sized_echo_cpu_us": sized.cpu_us.round(),
        "cpu_ratio_to_health": ratio(health.cpu_us, own.cpu_us), "cpu_ratio_to_sized_echo": ratio(sized.cpu_us, own.cpu_us),
        "enrichd_p50_ms": ms(own.p50), "enrichd_p99_ms": ms(own.p99),
        "health_p50_ms": ms(health.p50), "health_p99_ms": ms(health.p99),
        "echo_p50_ms": ms(echo.p50), "echo_p99_ms": ms(echo.p99),
        "paced_rps": paced.rps.round(), "paced_p50_ms": ms(paced.p50), "paced_p99_ms": ms(paced.p99),
        "half_own_rps": light.rps.round(), "half_own_p50_ms": ms(light.p50), "half_own_p99_ms": ms(light.p99),
    })
}

/// Nanoseconds to encode `answer` as tonic's prost codec does (into the
/// frame's `BytesMut`, byte by byte through `put_slice`) and as enrichd's
/// codec does (into a buffer of its size, copied into the frame): the
/// median of 15 rounds of 2,000 each, in turn.
fn encodings(answer: &pb::EnrichResponse) -> (f64, f64) {
    use prost::Message;
    let time = |encode: &dyn Fn(&mut bytes::BytesMut)| {
        let t = Instant::now();
        for _ in 0..2_000 {
            let mut frame = bytes::BytesMut::with_capacity(8 * 1024);
            encode(&mut frame);
            std::hint::black_box(frame);
        }
        t.elapsed().as_nanos() as f64 / 2_000.0
    };
    let (mut prost, mut exact) = (Vec::new(), Vec::new());
    for _ in 0..15 {
        prost.push(time(&|frame| answer.encode(frame).unwrap()));
        exact.push(time(&|frame| {
            bytes::BufMut::put_slice(frame, &answer.encode_to_vec())
        }));
    }
    let median = |mut v: Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2].round()
    };
    (median(prost), median(exact))
}

/// Writes `rows` ledger rows, `person` of them for `HOT`'s subject (as
/// enriched), the rest for other subjects, in multi-row inserts.
pub(crate) async fn fill_ledger(url: &str, rows: usize, person: usize) {
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

pub(crate) async fn history(args: &Args) -> Value {
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
    // In turn, a second each, as `hot` measures its floor.
    let (empty, full) = alternate(
        empty.addr,
        full.addr,
        args.clients,
        args.seconds,
        Call::Enrich(HOT),
    )
    .await;
    json!({
        "scenario": "history", "clients": args.clients, "ledger_rows": args.history_rows, "person_rows": args.history_person_rows,
        "empty_rps": empty.rps.round(), "full_rps": full.rps.round(),
        "ratio_full_to_empty": (full.rps / empty.rps * 1000.0).round() / 1000.0,
        "empty_p99_ms": ms(empty.p99), "full_p99_ms": ms(full.p99),
        "empty_cpu_us": empty.cpu_us.round(), "full_cpu_us": full.cpu_us.round(),
    })
}
