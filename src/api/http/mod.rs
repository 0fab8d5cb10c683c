//! JSON over HTTP, for CRMs, iPaaS tools and scripts that do not speak gRPC.
//!
//! Each endpoint is the gRPC method of the same name, called in process
//! through the very stack the gRPC port serves (authentication, scopes,
//! quotas, admission, the service): the bodies are the proto messages'
//! canonical JSON, so a gRPC answer and an HTTP answer are one document,
//! and no rule can differ between the two doors. A refusal is the gRPC
//! status mapped to its HTTP code, with a JSON body in the google.rpc shape
//! (`error.code`, `error.status`, `error.message`, `error.details[]` with
//! `@type`, e.g. the BadRequest field violations naming the field).
mod body;
mod errors;

use std::sync::Arc;
use std::time::Duration;

use axum::Json;
use axum::Router;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use futures::future::BoxFuture;
use serde_json::json;
use tonic::Status;

pub use body::WholeBody;
pub use errors::{bad_field, error_response, error_response_as, parse};

use crate::proto::v1 as pb;
use pb::enrichment_client::EnrichmentClient;

/// The gRPC stack, as an in-process service (a transport error is a
/// `Status`: a concrete error type keeps the call futures `Send`).
pub type Stack = tower::util::BoxCloneSyncService<
    axum::http::Request<tonic::body::Body>,
    axum::http::Response<tonic::body::Body>,
    Status,
>;

/// Wraps a service of the gRPC server as a `Stack`.
pub fn stack<S>(service: S) -> Stack
where
    S: tower::Service<
            axum::http::Request<tonic::body::Body>,
            Response = axum::http::Response<tonic::body::Body>,
        > + Clone
        + Send
        + Sync
        + 'static,
    S::Future: Send + 'static,
    S::Error: Into<tower::BoxError>,
{
    use tower::ServiceExt;
    Stack::new(service.map_err(|e| Status::internal(e.into().to_string())))
}

type Health = tonic_health::pb::health_client::HealthClient<Stack>;

struct Gateway {
    enrichment: EnrichmentClient<Stack>,
    health: Health,
    timeout: Duration,
}

/// The routes, over `enrichment` (the guarded Enrichment stack) and
/// `health` (the health service), with `more` (batch jobs) beside them;
/// request bodies up to `max_body` bytes (unless a route of `more` sets its
/// own), each call up to `timeout`, each request body within `timeout` too.
/// `anonymous`: callers need no key (a loopback server only), so only
/// requests addressed to a loopback name are answered (see `loopback_host`).
pub fn router(
    enrichment: Stack,
    health: Stack,
    max_body: usize,
    timeout: Duration,
    more: Router,
    anonymous: bool,
) -> Router {
    let origin = axum::http::Uri::from_static("http://enrichd.in-process");
    let gateway = Arc::new(Gateway {
        enrichment: EnrichmentClient::with_origin(enrichment, origin.clone()),
        health: Health::with_origin(health, origin),
        timeout,
    });
    Router::new()
        .route(
            "/v1/enrich",
            unary(|mut c, r| Box::pin(async move { c.enrich(r).await })),
        )
        .route(
            "/v1/erase",
            unary(|mut c, r| Box::pin(async move { c.erase(r).await })),
        )
        .route(
            "/v1/access",
            unary(|mut c, r| Box::pin(async move { c.access(r).await })),
        )
        .route(
            "/v1/feedback",
            unary(|mut c, r| Box::pin(async move { c.feedback(r).await })),
        )
        .route("/v1/sources", get(sources))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/openapi.json", get(openapi))
        .with_state(gateway)
        .merge(more)
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(max_body))
        .layer(axum::middleware::from_fn(move |request, next| {
            body::body_deadline(timeout, request, next)
        }))
        .layer(axum::middleware::from_fn(move |request, next| {
            loopback_host(anonymous, request, next)
        }))
}

/// `api` (from [`router`]) with the web console nested at `/console/`,
/// behind the same host check and body deadline as the API.
pub fn with_console(api: Router, console: Router, anonymous: bool, timeout: Duration) -> Router {
    let console = console
        .layer(axum::middleware::from_fn(move |request, next| {
            body::body_deadline(timeout, request, next)
        }))
        .layer(axum::middleware::from_fn(move |request, next| {
            loopback_host(anonymous, request, next)
        }));
    console.fallback_service(api)
}

/// Without keys, a web page could otherwise call a loopback server: by DNS
/// rebinding, a name the page controls comes to point at 127.0.0.1, and the
/// browser then sends the page's requests here as same-origin ones. They
/// carry that name as their `Host`; requests to an anonymous server must
/// name a loopback host (`localhost`, `127.0.0.1`, `[::1]`, any port).
async fn loopback_host(
    anonymous: bool,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    if !anonymous {
        return next.run(request).await;
    }
    let host = request
        .headers()
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .map(str::to_owned)
        .or_else(|| request.uri().authority().map(|a| a.to_string()))
        .unwrap_or_default();
    let name = match host.rsplit_once(':') {
        Some((name, port)) if port.bytes().all(|b| b.is_ascii_digit()) => name,
        _ => host.as_str(),
    };
    let loopback = name.eq_ignore_ascii_case("localhost")
        || name
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback());
    if loopback {
        return next.run(request).await;
    }
    error_response_as(
        StatusCode::FORBIDDEN,
        &Status::permission_denied(
            "host: this server takes no API keys, so it answers requests addressed to a \
             loopback name only (localhost, 127.0.0.1, [::1])",
        ),
    )
}

