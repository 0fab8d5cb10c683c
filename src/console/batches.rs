//! Batches: upload a list with its purpose and basis, watch it run (the
//! page polls its progress), see the results as the summary table with a
//! filter, download them as CSV or NDJSON, cancel.
use std::sync::Arc;

use axum::Extension;
use axum::body::Body;
use axum::extract::{Multipart, Path, Query, State};
use axum::http::{Method, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use maud::{Markup, html};
use serde::Deserialize;
use serde_json::Value;

use super::pages;
use super::session::{Session, csrf_matches};
use super::{Console, Refusal, html as respond};
use crate::batch::jobs::{OUTCOMES, outcome_named};

/// Rows shown on a job's page (the download has them all).
const SHOWN_ROWS: usize = 500;

fn upload_form(c: &Console, s: &Session) -> Markup {
    html! {
        form.upload method="post" action="/console/batches" enctype="multipart/form-data" {
            h2 { "Upload a list" }
            // First: the token is checked before the list is read.
            (pages::csrf(s))
            div.row {
                div { (pages::purpose_select(s, &c.purposes, "")) }
                div { (pages::basis_fields("")) }
            }
            label for="list" { "List (CSV with a header row and an email or phone column, or NDJSON)" }
            input #list type="file" name="list" required accept=".csv,.jsonl,.ndjson,text/csv";
            button type="submit" { "Start" }
        }
    }
}

/// `GET /console/batches`: the caller's jobs and the upload form.
pub async fn list(State(c): State<Console>, Extension(s): Extension<Arc<Session>>) -> Response {
    let jobs = match c
        .call(
            &s,
            Method::GET,
            "/v1/batches",
            Body::empty(),
            "application/json",
        )
        .await
    {
        Ok((_, bytes)) => serde_json::from_slice::<Value>(&bytes).unwrap_or(Value::Null),
        Err(refused) => return refused.page("Batches", &s),
    };
    let body = html! {
        (upload_form(&c, &s))
        h2 { "Your jobs" }
        table #jobs {
            thead { tr { th scope="col" { "Job" } th scope="col" { "State" } th scope="col" { "Rows" } th scope="col" { "Created" } } }
            tbody {
                @for j in jobs["jobs"].as_array().into_iter().flatten() {
                    tr {
                        td { a href=(format!("/console/batches/{}", j["id"].as_str().unwrap_or_default())) { (j["id"].as_str().unwrap_or_default()) } }
                        td { (j["state"].as_str().unwrap_or_default()) }
                        td { (j["rowsDone"]) " / " (j["rowsTotal"]) }
                        td { (j["createdAt"].as_str().unwrap_or_default()) }
                    }
                }
            }
        }
    };
    respond(pages::page("Batches", &s, body))
}

