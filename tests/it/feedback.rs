//! Feedback on findings (the Feedback RPC, `POST /v1/feedback`): who may
//! give it, "not me" held for that person on every replica and no one else,
//! Access and erasure, source precision and demotion, the canary, bounds.
use std::time::Duration;

use enrichd::auth::Scope;
use enrichd::clock::ManualClock;
use enrichd::proto::v1 as pb;
use tonic::Code;
use wiremock::matchers::{method, path_regex};
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::common::{self, TestApp, catalog_from, eventually, key, test_source, with_key};

const AUTH_ON: &str = "[auth]\nrequired = true\n";

/// An answer for `email`, the caller knowing the name "Jane Doe".
fn asked(email: &str) -> pb::EnrichRequest {
    let mut request = common::email_request(email);
    request.hints = Some(pb::Hints {
        name: "Jane Doe".into(),
        ..Default::default()
    });
    request
}

type Client = pb::enrichment_client::EnrichmentClient<tonic::transport::Channel>;

/// `email`'s answer, asked with `secret`.
async fn enrich(client: &mut Client, email: &str, secret: &str) -> pb::EnrichResponse {
    client
        .enrich(with_key(asked(email), secret))
        .await
        .unwrap()
        .into_inner()
}

/// Feedback given with `secret`.
async fn give(
    client: &mut Client,
    request: pb::FeedbackRequest,
    secret: &str,
) -> Result<pb::FeedbackResponse, tonic::Status> {
    client
        .feedback(with_key(request, secret))
        .await
        .map(tonic::Response::into_inner)
}

/// A site where every `/u/` and `/a/` user exists, named Jane Doe.
async fn site() -> MockServer {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path_regex("^/(u|a)/"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(serde_json::json!({"user": {"name": "Jane Doe"}})),
        )
        .mount(&server)
        .await;
    server
}

/// `forum` (a username guessed from the address) and `mail` (the address).
fn catalog_text(uri: &str) -> String {
    format!(
        "{}{}",
        test_source("forum", "username", &format!("{uri}/u/{{input}}"), ""),
        test_source("mail", "email", &format!("{uri}/a/{{input}}"), "")
    )
}

/// Where a profile is, as feedback names it.
fn url_of(profile: &pb::Profile) -> String {
    profile
        .url
        .as_ref()
        .map(|u| u.value.clone())
        .unwrap_or_else(|| profile.provenance.as_ref().unwrap().url.clone())
}

fn on_profile(
    answer: &pb::EnrichResponse,
    source: &str,
    verdict: pb::FeedbackVerdict,
    note: &str,
) -> pb::FeedbackRequest {
    let profile = answer
        .profiles
        .iter()
        .chain(&answer.possible_matches)
        .find(|p| p.source_id == source)
        .unwrap_or_else(|| panic!("no {source} profile in {answer:#?}"));
    pb::FeedbackRequest {
        processing_id: pid(answer),
        finding: Some(pb::feedback_request::Finding::Profile(pb::ProfileRef {
            source_id: source.into(),
            url: url_of(profile),
        })),
        verdict: verdict.into(),
        note: note.into(),
    }
}

/// The id of the answer's processing (its ledger record).
fn pid(answer: &pb::EnrichResponse) -> String {
    answer.compliance.as_ref().unwrap().processing_id.clone()
}

fn sources_of(profiles: &[pb::Profile]) -> Vec<&str> {
    profiles.iter().map(|p| p.source_id.as_str()).collect()
}

/// The forum account's doubt, if it is among the possible matches.
fn doubt_of(answer: &pb::EnrichResponse, source: &str) -> Option<pb::Doubt> {
    answer
        .possible_matches
        .iter()
        .find(|p| p.source_id == source)
        .map(|p| p.doubt())
}

