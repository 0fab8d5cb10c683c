//! The real server on port 0, called with the generated tonic client.
use crate::common;

use common::{TestApp, email_request, phone_request};
use enrichd::proto::v1 as pb;
use tonic::Code;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::{HealthCheckRequest, health_client::HealthClient};
use tonic_types::StatusExt;

#[tokio::test]
async fn health_reports_serving_for_the_server_and_the_service() {
    let app = TestApp::spawn("[dns]\nenabled = false\n").await;
    let mut health = HealthClient::new(app.channel().await);
    for service in ["", "enrichd.v1.Enrichment"] {
        let resp = health
            .check(HealthCheckRequest {
                service: service.into(),
            })
            .await
            .unwrap();
        assert_eq!(
            resp.into_inner().status(),
            ServingStatus::Serving,
            "{service:?}"
        );
    }
}

#[tokio::test]
async fn reflection_lists_the_enrichment_service() {
    use tonic_reflection::pb::v1::ServerReflectionRequest;
    use tonic_reflection::pb::v1::server_reflection_client::ServerReflectionClient;
    use tonic_reflection::pb::v1::server_reflection_request::MessageRequest;
    use tonic_reflection::pb::v1::server_reflection_response::MessageResponse;

    let app = TestApp::spawn("[dns]\nenabled = false\n").await;
    let mut client = ServerReflectionClient::new(app.channel().await);
    let request = ServerReflectionRequest {
        host: String::new(),
        message_request: Some(MessageRequest::ListServices(String::new())),
    };
    let mut responses = client
        .server_reflection_info(tokio_stream::iter([request]))
        .await
        .unwrap()
        .into_inner();
    let response = responses.message().await.unwrap().expect("one response");
    let Some(MessageResponse::ListServicesResponse(list)) = response.message_response else {
        panic!("expected a service list");
    };
    let names: Vec<String> = list.service.into_iter().map(|s| s.name).collect();
    assert!(
        names.contains(&"enrichd.v1.Enrichment".to_string()),
        "{names:?}"
    );
    assert!(
        names.contains(&"grpc.health.v1.Health".to_string()),
        "{names:?}"
    );

    // The contract itself is discoverable: a client can fetch the file by symbol.
    let request = ServerReflectionRequest {
        host: String::new(),
        message_request: Some(MessageRequest::FileContainingSymbol(
            "enrichd.v1.EnrichRequest".into(),
        )),
    };
    let mut responses = client
        .server_reflection_info(tokio_stream::iter([request]))
        .await
        .unwrap()
        .into_inner();
    let response = responses.message().await.unwrap().expect("one response");
    assert!(matches!(
        response.message_response,
        Some(MessageResponse::FileDescriptorResponse(ref f)) if !f.file_descriptor_proto.is_empty()
    ));
}

#[tokio::test]
async fn enrich_an_email_returns_identity_verification_and_compliance() {
    let dns = common::dns::start().await;
    let app = TestApp::with_dns(dns.addr, "").await;
    let mut client = app.client().await;
    let resp = client
        .enrich(email_request("  Jane.Doe+crm@Example.TEST "))
        .await
        .expect("enriched")
        .into_inner();

    assert_eq!(resp.request_id, "req-1");
    let Some(pb::normalized_identifier::Kind::Email(id)) = resp.identifier.unwrap().kind else {
        panic!("email identity");
    };
    assert_eq!(id.address, "Jane.Doe+crm@example.test");
    assert_eq!(id.canonical, "jane.doe+crm@example.test");
    assert_eq!(id.domain, "example.test");

    let Some(pb::verification::Kind::Email(v)) = resp.verification.unwrap().kind else {
        panic!("email verification");
    };
    assert!(v.syntax_valid && !v.disposable && !v.free_provider && !v.role_account);
    let mx = v.mx.unwrap();
    assert_eq!(mx.status(), pb::mx_check::Status::Found);
    assert_eq!(mx.hosts[0].exchange, "mx1.example.test");

    let c = resp.compliance.unwrap();
    assert_eq!(c.purpose, "marketing");
    assert_eq!(c.lawful_basis(), pb::LawfulBasis::LegitimateInterests);
    assert_eq!(c.lawful_basis_article, "Art. 6(1)(f)");
    assert_eq!(
        c.evidence.unwrap().legitimate_interest_assessment_ref,
        "LIA-1"
    );
    assert!(
        !c.notice.unwrap().required,
        "no source asked, nothing obtained"
    );
    assert!(resp.sources.is_empty());
    assert_eq!(resp.cache.unwrap().policy(), pb::cache_policy::Mode::Use);
}

