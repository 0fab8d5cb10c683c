//! The web console under `/console/`: pages for the people behind the
//! callers (a fraud analyst's case view, a privacy officer's desk, batches
//! and sources at a glance), rendered on the server (maud) with one small
//! script and one stylesheet embedded in the binary.
//!
//! It is a client of the JSON API, in process: a signed-in session holds
//! its API key on the server, and every page that reads or changes
//! anything calls the API router with it. So the console has no rule of
//! its own to get wrong: who may do what is the API's decision, as for any
//! caller. Identifiers travel only in POST bodies, never in a URL.
mod batches;
mod case;
mod graph;
mod ledger;
mod pages;
mod privacy;
pub mod session;
mod sources;

use std::sync::Arc;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use maud::Markup;
use serde::Deserialize;

use crate::auth::layer::Authenticator;
pub use session::ConsoleConfig;
use session::{Session, Sessions, csrf_matches};

/// What every console handler shares.
#[derive(Clone)]
pub struct Console {
    /// The JSON API (the router the HTTP listener serves besides this).
    api: Router,
    auth: Arc<Authenticator>,
    sessions: Sessions,
    /// The declared purposes, for the forms' choices.
    purposes: Arc<Vec<String>>,
    /// Cookies carry `Secure` (the server is configured for TLS).
    secure: bool,
    max_upload: usize,
    /// The ledger, for the privacy officer's browser.
    ledger: crate::ledger::Ledger,
    /// Each purpose's retention, in days.
    retention: Arc<Vec<(String, u64)>>,
    /// The replicas' shared store: the sources page reads every replica's
    /// counters from it.
    cluster: Option<Arc<crate::cluster::Cluster>>,
    clock: enrichd_core::clock::SharedClock,
    /// This replica's name on the cluster's boards.
    replica: Arc<str>,
}

/// The parts the server hands over.
pub struct Parts {
    pub api: Router,
    pub auth: Arc<Authenticator>,
    pub config: ConsoleConfig,
    pub clock: enrichd_core::clock::SharedClock,
    pub purposes: Vec<String>,
    pub secure: bool,
    pub max_upload: usize,
    pub ledger: crate::ledger::Ledger,
    pub retention: Vec<(String, u64)>,
    pub cluster: Option<Arc<crate::cluster::Cluster>>,
}

/// The console's routes, all under `/console/`.
pub fn router(parts: Parts) -> Router {
    let console = Console {
        api: parts.api,
        auth: parts.auth,
        sessions: Sessions::new(parts.config, parts.clock.clone()),
        purposes: Arc::new(parts.purposes),
        secure: parts.secure,
        max_upload: parts.max_upload,
        ledger: parts.ledger,
        retention: Arc::new(parts.retention),
        cluster: parts.cluster,
        clock: parts.clock,
        replica: uuid::Uuid::now_v7().to_string().into(),
    };
    sources::keep_posting(&console);
    let signed_in = Router::new()
        .route("/console/case", get(case::form).post(case::show))
        .route("/console/feedback", post(case::feedback))
        .route("/console/privacy", get(privacy::desk))
        .route("/console/privacy/access", post(privacy::access))
        .route("/console/privacy/erase", post(privacy::erase))
        .route("/console/privacy/ledger", get(ledger::page))
        .route("/console/batches", get(batches::list).post(batches::upload))
        .route("/console/batches/{id}", get(batches::show))
        .route("/console/batches/{id}/progress", get(batches::progress))
        .route("/console/batches/{id}/results", get(batches::download))
        .route("/console/batches/{id}/cancel", post(batches::cancel))
        .route("/console/batches/{id}/audience", get(batches::audience))
        .route("/console/sources", get(sources::page))
        .route("/console/sign-out", post(sign_out))
        .layer(axum::extract::DefaultBodyLimit::max(console.max_upload))
        .route_layer(axum::middleware::from_fn_with_state(
            console.clone(),
            require_session,
        ));
    Router::new()
        .route("/console/", get(home))
        .route(
            "/console",
            get(|| async { Redirect::permanent("/console/") }),
        )
        .route("/console/sign-in", post(sign_in))
        .route("/console/assets/{file}", get(asset))
        .merge(signed_in)
        .with_state(console)
        .layer(axum::middleware::from_fn(security_headers))
}

