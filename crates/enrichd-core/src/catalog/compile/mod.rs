//! Compiling a declaration into a runnable `Source`: every problem is
//! collected (prefixed with where it is), nothing stops at the first.
use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use http::header::{HeaderName, HeaderValue};
use regex::Regex;

mod extract;

use super::source::*;
use super::spec::*;
use super::template::Template;
use crate::model::InputKind;
use extract::{compile_extract, compile_pivot};

/// Collects problems for one source, prefixed with where they are.
pub struct Problems<'a> {
    pub prefix: String,
    pub out: &'a mut Vec<String>,
}

impl Problems<'_> {
    pub(super) fn push(&mut self, what: impl std::fmt::Display) {
        self.out.push(format!("{}: {what}", self.prefix));
    }

    pub fn push_dup(&mut self, previous: &Path) {
        self.push(format!(
            "duplicate id (also declared in {})",
            previous.display()
        ));
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
    env: &dyn Fn(&str) -> Option<String>,
    p: &mut Problems<'_>,
) -> Vec<(HeaderName, Template)> {
    headers
        .iter()
        .filter_map(|(name, value)| {
            let header = HeaderName::from_bytes(name.as_bytes())
                .map_err(|_| p.push(format!("{at}.{name}: not a valid header name")))
                .ok();
            // Placeholders are visible ASCII, so a value that is no header
            // value as written holds a control character (CR, LF, NUL...):
            // every request of the source would fail.
            if HeaderValue::from_str(value).is_err() {
                p.push(format!(
                    "{at}.{name}: the value holds a character a header value cannot (a \
                     control character such as CR, LF or NUL, or non-ASCII text)"
                ));
                return None;
            }
            let template = compile_template(value, &format!("{at}.{name}"), p)?;
            // A secret is checked the same way, without printing it.
            for var in template.env_vars() {
                if env(var).is_some_and(|v| HeaderValue::from_str(&v).is_err()) {
                    p.push(format!(
                        "{at}.{name}: the environment variable {var} holds a character a \
                         header value cannot (a control character such as CR or LF)"
                    ));
                }
            }
            Some((header?, template))
        })
        .collect()
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
    check_identity(spec, purposes, p);
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
    check_limits(spec, p);
    let mut disabled = match &spec.special_category {
        // Asking whether someone is on a dating, health or political site
        // is itself processing data of that category (Art. 9(1)): the
        // question is not put, so there is nothing to return, cache or leak.
        Some(category) => {
            if !crate::model::ART9_CATEGORIES.contains(&category.as_str()) {
                p.push(format!(
                    "special_category: {category:?} is not one of {}",
                    crate::model::ART9_CATEGORIES.join(", ")
                ));
            }
            Some(format!(
                "Art. 9 special category ({category}): presence on this site would reveal it, \
                 so it is never asked"
            ))
        }
        None => (!spec.enabled).then(|| {
            spec.disabled_reason
                .clone()
                .unwrap_or_else(|| "disabled in the catalog".to_owned())
        }),
    };
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
            Some(r) => compile_http(spec, r, env, &mut disabled, p),
        },
    };
    if let Some(k) = &kind {
        check_role(spec, k, p);
    }
    let private_origins = kind
        .as_ref()
        .map(|k| compile_private_origins(spec, k, p))
        .unwrap_or_default();
    if p.out.len() > before {
        return None;
    }
    Some(assemble(
        spec,
        file,
        input_pattern,
        disabled,
        kind?,
        private_origins,
    ))
}

