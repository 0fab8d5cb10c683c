//! The WhatsMyName pack: what it turns on, what it never asks, and its
//! detection rules replayed by a local server that answers every site as
//! WhatsMyName's own data says the site answers (`e_code`/`e_string` for an
//! account, `m_code`/`m_string` for none).
use crate::common;

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};

use common::TestApp;
use enrichd::catalog::{Catalog, PACKS};
use enrichd::config::Config;
use enrichd::proto::v1 as pb;
use pb::source_outcome::Outcome;
use serde_json::Value;

const WMN: &str = include_str!("../../data/whatsmyname/wmn-data.json");
const KNOWN: &str = "zzreplayuser";
const NOBODY: &str = "zznobodyhere";

fn pack() -> &'static str {
    PACKS
        .iter()
        .find(|(name, _)| *name == "whatsmyname")
        .expect("the pack is shipped")
        .1
}

fn sites() -> Vec<Value> {
    let doc: Value = serde_json::from_str(WMN).unwrap();
    doc["sites"].as_array().unwrap().clone()
}

/// Every entry of WhatsMyName's list is in the pack, as a source (used, or
/// disabled with its reason) or among the entries not imported, named with
/// the reason at the end of the pack.
#[test]
fn every_entry_of_the_list_is_a_source_or_named_with_its_reason() {
    let names: Vec<String> = sites()
        .iter()
        .map(|s| s["name"].as_str().unwrap().to_owned())
        .collect();
    let doc: toml::Table = toml::from_str(pack()).unwrap();
    let mut accounted: Vec<String> = doc["source"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].as_str().unwrap().to_owned())
        .collect();
    let trailer = pack()
        .split_once("\n# Not imported: ")
        .expect("the pack names what it did not import")
        .1;
    for line in trailer.lines().filter_map(|l| l.strip_prefix("#   ")) {
        let (name, why) = line.split_once(": ").expect("name: reason");
        assert!(!why.trim().is_empty(), "{name} without a reason");
        accounted.push(name.to_owned());
    }
    accounted.sort();
    let mut listed = names.clone();
    listed.sort();
    assert_eq!(
        accounted,
        listed,
        "each of the {} entries once",
        names.len()
    );
}

