//! The sandbox: fake sites served in process on loopback, and the catalog
//! that asks them, so a newcomer or an integrator sees full answers offline
//! without touching a real person's data.
//!
//! The people it knows:
//! - `jane.doe@example.com`: found on most sites (avatar profile with linked
//!   accounts, code hosting found by email search, a homepage reached through
//!   a pivot URL, photo, forum, blog, fitness and gaming sites); her bios give
//!   evidence for technology, photography, travel, running, gaming and a health
//!   condition (for special-category suppression).
//!   Her address is in two breaches (breach site; a third, of a sensitive
//!   site, is suppressed) and her mailbox is deliverable (verifier site).
//! - `+447700900123`: found on the messaging-style sites (chat, voicebook);
//!   the phone-line site says mobile, its carrier and caller name.
//! - `+447700900456`: a VoIP number (phone-line site), on no messaging site.
//! - `nobody@example.org`: found nowhere; the verifier says undeliverable.
//!
//! Its DNS ([`dns`]) answers every MX check, and its SMTP exchanger (on
//! loopback, at `mx.example.com` and `mx.example.org`) every SMTP check,
//! so nothing leaves the process: `jane.doe@example.com` is deliverable,
//! `nobody@example.org` undeliverable, any address at
//! `catchall.example.com` a catch-all, and an address at a large provider
//! (`gmail.com`) unknown: never probed.
pub mod crowd;
pub mod dns;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use md5::Md5;
use serde_json::json;
use sha2::{Digest as _, Sha256};

use crate::catalog::{Catalog, CatalogError};

const CATALOG: &str = include_str!("catalog.toml");
const PLACEHOLDER: &str = "http://sandbox.invalid";

pub const JANE: &str = "jane.doe@example.com";
pub const JANE_PHONE: &str = "+447700900123";
pub const VOIP_PHONE: &str = "+447700900456";

/// A running sandbox fixture server.
pub struct Sandbox {
    addr: SocketAddr,
    dns: dns::SandboxDns,
    smtp: enrichd_sources::smtp::exchanger::Exchanger,
    _task: tokio::task::JoinHandle<()>,
}

struct Site {
    origin: String,
    flaky_calls: AtomicUsize,
    crowd: crowd::Crowd,
}

fn md5_hex(s: &str) -> String {
    hex::encode(Md5::digest(s.as_bytes()))
}

fn sha256_hex(s: &str) -> String {
    hex::encode(Sha256::digest(s.as_bytes()))
}

impl Sandbox {
    /// Starts the fixture server on 127.0.0.1 (a free port).
    pub async fn start() -> std::io::Result<Self> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let state = Arc::new(Site {
            origin: format!("http://{addr}"),
            flaky_calls: AtomicUsize::new(0),
            crowd: crowd::Crowd::new(),
        });
        let app = Router::new()
            .route("/avatar/{file}", get(avatar))
            .route("/codehub/search/users", get(codehub_search))
            .route("/codehub/users/{login}", get(codehub_user))
            .route("/home/{name}", get(homepage))
            .route("/photogram/{user}", get(photogram))
            .route("/forum/u/{user}", get(forum))
            .route("/blog/", get(|| async { Html("<h1>Sandbox Blog</h1>") }))
            .route("/blog/{handle}", get(blog))
            .route("/runner/api/athletes", get(runner))
            .route("/gamer/player/{user}", get(gamer))
            .route("/chat/v1/lookup", post(chat))
            .route("/voicebook/{number}", get(voicebook))
            .route("/breaches/api/v3/breachedaccount/{account}", get(breaches))
            .route("/lookup/v2/PhoneNumbers/{number}", get(phone_line))
            .route("/verifier/v2/email-verifier", get(verifier))
            .route("/slow/{user}", get(slow))
            .route("/flaky/{hash}", get(flaky))
            .route("/busy/{user}", get(busy))
            .with_state(state);
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        let dns = dns::start().await?;
        let smtp = enrichd_sources::smtp::exchanger::start(&[JANE]).await?;
        Ok(Self {
            addr,
            dns,
            smtp,
            _task: task,
        })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The sandbox's DNS server: MX checks in sandbox mode go here only.
    pub fn dns_addr(&self) -> SocketAddr {
        self.dns.addr()
    }

