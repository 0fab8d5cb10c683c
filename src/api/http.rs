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
use std::sync::Arc;
use std::time::Duration;

use axum::Json;
use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::{Value, json};
use tonic::{Code, Status};
use tonic_types::StatusExt;

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

/// A job's webhook URL is stored with it: at most this long.
const MAX_WEBHOOK_CHARS: usize = 2048;

type Health = tonic_health::pb::health_client::HealthClient<Stack>;

struct Gateway {
    enrichment: EnrichmentClient<Stack>,
    health: Health,
    timeout: Duration,
    batches: Option<Batches>,
}

/// Batch jobs, and who may use them (the same callers and scopes as the
/// gRPC port: a job needs the `stream` scope).
#[derive(Clone)]
pub struct Batches {
    pub jobs: Arc<crate::batch::jobs::Jobs>,
    pub auth: Arc<crate::auth::layer::Authenticator>,
    pub max_upload: usize,
}

/// A request body that must arrive whole within `server.request_timeout` of
/// its headers: a client trickling its body a byte at a time would
/// otherwise hold its connection (and a slot of `max_connections`) forever.
struct BodyDeadline<B> {
    body: B,
    expires: std::pin::Pin<Box<tokio::time::Sleep>>,
    timeout: Duration,
}

impl<B> http_body::Body for BodyDeadline<B>
where
    B: http_body::Body<Data = Bytes> + Unpin,
    B::Error: Into<tower::BoxError>,
{
    type Data = Bytes;
    type Error = tower::BoxError;

    fn poll_frame(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<Bytes>, Self::Error>>> {
        use std::future::Future;
        use std::task::Poll;
        let this = self.get_mut();
        match std::pin::Pin::new(&mut this.body).poll_frame(cx) {
            Poll::Pending if this.expires.as_mut().poll(cx).is_ready() => {
                Poll::Ready(Some(Err(Box::new(BodyTimedOut(this.timeout)))))
            }
            Poll::Pending => Poll::Pending,
            Poll::Ready(frame) => Poll::Ready(frame.map(|f| f.map_err(Into::into))),
        }
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.body.size_hint()
    }
}

/// A request body still incomplete at its deadline.
#[derive(Debug, thiserror::Error)]
#[error("the request body did not arrive within server.request_timeout ({})", humantime::format_duration(*.0))]
struct BodyTimedOut(Duration);

/// The request's body, whole; a body that is too large, fails or does not
/// arrive in time is refused with the JSON error of every other refusal.
struct WholeBody(Bytes);

impl<S: Send + Sync> axum::extract::FromRequest<S> for WholeBody {
    type Rejection = Response;

    async fn from_request(request: axum::extract::Request, state: &S) -> Result<Self, Response> {
        match Bytes::from_request(request, state).await {
            Ok(bytes) => Ok(WholeBody(bytes)),
            Err(rejection) => Err(body_refused(&rejection)),
        }
    }
}

fn body_refused(rejection: &axum::extract::rejection::BytesRejection) -> Response {
    let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(rejection);
    while let Some(e) = cause {
        if let Some(late) = e.downcast_ref::<BodyTimedOut>() {
            let late = Status::deadline_exceeded(late.to_string());
            return error_response_as(StatusCode::REQUEST_TIMEOUT, &late);
        }
        cause = e.source();
    }
    let status = if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
        Status::invalid_argument(
            "body: larger than this endpoint takes (server.max_request_bytes, or batch.max_upload_bytes for a batch)",
        )
    } else {
        Status::invalid_argument(format!(
            "body: could not be read ({})",
            rejection.body_text()
        ))
    };
    error_response_as(rejection.status(), &status)
}

/// Gives each request's body `timeout` to arrive (see `BodyDeadline`).
async fn body_deadline(
    timeout: Duration,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    // A request without a body (a GET) needs no timer.
    if http_body::Body::is_end_stream(request.body()) {
        return next.run(request).await;
    }
    let request = request.map(|body| {
        axum::body::Body::new(BodyDeadline {
            body,
            expires: Box::pin(tokio::time::sleep(timeout)),
            timeout,
        })
    });
    next.run(request).await
}

