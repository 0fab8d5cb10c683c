//! Batch jobs over HTTP, for systems that cannot hold a stream open: a list
//! is uploaded once (`POST /v1/batches`), its rows are stored in the ledger
//! database and run through the same streamed pipeline as `enrichd batch`,
//! each row's answer is stored as it arrives, and a restarted server goes
//! on with the rows that have none. On completion an optional webhook is
//! told, signed with HMAC-SHA-256 over the timestamp and the body.
mod audience;
mod manage;
mod reading;
mod webhook;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt;
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;
use tonic::Status;
use tracing::{info, warn};

use super::{Row, answer_line, invalid_row_line, outcome_of, refuses_the_run};
use crate::api::grpc::EnrichmentService;
use crate::api::status::to_status;
use crate::auth::Caller;
use crate::config::BatchConfig;
use crate::ledger::{JobRow, JobRowInput, Ledger};
use crate::pipeline::Enricher;
use crate::proto::v1 as pb;
pub use reading::{OUTCOMES, Selection, outcome_named};
use reading::{PAGE, without_row};
pub use webhook::sign;

/// The jobs of one server: submitted, resumed after a restart, run.
pub struct Jobs {
    service: EnrichmentService,
    enricher: Arc<Enricher>,
    config: BatchConfig,
    webhook_origins: Vec<url::Origin>,
    /// Cancelled when the server stops: no new row is started, the rows in
    /// flight finish and are stored.
    stop: CancellationToken,
    tasks: Mutex<tokio::task::JoinSet<()>>,
    /// `batch.max_running_jobs` turns: a job runs holding one.
    turns: Arc<tokio::sync::Semaphore>,
    /// `batch.max_concurrent_uploads`: an upload is read and stored
    /// holding one.
    pub(crate) uploads: Arc<tokio::sync::Semaphore>,
    /// Charges each row to its caller's quota, as a stream's items are.
    quotas: Option<Arc<crate::auth::layer::Authenticator>>,
    /// How audience reports are made (`[audience]`).
    audience: crate::audience::AudienceConfig,
    /// Reports built, by job and the counts they were built from.
    reports: moka::future::Cache<String, Arc<Value>>,
}

/// How long a built audience report is answered again, at most.
pub const KEPT_REPORTS_FOR: Duration = Duration::from_secs(600);

/// What a caller submits.
pub struct Submission {
    pub caller: Caller,
    /// The request every row is sent with (purpose, basis, evidence,
    /// options), without an identifier.
    pub template: pb::EnrichRequest,
    pub rows: Prepared,
    pub webhook_url: Option<url::Url>,
}

/// A job's rows as they are stored, made by [`Jobs::prepare`] once the
/// claim was checked.
pub struct Prepared(Vec<JobRowInput>);

impl Jobs {
    pub fn new(service: EnrichmentService, enricher: Arc<Enricher>, config: BatchConfig) -> Self {
        let webhook_origins = config
            .webhook_private_origins
            .iter()
            .filter_map(|o| url::Url::parse(o).ok().map(|u| u.origin()))
            .collect();
        Self {
            service,
            enricher,
            webhook_origins,
            stop: CancellationToken::new(),
            tasks: Mutex::new(tokio::task::JoinSet::new()),
            turns: Arc::new(tokio::sync::Semaphore::new(config.max_running_jobs.max(1))),
            uploads: Arc::new(tokio::sync::Semaphore::new(
                config.max_concurrent_uploads.max(1),
            )),
            config,
            quotas: None,
            audience: crate::audience::AudienceConfig::default(),
            reports: moka::future::Cache::builder()
                .max_capacity(64)
                .time_to_live(KEPT_REPORTS_FOR)
                .build(),
        }
    }

    /// Rows are charged to their caller's quota through `auth`, one unit a
    /// row (the submission paid for the first).
    pub fn with_quotas(mut self, auth: Arc<crate::auth::layer::Authenticator>) -> Self {
        self.quotas = Some(auth);
        self
    }

    fn ledger(&self) -> &Ledger {
        self.enricher.ledger()
    }

    /// Audience reports made with `config` (default: the shipped one).
    pub fn with_audience(mut self, config: crate::audience::AudienceConfig) -> Self {
        self.audience = config;
        self
    }

    fn audience_config(&self) -> &crate::audience::AudienceConfig {
        &self.audience
    }

