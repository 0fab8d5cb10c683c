//! Reading fields out of a found response: JSON pointers, CSS selectors
//! (scraper), regexes. Pure functions; a locator that matches nothing leaves
//! the field out.
use std::collections::BTreeMap;

use chrono::{DateTime, NaiveDate, TimeZone, Utc};
use scraper::ElementRef;

use super::detect::Parsed;
use enrichd_core::catalog::source::{AccountsExtract, BreachesExtract, Extract, Locator};
use enrichd_core::model::{Field, Method, Value};

/// Longest text value kept (bios can be long; pages can be hostile).
const MAX_TEXT_CHARS: usize = 2000;

/// One extracted value and the locator that produced it.
#[derive(Debug, Clone, PartialEq)]
pub struct Hit {
    pub value: Value,
    pub method: Method,
    pub selector: String,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct AccountHit {
    pub platform: Option<String>,
    pub url: Option<String>,
    pub username: Option<String>,
    pub selector: String,
}

#[derive(Debug, Default)]
pub struct Extracted {
    pub fields: BTreeMap<Field, Hit>,
    pub extra: BTreeMap<String, Hit>,
    pub accounts: Vec<AccountHit>,
    pub breaches: Vec<BreachHit>,
}

/// One breach read from a breach source's answer.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct BreachHit {
    pub name: String,
    pub title: Option<String>,
    pub domain: Option<String>,
    pub date: Option<String>,
    pub data_classes: Vec<String>,
    pub sensitive: bool,
}

/// Most breaches kept from one answer, and data classes per breach.
const MAX_BREACHES: usize = 500;
const MAX_DATA_CLASSES: usize = 64;
/// Most linked accounts kept from one answer (a link hub lists tens; a
/// site that lists thousands would make every answer megabytes).
const MAX_ACCOUNTS: usize = 100;

fn breaches(b: &BreachesExtract, parsed: &Parsed) -> Vec<BreachHit> {
    let Parsed::Json(v) = parsed else {
        return Vec::new();
    };
    let Some(items) = v.pointer(&b.each).and_then(|v| v.as_array()) else {
        return Vec::new();
    };
    let text = |item: &serde_json::Value, p: &Option<String>| {
        p.as_deref()
            .and_then(|p| item.pointer(p))
            .and_then(json_text)
    };
    items
        .iter()
        .filter_map(|item| {
            let name = item.pointer(&b.name).and_then(json_text)?;
            let data_classes = b
                .data_classes
                .as_deref()
                .and_then(|p| item.pointer(p))
                .and_then(|v| v.as_array())
                .map(|a| {
                    a.iter()
                        .filter_map(json_text)
                        .take(MAX_DATA_CLASSES)
                        .collect()
                })
                .unwrap_or_default();
            let sensitive = b
                .sensitive
                .as_deref()
                .and_then(|p| item.pointer(p))
                .is_some_and(|v| v.as_bool() == Some(true));
            Some(BreachHit {
                name,
                title: text(item, &b.title),
                domain: text(item, &b.domain),
                date: text(item, &b.date),
                data_classes,
                sensitive,
            })
        })
        .take(MAX_BREACHES)
        .collect()
}

fn method(l: &Locator) -> Method {
    match l {
        Locator::Json(_) => Method::JsonPointer,
        Locator::Css { .. } | Locator::Item { .. } => Method::CssSelector,
        Locator::Regex { .. } => Method::Regex,
    }
}

fn clean(text: &str) -> Option<String> {
    let collapsed = text.split_whitespace().collect::<Vec<_>>().join(" ");
    if collapsed.is_empty() {
        return None;
    }
    Some(collapsed.chars().take(MAX_TEXT_CHARS).collect())
}

