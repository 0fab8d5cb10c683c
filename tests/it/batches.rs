//! Batch jobs over HTTP (`POST /v1/batches`), with a real HTTP client
//! against running servers: a job survives a restart with every row
//! answered once, its webhook is signed and retried, only its owner sees
//! it, a refused claim stores nothing, and an erasure reaches its rows.
use crate::common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use common::{TestApp, one_source};
use enrichd::auth::Scope;
use enrichd::auth::keys::NewKey;
use enrichd::privacy::KeyedHasher;
use serde_json::Value;
use wiremock::ResponseTemplate;

const HTTP: &str = "[dns]\nenabled = false\n[server]\nhttp_listen = \"127.0.0.1:0\"\n";
/// The test source's budget: rate limits are not what these tests are about.
const FAST: &str = "limits = { rate_limit = { per_second = 500.0, burst = 50 } }";
const CLAIM: &str = "purpose=marketing&lawfulBasis=LAWFUL_BASIS_LEGITIMATE_INTERESTS\
    &evidence.legitimateInterestAssessmentRef=LIA-1&options.view=VIEW_SUMMARY";

/// An email source under a budget these tests never reach that finds no
/// one (404).
async fn nobody_source() -> (wiremock::MockServer, enrichd::catalog::Catalog) {
    one_source(
        "email",
        FAST,
        ResponseTemplate::new(404).set_body_string("{}"),
    )
    .await
}

fn base(app: &TestApp) -> String {
    format!("http://{}", app.http_addr.expect("HTTP is served"))
}

fn list(n: usize) -> String {
    let mut csv = "customer_id,email\n".to_owned();
    for i in 1..=n {
        csv.push_str(&format!("c{i},person{i}@example.com\n"));
    }
    csv
}

async fn submit(app: &TestApp, query: &str, csv: &str, key: Option<&str>) -> (u16, Value) {
    let mut request = reqwest::Client::new()
        .post(format!("{}/v1/batches?{query}", base(app)))
        .header("content-type", "text/csv")
        .body(csv.to_owned());
    if let Some(key) = key {
        request = request.bearer_auth(key);
    }
    let answer = request.send().await.expect("answers");
    let status = answer.status().as_u16();
    (status, json_of(answer).await)
}

/// A new key's secret.
async fn new_key(app: &TestApp, name: &str, scopes: &[Scope], quota: Option<f64>) -> String {
    app.keys()
        .await
        .create(NewKey {
            name: name.into(),
            scopes: scopes.iter().copied().collect(),
            purposes: Default::default(),
            quota_per_second: quota,
            expires_in: None,
        })
        .await
        .expect("created")
        .secret
}

async fn json_of(answer: reqwest::Response) -> Value {
    serde_json::from_slice(&answer.bytes().await.expect("a body")).expect("JSON")
}

async fn get(app: &TestApp, path: &str, key: Option<&str>) -> reqwest::Response {
    call(app, reqwest::Method::GET, path, key).await
}

/// `method path` on the app's HTTP port, with `key` if given.
async fn call(
    app: &TestApp,
    method: reqwest::Method,
    path: &str,
    key: Option<&str>,
) -> reqwest::Response {
    let mut request = reqwest::Client::new().request(method, format!("{}{path}", base(app)));
    if let Some(key) = key {
        request = request.bearer_auth(key);
    }
    request.send().await.expect("answers")
}

async fn status(app: &TestApp, id: &str) -> Value {
    json_of(get(app, &format!("/v1/batches/{id}"), None).await).await
}

/// Polls the job until `done` says so (the job runs on its own; there is no
/// clock to inject into someone else's progress).
async fn wait_for(app: &TestApp, id: &str, done: impl Fn(&Value) -> bool) -> Value {
    wait_for_as(app, id, None, done).await
}

/// `wait_for`, asking with `key`.
async fn wait_for_as(
    app: &TestApp,
    id: &str,
    key: Option<&str>,
    done: impl Fn(&Value) -> bool,
) -> Value {
    common::eventually("the job got there", || async {
        let view = json_of(get(app, &format!("/v1/batches/{id}"), key).await).await;
        done(&view).then_some(view)
    })
    .await
}

async fn results(app: &TestApp, id: &str) -> Vec<Value> {
    results_of(app, &format!("/v1/batches/{id}/results")).await
}

/// The NDJSON results at `path` (with its query).
async fn results_of(app: &TestApp, path: &str) -> Vec<Value> {
    let answer = get(app, path, None).await;
    assert_eq!(
        answer.headers()["content-type"].to_str().unwrap(),
        "application/x-ndjson"
    );
    answer
        .text()
        .await
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).expect("a JSON line"))
        .collect()
}

#[tokio::test]
async fn a_job_survives_a_restart_with_every_row_answered_once() {
    survives_a_restart(None).await;
}

#[tokio::test]
async fn a_job_survives_a_restart_on_postgresql() {
    survives_a_restart(Some(common::postgres_url().await)).await;
}