/// `POST /console/batches` (multipart): the list becomes a job.
pub async fn upload(
    State(c): State<Console>,
    Extension(s): Extension<Arc<Session>>,
    mut form: Multipart,
) -> Response {
    let mut fields = std::collections::BTreeMap::new();
    let mut list: Option<(String, axum::body::Bytes)> = None;
    let mut first = true;
    loop {
        let field = match form.next_field().await {
            Ok(Some(field)) => field,
            Ok(None) => break,
            Err(e) => return (StatusCode::BAD_REQUEST, format!("form: {e}")).into_response(),
        };
        let name = field.name().unwrap_or_default().to_owned();
        if first {
            first = false;
            let token = if name == "csrf" {
                field.text().await.unwrap_or_default()
            } else {
                String::new()
            };
            if !csrf_matches(&s, &token) {
                return super::csrf_refused();
            }
            continue;
        }
        if name == "list" {
            let file = field.file_name().unwrap_or_default().to_ascii_lowercase();
            match field.bytes().await {
                Ok(bytes) => list = Some((file, bytes)),
                Err(e) => {
                    return (StatusCode::PAYLOAD_TOO_LARGE, format!("list: {e}")).into_response();
                }
            }
        } else if let Ok(text) = field.text().await {
            fields.insert(name, text);
        }
    }
    let Some((file, bytes)) = list else {
        return Refusal {
            code: StatusCode::BAD_REQUEST,
            message: "list: choose a file to upload".to_owned(),
        }
        .page("Batches", &s);
    };
    let get = |k: &str| fields.get(k).map(String::as_str).unwrap_or_default();
    let claim = pages::claim(get("purpose"), get("basis"), get("reference").trim());
    // Finished before the call: the serializer is not `Send`.
    let query = {
        let mut query = url::form_urlencoded::Serializer::new(String::new());
        query.append_pair("purpose", get("purpose"));
        query.append_pair(
            "lawfulBasis",
            claim["lawfulBasis"].as_str().unwrap_or_default(),
        );
        if let Some((name, value)) = claim["evidence"].as_object().and_then(|e| e.iter().next()) {
            query.append_pair(
                &format!("evidence.{name}"),
                value.as_str().unwrap_or_default(),
            );
        }
        query.append_pair("options.view", "VIEW_SUMMARY");
        query.finish()
    };
    let kind = if file.ends_with(".jsonl") || file.ends_with(".ndjson") {
        "application/x-ndjson"
    } else {
        "text/csv"
    };
    let path = format!("/v1/batches?{query}");
    match c
        .call(&s, Method::POST, &path, Body::from(bytes), kind)
        .await
    {
        Ok((_, answer)) => {
            let job: Value = serde_json::from_slice(&answer).unwrap_or(Value::Null);
            let id = job["id"].as_str().unwrap_or_default();
            Redirect::to(&format!("/console/batches/{id}")).into_response()
        }
        Err(refused) => refused.page("Batches", &s),
    }
}

/// A job id is what the API made: refuse anything else before it is used
/// in a path.
fn checked(id: &str) -> Option<&str> {
    if !id.is_empty()
        && id.len() <= 64
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    {
        Some(id)
    } else {
        None
    }
}

fn no_job() -> Response {
    (StatusCode::NOT_FOUND, "no such job").into_response()
}

#[derive(Deserialize, Default)]
pub struct Filter {
    #[serde(default)]
    status: String,
    #[serde(default)]
    format: String,
    /// The CSV download's delimiter (`semicolon` for a spreadsheet where
    /// the comma is the decimal mark).
    #[serde(default)]
    delimiter: String,
}

async fn status(c: &Console, s: &Session, id: &str) -> Result<Value, Refusal> {
    let (_, bytes) = c
        .call(
            s,
            Method::GET,
            &format!("/v1/batches/{id}"),
            Body::empty(),
            "application/json",
        )
        .await?;
    Ok(serde_json::from_slice(&bytes).unwrap_or(Value::Null))
}