#[tokio::test]
async fn not_me_holds_for_that_person_on_every_replica_and_goes_with_erasure() {
    let server = site().await;
    let ledger = common::postgres_url().await;
    let config = format!(
        "{AUTH_ON}[server]\nhttp_listen = \"127.0.0.1:0\"\n[ledger]\nurl = \"{ledger}\"\nfollow_every = \"50ms\"\n"
    );
    let a = TestApp::with_catalog(&config, catalog_from(&catalog_text(&server.uri()))).await;
    let b = TestApp::with_catalog(&config, catalog_from(&catalog_text(&server.uri()))).await;
    let keys = a.keys().await;
    let crm = keys
        .create(key("crm", &[Scope::Enrich, Scope::Feedback]))
        .await
        .unwrap();
    let other = keys
        .create(key("other", &[Scope::Enrich, Scope::Feedback]))
        .await
        .unwrap();
    let reviewer = keys
        .create(key("review", &[Scope::Feedback, Scope::FeedbackAny]))
        .await
        .unwrap();
    let dpo = keys
        .create(key("dpo", &[Scope::Access, Scope::Erase]))
        .await
        .unwrap();
    let (mut ca, mut cb) = (a.client().await, b.client().await);

    let first = enrich(&mut ca, "jane@one.test", &crm.secret).await;
    assert!(
        sources_of(&first.profiles).contains(&"forum"),
        "{:?}",
        sources_of(&first.profiles)
    );
    // Replica b holds the answer in memory too (its memo must go).
    for _ in 0..2 {
        let on_b = enrich(&mut cb, "jane@one.test", &crm.secret).await;
        assert!(sources_of(&on_b.profiles).contains(&"forum"));
    }

    // Another key may not correct the answer crm received: over HTTP too.
    let refused = give(
        &mut ca,
        on_profile(&first, "forum", pb::FeedbackVerdict::WrongPerson, ""),
        &other.secret,
    )
    .await
    .unwrap_err();
    assert_eq!(
        refused.code(),
        Code::PermissionDenied,
        "{}",
        refused.message()
    );
    assert!(
        refused.message().contains("processing_id"),
        "{}",
        refused.message()
    );
    let post = |secret: &str, body: &serde_json::Value| {
        reqwest::Client::new()
            .post(format!("http://{}/v1/feedback", a.http_addr.unwrap()))
            .bearer_auth(secret)
            .header("content-type", "application/json")
            .body(body.to_string())
            .send()
    };
    let body = serde_json::json!({
        "processingId": pid(&first),
        "profile": {"sourceId": "forum", "url": url_of(profile_in(&first, "forum"))},
        "verdict": "FEEDBACK_VERDICT_WRONG_PERSON",
    });
    assert_eq!(post(&other.secret, &body).await.unwrap().status(), 403);
    // No key at all: who calls is decided first.
    let keyless = reqwest::Client::new()
        .post(format!("http://{}/v1/feedback", a.http_addr.unwrap()))
        .header("content-type", "application/json")
        .body(body.to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(keyless.status(), 401);
    for path in ["audience", "audience/members"] {
        let r = reqwest::Client::new()
            .get(format!(
                "http://{}/v1/batches/job_x/{path}",
                a.http_addr.unwrap()
            ))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 401, "{path}");
    }
    // A key without the feedback scope is refused before anything is read.
    assert_eq!(post(&dpo.secret, &body).await.unwrap().status(), 403);

    // The key that received it says "not me", over HTTP.
    let mut not_me = body.clone();
    not_me["note"] = "customer called: the forum account is her cousin's".into();
    let given = post(&crm.secret, &not_me)
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let given: serde_json::Value = serde_json::from_str(&given).unwrap();
    assert_eq!(given["heldOut"], true, "{given}");
    assert_eq!(given["standing"]["wrongPerson"], "1", "{given}");

    // Every caller's next answer for her has it among the refuted
    // possible matches only; on replica b as well, within its follow.
    let again = enrich(&mut ca, "jane@one.test", &other.secret).await;
    assert!(!sources_of(&again.profiles).contains(&"forum"));
    assert_eq!(doubt_of(&again, "forum"), Some(pb::Doubt::Refuted));
    assert!(
        sources_of(&again.profiles).contains(&"mail"),
        "the rest stays"
    );
    eventually("replica b holds the account out", || {
        let (mut cb, secret) = (cb.clone(), crm.secret.clone());
        async move {
            let on_b = enrich(&mut cb, "jane@one.test", &secret).await;
            (doubt_of(&on_b, "forum") == Some(pb::Doubt::Refuted)).then_some(())
        }
    })
    .await;
    // Another person with the same username keeps the account.
    let namesake = enrich(&mut ca, "jane@two.test", &crm.secret).await;
    assert!(sources_of(&namesake.profiles).contains(&"forum"));

    // A reviewer (feedback_any) may give feedback on any caller's answer.
    let reviewed = give(
        &mut ca,
        on_profile(&namesake, "mail", pb::FeedbackVerdict::Correct, ""),
        &reviewer.secret,
    )
    .await
    .unwrap();
    assert!(!reviewed.held_out);

    // Access shows the refutation, with its note; erasure removes it.
    let access = |who: &str| pb::AccessRequest {
        identifier: Some(pb::access_request::Identifier::Email(who.into())),
        reference: "DSR-1".into(),
        ..Default::default()
    };
    let held = ca
        .access(with_key(access("jane@one.test"), &dpo.secret))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(held.feedback.len(), 1, "{:?}", held.feedback);
    let f = &held.feedback[0];
    assert_eq!(
        (f.source_id.as_str(), f.verdict(), f.caller.as_str()),
        ("forum", pb::FeedbackVerdict::WrongPerson, "crm")
    );
    assert!(f.note.contains("cousin"));
    assert!(
        held.ledger
            .iter()
            .any(|r| r.outcome == "feedback" && r.caller == "crm"),
        "the feedback is a record of its own"
    );
    ca.erase(with_key(
        pb::EraseRequest {
            identifier: Some(pb::erase_request::Identifier::Email("jane@one.test".into())),
            kind: pb::erase_request::Kind::Erasure.into(),
            reference: "DSR-2".into(),
            ..Default::default()
        },
        &dpo.secret,
    ))
    .await
    .unwrap();
    let after = ca
        .access(with_key(access("jane@one.test"), &dpo.secret))
        .await
        .unwrap()
        .into_inner();
    assert!(after.feedback.is_empty(), "{:?}", after.feedback);
    // Feedback on an erased person's answer has nothing left to correct.
    let gone = give(
        &mut ca,
        on_profile(&first, "mail", pb::FeedbackVerdict::Correct, ""),
        &crm.secret,
    )
    .await
    .unwrap_err();
    assert_eq!(gone.code(), Code::FailedPrecondition, "{}", gone.message());
    // The source's precision keeps the erased person's verdict.
    let listed = ca
        .list_sources(with_key(
            pb::ListSourcesRequest::default(),
            &reviewer.secret,
        ))
        .await;
    assert_eq!(
        listed.unwrap_err().code(),
        Code::PermissionDenied,
        "sources needs its scope"
    );
    assert_eq!(a.enricher.standing().of("forum").tally.wrong_person, 1);
}

