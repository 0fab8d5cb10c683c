//! The catalog's file format (TOML), as plain data, and its compilation into
//! [`Source`]s. Compilation reports every problem it finds, with the file and
//! the source id, instead of stopping at the first.
use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use regex::Regex;
use reqwest::header::HeaderName;
use scraper::Selector;
use serde::Deserialize;

use super::input::InputKind;
use super::source::*;
use super::template::Template;

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum KindSpec {
    #[default]
    Http,
    DnsMx,
}

fn yes() -> bool {
    true
}
fn one() -> f64 {
    1.0
}

#[derive(Debug, Deserialize)]
pub struct SourceSpec {
    pub id: String,
    pub name: String,
    pub platform: String,
    #[serde(default)]
    pub tags: Vec<String>,
    #[serde(default = "one")]
    pub weight: f64,
    #[serde(default)]
    pub data_categories: Vec<String>,
    pub purposes: Vec<String>,
    #[serde(default = "yes")]
    pub public: bool,
    #[serde(default = "yes")]
    pub enabled: bool,
    pub input: InputKind,
    #[serde(default)]
    pub input_pattern: Option<String>,
    #[serde(default)]
    pub kind: KindSpec,
    #[serde(default)]
    pub request: Option<RequestSpec>,
    #[serde(default)]
    pub detect: DetectSpec,
    #[serde(default)]
    pub extract: ExtractSpec,
    #[serde(default)]
    pub pivots: Vec<PivotSpec>,
    #[serde(default)]
    pub limits: LimitsSpec,
    #[serde(default)]
    pub network: NetworkSpec,
}

fn get() -> String {
    "GET".into()
}
fn text() -> BodyFormat {
    BodyFormat::Text
}

#[derive(Debug, Deserialize)]
pub struct RequestSpec {
    #[serde(default = "get")]
    pub method: String,
    pub url: String,
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    #[serde(default)]
    pub optional_headers: BTreeMap<String, String>,
    #[serde(default)]
    pub body: Option<String>,
    #[serde(default)]
    pub body_encoding: BodyEncoding,
    #[serde(default = "text")]
    pub response_format: BodyFormat,
}

fn found_status() -> Vec<u16> {
    vec![200]
}
fn not_found_status() -> Vec<u16> {
    vec![404, 410]
}

/// Markers of bot walls and captcha pages: a page carrying one of them says
/// nothing about the account, so it is an error, never a finding.
pub const DEFAULT_WAF_MARKERS: &[&str] = &[
    "cf-browser-verification",
    "cf_chl_opt",
    "<title>Just a moment...</title>",
    "Attention Required! | Cloudflare",
    "captcha-delivery.com",
    "px-captcha",
    "Request unsuccessful. Incapsula incident ID",
];

#[derive(Debug, Deserialize)]
pub struct DetectSpec {
    #[serde(default = "found_status")]
    pub found_status: Vec<u16>,
    #[serde(default = "not_found_status")]
    pub not_found_status: Vec<u16>,
    /// Found only if one of these appears.
    #[serde(default)]
    pub present: Vec<String>,
    /// Not found if one of these appears (soft 404).
    #[serde(default)]
    pub absent: Vec<String>,
    /// Found only if this JSON pointer exists (and the body is JSON).
    #[serde(default)]
    pub json_pointer: Option<String>,
    /// A redirect means the account does not exist.
    #[serde(default)]
    pub redirect_means_absent: bool,
    /// Replaces the built-in bot-wall markers.
    #[serde(default)]
    pub waf_markers: Option<Vec<String>>,
}

impl Default for DetectSpec {
    fn default() -> Self {
        Self {
            found_status: found_status(),
            not_found_status: not_found_status(),
            present: Vec::new(),
            absent: Vec::new(),
            json_pointer: None,
            redirect_means_absent: false,
            waf_markers: None,
        }
    }
}

#[derive(Debug, Default, Clone, Deserialize)]
pub struct LocatorSpec {
    #[serde(default)]
    pub json: Option<String>,
    #[serde(default)]
    pub css: Option<String>,
    #[serde(default)]
    pub attr: Option<String>,
    #[serde(default)]
    pub regex: Option<String>,
    #[serde(default)]
    pub group: Option<usize>,
    /// Inside a list item: the item element's own text.
    #[serde(default)]
    pub text: bool,
}

#[derive(Debug, Default, Deserialize)]
pub struct AccountsSpec {
    pub each: LocatorSpec,
    #[serde(default)]
    pub platform: Option<LocatorSpec>,
    #[serde(default)]
    pub url: Option<LocatorSpec>,
    #[serde(default)]
    pub username: Option<LocatorSpec>,
}

