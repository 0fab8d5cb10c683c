//! No personal data in logs: the whole sandbox flow (enrich by email and by
//! phone, erase, access) with every log line captured at TRACE, searched for
//! the identifiers, names and bio text of the answer.
// Tests time real servers and processes from outside; the code they test
// reads the injected clock (clippy.toml).
#![allow(clippy::disallowed_methods)]
#[path = "it/common/mod.rs"]
mod common;

use std::io::Write;
use std::sync::{Arc, Mutex};

use enrichd::proto::v1 as pb;

#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test]
async fn no_identifier_name_or_bio_reaches_a_log_line() {
    let captured = Captured::default();
    let writer = captured.clone();
    tracing_subscriber::fmt()
        .with_env_filter(enrichd::telemetry::pii_safe(
            tracing_subscriber::EnvFilter::new("trace"),
        ))
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .init();

    let (app, _sandbox) = common::sandbox_app_with("[auth]\nrequired = true\n").await;
    let keys = app.keys().await;
    let all = enrichd::auth::keys::NewKey {
        name: "log-test".into(),
        scopes: enrichd::auth::Scope::ALL.into(),
        purposes: Default::default(),
        quota_per_second: None,
        expires_in: None,
    };
    let secret = keys.create(all.clone()).await.unwrap().secret;
    let revoked = keys.create(all).await.unwrap();
    keys.revoke("log-test", Some(&revoked.id)).await.unwrap();
    let mut client = app.client().await;
    // Refused keys are logged as refusals, never with the secret.
    for wrong in [revoked.secret.as_str(), "ek_0123456789abcdef_wrong-secret"] {
        let refused = client
            .enrich(common::with_key(
                common::email_request("jane.doe@example.com"),
                wrong,
            ))
            .await
            .unwrap_err();
        assert!(!refused.message().contains(wrong));
    }
    let mut by_email = common::email_request("jane.doe@example.com");
    by_email.hints = Some(pb::Hints {
        name: "Jane Doe".into(),
        ..Default::default()
    });
    let answer = client
        .enrich(common::with_key(by_email, &secret))
        .await
        .unwrap()
        .into_inner();
    assert!(answer.profiles.len() >= 8);
    // Feedback's note is the caller's free text: kept, never logged.
    let profile = &answer.profiles[0];
    client
        .feedback(common::with_key(
            pb::FeedbackRequest {
                processing_id: answer.compliance.as_ref().unwrap().processing_id.clone(),
                finding: Some(pb::feedback_request::Finding::Profile(pb::ProfileRef {
                    source_id: profile.source_id.clone(),
                    url: profile
                        .url
                        .as_ref()
                        .map(|u| u.value.clone())
                        .unwrap_or_default(),
                })),
                verdict: pb::FeedbackVerdict::WrongPerson.into(),
                note: "NOTE-7781 her cousin's account".into(),
            },
            &secret,
        ))
        .await
        .unwrap();
    let mut by_phone = common::phone_request("+447700900123");
    by_phone.purpose = "crm_enrichment".into();
    by_phone.lawful_basis = pb::LawfulBasis::Contract.into();
    let phone_answer = client
        .enrich(common::with_key(by_phone, &secret))
        .await
        .unwrap()
        .into_inner();
    assert!(!phone_answer.profiles.is_empty());
    let _ = client
        .enrich(common::with_key(
            common::email_request("not an email"),
            &secret,
        ))
        .await;
    client
        .access(common::with_key(
            pb::AccessRequest {
                identifier: Some(pb::access_request::Identifier::Email(
                    "jane.doe@example.com".into(),
                )),
                default_region: String::new(),
                reference: String::new(),
                ..Default::default()
            },
            &secret,
        ))
        .await
        .unwrap();
    client
        .erase(common::with_key(
            pb::EraseRequest {
                identifier: Some(pb::erase_request::Identifier::Email(
                    "jane.doe@example.com".into(),
                )),
                kind: pb::erase_request::Kind::Erasure.into(),
                ..Default::default()
            },
            &secret,
        ))
        .await
        .unwrap();

    let logs = String::from_utf8_lossy(&captured.0.lock().unwrap()).to_string();
    assert!(logs.lines().count() > 50, "logs were captured at TRACE");
    assert!(
        logs.contains("h:"),
        "identifiers appear as keyed-hash prefixes"
    );
    let mut forbidden: Vec<String> = vec![
        "jane.doe@example.com".into(),
        "jane.doe%40example.com".into(),
        "jane.doe".into(),
        "+447700900123".into(),
        "447700900123".into(),
        "07700900123".into(),
        "7700900123".into(),
        "07700 900123".into(),
        "Jane Doe".into(),
        "not an email".into(),
        "NOTE-7781".into(),
    ];
    // No API key secret, whole or in part, accepted or refused.
    for key in [&secret, &revoked.secret] {
        forbidden.push(key.clone());
        forbidden.push(key.rsplit('_').next().unwrap().to_owned());
    }
    forbidden.push("wrong-secret".into());
    for p in answer.profiles.iter().chain(&phone_answer.profiles) {
        for v in [&p.display_name, &p.bio, &p.username].into_iter().flatten() {
            forbidden.push(v.value.clone());
        }
    }
    for needle in forbidden {
        if let Some(line) = logs.lines().find(|l| l.contains(&needle)) {
            panic!(
                "{needle:?} appears in the logs: {}",
                &line[..line.len().min(600)]
            );
        }
    }
}
