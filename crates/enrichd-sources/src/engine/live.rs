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
}

impl Check {
    /// The detection told this account right.
    pub fn holds(&self) -> bool {
        self.got == if self.present { "found" } else { "not_found" }
    }
}

/// Asks every enabled HTTP source of `catalog` (whose id starts with `only`,
/// if given) with its known accounts.
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
    let checks = futures::stream::iter(sources)
        .map(|source| ask_known(source, &client, catalog.secrets()))
        .buffer_unordered(AT_ONCE)
        .collect::<Vec<_>>()
        .await;
    let mut checks: Vec<Check> = checks.into_iter().flatten().collect();
    checks.sort_by(|a, b| (&a.source, &a.account).cmp(&(&b.source, &b.account)));
    Ok(checks)
}

async fn ask_known(
    source: &Source,
    client: &HttpClient,
    secrets: &enrichd_core::catalog::Secrets,
) -> Vec<Check> {
    let SourceKind::Http(h) = &source.kind else {
        return Vec::new();
    };
    let pause = Duration::from_secs_f64(1.0 / source.limits.rate_limit.per_second.max(0.01));
    let accounts = source
        .known_present
        .iter()
        .map(|a| (a, true))
        .chain(source.known_absent.iter().map(|a| (a, false)));
    let secrets = secrets.clone();
    let env = move |name: &str| secrets.get(name);
    let mut out = Vec::new();
    for (i, (account, present)) in accounts.enumerate() {
        if i > 0 {
            tokio::time::sleep(pause).await;
        }
        let input = Input {
            kind: source.input,
            value: account.clone(),
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
        let (got, detail) = match asked {
            Ok(asked) => (
                outcome_name(&asked.outcome.outcome),
                asked.outcome.detail.unwrap_or_default(),
            ),
            Err(_) => (
                "timeout".to_owned(),
                "no answer within limits.timeout".into(),
            ),
        };
        out.push(Check {
            source: source.id.clone(),
            account: account.clone(),
            present,
            got,
            detail,
        });
    }
    out
}

fn outcome_name(outcome: &Outcome) -> String {
    match outcome {
        Outcome::Found => "found".into(),
        Outcome::NotFound => "not_found".into(),
        other => format!("{other:?}").to_lowercase(),
    }
}