fn profile_in<'a>(answer: &'a pb::EnrichResponse, source: &str) -> &'a pb::Profile {
    answer
        .profiles
        .iter()
        .find(|p| p.source_id == source)
        .unwrap()
}

#[tokio::test]
async fn a_source_with_eight_of_ten_findings_refuted_is_demoted_and_says_so() {
    let server = site().await;
    let catalog = catalog_text(&server.uri());
    let app = TestApp::with_catalog(
        "[feedback]\nmin_feedback = 10\nprecision_floor = 0.5\n",
        catalog_from(&catalog),
    )
    .await;
    let mut client = app.client().await;
    let mut answers = Vec::new();
    for n in 0..10 {
        let answer = client
            .enrich(asked(&format!("p{n}@ten.test")))
            .await
            .unwrap()
            .into_inner();
        assert!(sources_of(&answer.profiles).contains(&"mail"));
        answers.push(answer);
    }
    // Saying it twice counts once: the latest verdict per finding.
    for (n, answer) in answers.iter().enumerate() {
        let verdict = if n < 8 {
            pb::FeedbackVerdict::WrongPerson
        } else {
            pb::FeedbackVerdict::Correct
        };
        if n == 0 {
            client
                .feedback(on_profile(answer, "mail", verdict, ""))
                .await
                .unwrap();
        }
        let given = client
            .feedback(on_profile(answer, "mail", verdict, ""))
            .await
            .unwrap()
            .into_inner();
        assert_eq!(
            given.standing.unwrap().demoted,
            n == 9,
            "after {} pieces",
            n + 1
        );
    }
    let standing = app.enricher.standing().of("mail");
    assert_eq!(
        (standing.tally.correct, standing.tally.wrong_person),
        (2, 8)
    );
    assert!(
        standing.reason.contains("precision 0.20"),
        "{}",
        standing.reason
    );

    // Its next finding is a possible match (nothing corroborates it).
    let next = client
        .enrich(common::email_request("new@ten.test"))
        .await
        .unwrap()
        .into_inner();
    assert!(
        !sources_of(&next.profiles).contains(&"mail"),
        "{:?}",
        sources_of(&next.profiles)
    );
    assert_eq!(doubt_of(&next, "mail"), Some(pb::Doubt::SourceDemoted));
    let listed = client
        .list_sources(pb::ListSourcesRequest::default())
        .await
        .unwrap()
        .into_inner();
    let mail = listed.sources.iter().find(|s| s.id == "mail").unwrap();
    let st = mail.standing.as_ref().unwrap();
    assert_eq!((st.precision, st.demoted), (Some(0.2), true));

    // `enrichd sources check` shows it, from the same ledger.
    let file = app.dir.path().join("catalog");
    std::fs::create_dir_all(&file).unwrap();
    std::fs::write(file.join("test.toml"), &catalog).unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_enrichd"))
        .args(["sources", "check", "--catalog"])
        .arg(&file)
        .env("ENRICHD__LEDGER__URL", &app.ledger_url)
        .env("ENRICHD__PRIVACY__HASH_KEY", common::TEST_HASH_KEY)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    let line = text
        .lines()
        .find(|l| l.starts_with("mail "))
        .unwrap_or_else(|| panic!("{text}"));
    assert!(
        line.contains("0.20 of 10") && line.contains("demoted"),
        "{line}"
    );
}

