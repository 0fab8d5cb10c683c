//! The `enrichd` binary as an operator runs it.
use crate::common;

use std::process::{Command, Output};

fn enrichd(args: &[&str]) -> Output {
    enrichd_on("sqlite::memory:", args)
}

/// The binary with its ledger at `ledger_url` (and the test servers' hash key).
fn enrichd_on(ledger_url: &str, args: &[&str]) -> Output {
    offline()
        .args(args)
        .env("ENRICHD__LEDGER__URL", ledger_url)
        .env("ENRICHD__PRIVACY__HASH_KEY", common::TEST_HASH_KEY)
        .output()
        .expect("runs")
}

/// The binary with no DNS and no real source (none is ever asked from a
/// test), no API key and no log filter from the environment.
fn offline() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_enrichd"));
    command
        .env("ENRICHD__DNS__ENABLED", "false")
        .env_remove("ENRICHD_API_KEY")
        .env(
            "ENRICHD__SOURCES__CATALOG",
            concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/tests/fixtures/disabled-catalog"
            ),
        )
        .env_remove("RUST_LOG");
    command
}

fn json(out: &Output) -> serde_json::Value {
    assert!(
        out.status.success(),
        "stderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("stdout is JSON")
}

#[test]
fn enrich_in_process_prints_the_answer_as_json() {
    let out = enrichd(&[
        "enrich",
        "--email",
        "Jane.Doe@GoogleMail.com",
        "--purpose",
        "marketing",
        "--basis",
        "legitimate_interests",
        "--lia-ref",
        "LIA-1",
    ]);
    let v = json(&out);
    // A command that ends normally logs no error (the ledger writer's stop
    // with the runtime is no fault).
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("ERROR"), "{stderr}");
    assert_eq!(v["identifier"]["email"]["canonical"], "janedoe@gmail.com");
    assert_eq!(v["verification"]["email"]["freeProvider"], true);
    assert_eq!(v["verification"]["email"]["mx"]["status"], "STATUS_SKIPPED");
    assert_eq!(
        v["compliance"]["lawfulBasis"],
        "LAWFUL_BASIS_LEGITIMATE_INTERESTS"
    );
    assert_eq!(
        v["compliance"]["evidence"]["legitimateInterestAssessmentRef"],
        "LIA-1"
    );
    assert_eq!(v["summary"]["identifierValid"], true);

    // --view summary: the summary and compliance, no verification details.
    let out = enrichd(&[
        "enrich",
        "--email",
        "Jane.Doe@GoogleMail.com",
        "--purpose",
        "marketing",
        "--basis",
        "legitimate_interests",
        "--lia-ref",
        "LIA-1",
        "--view",
        "summary",
    ]);
    let v = json(&out);
    assert!(v["verification"].is_null(), "{v}");
    assert_eq!(v["summary"]["identifierValid"], true);
    assert_eq!(
        v["compliance"]["lawfulBasis"],
        "LAWFUL_BASIS_LEGITIMATE_INTERESTS"
    );
}

#[test]
fn bad_input_exits_2_and_names_the_field() {
    let out = enrichd(&[
        "enrich",
        "--phone",
        "07400 123456",
        "--purpose",
        "fraud_prevention",
        "--basis",
        "contract",
    ]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("INVALID_ARGUMENT"), "{err}");
    assert!(err.contains("  --phone:"), "the flag, not the field: {err}");
    assert!(out.stdout.is_empty());

    let out = enrichd(&[
        "enrich",
        "--email",
        "a@b.co",
        "--purpose",
        "marketing",
        "--basis",
        "consent",
    ]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("FAILED_PRECONDITION") && err.contains("  --consent-ref: consent needs"),
        "the flag, not the field: {err}"
    );

    let out = enrichd(&[
        "enrich",
        "--email",
        "a@b.co",
        "--purpose",
        "marketting",
        "--basis",
        "legitimate_interests",
    ]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("  --purpose: purpose \"marketting\" is not declared"),
        "{err}"
    );
    assert!(err.contains("  --lia-ref: "), "{err}");
}

#[test]
fn access_pages_are_asked_for_with_flags_that_are_checked() {
    let out = enrichd(&["access", "--email", "a@b.co", "--page-size", "10001"]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("--page-size"), "{err}");
    let out = enrichd(&["access", "--email", "a@b.co", "--page-token", "next"]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("--page-token") && err.contains("not a nextPageToken"),
        "{err}"
    );
    let out = enrichd(&["access", "--email", "a@b.co", "--page-size", "2"]);
    let answer: serde_json::Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stderr)));
    assert_eq!(answer["ledgerTotal"], "0", "{answer}");
}