/// `GET /console/batches/{id}`: progress, summary, the results table.
pub async fn show(
    State(c): State<Console>,
    Extension(s): Extension<Arc<Session>>,
    Path(id): Path<String>,
    Query(filter): Query<Filter>,
) -> Response {
    let Some(id) = checked(&id) else {
        return no_job();
    };
    let job = match status(&c, &s, id).await {
        Ok(job) => job,
        Err(refused) => return refused.page("Batch", &s),
    };
    // The API picks the rows: a page filtered by a rare outcome does not
    // read a 100,000-row job's table to find them.
    let outcome = outcome_named(&filter.status);
    let path = match outcome {
        Some(outcome) => {
            format!("/v1/batches/{id}/results?format=csv&limit={SHOWN_ROWS}&outcome={outcome}")
        }
        None => format!("/v1/batches/{id}/results?format=csv&limit={SHOWN_ROWS}"),
    };
    let table = match c
        .call_streamed(&s, Method::GET, &path, Body::empty(), "application/json")
        .await
    {
        Ok((_, body)) => body,
        Err(refused) => return refused.page("Batch", &s),
    };
    let (header, rows) = match first_rows(table).await {
        Ok(shown) => shown,
        Err(refused) => return refused.page("Batch", &s),
    };
    // With a filter, the downloads hold its rows too.
    let (only, of) = match outcome {
        Some(outcome) => (
            format!("&status={outcome}"),
            format!(" ({} rows)", outcome.replace('_', " ")),
        ),
        None => (String::new(), String::new()),
    };
    let state = job["state"].as_str().unwrap_or_default();
    let done = job["rowsDone"].as_i64().unwrap_or(0);
    let total = job["rowsTotal"].as_i64().unwrap_or(0).max(1);
    let body = html! {
        section.progress #job data-job=(id) data-state=(state) {
            p { "State " strong #job-state { (state) } " · " span #job-done { (done) } " of " (total) " rows" }
            progress #job-progress max=(total) value=(done) aria-label="Rows done" {}
            dl.summary {
                @for (k, v) in job["summary"].as_object().into_iter().flatten() {
                    @if k != "errors" { dt { (words(k)) } dd data-count=(k) { (v) } }
                }
            }
            @if state == "RUNNING" {
                form method="post" action=(format!("/console/batches/{id}/cancel")) {
                    (pages::csrf(&s)) button.danger type="submit" { "Cancel the job" }
                }
            }
            p {
                a href=(format!("/console/batches/{id}/results?format=csv{only}")) download { "Download CSV" (of) } " · "
                a href=(format!("/console/batches/{id}/results?format=csv&delimiter=semicolon{only}")) download { "CSV with semicolons" (of) } " · "
                a href=(format!("/console/batches/{id}/results?format=ndjson{only}")) download { "Download NDJSON" (of) }
                @if state == "DONE" { " · " a href=(format!("/console/batches/{id}/audience")) { "Audience report" } }
            }
        }
        form.filter method="get" action=(format!("/console/batches/{id}")) {
            label for="status" { "Show rows whose outcome is" }
            select #status name="status" {
                option value="" selected[outcome.is_none()] { "any" }
                @for option in OUTCOMES {
                    option value=(option) selected[Some(option) == outcome] { (option.replace('_', " ")) }
                }
            }
            button type="submit" { "Filter" }
        }
        // Wider than the page (the table has a column per summary field):
        // it scrolls in its own box, which the keyboard can reach.
        div.wide tabindex="0" role="region" aria-label="Results" {
            table #results {
                thead { tr { @for h in &header { th scope="col" { (h) } } } }
                tbody { @for r in &rows { tr { @for cell in r.iter() { td { (cell) } } } } }
            }
        }
        @if rows.len() == SHOWN_ROWS { p.hint { "The first " (SHOWN_ROWS) " rows; the download has them all." } }
    };
    respond(pages::page("Batch", &s, body))
}

/// A count's name as words: `notFound` is "not found".
fn words(name: &str) -> String {
    let mut out = String::with_capacity(name.len() + 2);
    for c in name.chars() {
        if c.is_ascii_uppercase() {
            out.push(' ');
        }
        out.push(c.to_ascii_lowercase());
    }
    out
}

/// The header of a job's results table and its first `SHOWN_ROWS` rows,
/// read as the table comes: a page does not wait for, or hold, the table
/// of a 100,000-row job.
async fn first_rows(table: Body) -> Result<(Vec<String>, Vec<csv::StringRecord>), super::Refusal> {
    use futures::TryStreamExt;
    let stream = table.into_data_stream().map_err(std::io::Error::other);
    let input = tokio_util::io::SyncIoBridge::new(tokio_util::io::StreamReader::new(stream));
    let read = tokio::task::spawn_blocking(move || {
        let mut reader = csv::Reader::from_reader(input);
        let header: Vec<String> = reader
            .headers()
            .map(|h| h.iter().map(str::to_owned).collect())
            .unwrap_or_default();
        let rows = reader
            .records()
            .map_while(Result::ok)
            .take(SHOWN_ROWS)
            .collect();
        (header, rows)
    });
    read.await.map_err(|e| super::Refusal {
        code: StatusCode::INTERNAL_SERVER_ERROR,
        message: e.to_string(),
    })
}

