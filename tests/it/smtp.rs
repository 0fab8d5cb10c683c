//! Mailbox deliverability by SMTP, end to end: a DNS server and an SMTP
//! exchanger on loopback that the test controls; the four outcomes in the
//! answer (verification, summary, risk), a greylisted address asked again,
//! a never-probe domain not contacted, and no probe at all when it is off.
use std::str::FromStr;

use enrichd::proto::v1 as pb;
use enrichd_sources::smtp::exchanger;
use hickory_proto::rr::rdata::{A, MX, SOA};
use hickory_proto::rr::{Name, RData, Record};

use crate::common::{self, TestApp};

fn name(s: &str) -> Name {
    Name::from_str(s).unwrap()
}

/// `mail.test`, `catchall.mail.test` and `never.mail.test`, each with its
/// MX at `mx.mail.test` (127.0.0.1); `fifth.` and `sixth.mail.test` with
/// four and five dead exchangers before it.
async fn zone() -> enrichd::sandbox::dns::SandboxDns {
    let origin = name("mail.test.");
    let soa = SOA::new(
        name("ns.mail.test."),
        name("hostmaster.mail.test."),
        1,
        3600,
        600,
        86400,
        60,
    );
    let mut records = vec![
        Record::from_rdata(origin.clone(), 60, RData::SOA(soa)),
        Record::from_rdata(name("mx.mail.test."), 60, RData::A(A::new(127, 0, 0, 1))),
    ];
    for domain in ["mail.test.", "catchall.mail.test.", "never.mail.test."] {
        records.push(Record::from_rdata(
            name(domain),
            60,
            RData::MX(MX::new(10, name("mx.mail.test."))),
        ));
    }
    // Exchangers where nothing listens (127.0.0.2-6), preferred to the
    // live one: `fifth.mail.test` lists four of them first, `sixth` five.
    for n in 1..=5u8 {
        let dead = format!("dead{n}.mail.test.");
        records.push(Record::from_rdata(
            name(&dead),
            60,
            RData::A(A::new(127, 0, 0, 1 + n)),
        ));
        for (domain, before) in [("fifth.mail.test.", 4), ("sixth.mail.test.", 5)] {
            if n <= before {
                records.push(Record::from_rdata(
                    name(domain),
                    60,
                    RData::MX(MX::new(u16::from(n), name(&dead))),
                ));
            }
        }
    }
    for domain in ["fifth.mail.test.", "sixth.mail.test."] {
        records.push(Record::from_rdata(
            name(domain),
            60,
            RData::MX(MX::new(10, name("mx.mail.test."))),
        ));
    }
    enrichd::sandbox::dns::serve(origin, records).await.unwrap()
}

fn smtp_of(answer: &pb::EnrichResponse) -> Option<pb::SmtpCheck> {
    match answer.verification.as_ref()?.kind.as_ref()? {
        pb::verification::Kind::Email(e) => e.smtp.clone(),
        _ => None,
    }
}

/// What the access report of `email` says is kept of its mailbox check.
async fn kept_for(
    officer: &mut pb::enrichment_client::EnrichmentClient<tonic::transport::Channel>,
    email: &str,
) -> Option<pb::SmtpCheck> {
    let request = pb::AccessRequest {
        identifier: Some(pb::access_request::Identifier::Email(email.into())),
        reference: "DSR-S".into(),
        ..Default::default()
    };
    officer.access(request).await.unwrap().into_inner().smtp
}

/// A privacy officer's erasure of `email`.
fn erasure(email: &str) -> pb::EraseRequest {
    pb::EraseRequest {
        identifier: Some(pb::erase_request::Identifier::Email(email.into())),
        kind: pb::erase_request::Kind::Erasure.into(),
        reference: "DSR-S".into(),
        ..Default::default()
    }
}

/// `app`'s answer for alice@mail.test.
async fn alice(app: &TestApp) -> pb::EnrichResponse {
    app.client()
        .await
        .enrich(common::email_request("alice@mail.test"))
        .await
        .unwrap()
        .into_inner()
}