    /// The sandbox's SMTP exchanger (the sandbox DNS's `mx.example.com`).
    pub fn smtp_addr(&self) -> SocketAddr {
        self.smtp.addr
    }

    /// How many connections the sandbox's SMTP exchanger has taken.
    pub fn smtp_connections(&self) -> usize {
        self.smtp.seen.lock().map_or(0, |seen| seen.connections)
    }

    /// `smtp` pointed at the sandbox's exchanger and turned on: every
    /// exchanger the sandbox DNS names for a probe is on loopback.
    pub fn smtp_config(&self, smtp: &mut enrichd_sources::smtp::SmtpConfig) {
        smtp.enabled = true;
        smtp.helo_name = "probe.sandbox.invalid".into();
        smtp.mail_from = "verify@sandbox.invalid".into();
        smtp.port = self.smtp.addr.port();
        smtp.allow_private = true;
        smtp.proxy = None;
        smtp.greylist_wait = Duration::from_millis(100);
    }

    /// The sandbox catalog's text, pointed at this server (a test may
    /// change it before compiling it).
    pub fn catalog_text(&self) -> String {
        CATALOG.replace(PLACEHOLDER, &format!("http://{}", self.addr))
    }

    /// The sandbox catalog, pointed at this server.
    pub fn catalog(&self, purposes: &[String]) -> Result<Catalog, CatalogError> {
        let text = self.catalog_text();
        Catalog::from_files(
            &[(PathBuf::from("sandbox/catalog.toml"), text)],
            purposes,
            &crate::catalog::process_env,
        )
    }
}

type S = State<Arc<Site>>;

async fn avatar(State(site): S, Path(file): Path<String>) -> Response {
    if let Some(p) = file
        .strip_suffix(".json")
        .and_then(|hash| site.crowd.by_md5(hash))
    {
        return Json(json!({"entry": [{
            "id": p.n.to_string(), "hash": md5_hex(&p.email()), "requestHash": md5_hex(&p.email()),
            "profileUrl": format!("http://avatar.sandbox/{}", p.handle),
            "preferredUsername": p.handle,
            "displayName": p.name,
            "aboutMe": p.bio,
            "accounts": []
        }]}))
        .into_response();
    }
    if file != format!("{}.json", md5_hex(JANE)) {
        return (StatusCode::NOT_FOUND, "User not found").into_response();
    }
    Json(json!({"entry": [{
        "id": "1", "hash": md5_hex(JANE), "requestHash": md5_hex(JANE),
        "profileUrl": "http://avatar.sandbox/janedoe",
        "preferredUsername": "janedoe",
        "thumbnailUrl": "https://avatar.sandbox/avatar/jane.png",
        "displayName": "Jane Doe",
        "aboutMe": "Software engineer and amateur photographer. Coffee, code and trains.",
        "currentLocation": "Leeds, UK",
        "accounts": [
            {"domain": "codehub.sandbox", "display": "janedoe-dev", "url": "http://codehub.sandbox/janedoe-dev",
             "username": "janedoe-dev", "verified": "true", "name": "CodeHub", "shortname": "codehub"},
            {"domain": "photogram.sandbox", "display": "jane.shoots", "url": "http://photogram.sandbox/jane.shoots",
             "username": "jane.shoots", "verified": "true", "name": "Photogram", "shortname": "photogram"}
        ]
    }]}))
    .into_response()
}

#[derive(serde::Deserialize)]
struct Q {
    q: Option<String>,
    email_hash: Option<String>,
}

async fn codehub_search(Query(q): Query<Q>) -> Response {
    let found = q.q.as_deref() == Some(&format!("{JANE} in:email"));
    let items = if found {
        vec![json!({"login": "janedoe-dev", "id": 4242, "type": "User"})]
    } else {
        vec![]
    };
    Json(json!({"total_count": items.len(), "incomplete_results": false, "items": items}))
        .into_response()
}