    fn now_ms(&self) -> i64 {
        self.enricher.clock().utc().timestamp_millis()
    }

    /// The most rows a job holds (`batch.max_job_rows`).
    pub fn max_rows(&self) -> usize {
        self.config.max_job_rows
    }

    /// Checks the claim once (purpose, basis, evidence, the caller's
    /// purposes, the field mask: a refusal refuses the job, nothing is
    /// stored), then makes each row ready to store as it is read, so a
    /// list is never held as rows (a 100,000-row upload held 200 MB, now
    /// 110 MB with the rows as stored).
    pub fn prepare(
        &self,
        caller: &Caller,
        template: &pb::EnrichRequest,
        rows: impl IntoIterator<Item = anyhow::Result<Row>>,
    ) -> Result<Prepared, Status> {
        // The claim is the template's; any identifier stands in for the rows'.
        let probe = pb::EnrichRequest {
            request_id: "claim".into(),
            identifier: Some(pb::enrich_request::Identifier::Email(
                "claim@example.invalid".into(),
            )),
            ..template.clone()
        };
        let deadline = tokio::time::Instant::now() + self.config.deadline;
        let query = crate::api::request::enrich_query(probe, deadline, caller.clone())
            .map_err(to_status)?;
        self.enricher
            .check_claim(&query)
            .map_err(|(_, error)| to_status(error))?;

        let mut stored = Vec::new();
        for row in rows {
            let row = row.map_err(|e| {
                // The reader names its input ("body: ..."); the field says it.
                let why = e.to_string();
                bad("body", why.strip_prefix("body: ").unwrap_or(&why))
            })?;
            let row = &row;
            let mut input = Value::Object(row.input.clone()).to_string();
            let (subject, request, answered) = match row.request(template) {
                Some(request) => {
                    let subject = enrich_subject(&self.enricher, &request);
                    // A person suppressed for this purpose is not even
                    // stored: their row keeps its number and nothing else.
                    let scopes = self
                        .ledger()
                        .suppressions(&subject)
                        .map_err(|e| Status::unavailable(e.to_string()))?;
                    if !subject.is_empty()
                        && crate::compliance::suppression::stops(&scopes, &template.purpose)
                    {
                        input = "{}".to_owned();
                        stored.push(JobRowInput {
                            number: row.number as i64,
                            subject,
                            input,
                            request: String::new(),
                            answered: Some((
                                json!({ "suppressed": true }).to_string(),
                                "suppressed".to_owned(),
                            )),
                        });
                        continue;
                    }
                    let text = serde_json::to_string(&request)
                        .map_err(|e| Status::internal(format!("request not encodable: {e}")))?;
                    (subject, text, None)
                }
                None => {
                    let line = without_row(invalid_row_line(row));
                    let outcome = outcome_of(&line);
                    (
                        String::new(),
                        String::new(),
                        Some((line.to_string(), outcome)),
                    )
                }
            };
            stored.push(JobRowInput {
                number: row.number as i64,
                subject,
                input,
                request,
                answered,
            });
        }
        if stored.is_empty() {
            return Err(bad("body", "the list has no row"));
        }
        if stored.len() > self.config.max_job_rows {
            return Err(bad(
                "body",
                &format!(
                    "{} rows; a job holds at most {} (batch.max_job_rows): split the list",
                    stored.len(),
                    self.config.max_job_rows
                ),
            ));
        }
        Ok(Prepared(stored))
    }

    /// Stores the job and its rows (`Jobs::prepare`), and starts it.
    pub async fn submit(self: &Arc<Self>, submission: Submission) -> Result<Value, Status> {
        let Submission {
            caller,
            template,
            rows: Prepared(stored),
            webhook_url,
        } = submission;
        let id = format!("job_{}", hex::encode(rand::random::<[u8; 16]>()));
        let template_text = serde_json::to_string(&pb::EnrichRequest {
            identifier: None,
            ..template
        })
        .map_err(|e| Status::internal(format!("request not encodable: {e}")))?;
        let job = JobRow {
            id: id.clone(),
            caller: serde_json::to_string(&caller)
                .map_err(|e| Status::internal(format!("caller not encodable: {e}")))?,
            caller_id: caller.id.clone(),
            template: template_text,
            webhook_url: webhook_url
                .as_ref()
                .map(|u| u.to_string())
                .unwrap_or_default(),
            state: "running".into(),
            reason: String::new(),
            rows_total: stored.len() as i64,
            created_ms: self.now_ms(),
            finished_ms: 0,
            key_generation: self.enricher.hasher().generation() as i64,
            webhook_state: if webhook_url.is_some() {
                "pending"
            } else {
                "none"
            }
            .into(),
        };
        self.ledger()
            .insert_job(&job, &stored)
            .await
            .map_err(|e| Status::unavailable(format!("the job cannot be stored: {e}")))?;
        info!(job = %id, rows = stored.len(), caller = %caller.name, "batch job submitted");
        let generation = job.key_generation;
        self.start(job);
        let mut view = self.view(&id).await?;
        if webhook_url.is_some() {
            view["webhookSecret"] = json!(self.webhook_secret(&id, generation));
        }
        Ok(view)
    }

