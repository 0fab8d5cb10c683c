//! No personal data in logs: the whole sandbox flow (enrich by email and by
//! phone, erase, access) with every log line captured at TRACE, searched for
//! the identifiers, names and bio text of the answer.
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

    let (app, _sandbox) = common::sandbox_app().await;
    let mut client = app.client().await;
    let mut by_email = common::email_request("jane.doe@example.com");
    by_email.hints = Some(pb::Hints {
        name: "Jane Doe".into(),
        ..Default::default()
    });
    let answer = client.enrich(by_email).await.unwrap().into_inner();
    assert!(answer.profiles.len() >= 8);
    let mut by_phone = common::phone_request("+447700900123");
    by_phone.purpose = "crm_enrichment".into();
    by_phone.lawful_basis = pb::LawfulBasis::Contract.into();
    let phone_answer = client.enrich(by_phone).await.unwrap().into_inner();
    assert!(!phone_answer.profiles.is_empty());
    let _ = client.enrich(common::email_request("not an email")).await;
    client
        .access(pb::AccessRequest {
            identifier: Some(pb::access_request::Identifier::Email(
                "jane.doe@example.com".into(),
            )),
            default_region: String::new(),
            reference: String::new(),
        })
        .await
        .unwrap();
    client
        .erase(pb::EraseRequest {
            identifier: Some(pb::erase_request::Identifier::Email(
                "jane.doe@example.com".into(),
            )),
            kind: pb::erase_request::Kind::Erasure.into(),
            ..Default::default()
        })
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
        "07700 900123".into(),
        "Jane Doe".into(),
        "not an email".into(),
    ];
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