/// The routes, over `enrichment` (the guarded Enrichment stack) and
/// `health` (the health service); request bodies up to `max_body` bytes,
/// each call up to `timeout`, each request body within `timeout` too.
pub fn router(
    enrichment: Stack,
    health: Stack,
    max_body: usize,
    timeout: Duration,
    batches: Option<Batches>,
) -> Router {
    let origin = axum::http::Uri::from_static("http://enrichd.in-process");
    let upload = batches
        .as_ref()
        .map_or(max_body, |b| b.max_upload.max(max_body));
    let gateway = Arc::new(Gateway {
        enrichment: EnrichmentClient::with_origin(enrichment, origin.clone()),
        health: Health::with_origin(health, origin),
        timeout,
        batches,
    });
    Router::new()
        .route(
            "/v1/batches",
            post(submit_batch).layer(DefaultBodyLimit::max(upload)),
        )
        .route("/v1/batches/{id}", get(batch_status))
        .route("/v1/batches/{id}/results", get(batch_results))
        .route("/v1/enrich", post(enrich))
        .route("/v1/erase", post(erase))
        .route("/v1/access", post(access))
        .route("/v1/sources", get(sources))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/openapi.json", get(openapi))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(max_body))
        .layer(axum::middleware::from_fn(move |request, next| {
            body_deadline(timeout, request, next)
        }))
        .with_state(gateway)
}

async fn enrich(
    State(g): State<Arc<Gateway>>,
    headers: HeaderMap,
    WholeBody(body): WholeBody,
) -> Response {
    let mut client = g.enrichment.clone();
    call(&g, &headers, &body, |r| {
        Box::pin(async move { client.enrich(r).await })
    })
    .await
}

async fn erase(
    State(g): State<Arc<Gateway>>,
    headers: HeaderMap,
    WholeBody(body): WholeBody,
) -> Response {
    let mut client = g.enrichment.clone();
    call(&g, &headers, &body, |r| {
        Box::pin(async move { client.erase(r).await })
    })
    .await
}

async fn access(
    State(g): State<Arc<Gateway>>,
    headers: HeaderMap,
    WholeBody(body): WholeBody,
) -> Response {
    let mut client = g.enrichment.clone();
    call(&g, &headers, &body, |r| {
        Box::pin(async move { client.access(r).await })
    })
    .await
}

async fn sources(State(g): State<Arc<Gateway>>, headers: HeaderMap) -> Response {
    let mut client = g.enrichment.clone();
    call(&g, &headers, b"{}", |r| {
        Box::pin(async move { client.list_sources(r).await })
    })
    .await
}

/// The caller of a batch endpoint, or the refusal to send.
async fn batch_caller(
    g: &Gateway,
    headers: &HeaderMap,
) -> Result<(Batches, crate::auth::Caller), Response> {
    let Some(batches) = g.batches.clone() else {
        return Err(error_response(&Status::unimplemented(
            "batch jobs are not served here",
        )));
    };
    match batches
        .auth
        .admit("EnrichStream", headers, &axum::http::Extensions::new())
        .await
    {
        Ok(caller) => Ok((batches, caller)),
        Err(status) => Err(error_response(&status)),
    }
}

/// `POST /v1/batches`: the list is the body (CSV with a header row, or
/// NDJSON); the claim is in the query string, named as in the EnrichRequest
/// JSON (`purpose`, `lawfulBasis`, `evidence.legitimateInterestAssessmentRef`,
/// `options.view`, ...), with `webhookUrl`, `emailColumn`, `phoneColumn`.
async fn submit_batch(
    State(g): State<Arc<Gateway>>,
    headers: HeaderMap,
    axum::extract::RawQuery(query): axum::extract::RawQuery,
    WholeBody(body): WholeBody,
) -> Response {
    let (batches, caller) = match batch_caller(&g, &headers).await {
        Ok(found) => found,
        Err(refused) => return refused,
    };
    let kind = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    let format = match kind.as_str() {
        "text/csv" => crate::batch::Format::Csv,
        "application/x-ndjson" | "application/jsonl" | "application/ndjson" => {
            crate::batch::Format::Jsonl
        }
        _ => {
            return error_response_as(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                &Status::invalid_argument(
                    "content-type: send the list as text/csv (with a header row) or application/x-ndjson",
                ),
            );
        }
    };
    let mut claim = serde_json::Map::new();
    let mut columns = crate::batch::Columns::default();
    let mut webhook = None;
    for (key, value) in url::form_urlencoded::parse(query.unwrap_or_default().as_bytes()) {
        match key.as_ref() {
            "webhookUrl" => webhook = Some(value.into_owned()),
            "emailColumn" => columns.email = Some(value.into_owned()),
            "phoneColumn" => columns.phone = Some(value.into_owned()),
            "requestId" | "email" | "phone" | "identifier" => {
                return error_response(&bad_field(
                    key.as_ref(),
                    "is set per row from the list, not for the job",
                ));
            }
            _ => set_dotted(&mut claim, &key, &value),
        }
    }
    let template: pb::EnrichRequest = match parse(Value::Object(claim).to_string().as_bytes()) {
        Ok(template) => template,
        Err(status) => return error_response(&status),
    };
    if webhook
        .as_ref()
        .is_some_and(|w| w.chars().count() > MAX_WEBHOOK_CHARS)
    {
        return error_response(&bad_field(
            "webhookUrl",
            &format!("is longer than {MAX_WEBHOOK_CHARS} characters"),
        ));
    }
    let webhook_url = match webhook
        .filter(|w| !w.is_empty())
        .map(|w| url::Url::parse(&w))
    {
        None => None,
        Some(Ok(url)) if matches!(url.scheme(), "http" | "https") && url.host().is_some() => {
            Some(url)
        }
        Some(_) => {
            return error_response(&bad_field(
                "webhookUrl",
                "is not an absolute http:// or https:// URL",
            ));
        }
    };
    if let Some(why) = webhook_url
        .as_ref()
        .and_then(|u| batches.jobs.webhook_refused(u))
    {
        return error_response(&bad_field("webhookUrl", &why));
    }
    let choose = "the emailColumn or phoneColumn query parameter";
    let rows = match crate::batch::read_rows_from(body.as_ref(), "body", format, &columns, choose) {
        Ok(rows) => rows,
        Err(e) => {
            // The reader names its input ("body: ..."); the field says it.
            let why = e.to_string();
            let why = why.strip_prefix("body: ").unwrap_or(&why);
            return error_response(&bad_field("body", why));
        }
    };
    let submission = crate::batch::jobs::Submission {
        caller,
        template,
        rows,
        webhook_url,
    };
    match batches.jobs.submit(submission).await {
        Ok(view) => (StatusCode::ACCEPTED, Json(view)).into_response(),
        Err(status) => error_response(&status),
    }
}