#[test]
fn bad_config_reports_every_problem() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.toml");
    std::fs::write(
        &path,
        "[server]\nmax_concurrent_requests = 0\n[dns]\ntimeout = \"0s\"\n",
    )
    .unwrap();
    let out = enrichd(&["purposes", "--config", path.to_str().unwrap()]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("server.max_concurrent_requests") && err.contains("dns.timeout"),
        "{err}"
    );
}

#[test]
fn bad_state_paths_are_named_before_anything_is_created() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let file = tmp.path().join("file");
    std::fs::write(&file, "not a directory").expect("write");
    let data = tmp.path().join("state");
    let out = offline()
        .args([
            "enrich",
            "--email",
            "jane@example.com",
            "--purpose",
            "marketing",
        ])
        .args(["--basis", "legitimate_interests", "--lia-ref", "LIA-1"])
        .arg("--data-dir")
        .arg(&data)
        .env(
            "ENRICHD__LEDGER__URL",
            format!("sqlite://{}/ledger.db?mode=rwc", file.display()),
        )
        .env("ENRICHD__PRIVACY__HASH_KEY_FILE", file.join("hash.key"))
        .env_remove("ENRICHD__PRIVACY__HASH_KEY")
        .output()
        .expect("runs");
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    let blocked = format!("cannot be created: {} is not a directory", file.display());
    for needle in [
        format!("ledger.url: {}/ledger.db {blocked}", file.display()),
        format!(
            "privacy.hash_key_file: {}/hash.key {blocked}",
            file.display()
        ),
    ] {
        assert!(stderr.contains(&needle), "missing {needle:?} in:\n{stderr}");
    }
    assert!(!data.exists(), "the data directory was created");
}

#[test]
fn a_batch_on_slow_real_budgets_says_how_long_it_may_take() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let catalog = tmp.path().join("catalog");
    std::fs::create_dir(&catalog).unwrap();
    std::fs::write(
        catalog.join("slow.toml"),
        common::test_source(
            "slow",
            "email",
            "http://192.0.2.1/{input}",
            "limits = { rate_limit = { per_second = 0.01, burst = 1 } }",
        ),
    )
    .unwrap();
    let input = tmp.path().join("list.csv");
    std::fs::write(
        &input,
        "email\na@example.com\nb@example.com\nc@example.com\n",
    )
    .unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_enrichd"))
        .args([
            "batch",
            "--purpose",
            "marketing",
            "--basis",
            "legitimate_interests",
        ])
        .args(["--lia-ref", "LIA-1"])
        .arg("--input")
        .arg(&input)
        .arg("--output")
        .arg(tmp.path().join("out.jsonl"))
        .env("ENRICHD__DNS__ENABLED", "false")
        .env("ENRICHD__LEDGER__URL", "sqlite::memory:")
        .env("ENRICHD__PRIVACY__HASH_KEY", common::TEST_HASH_KEY)
        .env("ENRICHD__SOURCES__CATALOG", &catalog)
        .env("ENRICHD__BATCH__DEADLINE", "1s")
        .env_remove("RUST_LOG")
        .output()
        .expect("runs");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(
            "note: source \"slow\" allows 0.01 requests/s (burst 1): 3 rows may take up to 3m 20s"
        ),
        "{stderr}"
    );
}

#[test]
fn purposes_prints_the_register() {
    let out = enrichd(&["purposes"]);
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    for id in ["marketing", "fraud_prevention", "crm_enrichment"] {
        assert!(text.contains(id), "{text}");
    }
}

#[tokio::test]
async fn enrich_remote_calls_a_running_server() {
    let app = common::TestApp::spawn("[dns]\nenabled = false\n").await;
    let addr = app.addr.to_string();
    let out = tokio::task::spawn_blocking(move || {
        enrichd(&[
            "enrich",
            "--remote",
            &addr,
            "--phone",
            "+447400123456",
            "--purpose",
            "fraud_prevention",
            "--basis",
            "legitimate_interests",
            "--lia-ref",
            "LIA-9",
            "--request-id",
            "crm-7",
        ])
    })
    .await
    .unwrap();
    let v = json(&out);
    assert_eq!(v["requestId"], "crm-7");
    assert_eq!(v["identifier"]["phone"]["e164"], "+447400123456");
    assert_eq!(
        v["verification"]["phone"]["numberType"],
        "NUMBER_TYPE_MOBILE"
    );
}

