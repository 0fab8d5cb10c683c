//! The real catalog (`config/sources/`) against recorded responses in the
//! real sites' formats (`tests/fixtures/`), served by a local server.
use crate::common;

use common::{email_request, enrich_with, fixture, outcome_of, profile_of, real_catalog};
use enrichd::proto::v1 as pb;
use pb::source_outcome::Outcome;
use sha2::{Digest, Sha256};
use wiremock::matchers::{header, method, path, path_regex, query_param};
use wiremock::{Mock, MockServer, ResponseTemplate};

fn json(body: String) -> ResponseTemplate {
    ResponseTemplate::new(200).set_body_raw(body, "application/json")
}

fn hex_sha256(s: &str) -> String {
    Sha256::digest(s.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn hex_md5(s: &str) -> String {
    use md5::Digest as _;
    md5::Md5::digest(s.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Serves the recorded responses: Ada is known, everyone else is not.
async fn recorded_sites() -> MockServer {
    let server = MockServer::start().await;
    let ada_sha = hex_sha256("ada@example.test");
    let routes = vec![
        // Gravatar v3
        Mock::given(method("GET"))
            .and(path(format!("/v3/profiles/{ada_sha}")))
            .respond_with(json(
                fixture("gravatar/profile.json").replace("HASH_PLACEHOLDER", &ada_sha),
            )),
        Mock::given(path_regex("^/v3/profiles/"))
            .respond_with(
                ResponseTemplate::new(404)
                    .set_body_raw(fixture("gravatar/not_found.json"), "application/json"),
            )
            .with_priority(10),
        // GitHub
        Mock::given(path("/search/users"))
            .and(query_param("q", "ada@example.test in:email"))
            .respond_with(json(fixture("github/search_found.json"))),
        Mock::given(path("/search/users"))
            .respond_with(json(fixture("github/search_empty.json")))
            .with_priority(10),
        Mock::given(path("/users/ada-l")).respond_with(json(fixture("github/user.json"))),
        Mock::given(path_regex("^/users/"))
            .respond_with(
                ResponseTemplate::new(404)
                    .set_body_raw(fixture("github/not_found.json"), "application/json"),
            )
            .with_priority(10),
        // Libravatar
        Mock::given(method("HEAD"))
            .and(path(format!("/avatar/{}", hex_md5("ada@example.test"))))
            .respond_with(ResponseTemplate::new(200).insert_header("content-type", "image/png")),
        Mock::given(path_regex("^/avatar/"))
            .respond_with(ResponseTemplate::new(404))
            .with_priority(10),
        // Keybase
        Mock::given(path("/_/api/1.0/user/lookup.json"))
            .and(query_param("usernames", "ada"))
            .respond_with(json(fixture("keybase/lookup_found.json"))),
        Mock::given(path("/_/api/1.0/user/lookup.json"))
            .respond_with(json(fixture("keybase/lookup_missing.json")))
            .with_priority(10),
        // Hacker News
        Mock::given(path("/v0/user/ada_l.json"))
            .respond_with(json(fixture("hackernews/user.json"))),
        Mock::given(path_regex("^/v0/user/"))
            .respond_with(json(fixture("hackernews/missing.json")))
            .with_priority(10),
        // Reddit
        Mock::given(path("/user/adalovelace/about.json"))
            .respond_with(json(fixture("reddit/about.json"))),
        Mock::given(path_regex("^/user/"))
            .respond_with(
                ResponseTemplate::new(404)
                    .set_body_raw(fixture("reddit/not_found.json"), "application/json"),
            )
            .with_priority(10),
        // Mastodon WebFinger
        Mock::given(path("/.well-known/webfinger"))
            .and(query_param("resource", "acct:ada@mastodon.social"))
            .respond_with(json(fixture("mastodon/webfinger.json"))),
        Mock::given(path("/.well-known/webfinger"))
            .respond_with(ResponseTemplate::new(404))
            .with_priority(10),
    ];
    for mock in routes {
        mock.mount(&server).await;
    }
    // Nobody else: the username sources' recorded "no such account"
    // answers where they are not a plain 404 (tests/username_sources.rs
    // reads each source's found and missing answers).
    Mock::given(path("/xrpc/app.bsky.actor.getProfile"))
        .respond_with(
            ResponseTemplate::new(400)
                .set_body_raw(fixture("bluesky/missing.json"), "application/json"),
        )
        .mount(&server)
        .await;
    Mock::given(path("/api/v4/users"))
        .respond_with(json(fixture("gitlab/missing.json")))
        .mount(&server)
        .await;
    // Every site shares this one origin: Discogs' `/users/{u}` is GitHub's
    // path too, so it is told apart by the media type Discogs asks for.
    Mock::given(path_regex("^/users/"))
        .and(header("accept", "application/vnd.discogs.v2.discogs+json"))
        .respond_with(
            ResponseTemplate::new(404)
                .set_body_raw(fixture("discogs/missing.json"), "application/json"),
        )
        .with_priority(1)
        .mount(&server)
        .await;
    server
}

#[tokio::test]
async fn the_real_catalog_reads_the_real_formats() {
    let server = recorded_sites().await;
    let resp = enrich_with(
        real_catalog(&server.uri()),
        email_request("ada@example.test"),
    )
    .await;

    // Exact matches on the identifier itself.
    for source in ["gravatar", "github-email", "libravatar", "email-domain-mx"] {
        assert_eq!(outcome_of(&resp, source), Outcome::Found, "{source}");
    }
    let gravatar = profile_of(&resp, "gravatar");
    assert_eq!(
        gravatar.provenance.as_ref().unwrap().confidence(),
        pb::MatchConfidence::Exact
    );
    assert_eq!(
        gravatar.display_name.as_ref().unwrap().value,
        "Ada Lovelace"
    );
    assert_eq!(gravatar.location.as_ref().unwrap().value, "London, UK");
    let accounts: Vec<&str> = gravatar
        .linked_accounts
        .iter()
        .map(|a| a.url.as_str())
        .collect();
    assert_eq!(
        accounts,
        ["https://github.com/ada-l", "https://mastodon.social/@adal"]
    );
    assert_eq!(gravatar.extra["job_title"].value, "Analyst");

    // GitHub: the email search pivots to the user.
    let github = profile_of(&resp, "github");
    let prov = github
        .display_name
        .as_ref()
        .unwrap()
        .provenance
        .as_ref()
        .unwrap();
    assert_eq!(prov.confidence(), pb::MatchConfidence::Pivot);
    assert_eq!(prov.source_id, "github");
    assert_eq!(prov.url, format!("{}/users/ada-l", server.uri()));
    assert_eq!(prov.method(), pb::ExtractionMethod::JsonPointer);
    assert_eq!(prov.selector, "/name");
    assert_eq!(github.followers.as_ref().unwrap().value, 1843);
    assert_eq!(github.posts.as_ref().unwrap().value, 12);
    let created = github.created_at.as_ref().unwrap().value.unwrap();
    assert_eq!(created.seconds, 1203070683); // 2008-02-15T10:18:03Z

    // GitHub's twitter handle pivots to Reddit (depth 2).
    let reddit = profile_of(&resp, "reddit");
    assert_eq!(
        reddit.provenance.as_ref().unwrap().confidence(),
        pb::MatchConfidence::Pivot
    );
    assert_eq!(
        reddit.bio.as_ref().unwrap().value,
        "Bernoulli numbers and knitting patterns."
    );
    assert_eq!(
        reddit.created_at.as_ref().unwrap().value.unwrap().seconds,
        1134028003
    );
    assert!(
        resp.sources
            .iter()
            .any(|o| o.source_id == "reddit" && o.depth == 2)
    );

    // The local part "ada" is only a guess; what it finds stays a guess.
    let keybase = profile_of(&resp, "keybase");
    assert_eq!(
        keybase.provenance.as_ref().unwrap().confidence(),
        pb::MatchConfidence::Guess
    );
    assert_eq!(keybase.display_name.as_ref().unwrap().value, "Ada Lovelace");
    assert_eq!(keybase.linked_accounts.len(), 2);
    // ...and it is hers: its proofs link to her confirmed GitHub account.
    assert_eq!(keybase.corroborated_by, [pb::Corroboration::Link as i32]);
    // Hacker News was reached by the same guess, and nothing ties that
    // account to her (no name, no avatar, no link): a possible match, with
    // where it is and nothing it says.
    assert!(
        resp.sources
            .iter()
            .any(|o| o.source_id == "hackernews" && o.outcome() == Outcome::Found)
    );
    assert!(resp.profiles.iter().all(|p| p.source_id != "hackernews"));
    let hn = resp
        .possible_matches
        .iter()
        .find(|p| p.source_id == "hackernews")
        .expect("a possible match");
    assert_eq!(
        hn.provenance.as_ref().unwrap().confidence(),
        pb::MatchConfidence::Guess
    );
    assert!(hn.extra.is_empty() && hn.bio.is_none() && hn.created_at.is_none());
    let mastodon = profile_of(&resp, "mastodon-social");
    assert_eq!(mastodon.username.as_ref().unwrap().value, "adal");
    assert_eq!(
        mastodon.url.as_ref().unwrap().value,
        "https://mastodon.social/@adal"
    );

    // Conflicting names are all kept, with every source that gave them.
    let names = resp
        .attributes
        .iter()
        .find(|a| a.name == "name")
        .expect("name attribute");
    let values: Vec<&str> = names.values.iter().map(|v| v.value.as_str()).collect();
    assert_eq!(values[0], "Ada Lovelace");
    assert!(values.contains(&"Ada L."), "{values:?}");
    assert_eq!(
        names.values[0].provenance.len(),
        3,
        "gravatar, github, keybase"
    );

    // Best match first, and the answer carries the Art. 14 duty.
    assert_eq!(
        resp.profiles[0].provenance.as_ref().unwrap().confidence(),
        pb::MatchConfidence::Exact
    );
    assert_eq!(resp.confidence(), pb::MatchConfidence::Exact);
    let notice = resp.compliance.unwrap().notice.unwrap();
    assert!(notice.required && notice.notify_by.is_some());
    assert!(notice.sources.contains(&"gravatar".to_string()));
}

#[tokio::test]
async fn an_unknown_person_is_not_found_everywhere_and_never_an_error() {
    let server = recorded_sites().await;
    let resp = enrich_with(
        real_catalog(&server.uri()),
        email_request("nobody@nomx.example.test"),
    )
    .await;
    assert!(resp.profiles.is_empty(), "{:?}", resp.profiles);
    for o in &resp.sources {
        let ok = matches!(o.outcome(), Outcome::NotFound | Outcome::Skipped);
        assert!(ok, "{}: {:?} {}", o.source_id, o.outcome(), o.detail);
    }
    for source in [
        "gravatar",
        "github-email",
        "libravatar",
        "keybase",
        "hackernews",
        "reddit",
        "mastodon-social",
        "email-domain-mx",
    ] {
        assert_eq!(outcome_of(&resp, source), Outcome::NotFound, "{source}");
    }
    // No pivot, so the username-only GitHub user source was asked only with
    // the guess from the address, "nobody", and found no one.
    assert_eq!(outcome_of(&resp, "github"), Outcome::NotFound);
    let asked: Vec<String> = server
        .received_requests()
        .await
        .unwrap()
        .iter()
        .filter(|r| r.headers.contains_key("x-github-api-version"))
        .map(|r| r.url.path().to_owned())
        .collect();
    assert!(asked.contains(&"/users/nobody".to_owned()), "{asked:?}");
    assert!(
        asked
            .iter()
            .all(|p| p.starts_with("/search/") || p == "/users/nobody"),
        "{asked:?}"
    );
    assert!(!resp.compliance.unwrap().notice.unwrap().required);
}