/// `GET /v1/batches/{id}`: state, progress and counts.
async fn batch_status(
    State(g): State<Arc<Gateway>>,
    headers: HeaderMap,
    axum::extract::Path(id): axum::extract::Path<String>,
) -> Response {
    batch_read(&g, &headers, &id, false).await
}

/// `GET /v1/batches/{id}/results`: the answered rows as NDJSON.
/// With `?format=csv`, the summary columns as CSV (a spreadsheet's view).
async fn batch_results(
    State(g): State<Arc<Gateway>>,
    headers: HeaderMap,
    axum::extract::Path(id): axum::extract::Path<String>,
    axum::extract::RawQuery(query): axum::extract::RawQuery,
) -> Response {
    let csv = url::form_urlencoded::parse(query.unwrap_or_default().as_bytes())
        .any(|(k, v)| k == "format" && v == "csv");
    if !csv {
        return batch_read(&g, &headers, &id, true).await;
    }
    let (batches, caller) = match batch_caller(&g, &headers).await {
        Ok(found) => found,
        Err(refused) => return refused,
    };
    match batches.jobs.results_table(&caller, &id).await {
        Ok(table) => (
            [(header::CONTENT_TYPE, "text/csv; charset=utf-8")],
            axum::body::Body::from_stream(table),
        )
            .into_response(),
        Err(status) => error_response(&status),
    }
}

/// A job's view, or its results, for its owner.
async fn batch_read(g: &Gateway, headers: &HeaderMap, id: &str, results: bool) -> Response {
    let (batches, caller) = match batch_caller(g, headers).await {
        Ok(found) => found,
        Err(refused) => return refused,
    };
    let answer = if results {
        batches.jobs.results(&caller, id).await.map(|lines| {
            (
                [(header::CONTENT_TYPE, "application/x-ndjson")],
                axum::body::Body::from_stream(lines),
            )
                .into_response()
        })
    } else {
        batches
            .jobs
            .status(&caller, id)
            .await
            .map(|view| Json(view).into_response())
    };
    answer.unwrap_or_else(|status| error_response(&status))
}

/// Puts `value` at the dotted `key` of a JSON object ("evidence.consentRef");
/// `true`, `false` and numbers become JSON's.
fn set_dotted(object: &mut serde_json::Map<String, Value>, key: &str, value: &str) {
    let mut node = object;
    let mut parts = key.split('.').peekable();
    while let Some(part) = parts.next() {
        if parts.peek().is_none() {
            let value = match value {
                "true" => Value::Bool(true),
                "false" => Value::Bool(false),
                v => v
                    .parse::<i64>()
                    .map(Value::from)
                    .unwrap_or_else(|_| Value::String(v.to_owned())),
            };
            node.insert(part.to_owned(), value);
            return;
        }
        let next = node
            .entry(part.to_owned())
            .or_insert_with(|| Value::Object(Default::default()));
        if !next.is_object() {
            *next = Value::Object(Default::default());
        }
        let Value::Object(inner) = next else { return };
        node = inner;
    }
}