#[tokio::test]
async fn the_four_outcomes_reach_the_answer_and_nothing_is_probed_unless_allowed() {
    let dns = zone().await;
    let running = exchanger::start(&["alice"]).await.unwrap();
    let (exchanger, seen) = (running.addr, running.seen.clone());
    let smtp = |extra: &str| {
        format!(
            "[dns]\nnameservers = [\"{}\"]\n[smtp]\nhelo_name = \"probe.enrichd.test\"\n\
             mail_from = \"verify@enrichd.test\"\nport = {}\ngreylist_wait = \"20ms\"\n\
             never_probe = [\"never.mail.test\"]\n{extra}",
            dns.addr(),
            exchanger.port()
        )
    };
    let on = TestApp::spawn(&smtp("enabled = true\nallow_private = true\n")).await;
    let mut client = on.client().await;
    let mut ask = async |email: &str| {
        let answer = client
            .enrich(common::email_request(email))
            .await
            .unwrap()
            .into_inner();
        let check = smtp_of(&answer).unwrap_or_else(|| panic!("no SMTP check for {email}"));
        (answer, check)
    };
    use pb::Deliverability as D;
    let (answer, check) = ask("alice@mail.test").await;
    assert_eq!(
        (check.status(), check.code, check.host.as_str()),
        (D::Deliverable, 250, "mx.mail.test")
    );
    assert_eq!(answer.summary.unwrap().deliverable(), D::Deliverable);
    // Asked again (a CRM opening the contact): what the exchanger said is
    // given again, and the exchanger is not asked again.
    let asked = seen.lock().unwrap().connections;
    for _ in 0..3 {
        let (_, check) = ask("alice@mail.test").await;
        assert_eq!((check.status(), check.code), (D::Deliverable, 250));
    }
    assert_eq!(seen.lock().unwrap().connections, asked, "not asked again");
    // What is kept is the person's: their access report shows it, and
    // their erasure removes it.
    let mut officer = on.client().await;
    let kept = kept_for(&mut officer, "alice@mail.test")
        .await
        .expect("the kept answer");
    assert_eq!(
        (kept.status(), kept.host.as_str()),
        (D::Deliverable, "mx.mail.test")
    );
    assert!(
        kept_for(&mut officer, "bob@mail.test").await.is_none(),
        "only the person's own"
    );

    let (answer, check) = ask("nobody@mail.test").await;
    assert_eq!((check.status(), check.code), (D::Undeliverable, 550));
    let reasons = common::risk_codes(&answer);
    assert!(
        reasons.contains(&"undeliverable_mailbox".to_owned()),
        "{reasons:?}"
    );

    let (answer, check) = ask("anyone@catchall.mail.test").await;
    assert_eq!(check.status(), D::CatchAll);
    let reasons = common::risk_codes(&answer);
    assert!(
        reasons.contains(&"catch_all_domain".to_owned()),
        "{reasons:?}"
    );

    // Greylisted once, asked again, then answered.
    let (_, check) = ask("grey@mail.test").await;
    assert_eq!(check.status(), D::Deliverable, "{check:?}");
    assert_eq!(seen.lock().unwrap().tries["grey@mail.test"], 2);

    // A never-probe domain is not contacted.
    let before = seen.lock().unwrap().connections;
    let (_, check) = ask("someone@never.mail.test").await;
    assert_eq!(check.status(), D::Unknown);
    assert!(check.reason.contains("never probed"), "{}", check.reason);
    assert_eq!(seen.lock().unwrap().connections, before);
    assert_eq!(seen.lock().unwrap().data, 0, "never DATA");

    // Five exchangers' addresses are asked, the best first, and no more:
    // the live one fifth answers, sixth is never reached.
    let (_, check) = ask("alice@fifth.mail.test").await;
    assert_eq!(check.status(), D::Deliverable, "{check:?}");
    let before = seen.lock().unwrap().connections;
    let (_, check) = ask("alice@sixth.mail.test").await;
    assert_eq!(check.status(), D::Unknown, "{check:?}");
    assert_eq!(check.host, "dead5.mail.test", "{check:?}");
    assert_eq!(seen.lock().unwrap().connections, before);

    // A loopback exchanger is not asked unless allowed.
    let public_only = TestApp::spawn(&smtp("enabled = true\n")).await;
    let answer = alice(&public_only).await;
    let check = smtp_of(&answer).unwrap();
    assert_eq!(check.status(), D::Unknown, "{check:?}");
    assert_eq!(seen.lock().unwrap().connections, before);

    // Off (the default): no check, and no connection.
    let off = TestApp::spawn(&smtp("")).await;
    let answer = alice(&off).await;
    assert!(smtp_of(&answer).is_none());
    assert_eq!(answer.summary.unwrap().deliverable(), D::Unspecified);
    assert_eq!(
        seen.lock().unwrap().connections,
        before,
        "no probe while off"
    );

    let erased = officer.erase(erasure("alice@mail.test")).await;
    assert!(erased.is_ok(), "{erased:?}");
    assert!(
        kept_for(&mut officer, "alice@mail.test").await.is_none(),
        "erased with the person"
    );
}