#[test]
fn the_pack_marks_art9_sites_and_shielded_sites_and_is_off_by_default() {
    let purposes = Config::default().purpose_ids();
    assert!(
        Catalog::configured(None, &[], &purposes)
            .unwrap()
            .sources()
            .iter()
            .all(|s| !s.id.starts_with("wmn-")),
        "off by default"
    );
    let catalog = Catalog::configured(None, &["whatsmyname".into()], &purposes).unwrap();
    let pack: Vec<_> = catalog
        .sources()
        .iter()
        .filter(|s| s.id.starts_with("wmn-"))
        .collect();
    assert!(pack.len() > 650, "{} sources", pack.len());
    let by_name: HashMap<&str, _> = pack.iter().map(|s| (s.name.as_str(), s)).collect();
    let mut special = 0;
    for site in sites() {
        let Some(source) = by_name.get(site["name"].as_str().unwrap()) else {
            continue;
        };
        let cat = site["cat"].as_str().unwrap();
        if matches!(cat, "political" | "health" | "dating" | "xx NSFW xx") {
            special += 1;
            assert!(source.special_category.is_some(), "{}", source.id);
            let why = source.disabled.as_deref().unwrap_or_default();
            assert!(
                why.starts_with("Art. 9 special category"),
                "{}: {why}",
                source.id
            );
            assert!(source.tags.is_empty(), "{}", source.id);
        } else {
            assert!(source.special_category.is_none(), "{}", source.id);
        }
        let shields: Vec<&str> = site["protection"]
            .as_array()
            .map(|a| a.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        if source.special_category.is_none() && shields.iter().any(|p| *p != "user-agent") {
            let why = source.disabled.as_deref().unwrap_or_default();
            assert!(why.contains("protection field"), "{}: {why}", source.id);
        }
        let known: Vec<&str> = site["known"]
            .as_array()
            .map(|a| a.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        assert_eq!(source.known_present, known, "{}", source.id);
    }
    assert!(special >= 60, "{special} Art. 9 sites");
    // Categories become interest tags.
    let gaming = pack.iter().filter(|s| s.tags == ["gaming"]).count();
    assert!(gaming > 50, "{gaming}");
}

/// One site's answers, as WhatsMyName has them.
struct Rule {
    e_code: u16,
    e_string: String,
    m_code: u16,
    m_string: String,
}

/// Where the replay server sends a request: by path (and query), or for a
/// POST with the account in its body, by path alone.
#[derive(Default)]
struct Replay {
    by_url: HashMap<String, (String, bool)>,
    by_post: HashMap<String, String>,
    rules: HashMap<String, Rule>,
    asked: Mutex<Vec<String>>,
}

impl Replay {
    /// The local path that stands for `url` ("https://host/p?q#f" is
    /// "/host/p?q": a fragment is never sent; "https://host" is asked as
    /// "https://host/").
    fn local(url: &str) -> String {
        let rest = url.split_once("://").map_or(url, |(_, r)| r);
        let rest = rest.split('#').next().unwrap_or(rest);
        match rest.find(['/', '?']) {
            Some(i) if rest[i..].starts_with('/') => format!("/{rest}"),
            Some(i) => format!("/{}/{}", &rest[..i], &rest[i..]),
            None => format!("/{rest}/"),
        }
    }

    /// Sites that share their check URL with another site (WordPress.com's
    /// "deleted" and "private" checks): one server cannot answer as both.
    fn shared(sites: &[Value]) -> Vec<String> {
        let mut by_uri: HashMap<String, Vec<String>> = HashMap::new();
        for site in sites {
            let key = format!("{} {}", site["uri_check"], site["post_body"]);
            by_uri
                .entry(key)
                .or_default()
                .push(site["name"].as_str().unwrap().to_owned());
        }
        by_uri
            .into_values()
            .filter(|n| n.len() > 1)
            .flatten()
            .collect()
    }

    fn new(sites: &[Value]) -> Self {
        let mut replay = Replay::default();
        let shared = Self::shared(sites);
        for site in sites {
            let name = site["name"].as_str().unwrap().to_owned();
            if shared.contains(&name) {
                continue;
            }
            let uri = site["uri_check"].as_str().unwrap();
            let code = |k: &str| site[k].as_u64().unwrap_or(0) as u16;
            let text = |k: &str| site[k].as_str().unwrap_or_default().to_owned();
            replay.rules.insert(
                name.clone(),
                Rule {
                    e_code: code("e_code"),
                    e_string: text("e_string"),
                    m_code: code("m_code"),
                    m_string: text("m_string"),
                },
            );
            if site.get("post_body").is_some() && !uri.contains("{account}") {
                replay.by_post.insert(Self::local(uri), name);
                continue;
            }
            for (account, found) in [(KNOWN, true), (NOBODY, false)] {
                replay.by_url.insert(
                    Self::local(&uri.replace("{account}", account)),
                    (name.clone(), found),
                );
            }
        }
        replay
    }

    fn answer(&self, path: &str, body: &[u8]) -> wiremock::ResponseTemplate {
        let (name, found) = match self.by_url.get(path) {
            Some((name, found)) => (name.clone(), *found),
            None => match self.by_post.get(path) {
                Some(name) => (name.clone(), String::from_utf8_lossy(body).contains(KNOWN)),
                None => return wiremock::ResponseTemplate::new(599),
            },
        };
        self.asked.lock().unwrap().push(name.clone());
        let rule = &self.rules[&name];
        let (code, text) = if found {
            (rule.e_code, &rule.e_string)
        } else {
            (rule.m_code, &rule.m_string)
        };
        let mut answer = wiremock::ResponseTemplate::new(code)
            .set_body_string(format!("<html><body>{text}</body></html>"));
        if (300..400).contains(&code) {
            answer = answer.insert_header("location", "/elsewhere");
        }
        answer
    }
}

struct Responder(Arc<Replay>);

impl wiremock::Respond for Responder {
    fn respond(&self, request: &wiremock::Request) -> wiremock::ResponseTemplate {
        let mut path = request.url.path().to_owned();
        if let Some(q) = request.url.query() {
            path = format!("{path}?{q}");
        }
        self.0.answer(&path, &request.body)
    }
}

/// The pack with every site moved onto `origin` (its host becomes the first
/// path segment), reachable on loopback and with a budget the test does
/// not wait on.
fn pack_on(origin: &str) -> Catalog {
    let mut doc: toml::Table = toml::from_str(pack()).unwrap();
    for source in doc["source"].as_array_mut().unwrap() {
        let source = source.as_table_mut().unwrap();
        let request = source["request"].as_table_mut().unwrap();
        let url = request["url"].as_str().unwrap().to_owned();
        let rest = url.split_once("://").unwrap().1.to_owned();
        request.insert("url".into(), format!("{origin}/{rest}").into());
        let table = |text: &str| toml::Value::Table(toml::from_str(text).unwrap());
        source.insert("network".into(), table("allow_private = true"));
        source.insert(
            "limits".into(),
            table("rate_limit = { per_second = 100.0, burst = 10 }"),
        );
    }
    Catalog::from_files(
        &[("whatsmyname.toml".into(), toml::to_string(&doc).unwrap())],
        &Config::default().purpose_ids(),
        &|_| None,
    )
    .expect("the pack compiles")
}

#[tokio::test]
async fn every_site_of_the_pack_reads_its_replayed_answers_right() {
    let sites = sites();
    let replay = Arc::new(Replay::new(&sites));
    let server = wiremock::MockServer::start().await;
    wiremock::Mock::given(wiremock::matchers::any())
        .respond_with(Responder(replay.clone()))
        .mount(&server)
        .await;
    let catalog = pack_on(&server.uri());
    let shared = Replay::shared(&sites);
    let enabled: Vec<String> = catalog
        .sources()
        .iter()
        .filter(|s| s.enabled() && !shared.contains(&s.name))
        .map(|s| s.id.to_string())
        .collect();
    println!("not replayed (a check URL shared with another site): {shared:?}");
    let app = TestApp::with_catalog(
        "[dns]\nenabled = false\n[sources]\ndeadline = \"60s\"\n",
        catalog.clone(),
    )
    .await;
    let mut client = app.client().await;
    let mut ask = async |account: &str| {
        client
            .enrich(common::email_request(&format!("{account}@example.com")))
            .await
            .unwrap()
            .into_inner()
    };
    let present = ask(KNOWN).await;
    let absent = ask(NOBODY).await;
    let special_sites = catalog
        .sources()
        .iter()
        .filter(|s| s.special_category.is_some())
        .count();
    // Presence on an Art. 9 site is never looked for, and the answer says
    // so, with the count of the sites left out.
    let not_asked = present
        .compliance
        .as_ref()
        .unwrap()
        .suppressed
        .iter()
        .find(|s| s.target == "profiles" && s.detail.contains("Art. 9"))
        .expect("the Art. 9 sites not asked are accounted for")
        .detail
        .clone();
    assert!(
        not_asked.starts_with(&format!("{special_sites} sites ")),
        "{not_asked}"
    );
    assert!(not_asked.contains("health: "), "{not_asked}");
    assert!(not_asked.contains("political_opinions: "), "{not_asked}");
    assert!(
        present.profiles.iter().all(|p| catalog
            .get(&p.source_id)
            .unwrap()
            .special_category
            .is_none()),
        "no profile from an Art. 9 site"
    );

    let outcomes = |resp: &pb::EnrichResponse| -> BTreeMap<String, Outcome> {
        resp.sources
            .iter()
            .map(|o| (o.source_id.clone(), o.outcome()))
            .collect()
    };
    let (present, absent) = (outcomes(&present), outcomes(&absent));
    let mut wrong = Vec::new();
    for id in &enabled {
        if present.get(id) != Some(&Outcome::Found) {
            wrong.push(format!("{id}: {:?} for an account", present.get(id)));
        }
        if absent.get(id) != Some(&Outcome::NotFound) {
            wrong.push(format!("{id}: {:?} for no account", absent.get(id)));
        }
    }
    let share = 1.0 - wrong.len() as f64 / (2 * enabled.len()) as f64;
    println!(
        "{} enabled pack sites, {} of {} replayed answers read right ({:.1} %)",
        enabled.len(),
        2 * enabled.len() - wrong.len(),
        2 * enabled.len(),
        share * 100.0
    );
    for w in &wrong {
        println!("  {w}");
    }
    assert!(
        wrong.is_empty(),
        "{} misread:\n{}",
        wrong.len(),
        wrong.join("\n")
    );

    // No Art. 9 site was ever asked.
    let asked = replay.asked.lock().unwrap().clone();
    let special: Vec<&str> = catalog
        .sources()
        .iter()
        .filter(|s| s.special_category.is_some())
        .map(|s| s.name.as_str())
        .collect();
    assert!(!special.is_empty());
    assert!(
        !asked.iter().any(|name| special.contains(&name.as_str())),
        "an Art. 9 site was asked"
    );
}