fn json_text(v: &serde_json::Value) -> Option<String> {
    match v {
        serde_json::Value::String(s) => clean(s),
        serde_json::Value::Number(n) => Some(n.to_string()),
        serde_json::Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

fn element_text(el: ElementRef<'_>, attr: &Option<String>) -> Option<String> {
    match attr {
        Some(a) => el.value().attr(a).and_then(clean),
        None => clean(&el.text().collect::<String>()),
    }
}

/// Evaluates a locator against the whole response.
fn locate(l: &Locator, parsed: &Parsed, raw: &str) -> Option<String> {
    match (l, parsed) {
        (Locator::Json(p), Parsed::Json(v)) => v.pointer(p).and_then(json_text),
        (Locator::Css { selector, attr, .. }, Parsed::Html(html)) => {
            html.select(selector).find_map(|el| element_text(el, attr))
        }
        (Locator::Regex { regex, group }, _) => regex
            .captures(raw)
            .and_then(|c| c.get(*group))
            .and_then(|m| clean(m.as_str())),
        _ => None,
    }
}

/// Parses the forms sources use for times: RFC 3339, a date, Unix seconds or
/// milliseconds; none before 1990 (`is_online_era`: "unknown" as APIs
/// write it).
pub fn parse_time(s: &str) -> Option<DateTime<Utc>> {
    let s = s.trim();
    let t = if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        t.with_timezone(&Utc)
    } else if let Ok(d) = NaiveDate::parse_from_str(s, "%Y-%m-%d") {
        Utc.from_utc_datetime(&d.and_hms_opt(0, 0, 0)?)
    } else {
        let n: f64 = s.parse().ok()?;
        let secs = if n > 1e11 { n / 1000.0 } else { n };
        Utc.timestamp_opt(secs as i64, 0).single()?
    };
    enrichd_core::model::is_online_era(t).then_some(t)
}

/// Parses counts: "1234", "1,234", "1.2k", "3M".
pub fn parse_count(s: &str) -> Option<i64> {
    let s: String = s
        .trim()
        .chars()
        .filter(|c| !matches!(c, ',' | '_' | ' '))
        .collect();
    let (number, factor) = match s.chars().last()? {
        'k' | 'K' => (&s[..s.len() - 1], 1_000.0),
        'm' | 'M' => (&s[..s.len() - 1], 1_000_000.0),
        _ => (s.as_str(), 1.0),
    };
    let n: f64 = number.parse().ok()?;
    (n.is_finite() && n >= 0.0).then(|| (n * factor).round() as i64)
}

fn typed(field: Field, text: String) -> Option<Value> {
    match field {
        Field::CreatedAt | Field::LastActiveAt => parse_time(&text).map(Value::Time),
        Field::Followers | Field::Posts => parse_count(&text).map(Value::Count),
        _ => Some(Value::Text(text)),
    }
}

fn accounts(a: &AccountsExtract, parsed: &Parsed, raw: &str) -> Vec<AccountHit> {
    let selector = a.each.describe();
    // An account is a link or a name; the first `MAX_ACCOUNTS` are kept,
    // and nothing is made for the items after them.
    let hit = |platform, url: Option<String>, username: Option<String>| {
        (url.is_some() || username.is_some()).then(|| AccountHit {
            platform,
            url,
            username,
            selector: selector.clone(),
        })
    };
    match (&a.each, parsed) {
        (Locator::Json(p), Parsed::Json(v)) => {
            let items = v
                .pointer(p)
                .and_then(|v| v.as_array())
                .map_or(&[][..], Vec::as_slice);
            let sub = |l: &Option<Locator>, item: &serde_json::Value| match l {
                Some(Locator::Json(p)) => item.pointer(p).and_then(json_text),
                _ => None,
            };
            items
                .iter()
                .filter_map(|item| {
                    hit(
                        sub(&a.platform, item),
                        sub(&a.url, item),
                        sub(&a.username, item),
                    )
                })
                .take(MAX_ACCOUNTS)
                .collect()
        }
        (Locator::Css { selector: each, .. }, Parsed::Html(html)) => {
            let sub = |l: &Option<Locator>, el: ElementRef<'_>| match l {
                Some(Locator::Css { selector, attr, .. }) => {
                    el.select(selector).find_map(|e| element_text(e, attr))
                }
                Some(Locator::Item { attr }) => element_text(el, attr),
                _ => None,
            };
            html.select(each)
                .filter_map(|el| hit(sub(&a.platform, el), sub(&a.url, el), sub(&a.username, el)))
                .take(MAX_ACCOUNTS)
                .collect()
        }
        (Locator::Regex { regex, group }, _) => regex
            .captures_iter(raw)
            .filter_map(|c| c.get(*group))
            .filter_map(|m| {
                let text = clean(m.as_str());
                let sub = |l: &Option<Locator>| match l {
                    Some(Locator::Item { .. }) => text.clone(),
                    Some(Locator::Regex { regex, group }) => regex
                        .captures(m.as_str())
                        .and_then(|c| c.get(*group))
                        .and_then(|m| clean(m.as_str())),
                    _ => None,
                };
                hit(sub(&a.platform), sub(&a.url), sub(&a.username))
            })
            .take(MAX_ACCOUNTS)
            .collect(),
        _ => Vec::new(),
    }
}

pub fn extract(e: &Extract, parsed: &Parsed, raw: &str) -> Extracted {
    let mut out = Extracted::default();
    for (field, l) in &e.fields {
        if let Some(value) = locate(l, parsed, raw).and_then(|t| typed(*field, t)) {
            out.fields.insert(
                *field,
                Hit {
                    value,
                    method: method(l),
                    selector: l.describe(),
                },
            );
        }
    }
    for (name, l) in &e.extra {
        if let Some(text) = locate(l, parsed, raw) {
            out.extra.insert(
                name.clone(),
                Hit {
                    value: Value::Text(text),
                    method: method(l),
                    selector: l.describe(),
                },
            );
        }
    }
    if let Some(a) = &e.accounts {
        out.accounts = accounts(a, parsed, raw);
    }
    if let Some(b) = &e.breaches {
        out.breaches = breaches(b, parsed);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_and_counts_parse_from_common_forms() {
        let t = |s| parse_time(s).map(|t| t.to_rfc3339());
        assert_eq!(
            t("2011-01-25T18:44:36Z").as_deref(),
            Some("2011-01-25T18:44:36+00:00")
        );
        assert_eq!(
            t("2011-01-25").as_deref(),
            Some("2011-01-25T00:00:00+00:00")
        );
        assert_eq!(
            t("1134028003.0").as_deref(),
            Some("2005-12-08T07:46:43+00:00")
        );
        assert_eq!(
            t("1134028003000").as_deref(),
            Some("2005-12-08T07:46:43+00:00")
        );
        assert_eq!(t("yesterday"), None);
        // "Unknown", as APIs write it: no date.
        for unknown in ["0", "0001-01-01", "0001-01-01T00:00:00Z", "-62135596800"] {
            assert_eq!(t(unknown), None, "{unknown}");
        }
        assert_eq!(
            t("1990-01-01").as_deref(),
            Some("1990-01-01T00:00:00+00:00")
        );
        assert_eq!(parse_count("1,234"), Some(1234));
        assert_eq!(parse_count("1.2k"), Some(1200));
        assert_eq!(parse_count("3M"), Some(3_000_000));
        assert_eq!(parse_count("-5"), None);
        assert_eq!(parse_count("many"), None);
    }
}
