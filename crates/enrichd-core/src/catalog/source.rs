//! A source as enrichd runs it: compiled from its declaration (regexes,
//! selectors, templates parsed), valid by construction.
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use regex::Regex;
use scraper::Selector;

pub use super::spec::Role;
use super::template::Template;
use crate::model::{Field, InputKind};

/// How a response body is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum BodyFormat {
    Json,
    Html,
    Text,
}

/// How a request body template is encoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Deserialize, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum BodyEncoding {
    #[default]
    Raw,
    Json,
    /// `application/x-www-form-urlencoded`: values percent-encoded.
    Form,
}

/// Where a value comes from in a response.
#[derive(Debug, Clone)]
pub enum Locator {
    /// RFC 6901 JSON pointer.
    Json(String),
    /// First element matching the selector; its text, or an attribute.
    Css {
        selector: Selector,
        css: String,
        attr: Option<String>,
    },
    /// A regex over the body text; the capture group's match.
    Regex { regex: Regex, group: usize },
    /// Inside a list item: the item element itself (its text or an attribute).
    Item { attr: Option<String> },
}

impl Locator {
    pub fn describe(&self) -> String {
        match self {
            Locator::Json(p) => p.clone(),
            Locator::Css {
                css, attr: Some(a), ..
            } => format!("{css} @{a}"),
            Locator::Css { css, .. } => css.clone(),
            Locator::Regex { regex, .. } => regex.as_str().to_owned(),
            Locator::Item { attr: Some(a) } => format!("@{a}"),
            Locator::Item { attr: None } => "text()".to_owned(),
        }
    }
}

/// A list of linked accounts: `each` selects the items, the rest is per item.
#[derive(Debug, Clone)]
pub struct AccountsExtract {
    pub each: Locator,
    pub platform: Option<Locator>,
    pub url: Option<Locator>,
    pub username: Option<Locator>,
}

/// A list of breaches in a JSON answer, as JSON pointers.
#[derive(Debug, Clone)]
pub struct BreachesExtract {
    pub each: String,
    pub name: String,
    pub title: Option<String>,
    pub domain: Option<String>,
    pub date: Option<String>,
    pub data_classes: Option<String>,
    pub sensitive: Option<String>,
}

#[derive(Debug, Clone, Default)]
pub struct Extract {
    pub fields: BTreeMap<Field, Locator>,
    pub extra: BTreeMap<String, Locator>,
    pub accounts: Option<AccountsExtract>,
    pub breaches: Option<BreachesExtract>,
}

impl Extract {
    /// Whether any of it is a CSS selector, so the page must be parsed as
    /// HTML: a source that only detects (status, markers) or reads with
    /// regexes never builds the page's tree.
    pub fn reads_markup(&self) -> bool {
        let css = |l: &Locator| matches!(l, Locator::Css { .. });
        self.fields.values().any(css)
            || self.extra.values().any(css)
            || self.accounts.as_ref().is_some_and(|a| {
                css(&a.each)
                    || [&a.platform, &a.url, &a.username]
                        .into_iter()
                        .flatten()
                        .any(css)
            })
    }
}

/// What a pivot takes from a finding.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PivotFrom {
    Field(Field),
    AccountUsername,
    AccountUrl,
    Extra(String),
}

#[derive(Debug, Clone)]
pub struct Pivot {
    pub from: PivotFrom,
    pub to: InputKind,
}

#[derive(Debug, Clone)]
pub struct Detect {
    pub found_status: Vec<u16>,
    pub not_found_status: Vec<u16>,
    pub present: Vec<String>,
    pub absent: Vec<String>,
    pub json_pointer: Option<String>,
    pub redirect_means_absent: bool,
    pub waf_markers: Vec<String>,
}

#[derive(Debug, Clone)]
pub struct HttpRequest {
    pub method: http::Method,
    pub url: Template,
    pub headers: Vec<(http::header::HeaderName, Template)>,
    /// Sent only when every environment variable they name is set.
    pub optional_headers: Vec<(http::header::HeaderName, Template)>,
    /// HTTP Basic credentials: user name and password templates.
    pub basic_auth: Option<(Template, Template)>,
    pub body: Option<(Template, BodyEncoding)>,
    pub response_format: BodyFormat,
}

#[derive(Debug, Clone)]
pub struct HttpSource {
    pub request: HttpRequest,
    pub detect: Detect,
    pub extract: Extract,
    pub pivots: Vec<Pivot>,
}

/// The kinds of source; each kind is one variant and one engine module.
#[derive(Debug, Clone)]
pub enum SourceKind {
    Http(Box<HttpSource>),
    /// The MX records of the email's domain.
    DnsMx,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RateLimit {
    pub per_second: f64,
    pub burst: u32,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Retry {
    pub attempts: u32,
    pub backoff: Duration,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Limits {
    pub timeout: Duration,
    pub rate_limit: RateLimit,
    pub max_concurrency: u32,
    pub cache_ttl: Duration,
    pub negative_ttl: Duration,
    pub retry: Retry,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Network {
    /// The origins (scheme, host and port) this source may reach on a
    /// private, loopback or otherwise non-public address; empty for most.
    pub private_origins: Vec<url::Origin>,
    pub max_redirects: u32,
}

#[derive(Debug, Clone)]
pub struct Source {
    /// Shared with every answer, profile and provenance of this source.
    pub id: std::sync::Arc<str>,
    pub name: String,
    pub platform: std::sync::Arc<str>,
    pub tags: Vec<String>,
    pub weight: f64,
    pub data_categories: Vec<String>,
    pub purposes: Vec<String>,
    pub public: bool,
    /// `None` when the source runs; otherwise why not.
    pub disabled: Option<String>,
    /// The Art. 9 category presence on the site would reveal (never asked).
    pub special_category: Option<String>,
    /// Usernames known to have an account there, and known not to.
    pub known_present: Vec<String>,
    pub known_absent: Vec<String>,
    pub input: InputKind,
    pub input_pattern: Option<Regex>,
    /// What its findings are about (a profile unless the catalog says).
    pub role: Role,
    pub kind: SourceKind,
    pub limits: Limits,
    pub network: Network,
    /// The catalog file it came from.
    pub file: PathBuf,
}

impl Source {
    pub fn enabled(&self) -> bool {
        self.disabled.is_none()
    }

    pub fn serves(&self, purpose: &str) -> bool {
        self.purposes.iter().any(|p| p == purpose)
    }

    pub fn pivots(&self) -> &[Pivot] {
        match &self.kind {
            SourceKind::Http(h) => &h.pivots,
            SourceKind::DnsMx => &[],
        }
    }
}
