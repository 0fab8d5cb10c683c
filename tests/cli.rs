//! The `enrichd` binary as an operator runs it.
mod common;

use std::process::{Command, Output};

fn enrichd(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_enrichd"))
        .args(args)
        .env("ENRICHD__DNS__ENABLED", "false")
        .env("ENRICHD__LEDGER__URL", "sqlite::memory:")
        .env(
            "ENRICHD__PRIVACY__HASH_KEY",
            "a-test-key-of-at-least-thirty-two-characters",
        )
        // No real source is ever asked from a test.
        .env(
            "ENRICHD__SOURCES__CATALOG",
            concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/empty-catalog"),
        )
        .env_remove("RUST_LOG")
        .output()
        .expect("runs")
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
    assert!(err.contains("field phone:"), "{err}");
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
        err.contains("FAILED_PRECONDITION") && err.contains("evidence.consent_ref"),
        "{err}"
    );
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
