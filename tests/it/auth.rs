//! Callers over real gRPC connections: API keys with scopes, purposes,
//! quotas, expiry and revocation; the ledger's caller; TLS and mTLS.
use crate::common;

use std::time::Duration;

use common::{TestApp, email_request, key};
use enrichd::auth::Scope;
use enrichd::clock::ManualClock;
use enrichd::proto::v1 as pb;
use tonic::Code;
use tonic::transport::Channel;

const AUTH_ON: &str = "[dns]\nenabled = false\n[auth]\nrequired = true\n";

/// A request carrying `secret` as its bearer key.
fn with_key<T>(message: T, secret: &str) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    request
        .metadata_mut()
        .insert("authorization", format!("Bearer {secret}").parse().unwrap());
    request
}

fn access(email: &str, reference: &str) -> pb::AccessRequest {
    pb::AccessRequest {
        identifier: Some(pb::access_request::Identifier::Email(email.into())),
        default_region: String::new(),
        reference: reference.into(),
        ..Default::default()
    }
}

fn erase(email: &str, reference: &str) -> pb::EraseRequest {
    pb::EraseRequest {
        identifier: Some(pb::erase_request::Identifier::Email(email.into())),
        kind: pb::erase_request::Kind::Erasure.into(),
        reference: reference.into(),
        ..Default::default()
    }
}

async fn health(channel: Channel) -> Result<i32, tonic::Status> {
    use tonic_health::pb::{HealthCheckRequest, health_client::HealthClient};
    HealthClient::new(channel)
        .check(HealthCheckRequest::default())
        .await
        .map(|r| r.into_inner().status)
}

#[tokio::test]
async fn without_a_key_every_rpc_but_health_and_reflection_is_unauthenticated() {
    let app = TestApp::spawn(AUTH_ON).await;
    let mut client = app.client().await;
    fn code<T>(r: Result<T, tonic::Status>) -> Code {
        r.map(drop).unwrap_err().code()
    }
    assert_eq!(
        code(client.enrich(email_request("a@example.test")).await),
        Code::Unauthenticated
    );
    assert_eq!(
        code(client.access(access("a@example.test", "DSR-1")).await),
        Code::Unauthenticated
    );
    assert_eq!(
        code(client.erase(erase("a@example.test", "DSR-1")).await),
        Code::Unauthenticated
    );
    assert_eq!(
        code(client.list_sources(pb::ListSourcesRequest::default()).await),
        Code::Unauthenticated
    );
    let stream = client
        .enrich_stream(tokio_stream::iter(vec![email_request("a@example.test")]))
        .await;
    assert_eq!(code(stream), Code::Unauthenticated);
    // A made-up key and a malformed header are refused the same way.
    assert_eq!(
        code(
            client
                .enrich(with_key(
                    email_request("a@example.test"),
                    "ek_0123456789abcdef_00"
                ))
                .await
        ),
        Code::Unauthenticated
    );
    let mut basic = tonic::Request::new(email_request("a@example.test"));
    basic
        .metadata_mut()
        .insert("authorization", "Basic dXNlcjpwYXNz".parse().unwrap());
    assert_eq!(code(client.enrich(basic).await), Code::Unauthenticated);
    // Nothing was processed, so nothing was recorded about the person.
    let keys = app.keys().await;
    let admin = keys.create(key("dpo", &[Scope::Access])).await.unwrap();
    let held = client
        .access(with_key(access("a@example.test", "DSR-0"), &admin.secret))
        .await
        .unwrap()
        .into_inner();
    assert!(held.ledger.is_empty(), "{:?}", held.ledger);

    // Health and reflection stay open.
    assert_eq!(health(app.channel().await).await.unwrap(), 1, "SERVING");
    let mut reflection =
        tonic_reflection::pb::v1::server_reflection_client::ServerReflectionClient::new(
            app.channel().await,
        );
    let request = tonic_reflection::pb::v1::ServerReflectionRequest {
        host: String::new(),
        message_request: Some(
            tonic_reflection::pb::v1::server_reflection_request::MessageRequest::ListServices(
                String::new(),
            ),
        ),
    };
    let mut answers = reflection
        .server_reflection_info(tokio_stream::iter(vec![request]))
        .await
        .expect("reflection is open")
        .into_inner();
    assert!(answers.message().await.unwrap().is_some());
}