/// Two servers in turn on one ledger database (SQLite in the first's
/// directory, or `database`).
async fn survives_a_restart(database: Option<String>) {
    // A slow source, so the server stops with rows done, in flight and left.
    let (_site, catalog) = one_source(
        "email",
        FAST,
        ResponseTemplate::new(200)
            .set_body_string(r#"{"user": {"name": "Someone"}}"#)
            .set_delay(Duration::from_millis(150)),
    )
    .await;
    let mut config = format!("{HTTP}[batch]\nmax_in_flight = 2\n");
    if let Some(url) = &database {
        config.push_str(&format!("[ledger]\nurl = \"{url}\"\n"));
    }
    let mut first = TestApp::with_catalog(&config, catalog.clone()).await;
    let (code, job) = submit(&first, CLAIM, &list(24), None).await;
    assert_eq!(code, 202, "{job}");
    let id = job["id"].as_str().expect("an id").to_owned();
    assert_eq!(job["state"], "RUNNING");
    assert_eq!(job["rowsTotal"], 24);

    wait_for(&first, &id, |v| v["rowsDone"].as_i64() >= Some(4)).await;
    first.stop();
    first.handle.await.expect("joins").expect("stops cleanly");
    let ledger_url = first.ledger_url.clone();
    let halfway = enrichd::ledger::Ledger::open(&ledger_url)
        .await
        .expect("opens")
        .job_counts(&id)
        .await
        .expect("counts");
    let pending = halfway
        .iter()
        .find(|(o, _)| o == "pending")
        .map_or(0, |(_, n)| *n);
    assert!(pending > 0 && pending < 24, "stopped halfway: {halfway:?}");

    // Another server on the same database goes on with the rest.
    if database.is_none() {
        config.push_str(&format!("[ledger]\nurl = \"{ledger_url}\"\n"));
    }
    let second = TestApp::with_catalog(&config, catalog).await;
    let done = wait_for(&second, &id, |v| v["state"] == "DONE").await;
    assert_eq!(done["rowsDone"], 24, "{done}");
    assert_eq!(done["summary"]["enriched"], 24, "{done}");

    let lines = results(&second, &id).await;
    let rows: Vec<i64> = lines.iter().map(|l| l["row"].as_i64().unwrap()).collect();
    assert_eq!(
        rows,
        (1..=24).collect::<Vec<_>>(),
        "every row once, in order"
    );
    assert_eq!(lines[6]["input"]["customer_id"], "c7");
    assert_eq!(
        lines[6]["answer"]["summary"]["displayName"]["value"], "Someone",
        "{}",
        lines[6]
    );
    // Each person was processed once: one record each in the ledger.
    let hasher = KeyedHasher::new(common::TEST_HASH_KEY);
    let ledger = second.enricher.ledger();
    for i in 1..=24 {
        let records = ledger
            .records(&hasher.hash(&format!("email:person{i}@example.com")))
            .await
            .expect("records");
        assert_eq!(records.len(), 1, "person{i}: {records:?}");
    }
}

#[tokio::test]
async fn the_webhook_is_signed_and_retried_until_it_is_taken() {
    let (_site, catalog) = nobody_source().await;
    let receiver = wiremock::MockServer::start().await;
    let calls = common::Arrivals::answering(ResponseTemplate::new(200));
    wiremock::Mock::given(wiremock::matchers::method("POST"))
        .respond_with(ResponseTemplate::new(500))
        .up_to_n_times(1)
        .mount(&receiver)
        .await;
    wiremock::Mock::given(wiremock::matchers::method("POST"))
        .respond_with(calls.clone())
        .mount(&receiver)
        .await;
    let config = format!(
        "{HTTP}[batch]\nwebhook_private_origins = [\"{}\"]\n",
        receiver.uri()
    );
    let app = TestApp::with_catalog(&config, catalog).await;
    let hook = format!("{}/hooks/enrichd", receiver.uri());
    let query = format!(
        "{CLAIM}&webhookUrl={}",
        url::form_urlencoded::byte_serialize(hook.as_bytes()).collect::<String>()
    );
    let (code, job) = submit(&app, &query, &list(3), None).await;
    assert_eq!(code, 202, "{job}");
    let id = job["id"].as_str().unwrap().to_owned();
    let secret = job["webhookSecret"].as_str().expect("a secret").to_owned();
    let view = wait_for(&app, &id, |v| v["webhook"] == "DELIVERED").await;
    assert_eq!(view["state"], "DONE");

    let received = receiver.received_requests().await.expect("recorded");
    assert_eq!(received.len(), 2, "one refusal, one retry");
    for request in &received {
        let header = |name: &str| request.headers[name].to_str().unwrap().to_owned();
        let timestamp = header("enrichd-timestamp");
        let body = String::from_utf8(request.body.clone()).unwrap();
        assert_eq!(
            header("enrichd-signature"),
            format!(
                "v1={}",
                enrichd::batch::jobs::sign(&secret, &timestamp, &body)
            )
        );
        // Verified as a receiver would, with its own HMAC.
        use hmac::Mac;
        let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes()).unwrap();
        mac.update(format!("{timestamp}.{body}").as_bytes());
        let expected = hex::encode(mac.finalize().into_bytes());
        assert_eq!(header("enrichd-signature"), format!("v1={expected}"));
        let sent: Value = serde_json::from_str(&body).unwrap();
        assert_eq!(sent["id"], id.as_str());
        assert_eq!(sent["summary"]["notFound"], 3);
    }
    assert_eq!(calls.len(), 1);
}

