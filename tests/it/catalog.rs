//! Catalogs as data: validation reports every problem at once, a new file is
//! used without a rebuild, ListSources shows the catalog.
use crate::common;

use std::process::Command;

use enrichd::catalog::Catalog;
use enrichd::proto::v1 as pb;

#[test]
fn every_problem_in_a_catalog_is_reported_at_once() {
    let a = r#"
[[source]]
id = "bad"
name = "Bad"
platform = "X"
purposes = ["marketing", "astrology"]
input = "email"
colour = "red"
[source.request]
url = "https://x.test/{user}"
response_format = "json"
[source.detect]
json_pointer = "user"
presnt = ["x"]
[source.extract]
bio = { css = "div[[" }
username = { regex = "(" }
"#;
    let b = r#"
[[source]]
id = "bad"
name = "Bad again"
platform = "X"
purposes = ["marketing"]
input = "email"
[source.request]
url = "https://{input}.x.test/"

[[source]]
id = "wrong-input"
name = "W"
platform = "X"
purposes = ["marketing"]
input = "fax_number"
"#;
    let purposes = vec!["marketing".to_string()];
    let err = Catalog::from_files(
        &[
            ("a.toml".into(), a.to_string()),
            ("b.toml".into(), b.to_string()),
        ],
        &purposes,
        &|_| None,
    )
    .expect_err("invalid");
    let text = err.to_string();
    for needle in [
        "a.toml: source[0] \"bad\": colour: unknown key",
        "a.toml: source[0] \"bad\": detect.presnt: unknown key",
        "\"astrology\" is not a declared purpose",
        "request.url: unknown placeholder {user}",
        "detect.json_pointer: \"user\" is not a JSON pointer",
        "extract.bio.css: \"div[[\" is not a valid CSS selector",
        "extract.username.regex",
        "b.toml: source \"bad\": duplicate id (also declared in a.toml)",
        "a literal host",
        "b.toml: source[1] \"wrong-input\": unknown variant `fax_number`",
    ] {
        assert!(text.contains(needle), "missing {needle:?} in:\n{text}");
    }
}

#[test]
fn private_reach_needs_a_fixed_host_or_named_origins() {
    let source = |url: &str, network: &str| {
        format!(
            "[[source]]\nid = \"s\"\nname = \"S\"\nplatform = \"S\"\npurposes = [\"marketing\"]\n\
             input = \"url\"\nnetwork = {{ {network} }}\n[source.request]\nurl = \"{url}\"\n"
        )
    };
    let compile = |text: String| {
        Catalog::from_files(
            &[("p.toml".into(), text)],
            &["marketing".to_string()],
            &|_| None,
        )
    };
    // A URL that is the input: its "own origin" would be the attacker's.
    let err = compile(source("{input}", "allow_private = true")).expect_err("refused");
    assert!(
        err.to_string()
            .contains("network.allow_private: needs a request.url with a fixed host"),
        "{err}"
    );
    for bad in [
        "http://h.test/path",
        "ftp://h.test",
        "http://u:p@h.test",
        "h.test",
    ] {
        let err =
            compile(source("{input}", &format!("private_origins = [\"{bad}\"]"))).expect_err(bad);
        assert!(
            err.to_string().contains(&format!(
                "network.private_origins: \"{bad}\" is not an origin"
            )),
            "{err}"
        );
    }
    let named = compile(source(
        "{input}",
        "private_origins = [\"http://10.0.0.5:8080\", \"https://intranet.test\"]",
    ))
    .unwrap();
    let origins: Vec<String> = named.sources()[0]
        .network
        .private_origins
        .iter()
        .map(|o| o.ascii_serialization())
        .collect();
    assert_eq!(origins, ["http://10.0.0.5:8080", "https://intranet.test"]);
    let fixed = compile(source(
        "http://10.0.0.5:8080/u?q={input}",
        "allow_private = true",
    ))
    .unwrap();
    assert_eq!(
        fixed.sources()[0].network.private_origins[0].ascii_serialization(),
        "http://10.0.0.5:8080"
    );
}