#[tokio::test]
async fn health_subcommand_reports_serving() {
    let app = common::TestApp::spawn("[dns]\nenabled = false\n").await;
    let addr = app.addr.to_string();
    let out = tokio::task::spawn_blocking(move || enrichd(&["health", "--addr", &addr]))
        .await
        .unwrap();
    assert!(out.status.success());
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "SERVING");
}

#[tokio::test]
async fn keys_are_created_listed_used_and_revoked_from_the_command_line() {
    let app = common::TestApp::spawn("[dns]\nenabled = false\n[auth]\nrequired = true\n").await;
    let (url, addr) = (app.ledger_url.clone(), app.addr.to_string());
    let run = |args: Vec<String>| {
        let url = url.clone();
        tokio::task::spawn_blocking(move || {
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            enrichd_on(&url, &args)
        })
    };
    let args = |s: &str| s.split_whitespace().map(str::to_owned).collect::<Vec<_>>();

    let out = run(args("keys create --name crm --scopes enrich,sources --purposes fraud_prevention --quota 5/s --expires 90days")).await.unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    let secret = stdout.lines().last().unwrap().to_owned();
    assert!(
        secret.starts_with("ek_") && !secret.contains(' '),
        "{stdout}"
    );

    let listed = run(args("keys list")).await.unwrap();
    let listed = String::from_utf8_lossy(&listed.stdout).to_string();
    assert!(
        listed.contains("crm") && listed.contains("live") && listed.contains("5/s"),
        "{listed}"
    );
    assert!(
        !listed.contains(secret.rsplit('_').next().unwrap()),
        "keys list shows no secret"
    );

    let enrich = |key: Option<&str>| {
        let mut a = args(&format!(
            "enrich --remote {addr} --phone +447400123456 --purpose fraud_prevention \
             --basis legitimate_interests --lia-ref LIA-9"
        ));
        if let Some(key) = key {
            a.push("--api-key".into());
            a.push(key.into());
        }
        run(a)
    };
    let ok = enrich(Some(&secret)).await.unwrap();
    assert_eq!(json(&ok)["identifier"]["phone"]["e164"], "+447400123456");
    let anonymous = enrich(None).await.unwrap();
    assert!(!anonymous.status.success());
    assert!(String::from_utf8_lossy(&anonymous.stderr).contains("UNAUTHENTICATED"));

    let revoked = run(args("keys revoke crm")).await.unwrap();
    assert!(revoked.status.success());
    let after = enrich(Some(&secret)).await.unwrap();
    let err = String::from_utf8_lossy(&after.stderr).to_string();
    assert!(
        err.contains("UNAUTHENTICATED") && err.contains("revoked"),
        "{err}"
    );
    assert!(!err.contains(&secret), "errors never echo the secret");

    let bad = run(args("keys create --name x --scopes enrich,admin"))
        .await
        .unwrap();
    assert_eq!(bad.status.code(), Some(2), "clap names the bad scope");
    assert!(String::from_utf8_lossy(&bad.stderr).contains("admin"));
}