#[tokio::test]
async fn the_canary_marks_a_site_that_claims_every_name_until_it_stops() {
    let honest = MockServer::start().await;
    Mock::given(path_regex("^/u/jane$"))
        .respond_with(
            ResponseTemplate::new(200).set_body_json(serde_json::json!({"user": {"name": "Jane"}})),
        )
        .mount(&honest)
        .await;
    let liar = site().await;
    let catalog = format!(
        "{}{}",
        test_source(
            "honest",
            "username",
            &format!("{}/u/{{input}}", honest.uri()),
            ""
        ),
        test_source(
            "liar",
            "username",
            &format!("{}/u/{{input}}", liar.uri()),
            ""
        )
    );
    let clock = ManualClock::new();
    let app = TestApp::with_clock(
        "[feedback.canary]\nenabled = true\nevery = \"1h\"\n",
        catalog_from(&catalog),
        clock.shared(),
    )
    .await;
    assert_eq!(
        app.enricher.canary_round().await,
        Some(1),
        "the liar claims the random name"
    );
    assert_eq!(
        app.enricher.canary_round().await,
        None,
        "one round an hour, on the whole ledger"
    );
    let standing = app.enricher.standing().of("liar");
    assert!(standing.demoted, "{standing:?}");
    let canary = standing.canary.unwrap();
    assert!(
        canary.claimed && canary.probe.starts_with("zq"),
        "{canary:?}"
    );
    assert!(
        !liar
            .received_requests()
            .await
            .unwrap()
            .iter()
            .any(|r| r.url.path() == "/u/jane"),
        "no person's data"
    );
    assert!(!app.enricher.standing().of("honest").demoted);
    let mut client = app.client().await;
    let listed = client
        .list_sources(pb::ListSourcesRequest::default())
        .await
        .unwrap()
        .into_inner();
    let shown = listed
        .sources
        .iter()
        .find(|s| s.id == "liar")
        .unwrap()
        .standing
        .clone()
        .unwrap();
    assert!(
        shown.canary_claimed && shown.canary_evidence.contains("zq"),
        "{shown:?}"
    );

    // `sources check --live` reports the same.
    let file = app.dir.path().join("catalog");
    std::fs::create_dir_all(&file).unwrap();
    std::fs::write(file.join("test.toml"), &catalog).unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_enrichd"))
        .args(["sources", "check", "--live", "--catalog"])
        .arg(&file)
        .env("ENRICHD__LEDGER__URL", &app.ledger_url)
        .env("ENRICHD__PRIVACY__HASH_KEY", common::TEST_HASH_KEY)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("UNRELIABLE liar"),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!text.contains("UNRELIABLE honest"), "{text}");

    // Fixed, it answers the next round right and is trusted again.
    liar.reset().await;
    clock.advance(Duration::from_secs(3601));
    assert_eq!(app.enricher.canary_round().await, Some(0));
    assert!(!app.enricher.standing().of("liar").demoted);
}