/// Pages and actions need a live session, and a change needs its CSRF
/// token too; both are decided before a byte of the body is read.
async fn require_session(State(c): State<Console>, mut request: Request, next: Next) -> Response {
    let Some(session) = c.sessions.of(request.headers()) else {
        return if request.method() == Method::GET {
            Redirect::to("/console/").into_response()
        } else {
            (StatusCode::UNAUTHORIZED, "sign in first: /console/").into_response()
        };
    };
    if request.method() != Method::GET {
        if !same_origin(request.headers()) {
            return csrf_refused();
        }
        let kind = request
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_ascii_lowercase();
        if kind.starts_with("multipart/form-data") {
            // An upload: its handler reads the token, the form's first
            // field, before the list (see `batches::upload`).
        } else {
            let (parts, body) = request.into_parts();
            let Ok(bytes) = axum::body::to_bytes(body, MAX_FORM_BYTES).await else {
                return (StatusCode::PAYLOAD_TOO_LARGE, "form: too large").into_response();
            };
            let header_token = parts
                .headers
                .get("x-csrf-token")
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned);
            let token = header_token.or_else(|| {
                url::form_urlencoded::parse(&bytes)
                    .find(|(k, _)| k == "csrf")
                    .map(|(_, v)| v.into_owned())
            });
            if !token.is_some_and(|t| csrf_matches(&session, &t)) {
                return csrf_refused();
            }
            request = Request::from_parts(parts, Body::from(bytes));
        }
    }
    request.extensions_mut().insert(session);
    next.run(request).await
}

/// Forms other than uploads are small.
const MAX_FORM_BYTES: usize = 64 * 1024;

fn csrf_refused() -> Response {
    (
        StatusCode::FORBIDDEN,
        "csrf: this action did not come from a console page; reload it and try again",
    )
        .into_response()
}

/// A browser names the page a change came from; one from elsewhere is not
/// taken (SameSite=Strict is the first fence, this the second).
fn same_origin(headers: &HeaderMap) -> bool {
    let text = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    // Sec-Fetch-Site, where the browser sends it, says it outright.
    if let Some(site) = text("sec-fetch-site") {
        return site == "same-origin";
    }
    let Some(origin) = text("origin") else {
        return true;
    };
    let host = text("host").unwrap_or_default();
    origin
        .split_once("://")
        .is_some_and(|(_, authority)| authority.eq_ignore_ascii_case(host))
}

/// What every console response carries: no script or style but our own
/// files, no framing, no referrer outside, nothing cached.
async fn security_headers(request: Request, next: Next) -> Response {
    let mut response = next.run(request).await;
    let headers = response.headers_mut();
    let set = |headers: &mut HeaderMap, name: header::HeaderName, value: &'static str| {
        headers.insert(name, HeaderValue::from_static(value));
    };
    set(
        headers,
        header::CONTENT_SECURITY_POLICY,
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; \
         connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
    );
    set(headers, header::X_FRAME_OPTIONS, "DENY");
    // `same-origin`: a link out carries no referrer, and a form posted here
    // still names its origin (with `no-referrer` it would say "null").
    set(headers, header::REFERRER_POLICY, "same-origin");
    set(headers, header::X_CONTENT_TYPE_OPTIONS, "nosniff");
    if !headers.contains_key(header::CACHE_CONTROL) {
        set(headers, header::CACHE_CONTROL, "no-store");
    }
    response
}

/// The console's own files, in the binary.
async fn asset(axum::extract::Path(file): axum::extract::Path<String>) -> Response {
    let (body, kind) = match file.as_str() {
        "console.css" => (
            include_str!("assets/console.css"),
            "text/css; charset=utf-8",
        ),
        "console.js" => (
            include_str!("assets/console.js"),
            "text/javascript; charset=utf-8",
        ),
        _ => return (StatusCode::NOT_FOUND, "no such asset").into_response(),
    };
    (
        [
            (header::CONTENT_TYPE, kind),
            (header::CACHE_CONTROL, "private, max-age=300"),
        ],
        body,
    )
        .into_response()
}

/// The start page: sign-in, or the pages this caller may use.
async fn home(State(c): State<Console>, headers: HeaderMap) -> Response {
    match c.sessions.of(&headers) {
        Some(session) => pages::page("Console", &session, pages::home(&session)).into_response(),
        None => pages::sign_in(None, c.auth.keyless()).into_response(),
    }
}

#[derive(Deserialize)]
struct SignIn {
    #[serde(default)]
    key: String,
}

/// `POST /console/sign-in`: the key (form field `key`) for a session.
async fn sign_in(
    State(c): State<Console>,
    headers: HeaderMap,
    axum::Form(form): axum::Form<SignIn>,
) -> Response {
    if !same_origin(&headers) {
        return (
            StatusCode::FORBIDDEN,
            "origin: sign in from the console's own page",
        )
            .into_response();
    }
    let key = form.key.trim();
    let mut asked = HeaderMap::new();
    if !key.is_empty() {
        let Ok(value) = HeaderValue::from_str(&format!("Bearer {key}")) else {
            return refused_sign_in(&c, "key: not an API key");
        };
        asked.insert(header::AUTHORIZATION, value);
    }
    let caller = match c.auth.identify_caller(&asked).await {
        Ok(caller) => caller,
        Err(status) => return refused_sign_in(&c, &format!("key: {}", status.message())),
    };
    let (token, _) = c
        .sessions
        .start((!key.is_empty()).then(|| key.to_owned()), caller);
    let secure = c.secure || forwarded_https(&headers);
    let mut response = Redirect::to("/console/").into_response();
    if let Ok(cookie) = HeaderValue::from_str(&c.sessions.set_cookie(Some(&token), secure)) {
        response.headers_mut().insert(header::SET_COOKIE, cookie);
    }
    response
}

