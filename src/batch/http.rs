//! Batch jobs over HTTP: a list uploaded as a job, its progress, its
//! results (NDJSON or CSV), for systems that cannot hold a stream open.
use std::sync::Arc;

use axum::Json;
use axum::Router;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::Value;
use tonic::Status;

use crate::api::http::{WholeBody, bad_field, error_response, error_response_as, parse};
use crate::proto::v1 as pb;

/// A job's webhook URL is stored with it: at most this long.
const MAX_WEBHOOK_CHARS: usize = 2048;

/// Batch jobs, and who may use them (the same callers and scopes as the
/// gRPC port: a job needs the `stream` scope).
#[derive(Clone)]
pub struct Batches {
    pub jobs: Arc<super::jobs::Jobs>,
    pub auth: Arc<crate::auth::layer::Authenticator>,
    pub max_upload: usize,
    /// A place in the server's pool of calls (`server.max_concurrent_*`),
    /// held while a batch request is read and answered.
    pub admit: Admit,
}

/// Takes a place in the server's pool for a caller, or the status that
/// sheds the request; the place is given back when the box is dropped.
pub type Admit = Arc<
    dyn Fn(&crate::auth::Caller) -> Result<Box<dyn std::any::Any + Send + Sync>, Status>
        + Send
        + Sync,
>;

/// A place in the pool, kept until the response body is dropped.
type Held = Box<dyn std::any::Any + Send + Sync>;

/// `body`, holding `held` until it is done.
fn holding<S, T>(body: S, held: Held) -> impl futures::Stream<Item = T> + Send + 'static
where
    S: futures::Stream<Item = T> + Send + 'static,
{
    futures::StreamExt::map(body, move |item| {
        let _ = &held;
        item
    })
}

impl Batches {
    /// `POST /v1/batches` (bodies up to `max_upload`), `GET
    /// /v1/batches/{id}` and `GET /v1/batches/{id}/results`, for the HTTP
    /// gateway to serve beside the API (its body deadline and error shape
    /// apply to them too).
    pub fn router(self) -> Router {
        let upload = self.max_upload;
        Router::new()
            .route(
                "/v1/batches",
                post(submit_batch)
                    .layer(DefaultBodyLimit::max(upload))
                    .get(list_batches),
            )
            .route("/v1/batches/{id}", get(batch_status).delete(cancel_batch))
            .route("/v1/batches/{id}/webhook", post(redeliver_webhook))
            .route("/v1/batches/{id}/results", get(batch_results))
            .route("/v1/batches/{id}/audience", get(batch_audience))
            .route("/v1/batches/{id}/audience/members", get(batch_members))
            .with_state(self)
    }
}

/// The caller of a batch endpoint with its place in the pool, or the
/// refusal to send.
async fn batch_caller(
    b: &Batches,
    headers: &HeaderMap,
) -> Result<(crate::auth::Caller, Held), Response> {
    let caller = b
        .auth
        .admit("EnrichStream", headers, &axum::http::Extensions::new())
        .await
        .map_err(|status| error_response(&status))?;
    let held = (b.admit)(&caller).map_err(|status| error_response(&status))?;
    Ok((caller, held))
}

