//! Hostile and broken sites: each ends as the right outcome, never a false
//! found or a false not-found, and the call still answers.
use crate::common;

use std::io::Write;
use std::time::Duration;

use common::{email_request, enrich_with, outcome_of};
use enrichd::catalog::Catalog;
use enrichd::proto::v1 as pb;
use pb::source_outcome::Outcome;
use wiremock::matchers::path_regex;
use wiremock::{Mock, MockServer, ResponseTemplate};

/// One source per case, all keyed on the email's MD5, each on its own path.
fn catalog(origin: &str, reset_origin: &str) -> Catalog {
    let source = |id: &str, url: &str, format: &str, detect: &str, extra: &str| {
        format!(
            r#"
[[source]]
id = "{id}"
name = "{id}"
platform = "Test"
purposes = ["marketing"]
input = "email_md5"
{extra}
[source.request]
url = "{url}"
response_format = "{format}"
[source.detect]
{detect}
[source.limits]
timeout = "500ms"
"#
        )
    };
    let private = "network = { allow_private = true }";
    let mut text = String::new();
    for (id, fmt, detect) in [
        ("c404", "text", ""),
        ("soft404", "html", "absent = [\"This user does not exist\"]"),
        ("c403", "text", ""),
        ("c429", "text", ""),
        ("c429bare", "text", ""),
        ("c500", "text", ""),
        ("hang", "text", ""),
        ("badjson", "json", "json_pointer = \"/user\""),
        ("htmljson", "json", "json_pointer = \"/user\""),
        ("huge", "text", ""),
        ("bomb", "text", ""),
        ("waf", "html", ""),
        ("nopresence", "html", "present = [\"profile-card\"]"),
        // Read through a CSS selector: the page's tree is built, and bounded.
        (
            "deep",
            "html",
            "[source.extract]\nbio = { css = \"p.bio\" }",
        ),
        // Presence markers only: the page is never parsed as HTML, so its
        // nesting costs nothing and does not matter.
        ("deepmarked", "html", "present = [\"<div><div>\"]"),
        ("to-loopback", "text", ""),
        ("to-metadata", "text", ""),
        ("found", "json", "json_pointer = \"/user\""),
    ] {
        text.push_str(&source(
            id,
            &format!("{origin}/{id}/{{input}}"),
            fmt,
            detect,
            private,
        ));
    }
    // A source on a private address without permission (production's rule).
    text.push_str(&source(
        "unallowed",
        &format!("{origin}/found/{{input}}"),
        "json",
        "",
        "",
    ));
    text.push_str(&source(
        "reset",
        &format!("{reset_origin}/reset/{{input}}"),
        "text",
        "",
        private,
    ));
    let purposes = vec!["marketing".to_string()];
    Catalog::from_files(&[("hostile.toml".into(), text)], &purposes, &|_| None)
        .expect("test catalog")
}

/// Accepts connections and resets them (SO_LINGER 0) after the request arrives.
fn resetting_server() -> std::net::SocketAddr {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(stream) = stream else { return };
            let mut buf = [0u8; 1024];
            let _ = std::io::Read::read(&mut &stream, &mut buf);
            let socket = socket2::Socket::from(stream);
            let _ = socket.set_linger(Some(Duration::ZERO));
            drop(socket);
        }
    });
    addr
}

fn gzip_of_zeros(bytes: usize) -> Vec<u8> {
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    let chunk = vec![0u8; 1 << 20];
    for _ in 0..bytes / chunk.len() {
        enc.write_all(&chunk).unwrap();
    }
    enc.finish().unwrap()
}

