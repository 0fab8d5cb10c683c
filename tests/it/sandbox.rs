//! The sandbox's documented people, through the real pipeline.
use crate::common;

use common::{email_request, outcome_of, phone_request};
use enrichd::proto::v1 as pb;
use pb::source_outcome::Outcome;

async fn enrich(request: pb::EnrichRequest) -> pb::EnrichResponse {
    let (app, _sandbox) = common::sandbox_app().await;
    app.client()
        .await
        .enrich(request)
        .await
        .unwrap()
        .into_inner()
}

#[tokio::test]
async fn jane_is_found_on_most_sandbox_sites_with_provenance() {
    let resp = enrich(email_request("jane.doe@example.com")).await;
    let sources: std::collections::BTreeSet<&str> =
        resp.profiles.iter().map(|p| p.source_id.as_str()).collect();
    assert!(sources.len() >= 8, "{sources:?}");
    for p in &resp.profiles {
        let prov = p.provenance.as_ref().unwrap();
        assert_eq!(prov.source_id, p.source_id);
        assert!(prov.url.starts_with("http://127.0.0.1:"), "{}", prov.url);
        assert!(prov.retrieved_at.is_some());
        for field in [&p.display_name, &p.bio, &p.location].into_iter().flatten() {
            assert_eq!(field.provenance.as_ref().unwrap().source_id, p.source_id);
        }
    }
    // Her age: the oldest account tied to her (the code host's, 2012),
    // with where it is from.
    let first = resp.summary.as_ref().unwrap().first_seen.clone().unwrap();
    let at = first.value.unwrap();
    assert_eq!(
        chrono::DateTime::from_timestamp(at.seconds, 0)
            .unwrap()
            .to_rfc3339(),
        "2012-03-04T10:00:00+00:00"
    );
    let from = first.provenance.unwrap();
    assert_eq!(
        (from.source_id.as_str(), from.selector.as_str()),
        ("sb-codehub", "/created_at")
    );
    // A pivot two hops away: email -> code search -> user -> homepage URL.
    let home = resp
        .sources
        .iter()
        .find(|o| o.source_id == "sb-homepage")
        .unwrap();
    assert_eq!((home.outcome(), home.depth), (Outcome::Found, 2));
    // The misbehaving sites are outcomes, not failures.
    assert_eq!(outcome_of(&resp, "sb-slow"), Outcome::Timeout);
    assert_eq!(outcome_of(&resp, "sb-busy"), Outcome::RateLimited);
    // Purpose policy: the caller-directory site does not serve marketing.
    let voicebook = resp
        .sources
        .iter()
        .find(|o| o.source_id == "sb-voicebook")
        .unwrap();
    assert_eq!(
        voicebook.skip_reason(),
        pb::source_outcome::SkipReason::Purpose
    );
    // The bios give evidence for interests, a health condition among them.
    let bios: String = resp
        .profiles
        .iter()
        .filter_map(|p| p.bio.as_ref())
        .map(|b| b.value.clone())
        .collect();
    for word in ["developer", "photography", "Marathon", "diabetes", "games"] {
        assert!(bios.contains(word), "{word}");
    }
}

#[tokio::test]
async fn the_sandbox_phone_is_found_on_messaging_sites() {
    let mut req = phone_request("+447700900123");
    req.purpose = "crm_enrichment".into();
    let resp = enrich(req).await;
    let mut sources: Vec<&str> = resp.profiles.iter().map(|p| p.source_id.as_str()).collect();
    sources.sort();
    assert_eq!(sources, ["sb-chat", "sb-voicebook"]);
    assert_eq!(outcome_of(&resp, "sb-chat"), Outcome::Found);
    assert_eq!(outcome_of(&resp, "sb-voicebook"), Outcome::Found);
    // As the README says: a number of Ofcom's drama range, nobody's, so
    // verification reads it invalid and the risk says so.
    let Some(pb::verification::Kind::Phone(phone)) = resp.verification.unwrap().kind else {
        panic!("a phone's verification")
    };
    assert!(!phone.valid);
    assert_eq!(phone.region, "GB");
    let mut req = phone_request("+447700900123");
    req.purpose = "fraud_prevention".into();
    let risk = enrich(req).await.risk.unwrap();
    assert_eq!(risk.reasons[0].code, "phone_invalid", "{:?}", risk.reasons);
}

#[tokio::test]
async fn nobody_is_found_nowhere() {
    let resp = enrich(email_request("nobody@example.org")).await;
    assert!(resp.profiles.is_empty());
    assert!(resp.sources.iter().all(|o| o.outcome() != Outcome::Found));
    assert!(!resp.compliance.unwrap().notice.unwrap().required);
}