#[tokio::test]
async fn only_the_owner_sees_a_job_and_a_refused_claim_stores_nothing() {
    let (_site, catalog) = nobody_source().await;
    let app = TestApp::with_catalog(&format!("{HTTP}[auth]\nrequired = true\n"), catalog).await;
    let key = |name: &'static str, scopes: &'static [Scope]| new_key(&app, name, scopes, None);
    let owner = key("crm", &[Scope::Stream]).await;
    let other = key("other", &[Scope::Stream]).await;
    let narrow = key("narrow", &[Scope::Enrich]).await;

    let (code, refused) = submit(&app, CLAIM, &list(2), None).await;
    assert_eq!(code, 401, "{refused}");
    let (code, refused) = submit(&app, CLAIM, &list(2), Some(&narrow)).await;
    assert_eq!(code, 403, "{refused}");
    assert!(
        refused["error"]["message"]
            .as_str()
            .unwrap()
            .contains("stream")
    );

    // A purpose with a typo refuses the job before any row: 400, the
    // precondition named, nothing stored.
    let (code, refused) = submit(
        &app,
        &CLAIM.replace("purpose=marketing", "purpose=marketting"),
        &list(2),
        Some(&owner),
    )
    .await;
    assert_eq!(code, 400, "{refused}");
    assert_eq!(refused["error"]["status"], "FAILED_PRECONDITION");
    let ledger = app.enricher.ledger();
    assert!(ledger.unfinished_jobs().await.unwrap().is_empty());
    // A list with no identifier column names the body and the parameters.
    let (code, refused) = submit(&app, CLAIM, "id,city\n1,Paris\n", Some(&owner)).await;
    assert_eq!(code, 400, "{refused}");
    let message = refused["error"]["message"].as_str().unwrap();
    assert!(
        message.starts_with("body: no email or phone column"),
        "{message}"
    );
    assert!(message.contains("emailColumn"), "{message}");
    // A list sent as something else is refused by its type.
    let answer = reqwest::Client::new()
        .post(format!("{}/v1/batches?{CLAIM}", base(&app)))
        .bearer_auth(&owner)
        .header("content-type", "application/pdf")
        .body("%PDF")
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status().as_u16(), 415);

    let (code, job) = submit(&app, CLAIM, &list(2), Some(&owner)).await;
    assert_eq!(code, 202, "{job}");
    let id = job["id"].as_str().unwrap();
    let path = format!("/v1/batches/{id}");
    assert_eq!(get(&app, &path, Some(&owner)).await.status().as_u16(), 200);
    for stranger in [&other, &narrow] {
        let answer = get(&app, &path, Some(stranger)).await;
        assert!(
            matches!(answer.status().as_u16(), 403 | 404),
            "{}",
            answer.status()
        );
        let answer = get(&app, &format!("{path}/results"), Some(stranger)).await;
        assert!(matches!(answer.status().as_u16(), 403 | 404));
    }
    assert_eq!(get(&app, &path, Some(&other)).await.status().as_u16(), 404);
    // Without a key, nothing about a job: not even whether it exists.
    assert_eq!(get(&app, &path, None).await.status().as_u16(), 401);
    assert_eq!(
        get(&app, &format!("{path}/results"), None)
            .await
            .status()
            .as_u16(),
        401
    );

    // What a client sends is bounded before it is stored or echoed.
    let long = format!("https://hooks.example/{}", "a".repeat(3000));
    let (code, refused) = submit(
        &app,
        &format!("{CLAIM}&webhookUrl={long}"),
        &list(1),
        Some(&owner),
    )
    .await;
    assert_eq!(code, 400, "{refused}");
    assert!(
        refused["error"]["message"]
            .as_str()
            .unwrap()
            .starts_with("webhookUrl: is longer than 2048")
    );
    // A webhook that could never be delivered is refused at once, not
    // after its retries: a link-local (cloud metadata) or loopback address
    // not listed in batch.webhook_private_origins.
    for hook in ["http://169.254.169.254/latest", "http://localhost:9/hook"] {
        let query = format!("{CLAIM}&webhookUrl={hook}");
        let (code, refused) = submit(&app, &query, &list(1), Some(&owner)).await;
        assert_eq!(code, 400, "{refused}");
        let message = refused["error"]["message"].as_str().unwrap();
        assert!(
            message.starts_with("webhookUrl: ")
                && message.contains("is a private, loopback or link-local address"),
            "{message}"
        );
    }
    let wide: Vec<String> = (0..500)
        .map(|i| format!("col{i}{}", "x".repeat(100)))
        .collect();
    let (code, refused) = submit(
        &app,
        CLAIM,
        &format!("{}\n1\n", wide.join(",")),
        Some(&owner),
    )
    .await;
    assert_eq!(code, 400);
    let message = refused["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("... 480 more") && message.len() < 2_000,
        "{} chars",
        message.len()
    );
}

