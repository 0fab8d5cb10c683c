//! A job's audience report, and each person's segment for callers and
//! purposes allowed to have it.
use std::collections::BTreeMap;
use std::sync::{Arc, OnceLock};

use serde_json::{Value, json};
use tonic::Status;
use tonic_types::{ErrorDetails, StatusExt};

use super::reading::PAGE;
use super::{Jobs, unavailable};
use crate::audience::{self, Features, Report};
use crate::auth::{Caller, Scope};
use crate::scoring::data::Node;

/// The shipped taxonomy's Interest branch, read once.
fn taxonomy() -> &'static BTreeMap<String, Node> {
    static TAXONOMY: OnceLock<BTreeMap<String, Node>> = OnceLock::new();
    TAXONOMY.get_or_init(crate::scoring::data::taxonomy)
}

/// A job's report, and for each answered row its segment.
pub struct Built {
    pub report: Report,
    pub purpose: String,
    pub members: Vec<(i64, Option<usize>)>,
}

fn refused(purpose: &str, what: &str, key: &str) -> Status {
    let description =
        format!("purpose {purpose:?} does not declare {what} (purposes.{purpose}.{key} = true)");
    Status::with_error_details(
        tonic::Code::FailedPrecondition,
        description.clone(),
        ErrorDetails::with_precondition_failure_violation("PURPOSE", "purpose", description),
    )
}

/// A job's counts by outcome, in the order they sort: what a kept report
/// was made from (an erasure moves a row to `erased`; a running job's rows
/// move from `pending`).
type Counts = Vec<(String, i64)>;

impl Jobs {
    /// Builds the audience report of job `id` for its owner; FAILED_PRECONDITION
    /// when the job's purpose does not declare audience analytics.
    pub async fn audience(self: &Arc<Self>, caller: &Caller, id: &str) -> Result<Built, Status> {
        let (job, purpose) = self.audience_allowed(caller, id).await?;
        let counts = self.counts(id).await?;
        self.build_audience(&job, purpose, counts).await
    }

    /// The job and its purpose, when the caller owns it and the purpose
    /// declares audience analytics.
    async fn audience_allowed(
        &self,
        caller: &Caller,
        id: &str,
    ) -> Result<(crate::ledger::JobRow, String), Status> {
        self.owned(caller, id).await?;
        let job = self.job(id).await?;
        let purpose_id = serde_json::from_str::<Value>(&job.template)
            .ok()
            .and_then(|t| t["purpose"].as_str().map(str::to_owned))
            .unwrap_or_default();
        let allowed = self
            .enricher
            .purposes()
            .get(&purpose_id)
            .is_some_and(|p| p.audience);
        if !allowed {
            return Err(refused(&purpose_id, "audience analytics", "audience"));
        }
        Ok((job, purpose_id))
    }

    async fn counts(&self, id: &str) -> Result<Counts, Status> {
        let mut counts = self.ledger().job_counts(id).await.map_err(unavailable)?;
        counts.sort();
        Ok(counts)
    }

    async fn build_audience(
        &self,
        job: &crate::ledger::JobRow,
        purpose: String,
        counts: Counts,
    ) -> Result<Built, Status> {
        let id = &job.id;
        let mut outcomes: BTreeMap<String, u64> = BTreeMap::new();
        for (outcome, n) in counts {
            *outcomes.entry(audience::outcome_key(outcome)).or_default() +=
                u64::try_from(n).unwrap_or(0);
        }
        let mut rows = Vec::new();
        let mut people = Vec::new();
        let mut after = 0;
        loop {
            let page = self
                .ledger()
                .job_features(id, after, PAGE * 16)
                .await
                .map_err(unavailable)?;
            let Some(&(last, _)) = page.last() else { break };
            after = last;
            for (row, text) in page {
                if let Ok(facts) = serde_json::from_str::<Features>(&text) {
                    rows.push(row);
                    people.push(facts);
                }
            }
        }
        let (enricher, config) = (self.enricher.clone(), self.audience_config().clone());
        let (total, now_ms) = (u64::try_from(job.rows_total).unwrap_or(0), self.now_ms());
        // The job's own noise, the same on every asking (keyed: no one
        // without the server's key can tell it).
        let mut noise_seed = [0; 32];
        let seed = self
            .enricher
            .hasher()
            .root_hash(&format!("audience noise {id}"));
        hex::decode_to_slice(&seed[..64], &mut noise_seed)
            .map_err(|e| Status::internal(format!("the noise's seed: {e}")))?;
        // Clustering 50,000 people is seconds of CPU: off the runtime.
        let (report, membership) = tokio::task::spawn_blocking(move || {
            let special = |id: &str| enricher.is_special_interest(id);
            let inputs = audience::Inputs {
                rows: total,
                outcomes: &outcomes,
                people: &people,
                taxonomy: taxonomy(),
                special: &special,
                now_ms,
                noise_seed,
            };
            audience::build(&inputs, &config)
        })
        .await
        .map_err(|e| Status::internal(format!("the audience report failed: {e}")))?;
        Ok(Built {
            report,
            purpose,
            members: rows.into_iter().zip(membership).collect(),
        })
    }