/// A username guessed from the local part belongs to whoever registered it:
/// with a typo'd domain (nothing else found) Jane's forum profile is only a
/// possible match, where it is and nothing more, and feeds no score.
#[tokio::test]
async fn an_uncorroborated_guess_is_a_possible_match_that_feeds_nothing() {
    let resp = enrich(email_request("jane.doe@exmaple.com")).await;
    assert!(resp.profiles.is_empty(), "{:?}", resp.profiles);
    assert_eq!(resp.possible_matches.len(), 1);
    let forum = &resp.possible_matches[0];
    assert_eq!(forum.source_id, "sb-forum");
    assert_eq!(
        forum.provenance.as_ref().unwrap().confidence(),
        pb::MatchConfidence::Guess
    );
    assert!(forum.url.is_some());
    assert!(forum.display_name.is_none() && forum.bio.is_none() && forum.created_at.is_none());
    assert!(forum.corroborated_by.is_empty());
    assert!(resp.interests.is_empty());
    assert_eq!(resp.footprint.unwrap().score, 0);
    assert!(resp.attributes.is_empty());
    // The same guess, with Jane's name given, is hers.
    let mut named = email_request("jane.doe@exmaple.com");
    named.hints.get_or_insert_with(Default::default).name = "Jane Doe".into();
    let resp = enrich(named).await;
    assert!(resp.possible_matches.is_empty());
    assert_eq!(resp.profiles[0].source_id, "sb-forum");
    assert!(!resp.interests.is_empty());
}

#[tokio::test]
async fn the_callers_options_narrow_profiles_and_interests() {
    let (app, _sandbox) = common::sandbox_app().await;
    let mut client = app.client().await;
    let mut ask = async |options: pb::EnrichOptions| {
        let mut req = email_request("jane.doe@example.com");
        req.options = Some(options);
        // The name corroborates the forum profile her local part guessed.
        req.hints.get_or_insert_with(Default::default).name = "Jane Doe".into();
        client.enrich(req).await.unwrap().into_inner()
    };
    // Two calls first: the flaky site (an error every other call) is then
    // cached, so every answer below is built from the same findings.
    ask(pb::EnrichOptions::default()).await;
    ask(pb::EnrichOptions::default()).await;
    let all = ask(pb::EnrichOptions::default()).await;
    let confidences = |r: &pb::EnrichResponse| -> std::collections::BTreeSet<i32> {
        r.profiles
            .iter()
            .map(|p| p.provenance.as_ref().unwrap().confidence)
            .collect()
    };
    use pb::MatchConfidence::{Exact, Guess, Pivot};
    assert_eq!(
        confidences(&all),
        [Guess as i32, Pivot as i32, Exact as i32].into(),
        "Jane has a guessed, a pivoted and exact profiles"
    );
    let forum = all
        .profiles
        .iter()
        .find(|p| p.source_id == "sb-forum")
        .unwrap();
    assert_eq!(
        forum.corroborated_by,
        [pb::Corroboration::NameHint as i32],
        "the guess is hers by the name given"
    );

    // min_confidence drops the profiles below it, and the answer is only as
    // sure as what is left.
    let pivot = ask(pb::EnrichOptions {
        min_confidence: Pivot.into(),
        ..Default::default()
    })
    .await;
    assert_eq!(confidences(&pivot), [Pivot as i32, Exact as i32].into());
    let exact = ask(pb::EnrichOptions {
        min_confidence: Exact.into(),
        ..Default::default()
    })
    .await;
    assert_eq!(confidences(&exact), [Exact as i32].into());
    // The same profiles otherwise.
    let at_least = |r: &pb::EnrichResponse, min: pb::MatchConfidence| {
        r.profiles
            .iter()
            .filter(|p| p.provenance.as_ref().unwrap().confidence >= min as i32)
            .map(|p| p.source_id.clone())
            .collect::<std::collections::BTreeSet<_>>()
    };
    assert_eq!(at_least(&pivot, Guess), at_least(&all, Pivot));
    assert_eq!(at_least(&exact, Guess), at_least(&all, Exact));

    // max_interests keeps the best N; min_interest_score drops the weaker.
    assert!(all.interests.len() > 3, "{}", all.interests.len());
    let top = ask(pb::EnrichOptions {
        max_interests: 3,
        ..Default::default()
    })
    .await;
    let ids = |r: &pb::EnrichResponse| r.interests.iter().map(|i| i.id.clone()).collect::<Vec<_>>();
    assert_eq!(ids(&top), ids(&all)[..3]);
    let strong = ask(pb::EnrichOptions {
        min_interest_score: Some(0.9),
        ..Default::default()
    })
    .await;
    assert!(!strong.interests.is_empty());
    assert!(strong.interests.iter().all(|i| i.score >= 0.9));
    assert!(strong.interests.len() < all.interests.len());
}

