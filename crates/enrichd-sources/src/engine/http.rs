//! Runs one HTTP source for one input: render, fetch, detect, extract.

use url::Url;

use super::detect::{Parsed, Verdict, detect};
use super::extract::{Extracted, extract};
use crate::fetch::{FetchError, Header, HttpClient, Outgoing, Reach, check_destination};
use enrichd_core::catalog::input::Input;
use enrichd_core::catalog::source::{BodyEncoding, BodyFormat, Extract, HttpSource, Source};
use enrichd_core::catalog::template::RenderError;
use enrichd_core::model::{
    Breach, Confidence, Field, LinkedAccount, Method, Outcome, Profile, Provenance, SkipReason,
    SourceOutcome, Sourced, Value,
};

pub type Env = dyn Fn(&str) -> Option<String> + Send + Sync;

fn prepare(h: &HttpSource, input: &str, env: &Env) -> Result<Outgoing, RenderError> {
    let r = &h.request;
    let url = r.url.render_url(input, env)?;
    let url = Url::parse(&url).map_err(|_| RenderError::NotAUrl)?;
    let mut headers = Vec::new();
    let optional = r
        .optional_headers
        .iter()
        .filter(|(_, t)| t.env_vars().all(|v| env(v).is_some()));
    for (name, t) in r.headers.iter().chain(optional) {
        headers.push(Header {
            name: name.clone(),
            value: t.render_raw(input, env)?,
            secret: t.env_vars().next().is_some(),
        });
    }
    if let Some((user, password)) = &r.basic_auth {
        use base64::Engine as _;
        let pair = format!(
            "{}:{}",
            user.render_raw(input, env)?,
            password.render_raw(input, env)?
        );
        headers.push(Header {
            name: reqwest::header::AUTHORIZATION,
            value: format!(
                "Basic {}",
                base64::engine::general_purpose::STANDARD.encode(pair)
            ),
            secret: true,
        });
    }
    let body = match &r.body {
        Some((t, BodyEncoding::Json)) => Some(t.render_json(input, env)?),
        Some((t, BodyEncoding::Raw)) => Some(t.render_raw(input, env)?),
        Some((t, BodyEncoding::Form)) => Some(t.render_form(input, env)?),
        None => None,
    };
    Ok(Outgoing {
        method: r.method.clone(),
        url,
        headers,
        body,
    })
}

/// What asking one source yielded.
#[derive(Debug, Clone)]
pub struct Asked {
    pub outcome: SourceOutcome,
    pub profile: Option<Profile>,
    /// A transient failure worth retrying (connect error, 502/503/504, a 429
    /// without Retry-After), if the request is idempotent.
    pub retryable: bool,
    /// The cache entry a fresh hit was answered from, and its key's slot
    /// (the pipeline's memo of a fully cached answer is checked against
    /// them).
    pub hit: Option<(crate::cache::Slot, std::sync::Arc<crate::cache::Entry>)>,
}

impl Asked {
    pub fn new(outcome: SourceOutcome) -> Self {
        Self {
            outcome,
            profile: None,
            retryable: false,
            hit: None,
        }
    }
}

/// The request for `input`, or why none is sent: an input the source
/// cannot take, or a destination it may not reach (`blocked`). Decided before
/// the source's rate limit is asked, so refused links cost no slot and no wait.
pub fn preflight(
    source: &Source,
    h: &HttpSource,
    input: &Input,
    env: &Env,
) -> Result<Outgoing, Box<Asked>> {
    let refuse = |outcome: Outcome, detail: String| {
        Box::new(Asked::new(
            SourceOutcome::new(&source.id, input.kind, input.depth, outcome).with_detail(detail),
        ))
    };
    let request = prepare(h, &input.value, env).map_err(|e| {
        refuse(
            Outcome::Skipped(SkipReason::InputNotApplicable),
            format!("the input cannot be sent to this source: {e}"),
        )
    })?;
    if let Err(e) = check_destination(&request.url, &source.network.private_origins) {
        warn_blocked(&source.id, &e);
        return Err(refuse(Outcome::Blocked, e.to_string()));
    }
    Ok(request)
}

/// At most one "blocked" WARN per source per this long: a hostile profile
/// listing thousands of private links made thousands of lines.
const BLOCKED_WARN_EVERY: std::time::Duration = std::time::Duration::from_secs(60);