#[derive(Debug, Default, Deserialize)]
pub struct ExtractSpec {
    #[serde(default)]
    pub url: Option<LocatorSpec>,
    #[serde(default)]
    pub username: Option<LocatorSpec>,
    #[serde(default)]
    pub display_name: Option<LocatorSpec>,
    #[serde(default)]
    pub bio: Option<LocatorSpec>,
    #[serde(default)]
    pub location: Option<LocatorSpec>,
    #[serde(default)]
    pub avatar_url: Option<LocatorSpec>,
    #[serde(default)]
    pub created_at: Option<LocatorSpec>,
    #[serde(default)]
    pub last_active_at: Option<LocatorSpec>,
    #[serde(default)]
    pub followers: Option<LocatorSpec>,
    #[serde(default)]
    pub posts: Option<LocatorSpec>,
    #[serde(default)]
    pub extra: BTreeMap<String, LocatorSpec>,
    #[serde(default)]
    pub accounts: Option<AccountsSpec>,
}

#[derive(Debug, Deserialize)]
pub struct PivotSpec {
    /// "username", "url" (or any profile field), "accounts.username",
    /// "accounts.url", "extra.<name>".
    pub from: String,
    #[serde(rename = "as")]
    pub to: InputKind,
}

#[derive(Debug, Deserialize)]
pub struct RateLimitSpec {
    pub per_second: f64,
    #[serde(default = "burst")]
    pub burst: u32,
}
fn burst() -> u32 {
    1
}

#[derive(Debug, Deserialize)]
pub struct RetrySpec {
    #[serde(default = "attempts")]
    pub attempts: u32,
    #[serde(default = "backoff", with = "humantime_serde")]
    pub backoff: Duration,
}
fn attempts() -> u32 {
    2
}
fn backoff() -> Duration {
    Duration::from_millis(200)
}

#[derive(Debug, Deserialize)]
pub struct LimitsSpec {
    #[serde(default = "timeout", with = "humantime_serde")]
    pub timeout: Duration,
    #[serde(default = "rate_limit")]
    pub rate_limit: RateLimitSpec,
    #[serde(default = "max_concurrency")]
    pub max_concurrency: u32,
    #[serde(default = "cache_ttl", with = "humantime_serde")]
    pub cache_ttl: Duration,
    #[serde(default = "negative_ttl", with = "humantime_serde")]
    pub negative_ttl: Duration,
    #[serde(default = "retry")]
    pub retry: RetrySpec,
}
fn timeout() -> Duration {
    Duration::from_secs(5)
}
fn rate_limit() -> RateLimitSpec {
    RateLimitSpec {
        per_second: 1.0,
        burst: 1,
    }
}
fn max_concurrency() -> u32 {
    4
}
fn cache_ttl() -> Duration {
    Duration::from_secs(24 * 3600)
}
fn negative_ttl() -> Duration {
    Duration::from_secs(3600)
}
fn retry() -> RetrySpec {
    RetrySpec {
        attempts: attempts(),
        backoff: backoff(),
    }
}

impl Default for LimitsSpec {
    fn default() -> Self {
        Self {
            timeout: timeout(),
            rate_limit: rate_limit(),
            max_concurrency: max_concurrency(),
            cache_ttl: cache_ttl(),
            negative_ttl: negative_ttl(),
            retry: retry(),
        }
    }
}

#[derive(Debug, Deserialize)]
pub struct NetworkSpec {
    #[serde(default)]
    pub allow_private: bool,
    #[serde(default = "max_redirects")]
    pub max_redirects: u32,
}
fn max_redirects() -> u32 {
    3
}
impl Default for NetworkSpec {
    fn default() -> Self {
        Self {
            allow_private: false,
            max_redirects: max_redirects(),
        }
    }
}

/// Collects problems for one source, prefixed with where they are.
pub struct Problems<'a> {
    pub prefix: String,
    pub out: &'a mut Vec<String>,
}

impl Problems<'_> {
    fn push(&mut self, what: impl std::fmt::Display) {
        self.out.push(format!("{}: {what}", self.prefix));
    }

    pub fn push_dup(&mut self, previous: &Path) {
        self.push(format!(
            "duplicate id (also declared in {})",
            previous.display()
        ));
    }
}

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