/// The origins a source may reach on private addresses: its URL's fixed
/// origin with `allow_private`, or the origins it lists. A source whose URL
/// is its input (a pivot from a profile an attacker may write) can never
/// borrow "its own origin": it names the private origins it may reach.
fn compile_private_origins(
    spec: &SourceSpec,
    kind: &SourceKind,
    p: &mut Problems<'_>,
) -> Vec<url::Origin> {
    let n = &spec.network;
    let mut origins = Vec::new();
    // (A dns_mx source sends no HTTP: the setting has nothing to allow.)
    if let (true, SourceKind::Http(h)) = (n.allow_private, kind) {
        match h.request.url.fixed_origin() {
            Some(origin) => origins.push(origin),
            None => p.push(
                "network.allow_private: needs a request.url with a fixed host; a source \
                 whose URL comes from its input lists the private origins it may reach \
                 in network.private_origins",
            ),
        }
    }
    for text in &n.private_origins {
        match url::Url::parse(text) {
            Ok(u)
                if matches!(u.scheme(), "http" | "https")
                    && u.has_host()
                    && u.username().is_empty()
                    && u.password().is_none()
                    && u.path() == "/"
                    && u.query().is_none()
                    && u.fragment().is_none() =>
            {
                origins.push(u.origin())
            }
            _ => p.push(format!(
                "network.private_origins: {text:?} is not an origin (http(s)://host[:port])"
            )),
        }
    }
    origins
}

/// A role's findings are read from what the source extracts: a breach
/// source lists breaches, a phone-line source takes a number, a mailbox
/// source an address.
fn check_role(spec: &SourceSpec, kind: &SourceKind, p: &mut Problems<'_>) {
    use crate::catalog::spec::Role;
    let breaches = matches!(kind, SourceKind::Http(h) if h.extract.breaches.is_some());
    match spec.role {
        Role::Breaches if !breaches => {
            p.push("role = \"breaches\" needs [source.extract.breaches]")
        }
        Role::Profile | Role::PhoneLine | Role::Mailbox if breaches => {
            p.push("extract.breaches: only a source with role = \"breaches\" lists breaches")
        }
        Role::PhoneLine
            if !matches!(spec.input, InputKind::PhoneE164 | InputKind::PhoneNational) =>
        {
            p.push("role = \"phone_line\" takes input = \"phone_e164\" or \"phone_national\"")
        }
        Role::Mailbox | Role::Breaches
            if !matches!(
                spec.input,
                InputKind::Email | InputKind::EmailMd5 | InputKind::EmailSha256
            ) =>
        {
            p.push("this role takes the address: input = \"email\" (or a hash of it)")
        }
        _ => {}
    }
    /// What a `phone_line` source may give.
    const PHONE_LINE_EXTRAS: &[&str] = &[
        "carrier",
        "line_type",
        "caller_name",
        "last_sim_swap",
        "sim_swapped_in_period",
        "sim_swap_period",
        "call_forwarding",
    ];
    let named = |names: &[&str]| matches!(kind, SourceKind::Http(h) if names.iter().any(|n| h.extract.extra.contains_key(*n)));
    match spec.role {
        Role::PhoneLine if !named(PHONE_LINE_EXTRAS) => p.push(
            "role = \"phone_line\" reads extract.extra.carrier, line_type, caller_name, \
             last_sim_swap, sim_swapped_in_period, sim_swap_period or call_forwarding; \
             it names none",
        ),
        Role::Mailbox if !named(&["status"]) => {
            p.push("role = \"mailbox\" reads extract.extra.status; it is not named")
        }
        Role::MessagingApps if !matches!(kind, SourceKind::Http(h) if !h.extract.extra.is_empty()) => {
            p.push(
                "role = \"messaging_apps\" reads extract.extra: one key per platform \
                 (WhatsApp = { json = \"...\" }); it names none",
            )
        }
        _ => {}
    }
}

/// Id, names, weight and purposes.
fn check_identity(spec: &SourceSpec, purposes: &[String], p: &mut Problems<'_>) {
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
}

/// Timeouts, rate limits, concurrency, retries, redirects.
fn check_limits(spec: &SourceSpec, p: &mut Problems<'_>) {
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
}

