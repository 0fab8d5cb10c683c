//! The real catalog's username sources against recorded answers in each
//! site's real format (`tests/fixtures/<source>/found.json`, `missing.json`
//! with `missing.status`; formats cited in `tests/fixtures/README.md`): each
//! is asked once for a known account and once for a missing one, through
//! the same HTTP client and detection the engine uses, on a local server.
use crate::common;

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
    (
        "lobsters",
        "https://lobste.rs",
        "ada-l",
        &[
            ("username", "ada-l"),
            ("bio", "Poetical science, engines and notes."),
            ("created_at", "2019-05-02T15:41:12+00:00"),
            ("extra.karma", "512"),
            ("extra.github", "ada-l"),
        ],
    ),
    (
        "codeforces",
        "https://codeforces.com",
        "ada-l",
        &[
            ("username", "ada-l"),
            ("location", "United Kingdom"),
            ("created_at", "2015-01-01T00:00:00+00:00"),
            ("followers", "211"),
            ("extra.rank", "expert"),
            ("extra.rating", "1893"),
        ],
    ),
    (
        "minecraft",
        "https://api.mojang.com",
        "AdaL",
        &[
            ("username", "AdaL"),
            ("extra.uuid", "4b3a1f0e8c2d4e6fa1b2c3d4e5f60718"),
        ],
    ),
    (
        "speedrun",
        "https://www.speedrun.com",
        "ada-l",
        &[
            ("username", "ada-l"),
            ("url", "https://www.speedrun.com/user/ada-l"),
            ("created_at", "2016-03-09T18:22:31+00:00"),
            ("location", "United Kingdom"),
            ("extra.twitch", "https://www.twitch.tv/adal"),
        ],
    ),
    (
        "discogs",
        "https://api.discogs.com",
        "ada-l",
        &[
            ("display_name", "Ada Lovelace"),
            ("location", "London, UK"),
            ("url", "https://www.discogs.com/user/ada-l"),
            ("created_at", "2014-06-01T11:12:45+00:00"),
            ("extra.collection", "418"),
        ],
    ),
    (
        "mixcloud",
        "https://api.mixcloud.com",
        "ada-l",
        &[
            ("display_name", "Ada Lovelace"),
            ("url", "https://www.mixcloud.com/ada-l/"),
            ("location", "London"),
            ("created_at", "2013-04-18T20:11:03+00:00"),
            ("followers", "88"),
            ("posts", "34"),
        ],
    ),
    (
        "duolingo",
        "https://www.duolingo.com",
        "AdaL",
        &[
            ("display_name", "Ada Lovelace"),
            ("bio", "Learning French for the engines."),
            ("created_at", "2017-01-01T00:00:00+00:00"),
            ("extra.streak", "412"),
            ("extra.learning", "French"),
        ],
    ),
    (
        "monkeytype",
        "https://api.monkeytype.com",
        "ada-l",
        &[
            ("username", "ada-l"),
            ("bio", "Typing notes on the engine."),
            ("created_at", "2021-01-01T00:00:00+00:00"),
            ("extra.keyboard", "Model M"),
            ("extra.github", "ada-l"),
        ],
    ),
    (
        "rubygems",
        "https://rubygems.org",
        "ada-l",
        &[("username", "ada-l")],
    ),
    (
        "substack",
        "https://substack.com",
        "adal",
        &[
            ("display_name", "Ada Lovelace"),
            ("username", "adal"),
            ("bio", "Notes on engines and poetical science."),
            ("created_at", "2021-02-03T10:00:00+00:00"),
            ("extra.publication", "Engine Notes"),
        ],
    ),
    (
        "wattpad",
        "https://www.wattpad.com",
        "AdaL",
        &[
            ("display_name", "Ada Lovelace"),
            ("location", "London"),
            ("created_at", "2015-07-21T14:02:33+00:00"),
            ("followers", "311"),
            ("posts", "7"),
        ],
    ),
    (
        "wordpress-com",
        "https://public-api.wordpress.com",
        "adal",
        &[
            ("display_name", "Engine Notes"),
            ("url", "https://adal.wordpress.com/"),
            ("created_at", "2020-01-12T09:30:00+00:00"),
        ],
    ),
    (
        "dailymotion",
        "https://api.dailymotion.com",
        "adal",
        &[
            ("display_name", "Ada Lovelace"),
            ("url", "https://www.dailymotion.com/adal"),
            ("location", "GB"),
            ("created_at", "2014-01-01T00:00:00+00:00"),
            ("posts", "12"),
        ],
    ),
    (
        "artstation",
        "https://www.artstation.com",
        "ada-l",
        &[
            ("display_name", "Ada Lovelace"),
            ("bio", "Concept art for analytical engines"),
            ("location", "London, United Kingdom"),
            ("url", "https://www.artstation.com/ada-l"),
            ("followers", "640"),
        ],
    ),
    (
        "launchpad",
        "https://api.launchpad.net",
        "ada-l",
        &[
            ("display_name", "Ada Lovelace"),
            ("url", "https://launchpad.net/~ada-l"),
            ("created_at", "2008-09-10T11:12:13.141516+00:00"),
            ("extra.karma", "1520"),
        ],
    ),
    (
        "myanimelist",
        "https://api.jikan.moe",
        "AdaL",
        &[
            ("username", "AdaL"),
            ("url", "https://myanimelist.net/profile/AdaL"),
            ("location", "London"),
            ("created_at", "2019-08-14T00:00:00+00:00"),
        ],
    ),
    (
        "gitee",
        "https://gitee.com",
        "ada-l",
        &[
            ("display_name", "Ada Lovelace"),
            ("url", "https://gitee.com/ada-l"),
            ("created_at", "2020-09-01T02:20:30+00:00"),
            ("followers", "31"),
            ("extra.company", "Analytical Engines Ltd"),
        ],
    ),
    (
        "hashnode",
        "https://gql.hashnode.com",
        "adal",
        &[
            ("display_name", "Ada Lovelace"),
            ("bio", "Writing about engines and notes."),
            ("location", "London"),
            ("created_at", "2020-07-17T12:00:00+00:00"),
            ("followers", "143"),
            ("extra.github", "https://github.com/ada-l"),
        ],
    ),
    (
        "leetcode",
        "https://leetcode.com",
        "ada-l",
        &[
            ("display_name", "Ada Lovelace"),
            ("bio", "Bernoulli numbers, one loop at a time."),
            ("location", "United Kingdom"),
            ("extra.ranking", "20931"),
        ],
    ),
    (
        "anilist",
        "https://graphql.anilist.co",
        "AdaL",
        &[
            ("username", "AdaL"),
            ("bio", "Mecha and music."),
            ("url", "https://anilist.co/user/AdaL"),
            ("created_at", "2020-01-01T00:00:00+00:00"),
        ],
    ),
    (
        "wikipedia-de",
        "https://de.wikipedia.org",
        "AdaL",
        &[
            ("username", "AdaL"),
            ("created_at", "2012-03-04T05:06:07+00:00"),
            ("posts", "318"),
        ],
    ),
    (
        "wikipedia-fr",
        "https://fr.wikipedia.org",
        "AdaL",
        &[
            ("username", "AdaL"),
            ("created_at", "2012-03-04T05:06:07+00:00"),
            ("posts", "318"),
        ],
    ),
    (
        "wikimedia-commons",
        "https://commons.wikimedia.org",
        "AdaL",
        &[
            ("username", "AdaL"),
            ("created_at", "2012-03-04T05:06:07+00:00"),
            ("posts", "318"),
        ],
    ),
    (
        "wikidata",
        "https://www.wikidata.org",
        "AdaL",
        &[
            ("username", "AdaL"),
            ("created_at", "2012-03-04T05:06:07+00:00"),
            ("posts", "318"),
        ],
    ),
    (
        "trello",
        "https://trello.com",
        "adal",
        &[
            ("display_name", "Ada Lovelace"),
            ("bio", "Planning engines."),
            ("url", "https://trello.com/u/adal"),
        ],
    ),
    (
        "sourceforge",
        "https://sourceforge.net",
        "ada-l",
        &[
            ("display_name", "Ada Lovelace"),
            ("location", "United Kingdom"),
            ("created_at", "2009-11-30T17:45:00+00:00"),
            ("extra.project", "Engine Notes"),
        ],
    ),
    (
        "npm",
        "https://registry.npmjs.org",
        "ada-l",
        &[("extra.package", "engine-notes"), ("extra.packages", "3")],
    ),
    ("tryhackme", "https://tryhackme.com", "adal", &[]),
    (
        "instructables",
        "https://www.instructables.com",
        "AdaL",
        &[],
    ),
    (
        "bitbucket",
        "https://bitbucket.org",
        "ada-l",
        &[("extra.repository", "ada-l/engine-notes")],
    ),
    ("pypi", "https://pypi.org", "ada-l", &[]),
    ("soundcloud", "https://soundcloud.com", "ada-l", &[]),
    ("lastfm", "https://www.last.fm", "AdaL", &[]),
    ("codepen", "https://codepen.io", "ada-l", &[]),
    ("itchio", "https://itch.io", "ada-l", &[]),
    ("aboutme", "https://about.me", "adal", &[]),
    ("linktree", "https://linktr.ee", "adal", &[]),
    (
        "fosstodon",
        "https://fosstodon.org",
        "adal",
        &[("url", "https://fosstodon.org/@adal"), ("username", "adal")],
    ),
    (
        "hachyderm",
        "https://hachyderm.io",
        "adal",
        &[("url", "https://hachyderm.io/@adal"), ("username", "adal")],
    ),
    (
        "infosec-exchange",
        "https://infosec.exchange",
        "adal",
        &[
            ("url", "https://infosec.exchange/@adal"),
            ("username", "adal"),
        ],
    ),
    (
        "mstdn-social",
        "https://mstdn.social",
        "adal",
        &[("url", "https://mstdn.social/@adal"), ("username", "adal")],
    ),
];