#[test]
fn header_values_with_control_characters_are_refused_secrets_unprinted() {
    let text = "
[[source]]
id = \"crlf\"
name = \"CR LF\"
platform = \"X\"
purposes = [\"marketing\"]
input = \"email\"
[source.request]
url = \"https://api.x.test/lookup?email={input}\"
headers = { X-Client = \"enrichd\\r\\nX-Injected: 1\", Authorization = \"Bearer {env.PAID_API_KEY}\" }
";
    let purposes = vec!["marketing".to_string()];
    let err = Catalog::from_files(&[("h.toml".into(), text.into())], &purposes, &|_| {
        Some("s3cret\r\nX-Evil: 1".into())
    })
    .expect_err("invalid");
    let text = err.to_string();
    for needle in [
        "h.toml: source \"crlf\": request.headers.X-Client: the value holds a character a header value cannot",
        "request.headers.Authorization: the environment variable PAID_API_KEY holds a character",
    ] {
        assert!(text.contains(needle), "missing {needle:?} in:\n{text}");
    }
    assert!(!text.contains("s3cret"), "the secret is printed:\n{text}");
    assert_eq!(err.problems.len(), 2, "{text}");
}

#[test]
fn an_empty_catalog_is_an_error() {
    let purposes = vec!["marketing".to_string()];
    let dir = tempfile::tempdir().expect("tempdir");
    let err = Catalog::load_dir(dir.path(), &purposes).expect_err("no files");
    assert!(err.to_string().contains("holds no *.toml file"), "{err}");
    std::fs::write(dir.path().join("none.toml"), "# nothing yet\n").expect("write");
    let err = Catalog::load_dir(dir.path(), &purposes).expect_err("no sources");
    assert!(
        err.to_string().contains("the catalog declares no source"),
        "{err}"
    );
    // Through the command line: exit 1, the directory named.
    let empty = tempfile::tempdir().expect("tempdir");
    let out = Command::new(env!("CARGO_BIN_EXE_enrichd"))
        .args(["sources", "check"])
        .env("ENRICHD__SOURCES__CATALOG", empty.path())
        .output()
        .expect("runs");
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(&format!("{}: holds no *.toml file", empty.path().display())),
        "{stderr}"
    );
}

#[test]
fn a_source_with_a_missing_secret_is_disabled_not_dropped() {
    let text = r#"
[[source]]
id = "paid"
name = "Paid API"
platform = "X"
purposes = ["marketing"]
input = "email"
[source.request]
url = "https://api.x.test/lookup?email={input}"
headers = { Authorization = "Bearer {env.PAID_API_KEY}" }
"#;
    let purposes = vec!["marketing".to_string()];
    let catalog =
        Catalog::from_files(&[("p.toml".into(), text.into())], &purposes, &|_| None).unwrap();
    let source = catalog.get("paid").unwrap();
    assert_eq!(
        source.disabled.as_deref(),
        Some("secret not set: set PAID_API_KEY to enable")
    );
    let with_key = Catalog::from_files(&[("p.toml".into(), text.into())], &purposes, &|_| {
        Some("k".into())
    })
    .unwrap();
    assert!(with_key.get("paid").unwrap().enabled());
}

#[test]
fn the_shipped_catalogs_are_valid() {
    let purposes = enrichd::config::Config::default().purpose_ids();
    let shipped = Catalog::shipped(&purposes).expect("config/sources is valid");
    for id in [
        "gravatar",
        "github-email",
        "github",
        "libravatar",
        "keybase",
        "hackernews",
        "reddit",
        "mastodon-social",
        "email-domain-mx",
    ] {
        assert!(shipped.get(id).is_some(), "{id}");
    }
}

#[tokio::test]
async fn a_new_catalog_file_is_used_without_a_rebuild() {
    use wiremock::matchers::path;
    use wiremock::{Mock, MockServer, ResponseTemplate};
    let server = MockServer::start().await;
    Mock::given(path("/people/jane"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_string("<html><div class='name'>Jane from the new site</div></html>"),
        )
        .expect(1)
        .mount(&server)
        .await;
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("newsite.toml"),
        format!(
            r#"
[[source]]
id = "newsite"
name = "A site added by an operator"
platform = "NewSite"
purposes = ["marketing"]
input = "email_local"
network = {{ allow_private = true }}
[source.request]
url = "{}/people/{{input}}"
response_format = "html"
[source.extract]
display_name = {{ css = ".name" }}
"#,
            server.uri()
        ),
    )
    .unwrap();
    let catalog_dir = dir.path().to_str().unwrap().to_owned();
    let out = tokio::task::spawn_blocking(move || {
        Command::new(env!("CARGO_BIN_EXE_enrichd"))
            .args([
                "enrich",
                "--email",
                "jane@example.com",
                "--purpose",
                "marketing",
                "--basis",
                "consent",
                "--consent-ref",
                "C-1",
            ])
            .env("ENRICHD__DNS__ENABLED", "false")
            .env("ENRICHD__LEDGER__URL", "sqlite::memory:")
            .env(
                "ENRICHD__PRIVACY__HASH_KEY",
                "a-test-key-of-at-least-thirty-two-characters",
            )
            .env("ENRICHD__SOURCES__CATALOG", catalog_dir)
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["profiles"][0]["sourceId"], "newsite");
    assert_eq!(
        v["profiles"][0]["displayName"]["value"],
        "Jane from the new site"
    );
}

#[tokio::test]
async fn list_sources_returns_the_catalog_and_filters_by_purpose() {
    let (app, _sandbox) = common::sandbox_app().await;
    let mut client = app.client().await;
    let all = client
        .list_sources(pb::ListSourcesRequest::default())
        .await
        .unwrap()
        .into_inner();
    assert_eq!(all.sources.len(), 17);
    let chat = all.sources.iter().find(|s| s.id == "sb-chat").unwrap();
    assert_eq!(chat.input, "phone_e164");
    assert!(chat.enabled);
    let fraud = client
        .list_sources(pb::ListSourcesRequest {
            purpose: "fraud_prevention".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert!(fraud.sources.len() < all.sources.len());
    assert!(
        fraud
            .sources
            .iter()
            .all(|s| s.purposes.contains(&"fraud_prevention".to_string()))
    );
    let status = client
        .list_sources(pb::ListSourcesRequest {
            purpose: "astrology".into(),
        })
        .await
        .expect_err("unknown purpose");
    assert_eq!(status.code(), tonic::Code::InvalidArgument);
}

/// `sources check --live` asks each source with its known accounts and
/// names the detections that no longer tell them apart: here a site whose
/// answer changed shape (the profile moved from `/user` to `/data`), next
/// to one that still reads right.
#[tokio::test]
async fn a_live_check_names_a_detection_that_broke() {
    use wiremock::matchers::path;
    use wiremock::{Mock, MockServer, ResponseTemplate};
    let site = MockServer::start().await;
    for (p, body) in [
        ("/good/alice", r#"{"user": {"name": "Alice"}}"#),
        ("/broken/alice", r#"{"data": {"name": "Alice"}}"#),
    ] {
        Mock::given(path(p))
            .respond_with(ResponseTemplate::new(200).set_body_string(body))
            .mount(&site)
            .await;
    }
    Mock::given(wiremock::matchers::any())
        .respond_with(ResponseTemplate::new(404).set_body_string("{}"))
        .mount(&site)
        .await;
    let dir = tempfile::tempdir().unwrap();
    let known = "known_present = [\"alice\"]\nknown_absent = [\"no-such-user-7f3a\"]";
    let catalog = [
        common::test_source(
            "good",
            "username",
            &format!("{}/good/{{input}}", site.uri()),
            known,
        ),
        common::test_source(
            "broken",
            "username",
            &format!("{}/broken/{{input}}", site.uri()),
            known,
        ),
    ]
    .join("\n");
    std::fs::write(dir.path().join("sites.toml"), catalog).unwrap();
    let out = tokio::task::spawn_blocking({
        let dir = dir.path().to_owned();
        move || {
            Command::new(env!("CARGO_BIN_EXE_enrichd"))
                .args(["sources", "check", "--live", "--catalog"])
                .arg(dir)
                .env_remove("RUST_LOG")
                .output()
                .expect("runs")
        }
    })
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(
        stdout.contains("BROKEN broken                 \"alice\" is known present but the source answered not_found"),
        "{stdout}"
    );
    assert!(!stdout.contains("BROKEN good"), "{stdout}");
    assert!(
        stdout.contains("live: 4 known accounts asked of 2 sources, 1 detections broken"),
        "{stdout}"
    );
}
