//! The keyed commercial sources of the real catalog (Have I Been Pwned,
//! Twilio Lookup, Hunter, People Data Labs) against recorded answers in
//! their documented formats (`tests/fixtures/<source>/`): disabled, and
//! never asked, until their secrets are set; with them set, each secret goes
//! where the API wants it and never into the answer, and the answer gains
//! breaches, the phone line and the mailbox check.
use crate::common;

use common::{TestApp, email_request, fixture, phone_request, real_catalog, real_catalog_with};
use enrichd::proto::v1 as pb;
use wiremock::matchers::{header, path, path_regex, query_param};
use wiremock::{Mock, MockServer, ResponseTemplate};

const SECRETS: &[(&str, &str)] = &[
    ("HIBP_API_KEY", "hibp-secret-0001"),
    ("TWILIO_ACCOUNT_SID", "AC0123456789abcdef"),
    ("TWILIO_AUTH_TOKEN", "twilio-secret-0002"),
    ("HUNTER_API_KEY", "hunter-secret-0003"),
    ("PDL_API_KEY", "pdl-secret-0004"),
    ("EKYCPRO_API_KEY", "ekycpro-secret-0005"),
];

fn secret(name: &str) -> Option<String> {
    SECRETS
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, v)| v.to_string())
}

fn json(status: u16, body: String) -> ResponseTemplate {
    ResponseTemplate::new(status).set_body_raw(body, "application/json")
}

fn status_of(source: &str) -> u16 {
    fixture(&format!("{source}/missing.status"))
        .trim()
        .parse()
        .unwrap()
}

/// The four APIs, answering only requests that carry their secret the way
/// each documents it; anything else is a 401 (and a failed test).
async fn keyed_sites() -> MockServer {
    use base64::Engine as _;
    let server = MockServer::start().await;
    let basic = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode("AC0123456789abcdef:twilio-secret-0002")
    );
    let mocks = [
        Mock::given(path("/api/v3/breachedaccount/ada%40example.test"))
            .and(query_param("truncateResponse", "false"))
            .and(header("hibp-api-key", "hibp-secret-0001"))
            .respond_with(json(200, fixture("hibp/found.json"))),
        Mock::given(path_regex("^/api/v3/breachedaccount/"))
            .and(header("hibp-api-key", "hibp-secret-0001"))
            .respond_with(ResponseTemplate::new(status_of("hibp")))
            .with_priority(10),
        Mock::given(path("/v2/PhoneNumbers/%2B16502530000"))
            .and(query_param("Fields", "line_type_intelligence,caller_name"))
            .and(header("authorization", basic.as_str()))
            .respond_with(json(200, fixture("twilio-lookup/found.json"))),
        Mock::given(path("/v2/PhoneNumbers/%2B447400123456"))
            .and(query_param("Fields", "sim_swap,call_forwarding"))
            .and(header("authorization", basic.as_str()))
            .respond_with(json(200, fixture("twilio-fraud/found.json"))),
        Mock::given(path_regex("^/v2/PhoneNumbers/"))
            .and(header("authorization", basic.as_str()))
            .respond_with(json(
                status_of("twilio-lookup"),
                fixture("twilio-lookup/missing.json"),
            ))
            .with_priority(10),
        Mock::given(path("/v2/email-verifier"))
            .and(query_param("email", "ada@example.test"))
            .and(header("x-api-key", "hunter-secret-0003"))
            .respond_with(json(200, fixture("hunter-verifier/found.json"))),
        Mock::given(path("/v2/email-verifier"))
            .and(header("x-api-key", "hunter-secret-0003"))
            .respond_with(json(
                status_of("hunter-verifier"),
                fixture("hunter-verifier/missing.json"),
            ))
            .with_priority(10),
        Mock::given(path("/v5/person/enrich"))
            .and(query_param("email", "ada@example.test"))
            .and(header("x-api-key", "pdl-secret-0004"))
            .respond_with(json(200, fixture("pdl/found.json"))),
        Mock::given(path("/v5/person/enrich"))
            .and(header("x-api-key", "pdl-secret-0004"))
            .respond_with(json(status_of("pdl"), fixture("pdl/missing.json")))
            .with_priority(10),
    ];
    for m in mocks {
        m.mount(&server).await;
    }
    // EKYCPro: a form body naming the number and its country.
    for (number, answer) in [
        ("628138800001", "found"),
        ("628138800002", "not-registered"),
        ("628138800003", "checking"),
    ] {
        Mock::given(wiremock::matchers::method("POST"))
            .and(path("/v1/whatsapp"))
            .and(header("x-api-key", "ekycpro-secret-0005"))
            .and(header("content-type", "application/x-www-form-urlencoded"))
            .and(wiremock::matchers::body_string(format!(
                "number=%2B{number}&country=ID"
            )))
            .respond_with(json(
                200,
                fixture(&format!("ekycpro-whatsapp/{answer}.json")),
            ))
            .mount(&server)
            .await;
    }
    Mock::given(wiremock::matchers::any())
        .respond_with(ResponseTemplate::new(404))
        .with_priority(20)
        .mount(&server)
        .await;
    server
}

