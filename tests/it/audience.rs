//! Audience reports of batch jobs, on the sandbox crowd: the segments find
//! the planted archetypes, no cell counts fewer than k people, no Art. 9
//! interest and no identifier of the list is in the report; per-person
//! segments are kept with the rows (Access shows them, erasure removes
//! them); a purpose without audience analytics is refused.
use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::Value;

use crate::common::{self, TestApp};

/// The crowd people the test enriches.
const PEOPLE: usize = 1_000;

/// The sandbox catalog for a crowd: without the sites that are slow, busy
/// or flaky by design, at rate limits a loopback site can take.
fn crowd_catalog(sandbox: &enrichd::sandbox::Sandbox) -> enrichd::catalog::Catalog {
    let text = sandbox.catalog_text();
    let blocks: Vec<&str> = text
        .split("\n[[source]]")
        .filter(|b| {
            !["sb-slow", "sb-busy", "sb-flaky"]
                .iter()
                .any(|id| b.contains(&format!("id = \"{id}\"")))
        })
        .collect();
    let text = blocks
        .join("\n[[source]]")
        .replace(
            "per_second = 10, burst = 10",
            "per_second = 5000, burst = 5000",
        )
        .replace(
            "per_second = 20, burst = 20",
            "per_second = 5000, burst = 5000",
        );
    common::catalog_from(&text)
}

struct Api {
    http: reqwest::Client,
    base: String,
}

impl Api {
    async fn get(&self, path: &str) -> (u16, String) {
        let r = self
            .http
            .get(format!("{}{path}", self.base))
            .send()
            .await
            .unwrap();
        (r.status().as_u16(), r.text().await.unwrap())
    }

