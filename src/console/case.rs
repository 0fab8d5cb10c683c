//! The analyst's case view: one contact, the verdict and its reasons on
//! top, then the identity graph, the sources' waterfall, every profile with
//! its provenance, interests with their evidence, breaches on a timeline,
//! and the compliance block in words. Printable as a one-page report.
use std::sync::Arc;

use axum::Extension;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use maud::{Markup, html};
use serde::Deserialize;

use super::pages::{self, when, words};
use super::session::Session;
use super::{Console, graph, html as respond};
use crate::proto::v1 as pb;

#[derive(Deserialize, Default)]
pub struct CaseForm {
    #[serde(default)]
    identifier: String,
    #[serde(default)]
    region: String,
    #[serde(default)]
    purpose: String,
    #[serde(default)]
    basis: String,
    #[serde(default)]
    reference: String,
}

fn form_markup(c: &Console, session: &Session, f: &CaseForm) -> Markup {
    html! {
        form.case method="post" action="/console/case" {
            (pages::csrf(session))
            div.row {
                div {
                    label for="identifier" { "Email address or phone number" }
                    input #identifier name="identifier" required autocomplete="off" value=(f.identifier)
                        placeholder="jane.doe@example.com or +44…";
                }
                div {
                    label for="region" { "Phone region (for national numbers)" }
                    input #region name="region" maxlength="2" value=(f.region) placeholder="GB";
                }
            }
            div.row {
                div { (pages::purpose_select(session, &c.purposes, &f.purpose)) }
                div { (pages::basis_fields(&f.basis)) }
            }
            button type="submit" { "Look up" }
        }
    }
}

/// `GET /console/case`: the form.
pub async fn form(State(c): State<Console>, Extension(s): Extension<Arc<Session>>) -> Response {
    respond(pages::page(
        "Case",
        &s,
        form_markup(&c, &s, &CaseForm::default()),
    ))
}

/// `POST /console/case`: the case, asked of the API with the session's key.
pub async fn show(
    State(c): State<Console>,
    Extension(s): Extension<Arc<Session>>,
    axum::Form(f): axum::Form<CaseForm>,
) -> Response {
    let mut request = pages::claim(&f.purpose, &f.basis, f.reference.trim());
    let id = f.identifier.trim();
    if id.contains('@') {
        request["email"] = id.into();
    } else {
        request["phone"] = id.into();
        if !f.region.trim().is_empty() {
            request["hints"] = serde_json::json!({ "defaultRegion": f.region.trim() });
        }
    }
    request["requestId"] = "console".into();
    request["options"] = serde_json::json!({ "view": "VIEW_FULL" });
    let answer: pb::EnrichResponse = match c.json(&s, "/v1/enrich", request).await {
        Ok(answer) => answer,
        Err(refused) => {
            let mut page = refused;
            page.message = format!("The lookup was refused: {}", page.message);
            let body = html! { (pages::refusal(&page.message)) (form_markup(&c, &s, &f)) };
            return (page.code, pages::page("Case", &s, body)).into_response();
        }
    };
    let body = html! {
        details.again { summary { "Another lookup" } (form_markup(&c, &s, &f)) }
        (case(&answer, Some(&s)))
    };
    respond(pages::page("Case", &s, body))
}