    /// The report as the API answers it, `generatedAt` when it was built.
    /// It is built once for the job's rows as they stand (a report of
    /// 100,000 rows reads every row's facts and clusters them: a second of
    /// CPU): kept, it is answered again until a row's outcome changes (an
    /// erasure, a row answered) or `KEPT_REPORTS_FOR` (ten minutes) has passed, on this
    /// server. The same report either way: its noise is the job's own.
    pub async fn audience_json(
        self: &Arc<Self>,
        caller: &Caller,
        id: &str,
    ) -> Result<Value, Status> {
        let (job, purpose) = self.audience_allowed(caller, id).await?;
        let counts = self.counts(id).await?;
        let mut made_of = format!("{id} {}", job.rows_total);
        for (outcome, n) in &counts {
            made_of.push_str(&format!(" {outcome}={n}"));
        }
        let report = self
            .reports
            .try_get_with(made_of, async {
                let built = self.build_audience(&job, purpose, counts).await?;
                let mut value = serde_json::to_value(&built.report)
                    .map_err(|e| Status::internal(e.to_string()))?;
                value["jobId"] = json!(id);
                value["purpose"] = json!(built.purpose);
                value["generatedAt"] = json!(
                    chrono::DateTime::from_timestamp_millis(self.now_ms()).map(|t| t.to_rfc3339())
                );
                Ok::<_, Status>(Arc::new(value))
            })
            .await
            .map_err(|e| (*e).clone())?;
        Ok((*report).clone())
    }

    /// Each answered row's segment, as NDJSON lines (`row`, `segment`,
    /// `label`; `null` for the not found and those in folded segments),
    /// for the owner with the `segments` scope and a purpose that declares
    /// `audience_members`. The segments are kept with the rows: Access shows
    /// them, erasure removes them.
    pub async fn audience_members(
        self: &Arc<Self>,
        caller: &Caller,
        id: &str,
    ) -> Result<String, Status> {
        if !caller.allows(Scope::Segments) {
            return Err(Status::permission_denied(
                "per-person segments need the `segments` scope",
            ));
        }
        let built = self.audience(caller, id).await?;
        let allowed = self
            .enricher
            .purposes()
            .get(&built.purpose)
            .is_some_and(|p| p.audience_members);
        if !allowed {
            return Err(refused(
                &built.purpose,
                "per-person segments",
                "audience_members",
            ));
        }
        let labels: BTreeMap<usize, String> = built
            .report
            .segments
            .shown
            .iter()
            .map(|s| (s.id, s.label.clone()))
            .collect();
        let mut kept = Vec::new();
        let mut text = String::new();
        for (row, segment) in &built.members {
            let label = segment.and_then(|s| labels.get(&s));
            if let Some(label) = label {
                kept.push((*row, label.clone()));
            }
            text.push_str(&json!({"row": row, "segment": segment, "label": label}).to_string());
            text.push('\n');
        }
        self.ledger()
            .put_segments(id, &kept)
            .await
            .map_err(unavailable)?;
        Ok(text)
    }
}