/// The request, detection, extraction and pivots of an HTTP source. A
/// required secret missing from the environment disables the source.
fn compile_http(
    spec: &SourceSpec,
    r: &RequestSpec,
    env: &dyn Fn(&str) -> Option<String>,
    disabled: &mut Option<String>,
    p: &mut Problems<'_>,
) -> Option<SourceKind> {
    let method = http::Method::from_bytes(r.method.to_ascii_uppercase().as_bytes())
        .map_err(|_| {
            p.push(format!(
                "request.method: {:?} is not an HTTP method",
                r.method
            ))
        })
        .ok();
    let url = compile_template(&r.url, "request.url", p);
    if let Some(url) = &url {
        let whole = r.url == "{input}";
        if whole && spec.input != InputKind::Url {
            p.push("request.url: \"{input}\" alone needs input = \"url\"");
        }
        if !whole && url.fixed_origin().is_none() {
            p.push(
                "request.url: must start with http:// or https://, a literal host and \
                 a '/' before any placeholder",
            );
        }
    }
    let headers = compile_headers(&r.headers, "request.headers", env, p);
    let optional_headers = compile_headers(&r.optional_headers, "request.optional_headers", env, p);
    let basic_auth = r.basic_auth.as_ref().and_then(|b| {
        let user = compile_template(&b.username, "request.basic_auth.username", p);
        let password = compile_template(&b.password, "request.basic_auth.password", p);
        Some((user?, password?))
    });
    if let Some(url) = &url
        && url.env_vars().next().is_some()
    {
        p.push(
            "request.url: no {env.NAME} secrets in the URL (it is returned as every \
             field's provenance); send them in request.headers or request.basic_auth",
        );
    }
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
    let uses_region = url.as_ref().is_some_and(|u| u.uses_input_region())
        || headers.iter().any(|(_, t)| t.uses_input_region())
        || body.as_ref().is_some_and(|(t, _)| t.uses_input_region());
    if uses_region && spec.input != InputKind::PhoneE164 {
        p.push(
            "request: {input_region} is a phone number's region: it needs input = \"phone_e164\"",
        );
    }
    // A required secret that is missing disables the source, loudly.
    let mut required = headers
        .iter()
        .flat_map(|(_, t)| t.env_vars())
        .collect::<Vec<_>>();
    if let Some((user, password)) = &basic_auth {
        required.extend(user.env_vars().chain(password.env_vars()));
    }
    if let Some((b, _)) = &body {
        required.extend(b.env_vars());
    }
    let mut missing: Vec<&str> = Vec::new();
    for name in required {
        if env(name).is_none() && !missing.contains(&name) {
            missing.push(name);
        }
    }
    if !missing.is_empty() {
        disabled.get_or_insert_with(|| {
            format!("secret not set: set {} to enable", missing.join(" and "))
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
        waf_markers: d
            .waf_markers
            .clone()
            .unwrap_or_else(|| DEFAULT_WAF_MARKERS.iter().map(|s| s.to_string()).collect()),
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
                basic_auth,
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

fn assemble(
    spec: &SourceSpec,
    file: &Path,
    input_pattern: Option<Regex>,
    disabled: Option<String>,
    kind: SourceKind,
    private_origins: Vec<url::Origin>,
) -> Source {
    let l = &spec.limits;
    Source {
        id: spec.id.as_str().into(),
        name: spec.name.clone(),
        platform: spec.platform.as_str().into(),
        tags: spec.tags.clone(),
        weight: spec.weight,
        data_categories: spec.data_categories.clone(),
        purposes: spec.purposes.clone(),
        public: spec.public,
        disabled,
        special_category: spec.special_category.clone(),
        known_present: spec.known_present.clone(),
        known_absent: spec.known_absent.clone(),
        input: spec.input,
        input_pattern,
        role: spec.role,
        kind,
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
            private_origins,
            max_redirects: spec.network.max_redirects,
        },
        file: file.to_owned(),
    }
}