/// The whole case of one answer; with the session of a caller that may
/// give feedback, each profile offers it.
pub fn case(a: &pb::EnrichResponse, session: Option<&Session>) -> Markup {
    let processing_id = a
        .compliance
        .as_ref()
        .map(|c| c.processing_id.as_str())
        .unwrap_or_default();
    let feedback = session
        .filter(|s| s.caller.allows(crate::auth::Scope::Feedback) && !processing_id.is_empty())
        .map(|s| (s, processing_id));
    let risk = a.risk.clone().unwrap_or_default();
    let verdict = pb::risk::Verdict::try_from(risk.verdict)
        .map_or("unknown".to_owned(), |v| words(v.as_str_name(), "VERDICT_"));
    let level = pb::risk::Level::try_from(risk.level)
        .map_or(String::new(), |v| words(v.as_str_name(), "LEVEL_"));
    let footprint = a.footprint.as_ref().map_or(0, |f| f.score);
    let graph = graph::of(a);
    html! {
        section.verdict aria-labelledby="verdict-title" {
            h2 #verdict-title { "Verdict" }
            div.scoreline {
                p class=(format!("badge verdict-{}", verdict.replace(' ', "-"))) data-verdict=(verdict) { (verdict.to_uppercase()) }
                p.score { "Risk " strong { (risk.score) } " / 99 (" (level) ")" }
                p.score { "Footprint " strong { (footprint) } " / 100" }
                p.score { (a.profiles.len()) " profiles, " (a.possible_matches.len()) " possible matches" }
                button.print type="button" data-print { "Print case report" }
            }
            @if risk.reasons.is_empty() {
                p { "No risk signal fired." }
            } @else {
                h3 { "Reasons" }
                ol.reasons {
                    @for r in &risk.reasons {
                        li { code { (r.code) } " +" (format!("{:.0}", r.weight)) " — " (r.detail) }
                    }
                }
            }
            (hints(a))
        }
        section aria-labelledby="graph-h" {
            h2 #graph-h { "Identity graph" }
            (graph::svg(&graph))
        }
        section aria-labelledby="sources-h" {
            h2 #sources-h { "Sources asked" }
            (waterfall(a))
        }
        section aria-labelledby="profiles-h" {
            h2 #profiles-h { "Profiles and their provenance" }
            @for (i, p) in a.profiles.iter().enumerate() { (profile(&format!("p{i}"), p, false, feedback)) }
            @for (i, p) in a.possible_matches.iter().enumerate() { (profile(&format!("m{i}"), p, true, feedback)) }
        }
        @if !a.interests.is_empty() {
            section aria-labelledby="interests-h" {
                h2 #interests-h { "Interests" }
                table {
                    thead { tr { th scope="col" { "Interest" } th scope="col" { "Score" } th scope="col" { "Evidence" } } }
                    tbody {
                        @for i in &a.interests {
                            tr {
                                td { (i.tier_path.join(" › ")) }
                                td { (format!("{:.2}", i.score)) }
                                td { @for e in &i.evidence { span.evidence { (e.source_id) ": " (e.matched) } " " } }
                            }
                        }
                    }
                }
            }
        }
        section aria-labelledby="breaches-h" {
            h2 #breaches-h { "Breaches" }
            @if a.breaches.is_empty() { p { "None returned for this purpose." } }
            @else {
                ol.timeline {
                    @for b in sorted_breaches(a) {
                        li { time { (b.breach_date) } " " strong { (b.title) } " (" (b.domain) "): " (b.data_classes.join(", ")) }
                    }
                }
            }
        }
        (compliance(a))
    }
}

fn hints(a: &pb::EnrichResponse) -> Markup {
    let email = match a.verification.as_ref().and_then(|v| v.kind.as_ref()) {
        Some(pb::verification::Kind::Email(e)) => Some(e),
        _ => None,
    };
    html! {
        @if let Some(e) = email {
            ul.checks {
                li { "Syntax " (if e.syntax_valid { "valid" } else { "invalid" }) }
                li { "Mail servers: " (e.mx.as_ref().map_or("not checked".to_owned(), |m| words(pb::mx_check::Status::try_from(m.status).map_or("", |s| s.as_str_name()), "STATUS_"))) }
                @if e.disposable { li.warn { "Disposable address" } }
                @if e.role_account { li.warn { "Role account" } }
                @if e.mixed_script { li.warn { "Mixed scripts: a look-alike address" } }
                @if !e.did_you_mean.is_empty() { li.warn { "Did you mean " strong { (e.did_you_mean) } "?" } }
            }
        }
    }
}

fn sorted_breaches(a: &pb::EnrichResponse) -> Vec<&pb::Breach> {
    let mut b: Vec<&pb::Breach> = a.breaches.iter().collect();
    b.sort_by(|x, y| x.breach_date.cmp(&y.breach_date));
    b
}