/// A blocked request, said once per source per [`BLOCKED_WARN_EVERY`] with
/// how many more were blocked since the last line (every one is in the
/// answer's outcomes and the metrics).
fn warn_blocked(source: &str, error: &dyn std::fmt::Display) {
    static SAID: std::sync::Mutex<Option<Said>> = std::sync::Mutex::new(None);
    let mut said = SAID.lock().unwrap_or_else(|p| p.into_inner());
    let now = tokio::time::Instant::now();
    if let Some(quiet) = said.get_or_insert_with(Said::default).say(source, now) {
        tracing::warn!(
            source = %source,
            error = %error,
            also_blocked_since_last_line = quiet,
            "source request blocked"
        );
    }
}

/// When each source's last "blocked" line was said, and how many were
/// blocked quietly since.
#[derive(Default)]
struct Said(std::collections::HashMap<String, (tokio::time::Instant, u64)>);

impl Said {
    /// `Some(quiet since the last line)` when a line is due at `now`.
    fn say(&mut self, source: &str, now: tokio::time::Instant) -> Option<u64> {
        match self.0.get_mut(source) {
            Some((at, quiet)) if now.duration_since(*at) < BLOCKED_WARN_EVERY => {
                *quiet += 1;
                None
            }
            entry => {
                let quiet = entry.map_or(0, |(_, quiet)| *quiet);
                self.0.insert(source.to_owned(), (now, 0));
                Some(quiet)
            }
        }
    }
}

/// What a source's CSS selectors read from a page. Building the page's tree
/// is the one costly step of reading an answer (a 2 MiB page of plain
/// paragraphs: about a quarter of a second), so it runs on tokio's blocking
/// pool, not on a thread serving other calls.
async fn read_page(e: &Extract, body: &bytes::Bytes) -> Result<Extracted, String> {
    let (e, body) = (e.clone(), body.clone());
    tokio::task::spawn_blocking(move || {
        let text = String::from_utf8_lossy(&body);
        let html = super::html::parse(&text)?;
        Ok(extract(&e, &Parsed::Html(html), &text))
    })
    .await
    .unwrap_or_else(|e| Err(format!("the page could not be read: {e}")))
}