/// An answer goes compressed to a client that takes gzip (enrichd's codec
/// encodes it, tonic compresses the frame) and reads as the plain one.
#[tokio::test]
async fn an_answer_is_gzipped_for_a_client_that_takes_it() {
    let dns = common::dns::start().await;
    let app = TestApp::with_dns(dns.addr, "").await;
    let plain = app
        .client()
        .await
        .enrich(email_request("jane@example.test"))
        .await
        .expect("enriched")
        .into_inner();
    let zipped = app
        .client()
        .await
        .accept_compressed(tonic::codec::CompressionEncoding::Gzip)
        .enrich(email_request("jane@example.test"))
        .await
        .expect("enriched");
    assert_eq!(
        zipped
            .metadata()
            .get("grpc-encoding")
            .and_then(|v| v.to_str().ok()),
        Some("gzip")
    );
    let zipped = zipped.into_inner();
    assert_eq!(zipped.identifier, plain.identifier);
    assert_eq!(zipped.summary, plain.summary);
    let purpose = |r: &pb::EnrichResponse| r.compliance.as_ref().map(|c| c.purpose.clone());
    assert_eq!(purpose(&zipped), Some("marketing".into()));
}

#[tokio::test]
async fn enrich_flags_disposable_free_and_role_addresses() {
    let app = TestApp::spawn("[dns]\nenabled = false\n").await;
    let mut client = app.client().await;
    for (email, disposable, free, role) in [
        ("x@mailinator.com", true, true, false),
        ("jane@gmail.com", false, true, false),
        ("Sales+eu@example.com", false, false, true),
    ] {
        let resp = client
            .enrich(email_request(email))
            .await
            .unwrap()
            .into_inner();
        let Some(pb::verification::Kind::Email(v)) = resp.verification.unwrap().kind else {
            panic!("email verification");
        };
        assert_eq!(
            (v.disposable, v.free_provider, v.role_account),
            (disposable, free, role),
            "{email}"
        );
        assert_eq!(v.mx.unwrap().status(), pb::mx_check::Status::Skipped);
    }
}

#[tokio::test]
async fn enrich_a_phone_with_a_default_region() {
    let app = TestApp::spawn("[dns]\nenabled = false\n").await;
    let mut client = app.client().await;
    let mut req = phone_request("07400 123456");
    req.hints = Some(pb::Hints {
        default_region: "gb".into(),
        ..Default::default()
    });
    let resp = client.enrich(req).await.unwrap().into_inner();
    let Some(pb::normalized_identifier::Kind::Phone(p)) = resp.identifier.unwrap().kind else {
        panic!("phone identity");
    };
    assert_eq!(p.e164, "+447400123456");
    assert_eq!(p.region, "GB");
    let Some(pb::verification::Kind::Phone(v)) = resp.verification.unwrap().kind else {
        panic!("phone verification");
    };
    assert!(v.valid);
    assert_eq!(v.number_type(), pb::phone_verification::NumberType::Mobile);
}

/// Expects INVALID_ARGUMENT with exactly one field violation on `field`.
fn assert_bad_field(status: &tonic::Status, field: &str, needle: &str) {
    assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
    let details = status.get_error_details();
    let bad = details.bad_request().expect("BadRequest details");
    let fields: Vec<&str> = bad
        .field_violations
        .iter()
        .map(|v| v.field.as_str())
        .collect();
    assert_eq!(fields, [field], "{status:?}");
    assert!(
        bad.field_violations[0].description.contains(needle),
        "{:?} should mention {needle:?}",
        bad.field_violations[0].description
    );
}

