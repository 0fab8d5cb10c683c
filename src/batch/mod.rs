//! `enrichd batch`: a customer list (CSV or JSONL) through the streamed
//! pipeline, in process or against a server, into JSONL with one line per
//! input row. Resumable: the output is the checkpoint (rows are numbered;
//! a rerun skips the rows already written and cuts a half-written last line).
mod checkpoint;
pub mod http;
pub mod jobs;
mod rows;
mod summary;
pub mod table;

use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::time::Duration;

use futures::{Stream, StreamExt};
use serde_json::{Value, json};
use tonic::Status;

use crate::proto::v1 as pb;

use checkpoint::{Checkpoint, checkpoint_path, resume};
pub use rows::{Columns, Format, Row, RowReader, count_rows, list_dialect, read_rows};
use summary::code_name;
pub use summary::{Summary, outcome_of};

/// The output line of one answer.
pub fn answer_line(row: u64, answer: pb::EnrichResponse) -> Value {
    match &answer.error {
        Some(err) => json!({
            "row": row,
            "error": {
                "code": code_name(err.code),
                "message": err.message,
                "fieldViolations": err.field_violations.iter().map(|v| json!({"field": v.field, "description": v.description})).collect::<Vec<_>>(),
                "preconditionViolations": err.precondition_violations.iter().map(|v| json!({"type": v.r#type, "subject": v.subject, "description": v.description})).collect::<Vec<_>>(),
            }
        }),
        None => json!({"row": row, "answer": serde_json::to_value(&answer).unwrap_or(Value::Null)}),
    }
}

/// Writes the summary columns of `output`'s lines (a finished or
/// interrupted run) to `csv`, in row order, in `dialect`.
pub fn write_table(
    output: &std::path::Path,
    csv: &std::path::Path,
    dialect: table::Dialect,
) -> anyhow::Result<()> {
    let file = std::fs::File::open(output)
        .map_err(|e| anyhow::anyhow!("cannot read {}: {e}", output.display()))?;
    // The summary columns are personal data: private to the operator, like
    // the answers beside them.
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let out = options
        .open(csv)
        .map_err(|e| anyhow::anyhow!("--csv: cannot create {}: {e}", csv.display()))?;
    table::write_csv_of(
        std::io::BufReader::new(file),
        std::io::BufWriter::new(out),
        dialect,
    )
}

/// The output line of a row that has no usable identifier.
pub fn invalid_row_line(row: &Row) -> Value {
    let reason = row.identifier.as_ref().err().cloned().unwrap_or_default();
    json!({"row": row.number, "input": row.input, "error": {"code": "INVALID_ARGUMENT", "message": reason, "fieldViolations": [{"field": "row", "description": reason}]}})
}

/// The run was refused as a whole: the purpose, the lawful basis or the
/// key is wrong for every row alike. Nothing was written.
#[derive(Debug, thiserror::Error)]
#[error("{code}: {message} (the whole run is refused; nothing was written)")]
pub struct RunRefused {
    pub code: String,
    pub message: String,
    /// The fields at fault, with why.
    pub fields: Vec<(String, String)>,
    /// The preconditions that failed: type, subject, why.
    pub preconditions: Vec<(String, String, String)>,
}

/// Codes that say the claim or the caller is wrong, not the row.
pub(crate) fn refuses_the_run(code: i32) -> bool {
    matches!(
        tonic::Code::from(code),
        tonic::Code::FailedPrecondition
            | tonic::Code::Unauthenticated
            | tonic::Code::PermissionDenied
    )
}

/// Where the answers come from: the same streamed pipeline, in process or
/// on a server.
pub type Answers = std::pin::Pin<Box<dyn Stream<Item = Result<pb::EnrichResponse, Status>>>>;

/// Settings of one run.
pub struct Run {
    pub input: PathBuf,
    pub output: PathBuf,
    pub columns: Columns,
    /// The request every row is sent with, but for its identifier.
    pub template: pb::EnrichRequest,
    /// Rows sent ahead of their answers (`--concurrency`).
    pub window: usize,
    /// How many rows the list has (`count_rows`: the list is counted once,
    /// then read as rows are sent), for the checkpoint and the progress bar.
    pub rows_in: u64,
}

/// A row's number, its input and its request.
type Ready = (u64, serde_json::Map<String, Value>, pb::EnrichRequest);

/// The rows still to send, read as they are sent.
struct Feed<'a> {
    rows: RowReader<'static>,
    /// Rows a previous run answered.
    done: std::collections::HashSet<u64>,
    template: &'a pb::EnrichRequest,
}

impl Feed<'_> {
    /// The next row to send, with its input; `None` when none is left.
    /// The invalid rows on the way are given to `invalid`, as lines.
    fn next_request(
        &mut self,
        mut invalid: impl FnMut(Value) -> anyhow::Result<()>,
    ) -> anyhow::Result<Option<Ready>> {
        for row in self.rows.by_ref() {
            let row = row?;
            if self.done.contains(&row.number) {
                continue;
            }
            match row.request(self.template) {
                Some(request) => return Ok(Some((row.number, row.input, request))),
                None => invalid(invalid_row_line(&row))?,
            }
        }
        Ok(None)
    }
}

impl Run {
    /// Runs the list. `start` turns a stream of requests into answers.
    pub async fn execute(
        &self,
        start: impl FnOnce(
            std::pin::Pin<Box<dyn Stream<Item = pb::EnrichRequest> + Send>>,
        ) -> futures::future::LocalBoxFuture<'static, anyhow::Result<Answers>>,
        interrupt: impl std::future::Future<Output = ()>,
    ) -> anyhow::Result<Summary> {
        let started = crate::clock::Stopwatch::start();
        let (format, rows_in) = (Format::of(&self.input), self.rows_in);
        let checkpoint = Checkpoint {
            input: std::fs::canonicalize(&self.input).unwrap_or_else(|_| self.input.clone()),
            input_bytes: std::fs::metadata(&self.input)?.len(),
            purpose: self.template.purpose.clone(),
            rows: rows_in,
        };
        let cp_path = checkpoint_path(&self.output);
        let fresh = !self.output.exists();
        if self.output.exists()
            && let Ok(text) = std::fs::read_to_string(&cp_path)
            && let Ok(previous) = serde_json::from_str::<Checkpoint>(&text)
            && previous != checkpoint
        {
            anyhow::bail!(
                "{} belongs to another run ({} for purpose {}); choose another --output",
                self.output.display(),
                previous.input.display(),
                previous.purpose
            );
        }
        crate::privacy::write_private(
            &cp_path,
            &serde_json::to_string_pretty(&checkpoint)?,
            false,
        )?;
        let mut summary = Summary {
            rows_in,
            ..Summary::default()
        };
        let (mut out, done) = resume(&self.output, |line| summary.add(line))?;
        let resumed_at = out.metadata()?.len();
        summary.already_done = done.len() as u64;
        let bar = if std::io::stderr().is_terminal() {
            let bar = indicatif::ProgressBar::new(rows_in);
            bar.set_style(
                indicatif::ProgressStyle::with_template(
                    "{bar:30} {pos}/{len} rows · {per_sec} · ETA {eta} · {msg}",
                )
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
            );
            bar
        } else {
            indicatif::ProgressBar::hidden()
        };
        bar.set_position(done.len() as u64);
        let mut last_line = crate::clock::Stopwatch::start();
        let mut progress = |summary: &Summary, finished: u64| {
            bar.set_position(finished);
            bar.set_message(summary.short());
            if bar.is_hidden() && last_line.elapsed() >= Duration::from_secs(5) {
                last_line = crate::clock::Stopwatch::start();
                let done_now = finished.saturating_sub(summary.already_done) as f64;
                let rate = done_now / started.elapsed().as_secs_f64().max(1e-9);
                let left = summary.rows_in.saturating_sub(finished) as f64;
                let eta = if rate > 0.0 {
                    let secs = Duration::from_secs((left / rate).ceil() as u64);
                    humantime::format_duration(secs).to_string()
                } else {
                    "unknown".to_owned()
                };
                eprintln!(
                    "batch: {finished}/{} rows · {rate:.1} rows/s · ETA {eta} · {}",
                    summary.rows_in,
                    summary.short()
                );
            }
        };
        let mut write = |line: Value| -> anyhow::Result<()> {
            let mut text = serde_json::to_string(&line)?;
            text.push('\n');
            out.write_all(text.as_bytes())?;
            Ok(())
        };

        // Invalid rows are answered here, as they are read; the rest go to
        // the pipeline, at most `window` ahead of their answers: a transport
        // that reads the whole request stream at once (in process, or a
        // large HTTP/2 window) still has only `window` rows started, so
        // Ctrl-C stops within the rows in flight.
        let mut finished = done.len() as u64;
        let mut answered = 0_u64;
        let mut feed = Feed {
            rows: read_rows(&self.input, format, &self.columns)?,
            done,
            template: &self.template,
        };
        let mut inputs = std::collections::HashMap::new();
        let (feed_tx, feed_rx) = tokio::sync::mpsc::unbounded_channel::<pb::EnrichRequest>();
        let window = self.window.max(1);
        while inputs.len() < window
            && let Some((number, input, request)) = feed.next_request(|line| {
                summary.count(&line);
                finished += 1;
                write(line)
            })?
        {
            inputs.insert(number, input);
            let _ = feed_tx.send(request);
        }
        progress(&summary, finished);
        // Dropped (closing the stream) when no request is left to send or
        // the run is interrupted.
        let mut feed_tx = (inputs.len() == window).then_some(feed_tx);
        let requests = tokio_stream::wrappers::UnboundedReceiverStream::new(feed_rx);
        let mut answers = start(Box::pin(requests)).await?;
        tokio::pin!(interrupt);
        let mut interrupted = false;
        loop {
            tokio::select! {
                () = &mut interrupt, if !interrupted => {
                    // Stop sending; the requests in flight still finish and are written.
                    interrupted = true;
                    feed_tx = None;
                    bar.println("interrupted: finishing the rows in flight");
                }
                next = answers.next() => match next {
                    Some(Ok(answer)) => {
                        if let Some(err) = answer.error.as_ref().filter(|e| refuses_the_run(e.code)) {
                            bar.abandon();
                            // Nothing of a run refused at its first answer
                            // stays (the invalid rows' lines are taken back).
                            if answered == 0 {
                                if fresh {
                                    let _ = std::fs::remove_file(&self.output);
                                    let _ = std::fs::remove_file(&cp_path);
                                } else {
                                    std::fs::OpenOptions::new()
                                        .write(true)
                                        .open(&self.output)?
                                        .set_len(resumed_at)?;
                                }
                            }
                            return Err(RunRefused {
                                code: code_name(err.code).to_owned(),
                                message: err.message.clone(),
                                fields: err
                                    .field_violations
                                    .iter()
                                    .map(|v| (v.field.clone(), v.description.clone()))
                                    .collect(),
                                preconditions: err
                                    .precondition_violations
                                    .iter()
                                    .map(|v| (v.r#type.clone(), v.subject.clone(), v.description.clone()))
                                    .collect(),
                            }
                            .into());
                        }
                        // One answer in, one more request out.
                        if let Some(sender) = &feed_tx {
                            let next = feed.next_request(|line| {
                                summary.count(&line);
                                finished += 1;
                                write(line)
                            })?;
                            match next {
                                Some((number, input, request)) => {
                                    inputs.insert(number, input);
                                    let _ = sender.send(request);
                                }
                                None => feed_tx = None,
                            }
                        }
                        let row: u64 = answer.request_id.parse().unwrap_or(0);
                        let mut line = answer_line(row, answer);
                        line["input"] = Value::Object(inputs.remove(&row).unwrap_or_default());
                        summary.count(&line);
                        write(line)?;
                        finished += 1;
                        answered += 1;
                        progress(&summary, finished);
                    }
                    Some(Err(status)) => {
                        bar.abandon();
                        anyhow::bail!("the stream failed: {}: {}", crate::telemetry::code_name(status.code()), status.message());
                    }
                    None => break,
                }
            }
        }
        out.flush()?;
        out.sync_all()?;
        bar.finish_and_clear();
        // Interrupted only if rows remain: a run that finished every row
        // before the signal took effect is complete.
        summary.interrupted = interrupted && finished < summary.rows_in;
        summary.elapsed_seconds = started.elapsed().as_secs_f64();
        let processed = finished - summary.already_done;
        summary.rows_per_second = processed as f64 / summary.elapsed_seconds.max(1e-9);
        let mut summary_path = self.output.as_os_str().to_owned();
        summary_path.push(".summary.json");
        crate::privacy::write_private(
            &PathBuf::from(summary_path),
            &serde_json::to_string_pretty(&summary)?,
            false,
        )?;
        Ok(summary)
    }
}