/// One bar per source asked: its latency, outcome and whether it was cached.
fn waterfall(a: &pb::EnrichResponse) -> Markup {
    let skipped = pb::source_outcome::Outcome::Skipped as i32;
    let asked: Vec<&pb::SourceOutcome> =
        a.sources.iter().filter(|o| o.outcome != skipped).collect();
    let not_asked: Vec<&str> = a
        .sources
        .iter()
        .filter(|o| o.outcome == skipped)
        .map(|o| o.source_id.as_str())
        .collect();
    let longest = asked.iter().map(|o| o.latency_ms).max().unwrap_or(0).max(1) as f64;
    let (label_w, bar_w, row_h) = (190.0, 420.0, 20.0);
    let height = row_h * asked.len() as f64 + 8.0;
    html! {
        @if !not_asked.is_empty() {
            p.hint { "Not asked (purpose, input or settings): " (not_asked.join(", ")) }
        }
        svg.waterfall role="img" aria-labelledby="waterfall-title" viewBox=(format!("0 0 {} {height}", label_w + bar_w + 230.0)) {
            title #waterfall-title { "Each source asked: latency and outcome" }
            @for (i, o) in asked.iter().enumerate() {
                @let outcome = pb::source_outcome::Outcome::try_from(o.outcome).map_or("unknown".to_owned(), |v| words(v.as_str_name(), "OUTCOME_"));
                @let y = i as f64 * row_h + 4.0;
                @let w = (o.latency_ms as f64 / longest * bar_w).max(2.0);
                g class=(format!("bar outcome-{}", outcome.replace(' ', "-"))) data-source=(o.source_id) {
                    text x="0" y=(y + 14.0) { (o.source_id) @if o.depth > 0 { " (round " (o.depth + 1) ")" } }
                    rect x=(label_w) y=(y + 3.0) width=(w) height=(row_h - 6.0) {}
                    text x=(label_w + w + 6.0) y=(y + 14.0) {
                        (o.latency_ms) " ms · " (outcome) @if o.cached { " · cached" }
                    }
                }
            }
        }
    }
}

fn text_row(name: &str, v: Option<&pb::TextValue>) -> Markup {
    html! {
        @if let Some(v) = v { (row(name, &v.value, v.provenance.as_ref())) }
    }
}

fn row(name: &str, value: &str, p: Option<&pb::Provenance>) -> Markup {
    let p = p.cloned().unwrap_or_default();
    let method = pb::ExtractionMethod::try_from(p.method).map_or(String::new(), |m| {
        words(m.as_str_name(), "EXTRACTION_METHOD_")
    });
    let confidence = pb::MatchConfidence::try_from(p.confidence).map_or(String::new(), |m| {
        words(m.as_str_name(), "MATCH_CONFIDENCE_")
    });
    html! {
        tr.provenance {
            th scope="row" { (name) }
            td { (link_or_text(value)) }
            td { (p.source_id) }
            td.url { (link_or_text(&p.url)) }
            td { (when(p.retrieved_at.as_ref())) }
            td { (method) @if !p.selector.is_empty() { " " code { (p.selector) } } }
            td { (confidence) }
        }
    }
}

/// A web address a source gave, as a link the analyst can follow to the
/// evidence; anything else (a `javascript:` address from a site that lies,
/// plain text) as text. The link opens apart from the console and tells
/// the site nothing of it.
fn link_or_text(value: &str) -> Markup {
    let web = url::Url::parse(value)
        .ok()
        .filter(|u| matches!(u.scheme(), "http" | "https") && u.host().is_some())
        .filter(|u| !value.chars().any(char::is_whitespace) && may_carry_no_identifier(u));
    html! {
        @if let Some(url) = web {
            a href=(url.as_str()) rel="noopener noreferrer nofollow" target="_blank" { (value) }
        } @else {
            (value)
        }
    }
}

/// Whether a link to `url` is sure not to hold the person's identifier (no
/// identifier goes into a URL the console makes): no query, fragment or
/// user name, where a lookup's address puts it, and a path without an
/// email address (`@`), a run of seven digits (a phone number) or a run of
/// 32 hex digits or more (an address's MD5 or SHA-256, as the catalog's
/// hashed inputs send it: a pseudonym, still the person's). A profile page
/// (`https://github.com/jane`) passes; an API lookup stays text.
fn may_carry_no_identifier(url: &url::Url) -> bool {
    let path = url.path().to_ascii_lowercase();
    let longest = |digit: fn(&char) -> bool| {
        path.split(|c: char| !digit(&c))
            .map(str::len)
            .max()
            .unwrap_or(0)
    };
    url.query().is_none()
        && url.fragment().is_none()
        && url.username().is_empty()
        && url.password().is_none()
        && !path.contains('@')
        && !path.contains("%40")
        && longest(char::is_ascii_digit) < 7
        && longest(char::is_ascii_hexdigit) < 32
}

/// Why a possible match is one, in words.
fn doubt_words(p: &pb::Profile) -> &'static str {
    match p.doubt() {
        pb::Doubt::Refuted => "held out: feedback said it is not this person's",
        pb::Doubt::SourceDemoted => "its source is demoted (low precision or it claims every name)",
        pb::Doubt::RefutedOrigin => "found through a refuted profile",
        pb::Doubt::Uncorroborated | pb::Doubt::Unspecified => "not tied to the person",
    }
}

