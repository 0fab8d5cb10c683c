//! Honest outcomes: "not found" only when enough sources answered; when
//! they errored the answer is incomplete, the ledger says so, and risk does
//! not count a missing footprint against the person.
use crate::common;

use common::{TestApp, email_request, risk_codes};
use enrichd::ledger::{Ledger, LedgerOutcome};
use enrichd::privacy::KeyedHasher;
use enrichd::proto::v1 as pb;
use pb::coverage::Completeness;
use wiremock::ResponseTemplate;

async fn answer_and_record(status: u16) -> (pb::EnrichResponse, LedgerOutcome) {
    let (_site, catalog) = common::one_source("email", "", ResponseTemplate::new(status)).await;
    let app = TestApp::with_catalog("[dns]\nenabled = false\n", catalog).await;
    let answer = app
        .client()
        .await
        .enrich(email_request("ann@example.test"))
        .await
        .unwrap()
        .into_inner();
    let ledger = Ledger::open(&app.ledger_url).await.unwrap();
    let subject = KeyedHasher::new(common::TEST_HASH_KEY).hash("email:ann@example.test");
    let records = ledger.records(&subject).await.unwrap();
    (answer, records.last().unwrap().outcome)
}

#[tokio::test]
async fn sources_that_errored_make_an_incomplete_answer_not_a_not_found() {
    let (answer, outcome) = answer_and_record(500).await;
    let coverage = answer.coverage.unwrap();
    assert_eq!(coverage.completeness(), Completeness::Incomplete);
    assert_eq!((coverage.answered, coverage.unanswered), (0, 1));
    assert_eq!(outcome, LedgerOutcome::Incomplete);
    assert!(
        !risk_codes(&answer).contains(&"no_digital_footprint".to_owned()),
        "{:?}",
        risk_codes(&answer)
    );
}

#[tokio::test]
async fn sources_that_answered_make_a_not_found_with_its_risk_reason() {
    let (answer, outcome) = answer_and_record(404).await;
    let coverage = answer.coverage.unwrap();
    assert_eq!(coverage.completeness(), Completeness::NotFound);
    assert_eq!((coverage.answered, coverage.unanswered), (1, 0));
    assert_eq!(outcome, LedgerOutcome::NotFound);
    assert!(risk_codes(&answer).contains(&"no_digital_footprint".to_owned()));
}

/// Each source's outcome carries how long it took: a fresh answer the
/// time its site took (it read 0 ms for every answer the cache then kept),
/// the same answer from the cache the time the lookup took.
#[tokio::test]
async fn a_fresh_answer_carries_its_sources_latency() {
    let slow = ResponseTemplate::new(404).set_delay(std::time::Duration::from_millis(80));
    let (_site, catalog) = common::one_source("email", "", slow).await;
    let app = TestApp::with_catalog("[dns]\nenabled = false\n", catalog).await;
    let mut client = app.client().await;
    let mut ask = async || {
        let answer = client
            .enrich(email_request("ann@example.test"))
            .await
            .unwrap()
            .into_inner();
        common::source_outcome(&answer, "a").clone()
    };
    let fresh = ask().await;
    assert_eq!(fresh.outcome(), pb::source_outcome::Outcome::NotFound);
    assert!(!fresh.cached);
    assert!(fresh.latency_ms >= 80, "{fresh:?}");
    let cached = ask().await;
    assert!(cached.cached);
    assert!(cached.latency_ms < 80, "{cached:?}");
}