/// `enrich --sandbox` as a newcomer runs it (MX checks on, as shipped), in
/// a network namespace with nothing but loopback when `offline`. What a
/// comparison needs of the answer: the MX check, the risk and each source's
/// outcome (times, ports and ids differ from run to run).
fn sandbox_cli_answer(email: &str, offline: bool) -> serde_json::Value {
    let bin = env!("CARGO_BIN_EXE_enrichd");
    let args = [
        "enrich",
        "--sandbox",
        "--email",
        email,
        "--purpose",
        "fraud_prevention",
        "--basis",
        "legitimate_interests",
        "--lia-ref",
        "LIA-1",
    ];
    let mut command = if offline {
        let mut c = std::process::Command::new("unshare");
        c.args([
            "-n",
            "sh",
            "-c",
            "ip link set lo up && exec \"$0\" \"$@\"",
            bin,
        ]);
        c
    } else {
        std::process::Command::new(bin)
    };
    let out = command
        .args(args)
        .env("ENRICHD__LEDGER__URL", "sqlite::memory:")
        .env("ENRICHD__PRIVACY__HASH_KEY", common::TEST_HASH_KEY)
        .env_remove("ENRICHD__DNS__ENABLED")
        .env_remove("ENRICHD__DNS__NAMESERVERS")
        .output()
        .expect("runs (unshare and ip from util-linux and iproute2)");
    assert!(
        out.status.success(),
        "offline {offline}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let answer: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
    let mx = &answer["verification"]["email"]["mx"];
    let reasons: Vec<&serde_json::Value> = answer["risk"]["reasons"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| &r["code"])
        .collect();
    let sources: Vec<(&serde_json::Value, &serde_json::Value)> = answer["sources"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| (&s["sourceId"], &s["outcome"]))
        .collect();
    serde_json::json!({
        "mx": {"status": mx["status"], "hosts": mx["hosts"], "detail": mx["detail"]},
        "smtp": answer["verification"]["email"]["smtp"],
        "risk": {"score": answer["risk"]["score"], "verdict": answer["risk"]["verdict"], "reasons": reasons},
        "sources": sources,
        "status": answer["summary"]["status"],
    })
}

/// The sandbox is the whole world: its own DNS answers the MX checks and
/// its own exchanger the SMTP checks, so with no network at all (a
/// namespace holding only loopback, where any packet meant for elsewhere
/// fails) it answers exactly as it does outside.
#[test]
fn the_sandbox_answers_the_same_with_no_network_at_all() {
    // Each address, its MX status, SMTP status and verdict (as the README
    // tells them).
    let people = [
        (
            "jane.doe@example.com",
            "STATUS_FOUND",
            "DELIVERABILITY_DELIVERABLE",
            "VERDICT_ACCEPT",
        ),
        (
            "nobody@example.org",
            "STATUS_FOUND",
            "DELIVERABILITY_UNDELIVERABLE",
            "VERDICT_REVIEW",
        ),
        (
            "pat@catchall.example.com",
            "STATUS_FOUND",
            "DELIVERABILITY_CATCH_ALL",
            "VERDICT_REVIEW",
        ),
        (
            "someone@gmail.com",
            "STATUS_FOUND",
            "DELIVERABILITY_UNKNOWN",
            "VERDICT_REVIEW",
        ),
        ("jane@gmial.com", "STATUS_NONE", "", "VERDICT_DECLINE"),
        (
            "x@mailinator.com",
            "STATUS_FOUND",
            "DELIVERABILITY_UNKNOWN",
            "VERDICT_DECLINE",
        ),
        ("jane@exаmple.com", "STATUS_NONE", "", "VERDICT_DECLINE"),
    ];
    for (email, mx, smtp, verdict) in people {
        let online = sandbox_cli_answer(email, false);
        let offline = sandbox_cli_answer(email, true);
        assert_eq!(online, offline, "{email}");
        assert_eq!(online["mx"]["status"], mx, "{email}: {online}");
        let said = online["smtp"]["status"].as_str().unwrap_or_default();
        assert_eq!(said, smtp, "{email}: {online}");
        assert_eq!(online["risk"]["verdict"], verdict, "{email}: {online}");
    }
}
