//! Data-subject rights that hold under ordinary use: access only to the
//! person's own data, an erasure that wins a race with an enrichment in
//! flight, an erasure by another process that reaches the running server,
//! and an access report that says when and why a person was suppressed.
use crate::common;

use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Path, State};
use common::{Gate, TestApp, catalog_from, email_request, test_source};
use enrichd::proto::v1 as pb;

const GUARD: Duration = Duration::from_secs(20);

fn access(email: &str) -> pb::AccessRequest {
    pb::AccessRequest {
        identifier: Some(pb::access_request::Identifier::Email(email.into())),
        default_region: String::new(),
        reference: "DSR-A".into(),
        ..Default::default()
    }
}

/// Copies a person's one record `n` times, earlier than it (as a CRM that
/// enriches on every view leaves them).
async fn many_records_like_the_one_of(app: &TestApp, n: u32) {
    use sqlx::Connection;
    sqlx::any::install_default_drivers();
    let mut db = sqlx::AnyConnection::connect(&app.ledger_url).await.unwrap();
    let copied = sqlx::query(
        "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < $1) \
         INSERT INTO ledger (id, at_ms, caller, purpose, lawful_basis, consent_ref, lia_ref, \
           contract_ref, subject, sources, field_categories, outcome, retain_until_ms, \
           redacted, caller_id, on_behalf_of, reference, detail) \
         SELECT printf('%032x', n.i), l.at_ms - $1 - 1 + n.i, l.caller, l.purpose, \
           l.lawful_basis, l.consent_ref, l.lia_ref, l.contract_ref, l.subject, l.sources, \
           l.field_categories, l.outcome, l.retain_until_ms, l.redacted, l.caller_id, \
           l.on_behalf_of, l.reference, l.detail \
         FROM n, (SELECT * FROM ledger LIMIT 1) AS l",
    )
    .bind(i64::from(n))
    .execute(&mut db)
    .await
    .unwrap();
    assert_eq!(copied.rows_affected(), u64::from(n));
}

/// Ordinary use must not defeat the right of access: a person enriched on
/// every CRM view has more records than one gRPC message of a default client
/// holds (4 MiB), so they come in pages, and every page keeps the summary of
/// all of them.
#[tokio::test]
async fn a_person_with_thirty_thousand_records_gets_them_all_in_pages() {
    let (app, _sandbox) = common::sandbox_app().await;
    let mut client = app.client().await;
    client
        .enrich(email_request("jane.doe@example.com"))
        .await
        .unwrap();
    many_records_like_the_one_of(&app, 30_000).await;

    let first = client
        .access(access("jane.doe@example.com"))
        .await
        .expect("the first page fits a default client's message size")
        .into_inner();
    assert_eq!(first.ledger.len(), 1_000, "the default page");
    assert_eq!(first.ledger_total, 30_001);
    let summary = first.summary.clone().expect("a summary");
    assert_eq!(summary.purposes.len(), 1);
    assert!(!summary.sources.is_empty());

    // Every record once, oldest first, and none written since the first page
    // (each page is itself recorded as an access).
    let mut ids: Vec<String> = first.ledger.iter().map(|r| r.id.clone()).collect();
    let mut token = first.next_page_token;
    let mut pages = 1;
    while !token.is_empty() {
        let mut request = access("jane.doe@example.com");
        request.page_size = 10_000;
        request.page_token = token;
        let page = client.access(request).await.unwrap().into_inner();
        assert_eq!(page.ledger_total, 30_001);
        assert_eq!(page.summary, first.summary);
        ids.extend(page.ledger.iter().map(|r| r.id.clone()));
        token = page.next_page_token;
        pages += 1;
        assert!(pages < 10, "the pages end");
    }
    assert_eq!(ids.len(), 30_001);
    // The copies' ids (and the real record's, a UUIDv7) ascend with their
    // times: in order and none twice.
    assert!(
        ids.windows(2).all(|w| w[0] < w[1]),
        "oldest first, none twice"
    );
    let unique: std::collections::BTreeSet<&String> = ids.iter().collect();
    assert_eq!(unique.len(), 30_001);
    let again = client
        .access(access("jane.doe@example.com"))
        .await
        .unwrap()
        .into_inner();
    assert!(
        again.ledger_total > 30_001,
        "a new access counts the accesses recorded since"
    );

    // Bad paging is refused, naming the field.
    let mut request = access("jane.doe@example.com");
    request.page_size = 10_001;
    request.page_token = "p1.x".into();
    let refused = client.access(request).await.unwrap_err();
    assert_eq!(refused.code(), tonic::Code::InvalidArgument);
    assert!(
        refused.message().contains("page_size"),
        "{}",
        refused.message()
    );
    assert!(
        refused.message().contains("page_token"),
        "{}",
        refused.message()
    );
}

