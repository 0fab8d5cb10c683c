//! The web console over real HTTP: who may open it, what a session cookie
//! is, and that every action is the API's decision for the session's key.
//! (The pages themselves are tested in a real browser: tests/browser/.)
use std::collections::BTreeSet;

use enrichd::auth::Scope;
use enrichd::auth::keys::NewKey;

use crate::common::sandbox_app_with;

const KEYED: &str = "[server]\nhttp_listen = \"127.0.0.1:0\"\n[auth]\nrequired = true\n";

pub(crate) struct Browser {
    base: String,
    client: reqwest::Client,
    cookie: Option<String>,
}

impl Browser {
    pub(crate) fn new(addr: std::net::SocketAddr) -> Self {
        Self {
            base: format!("http://{addr}"),
            client: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .unwrap(),
            cookie: None,
        }
    }

    pub(crate) async fn get(&self, path: &str) -> reqwest::Response {
        let mut r = self.client.get(format!("{}{path}", self.base));
        if let Some(c) = &self.cookie {
            r = r.header("cookie", c);
        }
        r.send().await.unwrap()
    }

    async fn post(
        &self,
        path: &str,
        form: &[(&str, &str)],
        origin: Option<&str>,
    ) -> reqwest::Response {
        let body = url::form_urlencoded::Serializer::new(String::new())
            .extend_pairs(form)
            .finish();
        let mut r = self
            .client
            .post(format!("{}{path}", self.base))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body);
        if let Some(c) = &self.cookie {
            r = r.header("cookie", c);
        }
        if let Some(o) = origin {
            r = r.header("origin", o);
        }
        r.send().await.unwrap()
    }

    /// Signs in with `key`; returns the Set-Cookie header.
    pub(crate) async fn sign_in(&mut self, key: &str) -> String {
        let r = self.post("/console/sign-in", &[("key", key)], None).await;
        assert_eq!(r.status(), 303, "signed in");
        let set = r.headers()["set-cookie"].to_str().unwrap().to_owned();
        self.cookie = Some(set.split(';').next().unwrap().to_owned());
        set
    }

    /// The CSRF token of a page.
    async fn csrf(&self, path: &str) -> String {
        let page = self.get(path).await.text().await.unwrap();
        let at = page
            .find("name=\"csrf\" value=\"")
            .expect("a form with a token")
            + 19;
        page[at..at + page[at..].find('"').unwrap()].to_owned()
    }
}

fn key(name: &str, scopes: &[Scope]) -> NewKey {
    NewKey {
        name: name.into(),
        scopes: scopes.iter().copied().collect(),
        purposes: BTreeSet::from(["marketing".to_owned()]),
        quota_per_second: None,
        expires_in: None,
    }
}

const JANE: [(&str, &str); 4] = [
    ("identifier", "jane.doe@example.com"),
    ("purpose", "marketing"),
    ("basis", "legitimate_interests"),
    ("reference", "LIA-1"),
];

