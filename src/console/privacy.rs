//! The privacy officer's desk: a data subject's access report (Art. 15) in
//! plain language, printable and downloadable, and erasure or objection
//! (Art. 17, 21) with a reference and a confirmation step.
use std::sync::Arc;

use axum::Extension;
use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use maud::{Markup, html};
use serde::Deserialize;

use super::pages::{self, when, words};
use super::session::Session;
use super::{Console, html as respond};
use crate::auth::Scope;
use crate::proto::v1 as pb;

#[derive(Deserialize, Default)]
pub struct Subject {
    #[serde(default)]
    identifier: String,
    #[serde(default)]
    region: String,
    #[serde(default)]
    reference: String,
    /// Erasure: "erasure" or "objection".
    #[serde(default)]
    kind: String,
    /// The second step of an erasure.
    #[serde(default)]
    confirmed: String,
    /// Access: "download" for the JSON file.
    #[serde(default)]
    format: String,
}

impl Subject {
    /// The request's identifier fields.
    fn request(&self) -> serde_json::Value {
        let id = self.identifier.trim();
        let mut r = serde_json::json!({ "reference": self.reference.trim() });
        if id.contains('@') {
            r["email"] = id.into();
        } else {
            r["phone"] = id.into();
            if !self.region.trim().is_empty() {
                r["defaultRegion"] = self.region.trim().into();
            }
        }
        r
    }
}

fn subject_fields(s: &Subject) -> Markup {
    html! {
        label for="identifier" { "The person's email address or phone number" }
        input #identifier name="identifier" required autocomplete="off" value=(s.identifier);
        label for="region" { "Phone region (for national numbers)" }
        input #region name="region" maxlength="2" value=(s.region);
        label for="reference" { "Request reference" }
        input #reference name="reference" required value=(s.reference) placeholder="DSR-17";
    }
}

fn desk_markup(session: &Session, s: &Subject) -> Markup {
    let caller = &session.caller;
    html! {
        @if caller.allows(Scope::Access) {
            p { a href="/console/privacy/ledger" { "The ledger" } ": every processing, by caller, purpose, outcome and period; the suppression list's size and the retention settings." }
        }
        div.desk {
            @if caller.allows(Scope::Access) {
                form method="post" action="/console/privacy/access" {
                    h2 { "Access (Art. 15)" }
                    (pages::csrf(session))
                    (subject_fields(s))
                    button type="submit" { "Show the access report" }
                }
            }
            @if caller.allows(Scope::Erase) {
                form method="post" action="/console/privacy/erase" {
                    h2 { "Erasure or objection (Art. 17, 21)" }
                    (pages::csrf(session))
                    (subject_fields(s))
                    fieldset {
                        legend { "What the person asks" }
                        label.inline { input type="radio" name="kind" value="erasure" checked; " Erase everything held and suppress" }
                        label.inline { input type="radio" name="kind" value="objection"; " Object to marketing only" }
                    }
                    button type="submit" { "Continue…" }
                }
            }
        }
    }
}

/// `GET /console/privacy`.
pub async fn desk(Extension(s): Extension<Arc<Session>>) -> Response {
    respond(pages::page(
        "Privacy desk",
        &s,
        desk_markup(&s, &Subject::default()),
    ))
}

/// `POST /console/privacy/access`: the report, as a page or a file.
pub async fn access(
    State(c): State<Console>,
    Extension(s): Extension<Arc<Session>>,
    axum::Form(f): axum::Form<Subject>,
) -> Response {
    let report: pb::AccessResponse = match c.json(&s, "/v1/access", f.request()).await {
        Ok(r) => r,
        Err(refused) => return refused.page("Privacy desk", &s),
    };
    if f.format == "download" {
        let body = serde_json::to_vec_pretty(&report).unwrap_or_default();
        return (
            [
                (header::CONTENT_TYPE, "application/json"),
                (
                    header::CONTENT_DISPOSITION,
                    "attachment; filename=\"access-report.json\"",
                ),
            ],
            body,
        )
            .into_response();
    }
    let body = html! {
        (access_report(&report, &f))
        form.noprint method="post" action="/console/privacy/access" {
            (pages::csrf(&s))
            input type="hidden" name="identifier" value=(f.identifier);
            input type="hidden" name="region" value=(f.region);
            input type="hidden" name="reference" value=(f.reference);
            input type="hidden" name="format" value="download";
            button type="submit" { "Download (JSON)" }
            " "
            button.print type="button" data-print { "Print" }
        }
    };
    respond(pages::page("Access report", &s, body))
}