/// Expects FAILED_PRECONDITION whose violations are exactly `want` (type, subject).
fn assert_precondition(status: &tonic::Status, want: &[(&str, &str)]) {
    assert_eq!(status.code(), Code::FailedPrecondition, "{status:?}");
    let details = status.get_error_details();
    let failure = details
        .precondition_failure()
        .expect("PreconditionFailure details");
    let got: Vec<(&str, &str)> = failure
        .violations
        .iter()
        .map(|v| (v.r#type.as_str(), v.subject.as_str()))
        .collect();
    assert_eq!(got, want, "{status:?}");
}

#[tokio::test]
async fn malformed_identifiers_are_invalid_argument_with_field_violations() {
    let app = TestApp::spawn("[dns]\nenabled = false\n").await;
    let mut client = app.client().await;
    let cases = [
        (email_request(""), "email", "is empty"),
        (email_request("jane.example.com"), "email", "no '@'"),
        (
            email_request("\"jane\"@example.com"),
            "email",
            "quoted local part",
        ),
        (email_request("jane@[127.0.0.1]"), "email", "IP-literal"),
        (email_request(&"a".repeat(2000)), "email", "at most"),
        (phone_request("07400 123456"), "phone", "default region"),
        (
            phone_request("call me maybe"),
            "phone",
            "not a phone number",
        ),
        (
            pb::EnrichRequest {
                identifier: None,
                ..email_request("x@example.com")
            },
            "identifier",
            "one of email or phone",
        ),
        (
            pb::EnrichRequest {
                hints: Some(pb::Hints {
                    default_region: "Atlantis".into(),
                    ..Default::default()
                }),
                ..phone_request("07400 123456")
            },
            "hints.default_region",
            "ISO 3166-1",
        ),
    ];
    for (req, field, needle) in cases {
        let status = client.enrich(req).await.expect_err("refused");
        assert_bad_field(&status, field, needle);
    }
    // The server keeps serving after every refusal.
    client
        .enrich(email_request("jane@example.com"))
        .await
        .expect("still serving");
}

#[tokio::test]
async fn missing_or_disallowed_lawful_grounds_are_failed_precondition() {
    let app = TestApp::spawn("[dns]\nenabled = false\n").await;
    let mut client = app.client().await;
    let base = email_request("jane@example.com");
    let no_evidence = Some(pb::BasisEvidence::default());
    let cases: Vec<(pb::EnrichRequest, Vec<(&str, &str)>)> = vec![
        (
            pb::EnrichRequest {
                purpose: String::new(),
                ..base.clone()
            },
            vec![("PURPOSE", "purpose")],
        ),
        (
            pb::EnrichRequest {
                lawful_basis: 0,
                ..base.clone()
            },
            vec![("LAWFUL_BASIS", "lawful_basis")],
        ),
        (
            pb::EnrichRequest {
                purpose: "astrology".into(),
                ..base.clone()
            },
            vec![("PURPOSE", "astrology")],
        ),
        (
            pb::EnrichRequest {
                lawful_basis: pb::LawfulBasis::Contract.into(),
                ..base.clone()
            },
            vec![("LAWFUL_BASIS", "contract")],
        ),
        (
            pb::EnrichRequest {
                lawful_basis: pb::LawfulBasis::Consent.into(),
                evidence: no_evidence.clone(),
                ..base.clone()
            },
            vec![("BASIS_EVIDENCE", "evidence.consent_ref")],
        ),
        (
            pb::EnrichRequest {
                evidence: no_evidence.clone(),
                ..base.clone()
            },
            vec![(
                "BASIS_EVIDENCE",
                "evidence.legitimate_interest_assessment_ref",
            )],
        ),
        (
            pb::EnrichRequest {
                lawful_basis: pb::LawfulBasis::VitalInterests.into(),
                ..base.clone()
            },
            vec![("LAWFUL_BASIS_REFUSED", "vital_interests")],
        ),
    ];
    for (req, want) in cases {
        let status = client.enrich(req).await.expect_err("refused");
        assert_precondition(&status, &want);
    }
    // Consent with its reference is accepted and the reference is echoed.
    let resp = client
        .enrich(pb::EnrichRequest {
            lawful_basis: pb::LawfulBasis::Consent.into(),
            evidence: Some(pb::BasisEvidence {
                consent_ref: "CONSENT-42".into(),
                ..Default::default()
            }),
            ..base
        })
        .await
        .expect("lawful")
        .into_inner();
    assert_eq!(
        resp.compliance.unwrap().evidence.unwrap().consent_ref,
        "CONSENT-42"
    );
}

#[tokio::test]
async fn oversized_requests_are_refused_and_the_server_goes_on() {
    let app = TestApp::spawn("[dns]\nenabled = false\n[server]\nmax_request_bytes = 4096\n").await;
    let mut client = app.client().await;
    let mut req = email_request("jane@example.com");
    req.request_id = "x".repeat(10_000);
    let status = client.enrich(req).await.expect_err("too large");
    assert_eq!(status.code(), Code::OutOfRange, "{status:?}");
    assert!(status.message().contains("too large"));
    client
        .enrich(email_request("jane@example.com"))
        .await
        .expect("still serving");
}

#[tokio::test]
async fn metrics_count_calls_by_method_and_code() {
    let server = wiremock::MockServer::start().await;
    wiremock::Mock::given(wiremock::matchers::path_regex("^/a/"))
        .respond_with(wiremock::ResponseTemplate::new(404))
        .mount(&server)
        .await;
    let catalog = common::catalog_from(&common::test_source(
        "site-a",
        "email",
        &format!("{}/a/{{input}}", server.uri()),
        "",
    ));
    let app = TestApp::with_catalog(
        "[dns]\nenabled = false\n[server]\nmetrics_listen = \"127.0.0.1:0\"\n",
        catalog,
    )
    .await;
    let mut client = app.client().await;
    for _ in 0..2 {
        client
            .enrich(email_request("jane@example.com"))
            .await
            .unwrap();
    }
    let _ = client.enrich(email_request("not-an-email")).await;

    let body = http_get(app.metrics_addr.expect("metrics bound"), "/metrics").await;
    assert!(
        body.contains(
            r#"enrichd_grpc_requests_total{method="Enrich",caller="anonymous",code="OK"}"#
        ),
        "{body}"
    );
    assert!(
        body.contains(r#"enrichd_grpc_requests_total{method="Enrich",caller="anonymous",code="INVALID_ARGUMENT"}"#),
        "{body}"
    );
    assert!(
        body.contains("enrichd_grpc_request_duration_seconds_bucket"),
        "{body}"
    );
    // The ledger's state, as documented, and the process's own figures.
    for line in [
        "enrichd_ledger_writer_up 1",
        "enrichd_ledger_database_up 1",
        "process_resident_memory_bytes ",
        "process_open_fds ",
        "process_cpu_seconds_total ",
    ] {
        assert!(body.contains(line), "{line}: {body}");
    }
    // Per source: requests, outcomes, latency, cache.
    for line in [
        r#"enrichd_source_requests_total{source="site-a"} 1"#,
        r#"enrichd_source_outcomes_total{source="site-a",outcome="not_found"} 1"#,
        r#"enrichd_source_cache_total{source="site-a",result="miss"} 1"#,
        r#"enrichd_source_cache_total{source="site-a",result="hit"} 1"#,
        r#"enrichd_source_breaker_state{source="site-a"} 0"#,
    ] {
        assert!(body.contains(line), "missing {line} in\n{body}");
    }
    assert!(
        body.contains("enrichd_source_latency_seconds_bucket"),
        "{body}"
    );
    assert!(!body.contains("jane"), "no identifier in metrics");
}

#[tokio::test]
async fn requests_past_the_process_s_budget_wait_for_a_slot_and_are_counted() {
    // Two sources of one call, a budget of one request in flight: the
    // second waits for the first (each held 300 ms by its site), both
    // answer, and the wait is counted.
    let server = wiremock::MockServer::start().await;
    wiremock::Mock::given(wiremock::matchers::method("GET"))
        .respond_with(
            wiremock::ResponseTemplate::new(404).set_delay(std::time::Duration::from_millis(300)),
        )
        .mount(&server)
        .await;
    let catalog = common::catalog_from(
        &["site-a", "site-b"]
            .map(|id| {
                common::test_source(id, "email", &format!("{}/{id}/{{input}}", server.uri()), "")
            })
            .concat(),
    );
    let app = TestApp::with_catalog(
        "[dns]\nenabled = false\n[http]\nmax_requests_in_flight = 1\n[server]\nmetrics_listen = \"127.0.0.1:0\"\n",
        catalog,
    )
    .await;
    let answer = app
        .client()
        .await
        .enrich(email_request("jane@example.com"))
        .await
        .unwrap()
        .into_inner();
    let outcomes: Vec<i32> = answer
        .sources
        .iter()
        .filter(|s| s.source_id.starts_with("site-"))
        .map(|s| s.outcome)
        .collect();
    assert_eq!(
        outcomes,
        [pb::source_outcome::Outcome::NotFound as i32; 2],
        "both answered: {:?}",
        answer.sources
    );
    let body = http_get(app.metrics_addr.expect("metrics bound"), "/metrics").await;
    assert!(body.contains("enrichd_http_budget_waits_total 1"), "{body}");
}

async fn http_get(addr: std::net::SocketAddr, path: &str) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    stream
        .write_all(format!("GET {path} HTTP/1.0\r\nHost: test\r\n\r\n").as_bytes())
        .await
        .unwrap();
    let mut body = String::new();
    stream.read_to_string(&mut body).await.unwrap();
    body
}