#[tokio::test]
async fn the_bearer_scheme_is_read_in_any_case_and_two_credentials_are_refused() {
    let app = TestApp::spawn(AUTH_ON).await;
    let reader = app
        .keys()
        .await
        .create(key("crm", &[Scope::Sources]))
        .await
        .unwrap();
    let mut client = app.client().await;
    let with = |values: &[String]| {
        let mut request = tonic::Request::new(pb::ListSourcesRequest::default());
        for value in values {
            let value = value.parse().unwrap();
            request.metadata_mut().append("authorization", value);
        }
        request
    };
    for scheme in ["Bearer", "bearer", "BEARER"] {
        let header = format!("{scheme} {}", reader.secret);
        let answer = client.list_sources(with(&[header])).await;
        assert!(answer.is_ok(), "{scheme}: {answer:?}");
    }
    // Two credentials, even with one good: neither is taken.
    let two = [
        format!("Bearer {}", reader.secret),
        "Bearer junk".to_owned(),
    ];
    let refused = client.list_sources(with(&two)).await.unwrap_err();
    assert_eq!(refused.code(), Code::Unauthenticated);
    assert_eq!(
        refused.message(),
        "authorization: send one header, not several"
    );
    // A scheme with no key.
    let bare = client.list_sources(with(&["Bearer ".to_owned()])).await;
    assert_eq!(bare.unwrap_err().code(), Code::Unauthenticated);
}

#[tokio::test]
async fn scopes_and_purposes_are_enforced_and_named() {
    let app = TestApp::spawn(AUTH_ON).await;
    let keys = app.keys().await;
    let enrich_only = keys.create(key("crm", &[Scope::Enrich])).await.unwrap();
    let mut fraud = key("fraud-team", &[Scope::Enrich]);
    fraud.purposes = ["fraud_prevention".to_owned()].into();
    let fraud = keys.create(fraud).await.unwrap();
    let mut client = app.client().await;

    client
        .enrich(with_key(
            email_request("a@example.test"),
            &enrich_only.secret,
        ))
        .await
        .expect("the enrich scope allows Enrich");
    let denied = client
        .erase(with_key(
            erase("a@example.test", "DSR-2"),
            &enrich_only.secret,
        ))
        .await
        .unwrap_err();
    assert_eq!(denied.code(), Code::PermissionDenied);
    assert!(
        denied.message().contains("\"erase\""),
        "{}",
        denied.message()
    );
    let denied = client
        .list_sources(with_key(
            pb::ListSourcesRequest::default(),
            &enrich_only.secret,
        ))
        .await
        .unwrap_err();
    assert!(
        denied.message().contains("\"sources\""),
        "{}",
        denied.message()
    );

    // The fraud team's key may not ask for marketing, and the refusal is recorded.
    let refused = client
        .enrich(with_key(email_request("b@example.test"), &fraud.secret))
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::PermissionDenied);
    assert!(
        refused.message().contains("\"marketing\""),
        "{}",
        refused.message()
    );
    let mut for_fraud = email_request("b@example.test");
    for_fraud.purpose = "fraud_prevention".into();
    client
        .enrich(with_key(for_fraud, &fraud.secret))
        .await
        .expect("its own purpose is allowed");

    let dpo = keys.create(key("dpo", &[Scope::Access])).await.unwrap();
    let held = client
        .access(with_key(access("b@example.test", "DSR-3"), &dpo.secret))
        .await
        .unwrap()
        .into_inner();
    let outcomes: Vec<(&str, &str)> = held
        .ledger
        .iter()
        .map(|r| (r.outcome.as_str(), r.caller.as_str()))
        .collect();
    assert_eq!(
        outcomes,
        [
            ("refused: purpose not allowed for the caller", "fraud-team"),
            ("incomplete", "fraud-team")
        ]
    );
}