/// The "wrong finding" form of one profile.
fn feedback_form(anchor: &str, p: &pb::Profile, session: &Session, processing_id: &str) -> Markup {
    let url = p
        .url
        .as_ref()
        .map(|u| u.value.clone())
        .or_else(|| p.provenance.as_ref().map(|v| v.url.clone()))
        .unwrap_or_default();
    html! {
        details.feedback {
            summary { "Wrong finding?" }
            form method="post" action="/console/feedback" {
                (pages::csrf(session))
                input type="hidden" name="processing_id" value=(processing_id);
                input type="hidden" name="source_id" value=(p.source_id);
                input type="hidden" name="url" value=(url);
                fieldset {
                    legend { "This " (p.platform) " account is" }
                    label { input type="radio" name="verdict" value="WRONG_PERSON" required; " someone else's" }
                    label { input type="radio" name="verdict" value="NOT_THERE"; " not there at all" }
                    label { input type="radio" name="verdict" value="CORRECT"; " right" }
                }
                label for=(format!("note-{anchor}")) { "Note (kept with the feedback, shown to the person on access)" }
                textarea id=(format!("note-{anchor}")) name="note" maxlength="1000" rows="2" {}
                button type="submit" { "Send feedback" }
            }
        }
    }
}

/// A profile's card: each field with where it came from.
fn profile(
    anchor: &str,
    p: &pb::Profile,
    possible: bool,
    feedback: Option<(&Session, &str)>,
) -> Markup {
    html! {
        article.profile.possible[possible] id=(anchor) tabindex="-1" data-doubt=[possible.then(|| p.doubt().as_str_name())] {
            h3 { (p.platform) " " small { (p.source_id) @if possible { " · possible match, " (doubt_words(p)) } } }
            table {
                thead { tr { th scope="col" { "Field" } th scope="col" { "Value" } th scope="col" { "Source" } th scope="col" { "URL" } th scope="col" { "Retrieved" } th scope="col" { "Method" } th scope="col" { "Confidence" } } }
                tbody {
                    (text_row("URL", p.url.as_ref()))
                    (text_row("Username", p.username.as_ref()))
                    (text_row("Name", p.display_name.as_ref()))
                    (text_row("Bio", p.bio.as_ref()))
                    (text_row("Location", p.location.as_ref()))
                    (text_row("Avatar", p.avatar_url.as_ref()))
                    @if let Some(t) = &p.created_at { (row("Created", &when(t.value.as_ref()), t.provenance.as_ref())) }
                    @if let Some(n) = &p.followers { (row("Followers", &n.value.to_string(), n.provenance.as_ref())) }
                    @if let Some(n) = &p.posts { (row("Posts", &n.value.to_string(), n.provenance.as_ref())) }
                    @for (name, v) in &p.extra { (row(name, &v.value, v.provenance.as_ref())) }
                    @for l in &p.linked_accounts { (row(&format!("Links to {}", l.platform), &l.url, l.provenance.as_ref())) }
                }
            }
            @if let Some((session, id)) = feedback { (feedback_form(anchor, p, session, id)) }
        }
    }
}

#[derive(Deserialize)]
pub struct FeedbackForm {
    processing_id: String,
    source_id: String,
    url: String,
    verdict: String,
    #[serde(default)]
    note: String,
}

/// `POST /console/feedback`: one "wrong finding", given through the API
/// with the session's key.
pub async fn feedback(
    State(c): State<Console>,
    Extension(s): Extension<Arc<Session>>,
    axum::Form(f): axum::Form<FeedbackForm>,
) -> Response {
    let request = serde_json::json!({
        "processingId": f.processing_id,
        "profile": { "sourceId": f.source_id, "url": f.url },
        "verdict": format!("FEEDBACK_VERDICT_{}", f.verdict),
        "note": f.note,
    });
    let given: pb::FeedbackResponse = match c.json(&s, "/v1/feedback", request).await {
        Ok(given) => given,
        Err(refused) => {
            let mut page = refused;
            page.message = format!("The feedback was refused: {}", page.message);
            return page.page("Feedback", &s);
        }
    };
    let standing = given.standing.unwrap_or_default();
    let body = html! {
        p.done role="status" {
            "Feedback recorded on the " (f.source_id) " account. "
            @if given.held_out { "It is held out of this person's profiles from the next answer on, for every caller." }
            @else { "It counts as confirmed." }
        }
        p { "Source " strong { (f.source_id) } ": "
            (standing.correct) " confirmed, " (standing.wrong_person) " someone else's, "
            (standing.not_there) " not there"
            @if let Some(p) = standing.precision { " (precision " (format!("{p:.2}")) ")" }
            @if standing.demoted { "; demoted: " (standing.demoted_reason) } "." }
        @if given.check_scheduled { p { "Its known accounts are being asked again; the result is in the server's log." } }
        p { a href="/console/case" { "Another lookup" } }
    };
    respond(pages::page("Feedback", &s, body))
}