/// Erases Jane after her enrichment and `copies` records like its.
async fn erase_jane_with_records(app: &TestApp, copies: u32) -> pb::EraseResponse {
    let mut client = app.client().await;
    client
        .enrich(email_request("jane.doe@example.com"))
        .await
        .unwrap();
    many_records_like_the_one_of(app, copies).await;
    client
        .erase(erase(
            "jane.doe@example.com",
            pb::erase_request::Kind::Erasure,
            "DSR-8",
        ))
        .await
        .unwrap()
        .into_inner()
}

/// An erasure answers within `ledger.erase_wait` however many records the
/// person has: past it, the answer says the redaction is still going, and
/// the purge committed with the suppression is finished by the sweep (here
/// at once: the wait is zero). Under the default wait a small history is
/// redacted before the answer.
#[tokio::test]
async fn an_erasure_answers_in_time_and_its_redaction_is_finished_after() {
    let (app, _sandbox) = common::sandbox_app_with("[ledger]\nerase_wait = \"0s\"\n").await;
    let erased = erase_jane_with_records(&app, 20_000).await;
    assert!(erased.redaction_pending, "{erased:?}");
    assert!(erased.ledger_records_redacted < 20_001, "{erased:?}");

    // The sweep (of this process or any other) finishes it.
    let ledger = app.enricher.ledger();
    enrichd::ledger::retention::sweep(ledger, app.enricher.clock()).await;
    let report = app
        .client()
        .await
        .access(access("jane.doe@example.com"))
        .await
        .unwrap()
        .into_inner();
    let enrichments: Vec<_> = report
        .ledger
        .iter()
        .filter(|r| r.purpose != enrichd::ledger::REQUEST_PURPOSE)
        .collect();
    assert_eq!(enrichments.len(), 1_000, "the first page");
    assert!(
        enrichments
            .iter()
            .all(|r| r.outcome.ends_with("(redacted)"))
    );
    assert_eq!(ledger.finish_purges().await.unwrap(), 0);

    // With the default wait, a person with a few records is redacted before
    // the answer, which counts them.
    let (app, _sandbox) = common::sandbox_app().await;
    let erased = erase_jane_with_records(&app, 20).await;
    assert!(!erased.redaction_pending);
    assert_eq!(erased.ledger_records_redacted, 21);
}

fn erase(email: &str, kind: pb::erase_request::Kind, reference: &str) -> pb::EraseRequest {
    pb::EraseRequest {
        identifier: Some(pb::erase_request::Identifier::Email(email.into())),
        kind: kind.into(),
        reference: reference.into(),
        ..Default::default()
    }
}

#[tokio::test]
async fn access_shows_nobody_else_s_findings_for_an_address_with_the_same_local_part() {
    let (app, _sandbox) = common::sandbox_app().await;
    let mut client = app.client().await;
    let mut request = email_request("jane.doe@example.com");
    request.hints.get_or_insert_with(Default::default).name = "Jane Doe".into();
    let jane = client.enrich(request).await.unwrap().into_inner();
    assert!(
        jane.profiles.iter().any(|p| p.source_id == "sb-forum"),
        "Jane's forum profile came from a guess on her local part, tied to her by her name"
    );
    let mine = client
        .access(access("jane.doe@example.com"))
        .await
        .unwrap()
        .into_inner();
    assert!(mine.cached.iter().any(|c| c.source_id == "sb-forum"));

    // Another person with the same local part, never enriched, holds nothing.
    let other = client
        .access(access("jane.doe@other-company.org"))
        .await
        .unwrap()
        .into_inner();
    assert!(
        other.cached.is_empty(),
        "another person's findings were disclosed: {:?}",
        other
            .cached
            .iter()
            .map(|c| &c.source_id)
            .collect::<Vec<_>>()
    );
    assert!(other.ledger.is_empty());
}

