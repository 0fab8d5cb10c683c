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

impl Jobs {
    /// Builds the audience report of job `id` for its owner; FAILED_PRECONDITION
    /// when the job's purpose does not declare audience analytics.
    pub async fn audience(self: &Arc<Self>, caller: &Caller, id: &str) -> Result<Built, Status> {
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
        let mut outcomes: BTreeMap<String, u64> = BTreeMap::new();
        for (outcome, n) in self.ledger().job_counts(id).await.map_err(unavailable)? {
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
            purpose: purpose_id,
            members: rows.into_iter().zip(membership).collect(),
        })
    }

    /// The report as the API answers it.
    pub async fn audience_json(
        self: &Arc<Self>,
        caller: &Caller,
        id: &str,
    ) -> Result<Value, Status> {
        let built = self.audience(caller, id).await?;
        let mut value =
            serde_json::to_value(&built.report).map_err(|e| Status::internal(e.to_string()))?;
        value["jobId"] = json!(id);
        value["purpose"] = json!(built.purpose);
        value["generatedAt"] =
            json!(chrono::DateTime::from_timestamp_millis(self.now_ms()).map(|t| t.to_rfc3339()));
        Ok(value)
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