fn bad_field(field: &str, why: &str) -> Status {
    Status::with_error_details(
        Code::InvalidArgument,
        format!("{field}: {why}"),
        tonic_types::ErrorDetails::with_bad_request_violation(field, why),
    )
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
    let cluster = status(crate::server::CLUSTER_HEALTH).await;
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
    if let Some(kind) = headers.get(header::CONTENT_TYPE)
        && !kind
            .to_str()
            .is_ok_and(|k| k.trim_start().starts_with("application/json"))
    {
        return error_response_as(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            &Status::invalid_argument("content-type: send application/json"),
        );
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

/// The request message from its JSON; a bad body names the field.
fn parse<Req: serde::de::DeserializeOwned>(body: &[u8]) -> Result<Req, Status> {
    let body = if body.iter().all(u8::is_ascii_whitespace) {
        b"{}".as_slice()
    } else {
        body
    };
    let mut de = serde_json::Deserializer::from_slice(body);
    let message = serde_path_to_error::deserialize(&mut de).map_err(|e| {
        let path = e.path().to_string();
        let why = e.into_inner().to_string();
        // The identifier is a oneof: a second one reads as a duplicate.
        for field in ["email", "phone"] {
            if why.starts_with(&format!("duplicate field `{field}`")) {
                let why = "give one identifier, once: either email or phone";
                return bad_field(field, why);
            }
        }
        let field = if path == "." || path.is_empty() {
            "body".to_owned()
        } else {
            path
        };
        bad_field(&field, &why)
    })?;
    de.end().map_err(|e| bad_field("body", &e.to_string()))?;
    Ok(message)
}

/// The HTTP code of a gRPC status (as Google's APIs map them).
fn http_code(code: Code) -> StatusCode {
    match code {
        Code::Ok => StatusCode::OK,
        Code::InvalidArgument | Code::FailedPrecondition | Code::OutOfRange => {
            StatusCode::BAD_REQUEST
        }
        Code::Unauthenticated => StatusCode::UNAUTHORIZED,
        Code::PermissionDenied => StatusCode::FORBIDDEN,
        Code::NotFound => StatusCode::NOT_FOUND,
        Code::AlreadyExists | Code::Aborted => StatusCode::CONFLICT,
        Code::ResourceExhausted => StatusCode::TOO_MANY_REQUESTS,
        Code::Cancelled => StatusCode::from_u16(499).unwrap_or(StatusCode::BAD_REQUEST),
        Code::Unimplemented => StatusCode::NOT_IMPLEMENTED,
        Code::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
        Code::DeadlineExceeded => StatusCode::GATEWAY_TIMEOUT,
        Code::Unknown | Code::Internal | Code::DataLoss => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

/// The google.rpc status name of a code (`INVALID_ARGUMENT`).
fn status_name(code: Code) -> String {
    let mut name = String::new();
    for (i, c) in format!("{code:?}").chars().enumerate() {
        if c.is_uppercase() && i > 0 {
            name.push('_');
        }
        name.push(c.to_ascii_uppercase());
    }
    name
}

/// A refusal: the HTTP code, and the status with its details as JSON.
pub fn error_response(status: &Status) -> Response {
    error_response_as(http_code(status.code()), status)
}

/// A refusal whose HTTP code is more precise than its gRPC code's (413,
/// 415, 408, 405); the body's `code` is the HTTP code, as on every refusal.
fn error_response_as(code: StatusCode, status: &Status) -> Response {
    let details = status.get_error_details();
    let mut out = Vec::new();
    if let Some(bad) = details.bad_request() {
        let violations: Vec<Value> = bad
            .field_violations
            .iter()
            .map(|v| json!({ "field": v.field, "description": v.description }))
            .collect();
        out.push(json!({
            "@type": "type.googleapis.com/google.rpc.BadRequest",
            "fieldViolations": violations,
        }));
    }
    if let Some(pre) = details.precondition_failure() {
        let violations: Vec<Value> = pre
            .violations
            .iter()
            .map(
                |v| json!({ "type": v.r#type, "subject": v.subject, "description": v.description }),
            )
            .collect();
        out.push(json!({
            "@type": "type.googleapis.com/google.rpc.PreconditionFailure",
            "violations": violations,
        }));
    }
    let delay = details.retry_info().and_then(|r| r.retry_delay);
    if let Some(delay) = delay {
        out.push(json!({
            "@type": "type.googleapis.com/google.rpc.RetryInfo",
            "retryDelay": format!("{}s", delay.as_secs_f64()),
        }));
    }
    let mut response = (
        code,
        Json(json!({ "error": {
            "code": code.as_u16(),
            "status": status_name(status.code()),
            "message": status.message(),
            "details": out,
        }})),
    )
        .into_response();
    if let Some(delay) = delay
        && let Ok(value) = axum::http::HeaderValue::from_str(
            &(delay.as_secs_f64().ceil().max(1.0) as u64).to_string(),
        )
    {
        response.headers_mut().insert(header::RETRY_AFTER, value);
    }
    response
}