/// A site whose `/a/` answers wait at `gate` until the test releases them.
async fn held_site(gate: Gate) -> String {
    async fn held(
        State(gate): State<Gate>,
        Path(_input): Path<String>,
    ) -> axum::Json<serde_json::Value> {
        gate.arrived.notify_one();
        gate.release.notified().await;
        axum::Json(serde_json::json!({"user": {"name": "Ann Example"}}))
    }
    let app = axum::Router::new()
        .route("/a/{input}", axum::routing::get(held))
        .with_state(gate);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    format!("http://{addr}")
}

#[tokio::test]
async fn an_erasure_that_overtakes_an_enrichment_in_flight_wins() {
    let gate = Gate::default();
    let origin = held_site(gate.clone()).await;
    let catalog = catalog_from(&test_source(
        "a",
        "email",
        &format!("{origin}/a/{{input}}"),
        "",
    ));
    let app = TestApp::with_catalog("[dns]\nenabled = false\n", catalog).await;
    let mut client = app.client().await;

    // An enrichment reaches the source and is held there.
    let mut first = client.clone();
    let in_flight = tokio::spawn(async move {
        first
            .enrich(email_request("ann@example.test"))
            .await
            .map(|r| r.into_inner())
    });
    tokio::time::timeout(GUARD, gate.arrived.notified())
        .await
        .expect("the source was asked");

    // The person is erased meanwhile; the erasure answers first.
    client
        .erase(erase(
            "ann@example.test",
            pb::erase_request::Kind::Erasure,
            "DSR-R",
        ))
        .await
        .unwrap();

    // The source answers now: the enrichment must not return Ann's data,
    // nor leave it in the cache.
    gate.release.notify_one();
    let answer = tokio::time::timeout(GUARD, in_flight)
        .await
        .unwrap()
        .unwrap()
        .expect("answered");
    let c = answer.compliance.as_ref().unwrap();
    assert!(
        c.identifier_suppressed,
        "the overtaken call answered as for a suppressed person"
    );
    assert!(answer.profiles.is_empty() && answer.identifier.is_none());
    let held = client
        .access(access("ann@example.test"))
        .await
        .unwrap()
        .into_inner();
    assert!(
        held.cached.is_empty(),
        "the late answer was cached: {:?}",
        held.cached
    );
    // The overtaken call is recorded as suppressed (at the time it began).
    let mut outcomes: Vec<&str> = held.ledger.iter().map(|r| r.outcome.as_str()).collect();
    outcomes.sort();
    assert_eq!(outcomes, ["erasure", "suppressed"]);
}

