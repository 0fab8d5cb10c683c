//! The catalog's file format (TOML), as plain data, and its compilation into
//! [`Source`]s. Compilation reports every problem it finds, with the file and
//! the source id, instead of stopping at the first.
use std::collections::BTreeMap;
use std::time::Duration;

use serde::Deserialize;

use super::source::{BodyEncoding, BodyFormat};
use crate::model::InputKind;

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

/// What a source's findings are about. A profile (the default) is an
/// account of the person; the other roles feed their own answer fields and
/// are not profiles: they count for no footprint, interest or attribute.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    #[default]
    Profile,
    /// Data breaches the address appears in (`extract.breaches`): which
    /// breach and when, never the breached data.
    Breaches,
    /// What the phone network says of a number: `extract.extra` names
    /// `carrier`, `line_type`, `caller_name`, and a carrier's fraud
    /// packages `last_sim_swap` (RFC 3339), `sim_swapped_in_period`,
    /// `sim_swap_period` and `call_forwarding` ("true"/"false").
    PhoneLine,
    /// A mailbox check by an email verifier: `extract.extra` names
    /// `status` (deliverable, undeliverable, risky, unknown) and `score`.
    Mailbox,
    /// A phone-intelligence API's answer of which messaging apps a number
    /// is registered on: each `extract.extra` key is a platform ("WhatsApp")
    /// whose value reads as present (`yes`, `true`, `registered`) or absent
    /// (`no`, `false`, `not_registered`); any other value (`checking`) is
    /// unknown and left out.
    MessagingApps,
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
    /// Why a source with `enabled = false` is off (shown by `sources check`
    /// and ListSources).
    #[serde(default)]
    pub disabled_reason: Option<String>,
    /// The GDPR Art. 9 special category that presence on this site reveals
    /// (a dating, health or political site): such a source is never asked.
    #[serde(default)]
    pub special_category: Option<String>,
    /// Usernames known to have an account (`known_present`) and known not
    /// to (`known_absent`), for checking that detection still works.
    #[serde(default)]
    pub known_present: Vec<String>,
    #[serde(default)]
    pub known_absent: Vec<String>,
    pub input: InputKind,
    #[serde(default)]
    pub input_pattern: Option<String>,
    #[serde(default)]
    pub role: Role,
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
    /// HTTP Basic credentials (templates, usually `{env.NAME}` secrets).
    #[serde(default)]
    pub basic_auth: Option<BasicAuthSpec>,
    #[serde(default)]
    pub body: Option<String>,
    #[serde(default)]
    pub body_encoding: BodyEncoding,
    #[serde(default = "text")]
    pub response_format: BodyFormat,
}

#[derive(Debug, Deserialize)]
pub struct BasicAuthSpec {
    pub username: String,
    pub password: String,
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

/// A list of breaches in a JSON answer: `each` points at the array, the
/// rest at fields of one item.
#[derive(Debug, Deserialize)]
pub struct BreachesSpec {
    pub each: String,
    pub name: String,
    #[serde(default)]
    pub title: Option<String>,
    #[serde(default)]
    pub domain: Option<String>,
    #[serde(default)]
    pub date: Option<String>,
    /// An array of strings: the kinds of data exposed.
    #[serde(default)]
    pub data_classes: Option<String>,
    /// A boolean: the breach is of a site whose membership is sensitive
    /// (it is then suppressed as Art. 9 data).
    #[serde(default)]
    pub sensitive: Option<String>,
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
    #[serde(default)]
    pub breaches: Option<BreachesSpec>,
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
    /// May reach its URL template's fixed origin on a private address.
    #[serde(default)]
    pub allow_private: bool,
    /// Origins (`scheme://host[:port]`) a source may reach on private
    /// addresses, for sources whose URL is their input.
    #[serde(default)]
    pub private_origins: Vec<String>,
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
            private_origins: Vec::new(),
            max_redirects: max_redirects(),
        }
    }
}