const KEYED: &[&str] = &[
    "hibp",
    "twilio-lookup",
    "hunter-verifier",
    "pdl",
    "ekycpro-whatsapp",
];

/// `request` for fraud prevention on legitimate interests.
async fn enrich(app: &TestApp, mut request: pb::EnrichRequest) -> pb::EnrichResponse {
    request.purpose = "fraud_prevention".into();
    request.lawful_basis = pb::LawfulBasis::LegitimateInterests.into();
    request.evidence = Some(pb::BasisEvidence {
        legitimate_interest_assessment_ref: "LIA-7".into(),
        ..Default::default()
    });
    ask(app, request).await
}

/// `request` as it is.
async fn ask(app: &TestApp, request: pb::EnrichRequest) -> pb::EnrichResponse {
    app.client()
        .await
        .enrich(request)
        .await
        .expect("enriched")
        .into_inner()
}

#[tokio::test]
async fn without_their_secrets_keyed_sources_are_disabled_and_never_asked() {
    let server = keyed_sites().await;
    let catalog = real_catalog(&server.uri());
    for id in KEYED {
        let source = catalog.get(id).unwrap_or_else(|| panic!("{id} ships"));
        let why = source.disabled.as_deref().unwrap_or_default();
        assert!(
            why.contains("to enable") && why.contains("set "),
            "{id}: {why:?}"
        );
    }
    let twilio = catalog.get("twilio-lookup").unwrap();
    assert_eq!(
        twilio.disabled.as_deref(),
        Some("secret not set: set TWILIO_ACCOUNT_SID and TWILIO_AUTH_TOKEN to enable")
    );
    let (app, _dns) = common::app_with_dns(catalog).await;
    let answer = enrich(&app, email_request("ada@example.test")).await;
    assert!(answer.breaches.is_empty());
    let asked: Vec<String> = server
        .received_requests()
        .await
        .unwrap()
        .iter()
        .map(|r| r.url.path().to_owned())
        .filter(|p| {
            p.starts_with("/api/v3/breachedaccount/")
                || p.starts_with("/v5/person/")
                || p.starts_with("/v2/PhoneNumbers/")
                || p.starts_with("/v2/email-verifier")
        })
        .collect();
    assert!(asked.is_empty(), "keyed APIs asked without keys: {asked:?}");
}

