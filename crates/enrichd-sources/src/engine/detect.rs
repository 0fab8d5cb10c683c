//! Found, not found, or "could not tell": a pure function of the declaration
//! and the response. It never guesses: anything it cannot read as one of the
//! declared answers (a 403, a 5xx, a bot wall, a body in the wrong format) is
//! an error or rate-limited, never `found` and never `not_found`.
use std::time::Duration;

use reqwest::header::{HeaderMap, RETRY_AFTER};

use crate::fetch::Fetched;
use enrichd_core::catalog::source::{BodyFormat, Detect};

/// A response body, parsed per the source's declared format. Detection
/// leaves HTML as text: the tree is built only for a source that reads it
/// with CSS selectors, and off the runtime's threads (`engine::http`).
pub enum Parsed {
    Json(serde_json::Value),
    Html(scraper::Html),
    Text,
}

pub enum Verdict {
    Found(Parsed),
    NotFound(String),
    Error(String),
    RateLimited(Option<Duration>),
}

/// `Retry-After` as seconds or an HTTP date (how long from `now`).
pub fn retry_after(headers: &HeaderMap, now: chrono::DateTime<chrono::Utc>) -> Option<Duration> {
    let value = headers.get(RETRY_AFTER)?.to_str().ok()?.trim();
    if let Ok(secs) = value.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let when = chrono::DateTime::parse_from_rfc2822(value).ok()?;
    let secs = (when.with_timezone(&chrono::Utc) - now).num_seconds();
    Some(Duration::from_secs(secs.max(0) as u64))
}

/// `now` is when the answer came (an HTTP-date `Retry-After` counts from it).
pub fn detect(
    d: &Detect,
    format: BodyFormat,
    fetched: &Fetched,
    now: chrono::DateTime<chrono::Utc>,
) -> Verdict {
    let status = fetched.status.as_u16();
    if status == 429 {
        return Verdict::RateLimited(retry_after(&fetched.headers, now));
    }
    if status == 503
        && let Some(after) = retry_after(&fetched.headers, now)
    {
        return Verdict::RateLimited(Some(after));
    }
    if fetched.status.is_redirection() {
        return if d.redirect_means_absent {
            Verdict::NotFound(format!(
                "HTTP {status} redirect: the account does not exist"
            ))
        } else {
            Verdict::Error(format!("unexpected HTTP {status} redirect"))
        };
    }
    if d.not_found_status.contains(&status) {
        return Verdict::NotFound(format!("HTTP {status}"));
    }
    if !d.found_status.contains(&status) {
        return Verdict::Error(format!("unexpected HTTP status {status}"));
    }

    let text = String::from_utf8_lossy(&fetched.body);
    if let Some(marker) = d.waf_markers.iter().find(|m| text.contains(m.as_str())) {
        return Verdict::Error(format!(
            "a bot wall or captcha page answered (marker {marker:?})"
        ));
    }
    if let Some(marker) = d.absent.iter().find(|m| text.contains(m.as_str())) {
        return Verdict::NotFound(format!(
            "the page says the account does not exist ({marker:?})"
        ));
    }
    if !d.present.is_empty() && !d.present.iter().any(|m| text.contains(m.as_str())) {
        return Verdict::Error(
            "none of the declared presence markers appear: the page is not a profile page".into(),
        );
    }
    let parsed = match format {
        BodyFormat::Json => match serde_json::from_slice::<serde_json::Value>(&fetched.body) {
            Ok(v) => Parsed::Json(v),
            Err(_) if text.trim_start().starts_with('<') => {
                return Verdict::Error("HTML where JSON was declared".into());
            }
            Err(e) => return Verdict::Error(format!("invalid JSON: {e}")),
        },
        BodyFormat::Html | BodyFormat::Text => Parsed::Text,
    };
    if let (Some(pointer), Parsed::Json(value)) = (&d.json_pointer, &parsed)
        && value
            .pointer(pointer)
            .is_none_or(serde_json::Value::is_null)
    {
        return Verdict::NotFound(format!("{pointer} is absent from the answer"));
    }
    Verdict::Found(parsed)
}