/// `GET /console/batches/{id}/progress`: the job's view as JSON, for the
/// page's script to poll.
pub async fn progress(
    State(c): State<Console>,
    Extension(s): Extension<Arc<Session>>,
    Path(id): Path<String>,
) -> Response {
    let Some(id) = checked(&id) else {
        return no_job();
    };
    match status(&c, &s, id).await {
        Ok(job) => axum::Json(job).into_response(),
        Err(refused) => (refused.code, refused.message).into_response(),
    }
}

/// `GET /console/batches/{id}/results`: the download.
pub async fn download(
    State(c): State<Console>,
    Extension(s): Extension<Arc<Session>>,
    Path(id): Path<String>,
    Query(filter): Query<Filter>,
) -> Response {
    let Some(id) = checked(&id) else {
        return no_job();
    };
    let csv = filter.format == "csv";
    // A download is for a person's spreadsheet: with the byte-order mark
    // Excel needs to read UTF-8 as UTF-8.
    let mut path = match (csv, filter.delimiter.as_str()) {
        (true, named @ ("semicolon" | "tab")) => {
            format!("/v1/batches/{id}/results?format=csv&bom=true&delimiter={named}")
        }
        (true, _) => format!("/v1/batches/{id}/results?format=csv&bom=true"),
        (false, _) => format!("/v1/batches/{id}/results?format=ndjson"),
    };
    // The rows of one outcome (the page's filter: the errors, to run again).
    let outcome = outcome_named(&filter.status);
    if let Some(outcome) = outcome {
        path.push_str(&format!("&outcome={outcome}"));
    }
    match c
        .call_streamed(&s, Method::GET, &path, Body::empty(), "application/json")
        .await
    {
        Ok((headers, body)) => {
            let kind = headers.get(header::CONTENT_TYPE).cloned();
            let name = format!(
                "attachment; filename=\"{id}{}.{}\"",
                outcome.map(|o| format!("-{o}")).unwrap_or_default(),
                if csv { "csv" } else { "jsonl" }
            );
            // Passed on as it comes: a 100,000-row job's answers are
            // gigabytes.
            let mut response = body.into_response();
            if let Some(kind) = kind {
                response.headers_mut().insert(header::CONTENT_TYPE, kind);
            }
            if let Ok(v) = header::HeaderValue::from_str(&name) {
                response
                    .headers_mut()
                    .insert(header::CONTENT_DISPOSITION, v);
            }
            response
        }
        Err(refused) => (refused.code, refused.message).into_response(),
    }
}

/// `POST /console/batches/{id}/cancel`.
pub async fn cancel(
    State(c): State<Console>,
    Extension(s): Extension<Arc<Session>>,
    Path(id): Path<String>,
) -> Response {
    let Some(id) = checked(&id) else {
        return no_job();
    };
    match c
        .call(
            &s,
            Method::DELETE,
            &format!("/v1/batches/{id}"),
            Body::empty(),
            "application/json",
        )
        .await
    {
        Ok(_) => Redirect::to(&format!("/console/batches/{id}")).into_response(),
        Err(refused) => refused.page("Batch", &s),
    }
}

/// One table of a report as horizontal bars, a row a cell.
fn bars(title: &str, table: &Value) -> Markup {
    let cells = table["cells"].as_array().cloned().unwrap_or_default();
    let (label_w, bar_w, row_h) = (260.0, 300.0, 20.0);
    let height = row_h * cells.len() as f64 + 4.0;
    let other = &table["other"];
    html! {
        figure.bars {
            figcaption { (title) }
            @if cells.is_empty() {
                p.muted { "No cell counts enough people to be shown." }
            } @else {
                svg role="img" aria-label=(title) viewBox=(format!("0 0 {} {height}", label_w + bar_w + 110.0)) {
                    @for (i, c) in cells.iter().enumerate() {
                        @let y = i as f64 * row_h;
                        @let share = c["share"].as_f64().unwrap_or(0.0);
                        g.bar data-key=(c["key"].as_str().unwrap_or_default()) {
                            text x="0" y=(y + 14.0) { (c["label"].as_str().unwrap_or_default()) }
                            rect x=(label_w) y=(y + 3.0) width=((share * bar_w).max(1.0)) height=(row_h - 6.0) {}
                            text x=(label_w + share * bar_w + 6.0) y=(y + 14.0) {
                                (format!("{:.1} %", share * 100.0)) " (" (c["people"]) ")"
                            }
                        }
                    }
                }
            }
            @if other["cells"].as_u64().unwrap_or(0) > 0 {
                p.hint { (other["cells"]) " more under k people, folded"
                    @if let Some(n) = other["people"].as_u64() { " (" (n) " people together)" } "." }
            }
        }
    }
}