    /// Submits `csv` for `purpose` and waits for the job to end.
    async fn job(&self, csv: String, purpose: &str) -> String {
        let basis = "lawfulBasis=LAWFUL_BASIS_LEGITIMATE_INTERESTS&evidence.legitimateInterestAssessmentRef=LIA-1";
        let submitted = self
            .http
            .post(format!(
                "{}/v1/batches?purpose={purpose}&{basis}&options.view=VIEW_STANDARD",
                self.base
            ))
            .header("content-type", "text/csv")
            .body(csv)
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        let submitted: Value = serde_json::from_str(&submitted).unwrap();
        let id = submitted["id"]
            .as_str()
            .unwrap_or_else(|| panic!("{submitted}"))
            .to_owned();
        let started = std::time::Instant::now();
        loop {
            let (_, view) = self.get(&format!("/v1/batches/{id}")).await;
            let view: Value = serde_json::from_str(&view).unwrap();
            if view["state"] == "DONE" {
                return id;
            }
            assert!(started.elapsed() < Duration::from_secs(300), "{view}");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}

/// The adjusted Rand index of two labelings (Hubert and Arabie).
fn adjusted_rand(a: &[String], b: &[String]) -> f64 {
    let pairs = |n: f64| n * (n - 1.0) / 2.0;
    let mut table: BTreeMap<(&str, &str), f64> = BTreeMap::new();
    let (mut rows, mut cols): (BTreeMap<&str, f64>, BTreeMap<&str, f64>) = Default::default();
    for (x, y) in a.iter().zip(b) {
        *table.entry((x, y)).or_default() += 1.0;
        *rows.entry(x).or_default() += 1.0;
        *cols.entry(y).or_default() += 1.0;
    }
    let index: f64 = table.values().map(|&n| pairs(n)).sum();
    let (sum_a, sum_b): (f64, f64) = (
        rows.values().map(|&n| pairs(n)).sum(),
        cols.values().map(|&n| pairs(n)).sum(),
    );
    let expected = sum_a * sum_b / pairs(a.len() as f64);
    (index - expected) / ((sum_a + sum_b) / 2.0 - expected)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_crowd_s_segments_are_its_archetypes_and_the_report_names_no_one() {
    let sandbox = enrichd::sandbox::Sandbox::start().await.unwrap();
    let config = format!(
        "[server]\nhttp_listen = \"127.0.0.1:0\"\n[dns]\nnameservers = [\"{}\"]\n[batch]\nmax_in_flight = 64\n\
         [audience]\nepsilon = 1.0\n",
        sandbox.dns_addr()
    );
    let app = TestApp::with_catalog(&config, crowd_catalog(&sandbox)).await;
    let api = Api {
        http: reqwest::Client::new(),
        base: format!("http://{}", app.http_addr.unwrap()),
    };
    let csv = enrichd::sandbox::crowd::csv(PEOPLE);
    let started = std::time::Instant::now();
    let id = api.job(csv.clone(), "marketing").await;
    println!("{PEOPLE} crowd people enriched in {:?}", started.elapsed());

    let (status, text) = api.get(&format!("/v1/batches/{id}/audience")).await;
    assert_eq!(status, 200, "{text}");
    let report: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(report["noise"]["epsilon"], 1.0, "{text}");
    // Asked again, the same noise: fresh noise on every asking could be
    // averaged away.
    let (_, again) = api.get(&format!("/v1/batches/{id}/audience")).await;
    let mut again: Value = serde_json::from_str(&again).unwrap();
    again["generatedAt"] = report["generatedAt"].clone();
    assert_eq!(again, report, "the same report on every asking");
    // No identifier of the list, no name.
    for line in csv.lines().skip(1) {
        let mut cols = line.split(',');
        let (email, name) = (cols.next().unwrap(), cols.next().unwrap());
        assert!(!text.contains(email), "{email} is in the report");
        assert!(!text.contains(name), "{name} is in the report");
    }
    // Every shown cell counts k or more; no Art. 9 interest.
    let k = report["k"].as_u64().unwrap();
    assert_eq!(k, 10);
    let mut cells = 0;
    let tables = [
        "outcomes",
        "platforms",
        "footprint",
        "risk",
        "channels",
        "accountAge",
    ]
    .iter()
    .map(|t| &report[*t])
    .chain(report["interests"].as_array().unwrap());
    for table in tables {
        for cell in table["cells"].as_array().unwrap() {
            cells += 1;
            assert!(cell["people"].as_u64().unwrap() >= k, "{cell}");
            let key = cell["key"].as_str().unwrap();
            assert!(!app.enricher.is_special_interest(key), "Art. 9: {cell}");
        }
    }
    assert!(cells > 20, "{report}");
    assert!(
        !text.contains("Medical") && !text.contains("diabetes"),
        "{text}"
    );
    let segments = report["segments"]["shown"].as_array().unwrap();
    assert!(segments.iter().all(|s| s["people"].as_u64().unwrap() >= k));
    println!(
        "segments: {}",
        segments
            .iter()
            .map(|s| format!("{} ({})", s["label"], s["people"]))
            .collect::<Vec<_>>()
            .join("; ")
    );

    // Each person's segment against the archetype they were drawn from.
    let (status, members) = api.get(&format!("/v1/batches/{id}/audience/members")).await;
    assert_eq!(status, 200, "{members}");
    let planted: Vec<String> = csv
        .lines()
        .skip(1)
        .map(|l| l.rsplit(',').next().unwrap().to_owned())
        .collect();
    let (mut found, mut assigned) = (Vec::new(), Vec::new());
    for line in common::json_documents(&members) {
        let row = line["row"].as_u64().unwrap() as usize;
        if let Some(segment) = line["segment"].as_u64() {
            found.push(planted[row - 1].clone());
            assigned.push(segment.to_string());
        }
    }
    assert!(
        found.len() >= PEOPLE * 9 / 10,
        "{} of {PEOPLE} in a segment",
        found.len()
    );
    let ari = adjusted_rand(&found, &assigned);
    println!("adjusted Rand index {ari:.3} over {} people", found.len());
    assert!(ari >= 0.8, "adjusted Rand index {ari:.3}");

    // The segment is kept with the row: Access shows it; erasure removes it.
    let person = enrichd::sandbox::crowd::person(3);
    let access = serde_json::json!({"email": person.email(), "reference": "DSR-9"});
    let held = api
        .http
        .post(format!("{}/v1/access", api.base))
        .header("content-type", "application/json")
        .body(access.to_string())
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let held: Value = serde_json::from_str(&held).unwrap();
    let row = &held["batchRows"][0];
    assert!(
        !row["segment"].as_str().unwrap_or_default().is_empty(),
        "{held}"
    );
    let erase = serde_json::json!({"email": person.email(), "reference": "DSR-10"});
    api.http
        .post(format!("{}/v1/erase", api.base))
        .header("content-type", "application/json")
        .body(erase.to_string())
        .send()
        .await
        .unwrap();
    let (_, after) = api.get(&format!("/v1/batches/{id}/audience/members")).await;
    let erased_row = common::json_documents(&after)
        .into_iter()
        .find(|l| l["row"] == 4);
    assert!(
        erased_row.is_none(),
        "the erased person's row has no segment: {erased_row:?}"
    );

    // A purpose without audience analytics: refused, naming it.
    let small = enrichd::sandbox::crowd::csv(3);
    let crm = api.job(small, "crm_enrichment").await;
    let (status, refused) = api.get(&format!("/v1/batches/{crm}/audience")).await;
    assert_eq!(status, 400, "{refused}");
    assert!(
        refused.contains("FAILED_PRECONDITION") && refused.contains("crm_enrichment"),
        "{refused}"
    );
}

#[test]
fn batch_audience_on_the_command_line_needs_a_purpose_that_declares_it() {
    let dir = tempfile::tempdir().unwrap();
    let list = dir.path().join("list.csv");
    std::fs::write(&list, enrichd::sandbox::crowd::csv(2)).unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_enrichd"))
        .args(["batch", "--sandbox", "--input"])
        .arg(&list)
        .arg("--output")
        .arg(dir.path().join("out.jsonl"))
        .arg("--audience")
        .arg(dir.path().join("audience.json"))
        .args([
            "--purpose",
            "crm_enrichment",
            "--basis",
            "contract",
            "--contract-ref",
            "C-1",
        ])
        .env("HOME", dir.path())
        .env("ENRICHD__STORAGE__DATA_DIR", dir.path().join("data"))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("--audience") && stderr.contains("crm_enrichment"),
        "{stderr}"
    );
    assert!(!dir.path().join("out.jsonl").exists(), "nothing was run");
}
