//! The frame every console page shares, and the small pieces of markup the
//! pages have in common.
use maud::{DOCTYPE, Markup, html};

use super::session::Session;
use crate::auth::Scope;

/// A whole page: header, the navigation this caller may use, `body`.
pub fn page(title: &str, session: &Session, body: Markup) -> Markup {
    let caller = &session.caller;
    html! {
        (DOCTYPE)
        html lang="en" {
            (head(title))
            body {
                a.skip href="#main" { "Skip to content" }
                header.top {
                    a.brand href="/console/" { "enrichd" }
                    nav aria-label="Console" {
                        ul {
                            @if caller.allows(Scope::Enrich) { li { a href="/console/case" { "Case" } } }
                            @if caller.allows(Scope::Access) || caller.allows(Scope::Erase) {
                                li { a href="/console/privacy" { "Privacy desk" } }
                            }
                            @if caller.allows(Scope::Stream) { li { a href="/console/batches" { "Batches" } } }
                            @if caller.allows(Scope::Sources) { li { a href="/console/sources" { "Sources" } } }
                        }
                    }
                    form.signout method="post" action="/console/sign-out" {
                        (csrf(session))
                        span.who { "Signed in as " strong { (caller.name) } }
                        button type="submit" { "Sign out" }
                    }
                }
                main #main { h1 { (title) } (body) }
            }
        }
    }
}

fn head(title: &str) -> Markup {
    html! {
        head {
            meta charset="utf-8";
            meta name="viewport" content="width=device-width, initial-scale=1";
            title { (title) " · enrichd" }
            link rel="stylesheet" href="/console/assets/console.css";
            script src="/console/assets/console.js" defer {}
        }
    }
}

/// The sign-in page (`why`: the last attempt's refusal).
pub fn sign_in(why: Option<&str>, keyless: bool) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            (head("Sign in"))
            body {
                main #main.narrow {
                    h1 { "Sign in to enrichd" }
                    @if let Some(why) = why { p.error role="alert" { (why) } }
                    form method="post" action="/console/sign-in" {
                        label for="key" { "API key" }
                        input #key type="password" name="key" autocomplete="off"
                            required[!keyless] placeholder="enrichd_…";
                        @if keyless {
                            p.hint { "This loopback server takes no keys: leave the field empty." }
                        }
                        button type="submit" { "Sign in" }
                    }
                    p.hint {
                        "What you see and may do follows your key's scopes and purposes. "
                        "The key stays on the server; the session ends when you sign out, "
                        "after a while unused, or at the latest at the end of the day."
                    }
                }
            }
        }
    }
}

/// The start page: what this caller can do here.
pub fn home(session: &Session) -> Markup {
    let caller = &session.caller;
    let purposes = match &caller.purposes {
        Some(p) => p.iter().cloned().collect::<Vec<_>>().join(", "),
        None => "every declared purpose".to_owned(),
    };
    html! {
        p { "Your key's scopes: " strong { (caller.scopes.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(", ")) }
            ". Purposes: " strong { (purposes) } "." }
        ul.cards {
            @if caller.allows(Scope::Enrich) {
                li { a href="/console/case" { "Case view" } " — verify a contact: verdict, reasons, identity graph, provenance." }
            }
            @if caller.allows(Scope::Access) || caller.allows(Scope::Erase) {
                li { a href="/console/privacy" { "Privacy desk" } " — a data subject's access report, erasure and objection." }
            }
            @if caller.allows(Scope::Stream) {
                li { a href="/console/batches" { "Batches" } " — upload a list, watch it run, download the results." }
            }
            @if caller.allows(Scope::Sources) {
                li { a href="/console/sources" { "Sources" } " — the catalog and how each source has answered." }
            }
        }
    }
}

/// An API refusal, in the page.
pub fn refusal(message: &str) -> Markup {
    html! { p.error role="alert" { (message) } }
}

/// The session's CSRF token as a hidden field.
pub fn csrf(session: &Session) -> Markup {
    html! { input type="hidden" name="csrf" value=(session.csrf); }
}

/// A `<select>` of the purposes this caller may use, `chosen` selected.
pub fn purpose_select(session: &Session, declared: &[String], chosen: &str) -> Markup {
    let usable: Vec<&String> = declared
        .iter()
        .filter(|p| session.caller.allows_purpose(p))
        .collect();
    html! {
        label for="purpose" { "Purpose" }
        select #purpose name="purpose" required {
            @for p in usable { option value=(p) selected[p.as_str() == chosen] { (p) } }
        }
    }
}

/// The lawful basis and its evidence reference.
pub fn basis_fields(chosen: &str) -> Markup {
    const BASES: [(&str, &str); 4] = [
        ("legitimate_interests", "Legitimate interests, Art. 6(1)(f)"),
        ("contract", "Contract, Art. 6(1)(b)"),
        ("consent", "Consent, Art. 6(1)(a)"),
        ("legal_obligation", "Legal obligation, Art. 6(1)(c)"),
    ];
    html! {
        label for="basis" { "Lawful basis" }
        select #basis name="basis" {
            @for (value, text) in BASES { option value=(value) selected[value == chosen] { (text) } }
        }
        label for="reference" { "Evidence reference (LIA, contract or consent)" }
        input #reference name="reference" required placeholder="LIA-1";
    }
}

/// The request fields of an enrichment claim, from the form's values.
pub fn claim(purpose: &str, basis: &str, reference: &str) -> serde_json::Value {
    let (basis_name, evidence) = match basis {
        "contract" => ("LAWFUL_BASIS_CONTRACT", "contractRef"),
        "consent" => ("LAWFUL_BASIS_CONSENT", "consentRef"),
        "legal_obligation" => (
            "LAWFUL_BASIS_LEGAL_OBLIGATION",
            "legitimateInterestAssessmentRef",
        ),
        _ => (
            "LAWFUL_BASIS_LEGITIMATE_INTERESTS",
            "legitimateInterestAssessmentRef",
        ),
    };
    serde_json::json!({
        "purpose": purpose,
        "lawfulBasis": basis_name,
        "evidence": { evidence: reference },
    })
}

/// An enum value's name without its type prefix, in words
/// ("VERDICT_ACCEPT" -> "accept").
pub fn words(name: &str, prefix: &str) -> String {
    name.strip_prefix(prefix)
        .unwrap_or(name)
        .to_ascii_lowercase()
        .replace('_', " ")
}

/// A timestamp as a person reads it (UTC, to the minute).
pub fn when(ts: Option<&pbjson_types::Timestamp>) -> String {
    ts.and_then(|t| chrono::DateTime::from_timestamp(t.seconds, 0))
        .map(|t| t.format("%Y-%m-%d %H:%M UTC").to_string())
        .unwrap_or_else(|| "—".to_owned())
}
