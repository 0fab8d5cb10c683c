//! A job as its owner reads it: its state and counts, its results as NDJSON
//! or as a CSV table, a page of rows at a time.
use std::collections::BTreeMap;
use std::sync::Arc;

use serde_json::{Value, json};
use tonic::Status;

use super::{Jobs, unavailable};
use crate::auth::Caller;
use crate::ledger::JobRow;

/// Rows read from the database and fed to the pipeline at a time.
pub(crate) const PAGE: i64 = 256;

/// A stored row as its output line: `row`, `input`, then the answer, the
/// error or `erased`; None while it has no answer.
pub(crate) fn result_line(number: i64, input: &str, result: Option<&str>) -> Option<Value> {
    let mut line = json!({ "row": number });
    line["input"] = serde_json::from_str(input).unwrap_or(Value::Null);
    if let Ok(Value::Object(rest)) = serde_json::from_str::<Value>(result?) {
        for (k, v) in rest {
            line[k] = v;
        }
    }
    Some(line)
}

pub(crate) fn without_row(mut line: Value) -> Value {
    if let Value::Object(map) = &mut line {
        map.remove("row");
        map.remove("input");
    }
    line
}

/// Which of a job's answered rows its results hold: those after row
/// `after`, of `outcome` only when named (`error` stands for every
/// `error:<CODE>`), at most `limit` of them when given.
#[derive(Clone, Debug, Default)]
pub struct Selection {
    pub outcome: Option<String>,
    pub after: i64,
    pub limit: Option<i64>,
}

/// The outcomes a selection can name: a stored row's (`error:<CODE>` as
/// `error`; rows not answered yet are never in the results).
pub const OUTCOMES: [&str; 8] = [
    "enriched",
    "not_found",
    "incomplete",
    "suppressed",
    "invalid",
    "erased",
    "cancelled",
    "error",
];

/// The outcome `name` names, if it is one of [`OUTCOMES`].
pub fn outcome_named(name: &str) -> Option<&'static str> {
    OUTCOMES.iter().copied().find(|o| *o == name)
}

pub(crate) fn not_found(id: &str) -> Status {
    Status::not_found(format!("no batch job {id:?}"))
}

impl Jobs {
    /// The job's state, progress and counts, for its owner; NOT_FOUND for
    /// anyone else (a job's existence is not disclosed).
    pub async fn status(&self, caller: &Caller, id: &str) -> Result<Value, Status> {
        self.owned(caller, id).await?;
        self.view(id).await
    }

    /// The stored job, or NOT_FOUND.
    pub(crate) async fn job(&self, id: &str) -> Result<JobRow, Status> {
        self.ledger()
            .job(id)
            .await
            .map_err(unavailable)?
            .ok_or_else(|| not_found(id))
    }

    pub(crate) async fn view(&self, id: &str) -> Result<Value, Status> {
        let job = self.job(id).await?;
        let counts = self.ledger().job_counts(id).await.map_err(unavailable)?;
        let mut by_outcome: BTreeMap<String, i64> = BTreeMap::new();
        let mut errors: BTreeMap<String, i64> = BTreeMap::new();
        for (outcome, n) in counts {
            match outcome.strip_prefix("error:") {
                Some(code) => *errors.entry(code.to_owned()).or_default() += n,
                None => *by_outcome.entry(outcome).or_default() += n,
            }
        }
        let count = |k: &str| by_outcome.get(k).copied().unwrap_or(0);
        let pending = count("pending");
        let done = job.rows_total - pending;
        let time = |ms: i64| {
            (ms > 0)
                .then(|| chrono::DateTime::from_timestamp_millis(ms).map(|t| t.to_rfc3339()))
                .flatten()
        };
        Ok(json!({
            "id": job.id,
            "state": job.state.to_ascii_uppercase(),
            "reason": job.reason,
            "createdAt": time(job.created_ms),
            "finishedAt": time(job.finished_ms),
            "rowsTotal": job.rows_total,
            "rowsDone": done,
            "rowsPending": pending,
            "summary": {
                "enriched": count("enriched"),
                "notFound": count("not_found"),
                "incomplete": count("incomplete"),
                "suppressed": count("suppressed"),
                "invalid": count("invalid"),
                "erased": count("erased"),
                "cancelled": count("cancelled"),
                "errors": errors,
            },
            "webhook": job.webhook_state.to_ascii_uppercase(),
            "results": format!("/v1/batches/{}/results", job.id),
        }))
    }

