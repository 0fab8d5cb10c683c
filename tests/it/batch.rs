//! Batch enrichment: EnrichStream over gRPC, and `enrichd batch` on a
//! 10,000-row list that is killed halfway and resumed.
use crate::common;

use std::collections::{BTreeMap, HashSet};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{TestApp, email_request, test_source};
use enrichd::proto::v1 as pb;
use wiremock::matchers::path_regex;
use wiremock::{Mock, MockServer, ResponseTemplate};

fn request(id: &str, email: &str) -> pb::EnrichRequest {
    pb::EnrichRequest {
        request_id: id.into(),
        ..email_request(email)
    }
}

#[tokio::test]
async fn a_stream_answers_every_request_and_a_bad_one_does_not_stop_it() {
    let (_server, catalog) = common::one_source("email", "", ResponseTemplate::new(404)).await;
    let app = TestApp::with_catalog("[dns]\nenabled = false\n", catalog).await;
    let mut client = app.client().await;
    let requests = vec![
        request("1", "one@example.test"),
        request("2", "not an email"),
        request("", "no-id@example.test"),
        pb::EnrichRequest {
            purpose: "astrology".into(),
            ..request("4", "four@example.test")
        },
        request("5", "five@example.test"),
    ];
    let mut answers = client
        .enrich_stream(tokio_stream::iter(requests))
        .await
        .unwrap()
        .into_inner();
    let mut by_id = BTreeMap::new();
    while let Some(a) = answers.message().await.unwrap() {
        by_id.insert(a.request_id.clone(), a);
    }
    assert_eq!(by_id.len(), 5);
    assert!(by_id["1"].error.is_none() && by_id["5"].error.is_none());
    let bad = by_id["2"].error.as_ref().unwrap();
    assert_eq!(bad.code, tonic::Code::InvalidArgument as i32);
    assert_eq!(bad.field_violations[0].field, "email");
    assert_eq!(
        by_id[""].error.as_ref().unwrap().field_violations[0].field,
        "request_id"
    );
    let refused = by_id["4"].error.as_ref().unwrap();
    assert_eq!(refused.code, tonic::Code::FailedPrecondition as i32);
    assert_eq!(refused.precondition_violations[0].r#type, "PURPOSE");
}

#[tokio::test]
async fn a_reader_that_stops_reading_stops_the_server_and_then_the_sender() {
    let arrivals = common::Arrivals::answering(ResponseTemplate::new(404));
    let (_server, catalog) = common::one_source(
        "email",
        "limits = { rate_limit = { per_second = 10000, burst = 10000 } }",
        arrivals.clone(),
    )
    .await;
    let app = TestApp::with_catalog(
        "[dns]\nenabled = false\n[batch]\nmax_in_flight = 4\nbuffer = 4\n",
        catalog,
    )
    .await;
    // A reader with small HTTP/2 windows, as a slow consumer would advertise.
    let channel = tonic::transport::Channel::from_shared(format!("http://{}", app.addr))
        .unwrap()
        .initial_stream_window_size(16 * 1024)
        .initial_connection_window_size(64 * 1024)
        .connect()
        .await
        .unwrap();
    let mut client = pb::enrichment_client::EnrichmentClient::new(channel);
    // Requests of ~2 KB: 2,000 of them (4 MB) are more than the server's
    // HTTP/2 receive windows hold, so a server that stops reading holds the
    // sender back too.
    let sent = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counter = sent.clone();
    let requests = tokio_stream::StreamExt::map(tokio_stream::iter(0..2000), move |i| {
        counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let mut r = request(&i.to_string(), &format!("p{i}@example.test"));
        r.hints = Some(pb::Hints {
            name: "n".repeat(250),
            ..Default::default()
        });
        r.request_id.push_str(&"x".repeat(240));
        let evidence = r.evidence.get_or_insert_default();
        evidence.consent_ref = "c".repeat(250);
        evidence.contract_ref = "k".repeat(250);
        evidence
            .legitimate_interest_assessment_ref
            .push_str(&"l".repeat(240));
        r
    });
    let mut answers = client.enrich_stream(requests).await.unwrap().into_inner();

    // Read nothing. Wait until the server has started (at least a stream's
    // worth in flight reached the source), then until neither the server's
    // work nor the client's sending has moved for a second.
    let sent_now = || sent.load(std::sync::atomic::Ordering::SeqCst);
    common::eventually("the stream started", || async {
        (arrivals.len() >= 4).then_some(())
    })
    .await;
    let guard = Instant::now() + Duration::from_secs(30);
    let mut last = (arrivals.len(), sent_now());
    let mut still_since = Instant::now();
    while still_since.elapsed() < Duration::from_secs(1) {
        assert!(Instant::now() < guard, "the server never stopped: {last:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
        let now = (arrivals.len(), sent_now());
        if now != last {
            (last, still_since) = (now, Instant::now());
        }
    }
    let (processed, pushed) = last;
    // In flight (4) + buffered (4) + the answers the reader's 16 KB window
    // took: a few dozen, not the 2,000 it was sent.
    assert!(
        processed <= 64,
        "the server kept working for a reader that stopped: {processed} of 2000"
    );
    assert!(
        pushed < 2000,
        "the sender was never held back: it pushed all {pushed} requests"
    );

    // Reading again drains everything.
    let mut n = 0;
    while answers.message().await.unwrap().is_some() {
        n += 1;
    }
    assert_eq!(n, 2000);
    assert_eq!(sent_now(), 2000);
}

/// 10,000 rows: 5 % invalid, 10 % repeating an earlier row.
/// A local site answering with `responder`, and a catalog directory in
/// `dir` with one email source `a` on it under the budget given.
async fn catalog_dir(
    dir: &std::path::Path,
    responder: impl wiremock::Respond + 'static,
    per_second: u32,
    burst: u32,
) -> (MockServer, std::path::PathBuf) {
    let server = MockServer::start().await;
    Mock::given(path_regex("^/a/"))
        .respond_with(responder)
        .mount(&server)
        .await;
    let catalog = dir.join("catalog");
    std::fs::create_dir(&catalog).unwrap();
    std::fs::write(
        catalog.join("a.toml"),
        test_source(
            "a",
            "email",
            &format!("{}/a/{{input}}", server.uri()),
            &format!(
                "limits = {{ rate_limit = {{ per_second = {per_second}, burst = {burst} }} }}"
            ),
        ),
    )
    .unwrap();
    (server, catalog)
}

fn write_list(path: &std::path::Path) -> (HashSet<u64>, usize) {
    let mut text = String::from("id,email\n");
    let mut invalid = HashSet::new();
    let mut distinct = 0;
    for row in 1..=10_000u64 {
        let line = if row % 20 == 0 {
            invalid.insert(row);
            match row % 60 {
                0 => format!("{row},\n"),
                20 => format!("{row},not an email\n"),
                _ => format!("{row},x{row}@example.test,extra\n"),
            }
        } else if row % 10 == 5 {
            format!("{row},p{}@example.test\n", row - 4)
        } else {
            distinct += 1;
            format!("{row},p{row}@example.test\n")
        };
        text.push_str(&line);
    }
    std::fs::write(path, text).unwrap();
    (invalid, distinct)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ten_thousand_row_list_survives_a_kill_and_stays_within_its_budget() {
    let arrivals = common::Arrivals::answering(ResponseTemplate::new(404));
    let dir = tempfile::tempdir().unwrap();
    let (_server, catalog) = catalog_dir(dir.path(), arrivals.clone(), 1500, 20).await;
    let input = dir.path().join("list.csv");
    let output = dir.path().join("out.jsonl");
    let (invalid, _distinct) = write_list(&input);
    let ledger = format!(
        "sqlite://{}?mode=rwc",
        dir.path().join("ledger.db").display()
    );
    let (input2, output2, catalog2, ledger2) = (
        input.clone(),
        output.clone(),
        catalog.clone(),
        ledger.clone(),
    );
    let batch = move || {
        let (input, output, catalog, ledger) = (&input2, &output2, &catalog2, &ledger2);
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_enrichd"));
        cmd.args([
            "batch",
            "--input",
            input.to_str().unwrap(),
            "--output",
            output.to_str().unwrap(),
        ])
        .args([
            "--purpose",
            "marketing",
            "--basis",
            "legitimate_interests",
            "--lia-ref",
            "LIA-1",
            "--concurrency",
            "64",
        ])
        .env("ENRICHD__DNS__ENABLED", "false")
        .env("ENRICHD__SOURCES__CATALOG", catalog)
        .env("ENRICHD__LEDGER__URL", ledger)
        .env(
            "ENRICHD__PRIVACY__HASH_KEY",
            "a-test-key-of-at-least-thirty-two-characters",
        )
        .env_remove("RUST_LOG")
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
        cmd
    };

    // Kill it (SIGKILL) once a third of the rows are written.
    let mut first = batch().spawn().unwrap();
    common::eventually("a third of the rows are written", || async {
        let lines = std::fs::read_to_string(&output)
            .map(|t| t.lines().count())
            .unwrap_or(0);
        (lines >= 3_000).then_some(())
    })
    .await;
    first.kill().unwrap();
    first.wait().unwrap();
    let before = std::fs::read_to_string(&output).unwrap().lines().count();
    assert!(
        (3_000..10_000).contains(&before),
        "killed halfway: {before} lines"
    );

    // The same command again finishes the list.
    let started = Instant::now();
    let again = batch.clone();
    let second = tokio::task::spawn_blocking(move || again().output().unwrap())
        .await
        .unwrap();
    let elapsed = started.elapsed();
    let stderr = String::from_utf8_lossy(&second.stderr);
    assert!(second.status.success(), "{stderr}");

    let text = std::fs::read_to_string(&output).unwrap();
    let mut seen = HashSet::new();
    for line in text.lines() {
        let v: serde_json::Value = serde_json::from_str(line).expect("every line is whole JSON");
        let row = v["row"].as_u64().unwrap();
        assert!(seen.insert(row), "row {row} written twice");
        if invalid.contains(&row) {
            let reason = v["error"]["message"].as_str().unwrap();
            assert!(!reason.is_empty(), "row {row} has a reason");
        } else {
            assert!(v.get("answer").is_some(), "row {row}: {line}");
        }
    }
    assert_eq!(seen.len(), 10_000, "no gaps");
    let mode =
        std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(&output).unwrap().permissions());
    assert_eq!(mode & 0o777, 0o600, "the answers are private");
    assert_eq!(seen, (1..=10_000).collect());

    let max = arrivals.max_per_second();
    assert!(
        max <= 1500 + 20,
        "the source saw {max} requests in one second (budget 1500/s + 20)"
    );
    let summary: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(dir.path().join("out.jsonl.summary.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(summary["rows_in"], 10_000);
    assert_eq!(summary["already_done"].as_u64().unwrap(), before as u64);
    // The counts are the whole output's, not only what the second run added.
    assert_eq!(summary["invalid"].as_u64().unwrap(), invalid.len() as u64);
    let counted: u64 = [
        "enriched",
        "not_found",
        "incomplete",
        "suppressed",
        "invalid",
    ]
    .iter()
    .map(|k| summary[k].as_u64().unwrap())
    .sum::<u64>()
        + summary["errors"]
            .as_object()
            .unwrap()
            .values()
            .map(|n| n.as_u64().unwrap())
            .sum::<u64>();
    assert_eq!(counted, 10_000, "{summary}");
    assert!(
        summary["cache_hits"].as_u64().unwrap() > 0,
        "duplicates came from the cache"
    );
    let done = 10_000 - before;
    println!(
        "resumed {done} rows in {elapsed:?} ({:.0} rows/s); the source saw at most {max} requests/s of a 1500/s budget ({:.0} %); {} upstream calls for {} lookups",
        done as f64 / elapsed.as_secs_f64(),
        max as f64 * 100.0 / 1500.0,
        arrivals.len(),
        10_000 - invalid.len()
    );
    println!("{stderr}");
}

/// A purpose nobody declared is wrong for every row: the run stops at once
/// with exit 2, names the flag, and writes nothing, so the corrected run can
/// use the same output.
#[test]
fn a_run_refused_as_a_whole_writes_nothing_and_names_the_flag() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("list.csv");
    let mut rows = String::from("email,customer_id\n");
    // Invalid rows first and last: the first is read (and its line
    // written) before the refusal comes, and taken back with the rest.
    rows.push_str("not-an-address,C0\n");
    for i in 1..50 {
        rows.push_str(&format!("p{i}@example.test,C{i}\n"));
    }
    rows.push_str("not-an-address,C50\n");
    std::fs::write(&input, rows).unwrap();
    let output = dir.path().join("out.jsonl");
    let ledger = format!("sqlite://{}?mode=rwc", dir.path().join("l.db").display());
    let run = |purpose: &str| {
        Command::new(env!("CARGO_BIN_EXE_enrichd"))
            .args(["batch", "--input", input.to_str().unwrap()])
            .args(["--output", output.to_str().unwrap(), "--purpose", purpose])
            .args(["--basis", "legitimate_interests", "--lia-ref", "LIA-1"])
            .env("ENRICHD__DNS__ENABLED", "false")
            .env(
                "ENRICHD__SOURCES__CATALOG",
                concat!(
                    env!("CARGO_MANIFEST_DIR"),
                    "/tests/fixtures/disabled-catalog"
                ),
            )
            .env("ENRICHD__LEDGER__URL", &ledger)
            .env("ENRICHD__PRIVACY__HASH_KEY", common::TEST_HASH_KEY)
            .env_remove("RUST_LOG")
            .output()
            .unwrap()
    };
    let refused = run("marketting");
    let err = String::from_utf8_lossy(&refused.stderr);
    assert_eq!(refused.status.code(), Some(2), "{err}");
    assert!(
        err.contains("--purpose: purpose \"marketting\" is not declared"),
        "{err}"
    );
    assert!(!output.exists(), "nothing written");

    let done = run("marketing");
    let err = String::from_utf8_lossy(&done.stderr);
    assert!(done.status.success(), "{err}");
    assert!(!err.contains("interrupted"), "{err}");
    let lines = std::fs::read_to_string(&output).unwrap();
    assert_eq!(
        lines.lines().count(),
        51,
        "every row once, the bad ones too"
    );
    // Each line carries its row's columns, the bad row's too.
    for line in lines.lines() {
        let v: serde_json::Value = serde_json::from_str(line).unwrap();
        let row = v["row"].as_u64().unwrap();
        assert_eq!(v["input"]["customer_id"], format!("C{}", row - 1), "{line}");
    }
}

/// An output that cannot be written (its directory missing, or a directory
/// itself) is refused before the run, naming the flag and the path: found
/// out at the end, a long run's table or report was lost.
#[test]
fn an_output_that_cannot_be_written_is_refused_before_the_run() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("list.csv");
    std::fs::write(&input, "email\np1@example.test\n").unwrap();
    let output = dir.path().join("out.jsonl");
    let missing = dir.path().join("missing");
    let cases = [
        ("--output", missing.join("out.jsonl"), None),
        ("--csv", missing.join("table.csv"), Some("--csv")),
        (
            "--audience",
            missing.join("audience.json"),
            Some("--audience"),
        ),
        ("--output", dir.path().join("a.jsonl"), None),
    ];
    std::fs::create_dir(dir.path().join("a.jsonl")).unwrap();
    for (flag, path, extra) in cases {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_enrichd"));
        cmd.args(["batch", "--sandbox", "--input"]).arg(&input);
        match extra {
            Some(extra) => cmd.arg("--output").arg(&output).arg(extra).arg(&path),
            None => cmd.arg("--output").arg(&path),
        };
        let run = cmd
            .args(["--purpose", "marketing", "--basis", "legitimate_interests"])
            .args(["--lia-ref", "LIA-1"])
            .env("ENRICHD__STORAGE__DATA_DIR", dir.path().join("data"))
            .env("ENRICHD__PRIVACY__HASH_KEY", common::TEST_HASH_KEY)
            .env_remove("RUST_LOG")
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&run.stderr);
        assert_eq!(run.status.code(), Some(2), "{flag}: {err}");
        let named = format!("{flag}: cannot write {}", path.display());
        assert!(err.contains(&named), "{flag}: {err}");
        assert!(!output.exists(), "{flag}: nothing was run");
    }
}

/// Ctrl-C (SIGINT) stops sending at once: the command exits within a second
/// plus the rows already in flight, writes those, says "interrupted", and
/// the CSV of summary columns holds exactly the rows written, with the
/// list's own delimiter.
#[tokio::test]
async fn ctrl_c_stops_within_a_second_plus_the_rows_in_flight() {
    let slow = Duration::from_millis(400);
    let dir = tempfile::tempdir().unwrap();
    let (_server, catalog) = catalog_dir(
        dir.path(),
        ResponseTemplate::new(404).set_delay(slow),
        1000,
        50,
    )
    .await;
    // Saved by Excel where the comma is the decimal mark (a BOM, then
    // semicolons): the table comes back the same way.
    let input = dir.path().join("list.csv");
    let mut list = "\u{feff}customer_id;email\n".to_owned();
    for i in 1..=300 {
        list.push_str(&format!("c{i};p{i}@example.com\n"));
    }
    std::fs::write(&input, list).unwrap();
    let output = dir.path().join("out.jsonl");
    let csv = dir.path().join("out.csv");
    let concurrency = 4;
    let mut child = Command::new(env!("CARGO_BIN_EXE_enrichd"))
        .args([
            "batch",
            "--purpose",
            "marketing",
            "--basis",
            "legitimate_interests",
        ])
        .args([
            "--lia-ref",
            "LIA-1",
            "--concurrency",
            &concurrency.to_string(),
        ])
        .arg("--input")
        .arg(&input)
        .arg("--output")
        .arg(&output)
        .arg("--csv")
        .arg(&csv)
        .env("ENRICHD__DNS__ENABLED", "false")
        .env("ENRICHD__SOURCES__CATALOG", &catalog)
        .env(
            "ENRICHD__LEDGER__URL",
            format!("sqlite://{}?mode=rwc", dir.path().join("l.db").display()),
        )
        .env("ENRICHD__PRIVACY__HASH_KEY", common::TEST_HASH_KEY)
        .env_remove("RUST_LOG")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let lines = || {
        std::fs::read_to_string(&output)
            .map(|t| t.lines().count())
            .unwrap_or(0)
    };
    common::eventually("eight rows are written", || async {
        (lines() >= 8).then_some(())
    })
    .await;
    let before = lines();
    let signalled = Instant::now();
    let killed = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let status = tokio::task::spawn_blocking(move || {
        let status = child.wait().unwrap();
        let mut stderr = String::new();
        std::io::Read::read_to_string(child.stderr.as_mut().unwrap(), &mut stderr).unwrap();
        (status, stderr)
    })
    .await
    .unwrap();
    let took = signalled.elapsed();
    let (status, stderr) = status;
    assert_eq!(status.code(), Some(130), "{stderr}");
    assert!(stderr.contains("interrupted"), "{stderr}");
    let after = lines();
    println!("SIGINT with {before} rows written: exit after {took:?}, {after} rows written");
    assert!(
        took < Duration::from_secs(1) + slow,
        "took {took:?} to stop"
    );
    assert!(
        after <= before + 2 * concurrency,
        "{} rows written after the signal (concurrency {concurrency})",
        after - before
    );
    // The CSV holds the rows written, in row order, with their columns; it
    // and the run's files beside the answers are private, as they are.
    let private = |path: &std::path::Path| {
        let mode = std::fs::metadata(path).unwrap().permissions();
        std::os::unix::fs::PermissionsExt::mode(&mode) & 0o777
    };
    let beside = |suffix: &str| {
        let mut path = output.as_os_str().to_owned();
        path.push(suffix);
        std::path::PathBuf::from(path)
    };
    for path in [csv.clone(), beside(".checkpoint"), beside(".summary.json")] {
        assert_eq!(private(&path), 0o600, "{}", path.display());
    }
    let table = std::fs::read_to_string(&csv).expect("the CSV is written");
    let mut rows = table
        .strip_prefix('\u{feff}')
        .expect("the list's BOM comes back")
        .lines();
    assert!(
        rows.next()
            .unwrap()
            .starts_with("customer_id;email;row;outcome;")
    );
    let numbers: Vec<u64> = rows
        .map(|r| r.split(';').nth(2).unwrap().parse().unwrap())
        .collect();
    assert_eq!(numbers.len(), after);
    assert!(numbers.windows(2).all(|w| w[0] < w[1]), "row order");
}
