//! The sandbox's documented people, through the real pipeline.
mod common;

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
}

#[tokio::test]
async fn nobody_is_found_nowhere() {
    let resp = enrich(email_request("nobody@example.org")).await;
    assert!(resp.profiles.is_empty());
    assert!(resp.sources.iter().all(|o| o.outcome() != Outcome::Found));
    assert!(!resp.compliance.unwrap().notice.unwrap().required);
}