#[tokio::test]
async fn every_hostile_site_ends_as_the_right_outcome() {
    let server = MockServer::start().await;
    let text = |code: u16, body: &str| ResponseTemplate::new(code).set_body_string(body.to_owned());
    let mocks = vec![
        Mock::given(path_regex("^/c404/")).respond_with(text(404, "no")),
        Mock::given(path_regex("^/soft404/"))
            .respond_with(text(200, "<html><h1>This user does not exist</h1></html>")),
        Mock::given(path_regex("^/c403/")).respond_with(text(403, "Forbidden")),
        Mock::given(path_regex("^/c429/"))
            .respond_with(text(429, "slow down").insert_header("Retry-After", "120")),
        Mock::given(path_regex("^/c429bare/")).respond_with(text(429, "slow down")),
        Mock::given(path_regex("^/c500/")).respond_with(text(500, "oops")),
        Mock::given(path_regex("^/hang/"))
            .respond_with(text(200, "late").set_delay(Duration::from_secs(30))),
        Mock::given(path_regex("^/badjson/")).respond_with(text(200, "{\"user\": ")),
        Mock::given(path_regex("^/htmljson/")).respond_with(text(200, "<!doctype html><p>hi</p>")),
        Mock::given(path_regex("^/huge/"))
            .respond_with(ResponseTemplate::new(200).set_body_bytes(vec![b'a'; 50 << 20])),
        Mock::given(path_regex("^/bomb/")).respond_with(
            ResponseTemplate::new(200)
                .insert_header("Content-Encoding", "gzip")
                .set_body_bytes(gzip_of_zeros(64 << 20)),
        ),
        Mock::given(path_regex("^/waf/")).respond_with(text(
            200,
            "<html><head><title>Just a moment...</title></head><body>cf_chl_opt</body></html>",
        )),
        Mock::given(path_regex("^/nopresence/")).respond_with(text(200, "<html>Welcome!</html>")),
        // 1 MiB of nested elements: minutes of html5ever's time, unbounded.
        Mock::given(path_regex("^/deep(marked)?/"))
            .respond_with(text(200, &"<div>".repeat(200_000))),
        Mock::given(path_regex("^/to-loopback/")).respond_with(
            ResponseTemplate::new(302).insert_header("Location", "http://127.0.0.1:9/admin"),
        ),
        Mock::given(path_regex("^/to-metadata/")).respond_with(
            ResponseTemplate::new(302)
                .insert_header("Location", "http://169.254.169.254/latest/meta-data/"),
        ),
        Mock::given(path_regex("^/found/"))
            .respond_with(text(200, "{\"user\": {\"name\": \"Ann\"}}")),
    ];
    for m in mocks {
        m.mount(&server).await;
    }
    let reset = resetting_server();
    let catalog = catalog(&server.uri(), &format!("http://{reset}"));

    let started = std::time::Instant::now();
    let resp = enrich_with(catalog, email_request("ann@example.test")).await;
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "the hang did not hold the call"
    );

    let detail = |id: &str| {
        resp.sources
            .iter()
            .find(|o| o.source_id == id)
            .map(|o| o.detail.clone())
            .unwrap_or_default()
    };
    let expect = [
        ("c404", Outcome::NotFound, "404"),
        ("soft404", Outcome::NotFound, "does not exist"),
        ("c403", Outcome::Error, "403"),
        ("c429", Outcome::RateLimited, "429"),
        ("c429bare", Outcome::RateLimited, "429"),
        ("c500", Outcome::Error, "500"),
        ("hang", Outcome::Timeout, "timeout"),
        ("badjson", Outcome::Error, "invalid JSON"),
        ("htmljson", Outcome::Error, "HTML where JSON"),
        ("huge", Outcome::Error, "limit"),
        ("bomb", Outcome::Error, "limit"),
        ("waf", Outcome::Error, "bot wall"),
        ("nopresence", Outcome::Error, "presence"),
        ("deep", Outcome::Error, "nests more than 512 elements"),
        ("deepmarked", Outcome::Found, ""),
        ("to-loopback", Outcome::Blocked, "blocked"),
        ("to-metadata", Outcome::Blocked, "blocked"),
        ("unallowed", Outcome::Blocked, "blocked"),
        ("reset", Outcome::Error, ""),
        ("found", Outcome::Found, ""),
    ];
    for (id, outcome, needle) in expect {
        assert_eq!(outcome_of(&resp, id), outcome, "{id}: {}", detail(id));
        assert!(
            detail(id).contains(needle),
            "{id}: {:?} should mention {needle:?}",
            detail(id)
        );
    }
    let c429 = resp.sources.iter().find(|o| o.source_id == "c429").unwrap();
    assert_eq!(c429.retry_after, Some(Duration::from_secs(120).into()));
    let bare = resp
        .sources
        .iter()
        .find(|o| o.source_id == "c429bare")
        .unwrap();
    // Without Retry-After: retried once, then the source cools down (1 s first).
    assert_eq!(bare.retry_after, Some(Duration::from_secs(1).into()));
    assert!(bare.detail.contains("after 1 retries"), "{}", bare.detail);
    let mut found: Vec<_> = resp.profiles.iter().map(|p| p.source_id.as_str()).collect();
    found.sort_unstable();
    assert_eq!(
        found,
        ["deepmarked", "found"],
        "only the honest sites are findings"
    );

    // Nothing ever reached the private targets of the redirects.
    let requests = server.received_requests().await.unwrap();
    assert!(requests.iter().all(|r| !r.url.path().starts_with("/admin")));
}