/// The report in words a data subject can read (Art. 12).
fn access_report(r: &pb::AccessResponse, f: &Subject) -> Markup {
    let summary = r.summary.clone().unwrap_or_default();
    html! {
        article.report #access-report {
            p.lead { "What enrichd holds about " strong { (f.identifier.trim()) } ", and what it did with it. Reference " (f.reference) "." }
            @if r.suppressed {
                p.warn { "This person is on the suppression list (" (r.suppressed_purposes.join(", ")) "): nothing is looked up about them." }
            }
            h2 { "Why we process it" }
            @if summary.purposes.is_empty() { p { "No processing is recorded." } }
            ul {
                @for p in &summary.purposes {
                    li { strong { (p.id) } ": " (p.description) " Lawful basis: "
                        (p.lawful_bases.iter().filter_map(|b| pb::LawfulBasis::try_from(*b).ok()).map(|b| words(b.as_str_name(), "LAWFUL_BASIS_")).collect::<Vec<_>>().join(", "))
                        ". Kept " (p.retention_days) " days." }
                }
            }
            @if !summary.data_categories.is_empty() {
                p { "Kinds of data: " (summary.data_categories.join(", ")) "." }
            }
            @if !summary.sources.is_empty() {
                p { "Where it came from (public sources, not from you): " (summary.sources.join(", ")) "." }
            }
            @if !summary.recipients.is_empty() {
                p { "Who received it: " (summary.recipients.join(", ")) "." }
            }
            @if !r.logic.is_empty() {
                h2 { "How scores are made" }
                ul { @for l in &r.logic { li { (l) } } }
            }
            h2 { "Each time it was processed (" (r.ledger_total) ")" }
            table {
                thead { tr { th scope="col" { "When" } th scope="col" { "Who asked" } th scope="col" { "Purpose" } th scope="col" { "What happened" } th scope="col" { "Sources" } } }
                tbody {
                    @for e in &r.ledger {
                        tr { td { (when(e.at.as_ref())) } td { (e.caller) } td { (e.purpose) } td { (e.outcome) } td { (e.sources_asked.join(", ")) } }
                    }
                }
            }
            h2 { "What is held right now" }
            @if r.cached.is_empty() { p { "Nothing is held in the cache." } }
            ul {
                @for f in &r.cached {
                    li { (f.source_id) ": " (f.profiles.len()) " profile(s), retrieved " (when(f.retrieved_at.as_ref())) ", deleted by " (when(f.expires_at.as_ref())) }
                }
            }
            @if let Some(smtp) = &r.smtp {
                p { "What your mail server (" (smtp.host) ") said of the address when we checked it: " (smtp_words(smtp)) "." }
            }
            @if !r.suppressions.is_empty() {
                h2 { "Requests on record" }
                ul { @for s in &r.suppressions { li { (s.scope) " on " (when(s.at.as_ref())) " (" (s.reference) ")" } } }
            }
            p.hint { "You may ask for this data to be corrected or erased, or object to its use for marketing." }
        }
    }
}

/// `POST /console/privacy/erase`: first a confirmation page, then the call.
pub async fn erase(
    State(c): State<Console>,
    Extension(s): Extension<Arc<Session>>,
    axum::Form(f): axum::Form<Subject>,
) -> Response {
    let objection = f.kind == "objection";
    if f.confirmed != "yes" {
        let body = html! {
            p.warn { (if objection { "Record an objection to marketing for " } else { "Erase everything held about " })
                strong { (f.identifier.trim()) } " under reference " strong { (f.reference) } "? "
                (if objection { "They will not be looked up for marketing again." } else { "Cached findings and batch rows go, ledger records are redacted, and the person is suppressed. This cannot be undone." }) }
            form method="post" action="/console/privacy/erase" {
                (pages::csrf(&s))
                input type="hidden" name="identifier" value=(f.identifier);
                input type="hidden" name="region" value=(f.region);
                input type="hidden" name="reference" value=(f.reference);
                input type="hidden" name="kind" value=(f.kind);
                input type="hidden" name="confirmed" value="yes";
                button.danger type="submit" { (if objection { "Record the objection" } else { "Erase" }) }
                " " a href="/console/privacy" { "Cancel" }
            }
        };
        return respond(pages::page("Confirm", &s, body));
    }
    let mut request = f.request();
    request["kind"] = if objection {
        "KIND_OBJECTION_TO_MARKETING"
    } else {
        "KIND_ERASURE"
    }
    .into();
    let done: pb::EraseResponse = match c.json(&s, "/v1/erase", request).await {
        Ok(done) => done,
        Err(refused) => return refused.page("Privacy desk", &s),
    };
    let body = html! {
        p.ok role="status" #erase-done {
            (if objection { "Objection recorded." } else { "Erased." })
            " Suppressed for: " (if done.suppressed_purposes.is_empty() { "every purpose".to_owned() } else { done.suppressed_purposes.join(", ") }) "."
        }
        ul {
            li { (done.cache_entries_removed) " cache entries removed" }
            li { (done.ledger_records_redacted) " ledger records redacted" @if done.redaction_pending { " (more pending)" } }
            li { (done.batch_rows_erased) " batch rows erased" }
            li { "Tombstone " code { (done.tombstone) } }
        }
        a href="/console/privacy" { "Back to the desk" }
    };
    respond(pages::page("Privacy desk", &s, body))
}

/// A kept mailbox check, in words.
fn smtp_words(smtp: &pb::SmtpCheck) -> &'static str {
    match smtp.status() {
        pb::Deliverability::Deliverable => "it takes mail",
        pb::Deliverability::Undeliverable => "it refuses mail",
        pb::Deliverability::CatchAll => "the domain takes mail for any address",
        _ => "it could not tell",
    }
}