/// The real catalog with `host` moved onto `origin`, reachable on loopback.
/// Only the file that declares `id` is read: compiling the whole catalog
/// for each of its sources made this test take most of a minute.
fn catalog_on(id: &str, host: &str, origin: &str) -> Catalog {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/config/sources");
    let declares = format!("\nid = \"{id}\"\n");
    let files: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "toml"))
        .map(|path| (std::fs::read_to_string(&path).unwrap(), path))
        .filter(|(text, _)| text.contains(&declares))
        .map(|(text, path)| {
            let text = text.replace(host, origin).replace(
                "[[source]]",
                "[[source]]\nnetwork = { allow_private = true }",
            );
            (path, text)
        })
        .collect();
    Catalog::from_files(&files, &Config::default().purpose_ids(), &|_| None).unwrap()
}

fn recorded(path: &str) -> bool {
    std::path::Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures"))
        .join(path)
        .exists()
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
        // A page's recordings are HTML, an API's JSON.
        let (found, missing, kind) = if recorded(&format!("{id}/found.html")) {
            let page = |name: &str| common::fixture(&format!("{id}/{name}.html"));
            (page("found"), page("missing"), "text/html")
        } else {
            let api = |name: &str| common::fixture(&format!("{id}/{name}.json"));
            (api("found"), api("missing"), "application/json")
        };
        let status: u16 = common::fixture(&format!("{id}/missing.status"))
            .trim()
            .parse()
            .unwrap();
        // The account's own URL (path or query), or a query that names it
        // (GraphQL sources POST it in the body), answers the recording;
        // anything else is a missing account.
        let known = account.to_string();
        Mock::given(move |r: &wiremock::Request| {
            r.url.as_str().contains(&known) || String::from_utf8_lossy(&r.body).contains(&known)
        })
        .respond_with(ResponseTemplate::new(200).set_body_raw(found, kind))
        .mount(&server)
        .await;
        Mock::given(wiremock::matchers::any())
            .respond_with(ResponseTemplate::new(status).set_body_raw(missing, kind))
            .mount(&server)
            .await;
        let catalog = catalog_on(id, host, &server.uri());
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
            via: None,
        };
        let env = |_: &str| None;
        let asked = enrichd::engine::http::run(
            source,
            h,
            &ask(account),
            &client,
            &env,
            &Default::default(),
        )
        .await;
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
        let asked = enrichd::engine::http::run(
            source,
            h,
            &ask("nobodyhere"),
            &client,
            &env,
            &Default::default(),
        )
        .await;
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