/// Runs `serve` as `command` says, which must refuse to start; its stderr.
async fn refused_start(command: &mut Command) -> String {
    let child = command
        .stderr(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut child = common::KillOnDrop(child);
    let status = common::eventually("serve refuses to start", || {
        let exited = child.0.try_wait().unwrap();
        async move { exited }
    })
    .await;
    let mut err = String::new();
    std::io::Read::read_to_string(child.0.stderr.as_mut().unwrap(), &mut err).unwrap();
    assert!(!status.success(), "{err}");
    err
}

#[tokio::test]
async fn serve_refuses_anonymous_callers_on_a_public_address() {
    let err = refused_start(
        Command::new(env!("CARGO_BIN_EXE_enrichd"))
            .args(["serve", "--listen", "0.0.0.0:0"])
            .env("ENRICHD__AUTH__REQUIRED", "false")
            .env("ENRICHD__LEDGER__URL", "sqlite::memory:")
            .env("ENRICHD__PRIVACY__HASH_KEY", common::TEST_HASH_KEY),
    )
    .await;
    assert!(
        err.contains("auth.required = false") && err.contains("loopback"),
        "{err}"
    );
}

/// A refused start leaves nothing behind: not the key file it would have
/// created for a data directory that had none, nor a ledger bound to that
/// key (the next start, with its own key, was refused: "the ledger was
/// written with another hash key"). Refused for anonymous callers on a
/// public address, and for an address taken, named with its setting.
#[tokio::test]
async fn a_refused_start_leaves_no_key_file_behind() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let taken = taken.local_addr().unwrap().to_string();
    let refusals = [
        (["--listen", "0.0.0.0:0"], "auth.required"),
        (["--listen", taken.as_str()], "server.listen, --listen"),
    ];
    for (listen, named) in refusals {
        let dir = tempfile::tempdir().unwrap();
        let err = refused_start(
            Command::new(env!("CARGO_BIN_EXE_enrichd"))
                .arg("serve")
                .args(listen)
                .arg("--data-dir")
                .arg(dir.path())
                .env("ENRICHD__AUTH__REQUIRED", "false")
                .env_remove("ENRICHD__PRIVACY__HASH_KEY"),
        )
        .await;
        assert!(err.contains(named), "{named}: {err}");
        let left: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|name| name.starts_with("hash"))
            .collect();
        assert!(left.is_empty(), "{named}: left behind: {left:?}");

        // The next run on the directory makes its own key and works.
        let next = offline()
            .args(["enrich", "--email", "ann@example.test"])
            .args([
                "--purpose",
                "fraud_prevention",
                "--basis",
                "legitimate_interests",
            ])
            .args(["--lia-ref", "LIA-1", "--data-dir"])
            .arg(dir.path())
            .env_remove("ENRICHD__PRIVACY__HASH_KEY")
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&next.stderr);
        assert!(next.status.success(), "{named}: the next run: {err}");
    }
}

#[test]
fn a_typo_of_a_well_known_domain_is_named_and_counts_as_risk() {
    let out = enrichd(&[
        "enrich",
        "--email",
        "jane.doe@exmaple.com",
        "--purpose",
        "fraud_prevention",
        "--basis",
        "legitimate_interests",
        "--lia-ref",
        "LIA-7",
    ]);
    let v = json(&out);
    let email = &v["verification"]["email"];
    assert_eq!(email["didYouMean"], "example.com", "{email}");
    assert_eq!(email["mixedScript"], false);
    let reasons = v["risk"]["reasons"].as_array().unwrap();
    assert!(
        reasons.iter().any(|r| r["code"] == "domain_typo"),
        "{reasons:?}"
    );

    // A trailing dot is refused, naming the flag.
    let out = enrichd(&[
        "enrich",
        "--email",
        "jane@example.com.",
        "--purpose",
        "fraud_prevention",
        "--basis",
        "legitimate_interests",
        "--lia-ref",
        "LIA-7",
    ]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("  --email: ") && err.contains("ends with a dot"),
        "{err}"
    );
}

/// A start that cannot reach its ledger says where it looked and why, once,
/// without the URL's password; a Redis that does not answer at start is a
/// WARN naming its address (and the server serves alone meanwhile).
#[tokio::test]
async fn start_up_names_the_database_and_redis_it_cannot_reach() {
    let refused = Command::new(env!("CARGO_BIN_EXE_enrichd"))
        .args(["serve", "--listen", "127.0.0.1:0"])
        .env(
            "ENRICHD__LEDGER__URL",
            "postgres://u:hunter22@127.0.0.1:1/crm",
        )
        .env("ENRICHD__PRIVACY__HASH_KEY", common::TEST_HASH_KEY)
        .env("ENRICHD__AUTH__REQUIRED", "false")
        .env_remove("RUST_LOG")
        .output()
        .unwrap();
    assert!(!refused.status.success());
    let said = String::from_utf8_lossy(&refused.stderr);
    assert!(
        said.contains("ledger.url: cannot reach the ledger database at 127.0.0.1:1/crm")
            && said.contains("refused"),
        "{said}"
    );
    assert_eq!(said.matches("refused").count(), 1, "said once: {said}");
    assert!(!said.contains("hunter22"), "{said}");

    let ledger = common::postgres_url().await;
    let server = common::serve(|cmd| {
        cmd.env("ENRICHD__LEDGER__URL", &ledger)
            .env(
                "ENRICHD__CLUSTER__REDIS_URL",
                "redis://:hunter22@127.0.0.1:1",
            )
            .env("ENRICHD__PRIVACY__HASH_KEY", common::TEST_HASH_KEY)
            .env("ENRICHD__AUTH__REQUIRED", "false")
            .env("ENRICHD__DNS__ENABLED", "false");
    });
    // Said at start, while it serves alone meanwhile.
    let wanted = "Redis does not answer at start";
    let warned = match server.start.iter().find(|l| l.contains(wanted)) {
        Some(line) => line.clone(),
        None => common::lines_until(&server.lines, wanted).pop().unwrap(),
    };
    assert!(
        warned.contains("WARN") && warned.contains("127.0.0.1:1") && !warned.contains("hunter22"),
        "{warned}"
    );
}