/// One unary method of the Enrichment service, called with a client of the
/// guarded stack.
type Method<Req, Resp> = fn(
    EnrichmentClient<Stack>,
    tonic::Request<Req>,
) -> BoxFuture<'static, Result<tonic::Response<Resp>, Status>>;

/// `POST` of a unary method: its request message's JSON in, its answer's
/// JSON (or its status) out.
fn unary<Req, Resp>(method: Method<Req, Resp>) -> axum::routing::MethodRouter<Arc<Gateway>>
where
    Req: serde::de::DeserializeOwned + Send + 'static,
    Resp: serde::Serialize + Send + 'static,
{
    post(
        move |State(g): State<Arc<Gateway>>, headers: HeaderMap, WholeBody(body): WholeBody| async move {
            // A body says what it is: a browser's cross-site form or text
            // post (no preflight) is not read as JSON.
            if let Some(refused) = not_json(&headers, true) {
                return refused;
            }
            let client = g.enrichment.clone();
            call(&g, &headers, &body, |r| method(client, r)).await
        },
    )
}

async fn sources(State(g): State<Arc<Gateway>>, headers: HeaderMap) -> Response {
    let mut client = g.enrichment.clone();
    call(&g, &headers, b"{}", |r| {
        Box::pin(async move { client.list_sources(r).await })
    })
    .await
}

/// Alive: the process answers.
async fn healthz() -> Response {
    Json(json!({ "status": "SERVING" })).into_response()
}

/// Ready: the Enrichment service is serving (not draining, ledger writer
/// up); with replicas, whether Redis is shared right now.
async fn readyz(State(g): State<Arc<Gateway>>) -> Response {
    use tonic_health::pb::health_check_response::ServingStatus;
    let status = |service: &str| {
        let mut health = g.health.clone();
        let service = service.to_owned();
        async move {
            let asked = health
                .check(tonic_health::pb::HealthCheckRequest { service })
                .await;
            asked.map_or(0, |r| r.into_inner().status)
        }
    };
    let serving = status("enrichd.v1.Enrichment").await == ServingStatus::Serving as i32;
    let cluster = status(super::CLUSTER_HEALTH).await;
    let mut body = json!({ "status": if serving { "SERVING" } else { "NOT_SERVING" } });
    // Only a server with replicas registers the cluster's health.
    if cluster == ServingStatus::Serving as i32 {
        body["cluster"] = json!("SHARED");
    } else if cluster == ServingStatus::NotServing as i32 {
        body["cluster"] = json!("FALLBACK");
    }
    let code = if serving {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (code, Json(body)).into_response()
}

async fn openapi() -> Response {
    Json(super::openapi::document()).into_response()
}

async fn not_found() -> Response {
    error_response(&Status::not_found(
        "no such endpoint; see /openapi.json for the API",
    ))
}

/// A known endpoint asked with a method it does not take (axum adds the
/// `Allow` header).
async fn method_not_allowed(method: axum::http::Method) -> Response {
    let status = Status::unimplemented(format!(
        "this endpoint does not take {method}; see the Allow header, or /openapi.json"
    ));
    error_response_as(StatusCode::METHOD_NOT_ALLOWED, &status)
}

/// The request's media type, parsed (type and subtype lowercased, as
/// media types compare); `None` without a `content-type` or with one that
/// is not a media type.
pub(crate) fn media_type(headers: &HeaderMap) -> Option<mime::Mime> {
    headers
        .get(header::CONTENT_TYPE)?
        .to_str()
        .ok()?
        .parse()
        .ok()
}

/// The 415 for a `content-type` that is not JSON (`application/json` or
/// `application/…+json`, any case, any parameters), or is missing when
/// `required`; `None` when the body may be read as JSON.
fn not_json(headers: &HeaderMap, required: bool) -> Option<Response> {
    let json = match headers.get(header::CONTENT_TYPE) {
        Some(_) => media_type(headers).is_some_and(|m| {
            m.type_() == mime::APPLICATION
                && (m.subtype() == mime::JSON || m.suffix() == Some(mime::JSON))
        }),
        None => !required,
    };
    (!json).then(|| {
        error_response_as(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            &Status::invalid_argument("content-type: send application/json"),
        )
    })
}

/// Parses the body as the request message's JSON, calls the method with
/// the caller's credentials, and answers its JSON or its status.
async fn call<Req, Resp, F>(g: &Gateway, headers: &HeaderMap, body: &[u8], method: F) -> Response
where
    Req: serde::de::DeserializeOwned,
    Resp: serde::Serialize,
    F: FnOnce(
        tonic::Request<Req>,
    ) -> futures::future::BoxFuture<'static, Result<tonic::Response<Resp>, Status>>,
{
    if let Some(refused) = not_json(headers, false) {
        return refused;
    }
    let message: Req = match parse(body) {
        Ok(message) => message,
        Err(status) => return error_response(&status),
    };
    let mut request = tonic::Request::new(message);
    // Every value, as sent: the gRPC side refuses two credentials.
    for name in ["authorization", "x-caller"] {
        for value in headers.get_all(name) {
            if let Ok(value) = tonic::metadata::MetadataValue::try_from(value.as_bytes()) {
                request.metadata_mut().append(name, value);
            }
        }
    }
    match tokio::time::timeout(g.timeout, method(request)).await {
        Ok(Ok(answer)) => match serde_json::to_value(answer.get_ref()) {
            Ok(value) => Json(value).into_response(),
            Err(e) => error_response(&Status::internal(format!("answer not encodable: {e}"))),
        },
        Ok(Err(status)) => error_response(&status),
        Err(_) => error_response(&Status::deadline_exceeded(format!(
            "no answer within server.request_timeout ({})",
            humantime::format_duration(g.timeout)
        ))),
    }
}