#[tokio::test]
async fn with_their_secrets_the_answer_has_breaches_mailbox_and_a_person_record() {
    let server = keyed_sites().await;
    let catalog = real_catalog_with(&server.uri(), &secret);
    for id in KEYED {
        assert!(catalog.get(id).unwrap().enabled(), "{id} with its secret");
    }
    let (app, _dns) = common::app_with_dns(catalog).await;
    let answer = enrich(&app, email_request("ada@example.test")).await;

    // Have I Been Pwned: the breaches, newest first, without the sensitive one.
    let names: Vec<(&str, &str)> = answer
        .breaches
        .iter()
        .map(|b| (b.name.as_str(), b.breach_date.as_str()))
        .collect();
    assert_eq!(names, [("Adobe", "2013-10-04"), ("LinkedIn", "2012-05-05")]);
    let adobe = &answer.breaches[0];
    assert_eq!(adobe.domain, "adobe.com");
    assert_eq!(
        adobe.data_classes,
        [
            "Email addresses",
            "Password hints",
            "Passwords",
            "Usernames"
        ]
    );
    assert_eq!(adobe.provenance.as_ref().unwrap().source_id, "hibp");
    // At a glance in the summary, the sensitive breach not counted; and
    // the identity's age (the oldest breach, with its provenance) and the
    // exposed passwords among the verdict's reasons.
    let summary = answer.summary.as_ref().unwrap();
    let breaches = summary.breaches.as_ref().unwrap();
    assert_eq!(
        (
            breaches.count,
            breaches.first_breach_date.as_str(),
            breaches.last_breach_date.as_str()
        ),
        (2, "2012-05-05", "2013-10-04")
    );
    assert_eq!(
        breaches.data_classes,
        [
            "Email addresses",
            "Password hints",
            "Passwords",
            "Usernames"
        ]
    );
    let first = summary.first_seen.as_ref().unwrap();
    assert_eq!(
        first.value.as_ref().map(|t| t.seconds),
        Some(
            chrono::DateTime::parse_from_rfc3339("2012-05-05T00:00:00Z")
                .unwrap()
                .timestamp()
        )
    );
    assert_eq!(first.provenance.as_ref().unwrap().source_id, "hibp");
    let reasons = &answer.risk.as_ref().unwrap().reasons;
    let exposed = reasons
        .iter()
        .find(|r| r.code == "breached_credentials")
        .expect("a reason");
    assert!(
        exposed.detail.contains("Adobe") && exposed.detail.contains("LinkedIn"),
        "{}",
        exposed.detail
    );
    assert!(
        !reasons.iter().any(|r| r.code == "only_recent_accounts"),
        "breached in 2012: not new"
    );
    let compliance = answer.compliance.as_ref().unwrap();
    assert_eq!(compliance.special_categories_suppressed, 1);
    assert!(
        compliance
            .suppressed
            .iter()
            .any(|s| s.target == "breaches" && s.detail.contains("1 breaches")),
        "{:?}",
        compliance.suppressed
    );
    let text = serde_json::to_string(&answer).unwrap();
    assert!(
        !text.contains("ExampleDating") && !text.contains("Sexual preferences"),
        "the sensitive breach is in the answer"
    );
    // The breach source is named in the Art. 14 notice.
    assert!(
        compliance
            .notice
            .as_ref()
            .unwrap()
            .sources
            .contains(&"hibp".to_string())
    );

    // Hunter: the mailbox check, in the email verification.
    let Some(pb::verification::Kind::Email(email)) =
        answer.verification.as_ref().and_then(|v| v.kind.as_ref())
    else {
        panic!("email verification")
    };
    let mailbox = email.mailbox.as_ref().expect("mailbox check");
    assert_eq!(mailbox.status.as_ref().unwrap().value, "deliverable");
    assert_eq!(mailbox.score.as_ref().unwrap().value, "91");

    // Secrets reach the APIs (the mocks demand them) and never the answer.
    for (_, value) in SECRETS {
        assert!(!text.contains(value), "a secret in the answer");
    }
    let ledger = std::fs::read(app.dir.path().join("ledger.db")).unwrap();
    let ledger = String::from_utf8_lossy(&ledger);
    for (_, value) in SECRETS {
        assert!(!ledger.contains(value), "a secret in the ledger");
    }
}

#[tokio::test]
async fn an_undeliverable_mailbox_is_a_risk_reason() {
    let server = keyed_sites().await;
    let (app, _dns) = common::app_with_dns(real_catalog_with(&server.uri(), &secret)).await;
    let answer = enrich(&app, email_request("nobody@example.test")).await;
    let risk = answer.risk.as_ref().unwrap();
    let codes: Vec<&str> = risk.reasons.iter().map(|r| r.code.as_str()).collect();
    assert!(codes.contains(&"undeliverable_mailbox"), "{codes:?}");
    assert!(answer.breaches.is_empty());
}