/// The sandbox honours `auth.required = true` when the operator sets it (to
/// rehearse key handling against it), and its logs, written to a pipe,
/// are plain text: no colour codes, addresses as `127.0.0.1:port`, and
/// where its state lives.
#[tokio::test]
async fn the_sandbox_requires_keys_when_asked_and_logs_plain_text() {
    let dir = tempfile::tempdir().unwrap();
    let free = || {
        std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
    };
    let (grpc, http) = (free(), free());
    let server = Command::new(env!("CARGO_BIN_EXE_enrichd"))
        .args(["serve", "--sandbox", "--listen", &grpc.to_string()])
        .args(["--http-listen", &http.to_string(), "--data-dir"])
        .arg(dir.path())
        .env("ENRICHD__AUTH__REQUIRED", "true")
        .env("ENRICHD__DNS__ENABLED", "false")
        .env_remove("RUST_LOG")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut server = common::KillOnDrop(server);
    let lines = common::stderr_lines(&mut server.0);
    let seen = common::lines_until(&lines, "serving JSON over HTTP");
    let text = seen.join("\n");
    assert!(!text.contains('\u{1b}'), "no colour codes: {text}");
    assert!(text.contains(&format!("addr={http}")), "{text}");
    assert!(!text.contains("Some("), "{text}");
    assert!(
        text.contains("state") && text.contains("data_dir="),
        "{text}"
    );

    let _ = rustls::crypto::ring::default_provider().install_default();
    let refused = reqwest::Client::new()
        .post(format!("http://{http}/v1/enrich"))
        .header("content-type", "application/json")
        .body(r#"{"email": "jane.doe@example.com", "purpose": "marketing"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status().as_u16(), 401);
}

/// `batch` writes JSONL and CSV: an output named otherwise is refused at
/// once, naming the flag (a `.xlsx` file holding JSONL misleads whoever
/// opens it).
#[test]
fn batch_refuses_output_files_it_would_not_write_as_named() {
    for (flag, file) in [("--output", "typo.xlsx"), ("--csv", "table.xlsx")] {
        let mut args = vec![
            "batch",
            "--input",
            "list.csv",
            "--purpose",
            "marketing",
            "--basis",
            "legitimate_interests",
        ];
        if flag == "--csv" {
            args.extend(["--output", "out.jsonl"]);
        }
        args.extend([flag, file]);
        let out = Command::new(env!("CARGO_BIN_EXE_enrichd"))
            .args(&args)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "{flag}");
        let said = String::from_utf8_lossy(&out.stderr);
        assert!(said.contains(flag) && said.contains(file), "{said}");
    }
}

/// A running server has turned transparent huge pages off for itself (on a
/// kernel set to `always` they cost it about 16 MB after start), unless
/// `MIMALLOC_ALLOW_THP=1` asks to keep the kernel's setting.
#[test]
fn a_server_runs_on_small_pages_unless_told_otherwise() {
    let thp_of = |allow: Option<&str>| {
        let tmp = tempfile::tempdir().unwrap();
        let server = common::serve(|cmd| {
            cmd.args(["--sandbox", "--data-dir"])
                .arg(tmp.path())
                .env_remove("MIMALLOC_ALLOW_THP");
            if let Some(allow) = allow {
                cmd.env("MIMALLOC_ALLOW_THP", allow);
            }
        });
        let pid = server.child.0.id();
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
        status
            .lines()
            .find_map(|l| l.strip_prefix("THP_enabled:"))
            .expect("the kernel reports THP_enabled")
            .trim()
            .to_owned()
    };
    assert_eq!(thp_of(None), "0");
    assert_eq!(thp_of(Some("1")), "1");
}
