//! A caller's jobs as its owner manages them: listed (newest first, in
//! pages), cancelled (rows not run yet never run), a webhook delivered
//! again.
use std::sync::Arc;

use serde_json::{Value, json};
use tonic::Status;

use super::{Jobs, bad, unavailable};
use crate::auth::Caller;

/// Jobs in a page of the list when the caller names no size, and at most.
pub const DEFAULT_JOBS_PAGE: i64 = 20;
pub const MAX_JOBS_PAGE: i64 = 100;

impl Jobs {
    /// The caller's own jobs, newest first: `pageSize` (1 to 100) from
    /// `pageToken` (the previous page's `nextPageToken`).
    pub async fn list(
        &self,
        caller: &Caller,
        page_size: Option<i64>,
        token: Option<&str>,
    ) -> Result<Value, Status> {
        let size = page_size.unwrap_or(DEFAULT_JOBS_PAGE);
        if !(1..=MAX_JOBS_PAGE).contains(&size) {
            return Err(bad("pageSize", "must be from 1 to 100"));
        }
        let before = match token.filter(|t| !t.is_empty()) {
            None => None,
            Some(t) => Some(
                t.split_once('.')
                    .and_then(|(ms, id)| Some((ms.parse::<i64>().ok()?, id)))
                    .ok_or_else(|| bad("pageToken", "is not a token this server issued"))?,
            ),
        };
        let jobs = self
            .ledger()
            .jobs_of(&caller.id, before, size)
            .await
            .map_err(unavailable)?;
        let next = (jobs.len() as i64 == size)
            .then(|| jobs.last().map(|j| format!("{}.{}", j.created_ms, j.id)))
            .flatten()
            .unwrap_or_default();
        let mut views = Vec::new();
        for job in &jobs {
            let owner: Caller = serde_json::from_str(&job.caller)
                .map_err(|e| Status::internal(format!("stored caller: {e}")))?;
            if owner.name == caller.name {
                views.push(self.view(&job.id).await?);
            }
        }
        Ok(json!({ "jobs": views, "nextPageToken": next }))
    }

    /// Cancels the caller's running job: rows not started never run, the
    /// ones in flight keep their answers, the job ends CANCELLED (and its
    /// webhook, if any, is told). FAILED_PRECONDITION for a job that ended.
    pub async fn cancel_job(self: &Arc<Self>, caller: &Caller, id: &str) -> Result<Value, Status> {
        self.owned(caller, id).await?;
        let cancelled = self
            .ledger()
            .cancel_job(id, self.now_ms())
            .await
            .map_err(unavailable)?;
        if !cancelled {
            let job = self.job(id).await?;
            return Err(Status::failed_precondition(format!(
                "the job is {}: only a running job can be cancelled",
                job.state
            )));
        }
        tracing::info!(job = %id, "batch job cancelled by its owner");
        self.view(id).await
    }

    /// Delivers the webhook of the caller's ended job again (after the
    /// receiver was down past the retries, say). FAILED_PRECONDITION for a
    /// job without a webhook or still running.
    pub async fn redeliver(self: &Arc<Self>, caller: &Caller, id: &str) -> Result<Value, Status> {
        self.owned(caller, id).await?;
        let job = self.job(id).await?;
        if job.webhook_url.is_empty() {
            return Err(Status::failed_precondition(
                "the job has no webhookUrl; nothing to deliver",
            ));
        }
        if job.state == "running" {
            return Err(Status::failed_precondition(
                "the job is still running; its webhook is delivered when it ends",
            ));
        }
        self.ledger()
            .set_webhook_state(id, "pending")
            .await
            .map_err(unavailable)?;
        let this = self.clone();
        let id = id.to_owned();
        self.spawn(async move {
            this.deliver_webhook(&id, &job.webhook_url, job.key_generation)
                .await;
        });
        self.view(&job.id).await
    }
}
