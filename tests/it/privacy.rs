//! Lawful processing as behaviour, through the gRPC API: purpose policy,
//! field masks, the suppression list, Erase, Access and the ledger.
use crate::common;

use common::{TestApp, catalog_from, email_request, test_source};
use enrichd::proto::v1 as pb;
use pb::source_outcome::Outcome;
use wiremock::matchers::path_regex;
use wiremock::{Mock, MockServer, ResponseTemplate};

fn found() -> ResponseTemplate {
    ResponseTemplate::new(200).set_body_string(r#"{"user": {"name": "Ann Example"}}"#)
}

/// Two sources: one for every purpose, one for marketing only.
async fn setup() -> (MockServer, TestApp) {
    let server = MockServer::start().await;
    Mock::given(path_regex("^/all/"))
        .respond_with(found())
        .mount(&server)
        .await;
    Mock::given(path_regex("^/mkt/"))
        .respond_with(found())
        .mount(&server)
        .await;
    let uri = server.uri();
    let mkt = test_source(
        "mkt",
        "email",
        &format!("{uri}/mkt/{{input}}"),
        "tags = [\"programming\"]",
    )
    .replace(
        "purposes = [\"marketing\", \"crm_enrichment\", \"fraud_prevention\"]",
        "purposes = [\"marketing\"]",
    );
    let catalog = catalog_from(&format!(
        "{}{}",
        test_source(
            "all",
            "email",
            &format!("{uri}/all/{{input}}"),
            "tags = [\"programming\"]"
        ),
        mkt
    ));
    let app = TestApp::with_catalog("[dns]\nenabled = false\n", catalog).await;
    (server, app)
}

async fn requests_to(server: &MockServer, prefix: &str) -> usize {
    server
        .received_requests()
        .await
        .unwrap()
        .iter()
        .filter(|r| r.url.path().starts_with(prefix))
        .count()
}

fn with_purpose(email: &str, purpose: &str) -> pb::EnrichRequest {
    pb::EnrichRequest {
        purpose: purpose.into(),
        ..email_request(email)
    }
}

fn access(email: &str) -> pb::AccessRequest {
    pb::AccessRequest {
        identifier: Some(pb::access_request::Identifier::Email(email.into())),
        default_region: String::new(),
        reference: String::new(),
        ..Default::default()
    }
}

fn erase(email: &str, kind: pb::erase_request::Kind) -> pb::EraseRequest {
    pb::EraseRequest {
        identifier: Some(pb::erase_request::Identifier::Email(email.into())),
        default_region: String::new(),
        kind: kind.into(),
        reference: "DSR-17".into(),
    }
}

#[tokio::test]
async fn fraud_prevention_answers_carry_no_interests_nor_profiles_and_skip_marketing_sources() {
    let (server, app) = setup().await;
    let mut client = app.client().await;
    let resp = client
        .enrich(with_purpose("ann@example.test", "fraud_prevention"))
        .await
        .unwrap()
        .into_inner();
    assert!(resp.interests.is_empty() && resp.profiles.is_empty() && resp.attributes.is_empty());
    assert!(resp.footprint.is_some() && resp.risk.is_some() && resp.verification.is_some());
    let mkt = resp.sources.iter().find(|o| o.source_id == "mkt").unwrap();
    assert_eq!(
        (mkt.outcome(), mkt.skip_reason()),
        (Outcome::Skipped, pb::source_outcome::SkipReason::Purpose)
    );
    assert_eq!(
        requests_to(&server, "/mkt/").await,
        0,
        "a marketing-only source is never asked"
    );
    let c = resp.compliance.unwrap();
    assert_eq!(c.fields_withheld, ["profiles", "attributes", "interests"]);
    assert!(
        c.suppressed
            .iter()
            .all(|s| s.reason() == pb::suppression::Reason::Purpose)
    );

    // Marketing gets interests.
    let resp = client
        .enrich(with_purpose("ann@example.test", "marketing"))
        .await
        .unwrap()
        .into_inner();
    assert!(!resp.interests.is_empty() && !resp.profiles.is_empty());
}

#[tokio::test]
async fn a_field_mask_narrows_the_answer_and_spares_the_sources() {
    let (server, app) = setup().await;
    let mut client = app.client().await;
    let mut req = email_request("ann@example.test");
    req.field_mask = Some(pbjson_types::FieldMask {
        paths: vec!["verification".into()],
    });
    let resp = client.enrich(req).await.unwrap().into_inner();
    assert!(resp.verification.is_some());
    assert!(
        resp.profiles.is_empty()
            && resp.interests.is_empty()
            && resp.footprint.is_none()
            && resp.risk.is_none()
    );
    assert!(resp.sources.is_empty());
    assert_eq!(
        server.received_requests().await.unwrap().len(),
        0,
        "no source needed, none asked"
    );
    let c = resp.compliance.unwrap();
    assert!(
        c.suppressed
            .iter()
            .all(|s| s.reason() == pb::suppression::Reason::FieldMask)
    );

    let mut bad = email_request("ann@example.test");
    bad.field_mask = Some(pbjson_types::FieldMask {
        paths: vec!["shoe_size".into()],
    });
    let status = client.enrich(bad).await.expect_err("unknown field");
    assert_eq!(status.code(), tonic::Code::InvalidArgument);
}

#[tokio::test]
async fn erasure_purges_the_cache_tombstones_the_ledger_and_suppresses_before_any_source() {
    let (server, app) = setup().await;
    let mut client = app.client().await;
    let first = client
        .enrich(email_request("Ann@Example.test"))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(first.profiles.len(), 2);
    let before = server.received_requests().await.unwrap().len();

    // What enrichd holds, before erasure.
    let held = client
        .access(access("ann@example.test"))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(held.cached.len(), 2, "{:?}", held.cached);
    assert!(
        held.cached
            .iter()
            .all(|c| c.profiles[0].provenance.is_some())
    );
    assert_eq!(held.ledger.len(), 1);
    let record = &held.ledger[0];
    assert_eq!(record.purpose, "marketing");
    assert_eq!(record.lawful_basis(), pb::LawfulBasis::LegitimateInterests);
    assert_eq!(
        record
            .evidence
            .as_ref()
            .unwrap()
            .legitimate_interest_assessment_ref,
        "LIA-1"
    );
    assert_eq!(record.sources_asked, ["all", "mkt"]);
    assert!(record.field_categories.contains(&"interests".to_string()));
    assert_eq!(record.outcome, "enriched");
    assert!(!held.logic.is_empty() && !held.suppressed);

    let erased = client
        .erase(erase("ann@example.test", pb::erase_request::Kind::Erasure))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(erased.cache_entries_removed, 2);
    assert_eq!(erased.ledger_records_redacted, 1);
    assert!(erased.suppressed && erased.suppressed_purposes.is_empty());
    assert!(!erased.tombstone.is_empty() && !erased.tombstone.contains("ann"));

    // Suppressed for every purpose, before the cache and any source, and
    // however the address is typed: fullwidth letters are the same mailbox.
    for (email, purpose) in [
        ("ann@example.test", "marketing"),
        ("ann@example.test", "crm_enrichment"),
        ("ann@example.test", "fraud_prevention"),
        ("ＡＮＮ@ｅｘａｍｐｌｅ.test", "marketing"),
    ] {
        let resp = client
            .enrich(with_purpose(email, purpose))
            .await
            .unwrap()
            .into_inner();
        let c = resp.compliance.as_ref().unwrap();
        assert!(c.identifier_suppressed, "{email} for {purpose}");
        assert_eq!(
            c.suppressed[0].reason(),
            pb::suppression::Reason::DataSubjectRequest
        );
        assert!(
            resp.identifier.is_none()
                && resp.verification.is_none()
                && resp.profiles.is_empty()
                && resp.sources.is_empty()
        );
    }
    assert_eq!(
        server.received_requests().await.unwrap().len(),
        before,
        "no source saw a request"
    );

    let after = client
        .access(access("ann@example.test"))
        .await
        .unwrap()
        .into_inner();
    assert!(after.cached.is_empty());
    assert!(after.suppressed);
    assert_eq!(after.suppressed_purposes, ["all"]);
    let tomb = &after.ledger[0];
    assert_eq!(tomb.outcome, "enriched (redacted)");
    assert!(tomb.sources_asked.is_empty() && tomb.caller.is_empty());
    assert_eq!(
        tomb.evidence
            .as_ref()
            .unwrap()
            .legitimate_interest_assessment_ref,
        ""
    );
    assert_eq!(
        after
            .ledger
            .iter()
            .filter(|r| r.outcome == "suppressed")
            .count(),
        4
    );
}

#[tokio::test]
async fn an_objection_to_marketing_suppresses_marketing_only() {
    let (_server, app) = setup().await;
    let mut client = app.client().await;
    let done = client
        .erase(erase(
            "ann@example.test",
            pb::erase_request::Kind::ObjectionToMarketing,
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(done.suppressed_purposes, ["marketing"]);
    let mkt = client
        .enrich(with_purpose("ann@example.test", "marketing"))
        .await
        .unwrap()
        .into_inner();
    assert!(mkt.compliance.unwrap().identifier_suppressed);
    let mut crm = with_purpose("ann@example.test", "crm_enrichment");
    crm.lawful_basis = pb::LawfulBasis::Contract.into();
    let crm = client.enrich(crm).await.unwrap().into_inner();
    assert!(!crm.compliance.unwrap().identifier_suppressed);
    assert!(!crm.profiles.is_empty());
}

#[tokio::test]
async fn every_processing_and_refusal_is_recorded_with_its_caller() {
    let (_server, app) = setup().await;
    let mut client = app.client().await;
    let mut refused = tonic::Request::new(pb::EnrichRequest {
        lawful_basis: pb::LawfulBasis::Consent.into(),
        evidence: None,
        ..email_request("ann@example.test")
    });
    refused
        .metadata_mut()
        .insert("x-caller", "crm-eu".parse().unwrap());
    assert_eq!(
        client.enrich(refused).await.unwrap_err().code(),
        tonic::Code::FailedPrecondition
    );
    let mut ok = tonic::Request::new(email_request("ann@example.test"));
    ok.metadata_mut()
        .insert("x-caller", "crm-eu".parse().unwrap());
    let answer = client.enrich(ok).await.unwrap().into_inner();
    let c = answer.compliance.unwrap();
    assert!(!c.processing_id.is_empty());
    // Kept for the purpose's retention (marketing: 180 days), counted from
    // this processing.
    let kept = c.retain_until.unwrap().seconds - answer.generated_at.unwrap().seconds;
    assert!((kept - 180 * 86_400).abs() <= 1, "{kept}");

    let held = client
        .access(access("ann@example.test"))
        .await
        .unwrap()
        .into_inner();
    let outcomes: Vec<&str> = held.ledger.iter().map(|r| r.outcome.as_str()).collect();
    assert_eq!(outcomes, ["refused: no lawful ground", "enriched"]);
    // No key on this server (auth off, loopback): the caller is anonymous;
    // what x-caller says is kept as a note, never as the caller.
    assert!(
        held.ledger
            .iter()
            .all(|r| r.caller == "anonymous" && r.on_behalf_of == "crm-eu")
    );
    assert_eq!(held.ledger[1].id, c.processing_id);
}

#[tokio::test]
async fn the_notice_is_due_a_month_after_the_first_processing_or_at_first_contact() {
    let (_server, app) = setup().await;
    let mut client = app.client().await;
    let first = client
        .enrich(email_request("ann@example.test"))
        .await
        .unwrap()
        .into_inner();
    let notice = first.compliance.unwrap().notice.unwrap();
    assert!(notice.required && notice.exemption.is_empty());
    assert_eq!(notice.sources, ["all", "mkt"]);
    let due = notice.notify_by.unwrap().seconds;
    let generated = first.generated_at.unwrap().seconds;
    assert!((due - generated - 30 * 86400).abs() <= 2);

    // A later processing keeps the first deadline; a planned contact brings it forward.
    let mut soon = email_request("ann@example.test");
    let contact = generated + 7 * 86400;
    soon.hints = Some(pb::Hints {
        first_contact_at: Some(pbjson_types::Timestamp {
            seconds: contact,
            nanos: 0,
        }),
        ..Default::default()
    });
    let again = client.enrich(soon).await.unwrap().into_inner();
    assert_eq!(
        again
            .compliance
            .unwrap()
            .notice
            .unwrap()
            .notify_by
            .unwrap()
            .seconds,
        contact
    );
    let later = client
        .enrich(email_request("ann@example.test"))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        later
            .compliance
            .unwrap()
            .notice
            .unwrap()
            .notify_by
            .unwrap()
            .seconds,
        due
    );
}

#[tokio::test]
async fn a_ledger_that_cannot_be_written_fails_the_request_and_returns_nothing() {
    let (_server, app) = setup().await;
    let mut client = app.client().await;
    // Break the ledger under the running server.
    let path = app.dir.path().join("ledger.db");
    sqlx::any::install_default_drivers();
    let mut conn =
        <sqlx::AnyConnection as sqlx::Connection>::connect(&format!("sqlite://{}", path.display()))
            .await
            .unwrap();
    sqlx::query("DROP TABLE ledger")
        .execute(&mut conn)
        .await
        .unwrap();
    let status = client
        .enrich(email_request("ann@example.test"))
        .await
        .expect_err("no answer without a record");
    assert_eq!(status.code(), tonic::Code::Unavailable);
}