#[tokio::test]
async fn the_console_is_the_api_for_a_signed_in_key_and_nothing_more() {
    let (app, _sandbox) = sandbox_app_with(KEYED).await;
    let keys = app.keys().await;
    let analyst = keys.create(key("analyst", &[Scope::Enrich])).await.unwrap();
    let mut browser = Browser::new(app.http_addr.unwrap());

    // Nothing without a session: pages send to sign-in, actions are refused
    // before their body is read.
    let r = browser.get("/console/case").await;
    assert_eq!(
        (
            r.status().as_u16(),
            r.headers()["location"].to_str().unwrap()
        ),
        (303, "/console/")
    );
    assert_eq!(
        browser.post("/console/case", &JANE, None).await.status(),
        401
    );
    assert_eq!(
        browser
            .post("/console/feedback", &JANE, None)
            .await
            .status(),
        401
    );
    assert_eq!(
        browser.get("/console/batches/x/audience").await.status(),
        303
    );
    let r = browser
        .post(
            "/console/sign-in",
            &[("key", "ek_0000000000000000_nope")],
            None,
        )
        .await;
    assert_eq!(r.status(), 401);
    assert!(r.headers().get("set-cookie").is_none());

    let set = browser.sign_in(&analyst.secret).await;
    for attribute in [
        "HttpOnly",
        "SameSite=Strict",
        "Path=/console",
        "Max-Age=43200",
    ] {
        assert!(set.contains(attribute), "{attribute} in {set}");
    }
    assert!(!set.contains("Secure"), "plain HTTP on loopback: {set}");

    // The pages follow the key's scopes and purposes.
    let r = browser.get("/console/case").await;
    assert_eq!(r.status(), 200);
    let csp = r.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(
        csp.contains("script-src 'self'") && csp.contains("frame-ancestors 'none'"),
        "{csp}"
    );
    let page = r.text().await.unwrap();
    assert!(page.contains("href=\"/console/case\""));
    assert!(
        !page.contains("href=\"/console/privacy\""),
        "no Access or Erase scope"
    );
    assert!(page.contains("<option value=\"marketing\""));
    assert!(
        !page.contains("<option value=\"fraud_prevention\""),
        "not the key's purpose"
    );

    // A change needs the page's token, from the console's own origin.
    let token = browser.csrf("/console/case").await;
    let mut form = JANE.to_vec();
    assert_eq!(
        browser.post("/console/case", &form, None).await.status(),
        403,
        "no token"
    );
    form.push(("csrf", &token));
    let r = browser
        .post("/console/case", &form, Some("http://evil.example"))
        .await;
    assert_eq!(r.status(), 403, "another origin");
    let r = browser.post("/console/case", &form, None).await;
    assert_eq!(r.status(), 200);
    let page = r.text().await.unwrap();
    assert!(page.contains("data-verdict=\"accept\""), "the case");
    assert!(page.contains("data-via=\"link\""), "a pivot edge");

    // An action beyond the key's scope is the API's refusal, in the page.
    let r = browser
        .post(
            "/console/privacy/access",
            &[
                ("identifier", "jane.doe@example.com"),
                ("reference", "DSR-1"),
                ("csrf", &token),
            ],
            None,
        )
        .await;
    assert_eq!(r.status(), 403);
    assert!(r.text().await.unwrap().contains("lacks the scope"));

    // A revoked key stops its session at the next action.
    keys.revoke("analyst", None).await.unwrap();
    let r = browser.post("/console/case", &form, None).await;
    assert_eq!(r.status(), 401);

    // Signed out: the cookie opens nothing.
    let r = browser
        .post("/console/sign-out", &[("csrf", &token)], None)
        .await;
    assert_eq!(r.status(), 303);
    assert!(
        r.headers()["set-cookie"]
            .to_str()
            .unwrap()
            .contains("Max-Age=0")
    );
    assert_eq!(browser.get("/console/case").await.status(), 303);
}

#[tokio::test]
async fn a_keyless_loopback_console_signs_in_without_a_key_and_answers_loopback_names_only() {
    let (app, _sandbox) = sandbox_app_with("[server]\nhttp_listen = \"127.0.0.1:0\"\n").await;
    let mut browser = Browser::new(app.http_addr.unwrap());
    browser.sign_in("").await;
    assert_eq!(browser.get("/console/sources").await.status(), 200);
    // DNS rebinding: a page whose name now points here is not answered.
    let r = browser
        .client
        .get(format!("{}/console/", browser.base))
        .header("host", "rebound.example:80")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
}