pub async fn run(
    source: &Source,
    h: &HttpSource,
    input: &Input,
    client: &HttpClient,
    env: &Env,
    clock: &enrichd_core::clock::SharedClock,
) -> Asked {
    let started = enrichd_core::clock::Stopwatch::start();
    let mut outcome = SourceOutcome::new(&source.id, input.kind, input.depth, Outcome::Error);
    let done = |mut o: SourceOutcome, profile| {
        o.latency = started.elapsed();
        Asked {
            outcome: o,
            profile,
            retryable: false,
            hit: None,
        }
    };
    let request = match preflight(source, h, input, env) {
        Ok(r) => r,
        Err(refused) => return done(refused.outcome, None),
    };
    let reach = Reach {
        source: &source.id,
        private_origins: &source.network.private_origins,
        max_redirects: source.network.max_redirects,
        follow_redirects: !h.detect.redirect_means_absent,
    };
    let fetched = match client.fetch(request, reach).await {
        Ok(f) => f,
        Err(e) => {
            outcome.detail = Some(e.to_string());
            if let FetchError::Connect(_) = e {
                let mut asked = done(outcome, None);
                asked.retryable = true;
                return asked;
            }
            if let FetchError::Blocked(_) = e {
                warn_blocked(&source.id, &e);
                outcome.outcome = Outcome::Blocked;
            }
            return done(outcome, None);
        }
    };
    outcome.http_status = Some(fetched.status.as_u16());
    let retrieved_at = clock.utc();
    let raw = String::from_utf8_lossy(&fetched.body);
    let found = match detect(&h.detect, h.request.response_format, &fetched, retrieved_at) {
        Verdict::NotFound(why) => {
            outcome.outcome = Outcome::NotFound;
            outcome.detail = Some(why);
            return done(outcome, None);
        }
        Verdict::Error(why) => {
            outcome.detail = Some(why);
            let mut asked = done(outcome, None);
            asked.retryable = matches!(fetched.status.as_u16(), 502..=504);
            return asked;
        }
        Verdict::RateLimited(after) => {
            outcome.outcome = Outcome::RateLimited;
            outcome.retry_after = after;
            outcome.detail = Some(format!("HTTP {}", fetched.status.as_u16()));
            let mut asked = done(outcome, None);
            asked.retryable = after.is_none();
            return asked;
        }
        // Read from the page's tree, built below off the runtime's threads.
        Verdict::Found(_)
            if h.request.response_format == BodyFormat::Html && h.extract.reads_markup() =>
        {
            None
        }
        Verdict::Found(parsed) => Some(extract(&h.extract, &parsed, &raw)),
    };
    let found = match found {
        Some(found) => found,
        None => match read_page(&h.extract, &fetched.body).await {
            Ok(found) => found,
            Err(why) => {
                outcome.detail = Some(why);
                return done(outcome, None);
            }
        },
    };
    let provenance = |method: Method, selector: String| Provenance {
        source_id: source.id.clone(),
        url: fetched.url.to_string(),
        retrieved_at,
        method,
        selector,
        confidence: input.confidence,
    };
    let resolve = |v: Value| match v {
        // Relative links on a page are relative to the page.
        Value::Text(t) => Value::Text(fetched.url.join(&t).map(|u| u.to_string()).unwrap_or(t)),
        other => other,
    };
    let mut fields = std::collections::BTreeMap::new();
    for (field, hit) in found.fields {
        let value = match field {
            Field::Url | Field::AvatarUrl => resolve(hit.value),
            _ => hit.value,
        };
        fields.insert(
            field,
            Sourced {
                value,
                provenance: provenance(hit.method, hit.selector),
            },
        );
    }
    if h.request.response_format == BodyFormat::Html && !fields.contains_key(&Field::Url) {
        fields.insert(
            Field::Url,
            Sourced {
                value: Value::Text(fetched.url.to_string()),
                provenance: provenance(Method::Detection, String::new()),
            },
        );
    }
    let extra = found
        .extra
        .into_iter()
        .map(|(k, hit)| {
            (
                k,
                Sourced {
                    value: hit.value,
                    provenance: provenance(hit.method, hit.selector),
                },
            )
        })
        .collect();
    let accounts = found
        .accounts
        .into_iter()
        .map(|a| LinkedAccount {
            platform: a.platform,
            url: a
                .url
                .map(|u| fetched.url.join(&u).map(|u| u.to_string()).unwrap_or(u)),
            username: a.username,
            provenance: provenance(
                match h.request.response_format {
                    BodyFormat::Json => Method::JsonPointer,
                    BodyFormat::Html => Method::CssSelector,
                    BodyFormat::Text => Method::Regex,
                },
                a.selector,
            ),
        })
        .collect();
    let breach_selector = h
        .extract
        .breaches
        .as_ref()
        .map(|b| b.each.clone())
        .unwrap_or_default();
    // Membership of a sensitive site (Art. 9) is not kept, only counted.
    let (sensitive, breaches): (Vec<_>, Vec<_>) =
        found.breaches.into_iter().partition(|b| b.sensitive);
    let breaches = breaches
        .into_iter()
        .map(|b| Breach {
            name: b.name,
            title: b.title,
            domain: b.domain,
            date: b.date,
            data_classes: b.data_classes,
            provenance: provenance(Method::JsonPointer, breach_selector.clone()),
        })
        .collect();
    outcome.outcome = Outcome::Found;
    let profile = Profile {
        source_id: source.id.clone(),
        platform: source.platform.clone(),
        provenance: provenance(Method::Detection, String::new()),
        fields,
        extra,
        accounts,
        corroborated_by: Vec::new(),
        breaches,
        sensitive_breaches_withheld: u32::try_from(sensitive.len()).unwrap_or(u32::MAX),
        found_via: None,
        doubt: None,
    };
    done(outcome, Some(profile))
}

/// Confidence of an input derived from a finding made with `parent`.
pub fn pivot_confidence(parent: Confidence) -> Confidence {
    parent.min(Confidence::Pivot)
}

#[cfg(test)]
mod tests {
    use super::{BLOCKED_WARN_EVERY, Said};

    #[test]
    fn a_blocked_line_is_said_once_per_source_per_minute_with_the_count_kept_quiet() {
        let mut said = Said::default();
        let t0 = tokio::time::Instant::now();
        assert_eq!(said.say("a", t0), Some(0));
        for _ in 0..999 {
            assert_eq!(said.say("a", t0), None);
        }
        assert_eq!(said.say("b", t0), Some(0), "each source its own line");
        assert_eq!(said.say("a", t0 + BLOCKED_WARN_EVERY), Some(999));
        assert_eq!(said.say("a", t0 + BLOCKED_WARN_EVERY), None);
    }
}