#[tokio::test]
async fn revoked_and_expired_keys_are_refused_at_once() {
    let clock = ManualClock::new();
    let app = TestApp::with_clock(
        AUTH_ON,
        enrichd::catalog::Catalog::default(),
        clock.shared(),
    )
    .await;
    let keys = app.keys().await;
    let old = keys.create(key("crm", &[Scope::Enrich])).await.unwrap();
    let new = keys.create(key("crm", &[Scope::Enrich])).await.unwrap();
    // Two live keys per name (a rotation), not three.
    let third = keys.create(key("crm", &[Scope::Enrich])).await;
    assert!(third.is_err());
    // A key dead on arrival, or whose expiry would overflow, is refused.
    for life in [
        Duration::ZERO,
        Duration::from_secs(1_000_000_000 * 31_557_600),
    ] {
        let mut typo = key("contractor", &[Scope::Enrich]);
        typo.expires_in = Some(life);
        let refused = keys.create(typo).await.err().expect("refused");
        assert!(refused.to_string().contains("--expires"), "{refused}");
    }
    let mut temporary = key("contractor", &[Scope::Enrich]);
    temporary.expires_in = Some(Duration::from_secs(3600));
    let temporary = keys.create(temporary).await.unwrap();
    let mut client = app.client().await;
    for secret in [&old.secret, &new.secret, &temporary.secret] {
        client
            .enrich(with_key(email_request("a@example.test"), secret))
            .await
            .expect("live keys work");
    }

    // Another process (the CLI) revokes the old key: the next call fails.
    assert_eq!(keys.revoke("crm", Some(&old.id)).await.unwrap(), 1);
    let refused = client
        .enrich(with_key(email_request("a@example.test"), &old.secret))
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::Unauthenticated);
    assert!(
        refused.message().contains("revoked"),
        "{}",
        refused.message()
    );
    client
        .enrich(with_key(email_request("a@example.test"), &new.secret))
        .await
        .expect("the rotated-in key still works");

    clock.advance(Duration::from_secs(3599));
    client
        .enrich(with_key(email_request("a@example.test"), &temporary.secret))
        .await
        .expect("not expired yet");
    clock.advance(Duration::from_secs(1));
    let expired = client
        .enrich(with_key(email_request("a@example.test"), &temporary.secret))
        .await
        .unwrap_err();
    assert_eq!(expired.code(), Code::Unauthenticated);
    assert!(
        expired.message().contains("expired"),
        "{}",
        expired.message()
    );
}

#[tokio::test]
async fn the_ledger_records_the_key_not_what_x_caller_claims_and_every_request_of_a_subject() {
    let app = TestApp::spawn(AUTH_ON).await;
    let keys = app.keys().await;
    let crm = keys.create(key("crm-eu", &[Scope::Enrich])).await.unwrap();
    let dpo = keys
        .create(key("dpo-desk", &[Scope::Access, Scope::Erase]))
        .await
        .unwrap();
    let mut client = app.client().await;
    let mut spoofed = with_key(email_request("ann@example.test"), &crm.secret);
    spoofed
        .metadata_mut()
        .insert("x-caller", "ceo@victim-corp".parse().unwrap());
    client.enrich(spoofed).await.unwrap();

    let held = client
        .access(with_key(access("ann@example.test", "DSR-7"), &dpo.secret))
        .await
        .unwrap()
        .into_inner();
    let first = &held.ledger[0];
    assert_eq!(first.caller, "crm-eu");
    assert_eq!(first.caller_key_id, crm.id);
    assert_eq!(first.on_behalf_of, "ceo@victim-corp");

    client
        .erase(with_key(erase("ann@example.test", "DSR-8"), &dpo.secret))
        .await
        .unwrap();
    let after = client
        .access(with_key(access("ann@example.test", "DSR-9"), &dpo.secret))
        .await
        .unwrap()
        .into_inner();
    let requests: Vec<(&str, &str, &str)> = after
        .ledger
        .iter()
        .filter(|r| r.purpose == "data_subject_request")
        .map(|r| (r.outcome.as_str(), r.caller.as_str(), r.reference.as_str()))
        .collect();
    assert_eq!(
        requests,
        [
            ("access", "dpo-desk", "DSR-7"),
            ("erasure", "dpo-desk", "DSR-8")
        ]
    );
    let erasure = after
        .ledger
        .iter()
        .find(|r| r.outcome == "erasure")
        .unwrap();
    assert!(
        erasure.detail.contains("1 records redacted"),
        "{}",
        erasure.detail
    );
    assert_eq!(erasure.caller_key_id, dpo.id);
}