/// Browses a ledger of 120 records: filters, newest first, pages.
async fn browses(store: enrichd::ledger::Ledger) {
    use enrichd::ledger::{Browse, LedgerOutcome, Record};
    for i in 0..120i64 {
        let record = Record {
            id: format!("r{i:03}"),
            at_ms: 1_000_000 + i * 1000,
            caller: if i % 2 == 0 { "crm" } else { "fraud" }.into(),
            purpose: if i % 3 == 0 {
                "marketing"
            } else {
                "fraud_prevention"
            }
            .into(),
            lawful_basis: "legitimate_interests".into(),
            consent_ref: String::new(),
            lia_ref: "LIA-1".into(),
            contract_ref: String::new(),
            subject: format!("hash-{i}"),
            sources: vec!["s".into()],
            field_categories: vec![],
            outcome: if i % 5 == 0 {
                LedgerOutcome::NotFound
            } else {
                LedgerOutcome::Enriched
            },
            retain_until_ms: i64::MAX,
            redacted: false,
            caller_id: String::new(),
            on_behalf_of: String::new(),
            reference: String::new(),
            detail: String::new(),
        };
        store.record(record).await.unwrap();
    }
    let all = Browse {
        from_ms: i64::MIN,
        until_ms: i64::MAX,
        limit: 50,
        ..Browse::default()
    };
    let first = store.browse(&all).await.unwrap();
    assert_eq!(first.len(), 50);
    assert_eq!(
        (first[0].id.as_str(), first[49].id.as_str()),
        ("r119", "r070"),
        "newest first"
    );
    let last = first.last().unwrap();
    let next = Browse {
        before: Some((last.at_ms, last.id.clone())),
        ..all.clone()
    };
    assert_eq!(
        store.browse(&next).await.unwrap()[0].id,
        "r069",
        "the next page"
    );

    let mut f = Browse {
        caller: "crm".into(),
        purpose: "marketing".into(),
        outcome: "not_found".into(),
        ..all.clone()
    };
    let ids: Vec<String> = store
        .browse(&f)
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.id)
        .collect();
    assert_eq!(ids, ["r090", "r060", "r030", "r000"], "i % 30 == 0");
    f.from_ms = 1_000_000 + 30_000;
    f.until_ms = 1_000_000 + 90_000;
    let ids: Vec<String> = store
        .browse(&f)
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.id)
        .collect();
    assert_eq!(
        ids,
        ["r060", "r030"],
        "the period: from inclusive, until exclusive"
    );
}

#[tokio::test]
async fn the_ledger_browser_filters_and_pages_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}?mode=rwc", dir.path().join("l.db").display());
    browses(enrichd::ledger::Ledger::open(&url).await.unwrap()).await;
}

#[tokio::test]
async fn the_ledger_browser_filters_and_pages_on_postgres() {
    let url = crate::common::postgres_url().await;
    browses(enrichd::ledger::Ledger::open(&url).await.unwrap()).await;
}

#[tokio::test]
async fn the_ledger_page_needs_the_access_scope_and_shows_no_subject() {
    let (app, _sandbox) = sandbox_app_with(KEYED).await;
    let keys = app.keys().await;
    let analyst = keys.create(key("analyst", &[Scope::Enrich])).await.unwrap();
    let dpo = keys
        .create(key("dpo", &[Scope::Access, Scope::Erase]))
        .await
        .unwrap();
    let mut browser = Browser::new(app.http_addr.unwrap());
    browser.sign_in(&analyst.secret).await;
    let token = browser.csrf("/console/case").await;
    let mut form = JANE.to_vec();
    form.push(("csrf", &token));
    assert_eq!(
        browser.post("/console/case", &form, None).await.status(),
        200
    );
    let r = browser.get("/console/privacy/ledger").await;
    assert_eq!(r.status(), 403, "no Access scope");

    let mut officer = Browser::new(app.http_addr.unwrap());
    officer.sign_in(&dpo.secret).await;
    let page = officer
        .get("/console/privacy/ledger?caller=analyst")
        .await
        .text()
        .await
        .unwrap();
    assert!(
        page.contains("<td>analyst</td>"),
        "the analyst's lookup is listed"
    );
    assert!(!page.contains("jane.doe"), "no identifier");
    let records = app
        .enricher
        .ledger()
        .browse(&enrichd::ledger::Browse {
            caller: "analyst".into(),
            from_ms: i64::MIN,
            until_ms: i64::MAX,
            limit: 10,
            ..Default::default()
        })
        .await
        .unwrap();
    assert!(
        !records.is_empty() && !page.contains(&records[0].subject),
        "no subject hash"
    );
    let r = officer.get("/console/privacy/ledger?from=yesterday").await;
    assert!(
        r.text()
            .await
            .unwrap()
            .contains("is not a date (YYYY-MM-DD)")
    );
}