#[tokio::test]
async fn a_probe_still_under_way_at_the_call_s_deadline_leaves_the_answer_to_come() {
    let dns = zone().await;
    let running = exchanger::start(&["alice"]).await.unwrap();
    let app = TestApp::spawn(&format!(
        "[dns]\nnameservers = [\"{}\"]\n[smtp]\nenabled = true\nallow_private = true\n\
         helo_name = \"probe.enrichd.test\"\nmail_from = \"verify@enrichd.test\"\n\
         port = {}\ngreylist_wait = \"1h\"\n",
        dns.addr(),
        running.addr.port()
    ))
    .await;
    // Greylisted: asked again only after an hour, long past the call's
    // two seconds.
    let mut request = tonic::Request::new(common::email_request("grey@mail.test"));
    request.set_timeout(std::time::Duration::from_secs(2));
    let answer = app
        .client()
        .await
        .enrich(request)
        .await
        .expect("an answer, not DEADLINE_EXCEEDED")
        .into_inner();
    let check = smtp_of(&answer).expect("the check, unknown");
    assert_eq!(check.status(), pb::Deliverability::Unknown, "{check:?}");
    assert!(check.reason.starts_with("timeout"), "{check:?}");
    assert_eq!(running.seen.lock().unwrap().tries["grey@mail.test"], 1);
}

#[tokio::test]
async fn an_erasure_during_the_probe_leaves_nothing_of_its_answer() {
    let dns = zone().await;
    let gate = common::Gate::default();
    let gated = common::dns::gated(dns.addr(), gate.clone()).await;
    let running = exchanger::start(&["alice"]).await.unwrap();
    let app = TestApp::spawn(&format!(
        "[dns]\nnameservers = [\"{gated}\"]\n[smtp]\nenabled = true\nallow_private = true\n\
         helo_name = \"probe.enrichd.test\"\nmail_from = \"verify@enrichd.test\"\n\
         port = {}\n",
        running.addr.port()
    ))
    .await;
    let mut caller = app.client().await;
    let call = tokio::spawn(async move {
        caller
            .enrich(common::email_request("alice@mail.test"))
            .await
    });
    // The call's MX lookup is held; the person is erased meanwhile.
    gate.arrived.notified().await;
    let mut officer = app.client().await;
    officer.erase(erasure("alice@mail.test")).await.unwrap();
    // Then its lookups go on (the MX, then the exchanger's address), and
    // the exchanger is asked after the erasure.
    let releases = tokio::spawn(async move {
        loop {
            gate.release.notify_one();
            gate.arrived.notified().await;
        }
    });
    let answer = call.await.unwrap().unwrap().into_inner();
    releases.abort();
    assert!(
        answer.compliance.unwrap().identifier_suppressed,
        "the erasure won"
    );
    assert_eq!(running.seen.lock().unwrap().connections, 1, "it was asked");
    assert_eq!(app.enricher.kept_smtp_answers(), 0, "nothing kept");
    assert!(
        kept_for(&mut officer, "alice@mail.test").await.is_none(),
        "nothing kept of what it said"
    );
}

