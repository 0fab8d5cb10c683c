//! The ledger for the privacy officer: every processing, newest first,
//! filtered by caller, purpose, outcome and period, with no person's
//! identifier (the ledger holds none: a keyed hash, which is not shown
//! either); and the suppression list's size and the retention settings.
//! It needs the `access` scope, checked with the session's key as the API
//! checks it.
use std::sync::Arc;

use axum::Extension;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::Response;
use chrono::NaiveDate;
use maud::{Markup, html};
use serde::Deserialize;

use super::session::Session;
use super::{Console, Refusal, html as respond, pages};
use crate::ledger::Browse;

const PAGE: u32 = 50;

#[derive(Deserialize, Default)]
pub struct Filter {
    #[serde(default)]
    caller: String,
    #[serde(default)]
    purpose: String,
    #[serde(default)]
    outcome: String,
    /// YYYY-MM-DD, from the start of that day (UTC).
    #[serde(default)]
    from: String,
    /// YYYY-MM-DD, to the end of that day (UTC).
    #[serde(default)]
    to: String,
    /// The next page: "time.id" of the last record shown.
    #[serde(default)]
    before: String,
}

fn day_ms(text: &str, field: &str, end: bool) -> Result<Option<i64>, String> {
    if text.trim().is_empty() {
        return Ok(None);
    }
    let day = NaiveDate::parse_from_str(text.trim(), "%Y-%m-%d")
        .map_err(|_| format!("{field}: {text:?} is not a date (YYYY-MM-DD)"))?;
    let day = if end {
        day.succ_opt().unwrap_or(day)
    } else {
        day
    };
    Ok(day
        .and_hms_opt(0, 0, 0)
        .map(|t| t.and_utc().timestamp_millis()))
}

impl Filter {
    fn browse(&self) -> Result<Browse, String> {
        let before = match self.before.split_once('.') {
            Some((ms, id)) => Some((
                ms.parse()
                    .map_err(|_| "before: not a page of this list".to_owned())?,
                id.to_owned(),
            )),
            None => None,
        };
        Ok(Browse {
            caller: self.caller.trim().to_owned(),
            purpose: self.purpose.trim().to_owned(),
            outcome: self.outcome.trim().to_owned(),
            from_ms: day_ms(&self.from, "from", false)?.unwrap_or(i64::MIN),
            until_ms: day_ms(&self.to, "to", true)?.unwrap_or(i64::MAX),
            before,
            limit: PAGE,
        })
    }

    fn query(&self, before: &str) -> String {
        url::form_urlencoded::Serializer::new(String::new())
            .append_pair("caller", &self.caller)
            .append_pair("purpose", &self.purpose)
            .append_pair("outcome", &self.outcome)
            .append_pair("from", &self.from)
            .append_pair("to", &self.to)
            .append_pair("before", before)
            .finish()
    }
}

/// The session's key may read the ledger: the API's own check for Access.
async fn admitted(c: &Console, s: &Session) -> Result<(), Refusal> {
    let mut headers = HeaderMap::new();
    if let Some(key) = &s.key
        && let Ok(value) = HeaderValue::from_str(&format!("Bearer {key}"))
    {
        headers.insert(header::AUTHORIZATION, value);
    }
    c.auth
        .admit("Access", &headers, &axum::http::Extensions::new())
        .await
        .map(|_| ())
        .map_err(|status| Refusal {
            code: crate::api::http::error_response(&status).status(),
            message: status.message().to_owned(),
        })
}

/// `GET /console/privacy/ledger`.
pub async fn page(
    State(c): State<Console>,
    Extension(s): Extension<Arc<Session>>,
    Query(f): Query<Filter>,
) -> Response {
    if let Err(refused) = admitted(&c, &s).await {
        return refused.page("Ledger", &s);
    }
    let (records, problem) = match f.browse() {
        Ok(b) => match c.ledger.browse(&b).await {
            Ok(records) => (records, None),
            Err(e) => (Vec::new(), Some(format!("the ledger cannot be read: {e}"))),
        },
        Err(problem) => (Vec::new(), Some(problem)),
    };
    let suppressed = c.ledger.suppression_counts().await.unwrap_or_default();
    let next = (records.len() == PAGE as usize)
        .then(|| records.last().map(|r| format!("{}.{}", r.at_ms, r.id)))
        .flatten();
    let body = html! {
        (settings(&c, &suppressed))
        form.filter method="get" action="/console/privacy/ledger" {
            div.row {
                div { label for="caller" { "Caller" } input #caller name="caller" value=(f.caller); }
                div { label for="purpose" { "Purpose" } input #purpose name="purpose" value=(f.purpose); }
                div { label for="outcome" { "Outcome (enriched, not_found, refused, erasure…)" } input #outcome name="outcome" value=(f.outcome); }
                div { label for="from" { "From" } input #from type="date" name="from" value=(f.from); }
                div { label for="to" { "To" } input #to type="date" name="to" value=(f.to); }
            }
            button type="submit" { "Filter" }
        }
        @if let Some(problem) = problem { (pages::refusal(&problem)) }
        table #ledger {
            thead { tr {
                th scope="col" { "When" } th scope="col" { "Record" } th scope="col" { "Caller" }
                th scope="col" { "Purpose" } th scope="col" { "Basis" } th scope="col" { "Outcome" }
                th scope="col" { "Sources" } th scope="col" { "Reference" }
            } }
            tbody {
                @for r in &records {
                    tr {
                        td { (chrono::DateTime::from_timestamp_millis(r.at_ms).map(|t| t.format("%Y-%m-%d %H:%M:%S").to_string()).unwrap_or_default()) }
                        td { code { (r.id) } }
                        td { (r.caller) @if !r.on_behalf_of.is_empty() { " for " (r.on_behalf_of) } }
                        td { (r.purpose) }
                        td { (r.lawful_basis) }
                        td { (r.outcome.as_str()) @if r.redacted { " (redacted)" } }
                        td { (r.sources.len()) }
                        td { (r.reference) }
                    }
                }
            }
        }
        @if let Some(before) = next {
            a href=(format!("/console/privacy/ledger?{}", f.query(&before))) { "Older records" }
        }
    };
    respond(pages::page("Ledger", &s, body))
}

/// The suppression list's size and each purpose's retention.
fn settings(c: &Console, suppressed: &[(String, i64)]) -> Markup {
    let count = |scope: &str| {
        suppressed
            .iter()
            .find(|(s, _)| s == scope)
            .map_or(0, |(_, n)| *n)
    };
    html! {
        p #suppression {
            "Suppression list: " strong { (count("all")) } " people erased, "
            strong { (count("marketing")) } " objecting to marketing."
        }
        p { "Records are kept, per purpose: "
            (c.retention.iter().map(|(p, days)| format!("{p} {days} days")).collect::<Vec<_>>().join(", ")) "." }
    }
}
