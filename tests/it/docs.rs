//! The documentation's examples work as written: every block marked
//! `<!-- runnable: name -->` in README.md and docs/ is run by bash against a
//! sandbox server (gRPC and HTTP), with this build's `enrichd` on `PATH`, and
//! what it printed is checked.

use std::collections::BTreeSet;

use crate::common;

/// What each block must print; a runnable block without an entry here fails
/// the test, so a new example gets its check.
fn check(name: &str, out: &str) {
    match name {
        "http-example" => {
            let docs = common::json_documents(out);
            assert_eq!(docs.len(), 3, "{docs:?}");
            assert_eq!(docs[0]["requestId"], "crm-42");
            let profiles = docs[0]["profiles"].as_array().unwrap();
            assert!(profiles.len() >= 5, "{}", docs[0]);
            assert!(!docs[1]["sources"].as_array().unwrap().is_empty());
            assert_eq!(docs[2]["status"], "SERVING");
        }
        "batch-example" => {
            let docs = common::json_documents(out);
            assert_eq!(docs.len(), 3, "{docs:?}");
            assert_eq!(docs[0]["state"], "DONE");
            assert_eq!(docs[0]["summary"]["enriched"], 1, "{}", docs[0]);
            assert_eq!(docs[0]["summary"]["notFound"], 1, "{}", docs[0]);
            assert_eq!(docs[1]["input"]["customer_id"], "c1");
            assert!(docs[1]["answer"]["summary"]["displayName"]["value"].is_string());
            assert_eq!(docs[2]["row"], 2);
        }
        "feedback-example" => {
            let docs = common::json_documents(out);
            assert_eq!(docs.len(), 2, "{docs:?}");
            assert_eq!(docs[0]["heldOut"], true, "{}", docs[0]);
            let held = docs[1].as_array().unwrap();
            assert!(
                held.iter()
                    .any(|m| m[0] == "sb-homepage" && m[1] == "DOUBT_REFUTED"),
                "{}",
                docs[1]
            );
        }
        "cli-sandbox" => {
            let (json, purposes) = out.split_at(out.rfind("}\n").expect("a JSON answer") + 2);
            let answer = &common::json_documents(json)[0];
            assert!(
                answer["summary"]["profilesFound"].as_u64() >= Some(5),
                "{answer}"
            );
            assert!(answer["summary"]["displayName"]["value"].is_string());
            assert!(purposes.contains("marketing") && purposes.contains("LAWFUL BASES"));
        }
        "cli-in-process" => {
            let docs = common::json_documents(&out[..out.rfind("}\n").unwrap() + 2]);
            assert_eq!(docs.len(), 2, "{out}");
            assert!(docs[0]["summary"]["profilesFound"].as_u64() >= Some(5));
            assert_eq!(docs[1]["identifier"]["phone"]["e164"], "+447700900123");
            assert!(out.contains("sources,") && out.contains("enabled"), "{out}");
        }
        other => panic!("runnable block {other} has no check in tests/it/docs.rs"),
    }
}

/// The blocks checked below, one test each (they run side by side).
const CHECKED: [&str; 5] = [
    "http-example",
    "feedback-example",
    "batch-example",
    "cli-sandbox",
    "cli-in-process",
];

#[test]
fn every_runnable_block_is_checked_and_named_once() {
    let blocks = common::runnable_blocks();
    let names: BTreeSet<_> = blocks.iter().map(|(_, n, _)| n.as_str()).collect();
    assert_eq!(
        names.len(),
        blocks.len(),
        "block names are unique: {blocks:?}"
    );
    assert_eq!(
        names,
        BTreeSet::from(CHECKED),
        "each runnable block has its test here"
    );
}

/// Runs the blocks against one sandbox server (gRPC and HTTP), each in a
/// directory of its own, and checks what each printed.
async fn run_and_check(names: &[&str]) {
    let (app, _sandbox) =
        common::sandbox_app_with("[server]\nhttp_listen = \"127.0.0.1:0\"\n").await;
    let base = format!("http://{}", app.http_addr.unwrap());
    for name in names {
        let dir = tempfile::tempdir().unwrap();
        let out = common::run_doc_block(name, base.clone(), dir.path()).await;
        check(name, &out);
    }
}

#[tokio::test]
async fn the_readme_curl_examples_work_as_written() {
    run_and_check(&["http-example"]).await;
}

#[tokio::test]
async fn the_feedback_example_works_as_written() {
    run_and_check(&["feedback-example"]).await;
}

#[tokio::test]
async fn the_batch_job_example_works_as_written() {
    run_and_check(&["batch-example"]).await;
}

#[tokio::test]
async fn the_command_line_examples_work_as_written() {
    run_and_check(&["cli-sandbox", "cli-in-process"]).await;
}