async fn codehub_user(State(site): S, Path(login): Path<String>) -> Response {
    if let Some(p) = site.crowd.on(crowd::Site::CodeHub, &login) {
        return Json(json!({
            "login": p.handle, "id": 100_000 + p.n, "type": "User",
            "html_url": format!("http://codehub.sandbox/{}", p.handle),
            "name": p.name, "bio": p.bio, "public_repos": 3 + p.n % 40,
            "followers": p.n % 90, "created_at": p.created()
        }))
        .into_response();
    }
    if login != "janedoe-dev" {
        return (StatusCode::NOT_FOUND, Json(json!({"message": "Not Found"}))).into_response();
    }
    Json(json!({
        "login": "janedoe-dev", "id": 4242, "type": "User",
        "html_url": "http://codehub.sandbox/janedoe-dev",
        "avatar_url": "https://avatars.codehub.sandbox/u/4242",
        "name": "Jane Doe", "company": null,
        "blog": format!("{}/home/jane", site.origin),
        "location": "Leeds",
        "bio": "Rust and Python developer. Open source maintainer, machine learning hobbyist.",
        "public_repos": 37, "followers": 214, "following": 12,
        "created_at": "2012-03-04T10:00:00Z", "updated_at": "2026-10-01T08:00:00Z"
    }))
    .into_response()
}

async fn homepage(Path(name): Path<String>) -> Response {
    if name != "jane" {
        return (StatusCode::NOT_FOUND, Html("<h1>Not found</h1>")).into_response();
    }
    Html(
        r#"<html><head><title>Jane Doe</title></head><body>
<div class="h-card"><h1 class="p-name">Jane Doe</h1>
<p class="p-note">I build developer tools by day and travel Europe by train with my camera by night.</p>
<span class="p-locality">Leeds</span></div></body></html>"#,
    )
    .into_response()
}

/// A crowd person's profile page, in the markup of Jane's on that site.
fn crowd_page(p: &crowd::Person, site: crowd::Site) -> Response {
    let (name, bio) = (html_escape(&p.name), html_escape(&p.bio));
    let handle = &p.handle;
    Html(match site {
        crowd::Site::Photogram => format!(
            r#"<html><head><meta property="og:title" content="{name} (@{handle})"></head><body>
<div class="bio">{bio}</div><span class="followers">{}</span></body></html>"#,
            p.n % 900
        ),
        crowd::Site::Forum => format!(
            r#"<html><body><div class="member-card"><h1>{name}</h1>
<p>Member since {}-03-01</p><p class="signature">{bio}</p></div></body></html>"#,
            p.since_year
        ),
        crowd::Site::Blog => format!(
            r#"<html><body><h1 class="author">{name}</h1><p class="about">{bio}</p></body></html>"#
        ),
        _ => format!(
            r#"<html><body><div class="player"><span class="name">{name}</span>
<p class="about">{bio}</p></div></body></html>"#
        ),
    })
    .into_response()
}

/// Names and bios are the generator's own words, escaped all the same.
fn html_escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

async fn photogram(State(site): S, Path(user): Path<String>) -> Response {
    if let Some(p) = site.crowd.on(crowd::Site::Photogram, &user) {
        return crowd_page(&p, crowd::Site::Photogram);
    }
    if user != "jane.shoots" {
        return (
            StatusCode::NOT_FOUND,
            Html("<h1>Sorry, this page isn't available.</h1>"),
        )
            .into_response();
    }
    Html(
        r#"<html><head><meta property="og:title" content="Jane Doe (@jane.shoots)"></head><body>
<img class="avatar" src="/static/jane.jpg"><div class="bio">Travel and landscape photography. Hiking the Yorkshire Dales.</div>
<span class="followers">1.2k</span></body></html>"#,
    )
    .into_response()
}