    /// The answered rows in order as NDJSON lines (`row`, `input`, then the
    /// answer or the error), for the job's owner. Rows not answered yet are
    /// left out: fetch again when the job is DONE.
    pub async fn results(
        self: &Arc<Self>,
        caller: &Caller,
        id: &str,
        selection: Selection,
    ) -> Result<impl futures::Stream<Item = Result<bytes::Bytes, std::io::Error>> + use<>, Status>
    {
        self.owned(caller, id).await?;
        Ok(self.pages(id, selection, |rows| {
            let mut text = String::new();
            for (number, input, result) in rows {
                if let Some(line) = result_line(number, &input, result.as_deref()) {
                    text.push_str(&line.to_string());
                    text.push('\n');
                }
            }
            Ok(text.into_bytes())
        }))
    }

    /// A job's selected rows a page at a time, each page as `render`
    /// writes it.
    pub(crate) fn pages<R>(
        self: &Arc<Self>,
        id: &str,
        selection: Selection,
        render: R,
    ) -> impl futures::Stream<Item = Result<bytes::Bytes, std::io::Error>> + use<R>
    where
        R: Fn(Vec<crate::ledger::RowOutput>) -> anyhow::Result<Vec<u8>> + Send + Sync + 'static,
    {
        let (this, id, render) = (self.clone(), id.to_owned(), Arc::new(render));
        let outcome = Arc::new(selection.outcome);
        let left = selection.limit.unwrap_or(i64::MAX);
        futures::stream::try_unfold((selection.after, left), move |(after, left)| {
            let (this, id, render, outcome) =
                (this.clone(), id.clone(), render.clone(), outcome.clone());
            async move {
                if left <= 0 {
                    return Ok(None);
                }
                let rows = this
                    .ledger()
                    .job_rows(&id, after, PAGE.min(left), outcome.as_deref())
                    .await
                    .map_err(std::io::Error::other)?;
                let Some(&(last, _, _)) = rows.last() else {
                    return Ok(None);
                };
                let taken = rows.len() as i64;
                let text = render(rows).map_err(std::io::Error::other)?;
                Ok(Some((bytes::Bytes::from(text), (last, left - taken))))
            }
        })
    }

    /// The CSV table of a job's answered rows, in order, in `dialect`, as
    /// it is written:
    /// the input columns are read first (small), then the rows a page at a
    /// time, each answer brought down to its cells. (Built whole, the table
    /// of a 100,000-row job held every answer in memory at once: the
    /// server's RSS reached 23 GB.)
    pub async fn results_table(
        self: &Arc<Self>,
        caller: &Caller,
        id: &str,
        dialect: crate::batch::table::Dialect,
        selection: Selection,
    ) -> Result<impl futures::Stream<Item = Result<bytes::Bytes, std::io::Error>> + use<>, Status>
    {
        use crate::batch::table::{InputColumns, answer_cells, csv_text};
        self.owned(caller, id).await?;
        let mut columns = InputColumns::default();
        let mut after = 0;
        loop {
            let inputs = self
                .ledger()
                .job_inputs(id, after, PAGE * 16)
                .await
                .map_err(unavailable)?;
            let Some(&(last, _)) = inputs.last().filter(|_| !columns.full()) else {
                break;
            };
            after = last;
            for (_, input) in &inputs {
                columns.add(&serde_json::from_str(input).unwrap_or(Value::Null));
            }
        }
        let delimiter = dialect.delimiter;
        let mut header = dialect.preamble().to_vec();
        header.extend(
            csv_text(delimiter, [columns.header()]).map_err(|e| Status::internal(e.to_string()))?,
        );
        let rows = self.pages(id, selection, move |rows| {
            csv_text(
                delimiter,
                rows.into_iter().filter_map(|(n, input, result)| {
                    let mut line = result_line(n, &input, result.as_deref())?;
                    let answer = answer_cells(&line);
                    Some(columns.record(&line["input"].take(), answer))
                }),
            )
        });
        let header = futures::stream::once(async move { Ok(bytes::Bytes::from(header)) });
        Ok(futures::StreamExt::chain(header, rows))
    }

    pub(crate) async fn owned(&self, caller: &Caller, id: &str) -> Result<(), Status> {
        let job = self.job(id).await?;
        let owner: Caller =
            serde_json::from_str(&job.caller).map_err(|e| Status::internal(e.to_string()))?;
        if owner.id == caller.id && owner.name == caller.name {
            Ok(())
        } else {
            Err(not_found(id))
        }
    }
}