/// `POST /v1/batches`: the list is the body (CSV with a header row, or
/// NDJSON); the claim is in the query string, named as in the EnrichRequest
/// JSON (`purpose`, `lawfulBasis`, `evidence.legitimateInterestAssessmentRef`,
/// `options.view`, ...), with `webhookUrl`, `emailColumn`, `phoneColumn`.
async fn submit_batch(
    State(batches): State<Batches>,
    headers: HeaderMap,
    axum::extract::RawQuery(query): axum::extract::RawQuery,
    upload: axum::extract::Request,
) -> Response {
    // Who calls is decided before a byte of the list is read: an upload
    // without a key costs its connection nothing but its headers.
    let (caller, _held) = match batch_caller(&batches, &headers).await {
        Ok(admitted) => admitted,
        Err(refused) => return refused,
    };
    let kind = crate::api::http::media_type(&headers);
    let format = match kind.as_ref().map_or("", |m| m.essence_str()) {
        "text/csv" => super::Format::Csv,
        "application/x-ndjson" | "application/jsonl" | "application/ndjson" => super::Format::Jsonl,
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
    let mut columns = super::Columns::default();
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
    // Read and stored one of `batch.max_concurrent_uploads` at a time
    // (a 100,000-row list holds about 110 MB while it is).
    let Ok(_uploading) = batches.jobs.uploads.clone().try_acquire_owned() else {
        return error_response(&Status::resource_exhausted(
            "as many lists as batch.max_concurrent_uploads are being read and stored: \
             send this one again when one of them is",
        ));
    };
    let body = match <WholeBody as axum::extract::FromRequest<()>>::from_request(upload, &()).await
    {
        Ok(WholeBody(body)) => body,
        Err(refused) => return refused,
    };
    let rows = match prepared(&batches, &body, format, &columns, &caller, &template) {
        Ok(rows) => rows,
        Err(status) => return error_response(&status),
    };
    let submission = super::jobs::Submission {
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

/// An uploaded list's rows, made ready to store as they are read (the
/// list is counted first: one too long is refused before any row is
/// read), once the claim holds.
fn prepared(
    batches: &Batches,
    body: &[u8],
    format: super::Format,
    columns: &super::Columns,
    caller: &crate::auth::Caller,
    template: &pb::EnrichRequest,
) -> Result<super::jobs::Prepared, Status> {
    let max = batches.jobs.max_rows();
    let choose = "the emailColumn or phoneColumn query parameter";
    let rows = super::rows::refuse_more_than(body, "body", format, max)
        .and_then(|()| super::RowReader::new(body, "body", format, columns, choose, Some(max)))
        .map_err(|e| {
            // The reader names its input ("body: ..."); the field says it.
            let why = e.to_string();
            bad_field("body", why.strip_prefix("body: ").unwrap_or(&why))
        })?;
    batches.jobs.prepare(caller, template, rows)
}

/// `GET /v1/batches`: the caller's own jobs, newest first, a page at a
/// time (`pageSize`, `pageToken`).
async fn list_batches(
    State(batches): State<Batches>,
    headers: HeaderMap,
    axum::extract::RawQuery(query): axum::extract::RawQuery,
) -> Response {
    let (caller, _held) = match batch_caller(&batches, &headers).await {
        Ok(admitted) => admitted,
        Err(refused) => return refused,
    };
    let (mut size, mut token) = (None, None);
    for (key, value) in url::form_urlencoded::parse(query.unwrap_or_default().as_bytes()) {
        match key.as_ref() {
            "pageSize" => match value.parse::<i64>() {
                Ok(n) => size = Some(n),
                Err(_) => return error_response(&bad_field("pageSize", "is not a number")),
            },
            "pageToken" => token = Some(value.into_owned()),
            _ => {}
        }
    }
    match batches.jobs.list(&caller, size, token.as_deref()).await {
        Ok(page) => Json(page).into_response(),
        Err(status) => error_response(&status),
    }
}

/// `DELETE /v1/batches/{id}`: cancels a running job.
async fn cancel_batch(
    State(batches): State<Batches>,
    headers: HeaderMap,
    axum::extract::Path(id): axum::extract::Path<String>,
) -> Response {
    manage(&batches, &headers, &id, Manage::Cancel).await
}

/// `POST /v1/batches/{id}/webhook`: delivers an ended job's webhook again.
async fn redeliver_webhook(
    State(batches): State<Batches>,
    headers: HeaderMap,
    axum::extract::Path(id): axum::extract::Path<String>,
) -> Response {
    manage(&batches, &headers, &id, Manage::Redeliver).await
}

/// What an owner does to a job.
enum Manage {
    Cancel,
    Redeliver,
}

/// The owner's action on a job, answered with the job's view.
async fn manage(batches: &Batches, headers: &HeaderMap, id: &str, action: Manage) -> Response {
    let (caller, _held) = match batch_caller(batches, headers).await {
        Ok(admitted) => admitted,
        Err(refused) => return refused,
    };
    let (done, code) = match action {
        Manage::Cancel => (batches.jobs.cancel_job(&caller, id).await, StatusCode::OK),
        Manage::Redeliver => (
            batches.jobs.redeliver(&caller, id).await,
            StatusCode::ACCEPTED,
        ),
    };
    match done {
        Ok(view) => (code, Json(view)).into_response(),
        Err(status) => error_response(&status),
    }
}

/// `GET /v1/batches/{id}`: state, progress and counts.
async fn batch_status(
    State(batches): State<Batches>,
    headers: HeaderMap,
    axum::extract::Path(id): axum::extract::Path<String>,
) -> Response {
    let (caller, _held) = match batch_caller(&batches, &headers).await {
        Ok(admitted) => admitted,
        Err(refused) => return refused,
    };
    match batches.jobs.status(&caller, &id).await {
        Ok(view) => Json(view).into_response(),
        Err(status) => error_response(&status),
    }
}

/// `GET /v1/batches/{id}/results`: the answered rows as NDJSON.
/// With `?format=csv`, the summary columns as CSV (a spreadsheet's view),
/// its fields separated by `delimiter` (`comma`, the default, `semicolon`
/// or `tab`), with a byte-order mark first for `bom=true` (for Excel).
/// Either holds the rows after row `after`, of one `outcome`, at most
/// `limit` of them, when asked.
async fn batch_results(
    State(batches): State<Batches>,
    headers: HeaderMap,
    axum::extract::Path(id): axum::extract::Path<String>,
    axum::extract::RawQuery(query): axum::extract::RawQuery,
) -> Response {
    // Who calls is decided before the query is read.
    let (caller, held) = match batch_caller(&batches, &headers).await {
        Ok(admitted) => admitted,
        Err(refused) => return refused,
    };
    let (mut csv, mut dialect) = (false, crate::batch::table::Dialect::default());
    let mut selection = crate::batch::jobs::Selection::default();
    for (key, value) in url::form_urlencoded::parse(query.unwrap_or_default().as_bytes()) {
        match &*key {
            "format" => match &*value {
                "csv" => csv = true,
                "ndjson" => csv = false,
                _ => return error_response(&bad_field("format", "is csv or ndjson")),
            },
            "delimiter" => match crate::batch::table::delimiter_named(&value) {
                Some(d) => dialect.delimiter = d,
                None => {
                    return error_response(&bad_field("delimiter", "is comma, semicolon or tab"));
                }
            },
            "bom" => match &*value {
                "true" => dialect.bom = true,
                "false" => dialect.bom = false,
                _ => return error_response(&bad_field("bom", "is true or false")),
            },
            "outcome" => match crate::batch::jobs::outcome_named(&value) {
                Some(named) => selection.outcome = Some(named.to_owned()),
                None => {
                    let named = crate::batch::jobs::OUTCOMES.join(", ");
                    return error_response(&bad_field("outcome", &format!("is one of {named}")));
                }
            },
            "after" => match value.parse::<i64>() {
                Ok(row) if row >= 0 => selection.after = row,
                _ => return error_response(&bad_field("after", "is a row number (0 or more)")),
            },
            "limit" => match value.parse::<i64>() {
                Ok(n) if n >= 1 => selection.limit = Some(n),
                _ => return error_response(&bad_field("limit", "is a number of rows (1 or more)")),
            },
            _ => {}
        }
    }
    let (kind, rows) = if csv {
        let table = batches
            .jobs
            .results_table(&caller, &id, dialect, selection)
            .await;
        (
            "text/csv; charset=utf-8",
            table.map(futures::StreamExt::boxed),
        )
    } else {
        let lines = batches.jobs.results(&caller, &id, selection).await;
        ("application/x-ndjson", lines.map(futures::StreamExt::boxed))
    };
    match rows {
        Ok(rows) => (
            [(header::CONTENT_TYPE, kind)],
            axum::body::Body::from_stream(holding(rows, held)),
        )
            .into_response(),
        Err(status) => error_response(&status),
    }
}

/// `GET /v1/batches/{id}/audience`: the job's audience report.
async fn batch_audience(
    State(batches): State<Batches>,
    headers: HeaderMap,
    axum::extract::Path(id): axum::extract::Path<String>,
) -> Response {
    let (caller, _held) = match batch_caller(&batches, &headers).await {
        Ok(admitted) => admitted,
        Err(refused) => return refused,
    };
    match batches.jobs.audience_json(&caller, &id).await {
        Ok(report) => Json(report).into_response(),
        Err(status) => error_response(&status),
    }
}

/// `GET /v1/batches/{id}/audience/members`: each row's segment, as NDJSON.
async fn batch_members(
    State(batches): State<Batches>,
    headers: HeaderMap,
    axum::extract::Path(id): axum::extract::Path<String>,
) -> Response {
    let (caller, _held) = match batch_caller(&batches, &headers).await {
        Ok(admitted) => admitted,
        Err(refused) => return refused,
    };
    match batches.jobs.audience_members(&caller, &id).await {
        Ok(lines) => ([(header::CONTENT_TYPE, "application/x-ndjson")], lines).into_response(),
        Err(status) => error_response(&status),
    }
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
