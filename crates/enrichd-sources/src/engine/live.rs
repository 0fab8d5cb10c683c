//! Known accounts keep detection honest: each enabled source is asked with
//! the usernames known to have an account there (`known_present`) and known
//! not to (`known_absent`), the way WhatsMyName and Maigret keep their lists
//! true; a detection that no longer tells them apart is reported.
use std::time::Duration;

use futures::StreamExt;

use super::http::run;
use crate::fetch::{HttpClient, HttpConfig};
use enrichd_core::catalog::input::Input;
use enrichd_core::catalog::source::SourceKind;
use enrichd_core::catalog::{Catalog, Source};
use enrichd_core::model::{Confidence, Outcome};

/// Sources asked at once (each asks its own accounts one after another,
/// paced by its rate limit).
const AT_ONCE: usize = 16;

/// One known account asked of one source.
#[derive(Debug, Clone)]
pub struct Check {
    pub source: String,
    pub account: String,
    /// Known to exist (`known_present`) or known not to.
    pub present: bool,
    /// What the source answered: "found", "not_found", "error", ...
    pub got: String,
    pub detail: String,
    /// A canary: a random name nobody holds (`canary`).
    pub canary: bool,
}

impl Check {
    /// The detection told this account right.
    pub fn holds(&self) -> bool {
        self.got == if self.present { "found" } else { "not_found" }
    }
}

/// Asks every enabled HTTP source of `catalog` (whose id starts with `only`,
/// if given) with its known accounts, and every username source for a
/// random name nobody holds (`canary`).
pub async fn check(
    catalog: &Catalog,
    http: &HttpConfig,
    only: Option<&str>,
) -> Result<Vec<Check>, String> {
    let client = HttpClient::build(http, catalog.private_origins())?;
    let sources: Vec<&Source> = catalog
        .sources()
        .iter()
        .map(AsRef::as_ref)
        .filter(|s| s.enabled() && only.is_none_or(|o| s.id.starts_with(o)))
        .filter(|s| !s.known_present.is_empty() || !s.known_absent.is_empty())
        .collect();
    // The futures first, then the stream: a closure over the sources in
    // the stream makes the whole future unspawnable (its lifetimes are
    // higher-ranked).
    let asks: Vec<_> = sources
        .into_iter()
        .map(|source| ask_known(source, &client, catalog.secrets()))
        .collect();
    let mut checks = at_once(asks).await;
    checks.extend(canary(catalog, &client, only).await);
    checks.sort_by(|a, b| (&a.source, &a.account).cmp(&(&b.source, &b.account)));
    Ok(checks)
}

/// `AT_ONCE` of the asks at a time; every check they made.
async fn at_once<F, I>(asks: Vec<F>) -> Vec<Check>
where
    F: std::future::Future<Output = I>,
    I: IntoIterator<Item = Check>,
{
    futures::stream::iter(asks)
        .buffer_unordered(AT_ONCE)
        .collect::<Vec<_>>()
        .await
        .into_iter()
        .flatten()
        .collect()
}

async fn ask_known(
    source: &Source,
    client: &HttpClient,
    secrets: &enrichd_core::catalog::Secrets,
) -> Vec<Check> {
    let pause = pause_of(source);
    let accounts = source
        .known_present
        .iter()
        .map(|a| (a, true))
        .chain(source.known_absent.iter().map(|a| (a, false)));
    let mut out = Vec::new();
    for (i, (account, present)) in accounts.enumerate() {
        if i > 0 {
            tokio::time::sleep(pause).await;
        }
        let Some((got, detail)) = ask_one(source, client, secrets, account).await else {
            return Vec::new();
        };
        out.push(Check {
            source: source.id.to_string(),
            account: account.clone(),
            present,
            got,
            detail,
            canary: false,
        });
    }
    out
}

/// The pause between two asks of one source: its rate limit.
fn pause_of(source: &Source) -> Duration {
    Duration::from_secs_f64(1.0 / source.limits.rate_limit.per_second.max(0.01))
}

/// Asks one HTTP source with one account: what it answered ("found",
/// "not_found", "timeout", ...) and its detail; `None` for a source that
/// is not asked over HTTP.
pub async fn ask_one(
    source: &Source,
    client: &HttpClient,
    secrets: &enrichd_core::catalog::Secrets,
    account: &str,
) -> Option<(String, String)> {
    let SourceKind::Http(h) = &source.kind else {
        return None;
    };
    let secrets = secrets.clone();
    let env = move |name: &str| secrets.get(name);
    let input = Input {
        kind: source.input,
        value: account.to_owned(),
        confidence: Confidence::Exact,
        depth: 0,
        via: None,
    };
    let asked = tokio::time::timeout(
        source.limits.timeout,
        run(
            source,
            h,
            &input,
            client,
            &env,
            &enrichd_core::clock::SharedClock::system(),
        ),
    )
    .await;
    Some(match asked {
        Ok(asked) => (
            outcome_name(&asked.outcome.outcome),
            asked.outcome.detail.unwrap_or_default(),
        ),
        Err(_) => (
            "timeout".to_owned(),
            "no answer within limits.timeout".into(),
        ),
    })
}

/// A username nobody holds: 16 random letters and digits after "zq", the
/// way maigret asks sites about names that cannot be anyone's.
pub fn canary_name() -> String {
    use rand::Rng;
    const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
    let mut rng = rand::rng();
    let tail: String = (0..16)
        .map(|_| char::from(ALPHABET[rng.random_range(0..ALPHABET.len())]))
        .collect();
    format!("zq{tail}")
}

/// The sources a canary asks: enabled HTTP sources that take a username.
pub fn canary_sources<'a>(
    catalog: &'a Catalog,
    only: Option<&'a str>,
) -> impl Iterator<Item = &'a Source> + 'a {
    catalog
        .sources()
        .iter()
        .map(AsRef::as_ref)
        .filter(move |s| s.enabled() && only.is_none_or(|o| s.id.starts_with(o)))
        .filter(|s| {
            s.input == enrichd_core::model::InputKind::Username
                && matches!(s.kind, SourceKind::Http(_))
        })
}

/// Asks every username source of `catalog` (whose id starts with `only`)
/// for a random name nobody holds: a source that says it is there claims
/// every name. Each answer is a check of an account known absent.
pub async fn canary(catalog: &Catalog, client: &HttpClient, only: Option<&str>) -> Vec<Check> {
    let asks: Vec<_> = canary_sources(catalog, only)
        .map(|source| canary_check(source, client, catalog.secrets()))
        .collect();
    let mut checks = at_once(asks).await;
    checks.sort_by(|a, b| a.source.cmp(&b.source));
    checks
}

/// One source asked for a random name nobody holds.
pub async fn canary_check(
    source: &Source,
    client: &HttpClient,
    secrets: &enrichd_core::catalog::Secrets,
) -> Option<Check> {
    let probe = canary_name();
    let (got, detail) = ask_one(source, client, secrets, &probe).await?;
    Some(Check {
        source: source.id.to_string(),
        account: probe,
        present: false,
        got,
        detail,
        canary: true,
    })
}

fn outcome_name(outcome: &Outcome) -> String {
    match outcome {
        Outcome::Found => "found".into(),
        Outcome::NotFound => "not_found".into(),
        other => format!("{other:?}").to_lowercase(),
    }
}