#[tokio::test]
async fn a_key_over_its_quota_is_told_to_wait_and_another_key_is_not() {
    let app = TestApp::spawn(AUTH_ON).await;
    let keys = app.keys().await;
    let mut held = key("slow", &[Scope::Sources]);
    held.quota_per_second = Some(5.0);
    let held = keys.create(held).await.unwrap();
    let free = keys.create(key("free", &[Scope::Sources])).await.unwrap();
    let mut client = app.client().await;
    let mut codes = Vec::new();
    for _ in 0..8 {
        let r = client
            .list_sources(with_key(pb::ListSourcesRequest::default(), &held.secret))
            .await;
        codes.push(r.map(drop));
    }
    let ok = codes.iter().filter(|r| r.is_ok()).count();
    assert_eq!(ok, 5, "a second's worth at once, then refusals");
    let refusal = codes.iter().find_map(|r| r.as_ref().err()).unwrap();
    assert_eq!(refusal.code(), Code::ResourceExhausted);
    use tonic_types::StatusExt;
    let retry = refusal.get_details_retry_info().expect("RetryInfo");
    assert!(
        retry
            .retry_delay
            .is_some_and(|d| d > Duration::ZERO && d <= Duration::from_millis(200))
    );
    for _ in 0..8 {
        client
            .list_sources(with_key(pb::ListSourcesRequest::default(), &free.secret))
            .await
            .expect("another key is unaffected");
    }
}

/// A CA, and a certificate it signs for `name` (a DNS name for a server, a
/// common name for a client).
struct Pki {
    ca_pem: String,
    issuer: rcgen::Issuer<'static, rcgen::KeyPair>,
}

impl Pki {
    fn new(name: &str) -> Self {
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, name);
        params.key_usages = vec![
            rcgen::KeyUsagePurpose::KeyCertSign,
            rcgen::KeyUsagePurpose::DigitalSignature,
        ];
        let key = rcgen::KeyPair::generate().unwrap();
        let ca = params.self_signed(&key).unwrap();
        Self {
            ca_pem: ca.pem(),
            issuer: rcgen::Issuer::new(params, key),
        }
    }

    /// (certificate PEM, key PEM)
    fn sign(&self, name: &str, server: bool) -> (String, String) {
        let mut params = rcgen::CertificateParams::new(if server {
            vec![name.to_owned(), "127.0.0.1".to_owned()]
        } else {
            Vec::new()
        })
        .unwrap();
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, name);
        params.extended_key_usages = vec![if server {
            rcgen::ExtendedKeyUsagePurpose::ServerAuth
        } else {
            rcgen::ExtendedKeyUsagePurpose::ClientAuth
        }];
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = params.signed_by(&key, &self.issuer).unwrap();
        (cert.pem(), key.serialize_pem())
    }
}

async fn tls_channel(
    app: &TestApp,
    ca_pem: &str,
    client: Option<&(String, String)>,
) -> Result<Channel, tonic::transport::Error> {
    let mut tls = tonic::transport::ClientTlsConfig::new()
        .domain_name("localhost")
        .ca_certificate(tonic::transport::Certificate::from_pem(ca_pem));
    if let Some((cert, key)) = client {
        tls = tls.identity(tonic::transport::Identity::from_pem(cert, key));
    }
    Channel::from_shared(format!("https://{}", app.addr))
        .unwrap()
        .tls_config(tls)?
        .connect()
        .await
}