/// A server whose one source finds everyone (as "Ann Example"), and the site.
async fn app_knowing_everyone() -> (wiremock::MockServer, TestApp) {
    let (site, catalog) = common::one_source(
        "email",
        "",
        wiremock::ResponseTemplate::new(200)
            .set_body_string(r#"{"user": {"name": "Ann Example"}}"#),
    )
    .await;
    let app = TestApp::with_catalog("[dns]\nenabled = false\n", catalog).await;
    (site, app)
}

/// `enrichd erase` in process: another Enricher on the server's ledger.
async fn erase_in_another_process(app: &TestApp, email: &str) {
    let mut config = enrichd::config::Config::from_toml("[dns]\nenabled = false\n").unwrap();
    config.ledger.url = app.ledger_url.clone();
    let cli = enrichd::pipeline::Enricher::build(
        enrichd::pipeline::Settings::from_config(&config),
        enrichd::privacy::KeyedHasher::new(common::TEST_HASH_KEY),
        enrichd::catalog::Catalog::default(),
    )
    .await
    .unwrap();
    cli.erase(
        &enrichd::auth::Caller::operator(),
        &enrichd::pipeline::RawIdentifier::Email(email.into()),
        None,
        enrichd::compliance::suppression::EraseKind::Erasure,
        "DSR-CLI",
    )
    .await
    .unwrap();
}

#[tokio::test]
async fn an_erasure_by_another_process_reaches_the_running_servers_cache() {
    let (_site, app) = app_knowing_everyone().await;
    let mut client = app.client().await;
    let found = client
        .enrich(email_request("ann@example.test"))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(found.profiles.len(), 1);

    erase_in_another_process(&app, "ann@example.test").await;

    // The running server shows none of what it cached, and never serves it.
    let held = client
        .access(access("ann@example.test"))
        .await
        .unwrap()
        .into_inner();
    assert!(held.cached.is_empty(), "{:?}", held.cached);
    assert!(held.suppressed);
    let again = client
        .enrich(email_request("ann@example.test"))
        .await
        .unwrap()
        .into_inner();
    assert!(again.compliance.unwrap().identifier_suppressed && again.profiles.is_empty());
}

/// Another process erases; the running server's very next enrichment (no
/// Access in between, well inside the server's 200 ms follow of the list)
/// answers as for a suppressed person: the ledger writer checks the list's
/// change counter before it records, and so before anything is answered.
#[tokio::test]
async fn the_next_enrichment_after_another_process_erases_is_suppressed() {
    let (_site, app) = app_knowing_everyone().await;
    let mut client = app.client().await;
    for round in 0..5 {
        let email = format!("ann{round}@example.test");
        let found = client
            .enrich(email_request(&email))
            .await
            .unwrap()
            .into_inner();
        assert_eq!(found.profiles.len(), 1);
        erase_in_another_process(&app, &email).await;
        let again = client
            .enrich(email_request(&email))
            .await
            .unwrap()
            .into_inner();
        assert!(
            again.compliance.unwrap().identifier_suppressed && again.profiles.is_empty(),
            "round {round}: an erased person was answered"
        );
    }
}

/// Another process's erasure reaches what this one keeps of the person
/// beyond its cache entries: the memo of their fully cached answer.
#[tokio::test]
async fn another_process_s_erasure_removes_the_memo_of_the_person_s_answer() {
    let (_site, app) = app_knowing_everyone().await;
    let mut client = app.client().await;
    for _ in 0..2 {
        client
            .enrich(email_request("ann@example.test"))
            .await
            .unwrap();
    }
    assert_eq!(app.enricher.memos_held(), 1, "fetched, then fully cached");
    erase_in_another_process(&app, "ann@example.test").await;
    assert!(app.enricher.ledger().follower().follow_now().await);
    // The list's news reaches the task that follows it for the caches.
    common::eventually("the memo goes with the erasure", || async {
        (app.enricher.memos_held() == 0).then_some(())
    })
    .await;
}

#[tokio::test]
async fn access_says_when_in_which_scope_and_under_which_reference_a_person_objected_or_was_erased()
{
    let app = Arc::new(TestApp::spawn("[dns]\nenabled = false\n").await);
    let mut client = app.client().await;
    client
        .erase(erase(
            "bo@example.test",
            pb::erase_request::Kind::ObjectionToMarketing,
            "OBJ-4",
        ))
        .await
        .unwrap();
    client
        .erase(erase(
            "bo@example.test",
            pb::erase_request::Kind::Erasure,
            "DSR-5",
        ))
        .await
        .unwrap();
    let held = client
        .access(access("bo@example.test"))
        .await
        .unwrap()
        .into_inner();
    let got: Vec<(&str, &str, bool)> = held
        .suppressions
        .iter()
        .map(|s| (s.scope.as_str(), s.reference.as_str(), s.at.is_some()))
        .collect();
    assert_eq!(got, [("marketing", "OBJ-4", true), ("all", "DSR-5", true)]);
}

#[tokio::test]
async fn access_answers_art_15_purposes_categories_recipients_sources_and_retention() {
    let (app, _sandbox) = common::sandbox_app().await;
    let mut client = app.client().await;
    let mut jane = tonic::Request::new(email_request("jane.doe@example.com"));
    jane.metadata_mut()
        .insert("x-caller", "campaign-7".parse().unwrap());
    let answer = client.enrich(jane).await.unwrap().into_inner();
    let held = client
        .access(access("jane.doe@example.com"))
        .await
        .unwrap()
        .into_inner();
    let summary = held.summary.expect("a summary");
    assert_eq!(summary.purposes.len(), 1);
    let marketing = &summary.purposes[0];
    assert_eq!(marketing.id, "marketing");
    assert_eq!(
        marketing.lawful_bases,
        [pb::LawfulBasis::LegitimateInterests as i32]
    );
    assert_eq!(marketing.retention.unwrap().seconds, 180 * 86_400);
    assert_eq!(
        summary.recipients,
        ["anonymous"],
        "the caller, not its x-caller note"
    );
    let asked: std::collections::BTreeSet<&str> = answer
        .sources
        .iter()
        .filter(|o| o.outcome() != pb::source_outcome::Outcome::Skipped)
        .map(|o| o.source_id.as_str())
        .collect();
    let listed: std::collections::BTreeSet<&str> =
        summary.sources.iter().map(String::as_str).collect();
    assert_eq!(listed, asked);
    let categories = answer.compliance.unwrap().notice.unwrap().data_categories;
    for c in &categories {
        assert!(summary.data_categories.contains(c), "{c} missing");
    }
}
