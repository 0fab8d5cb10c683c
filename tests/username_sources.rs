//! The real catalog's username sources against recorded answers in each
//! site's real format (`tests/fixtures/<source>/found.json`, `missing.json`
//! with `missing.status`; formats cited in `tests/fixtures/README.md`): each
//! is asked once for a known account and once for a missing one, through
//! the same HTTP client and detection the engine uses, on a local server.
mod common;

use enrichd::catalog::Catalog;
use enrichd::catalog::input::Input;
use enrichd::catalog::source::SourceKind;
use enrichd::config::Config;
use enrichd::fetch::HttpClient;
use enrichd::model::{Confidence, Field, InputKind, Outcome, Value};
use wiremock::{Mock, MockServer, ResponseTemplate};

/// What must be read from a recording: (field, value).
type Expected = &'static [(&'static str, &'static str)];

/// Source, its host, the account the recording is of, and what must be
/// read from it.
const CASES: &[(&str, &str, &str, Expected)] = &[
    (
        "gitlab",
        "https://gitlab.com",
        "ada-l",
        &[
            ("display_name", "Ada Lovelace"),
            ("url", "https://gitlab.com/ada-l"),
            ("username", "ada-l"),
        ],
    ),
    (
        "codeberg",
        "https://codeberg.org",
        "ada-l",
        &[
            ("display_name", "Ada Lovelace"),
            ("location", "London, UK"),
            ("bio", "Analytical engines and poetical science."),
            ("url", "https://codeberg.org/ada-l"),
            ("created_at", "2021-03-14T08:26:53+00:00"),
            ("followers", "42"),
        ],
    ),
    (
        "gitea",
        "https://gitea.com",
        "ada-l",
        &[
            ("display_name", "Ada Lovelace"),
            ("url", "https://gitea.com/ada-l"),
        ],
    ),
    (
        "dockerhub",
        "https://hub.docker.com",
        "adal",
        &[
            ("display_name", "Ada Lovelace"),
            ("location", "London, UK"),
            ("created_at", "2016-02-11T10:11:12.123456+00:00"),
            ("extra.company", "Analytical Engines Ltd"),
        ],
    ),
    (
        "codewars",
        "https://www.codewars.com",
        "ada-l",
        &[
            ("display_name", "Ada Lovelace"),
            ("extra.honor", "2937"),
            ("extra.rank", "3 kyu"),
        ],
    ),
    (
        "devto",
        "https://dev.to",
        "ada_l",
        &[
            ("display_name", "Ada Lovelace"),
            ("bio", "Notes on the Analytical Engine."),
            ("extra.github", "ada-l"),
        ],
    ),
    (
        "bluesky",
        "https://public.api.bsky.app",
        "adal",
        &[
            ("display_name", "Ada Lovelace"),
            ("username", "adal.bsky.social"),
            ("followers", "1843"),
            ("posts", "312"),
        ],
    ),
    (
        "lichess",
        "https://lichess.org",
        "AdaL",
        &[
            ("display_name", "Ada Lovelace"),
            ("location", "London"),
            ("url", "https://lichess.org/@/AdaL"),
            ("extra.games", "1044"),
        ],
    ),
    (
        "cratesio",
        "https://crates.io",
        "ada-l",
        &[
            ("display_name", "Ada Lovelace"),
            ("url", "https://github.com/ada-l"),
        ],
    ),
    (
        "wikipedia-en",
        "https://en.wikipedia.org",
        "AdaL",
        &[
            ("username", "AdaL"),
            ("created_at", "2006-12-10T09:15:00+00:00"),
            ("posts", "2937"),
        ],
    ),
    (
        "chesscom",
        "https://api.chess.com",
        "adal",
        &[
            ("display_name", "Ada Lovelace"),
            ("location", "London"),
            ("created_at", "2010-11-22T08:48:00+00:00"),
            ("followers", "120"),
        ],
    ),
];

/// The real catalog with `host` moved onto `origin`, reachable on loopback.
fn catalog_on(host: &str, origin: &str) -> Catalog {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/config/sources");
    let files: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "toml"))
        .map(|path| {
            let text = std::fs::read_to_string(&path)
                .unwrap()
                .replace(host, origin)
                .replace(
                    "[[source]]",
                    "[[source]]\nnetwork = { allow_private = true }",
                );
            (path, text)
        })
        .collect();
    Catalog::from_files(&files, &Config::default().purpose_ids(), &|_| None).unwrap()
}

fn read(profile: &enrichd::model::Profile, field: &str) -> Option<String> {
    let value = match field.strip_prefix("extra.") {
        Some(name) => &profile.extra.get(name)?.value,
        None => {
            let f: Field = serde_json::from_value(serde_json::json!(field)).unwrap();
            &profile.fields.get(&f)?.value
        }
    };
    Some(match value {
        Value::Time(t) => t.to_rfc3339(),
        other => other.as_text(),
    })
}

#[tokio::test]
async fn each_username_source_reads_its_recorded_answers() {
    for (id, host, account, expected) in CASES {
        let server = MockServer::start().await;
        let found = common::fixture(&format!("{id}/found.json"));
        let missing = common::fixture(&format!("{id}/missing.json"));
        let status: u16 = common::fixture(&format!("{id}/missing.status"))
            .trim()
            .parse()
            .unwrap();
        // The account's own URL (path or query) answers the recording;
        // anything else is a missing account.
        let known = account.to_string();
        Mock::given(move |r: &wiremock::Request| r.url.as_str().contains(&known))
            .respond_with(ResponseTemplate::new(200).set_body_raw(found, "application/json"))
            .mount(&server)
            .await;
        Mock::given(wiremock::matchers::any())
            .respond_with(ResponseTemplate::new(status).set_body_raw(missing, "application/json"))
            .mount(&server)
            .await;
        let catalog = catalog_on(host, &server.uri());
        let source = catalog
            .get(id)
            .unwrap_or_else(|| panic!("{id} is in the catalog"));
        let SourceKind::Http(h) = &source.kind else {
            panic!("{id} is an HTTP source")
        };
        let client = HttpClient::build(&Config::default().http, catalog.private_origins()).unwrap();
        let ask = |value: &str| Input {
            kind: InputKind::Username,
            value: value.to_owned(),
            confidence: Confidence::Exact,
            depth: 0,
        };
        let env = |_: &str| None;
        let asked = enrichd::engine::http::run(source, h, &ask(account), &client, &env).await;
        assert_eq!(
            asked.outcome.outcome,
            Outcome::Found,
            "{id}: {:?}",
            asked.outcome
        );
        let profile = asked.profile.unwrap_or_else(|| panic!("{id}: a profile"));
        for (field, want) in *expected {
            assert_eq!(
                read(&profile, field).as_deref(),
                Some(*want),
                "{id}: {field}"
            );
        }
        let asked = enrichd::engine::http::run(source, h, &ask("nobodyhere"), &client, &env).await;
        assert_eq!(
            asked.outcome.outcome,
            Outcome::NotFound,
            "{id}: {:?}",
            asked.outcome
        );
        assert!(
            !source.known_present.is_empty() && !source.known_absent.is_empty(),
            "{id}"
        );
    }
}