#[tokio::test]
async fn an_erasure_reaches_the_rows_of_batch_jobs() {
    let (_site, catalog) = one_source(
        "email",
        FAST,
        ResponseTemplate::new(200).set_body_string(r#"{"user": {"name": "Someone"}}"#),
    )
    .await;
    let app = TestApp::with_catalog(HTTP, catalog).await;
    let (_, job) = submit(&app, CLAIM, &list(3), None).await;
    let id = job["id"].as_str().unwrap().to_owned();
    wait_for(&app, &id, |v| v["state"] == "DONE").await;

    // Access (Art. 15) shows the row a job holds of the person, and only hers.
    let access = |email: &str| {
        let body = format!(r#"{{"email": "{email}", "reference": "DSR-6"}}"#);
        let url = format!("{}/v1/access", base(&app));
        async move {
            json_of(
                reqwest::Client::new()
                    .post(url)
                    .header("content-type", "application/json")
                    .body(body)
                    .send()
                    .await
                    .unwrap(),
            )
            .await
        }
    };
    let held = access("person2@example.com").await;
    let rows = held["batchRows"].as_array().expect("batchRows");
    assert_eq!(rows.len(), 1, "{held}");
    assert_eq!(rows[0]["jobId"], id.as_str());
    assert_eq!(rows[0]["row"], "2");
    assert_eq!(rows[0]["purpose"], "marketing");
    let input: Value = serde_json::from_str(rows[0]["input"].as_str().unwrap()).unwrap();
    assert_eq!(input["customer_id"], "c2");

    let erased = json_of(
        reqwest::Client::new()
            .post(format!("{}/v1/erase", base(&app)))
            .header("content-type", "application/json")
            .body(r#"{"email": "person2@example.com", "reference": "DSR-7"}"#)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(erased["batchRowsErased"], 1, "{erased}");

    let lines = results(&app, &id).await;
    assert_eq!(lines.len(), 3);
    assert_eq!(lines[1]["row"], 2);
    assert_eq!(lines[1]["erased"], true);
    assert_eq!(lines[1]["input"], serde_json::json!({}));
    assert!(lines[1].get("answer").is_none());
    assert!(!lines.iter().any(|l| l.to_string().contains("person2")));
    assert_eq!(lines[0]["input"]["email"], "person1@example.com");
    let view = status(&app, &id).await;
    assert_eq!(view["summary"]["erased"], 1);
    let held = access("person2@example.com").await;
    assert_eq!(held["batchRows"], serde_json::json!([]), "{held}");

    // The spreadsheet's view: the rows' columns, then the summary columns.
    let table = get(&app, &format!("/v1/batches/{id}/results?format=csv"), None).await;
    assert!(
        table.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/csv")
    );
    let table = table.text().await.unwrap();
    let lines: Vec<&str> = table.lines().collect();
    assert!(
        lines[0].starts_with("customer_id,email,row,outcome,error,display_name,"),
        "{table}"
    );
    assert!(
        lines[1].starts_with("c1,person1@example.com,1,enriched,,Someone,a,"),
        "{table}"
    );
    assert!(lines[2].starts_with(",,2,erased,"), "{table}");
    assert_eq!(lines.len(), 4);

    // A later job with the erased person does not even store their row.
    let (_, again) = submit(&app, CLAIM, &list(3), None).await;
    let again = again["id"].as_str().unwrap().to_owned();
    let view = wait_for(&app, &again, |v| v["state"] == "DONE").await;
    assert_eq!(view["summary"]["suppressed"], 1, "{view}");
    let lines = results(&app, &again).await;
    assert_eq!(
        lines[1],
        serde_json::json!({"row": 2, "input": {}, "suppressed": true})
    );
    let stored = app
        .enricher
        .ledger()
        .job_rows(&again, 1, 1, None)
        .await
        .unwrap();
    assert_eq!(stored[0].1, "{}", "nothing of the person is stored");
}

#[tokio::test]
async fn a_finished_job_is_deleted_after_its_retention() {
    let (_site, catalog) = nobody_source().await;
    let clock = enrichd::clock::ManualClock::new();
    let config =
        format!("{HTTP}[ledger]\nsweep_every = \"20ms\"\n[batch]\njob_retention = \"7d\"\n");
    let app = TestApp::with_clock(&config, catalog, clock.shared()).await;
    let day = Duration::from_secs(86_400);
    let finished = async |clock_moves: Duration| {
        let (_, job) = submit(&app, CLAIM, &list(2), None).await;
        let id = job["id"].as_str().unwrap().to_owned();
        wait_for(&app, &id, |v| v["state"] == "DONE").await;
        clock.advance(clock_moves);
        format!("/v1/batches/{id}")
    };
    let older = finished(2 * day).await;
    let younger = finished(6 * day).await;
    // The older job (8 days) is swept; the sweep that did it saw the
    // younger one at 6 days and kept it...
    common::eventually("the older job is swept", || async {
        (get(&app, &older, None).await.status().as_u16() == 404).then_some(())
    })
    .await;
    assert_eq!(get(&app, &younger, None).await.status().as_u16(), 200);
    // ...until it too is past seven, rows and all.
    clock.advance(2 * day);
    let id = younger.trim_start_matches("/v1/batches/").to_owned();
    common::eventually("the younger job is swept", || async {
        (get(&app, &younger, None).await.status().as_u16() == 404).then_some(())
    })
    .await;
    let rows = app
        .enricher
        .ledger()
        .job_rows(&id, 0, 10, None)
        .await
        .unwrap();
    assert!(rows.is_empty());
}

#[tokio::test]
async fn jobs_beyond_max_running_jobs_wait_their_turn() {
    let (_site, catalog) = one_source(
        "email",
        FAST,
        ResponseTemplate::new(404)
            .set_body_string("{}")
            .set_delay(Duration::from_millis(100)),
    )
    .await;
    let config = format!("{HTTP}[batch]\nmax_running_jobs = 1\nmax_in_flight = 1\n");
    let app = TestApp::with_catalog(&config, catalog).await;
    let (_, first) = submit(&app, CLAIM, &list(4), None).await;
    let (_, second) = submit(&app, CLAIM, &list(4), None).await;
    let (first, second) = (
        first["id"].as_str().unwrap().to_owned(),
        second["id"].as_str().unwrap().to_owned(),
    );
    // When the second has started, the first is done or has not started
    // (whichever got the turn first).
    wait_for(&app, &second, |v| v["rowsDone"].as_i64() > Some(0)).await;
    let other = status(&app, &first).await;
    let one_at_a_time = other["state"] == "DONE" || other["rowsDone"] == 0;
    assert!(one_at_a_time, "both ran at once: {other}");
    wait_for(&app, &first, |v| v["state"] == "DONE").await;
    wait_for(&app, &second, |v| v["state"] == "DONE").await;
}

/// The CSV table of a job longer than a page (256 rows), whose rows name a
/// column first seen near the end, is the table of its NDJSON results: it is
/// written a page at a time (built whole, a 100,000-row job's table held
/// every answer in memory: 23 GB), with the columns read first.
#[tokio::test]
async fn a_long_job_s_table_is_its_results_table() {
    let (_site, catalog) = one_source(
        "email",
        FAST,
        ResponseTemplate::new(200).set_body_string(r#"{"user": {"name": "Someone"}}"#),
    )
    .await;
    let app = TestApp::with_catalog(HTTP, catalog).await;
    let rows: String = (1..=600)
        .map(|i| {
            let extra = if i == 599 {
                r#", "segment": "vip""#
            } else {
                ""
            };
            format!("{{\"customer_id\": \"c{i}\", \"email\": \"person{i}@example.com\"{extra}}}\n")
        })
        .collect();
    let answer = reqwest::Client::new()
        .post(format!("{}/v1/batches?{CLAIM}", base(&app)))
        .header("content-type", "application/x-ndjson")
        .body(rows)
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 202);
    let id = json_of(answer).await["id"].as_str().unwrap().to_owned();
    wait_for(&app, &id, |v| v["state"] == "DONE").await;

    let mut expected = Vec::new();
    enrichd::batch::table::write_csv(results(&app, &id).await, &mut expected, Default::default())
        .unwrap();
    let table = get(&app, &format!("/v1/batches/{id}/results?format=csv"), None)
        .await
        .text()
        .await
        .unwrap();
    assert_eq!(table.lines().count(), 601);
    assert!(
        table
            .lines()
            .next()
            .unwrap()
            .starts_with("customer_id,email,segment,row,"),
        "{table}"
    );
    assert!(
        table.contains("c599,person599@example.com,vip,599,enriched"),
        "{table}"
    );
    assert_eq!(table, String::from_utf8(expected).unwrap());

    // For a spreadsheet where the comma is the decimal mark: the same
    // table with semicolons; a delimiter or format it does not know is
    // refused naming the parameter.
    let mut expected = Vec::new();
    let excel = enrichd::batch::table::Dialect {
        delimiter: b';',
        bom: true,
    };
    enrichd::batch::table::write_csv(results(&app, &id).await, &mut expected, excel).unwrap();
    let semicolons = get(
        &app,
        &format!("/v1/batches/{id}/results?format=csv&delimiter=semicolon&bom=true"),
        None,
    )
    .await
    .text()
    .await
    .unwrap();
    assert!(semicolons.starts_with("\u{feff}customer_id;email;segment;row;"));
    assert_eq!(semicolons, String::from_utf8(expected).unwrap());
    for (query, field) in [
        ("format=csv&delimiter=pipe", "delimiter"),
        ("format=xlsx", "format"),
        ("format=csv&bom=yes", "bom"),
    ] {
        let refused = get(&app, &format!("/v1/batches/{id}/results?{query}"), None).await;
        assert_eq!(refused.status(), 400, "{query}");
        let body = json_of(refused).await;
        assert!(body.to_string().contains(field), "{query}: {body}");
    }
}

/// A job's results can be read by outcome, a page at a time: the rows of
/// one outcome in order (the API finds them; the console's page of a
/// 20,000-row job filtered by a rare outcome read the whole table to find
/// its rows), at most `limit`, after row `after`; the CSV table keeps the
/// whole job's columns. A value it does not know is refused naming it.
#[tokio::test]
async fn results_are_read_by_outcome_a_page_at_a_time() {
    let (_site, catalog) = nobody_source().await;
    let app = TestApp::with_catalog(HTTP, catalog).await;
    // Invalid rows on both sides of the pages' seams (256, 512).
    let invalid = [7_i64, 150, 299, 300, 512, 600];
    let mut csv = "customer_id,email\n".to_owned();
    for i in 1..=600 {
        let email = if invalid.contains(&i) {
            "not-an-address".to_owned()
        } else {
            format!("person{i}@example.com")
        };
        csv.push_str(&format!("c{i},{email}\n"));
    }
    let (code, job) = submit(&app, CLAIM, &csv, None).await;
    assert_eq!(code, 202, "{job}");
    let id = job["id"].as_str().unwrap().to_owned();
    wait_for(&app, &id, |v| v["state"] == "DONE").await;
    let rows = async |query: &str| -> Vec<i64> {
        results_of(&app, &format!("/v1/batches/{id}/results?{query}"))
            .await
            .iter()
            .map(|l| l["row"].as_i64().expect("a row number"))
            .collect()
    };

    assert_eq!(rows("outcome=invalid").await, invalid);
    assert_eq!(rows("outcome=invalid&limit=2").await, [7, 150]);
    assert_eq!(rows("outcome=invalid&after=150&limit=2").await, [299, 300]);
    assert_eq!(rows("outcome=invalid&after=300").await, [512, 600]);
    assert_eq!(
        rows("outcome=not_found&after=590").await,
        (591..=599).collect::<Vec<_>>()
    );
    assert_eq!(rows("limit=3").await, [1, 2, 3]);
    assert_eq!(rows("after=598").await, [599, 600]);
    assert!(rows("outcome=error").await.is_empty());
    let all = rows("").await;
    assert_eq!(all, (1..=600).collect::<Vec<_>>());
    let lines = results_of(
        &app,
        &format!("/v1/batches/{id}/results?outcome=invalid&limit=1"),
    )
    .await;
    assert_eq!(lines[0]["input"]["customer_id"], "c7", "{}", lines[0]);
    assert_eq!(
        lines[0]["error"]["code"], "INVALID_ARGUMENT",
        "{}",
        lines[0]
    );

    let table = async |query: &str| -> Vec<String> {
        let answer = get(
            &app,
            &format!("/v1/batches/{id}/results?format=csv{query}"),
            None,
        )
        .await;
        assert_eq!(answer.status(), 200, "{query}");
        answer
            .text()
            .await
            .unwrap()
            .lines()
            .map(str::to_owned)
            .collect()
    };
    let whole = table("").await;
    let picked = table("&outcome=invalid&after=7&limit=3").await;
    assert_eq!(picked[0], whole[0], "the job's columns");
    let cells: Vec<&str> = picked[1..]
        .iter()
        .map(|l| l.split(',').nth(2).unwrap())
        .collect();
    assert_eq!(cells, ["150", "299", "300"], "{picked:?}");
    assert_eq!(picked[1], whole[150]);

    for (query, field) in [
        ("outcome=found", "outcome"),
        ("outcome=pending", "outcome"),
        ("after=-1", "after"),
        ("after=first", "after"),
        ("limit=0", "limit"),
        ("format=csv&limit=many", "limit"),
    ] {
        let refused = get(&app, &format!("/v1/batches/{id}/results?{query}"), None).await;
        assert_eq!(refused.status(), 400, "{query}");
        let body = json_of(refused).await;
        assert!(body.to_string().contains(field), "{query}: {body}");
    }
}

/// An audience report is built once for a job's rows as they stand and
/// answered again (a report of 100,000 rows is a second of CPU and reads
/// every row's facts), `generatedAt` included, until a row moves: after an
/// erasure it is built again, without the person.
#[tokio::test]
async fn an_audience_report_is_kept_until_an_erasure_moves_a_row() {
    let (_site, catalog) = nobody_source().await;
    let clock = enrichd::clock::ManualClock::new();
    let app = TestApp::with_clock(HTTP, catalog, clock.shared()).await;
    let (_, job) = submit(&app, CLAIM, &list(12), None).await;
    let id = job["id"].as_str().unwrap().to_owned();
    wait_for(&app, &id, |v| v["state"] == "DONE").await;
    let report = async || {
        let answer = get(&app, &format!("/v1/batches/{id}/audience"), None).await;
        assert_eq!(answer.status(), 200);
        json_of(answer).await
    };
    let not_found = |report: &Value| {
        report["outcomes"]["cells"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["key"] == "not_found")
            .map(|c| c["people"].clone())
    };

    let first = report().await;
    assert_eq!(not_found(&first), Some(12.into()), "{first}");
    clock.advance(Duration::from_secs(60));
    assert_eq!(report().await, first, "the kept report, as it was built");

    let erased = reqwest::Client::new()
        .post(format!("{}/v1/erase", base(&app)))
        .header("content-type", "application/json")
        .body(r#"{"email": "person1@example.com", "reference": "DSR-8"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(erased.status(), 200);
    let after = report().await;
    assert_ne!(after["generatedAt"], first["generatedAt"], "built again");
    assert_eq!(not_found(&after), Some(11.into()), "{after}");
}

/// Who uploads is decided before the list is read: an upload without a key
/// is refused (401) at its headers, whether it would fit (here 16,000,000
/// bytes, of which only the first kilobyte is ever sent) or not (17 MB; a
/// refusal for its size would tell a caller without a key what fits).
#[tokio::test]
async fn an_upload_without_a_key_is_refused_before_its_body_is_read() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let app = TestApp::spawn(
        "[dns]\nenabled = false\n[auth]\nrequired = true\n\
         [server]\nhttp_listen = \"127.0.0.1:0\"\nrequest_timeout = \"5m\"\n",
    )
    .await;
    for length in [16_000_000_u64, 17_000_000] {
        let mut conn = tokio::net::TcpStream::connect(app.http_addr.unwrap())
            .await
            .unwrap();
        let head = format!(
            "POST /v1/batches?{CLAIM} HTTP/1.1\r\nHost: t\r\ncontent-type: text/csv\r\n\
             content-length: {length}\r\n\r\ncustomer_id,email\r\n"
        );
        conn.write_all(head.as_bytes()).await.unwrap();
        conn.write_all(&vec![b'x'; 1024]).await.unwrap();
        // The rest never comes; the answer does.
        let mut answer = vec![0; 4096];
        let n = tokio::time::timeout(common::HUNG, conn.read(&mut answer))
            .await
            .expect("answered without the rest of the body")
            .unwrap();
        let answer = String::from_utf8_lossy(&answer[..n]);
        assert!(answer.starts_with("HTTP/1.1 401"), "{length}: {answer}");
    }
}

/// A list longer than a job holds is refused at the first row past the
/// limit, not after reading it all; a row longer than a row may be is that
/// row's error, not parsed, and the job goes on with the rest.
#[tokio::test]
async fn a_row_bomb_is_refused_at_its_first_row_past_the_limits() {
    let (_site, catalog) = nobody_source().await;
    let app = TestApp::with_catalog(&format!("{HTTP}[batch]\nmax_job_rows = 100\n"), catalog).await;
    let (status, body) = submit(&app, CLAIM, &list(5_000), None).await;
    assert_eq!(status, 400, "{body}");
    let message = body["error"]["message"].as_str().unwrap();
    assert!(message.contains("more than 100 rows"), "{message}");

    let huge = format!(
        "{{\"email\":\"a@example.com\",\"note\":\"{}\"}}",
        "x".repeat(100_000)
    );
    let ndjson = format!("{huge}\n{{\"email\":\"b@example.com\"}}\n");
    let answer = reqwest::Client::new()
        .post(format!("{}/v1/batches?{CLAIM}", base(&app)))
        .header("content-type", "application/x-ndjson")
        .body(ndjson)
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status().as_u16(), 202);
    let id = json_of(answer).await["id"].as_str().unwrap().to_owned();
    wait_for(&app, &id, |v| v["state"] == "DONE").await;
    let lines = results(&app, &id).await;
    assert_eq!(lines.len(), 2, "{lines:?}");
    let why = lines[0]["error"]["message"].as_str().unwrap_or_default();
    assert!(why.contains("a row holds at most 65536"), "{}", lines[0]);
    assert!(lines[0]["input"].as_object().unwrap().is_empty());
    assert!(lines[1].get("answer").is_some(), "{}", lines[1]);
}

/// A job's rows are charged to its caller's quota one by one, as a
/// stream's requests are: 15 rows of a key at 5 per second take no less
/// than about two seconds, not one unit for the whole list.
#[tokio::test]
async fn a_job_s_rows_are_paced_to_the_key_s_quota() {
    let (_site, catalog) = nobody_source().await;
    let app = TestApp::with_catalog(&format!("{HTTP}[auth]\nrequired = true\n"), catalog).await;
    let secret = new_key(&app, "paced", &[Scope::Stream], Some(5.0)).await;
    let started = std::time::Instant::now();
    let (status, job) = submit(&app, CLAIM, &list(15), Some(&secret)).await;
    assert_eq!(status, 202, "{job}");
    let id = job["id"].as_str().unwrap().to_owned();
    let path = format!("/v1/batches/{id}");
    common::eventually("the job is done", || async {
        let view = json_of(get(&app, &path, Some(&secret)).await).await;
        (view["state"] == "DONE").then_some(())
    })
    .await;
    let took = started.elapsed();
    assert!(
        took >= Duration::from_millis(1_500),
        "15 rows at 5 a second done in {took:?}"
    );
}

/// A webhook receiver that refuses until it is told to take deliveries.
struct Switch(Arc<AtomicBool>);

impl wiremock::Respond for Switch {
    fn respond(&self, _: &wiremock::Request) -> ResponseTemplate {
        ResponseTemplate::new(if self.0.load(Ordering::SeqCst) {
            200
        } else {
            503
        })
    }
}

/// A job's webhook secret derives from the hash key chain's newest key when
/// the job was made: after a rotation new jobs get a new secret, while a
/// job made before it keeps signing with the one its submitter was given
/// (here a delivery left pending across the rotation and a restart).
#[tokio::test]
async fn a_rotation_gives_new_jobs_a_new_webhook_secret_and_keeps_old_jobs_own() {
    let (_site, catalog) = one_source("email", FAST, ResponseTemplate::new(404)).await;
    let receiver = wiremock::MockServer::start().await;
    let taking = Arc::new(AtomicBool::new(false));
    wiremock::Mock::given(wiremock::matchers::method("POST"))
        .respond_with(Switch(taking.clone()))
        .mount(&receiver)
        .await;
    let dir = tempfile::tempdir().unwrap();
    let ledger = format!("sqlite://{}?mode=rwc", dir.path().join("l.db").display());
    let config = format!(
        "{HTTP}[batch]\nwebhook_private_origins = [\"{}\"]\n[ledger]\nurl = \"{ledger}\"\n",
        receiver.uri()
    );
    let hook = format!("{}/hooks/enrichd", receiver.uri());
    let query = format!(
        "{CLAIM}&webhookUrl={}",
        url::form_urlencoded::byte_serialize(hook.as_bytes()).collect::<String>()
    );
    let first = KeyedHasher::new(common::TEST_HASH_KEY);
    let clock = enrichd::clock::SharedClock::system();
    let mut before =
        TestApp::with_hasher(&config, catalog.clone(), clock.clone(), first.clone()).await;
    let (code, old_job) = submit(&before, &query, &list(2), None).await;
    assert_eq!(code, 202, "{old_job}");
    let old_id = old_job["id"].as_str().unwrap().to_owned();
    let old_secret = old_job["webhookSecret"].as_str().unwrap().to_owned();
    wait_for(&before, &old_id, |v| v["state"] == "DONE").await;
    before.stop();
    (&mut before.handle).await.unwrap().unwrap();

    let rotated = first.rotated().rotated();
    let store = enrichd::ledger::Ledger::open(&ledger).await.unwrap();
    store.bind_hash_key(&first.fingerprint()).await.unwrap();
    let middle = first.rotated();
    store.rekey(&first.fingerprint(), &middle, 0).await.unwrap();
    store
        .rekey(&middle.fingerprint(), &rotated, 0)
        .await
        .unwrap();
    drop(store);

    taking.store(true, Ordering::SeqCst);
    let after = TestApp::with_hasher(&config, catalog, clock, rotated).await;
    let (code, new_job) = submit(&after, &query, &list(2), None).await;
    assert_eq!(code, 202, "{new_job}");
    let new_id = new_job["id"].as_str().unwrap().to_owned();
    let new_secret = new_job["webhookSecret"].as_str().unwrap().to_owned();
    let derived_from_first =
        first.generation_hash(1, &format!("enrichd batch webhook secret v1 {new_id}"));
    assert_ne!(
        new_secret, derived_from_first,
        "a new job's secret is the new key's"
    );
    for id in [&old_id, &new_id] {
        wait_for(&after, id, |v| v["webhook"] == "DELIVERED").await;
    }
    let received = receiver.received_requests().await.unwrap();
    for (id, secret) in [(&old_id, &old_secret), (&new_id, &new_secret)] {
        let delivered = received
            .iter()
            .rfind(|r| {
                let body: Value = serde_json::from_slice(&r.body).unwrap();
                body["id"] == id.as_str()
            })
            .map(|r| {
                let timestamp = r.headers["enrichd-timestamp"].to_str().unwrap();
                let body = String::from_utf8(r.body.clone()).unwrap();
                let signed = r.headers["enrichd-signature"].to_str().unwrap().to_owned();
                (signed, enrichd::batch::jobs::sign(secret, timestamp, &body))
            })
            .expect("a delivery of the job");
        assert_eq!(delivered.0, format!("v1={}", delivered.1), "job {id}");
    }
}

/// No one can make a person's Access fail: rows as large as a row may be
/// (64 KiB) and as many as 100 of one person (6 MB) come in pages that each
/// fit the 4 MiB message a default gRPC client takes, every row once.
#[tokio::test]
async fn access_pages_batch_rows_under_a_default_client_s_message_size() {
    let (_site, catalog) = one_source("email", FAST, ResponseTemplate::new(404)).await;
    let app = TestApp::with_catalog(HTTP, catalog).await;
    let padding = "x".repeat(60 * 1024);
    let mut list = "email,note\n".to_owned();
    for _ in 0..100 {
        list.push_str(&format!("big@example.com,{padding}\n"));
    }
    let (code, job) = submit(&app, CLAIM, &list, None).await;
    assert_eq!(code, 202, "{job}");
    let id = job["id"].as_str().unwrap().to_owned();
    wait_for(&app, &id, |v| v["state"] == "DONE").await;

    let mut client = app.client().await;
    let mut rows = std::collections::BTreeSet::new();
    let mut token = String::new();
    let mut pages = 0;
    loop {
        let request = enrichd::proto::v1::AccessRequest {
            identifier: Some(enrichd::proto::v1::access_request::Identifier::Email(
                "big@example.com".into(),
            )),
            reference: "DSR-9".into(),
            page_token: token,
            ..Default::default()
        };
        let page = client
            .access(request)
            .await
            .expect("every page fits a default client's 4 MiB")
            .into_inner();
        pages += 1;
        for row in &page.batch_rows {
            assert!(rows.insert(row.row), "row {} twice", row.row);
        }
        token = page.next_page_token;
        if token.is_empty() {
            break;
        }
        assert!(pages < 10, "the pages end");
    }
    assert_eq!(rows.len(), 100);
    assert!(pages >= 2, "6 MB do not fit one page");
}

/// A caller manages its jobs: lists its own (newest first, in pages, never
/// another key's), cancels a running one (rows not started never run), and
/// has an ended job's webhook delivered again.
#[tokio::test]
async fn jobs_are_listed_cancelled_and_their_webhooks_delivered_again() {
    let (_site, catalog) = one_source(
        "email",
        "limits = { rate_limit = { per_second = 20.0, burst = 1 } }",
        ResponseTemplate::new(404),
    )
    .await;
    let receiver = wiremock::MockServer::start().await;
    wiremock::Mock::given(wiremock::matchers::method("POST"))
        .respond_with(ResponseTemplate::new(200))
        .mount(&receiver)
        .await;
    let config = format!(
        "{HTTP}[auth]\nrequired = true\n[batch]\nwebhook_private_origins = [\"{}\"]\n",
        receiver.uri()
    );
    let app = TestApp::with_catalog(&config, catalog).await;
    let owner = new_key(&app, "crm", &[Scope::Stream], None).await;
    let other = new_key(&app, "other", &[Scope::Stream], None).await;
    use reqwest::Method;
    let hook = format!("{}/hook", receiver.uri());
    let with_hook = format!(
        "{CLAIM}&webhookUrl={}",
        url::form_urlencoded::byte_serialize(hook.as_bytes()).collect::<String>()
    );

    // A short job with a webhook, then a long one (20 rows a second).
    let (_, short) = submit(&app, &with_hook, &list(2), Some(&owner)).await;
    let short = short["id"].as_str().unwrap().to_owned();
    wait_for_as(&app, &short, Some(&owner), |v| v["webhook"] == "DELIVERED").await;
    let (_, long) = submit(&app, CLAIM, &list(400), Some(&owner)).await;
    let long = long["id"].as_str().unwrap().to_owned();

    let page = json_of(call(&app, Method::GET, "/v1/batches?pageSize=1", Some(&owner)).await).await;
    assert_eq!(page["jobs"][0]["id"], long.as_str(), "newest first: {page}");
    let token = page["nextPageToken"].as_str().unwrap().to_owned();
    assert!(!token.is_empty());
    let next = json_of(
        call(
            &app,
            Method::GET,
            &format!("/v1/batches?pageSize=1&pageToken={token}"),
            Some(&owner),
        )
        .await,
    )
    .await;
    assert_eq!(next["jobs"][0]["id"], short.as_str(), "{next}");
    let theirs = json_of(call(&app, Method::GET, "/v1/batches", Some(&other)).await).await;
    assert_eq!(
        theirs["jobs"],
        serde_json::json!([]),
        "another key sees none: {theirs}"
    );

    // Without a key, none of them is answered.
    for (method, path) in [
        (Method::GET, "/v1/batches".to_owned()),
        (Method::DELETE, format!("/v1/batches/{long}")),
        (Method::POST, format!("/v1/batches/{short}/webhook")),
    ] {
        let keyless = call(&app, method.clone(), &path, None).await;
        assert_eq!(keyless.status().as_u16(), 401, "{method} {path}");
    }

    // Cancelled: another key cannot, the owner can once.
    let refused = call(
        &app,
        Method::DELETE,
        &format!("/v1/batches/{long}"),
        Some(&other),
    )
    .await;
    assert_eq!(refused.status().as_u16(), 404);
    let cancelled = json_of(
        call(
            &app,
            Method::DELETE,
            &format!("/v1/batches/{long}"),
            Some(&owner),
        )
        .await,
    )
    .await;
    assert_eq!(cancelled["state"], "CANCELLED", "{cancelled}");
    assert_eq!(cancelled["rowsPending"], 0);
    let never_run = cancelled["summary"]["cancelled"].as_i64().unwrap();
    assert!(never_run > 300, "rows not started never run: {cancelled}");
    let again = call(
        &app,
        Method::DELETE,
        &format!("/v1/batches/{long}"),
        Some(&owner),
    )
    .await;
    assert_eq!(again.status().as_u16(), 400);
    let view = wait_for_as(&app, &long, Some(&owner), |v| v["state"] == "CANCELLED").await;
    assert_eq!(view["summary"]["cancelled"], never_run, "the count holds");

    // Delivered again on request.
    let before = receiver.received_requests().await.unwrap().len();
    let redelivered = call(
        &app,
        Method::POST,
        &format!("/v1/batches/{short}/webhook"),
        Some(&owner),
    )
    .await;
    assert_eq!(redelivered.status().as_u16(), 202);
    common::eventually("the webhook comes again", || async {
        (receiver.received_requests().await.unwrap().len() > before).then_some(())
    })
    .await;
    let no_hook = call(
        &app,
        Method::POST,
        &format!("/v1/batches/{long}/webhook"),
        Some(&owner),
    )
    .await;
    assert_eq!(no_hook.status().as_u16(), 400);
}

/// A job's rows are counted as the job's, not as a client's stream.
#[tokio::test]
async fn a_job_s_rows_are_counted_as_batch_job_calls() {
    let (_site, catalog) = one_source("email", FAST, ResponseTemplate::new(404)).await;
    let config = format!("{HTTP}metrics_listen = \"127.0.0.1:0\"\n");
    let app = TestApp::with_catalog(&config, catalog).await;
    let (_, job) = submit(&app, CLAIM, &list(2), None).await;
    let id = job["id"].as_str().unwrap().to_owned();
    wait_for(&app, &id, |v| v["state"] == "DONE").await;
    let metrics = reqwest::get(format!("http://{}/metrics", app.metrics_addr.unwrap()))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains(
            r#"enrichd_grpc_requests_total{method="BatchJob",caller="anonymous",code="OK"}"#
        ),
        "{metrics}"
    );
}

/// Lists are read and stored `batch.max_concurrent_uploads` at a time: one
/// more gets 429 naming the setting, and the slot is free again when the
/// upload holding it ends (here, its client going away mid-body).
#[tokio::test]
async fn uploads_beyond_max_concurrent_uploads_are_refused_until_one_ends() {
    use tokio::io::AsyncWriteExt;
    let (_site, catalog) = one_source("email", FAST, ResponseTemplate::new(404)).await;
    let config = format!("{HTTP}request_timeout = \"5m\"\n[batch]\nmax_concurrent_uploads = 1\n");
    let app = TestApp::with_catalog(&config, catalog).await;
    // An upload whose body stops coming after its header row.
    let mut slow = tokio::net::TcpStream::connect(app.http_addr.unwrap())
        .await
        .unwrap();
    let head = format!(
        "POST /v1/batches?{CLAIM} HTTP/1.1\r\nHost: localhost\r\ncontent-type: text/csv\r\n\
         content-length: 1000000\r\n\r\ncustomer_id,email\r\n"
    );
    slow.write_all(head.as_bytes()).await.unwrap();
    let refused = common::eventually("the second upload is refused", || async {
        let (status, body) = submit(&app, CLAIM, &list(2), None).await;
        (status == 429).then_some(body)
    })
    .await;
    let message = refused["error"]["message"].as_str().unwrap_or_default();
    assert!(
        message.contains("batch.max_concurrent_uploads"),
        "{refused}"
    );

    drop(slow);
    let (status, body) = common::eventually("an upload is taken again", || async {
        let (status, body) = submit(&app, CLAIM, &list(2), None).await;
        (status != 429).then_some((status, body))
    })
    .await;
    assert_eq!(status, 202, "{body}");
}