/// The compliance block, in words.
fn compliance(a: &pb::EnrichResponse) -> Markup {
    let c = a.compliance.clone().unwrap_or_default();
    let basis = pb::LawfulBasis::try_from(c.lawful_basis)
        .map_or(String::new(), |b| words(b.as_str_name(), "LAWFUL_BASIS_"));
    let notice = c.notice.clone().unwrap_or_default();
    html! {
        section.compliance aria-labelledby="compliance-h" {
            h2 #compliance-h { "Compliance" }
            p { "Processed for " strong { (c.purpose) } " (" (c.purpose_description) ") on the lawful basis of "
                strong { (basis) } ", " (c.lawful_basis_article) ". Processing record " code { (c.processing_id) }
                ", kept " (c.retention_days) " days." }
            @if c.identifier_suppressed { p.warn { "This person is on the suppression list: nothing was looked up." } }
            @if !c.suppressed.is_empty() {
                h3 { "Withheld or suppressed" }
                ul { @for s in &c.suppressed { li { strong { (s.target) } ": " (s.detail) } } }
            }
            h3 { "Notice duty" }
            @if notice.required {
                p { "The data did not come from the person: they must be told (GDPR Art. 14) by "
                    strong { (when(notice.notify_by.as_ref())) } " — categories: " (notice.data_categories.join(", "))
                    "; sources: " (notice.sources.join(", ")) "." }
            } @else if !notice.exemption.is_empty() {
                p { "No notice due: " (notice.exemption) }
            } @else {
                p { "No notice due for this answer." }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn provenance(url: &str) -> pb::Provenance {
        pb::Provenance {
            source_id: "github".into(),
            url: url.into(),
            ..Default::default()
        }
    }

    #[test]
    fn a_source_s_web_address_is_a_link_out_and_nothing_else_is() {
        let page = row(
            "URL",
            "https://github.com/jane",
            Some(&provenance("https://api.github.com/users/<jane>")),
        )
        .into_string();
        assert!(
            page.contains(r#"<a href="https://github.com/jane" rel="noopener noreferrer nofollow" target="_blank">https://github.com/jane</a>"#),
            "{page}"
        );
        assert!(
            page.contains(r#"<a href="https://api.github.com/users/%3Cjane%3E""#),
            "{page}"
        );

        // An address that may hold the person's identifier is no link.
        for lookup in [
            "https://api.example/lookup?email=jane%40example.com",
            "https://api.example/v1/jane@example.com",
            "https://api.example/v1/jane%40example.com",
            "https://api.example/v1/+447700900123",
            "https://gravatar.example/0bc83cb571cd1c50ba6f3e8a78ef1346.json",
            "https://api.example/v1/B94D27B9934D3E08A52E52D7DA7DABFAC484EFE37A5380EE9088F7ACE2EFCDE9",
            "https://api.example/v1/people#jane@example.com",
            "https://jane:x@api.example/v1",
        ] {
            let page = row("URL", lookup, Some(&provenance(lookup))).into_string();
            assert!(!page.contains("<a "), "{lookup}: {page}");
        }

        // What a lying site may send is text, escaped, never a link.
        for hostile in [
            "javascript:alert(1)",
            "JaVaScRiPt:alert(1)",
            "data:text/html,<script>alert(1)</script>",
            "https://github.com/jane\" onmouseover=\"alert(1)",
            "//evil.example/x",
            "not a url",
        ] {
            let page = row("Bio", hostile, Some(&provenance(hostile))).into_string();
            assert!(!page.contains("<a "), "{hostile}: {page}");
            assert!(!page.contains("<script"), "{hostile}: {page}");
            assert!(!page.contains("\" onmouseover"), "{hostile}: {page}");
        }
    }
}
