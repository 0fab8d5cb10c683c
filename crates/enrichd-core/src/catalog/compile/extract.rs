//! Compiling what a source extracts: locators (JSON pointers, CSS
//! selectors, regexes), linked-account lists and pivots.
use regex::Regex;
use scraper::Selector;

use super::Problems;
use crate::catalog::source::*;
use crate::catalog::spec::*;
use crate::model::Field;

fn compile_locator(
    spec: &LocatorSpec,
    at: &str,
    in_item: bool,
    p: &mut Problems<'_>,
) -> Option<Locator> {
    let set = [
        spec.json.is_some(),
        spec.css.is_some(),
        spec.regex.is_some(),
    ]
    .iter()
    .filter(|b| **b)
    .count();
    let item_self = in_item && set == 0 && (spec.attr.is_some() || spec.text);
    if set != 1 && !item_self {
        p.push(format!(
            "{at}: give exactly one of json, css or regex{}",
            if in_item {
                " (or attr / text = true for the item itself)"
            } else {
                ""
            }
        ));
        return None;
    }
    if item_self {
        return Some(Locator::Item {
            attr: spec.attr.clone(),
        });
    }
    if let Some(pointer) = &spec.json {
        if !(pointer.is_empty() || pointer.starts_with('/')) {
            p.push(format!(
                "{at}.json: {pointer:?} is not a JSON pointer (it starts with '/')"
            ));
            return None;
        }
        return Some(Locator::Json(pointer.clone()));
    }
    if let Some(css) = &spec.css {
        return match Selector::parse(css) {
            Ok(selector) => Some(Locator::Css {
                selector,
                css: css.clone(),
                attr: spec.attr.clone(),
            }),
            Err(_) => {
                p.push(format!("{at}.css: {css:?} is not a valid CSS selector"));
                None
            }
        };
    }
    let pattern = spec.regex.as_deref().unwrap_or_default();
    match Regex::new(pattern) {
        Ok(regex) => {
            let group = spec
                .group
                .unwrap_or(if regex.captures_len() > 1 { 1 } else { 0 });
            if group >= regex.captures_len() {
                p.push(format!("{at}.group: the regex has no group {group}"));
                return None;
            }
            Some(Locator::Regex { regex, group })
        }
        Err(e) => {
            let e = e
                .to_string()
                .split_whitespace()
                .collect::<Vec<_>>()
                .join(" ");
            p.push(format!("{at}.regex: {e}"));
            None
        }
    }
}

pub(super) fn compile_extract(
    spec: &ExtractSpec,
    format: BodyFormat,
    p: &mut Problems<'_>,
) -> Extract {
    let mut extract = Extract::default();
    let fields = [
        (Field::Url, &spec.url),
        (Field::Username, &spec.username),
        (Field::DisplayName, &spec.display_name),
        (Field::Bio, &spec.bio),
        (Field::Location, &spec.location),
        (Field::AvatarUrl, &spec.avatar_url),
        (Field::CreatedAt, &spec.created_at),
        (Field::LastActiveAt, &spec.last_active_at),
        (Field::Followers, &spec.followers),
        (Field::Posts, &spec.posts),
    ];
    for (field, locator) in fields {
        if let Some(l) = locator
            && let Some(l) = compile_locator(l, &format!("extract.{}", field.name()), false, p)
        {
            check_format(&l, format, &format!("extract.{}", field.name()), p);
            extract.fields.insert(field, l);
        }
    }
    for (name, l) in &spec.extra {
        if let Some(l) = compile_locator(l, &format!("extract.extra.{name}"), false, p) {
            extract.extra.insert(name.clone(), l);
        }
    }
    if let Some(accounts) = &spec.accounts {
        let each = compile_locator(&accounts.each, "extract.accounts.each", false, p);
        let item = |l: &Option<LocatorSpec>, name: &str, p: &mut Problems<'_>| {
            l.as_ref()
                .and_then(|l| compile_locator(l, &format!("extract.accounts.{name}"), true, p))
        };
        let platform = item(&accounts.platform, "platform", p);
        let url = item(&accounts.url, "url", p);
        let username = item(&accounts.username, "username", p);
        if let Some(each) = each {
            extract.accounts = Some(AccountsExtract {
                each,
                platform,
                url,
                username,
            });
        }
    }
    if let Some(b) = &spec.breaches {
        extract.breaches = compile_breaches(b, format, p);
    }
    extract
}

fn compile_breaches(
    b: &BreachesSpec,
    format: BodyFormat,
    p: &mut Problems<'_>,
) -> Option<BreachesExtract> {
    if format != BodyFormat::Json {
        p.push("extract.breaches: needs request.response_format = \"json\"");
        return None;
    }
    let mut ok = true;
    let mut pointer = |value: &Option<String>, name: &str| {
        if let Some(v) = value
            && !(v.is_empty() || v.starts_with('/'))
        {
            p.push(format!(
                "extract.breaches.{name}: {v:?} is not a JSON pointer (it starts with '/')"
            ));
            ok = false;
        }
        value.clone()
    };
    let each = pointer(&Some(b.each.clone()), "each")?;
    let name = pointer(&Some(b.name.clone()), "name")?;
    let breaches = BreachesExtract {
        each,
        name,
        title: pointer(&b.title, "title"),
        domain: pointer(&b.domain, "domain"),
        date: pointer(&b.date, "date"),
        data_classes: pointer(&b.data_classes, "data_classes"),
        sensitive: pointer(&b.sensitive, "sensitive"),
    };
    ok.then_some(breaches)
}

/// A JSON pointer on an HTML source (or a CSS selector on JSON) can never match.
fn check_format(l: &Locator, format: BodyFormat, at: &str, p: &mut Problems<'_>) {
    match (l, format) {
        (Locator::Json(_), BodyFormat::Html | BodyFormat::Text) => p.push(format!(
            "{at}: a JSON pointer needs request.response_format = \"json\""
        )),
        (Locator::Css { .. }, BodyFormat::Json | BodyFormat::Text) => p.push(format!(
            "{at}: a CSS selector needs request.response_format = \"html\""
        )),
        _ => {}
    }
}

pub(super) fn compile_pivot(spec: &PivotSpec, p: &mut Problems<'_>) -> Option<Pivot> {
    let from = match spec.from.as_str() {
        "accounts.username" => PivotFrom::AccountUsername,
        "accounts.url" => PivotFrom::AccountUrl,
        other => match other.strip_prefix("extra.") {
            Some(name) => PivotFrom::Extra(name.to_owned()),
            None => match Field::from_name(other) {
                Some(f) => PivotFrom::Field(f),
                None => {
                    p.push(format!(
                        "pivots: from = {other:?} is not a profile field, accounts.username, \
                         accounts.url or extra.<name>"
                    ));
                    return None;
                }
            },
        },
    };
    Some(Pivot { from, to: spec.to })
}