fn refused_sign_in(c: &Console, why: &str) -> Response {
    (
        StatusCode::UNAUTHORIZED,
        pages::sign_in(Some(why), c.auth.keyless()),
    )
        .into_response()
}

fn forwarded_https(headers: &HeaderMap) -> bool {
    headers
        .get("x-forwarded-proto")
        .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"https"))
}

/// `POST /console/sign-out`: the session ends here and now.
async fn sign_out(State(c): State<Console>, headers: HeaderMap) -> Response {
    c.sessions.end(&headers);
    let mut response = Redirect::to("/console/").into_response();
    let clear = c
        .sessions
        .set_cookie(None, c.secure || forwarded_https(&headers));
    if let Ok(cookie) = HeaderValue::from_str(&clear) {
        response.headers_mut().insert(header::SET_COOKIE, cookie);
    }
    response
}

/// An API call refused or failed: its HTTP code and message.
pub(crate) struct Refusal {
    code: StatusCode,
    message: String,
}

impl Refusal {
    fn page(self, title: &str, session: &Session) -> Response {
        let body = pages::refusal(&self.message);
        (self.code, pages::page(title, session, body)).into_response()
    }
}

/// The most of an API answer the console reads whole (an access report's
/// page stays under 4 MiB; a job's results are passed on or read as they
/// come, never held).
const MAX_ANSWER_BYTES: usize = 32 << 20;

impl Console {
    /// Calls the JSON API as the session's caller and reads its answer.
    async fn call(
        &self,
        session: &Session,
        method: Method,
        path: &str,
        body: Body,
        content_type: &str,
    ) -> Result<(HeaderMap, Bytes), Refusal> {
        let (headers, body) = self
            .call_streamed(session, method, path, body, content_type)
            .await?;
        let bytes = axum::body::to_bytes(body, MAX_ANSWER_BYTES)
            .await
            .map_err(|e| Refusal {
                code: StatusCode::BAD_GATEWAY,
                message: e.to_string(),
            })?;
        Ok((headers, bytes))
    }

    /// Calls the JSON API as the session's caller; a successful answer's
    /// body is left to be read as it comes.
    async fn call_streamed(
        &self,
        session: &Session,
        method: Method,
        path: &str,
        body: Body,
        content_type: &str,
    ) -> Result<(HeaderMap, Body), Refusal> {
        use tower::ServiceExt;
        let mut request = Request::builder()
            .method(method)
            .uri(path)
            // The listener already decided the host; the API's own check
            // (keyless servers answer loopback names only) sees the same.
            .header(header::HOST, "localhost")
            .header(header::CONTENT_TYPE, content_type);
        if let Some(key) = &session.key {
            request = request.header(header::AUTHORIZATION, format!("Bearer {key}"));
        }
        let request = request.body(body).map_err(|e| Refusal {
            code: StatusCode::INTERNAL_SERVER_ERROR,
            message: e.to_string(),
        })?;
        let response = match self.api.clone().oneshot(request).await {
            Ok(response) => response,
            Err(never) => match never {},
        };
        let (parts, body) = response.into_parts();
        if parts.status.is_success() {
            return Ok((parts.headers, body));
        }
        let bytes = axum::body::to_bytes(body, MAX_ANSWER_BYTES)
            .await
            .unwrap_or_default();
        let message = serde_json::from_slice::<serde_json::Value>(&bytes)
            .ok()
            .and_then(|v| v["error"]["message"].as_str().map(str::to_owned))
            .unwrap_or_else(|| String::from_utf8_lossy(&bytes).into_owned());
        Err(Refusal {
            code: parts.status,
            message,
        })
    }

    /// Calls a JSON method and reads its answer as `T`.
    async fn json<T: serde::de::DeserializeOwned>(
        &self,
        session: &Session,
        path: &str,
        body: serde_json::Value,
    ) -> Result<T, Refusal> {
        let (_, bytes) = self
            .call(
                session,
                Method::POST,
                path,
                Body::from(body.to_string()),
                "application/json",
            )
            .await?;
        serde_json::from_slice(&bytes).map_err(|e| Refusal {
            code: StatusCode::BAD_GATEWAY,
            message: format!("the answer could not be read: {e}"),
        })
    }
}

/// A rendered page, as a response.
fn html(markup: Markup) -> Response {
    markup.into_response()
}