fn compile_template(text: &str, at: &str, p: &mut Problems<'_>) -> Option<Template> {
    Template::parse(text)
        .map_err(|e| p.push(format!("{at}: {e}")))
        .ok()
}

fn compile_headers(
    headers: &BTreeMap<String, String>,
    at: &str,
    p: &mut Problems<'_>,
) -> Vec<(HeaderName, Template)> {
    headers
        .iter()
        .filter_map(|(name, value)| {
            let header = HeaderName::from_bytes(name.as_bytes())
                .map_err(|_| p.push(format!("{at}.{name}: not a valid header name")))
                .ok();
            let template = compile_template(value, &format!("{at}.{name}"), p);
            Some((header?, template?))
        })
        .collect()
}

fn compile_extract(spec: &ExtractSpec, format: BodyFormat, p: &mut Problems<'_>) -> Extract {
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
    extract
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

fn compile_pivot(spec: &PivotSpec, p: &mut Problems<'_>) -> Option<Pivot> {
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

/// Compiles one declaration. `env` reads secrets; `purposes` are the declared
/// purpose ids.
pub fn compile(
    spec: &SourceSpec,
    file: &Path,
    purposes: &[String],
    env: &dyn Fn(&str) -> Option<String>,
    p: &mut Problems<'_>,
) -> Option<Source> {
    let before = p.out.len();
    if spec.id.is_empty()
        || !spec
            .id
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-')
    {
        p.push("id: use lowercase letters, digits, '-' and '_'");
    }
    if spec.name.trim().is_empty() || spec.platform.trim().is_empty() {
        p.push("name and platform must not be empty");
    }
    if !(0.0..=10.0).contains(&spec.weight) {
        p.push(format!("weight: {} is outside 0..=10", spec.weight));
    }
    if spec.purposes.is_empty() {
        p.push("purposes: name at least one purpose the source may serve");
    }
    for purpose in &spec.purposes {
        if !purposes.contains(purpose) {
            p.push(format!(
                "purposes: {purpose:?} is not a declared purpose ({})",
                purposes.join(", ")
            ));
        }
    }
    let input_pattern = spec.input_pattern.as_deref().and_then(|pattern| {
        Regex::new(pattern)
            .map_err(|e| {
                p.push(format!(
                    "input_pattern: {}",
                    e.to_string().replace('\n', " ")
                ))
            })
            .ok()
    });

    let l = &spec.limits;
    if l.timeout.is_zero() || l.timeout > Duration::from_secs(120) {
        p.push("limits.timeout: must be more than 0 and at most 120s");
    }
    if !(l.rate_limit.per_second > 0.0 && l.rate_limit.per_second.is_finite()) {
        p.push("limits.rate_limit.per_second: must be more than 0");
    }
    if l.rate_limit.burst == 0 {
        p.push("limits.rate_limit.burst: must be at least 1");
    }
    if l.max_concurrency == 0 {
        p.push("limits.max_concurrency: must be at least 1");
    }
    if !(1..=3).contains(&l.retry.attempts) {
        p.push("limits.retry.attempts: must be 1, 2 or 3");
    }
    if spec.network.max_redirects > 10 {
        p.push("network.max_redirects: at most 10");
    }

    let mut disabled = (!spec.enabled).then(|| "disabled in the catalog".to_owned());
    let kind = match spec.kind {
        KindSpec::DnsMx => {
            if spec.input != InputKind::EmailDomain {
                p.push("kind = \"dns_mx\" takes input = \"email_domain\"");
            }
            if spec.request.is_some() {
                p.push("kind = \"dns_mx\" has no [request]");
            }
            Some(SourceKind::DnsMx)
        }
        KindSpec::Http => match &spec.request {
            None => {
                p.push("request: an HTTP source needs [source.request] with a url");
                None
            }
            Some(r) => {
                let method = reqwest::Method::from_bytes(r.method.to_ascii_uppercase().as_bytes())
                    .map_err(|_| {
                        p.push(format!(
                            "request.method: {:?} is not an HTTP method",
                            r.method
                        ))
                    })
                    .ok();
                let url = compile_template(&r.url, "request.url", p);
                if let Some(url) = &url {
                    let prefix = url.literal_prefix();
                    let whole = r.url == "{input}";
                    if whole && spec.input != InputKind::Url {
                        p.push("request.url: \"{input}\" alone needs input = \"url\"");
                    }
                    // The scheme, host and port are literal, closed by '/', '?' or '#',
                    // so no input can change where the request goes.
                    let literal_origin = matches!(
                        prefix.split_once("://"),
                        Some(("http" | "https", rest)) if rest.find(['/', '?', '#']).is_some_and(|i| i > 0)
                    );
                    if !whole && !literal_origin {
                        p.push(
                            "request.url: must start with http:// or https://, a literal host and \
                             a '/' before any placeholder",
                        );
                    }
                }
                let headers = compile_headers(&r.headers, "request.headers", p);
                let optional_headers =
                    compile_headers(&r.optional_headers, "request.optional_headers", p);
                let body = r
                    .body
                    .as_deref()
                    .and_then(|b| compile_template(b, "request.body", p))
                    .map(|t| (t, r.body_encoding));
                let uses_input = url.as_ref().is_some_and(|u| u.uses_input())
                    || headers.iter().any(|(_, t)| t.uses_input())
                    || body.as_ref().is_some_and(|(t, _)| t.uses_input());
                if url.is_some() && !uses_input {
                    p.push("request: no {input} placeholder in the url, headers or body");
                }
                // A required secret that is missing disables the source, loudly.
                let mut required = url.iter().flat_map(|u| u.env_vars()).collect::<Vec<_>>();
                required.extend(headers.iter().flat_map(|(_, t)| t.env_vars()));
                if let Some((b, _)) = &body {
                    required.extend(b.env_vars());
                }
                if let Some(missing) = required.iter().find(|name| env(name).is_none()) {
                    disabled.get_or_insert_with(|| {
                        format!("secret {missing} is not set in the environment")
                    });
                }

                let d = &spec.detect;
                if let Some(ptr) = &d.json_pointer {
                    if !(ptr.is_empty() || ptr.starts_with('/')) {
                        p.push(format!(
                            "detect.json_pointer: {ptr:?} is not a JSON pointer"
                        ));
                    }
                    if r.response_format != BodyFormat::Json {
                        p.push("detect.json_pointer: needs request.response_format = \"json\"");
                    }
                }
                if d.found_status.is_empty() {
                    p.push("detect.found_status: at least one status code");
                }
                if let Some(code) = d
                    .found_status
                    .iter()
                    .find(|c| d.not_found_status.contains(c))
                {
                    p.push(format!("detect: status {code} is both found and not found"));
                }
                if let Some(code) = d
                    .found_status
                    .iter()
                    .chain(&d.not_found_status)
                    .find(|c| !(100..=599).contains(*c))
                {
                    p.push(format!("detect: {code} is not an HTTP status code"));
                }
                let detect = Detect {
                    found_status: d.found_status.clone(),
                    not_found_status: d.not_found_status.clone(),
                    present: d.present.clone(),
                    absent: d.absent.clone(),
                    json_pointer: d.json_pointer.clone(),
                    redirect_means_absent: d.redirect_means_absent,
                    waf_markers: d.waf_markers.clone().unwrap_or_else(|| {
                        DEFAULT_WAF_MARKERS.iter().map(|s| s.to_string()).collect()
                    }),
                };
                let extract = compile_extract(&spec.extract, r.response_format, p);
                let pivots = spec
                    .pivots
                    .iter()
                    .filter_map(|pv| compile_pivot(pv, p))
                    .collect();
                match (method, url) {
                    (Some(method), Some(url)) => Some(SourceKind::Http(Box::new(HttpSource {
                        request: HttpRequest {
                            method,
                            url,
                            headers,
                            optional_headers,
                            body,
                            response_format: r.response_format,
                        },
                        detect,
                        extract,
                        pivots,
                    }))),
                    _ => None,
                }
            }
        },
    };

    if p.out.len() > before {
        return None;
    }
    Some(Source {
        id: spec.id.clone(),
        name: spec.name.clone(),
        platform: spec.platform.clone(),
        tags: spec.tags.clone(),
        weight: spec.weight,
        data_categories: spec.data_categories.clone(),
        purposes: spec.purposes.clone(),
        public: spec.public,
        disabled,
        input: spec.input,
        input_pattern,
        kind: kind?,
        limits: Limits {
            timeout: l.timeout,
            rate_limit: RateLimit {
                per_second: l.rate_limit.per_second,
                burst: l.rate_limit.burst,
            },
            max_concurrency: l.max_concurrency,
            cache_ttl: l.cache_ttl,
            negative_ttl: l.negative_ttl,
            retry: Retry {
                attempts: l.retry.attempts,
                backoff: l.retry.backoff,
            },
        },
        network: Network {
            allow_private: spec.network.allow_private,
            max_redirects: spec.network.max_redirects,
        },
        file: file.to_owned(),
    })
}
