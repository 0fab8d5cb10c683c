//! A finished job's webhook: signed with HMAC-SHA-256 over the timestamp
//! and the body, retried with backoff, never to an address not allowed.
use std::time::Duration;

use hmac::{Hmac, Mac};
use sha2::Sha256;
use tracing::{info, warn};

use super::Jobs;
use crate::fetch::{Header, Outgoing, Reach};

/// Webhook deliveries: attempts, the first retry's delay (doubled each time).
pub(crate) const WEBHOOK_ATTEMPTS: u32 = 6;

pub(crate) const WEBHOOK_FIRST_RETRY: Duration = Duration::from_secs(1);

pub(crate) const WEBHOOK_TIMEOUT: Duration = Duration::from_secs(10);

/// The signature of a webhook delivery: hex HMAC-SHA-256 of
/// `"<timestamp>.<body>"` under `secret`.
pub fn sign(secret: &str, timestamp: &str, body: &str) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("any key length");
    mac.update(timestamp.as_bytes());
    mac.update(b".");
    mac.update(body.as_bytes());
    hex::encode(mac.finalize().into_bytes())
}

impl Jobs {
    /// Why a webhook could never be delivered to `url` (a non-public
    /// address not in `batch.webhook_private_origins`), if it could not:
    /// said when the job is submitted, not after its retries.
    pub fn webhook_refused(&self, url: &url::Url) -> Option<String> {
        match crate::fetch::check_destination(url, &self.webhook_origins) {
            Ok(()) => None,
            Err(crate::fetch::FetchError::Blocked(why)) => Some(format!(
                "{why}; a webhook reaches public addresses only, or the origins \
                 listed in batch.webhook_private_origins"
            )),
            Err(e) => Some(e.to_string()),
        }
    }

    /// The secret a job's webhook is signed with: derived from the hash
    /// key chain's newest key when the job was made (`generation`, stored
    /// with the job), so it is never stored itself, survives a restart, and
    /// a rotation changes it for new jobs while the job's own stays
    /// verifiable for its life.
    pub fn webhook_secret(&self, id: &str, generation: i64) -> String {
        self.enricher.hasher().generation_hash(
            usize::try_from(generation).unwrap_or(1),
            &format!("enrichd batch webhook secret v1 {id}"),
        )
    }

    /// Tells the webhook the job ended: the job's view as JSON, with
    /// `Enrichd-Timestamp` (Unix seconds) and `Enrichd-Signature: v1=<hex
    /// HMAC-SHA-256 of "<timestamp>.<body>" under the job's secret>`.
    /// Retried with backoff on any answer but 2xx; given up after
    /// `WEBHOOK_ATTEMPTS` (state FAILED, visible in the job).
    pub(crate) async fn deliver_webhook(&self, id: &str, url: &str, generation: i64) {
        let Ok(url) = url::Url::parse(url) else {
            let _ = self.ledger().set_webhook_state(id, "failed").await;
            return;
        };
        let secret = self.webhook_secret(id, generation);
        let mut delay = WEBHOOK_FIRST_RETRY;
        for attempt in 1..=WEBHOOK_ATTEMPTS {
            if self.stop.is_cancelled() {
                return;
            }
            let Ok(view) = self.view(id).await else {
                return;
            };
            let body = view.to_string();
            let timestamp = self.enricher.clock().utc().timestamp().to_string();
            let header = |name: &'static str, value: String| Header {
                name: reqwest::header::HeaderName::from_static(name),
                value,
                secret: false,
            };
            let request = Outgoing {
                method: reqwest::Method::POST,
                url: url.clone(),
                headers: vec![
                    header("content-type", "application/json".into()),
                    header("enrichd-job", id.to_owned()),
                    header("enrichd-timestamp", timestamp.clone()),
                    header(
                        "enrichd-signature",
                        format!("v1={}", sign(&secret, &timestamp, &body)),
                    ),
                ],
                body: Some(body),
            };
            let reach = Reach {
                source: "batch-webhook",
                private_origins: &self.webhook_origins,
                max_redirects: 0,
                follow_redirects: false,
            };
            let client = self.enricher.engine().http_client();
            let sent = tokio::time::timeout(WEBHOOK_TIMEOUT, client.fetch(request, reach)).await;
            match sent {
                Ok(Ok(answer)) if answer.status.is_success() => {
                    let _ = self.ledger().set_webhook_state(id, "delivered").await;
                    info!(job = %id, attempt, "batch webhook delivered");
                    return;
                }
                Ok(Ok(answer)) => {
                    warn!(job = %id, attempt, status = %answer.status, "batch webhook refused")
                }
                Ok(Err(e)) => warn!(job = %id, attempt, error = %e, "batch webhook failed"),
                Err(_) => warn!(job = %id, attempt, "batch webhook timed out"),
            }
            if attempt < WEBHOOK_ATTEMPTS {
                tokio::select! {
                    () = tokio::time::sleep(delay) => {}
                    () = self.stop.cancelled() => return,
                }
                delay *= 2;
            }
        }
        let _ = self.ledger().set_webhook_state(id, "failed").await;
    }
}