#[tokio::test]
async fn the_person_record_is_a_profile_with_its_accounts() {
    let server = keyed_sites().await;
    let catalog = real_catalog_with(&server.uri(), &secret);
    let (app, _dns) = common::app_with_dns(catalog).await;
    let mut request = email_request("ada@example.test");
    request.purpose = "crm_enrichment".into();
    request.lawful_basis = pb::LawfulBasis::Contract.into();
    request.evidence = Some(pb::BasisEvidence {
        contract_ref: "C-1".into(),
        ..Default::default()
    });
    let answer = ask(&app, request).await;
    let pdl = common::profile_of(&answer, "pdl");
    assert_eq!(pdl.display_name.as_ref().unwrap().value, "ada lovelace");
    assert_eq!(
        pdl.location.as_ref().unwrap().value,
        "london, england, united kingdom"
    );
    assert_eq!(pdl.extra["job_title"].value, "analyst");
    assert_eq!(pdl.extra["company"].value, "analytical engines");
    let networks: Vec<&str> = pdl
        .linked_accounts
        .iter()
        .map(|a| a.platform.as_str())
        .collect();
    assert_eq!(networks, ["linkedin", "github"]);
    // crm_enrichment may not return breaches; HIBP is not its source.
    assert!(answer.breaches.is_empty());
}

#[tokio::test]
async fn the_phone_line_gives_carrier_line_type_and_caller_name() {
    let server = keyed_sites().await;
    let (app, _dns) = common::app_with_dns(real_catalog_with(&server.uri(), &secret)).await;
    let mut request = phone_request("+16502530000");
    request.hints = Some(pb::Hints {
        name: "Grace Hopper".into(),
        ..Default::default()
    });
    let answer = enrich(&app, request).await;
    let line = answer.phone_line.as_ref().expect("phone line");
    assert_eq!(
        line.carrier.as_ref().unwrap().value,
        "Bandwidth/13 - Bandwidth.com - SVR"
    );
    assert_eq!(line.line_type.as_ref().unwrap().value, "nonFixedVoip");
    assert_eq!(line.caller_name.as_ref().unwrap().value, "ADA LOVELACE");
    let provenance = line
        .line_type
        .as_ref()
        .unwrap()
        .provenance
        .as_ref()
        .unwrap();
    assert_eq!(provenance.source_id, "twilio-lookup");
    assert_eq!(provenance.selector, "/line_type_intelligence/type");
    let codes = common::risk_codes(&answer);
    // The network says VoIP; the registered name is not the one given.
    assert!(codes.iter().any(|c| c == "phone_voip"), "{codes:?}");
    assert!(codes.iter().any(|c| c == "name_mismatch"), "{codes:?}");

    // A number Twilio does not know: no phone line, and no failure.
    let answer = enrich(&app, phone_request("+16502530001")).await;
    assert!(answer.phone_line.is_none());
    assert_eq!(
        common::outcome_of(&answer, "twilio-lookup"),
        pb::source_outcome::Outcome::NotFound
    );
}

#[tokio::test]
async fn a_field_mask_without_breaches_never_asks_the_breach_source() {
    let server = keyed_sites().await;
    let catalog = real_catalog_with(&server.uri(), &secret);
    let (app, _dns) = common::app_with_dns(catalog).await;
    let mut request = email_request("ada@example.test");
    request.field_mask = Some(pbjson_types::FieldMask {
        paths: vec!["verification".into(), "profiles".into(), "risk".into()],
    });
    let answer = enrich(&app, request).await;
    assert!(answer.breaches.is_empty());
    let hibp = common::source_outcome(&answer, "hibp");
    assert_eq!(
        hibp.skip_reason(),
        pb::source_outcome::SkipReason::FieldMask
    );
    let breach_calls = server
        .received_requests()
        .await
        .unwrap()
        .iter()
        .filter(|r| r.url.path().starts_with("/api/v3/breachedaccount/"))
        .count();
    assert_eq!(breach_calls, 0, "the breach API was asked");
    // What the mask keeps is still asked: the mailbox check feeds risk.
    assert_ne!(
        common::outcome_of(&answer, "hunter-verifier"),
        pb::source_outcome::Outcome::Skipped
    );
}