    /// Starts every job a previous run of the server left unfinished, and
    /// every webhook it did not deliver.
    pub async fn resume(self: &Arc<Self>) {
        match self.ledger().unfinished_jobs().await {
            Ok(jobs) => {
                for job in jobs {
                    info!(job = %job.id, state = %job.state, "resuming batch job");
                    self.start(job);
                }
            }
            Err(e) => warn!(error = %e, "unfinished batch jobs cannot be read"),
        }
    }

    fn start(self: &Arc<Self>, job: JobRow) {
        let this = self.clone();
        let mut tasks = self.tasks.lock().unwrap_or_else(|e| e.into_inner());
        tasks.spawn(async move {
            let id = job.id.clone();
            // Wait for a turn (or for the server to stop).
            let turn = tokio::select! {
                turn = this.turns.clone().acquire_owned() => turn.ok(),
                () = this.stop.cancelled() => None,
            };
            let Some(turn) = turn else { return };
            if job.state == "running"
                && let Err(why) = this.run(&job).await
            {
                warn!(job = %id, error = %why, "batch job failed");
                let _ = this
                    .ledger()
                    .finish_job(&id, "failed", &why, this.now_ms())
                    .await;
            }
            // The webhook's retries do not hold up the next job.
            drop(turn);
            if this.stop.is_cancelled() {
                return;
            }
            if !job.webhook_url.is_empty() {
                this.deliver_webhook(&id, &job.webhook_url, job.key_generation)
                    .await;
            }
        });
    }

    /// Runs `work` among the jobs' tasks (stopped with them).
    fn spawn(&self, work: impl std::future::Future<Output = ()> + Send + 'static) {
        let mut tasks = self.tasks.lock().unwrap_or_else(|e| e.into_inner());
        tasks.spawn(work);
    }

    /// No new row starts from now on (the server is stopping).
    pub fn cancel(&self) {
        self.stop.cancel();
    }

    /// Stops the jobs: no new row starts; the rows in flight finish and are
    /// stored (within `within`); the rest wait for the next start.
    pub async fn stop(&self, within: Duration) {
        self.stop.cancel();
        let mut tasks = std::mem::take(&mut *self.tasks.lock().unwrap_or_else(|e| e.into_inner()));
        if tokio::time::timeout(within, async { while tasks.join_next().await.is_some() {} })
            .await
            .is_err()
        {
            tasks.abort_all();
        }
    }