async fn forum(State(site): S, Path(user): Path<String>) -> Response {
    if let Some(p) = site.crowd.on(crowd::Site::Forum, &user) {
        return crowd_page(&p, crowd::Site::Forum);
    }
    // A soft-404 site: always 200.
    if user != "jane.doe" {
        return Html("<html><body><h1>Oops! This user does not exist.</h1></body></html>")
            .into_response();
    }
    Html(
        r#"<html><body><div class="member-card"><h1>Jane Doe</h1>
<p>Member since 2015-06-01</p><p class="signature">Gardening and cooking enthusiast; ask me about sourdough.</p>
</div></body></html>"#,
    )
    .into_response()
}

async fn blog(State(site): S, Path(handle): Path<String>) -> Response {
    if let Some(p) = handle
        .strip_prefix('@')
        .and_then(|h| site.crowd.on(crowd::Site::Blog, h))
    {
        return crowd_page(&p, crowd::Site::Blog);
    }
    if handle != "@janedoe" {
        return Redirect::to("/blog/").into_response();
    }
    Html(r#"<html><body><h1 class="author">Jane Doe</h1><p class="about">Writing about personal finance, index funds and saving for a house.</p></body></html>"#)
        .into_response()
}

async fn runner(State(site): S, Query(q): Query<Q>) -> Response {
    if let Some(p) = q
        .email_hash
        .as_deref()
        .and_then(|h| site.crowd.by_sha256(h))
        .filter(|p| p.on(crowd::Site::Runner))
    {
        return Json(json!({"athlete": {
            "name": p.name, "member_since": format!("{}-04-01", p.since_year),
            "activities": 20 + p.n % 300, "bio": p.bio
        }}))
        .into_response();
    }
    if q.email_hash.as_deref() != Some(&sha256_hex(JANE)) {
        return Json(json!({"athlete": null})).into_response();
    }
    Json(json!({"athlete": {
        "name": "Jane D.", "city": "Leeds", "member_since": "2016-05-01", "activities": 412,
        "bio": "Marathon runner living with type 1 diabetes. Training for Berlin."
    }}))
    .into_response()
}

async fn gamer(State(site): S, Path(user): Path<String>) -> Response {
    if let Some(p) = site.crowd.on(crowd::Site::Gamer, &user) {
        return crowd_page(&p, crowd::Site::Gamer);
    }
    if user != "janedoe" {
        return (StatusCode::NOT_FOUND, Html("<h1>No such player</h1>")).into_response();
    }
    Html(
        r#"<html><body><div class="player"><span class="name">JaneD</span>
<p class="about">Strategy games and RPGs on weekends. Chess puzzles daily.</p>
<time datetime="2026-11-01T20:00:00Z">3 weeks ago</time></div></body></html>"#,
    )
    .into_response()
}

async fn chat(Json(body): Json<serde_json::Value>) -> Response {
    if body.get("phone").and_then(|p| p.as_str()) != Some(JANE_PHONE) {
        return Json(json!({"registered": false, "profile": null})).into_response();
    }
    Json(json!({"registered": true, "profile": {
        "name": "Jane", "about": "Probably on a train.", "last_seen": "2026-11-20T18:30:00Z"
    }}))
    .into_response()
}

async fn voicebook(Path(number): Path<String>) -> Response {
    if number != "07700900123" {
        return (StatusCode::NOT_FOUND, Html("<p>No listing</p>")).into_response();
    }
    Html(r#"<html><body><div class="caller-card"><span class="name">Jane Doe</span><span class="area">Leeds</span></div></body></html>"#)
        .into_response()
}

/// Have I Been Pwned v3's `breachedaccount` shape (truncateResponse=false).
async fn breaches(Path(account): Path<String>) -> Response {
    if account != JANE {
        return StatusCode::NOT_FOUND.into_response();
    }
    let breach = |name: &str, domain: &str, date: &str, classes: &[&str], sensitive: bool| {
        json!({
            "Name": name, "Title": name, "Domain": domain, "BreachDate": date,
            "AddedDate": format!("{date}T12:00:00Z"), "ModifiedDate": format!("{date}T12:00:00Z"),
            "PwnCount": 120_000, "Description": "A sandbox breach.",
            "LogoPath": "https://example.invalid/logo.png", "DataClasses": classes,
            "IsVerified": true, "IsFabricated": false, "IsSensitive": sensitive,
            "IsRetired": false, "IsSpamList": false, "IsMalware": false,
            "IsSubscriptionFree": false, "IsStealerLog": false
        })
    };
    Json(json!([
        breach(
            "SandboxShop",
            "shop.sandbox",
            "2019-05-14",
            &["Email addresses", "Passwords"],
            false
        ),
        breach(
            "SandboxForum",
            "forum.sandbox",
            "2016-08-02",
            &["Email addresses", "Usernames"],
            false
        ),
        breach(
            "SandboxDating",
            "dating.sandbox",
            "2015-07-19",
            &["Email addresses"],
            true
        ),
    ]))
    .into_response()
}

/// Twilio Lookup v2's shape with line_type_intelligence and caller_name.
async fn phone_line(Path(number): Path<String>) -> Response {
    let (kind, carrier, caller) =
        match number.as_str() {
            JANE_PHONE => (
                "mobile",
                "Sandbox Mobile",
                json!({
                    "caller_name": "JANE DOE", "caller_type": "CONSUMER", "error_code": null
                }),
            ),
            VOIP_PHONE => ("nonFixedVoip", "Sandbox VoIP Ltd", json!(null)),
            _ => return (
                StatusCode::NOT_FOUND,
                Json(json!({
                    "code": 20404, "message": "The requested resource was not found", "status": 404
                })),
            )
                .into_response(),
        };
    Json(json!({
        "calling_country_code": "44", "country_code": "GB", "phone_number": number,
        "national_format": "07700 900123", "valid": true, "validation_errors": [],
        "caller_name": caller,
        "line_type_intelligence": {
            "carrier_name": carrier, "error_code": null, "mobile_country_code": "234",
            "mobile_network_code": "10", "type": kind
        },
        "url": format!("https://lookups.twilio.com/v2/PhoneNumbers/{number}")
    }))
    .into_response()
}

/// Hunter's email-verifier shape.
async fn verifier(Query(q): Query<std::collections::HashMap<String, String>>) -> Response {
    let email = q.get("email").map(String::as_str).unwrap_or_default();
    let domain = email.rsplit('@').next().unwrap_or_default();
    // As the sandbox's exchanger answers: Jane's mailbox is there, a
    // catch-all domain takes anything, a large provider is not asked.
    let webmail = [
        "gmail.com",
        "outlook.com",
        "hotmail.com",
        "yahoo.com",
        "icloud.com",
    ]
    .contains(&domain);
    let accept_all = domain.starts_with("catchall.");
    let (status, result, score) = if email == JANE {
        ("valid", "deliverable", 94)
    } else if accept_all {
        ("accept_all", "risky", 50)
    } else if webmail {
        ("webmail", "risky", 60)
    } else {
        ("invalid", "undeliverable", 12)
    };
    Json(json!({
        "data": {
            "status": status, "result": result, "score": score, "email": email,
            "regexp": true, "gibberish": false, "disposable": false, "webmail": webmail,
            "mx_records": true, "smtp_server": true, "smtp_check": result == "deliverable",
            "accept_all": accept_all, "block": false, "sources": []
        },
        "meta": {"params": {"email": email}}
    }))
    .into_response()
}

async fn slow(Path(_user): Path<String>) -> Response {
    tokio::time::sleep(Duration::from_secs(3)).await;
    (StatusCode::NOT_FOUND, "not here").into_response()
}

async fn flaky(State(site): S, Path(hash): Path<String>) -> Response {
    if site.flaky_calls.fetch_add(1, Ordering::Relaxed) % 2 == 0 {
        return (StatusCode::INTERNAL_SERVER_ERROR, "upstream error").into_response();
    }
    if hash != md5_hex(JANE) {
        return Json(json!({"user": null})).into_response();
    }
    Json(json!({"user": {"name": "Jane Doe"}})).into_response()
}

async fn busy(Path(_user): Path<String>) -> Response {
    let mut headers = HeaderMap::new();
    headers.insert(header::RETRY_AFTER, "30".parse().expect("static header"));
    (StatusCode::TOO_MANY_REQUESTS, headers, "slow down").into_response()
}