/// Twilio's SIM Swap and Call Forwarding packages: shipped off (private
/// beta, billed per request); once turned on, a recent swap and forwarded
/// calls reach the phone line, with provenance, and the verdict's reasons.
#[tokio::test]
async fn sim_swap_and_call_forwarding_once_turned_on_reach_the_line_and_the_verdict() {
    let server = keyed_sites().await;
    let shipped = real_catalog_with(&server.uri(), &secret);
    let fraud = shipped.get("twilio-fraud").expect("ships");
    assert!(!fraud.enabled(), "off until the account is approved");
    assert!(
        fraud
            .disabled
            .as_deref()
            .unwrap_or_default()
            .contains("enabled = true"),
        "{:?}",
        fraud.disabled
    );

    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/config/sources/twilio-lookup-fraud.toml"
    );
    let text = std::fs::read_to_string(path)
        .unwrap()
        .replace("enabled = false", "enabled = true")
        .replace("https://lookups.twilio.com", &server.uri())
        .replace(
            "[[source]]",
            "[[source]]\nnetwork = { allow_private = true }",
        );
    let purposes = enrichd::config::Config::default().purpose_ids();
    let catalog =
        enrichd::catalog::Catalog::from_files(&[(path.into(), text)], &purposes, &secret).unwrap();
    let (app, _dns) = common::app_with_dns(catalog).await;
    let answer = enrich(&app, phone_request("+447400123456")).await;
    let line = answer.phone_line.as_ref().expect("the phone line");
    let swapped = line.last_sim_swap.as_ref().expect("the last swap");
    assert_eq!(
        swapped.value.as_ref().map(|t| t.seconds),
        Some(
            chrono::DateTime::parse_from_rfc3339("2026-12-05T09:12:44Z")
                .unwrap()
                .timestamp()
        )
    );
    assert_eq!(
        swapped.provenance.as_ref().unwrap().source_id,
        "twilio-fraud"
    );
    let text = |v: &Option<pb::TextValue>| v.as_ref().map(|v| v.value.clone());
    assert_eq!(text(&line.sim_swapped_in_period).as_deref(), Some("true"));
    assert_eq!(text(&line.sim_swap_period).as_deref(), Some("PT48H"));
    assert_eq!(text(&line.call_forwarding).as_deref(), Some("true"));
    let reasons = common::risk_codes(&answer);
    assert!(
        ["recent_sim_swap", "call_forwarding"]
            .iter()
            .all(|c| reasons.iter().any(|r| r == c)),
        "{reasons:?}"
    );
    let secret_leaked = serde_json::to_string(&answer).unwrap();
    assert!(!secret_leaked.contains("twilio-secret-0002"));
}

/// A phone-intelligence API (role `messaging_apps`): WhatsApp registered,
/// not registered, or not known yet ("checking": left out, not absent);
/// asked for fraud prevention, never for marketing.
#[tokio::test]
async fn a_phone_intelligence_api_says_which_messaging_apps_a_number_is_on() {
    let server = keyed_sites().await;
    let catalog = real_catalog_with(&server.uri(), &secret);
    let (app, _dns) = common::app_with_dns(catalog).await;
    let whatsapp = |answer: &pb::EnrichResponse| {
        answer
            .messaging_apps
            .iter()
            .find(|m| m.source_id == "ekycpro-whatsapp")
            .map(|m| (m.platform.clone(), m.present))
    };
    let on = enrich(&app, phone_request("+628138800001")).await;
    assert_eq!(
        whatsapp(&on),
        Some(("WhatsApp".into(), true)),
        "{:?}",
        on.messaging_apps
    );
    let notice = &on
        .compliance
        .as_ref()
        .unwrap()
        .notice
        .as_ref()
        .unwrap()
        .sources;
    assert!(
        notice.contains(&"ekycpro-whatsapp".to_string()),
        "{notice:?}"
    );
    let off = enrich(&app, phone_request("+628138800002")).await;
    assert_eq!(whatsapp(&off), Some(("WhatsApp".into(), false)));
    let pending = enrich(&app, phone_request("+628138800003")).await;
    assert_eq!(whatsapp(&pending), None, "unknown is not absent");
    assert!(
        !serde_json::to_string(&on)
            .unwrap()
            .contains("ekycpro-secret-0005"),
        "the key is never in the answer"
    );

    // Marketing: not a purpose the source serves, so it is not asked.
    let before = server.received_requests().await.unwrap().len();
    let mut request = phone_request("+628138800001");
    request.purpose = "marketing".into();
    request.lawful_basis = pb::LawfulBasis::Consent.into();
    request.evidence = Some(pb::BasisEvidence {
        consent_ref: "C-1".into(),
        ..Default::default()
    });
    let answer = ask(&app, request).await;
    assert_eq!(whatsapp(&answer), None);
    let asked = server.received_requests().await.unwrap()[before..]
        .iter()
        .filter(|r| r.url.path() == "/v1/whatsapp")
        .count();
    assert_eq!(asked, 0, "asked for marketing");
}