#[tokio::test]
async fn pivot_values_cannot_change_the_shape_of_the_request() {
    let server = MockServer::start().await;
    let evil = "../admin?x=1#frag/jürgen";
    Mock::given(path_regex("^/seed/"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_string(format!("{{\"user\": {{\"handle\": \"{evil}\"}}}}")),
        )
        .mount(&server)
        .await;
    Mock::given(path_regex("^/users/"))
        .respond_with(ResponseTemplate::new(404))
        .mount(&server)
        .await;
    let origin = server.uri();
    let text = format!(
        r#"
[[source]]
id = "seed"
name = "seed"
platform = "Test"
purposes = ["marketing"]
input = "email_md5"
network = {{ allow_private = true }}
[source.request]
url = "{origin}/seed/{{input}}"
response_format = "json"
[source.detect]
json_pointer = "/user"
[source.extract]
username = {{ json = "/user/handle" }}
[[source.pivots]]
from = "username"
as = "username"

[[source]]
id = "users"
name = "users"
platform = "Test"
purposes = ["marketing"]
input = "username"
network = {{ allow_private = true }}
[source.request]
url = "{origin}/users/{{input}}/profile?q={{input}}"
"#
    );
    let purposes = vec!["marketing".to_string()];
    let catalog = Catalog::from_files(&[("t.toml".into(), text)], &purposes, &|_| None).unwrap();
    let resp = enrich_with(catalog, email_request("ann@example.test")).await;
    assert_eq!(outcome_of(&resp, "users"), Outcome::NotFound);

    let requests = server.received_requests().await.unwrap();
    let pivot = requests
        .iter()
        .find(|r| {
            r.url.path().starts_with("/users/")
                && r.url.query().is_some_and(|q| q.contains("admin"))
        })
        .expect("the pivot request arrived");
    assert_eq!(
        pivot.url.path(),
        "/users/..%2Fadmin%3Fx%3D1%23frag%2Fj%C3%BCrgen/profile"
    );
    assert_eq!(
        pivot.url.query(),
        Some("q=..%2Fadmin%3Fx%3D1%23frag%2Fj%C3%BCrgen")
    );
    assert_eq!(pivot.url.fragment(), None);
}

/// A source whose URL comes from a profile (a personal homepage) reaches the
/// one private origin it names and nothing else, whatever spelling a hostile
/// profile uses; the refused links are `blocked`, not failures of the source,
/// so they do not open its breaker for the next caller.
#[tokio::test]
async fn links_from_a_profile_reach_only_the_named_private_origin_and_spare_the_breaker() {
    use wiremock::matchers::path;
    let server = MockServer::start().await;
    let origin = server.uri();
    let hostile = [
        "http://127.0.0.1:9/admin",
        "http://2130706433:9/",
        "http://0x7f.0.0.1:9/",
        "http://0177.0.0.1:9/",
        "http://[::1]:9/",
        "http://[::ffff:127.0.0.1]:9/",
        "http://[::127.0.0.1]:9/",
        "http://0.0.0.0:9/",
        "http://localhost:9/",
        "http://169.254.169.254/latest/meta-data/",
    ];
    let links = |urls: &[String]| {
        let items: Vec<_> = urls
            .iter()
            .map(|u| serde_json::json!({ "site": "Web", "url": u }))
            .collect();
        ResponseTemplate::new(200).set_body_json(serde_json::json!({ "user": { "links": items } }))
    };
    // Links at the allowed origin that redirect to a private address: they
    // are sent (and take a rate-limit slot), then blocked at the redirect.
    let hops = 6;
    for n in 0..hops {
        Mock::given(path(format!("/hop/{n}")))
            .respond_with(
                ResponseTemplate::new(302).insert_header("Location", "http://127.0.0.1:9/admin"),
            )
            .mount(&server)
            .await;
    }
    let mut hostile_links: Vec<String> = hostile.iter().map(|s| s.to_string()).collect();
    hostile_links.extend((0..hops).map(|n| format!("{origin}/hop/{n}")));
    let honest_link = vec![format!("{origin}/home/ann")];
    // The email's MD5 picks the seed's answer.
    let md5 = |email: &str| {
        use md5::Digest;
        hex::encode(md5::Md5::digest(email.as_bytes()))
    };
    Mock::given(path(format!("/seed/{}", md5("evil@example.test"))))
        .respond_with(links(&hostile_links))
        .mount(&server)
        .await;
    Mock::given(path(format!("/seed/{}", md5("ann@example.test"))))
        .respond_with(links(&honest_link))
        .mount(&server)
        .await;
    Mock::given(path("/home/ann"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_string("<div class=\"h-card\"><p class=\"p-name\">Ann</p></div>"),
        )
        .mount(&server)
        .await;
    let seed = link_seed("seed", "email_md5", &format!("{origin}/seed/{{input}}"));
    let text = format!(
        r#"{seed}
[[source]]
id = "home"
name = "home"
platform = "Homepage"
purposes = ["marketing"]
input = "url"
network = {{ private_origins = ["{origin}"] }}
limits = {{ rate_limit = {{ per_second = 1, burst = {hops} }} }}
[source.request]
url = "{{input}}"
response_format = "html"
[source.detect]
present = ["h-card"]
[source.extract]
display_name = {{ css = ".p-name" }}
"#
    );
    let purposes = vec!["marketing".to_string()];
    let catalog = Catalog::from_files(&[("t.toml".into(), text)], &purposes, &|_| None).unwrap();
    let dns = common::dns::start().await;
    let app = common::TestApp::with_catalog(
        // The homepage source has slots for the redirecting links only:
        // within a 2 s deadline, the links refused at once must take none.
        &format!(
            "[dns]\nnameservers = [\"{}\"]\n[sources]\ndeadline = \"2s\"\n",
            dns.addr
        ),
        catalog,
    )
    .await;
    let mut client = app.client().await;
    let evil = client
        .enrich(email_request("evil@example.test"))
        .await
        .unwrap()
        .into_inner();
    let home: Vec<_> = evil
        .sources
        .iter()
        .filter(|o| o.source_id == "home")
        .collect();
    // Decimal, hex and octal spellings of 127.0.0.1 are one URL once parsed.
    let distinct: std::collections::HashSet<String> = hostile
        .iter()
        .map(|u| url::Url::parse(u).unwrap().to_string())
        .collect();
    assert_eq!(home.len(), distinct.len() + hops, "every link was tried");
    for o in &home {
        assert_eq!(o.outcome(), Outcome::Blocked, "{}", o.detail);
        assert!(o.detail.contains("blocked"), "{}", o.detail);
    }
    // The next caller's honest link is fetched: the breaker saw no failure
    // (5 consecutive failures would have opened it).
    let ann = client
        .enrich(email_request("ann@example.test"))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(outcome_of(&ann, "home"), Outcome::Found);
    let requests = server.received_requests().await.unwrap();
    assert!(requests.iter().all(|r| r.url.path() != "/admin"));
}

/// A profile listing a thousand links makes at most
/// `sources.max_pivots_per_profile` (20) requests from them, and a call at
/// most `sources.max_pivots_per_call` (100) over every profile.
#[tokio::test]
async fn a_profile_s_links_are_capped_per_profile_and_per_call() {
    let server = MockServer::start().await;
    let origin = server.uri();
    let ids = ["a", "b", "c", "d", "e", "f"];
    for id in ids {
        let links: Vec<_> = (0..1_000)
            .map(|i| serde_json::json!({ "site": "Web", "url": format!("{origin}/home/{id}{i}") }))
            .collect();
        Mock::given(path_regex(format!("^/seed/{id}/")))
            .respond_with(
                ResponseTemplate::new(200)
                    .set_body_json(serde_json::json!({ "user": { "links": links } })),
            )
            .mount(&server)
            .await;
    }
    Mock::given(path_regex("^/home/"))
        .respond_with(ResponseTemplate::new(404))
        .mount(&server)
        .await;
    let seed = |id: &str| link_seed(id, "email", &format!("{origin}/seed/{id}/{{input}}"));
    let home = format!(
        r#"
[[source]]
id = "home"
name = "home"
platform = "Homepage"
purposes = ["marketing"]
input = "url"
network = {{ private_origins = ["{origin}"] }}
limits = {{ rate_limit = {{ per_second = 1000, burst = 1000 }}, max_concurrency = 64 }}
[source.request]
url = "{{input}}"
response_format = "html"
[source.detect]
present = ["h-card"]
"#
    );
    let purposes = vec!["marketing".to_string()];
    let asked_home = |requests: &[wiremock::Request]| {
        requests
            .iter()
            .filter(|r| r.url.path().starts_with("/home/"))
            .count()
    };
    // One profile: its first twenty links only.
    let text = format!("{}{home}", seed("a"));
    let catalog = Catalog::from_files(&[("t.toml".into(), text)], &purposes, &|_| None).unwrap();
    let answer = enrich_with(catalog, email_request("ann@example.test")).await;
    let home_outcomes = answer
        .sources
        .iter()
        .filter(|o| o.source_id == "home")
        .count();
    let requests = server.received_requests().await.unwrap();
    assert_eq!(asked_home(&requests), 20, "links fetched from one profile");
    assert_eq!(home_outcomes, 20);
    // And the profile keeps the first hundred of its thousand links.
    let linked: Vec<usize> = answer
        .profiles
        .iter()
        .map(|p| p.linked_accounts.len())
        .collect();
    assert_eq!(linked, [100], "links kept in the profile");
    // Six profiles, twenty links each: a hundred in the call.
    let text: String = ids.iter().map(|id| seed(id)).chain([home]).collect();
    let catalog = Catalog::from_files(&[("t.toml".into(), text)], &purposes, &|_| None).unwrap();
    let before = asked_home(&server.received_requests().await.unwrap());
    enrich_with(catalog, email_request("bob@example.test")).await;
    let after = asked_home(&server.received_requests().await.unwrap());
    assert_eq!(after - before, 100, "links fetched in one call");
}

/// A source whose profile (JSON at `url`) lists links under `/user/links`,
/// each pivoting to the `url` input.
fn link_seed(id: &str, input: &str, url: &str) -> String {
    format!(
        r#"
[[source]]
id = "{id}"
name = "{id}"
platform = "Test"
purposes = ["marketing"]
input = "{input}"
network = {{ allow_private = true }}
[source.request]
url = "{url}"
response_format = "json"
[source.detect]
json_pointer = "/user"
[source.extract.accounts]
each = {{ json = "/user/links" }}
platform = {{ json = "/site" }}
url = {{ json = "/url" }}
[[source.pivots]]
from = "accounts.url"
as = "url"
"#
    )
}