    /// Runs the rows of `job` that have no answer. Ok when the job is done
    /// or the server is stopping; Err with the reason when it fails as a
    /// whole.
    async fn run(&self, job: &JobRow) -> Result<(), String> {
        let mut caller: Caller =
            serde_json::from_str(&job.caller).map_err(|e| format!("stored caller: {e}"))?;
        caller.on_behalf_of = None;
        let meter = self.quotas.as_ref().and_then(|auth| auth.meter(&caller));
        // A job outlives the call that submitted it, not its key.
        if !caller.id.is_empty() {
            let live = self
                .ledger()
                .key(&caller.id)
                .await
                .map_err(|e| e.to_string())?
                .is_some_and(|key| crate::auth::keys::is_live(&key, self.now_ms()));
            if !live {
                return Err("the API key that submitted the job was revoked or expired".into());
            }
        }
        let mut after = 0;
        loop {
            if self.stop.is_cancelled() {
                return Ok(());
            }
            let page = self
                .ledger()
                .pending_rows(&job.id, after, PAGE)
                .await
                .map_err(|e| e.to_string())?;
            let Some(&(last, _)) = page.last() else {
                break;
            };
            after = last;
            // Asked whole, narrowed to the job's view once its audience
            // facts are kept: a report counts what a summary leaves out.
            let mut view = pb::View::Full;
            let requests: Vec<Result<pb::EnrichRequest, Status>> = page
                .into_iter()
                .filter_map(|(_, text)| serde_json::from_str::<pb::EnrichRequest>(&text).ok())
                .map(|mut request| {
                    let options = request.options.get_or_insert_with(Default::default);
                    view = options.view();
                    options.set_view(pb::View::Full);
                    Ok(request)
                })
                .collect();
            let inbound =
                futures::stream::iter(requests).take_until(self.stop.clone().cancelled_owned());
            let answers = self.service.process_stream(
                Box::pin(inbound),
                caller.clone(),
                None,
                meter.clone(),
                "BatchJob",
            );
            futures::pin_mut!(answers);
            while let Some(answer) = answers.next().await {
                let answer = answer.map_err(|s| format!("{:?}: {}", s.code(), s.message()))?;
                if let Some(err) = answer.error.as_ref().filter(|e| refuses_the_run(e.code)) {
                    return Err(format!(
                        "{}: {}",
                        super::summary::code_name(err.code),
                        err.message
                    ));
                }
                let Ok(number) = answer.request_id.parse::<i64>() else {
                    continue;
                };
                // What an audience report counts of it: for answers, not
                // for errors or suppressed people.
                let features = (answer.error.is_none()
                    && !answer
                        .compliance
                        .as_ref()
                        .is_some_and(|c| c.identifier_suppressed))
                .then(|| {
                    let facts = crate::audience::Features::of(&answer, |id| {
                        self.enricher.is_special_interest(id)
                    });
                    serde_json::to_string(&facts).unwrap_or_default()
                });
                let mut answer = answer;
                crate::api::response::apply_view(&mut answer, view);
                let line = without_row(answer_line(number as u64, answer));
                let outcome = outcome_of(&line);
                self.ledger()
                    .put_row_result(
                        &job.id,
                        number,
                        &line.to_string(),
                        &outcome,
                        features.as_deref(),
                    )
                    .await
                    .map_err(|e| e.to_string())?;
            }
        }
        if self.stop.is_cancelled() {
            return Ok(());
        }
        self.ledger()
            .finish_job(&job.id, "done", "", self.now_ms())
            .await
            .map_err(|e| e.to_string())?;
        info!(job = %job.id, "batch job done");
        Ok(())
    }
}

/// Deletes finished jobs past `batch.job_retention`, every `every`, while
/// the jobs live.
pub async fn sweep_every(jobs: std::sync::Weak<Jobs>, every: Duration) {
    let mut tick = tokio::time::interval(every);
    loop {
        tick.tick().await;
        let Some(jobs) = jobs.upgrade() else { return };
        let retention = i64::try_from(jobs.config.job_retention.as_millis()).unwrap_or(i64::MAX);
        match jobs
            .ledger()
            .sweep_jobs(jobs.now_ms().saturating_sub(retention))
            .await
        {
            Ok(0) => {}
            Ok(n) => info!(deleted = n, "batch jobs past batch.job_retention deleted"),
            Err(e) => warn!(error = %e, "batch job sweep failed"),
        }
    }
}

/// The keyed hash of a request's identifier ('' when it does not parse: the
/// pipeline refuses such a row with its own error).
fn enrich_subject(enricher: &Enricher, request: &pb::EnrichRequest) -> String {
    let deadline = tokio::time::Instant::now();
    crate::api::request::enrich_query(request.clone(), deadline, Caller::operator())
        .ok()
        .and_then(|q| enricher.subject(&q.identifier, q.default_region).ok())
        .map(|s| s.hash)
        .unwrap_or_default()
}

fn bad(field: &str, why: &str) -> Status {
    use tonic_types::StatusExt;
    Status::with_error_details(
        tonic::Code::InvalidArgument,
        format!("{field}: {why}"),
        tonic_types::ErrorDetails::with_bad_request_violation(field, why),
    )
}

fn unavailable(e: crate::ledger::LedgerError) -> Status {
    Status::unavailable(format!("batch jobs cannot be read right now: {e}"))
}
