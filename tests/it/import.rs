//! `enrichd sources import`: community site lists become catalog files whose
//! check types behave as declared.
use crate::common;

use enrichd::catalog::Catalog;
use enrichd::catalog::import::{Format, import};
use enrichd::proto::v1 as pb;
use pb::source_outcome::Outcome;

fn purposes() -> Vec<String> {
    vec!["marketing".into(), "crm_enrichment".into()]
}

fn load(format: Format, file: &str) -> (Catalog, Vec<(String, String)>) {
    let imported = import(format, &common::fixture(file), &purposes()).expect("imports");
    let catalog = Catalog::from_files(&[(file.into(), imported.toml)], &purposes(), &|_| None)
        .expect("the generated catalog is valid");
    assert_eq!(catalog.sources().len(), imported.count);
    (catalog, imported.skipped)
}

#[test]
fn maigret_check_types_map_onto_detect() {
    let (catalog, skipped) = load(Format::Maigret, "import/maigret.json");
    let ids: Vec<&str> = catalog.sources().iter().map(|s| &*s.id).collect();
    assert_eq!(
        ids,
        ["maigret-forum42", "maigret-github", "maigret-redirecty"]
    );
    let forum = catalog.get("maigret-forum42").unwrap();
    assert_eq!(forum.tags, ["forum", "gaming"]);
    let enrichd::catalog::source::SourceKind::Http(h) = &forum.kind else {
        panic!()
    };
    assert_eq!(h.detect.absent, ["The specified member cannot be found"]);
    assert_eq!(h.detect.present, ["memberHeader"]);
    let redirecty = catalog.get("maigret-redirecty").unwrap();
    let enrichd::catalog::source::SourceKind::Http(h) = &redirecty.kind else {
        panic!()
    };
    assert!(h.detect.redirect_means_absent);
    let reasons: Vec<&str> = skipped.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(reasons, ["OldSite", "Tumblr"], "{skipped:?}");
}

#[test]
fn sherlock_lists_import_and_unsupported_entries_say_why() {
    let (catalog, skipped) = load(Format::Sherlock, "import/sherlock.json");
    let ids: Vec<&str> = catalog.sources().iter().map(|s| &*s.id).collect();
    assert_eq!(ids, ["sherlock-chess", "sherlock-photos"]);
    // The probe URL is the one checked.
    let chess = catalog.get("sherlock-chess").unwrap();
    assert!(chess.input_pattern.is_some());
    let skipped: std::collections::BTreeMap<_, _> = skipped.into_iter().collect();
    assert!(skipped["GitHub"].contains("input_pattern"), "{skipped:?}");
    assert!(skipped["Blogspot"].contains("literal host"), "{skipped:?}");
}

#[test]
fn whatsmyname_codes_and_strings_map_onto_detect() {
    let (catalog, skipped) = load(Format::Whatsmyname, "import/whatsmyname.json");
    assert_eq!(catalog.sources().len(), 3);
    let speed = catalog.get("wmn-speedrunners").unwrap();
    let enrichd::catalog::source::SourceKind::Http(h) = &speed.kind else {
        panic!()
    };
    assert_eq!(
        (
            h.detect.found_status.clone(),
            h.detect.not_found_status.clone()
        ),
        (vec![200], vec![])
    );
    assert_eq!(h.detect.present, ["\"data\":{"]);
    assert_eq!(h.detect.absent, ["\"data\":[]"]);
    let post = catalog.get("wmn-postbook").unwrap();
    let enrichd::catalog::source::SourceKind::Http(h) = &post.kind else {
        panic!()
    };
    assert_eq!(h.request.method, reqwest::Method::POST);
    assert_eq!(skipped.len(), 1);
}

#[tokio::test]
async fn imported_sources_tell_found_from_not_found() {
    use wiremock::matchers::path;
    use wiremock::{Mock, MockServer, ResponseTemplate};
    let server = MockServer::start().await;
    Mock::given(path("/api/v1/users/jane"))
        .respond_with(ResponseTemplate::new(200).set_body_string(r#"{"data":{"name":"jane"}}"#))
        .mount(&server)
        .await;
    Mock::given(path("/api/v1/users/janedoe"))
        .respond_with(ResponseTemplate::new(200).set_body_string(r#"{"data":[]}"#))
        .mount(&server)
        .await;
    let imported = import(
        Format::Whatsmyname,
        &common::fixture("import/whatsmyname.json"),
        &purposes(),
    )
    .unwrap();
    let text = imported
        .toml
        .replace("https://speedrunners.example", &server.uri())
        .replace(
            "[[source]]",
            "[[source]]\nnetwork = { allow_private = true }",
        );
    let catalog =
        Catalog::from_files(&[("wmn.toml".into(), text)], &purposes(), &|_| None).unwrap();
    let only: Vec<_> = catalog
        .sources()
        .iter()
        .filter(|s| &*s.id == "wmn-speedrunners")
        .cloned()
        .collect();
    let catalog = Catalog::from_sources(only);

    let found =
        common::enrich_with(catalog.clone(), common::email_request("jane@example.test")).await;
    assert_eq!(
        common::outcome_of(&found, "wmn-speedrunners"),
        Outcome::Found
    );
    // Found by a username guessed from the local part, with nothing tying
    // it to the person: a possible match.
    let guess = found
        .possible_matches
        .iter()
        .find(|p| p.source_id == "wmn-speedrunners")
        .expect("a possible match");
    assert_eq!(
        guess.provenance.as_ref().unwrap().confidence(),
        pb::MatchConfidence::Guess
    );
    let missing = common::enrich_with(catalog, common::email_request("janedoe@example.test")).await;
    assert_eq!(
        common::outcome_of(&missing, "wmn-speedrunners"),
        Outcome::NotFound
    );
}