#[tokio::test]
async fn tls_and_mtls_calls_succeed_and_plaintext_or_a_stranger_cert_do_not() {
    let pki = Pki::new("enrichd test CA");
    let (server_cert, server_key) = pki.sign("localhost", true);
    let (client_cert, client_key) = pki.sign("crm.example.com", false);
    let stranger = Pki::new("someone else's CA").sign("crm.example.com", false);
    let dir = tempfile::tempdir().unwrap();
    let write = |name: &str, text: &str| {
        let path = dir.path().join(name);
        std::fs::write(&path, text).unwrap();
        path.display().to_string()
    };
    let config = format!(
        "{AUTH_ON}[server.tls]\ncert = \"{}\"\nkey = \"{}\"\nclient_ca = \"{}\"\n\
         [auth.clients.\"crm.example.com\"]\nscopes = [\"enrich\"]\npurposes = [\"marketing\"]\n",
        write("server.crt", &server_cert),
        write("server.key", &server_key),
        write("ca.crt", &pki.ca_pem),
    );
    let app = TestApp::spawn(&config).await;

    // mTLS: the certificate is the caller.
    let channel = tls_channel(&app, &pki.ca_pem, Some(&(client_cert, client_key)))
        .await
        .expect("mTLS handshake");
    let mut client = pb::enrichment_client::EnrichmentClient::new(channel.clone());
    client
        .enrich(email_request("a@example.test"))
        .await
        .expect("the mapped certificate may enrich");
    let denied = client
        .list_sources(pb::ListSourcesRequest::default())
        .await
        .unwrap_err();
    assert_eq!(denied.code(), Code::PermissionDenied);
    assert_eq!(health(channel).await.unwrap(), 1);

    // TLS without a client certificate: an API key still works.
    let secret = app
        .keys()
        .await
        .create(key("crm", &[Scope::Enrich]))
        .await
        .unwrap()
        .secret;
    let channel = tls_channel(&app, &pki.ca_pem, None)
        .await
        .expect("TLS handshake");
    let mut client = pb::enrichment_client::EnrichmentClient::new(channel);
    client
        .enrich(with_key(email_request("a@example.test"), &secret))
        .await
        .expect("a key over TLS");
    let anonymous = client
        .enrich(email_request("a@example.test"))
        .await
        .unwrap_err();
    assert_eq!(anonymous.code(), Code::Unauthenticated);

    // Plaintext to the TLS port fails (at the handshake or at the call).
    let plain = Channel::from_shared(format!("http://{}", app.addr))
        .unwrap()
        .connect()
        .await;
    let answered = match plain {
        Err(_) => false,
        Ok(plain) => pb::enrichment_client::EnrichmentClient::new(plain)
            .enrich(with_key(email_request("a@example.test"), &secret))
            .await
            .is_ok(),
    };
    assert!(!answered, "a plaintext call was answered on the TLS port");

    // A client certificate from another CA is refused.
    let strange = tls_channel(&app, &pki.ca_pem, Some(&stranger)).await;
    let refused = match strange {
        Err(_) => true,
        Ok(channel) => pb::enrichment_client::EnrichmentClient::new(channel)
            .enrich(email_request("a@example.test"))
            .await
            .is_err(),
    };
    assert!(refused, "a stranger's certificate got through");
}

/// A quota holds for a stream's requests as for unary calls: a key at 5 per
/// second gets 15 stream answers in no less than about two seconds (5 of a
/// second's burst, the call's own unit, then 5 a second), not at once.
#[tokio::test]
async fn a_stream_s_requests_are_paced_to_the_key_s_quota() {
    let app = TestApp::spawn(AUTH_ON).await;
    let keys = app.keys().await;
    let mut paced = key("paced", &[Scope::Stream]);
    paced.quota_per_second = Some(5.0);
    let paced = keys.create(paced).await.unwrap();
    let requests: Vec<pb::EnrichRequest> = (0..15)
        .map(|i| {
            let mut r = email_request(&format!("p{i}@example.com"));
            r.request_id = format!("r{i}");
            r
        })
        .collect();
    let mut client = app.client().await;
    let started = std::time::Instant::now();
    let mut answers = client
        .enrich_stream(with_key(tokio_stream::iter(requests), &paced.secret))
        .await
        .unwrap()
        .into_inner();
    let mut answered = 0;
    while let Some(answer) = answers.message().await.unwrap() {
        assert!(answer.error.is_none(), "{:?}", answer.error);
        answered += 1;
    }
    let took = started.elapsed();
    assert_eq!(answered, 15);
    assert!(
        took >= Duration::from_millis(1_500),
        "15 requests at 5 a second answered in {took:?}"
    );
}