/// Waits (bounded) until the replica shares through Redis.
async fn until_shared(app: &TestApp) {
    use tonic_health::pb::health_check_response::ServingStatus;
    common::eventually("the replica shares through Redis", || async {
        let mut client = tonic_health::pb::health_client::HealthClient::new(app.channel().await);
        let status = client
            .check(tonic_health::pb::HealthCheckRequest {
                service: enrichd::api::CLUSTER_HEALTH.into(),
            })
            .await
            .map(|a| a.into_inner().status());
        (status.ok() == Some(ServingStatus::Serving)).then_some(())
    })
    .await;
}

#[tokio::test]
async fn two_replicas_keep_to_one_probe_budget_per_domain_and_share_catch_all_domains() {
    let dns = zone().await;
    let running = exchanger::start(&["alice", "bob", "carol"]).await.unwrap();
    let seen = running.seen.clone();
    let ledger = common::postgres_url().await;
    let prefix = format!("t{}", hex::encode(rand::random::<[u8; 6]>()));
    // Two probes of a domain a minute, for the whole deployment.
    let config = format!(
        "[dns]\nnameservers = [\"{}\"]\n[smtp]\nenabled = true\nallow_private = true\n\
         helo_name = \"probe.enrichd.test\"\nmail_from = \"verify@enrichd.test\"\nport = {}\n\
         per_domain_per_minute = 2\n[ledger]\nurl = \"{ledger}\"\n\
         [cluster]\nredis_url = \"redis://127.0.0.1:6379\"\nkey_prefix = \"{prefix}\"\nreplicas = 2\n",
        dns.addr(),
        running.addr.port()
    );
    let (a, b) = (TestApp::spawn(&config).await, TestApp::spawn(&config).await);
    until_shared(&a).await;
    until_shared(&b).await;
    let ask = async |app: &TestApp, email: &str| {
        let answer = app
            .client()
            .await
            .enrich(common::email_request(email))
            .await
            .unwrap()
            .into_inner();
        smtp_of(&answer).unwrap_or_else(|| panic!("no SMTP check for {email}"))
    };
    use pb::Deliverability as D;
    assert_eq!(ask(&a, "alice@mail.test").await.status(), D::Deliverable);
    assert_eq!(ask(&b, "bob@mail.test").await.status(), D::Deliverable);
    // Each replica alone would allow two; together they have had theirs.
    let third = ask(&a, "carol@mail.test").await;
    assert_eq!(third.status(), D::Unknown, "{third:?}");
    assert!(
        third.reason.contains("per_domain_per_minute"),
        "{}",
        third.reason
    );
    assert_eq!(seen.lock().unwrap().connections, 2);

    // One replica finds a catch-all domain; the other knows it without
    // asking, and so does the first.
    let found = ask(&a, "anyone@catchall.mail.test").await;
    assert_eq!(found.status(), D::CatchAll);
    assert_eq!(seen.lock().unwrap().connections, 3);
    let known = ask(&b, "someone@catchall.mail.test").await;
    assert_eq!(
        (known.status(), known.host.as_str()),
        (D::CatchAll, "mx.mail.test"),
        "{known:?}"
    );
    assert!(known.reason.contains("found before"), "{}", known.reason);
    assert_eq!(
        ask(&a, "other@catchall.mail.test").await.status(),
        D::CatchAll
    );
    assert_eq!(
        seen.lock().unwrap().connections,
        3,
        "a known catch-all domain is not asked again"
    );

    // An erasure on B reaches what A keeps of the person's mailbox.
    let kept = a.enricher.kept_smtp_answers();
    assert!(kept >= 1, "A keeps what alice's exchanger said");
    b.client()
        .await
        .erase(erasure("alice@mail.test"))
        .await
        .unwrap();
    common::eventually("A drops what it kept of alice's mailbox", || async {
        (a.enricher.kept_smtp_answers() == kept - 1).then_some(())
    })
    .await;
}