/// `GET /console/batches/{id}/audience`: the job's audience report with
/// its charts.
pub async fn audience(
    State(c): State<Console>,
    Extension(s): Extension<Arc<Session>>,
    Path(id): Path<String>,
) -> Response {
    let Some(id) = checked(&id) else {
        return no_job();
    };
    let report: Value = match c
        .call(
            &s,
            Method::GET,
            &format!("/v1/batches/{id}/audience"),
            Body::empty(),
            "application/json",
        )
        .await
    {
        Ok((_, bytes)) => serde_json::from_slice(&bytes).unwrap_or_default(),
        Err(refused) => return refused.page("Audience", &s),
    };
    let segments = report["segments"]["shown"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let tiers = report["interests"].as_array().cloned().unwrap_or_default();
    let body = html! {
        section #audience {
            p { (report["rows"]) " rows for " strong { (report["purpose"].as_str().unwrap_or_default()) }
                ". No cell, bucket or segment under " strong { (report["k"]) } " people is shown"
                @if report["noise"].is_object() { "; every count has Laplace noise (ε " (report["noise"]["epsilon"]) ")" } "." }
            h2 { "Segments" }
            p.hint { (report["segments"]["method"].as_str().unwrap_or_default()) }
            ul.cards.segments {
                @for seg in &segments {
                    li.segment {
                        h3 { (seg["label"].as_str().unwrap_or_default()) }
                        p { strong { (seg["people"]) } " people, " (format!("{:.1} %", seg["share"].as_f64().unwrap_or(0.0) * 100.0)) " of those found" }
                        p { "Sets them apart: "
                            @for t in seg["interests"].as_array().into_iter().flatten().chain(seg["platforms"].as_array().into_iter().flatten()) {
                                span.evidence { (t["name"].as_str().unwrap_or_default()) " ×" (t["lift"]) } " "
                            }
                        }
                    }
                }
            }
            h2 { "The list" }
            (bars("Outcomes", &report["outcomes"]))
            (bars("On each platform", &report["platforms"]))
            (bars("Reachable on", &report["channels"]))
            @for (i, tier) in tiers.iter().enumerate() { (bars(&format!("Interests, tier {}", i + 1), tier)) }
            (bars("Footprint score", &report["footprint"]))
            (bars("Risk score", &report["risk"]))
            (bars("Oldest account", &report["accountAge"]))
            p { a href=(format!("/console/batches/{id}")) { "Back to the job" } }
        }
    };
    respond(pages::page("Audience", &s, body))
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::StreamExt;

    /// A results table whose reading fails after 1,200 rows: a reader
    /// that waits for the whole table gets only the failure.
    fn failing_table() -> Body {
        let header = futures::stream::once(async { Ok("email,row,outcome\n".to_owned()) });
        let rows = futures::stream::iter(1_u64..=1_200)
            .map(|n| Ok(format!("p{n}@example.com,{n},enriched\n")));
        let broken = futures::stream::once(async { Err(std::io::Error::other("connection lost")) });
        Body::from_stream(header.chain(rows).chain(broken))
    }

    #[test]
    fn counts_are_named_in_words() {
        assert_eq!(words("notFound"), "not found");
        assert_eq!(words("enriched"), "enriched");
    }

    #[tokio::test]
    async fn the_first_rows_are_read_as_the_table_comes() {
        let (header, rows) = first_rows(failing_table())
            .await
            .unwrap_or_else(|r| panic!("{}", r.message));
        assert_eq!(header, ["email", "row", "outcome"]);
        assert_eq!(rows.len(), SHOWN_ROWS);
        assert_eq!(&rows[0][1], "1");
    }
}