#[tokio::test]
async fn feedback_is_bounded_and_names_what_is_wrong() {
    let server = site().await;
    let app = TestApp::with_catalog(
        "[feedback]\nper_key_per_minute = 4\n",
        catalog_from(&catalog_text(&server.uri())),
    )
    .await;
    let mut client = app.client().await;
    let answer = client
        .enrich(asked("bounded@example.test"))
        .await
        .unwrap()
        .into_inner();
    let long = client
        .feedback(on_profile(
            &answer,
            "mail",
            pb::FeedbackVerdict::Correct,
            &"x".repeat(1001),
        ))
        .await
        .unwrap_err();
    assert_eq!(long.code(), Code::InvalidArgument);
    assert!(long.message().contains("note"), "{}", long.message());
    let mut unasked = on_profile(&answer, "mail", pb::FeedbackVerdict::Correct, "");
    unasked.finding = Some(pb::feedback_request::Finding::Profile(pb::ProfileRef {
        source_id: "nowhere".into(),
        url: "https://example.test/x".into(),
    }));
    let e = client.feedback(unasked).await.unwrap_err();
    assert_eq!(e.code(), Code::InvalidArgument);
    assert!(e.message().contains("profile.source_id"), "{}", e.message());
    let mut unknown = on_profile(&answer, "mail", pb::FeedbackVerdict::Correct, "");
    unknown.processing_id = "0".repeat(32);
    assert_eq!(
        client.feedback(unknown).await.unwrap_err().code(),
        Code::NotFound
    );
    let mut no_verdict = on_profile(&answer, "mail", pb::FeedbackVerdict::Correct, "");
    no_verdict.verdict = 0;
    no_verdict.finding = None;
    let e = client.feedback(no_verdict).await.unwrap_err();
    assert!(
        e.message().contains("verdict") && e.message().contains("finding"),
        "{}",
        e.message()
    );

    // Four a minute for this caller (the two refused after the check of
    // their shape count): the fifth waits.
    for _ in 0..2 {
        client
            .feedback(on_profile(
                &answer,
                "mail",
                pb::FeedbackVerdict::Correct,
                "",
            ))
            .await
            .unwrap();
    }
    let over = client
        .feedback(on_profile(
            &answer,
            "mail",
            pb::FeedbackVerdict::Correct,
            "",
        ))
        .await
        .unwrap_err();
    assert_eq!(over.code(), Code::ResourceExhausted, "{}", over.message());
}

#[tokio::test]
async fn not_there_asks_the_source_s_known_accounts_again_once_an_hour() {
    let server = site().await;
    let known = "known_present = [\"known-holder\"]";
    let catalog = test_source(
        "mail",
        "email",
        &format!("{}/a/{{input}}", server.uri()),
        known,
    );
    let app = TestApp::with_catalog("", catalog_from(&catalog)).await;
    let mut client = app.client().await;
    let answer = client
        .enrich(asked("gone@example.test"))
        .await
        .unwrap()
        .into_inner();
    let not_there = || on_profile(&answer, "mail", pb::FeedbackVerdict::NotThere, "");
    let first = client.feedback(not_there()).await.unwrap().into_inner();
    assert!(first.check_scheduled && first.held_out);
    eventually("the known account is asked", || {
        let server = &server;
        async move {
            let asked = server.received_requests().await.unwrap();
            asked
                .iter()
                .any(|r| r.url.path() == "/a/known-holder")
                .then_some(())
        }
    })
    .await;
    let again = client.feedback(not_there()).await.unwrap().into_inner();
    assert!(!again.check_scheduled, "once an hour per source");
}
