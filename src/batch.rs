//! `enrichd batch`: a customer list (CSV or JSONL) through the streamed
//! pipeline, in process or against a server, into JSONL with one line per
//! input row. Resumable: the output is the checkpoint (rows are numbered;
//! a rerun skips the rows already written and cuts a half-written last line).
use std::collections::{BTreeMap, HashSet};
use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, IsTerminal, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use futures::{Stream, StreamExt};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use tonic::Status;

use crate::proto::v1 as pb;

/// One input row, numbered from 1 (the header is not a row).
pub struct Row {
    pub number: u64,
    pub identifier: Result<pb::enrich_request::Identifier, String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Csv,
    Jsonl,
}

impl Format {
    pub fn of(path: &Path) -> Self {
        match path
            .extension()
            .and_then(|e| e.to_str())
            .map(str::to_ascii_lowercase)
            .as_deref()
        {
            Some("jsonl" | "ndjson" | "json") => Format::Jsonl,
            _ => Format::Csv,
        }
    }
}

/// Which columns hold the identifier.
#[derive(Debug, Clone, Default)]
pub struct Columns {
    pub email: Option<String>,
    pub phone: Option<String>,
}

const EMAIL_NAMES: &[&str] = &["email", "e-mail", "email_address", "mail"];
const PHONE_NAMES: &[&str] = &["phone", "phone_number", "mobile", "tel", "telephone"];

fn identifier(
    email: Option<&str>,
    phone: Option<&str>,
) -> Result<pb::enrich_request::Identifier, String> {
    match (
        email.map(str::trim).filter(|s| !s.is_empty()),
        phone.map(str::trim).filter(|s| !s.is_empty()),
    ) {
        (Some(e), _) => Ok(pb::enrich_request::Identifier::Email(e.to_owned())),
        (None, Some(p)) => Ok(pb::enrich_request::Identifier::Phone(p.to_owned())),
        (None, None) => Err("empty row: no email address or phone number".into()),
    }
}

/// Reads every row of the input (rows are small; a million fit in memory
/// as identifiers, and reading ahead lets the bar show a total).
pub fn read_rows(path: &Path, format: Format, columns: &Columns) -> anyhow::Result<Vec<Row>> {
    let file =
        File::open(path).map_err(|e| anyhow::anyhow!("cannot open {}: {e}", path.display()))?;
    match format {
        Format::Jsonl => BufReader::new(file)
            .lines()
            .enumerate()
            .map(|(i, line)| {
                let line = line?;
                let number = i as u64 + 1;
                let identifier = match serde_json::from_str::<Value>(&line) {
                    Ok(v) => {
                        let field = |names: &[&str], chosen: &Option<String>| match chosen {
                            Some(c) => v.get(c).and_then(Value::as_str).map(str::to_owned),
                            None => names
                                .iter()
                                .find_map(|n| v.get(*n).and_then(Value::as_str))
                                .map(str::to_owned),
                        };
                        identifier(
                            field(EMAIL_NAMES, &columns.email).as_deref(),
                            field(PHONE_NAMES, &columns.phone).as_deref(),
                        )
                    }
                    Err(e) => Err(format!("not a JSON object: {e}")),
                };
                Ok(Row { number, identifier })
            })
            .collect(),
        Format::Csv => {
            let mut reader = csv::ReaderBuilder::new().flexible(true).from_reader(file);
            let headers: Vec<String> = reader
                .headers()?
                .iter()
                .map(|h| h.trim().to_ascii_lowercase())
                .collect();
            let find = |chosen: &Option<String>, names: &[&str]| -> Option<usize> {
                match chosen {
                    Some(c) => headers.iter().position(|h| *h == c.to_ascii_lowercase()),
                    None => headers.iter().position(|h| names.contains(&h.as_str())),
                }
            };
            let email = find(&columns.email, EMAIL_NAMES);
            let phone = find(&columns.phone, PHONE_NAMES);
            if email.is_none() && phone.is_none() {
                anyhow::bail!(
                    "{}: no email or phone column in the header ({}); name one with --email-column or --phone-column",
                    path.display(),
                    headers.join(", ")
                );
            }
            let mut rows = Vec::new();
            for (i, record) in reader.records().enumerate() {
                let number = i as u64 + 1;
                let identifier = match record {
                    Ok(r) if r.len() != headers.len() => Err(format!(
                        "{} columns where the header has {}",
                        r.len(),
                        headers.len()
                    )),
                    Ok(r) => identifier(email.and_then(|c| r.get(c)), phone.and_then(|c| r.get(c))),
                    Err(e) => Err(format!("unreadable CSV row: {e}")),
                };
                rows.push(Row { number, identifier });
            }
            Ok(rows)
        }
    }
}

/// What the checkpoint beside the output remembers, to refuse resuming a
/// different run into the same output.
#[derive(Debug, Serialize, Deserialize, PartialEq)]
struct Checkpoint {
    input: PathBuf,
    input_bytes: u64,
    purpose: String,
    rows: u64,
}

fn checkpoint_path(output: &Path) -> PathBuf {
    let mut p = output.as_os_str().to_owned();
    p.push(".checkpoint");
    PathBuf::from(p)
}

/// Opens the output for appending after the complete lines already there,
/// and returns the row numbers they hold.
fn resume(output: &Path) -> anyhow::Result<(File, HashSet<u64>)> {
    let mut done = HashSet::new();
    let mut good_len = 0u64;
    if output.exists() {
        let mut reader = BufReader::new(File::open(output)?);
        let mut line = String::new();
        loop {
            line.clear();
            let n = reader.read_line(&mut line)?;
            if n == 0 || !line.ends_with('\n') {
                break;
            }
            match serde_json::from_str::<Value>(&line)
                .ok()
                .and_then(|v| v.get("row").and_then(Value::as_u64))
            {
                Some(row) => {
                    done.insert(row);
                    good_len += n as u64;
                }
                None => break,
            }
        }
    }
    let mut file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .read(true)
        .write(true)
        .open(output)?;
    // A line cut short by a crash is dropped; its row is done again.
    file.set_len(good_len)?;
    file.seek(SeekFrom::End(0))?;
    Ok((file, done))
}

/// Counts by outcome, for the bar and the summary.
#[derive(Debug, Default, Serialize)]
pub struct Summary {
    pub rows_in: u64,
    pub already_done: u64,
    pub enriched: u64,
    pub not_found: u64,
    pub suppressed: u64,
    pub invalid: u64,
    pub errors: BTreeMap<String, u64>,
    pub upstream_requests: u64,
    pub cache_hits: u64,
    pub elapsed_seconds: f64,
    pub rows_per_second: f64,
    pub interrupted: bool,
}

impl Summary {
    fn count(&mut self, line: &Value) {
        if let Some(err) = line.get("error") {
            let code = err.get("code").and_then(Value::as_str).unwrap_or("UNKNOWN");
            if code == "INVALID_ARGUMENT" {
                self.invalid += 1;
            } else {
                *self.errors.entry(code.to_owned()).or_default() += 1;
            }
            return;
        }
        let answer = &line["answer"];
        if answer["compliance"]["identifierSuppressed"].as_bool() == Some(true) {
            self.suppressed += 1;
        } else if answer["sources"]
            .as_array()
            .is_some_and(|s| s.iter().any(|o| o["outcome"] == "OUTCOME_FOUND"))
        {
            self.enriched += 1;
        } else {
            self.not_found += 1;
        }
        self.upstream_requests += answer["cache"]["sourcesFetched"].as_u64().unwrap_or(0);
        self.cache_hits += answer["cache"]["sourcesFromCache"].as_u64().unwrap_or(0);
    }

    fn short(&self) -> String {
        format!(
            "enriched {} · not found {} · invalid {} · suppressed {} · errors {}",
            self.enriched,
            self.not_found,
            self.invalid,
            self.suppressed,
            self.errors.values().sum::<u64>()
        )
    }

    pub fn render(&self) -> String {
        let mut out = format!(
            "rows in          {}\nalready done     {}\nenriched         {}\nnot found        {}\ninvalid          {}\nsuppressed       {}\n",
            self.rows_in,
            self.already_done,
            self.enriched,
            self.not_found,
            self.invalid,
            self.suppressed
        );
        for (code, n) in &self.errors {
            out.push_str(&format!("error {code:<10} {n}\n"));
        }
        out.push_str(&format!(
            "upstream calls   {}\ncache hits       {}\nelapsed          {:.1} s\nrows/s           {:.1}\n",
            self.upstream_requests, self.cache_hits, self.elapsed_seconds, self.rows_per_second
        ));
        if self.interrupted {
            out.push_str("interrupted: run the same command again to finish\n");
        }
        out
    }
}

fn code_name(code: i32) -> &'static str {
    crate::telemetry::code_name(tonic::Code::from(code))
}

/// The output line of one answer.
fn answer_line(row: u64, answer: pb::EnrichResponse) -> Value {
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
        let started = Instant::now();
        let rows = read_rows(&self.input, Format::of(&self.input), &self.columns)?;
        let checkpoint = Checkpoint {
            input: std::fs::canonicalize(&self.input).unwrap_or_else(|_| self.input.clone()),
            input_bytes: std::fs::metadata(&self.input)?.len(),
            purpose: self.template.purpose.clone(),
            rows: rows.len() as u64,
        };
        let cp_path = checkpoint_path(&self.output);
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
        std::fs::write(&cp_path, serde_json::to_vec_pretty(&checkpoint)?)?;
        let (mut out, done) = resume(&self.output)?;

        let mut summary = Summary {
            rows_in: rows.len() as u64,
            already_done: done.len() as u64,
            ..Summary::default()
        };
        let bar = if std::io::stderr().is_terminal() {
            let bar = indicatif::ProgressBar::new(rows.len() as u64);
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
        let mut last_line = Instant::now();
        let mut progress = |summary: &Summary, finished: u64| {
            bar.set_position(finished);
            bar.set_message(summary.short());
            if bar.is_hidden() && last_line.elapsed() >= Duration::from_secs(5) {
                last_line = Instant::now();
                eprintln!(
                    "batch: {finished}/{} rows · {}",
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

        // Invalid rows are answered here; the rest go to the pipeline.
        let mut finished = done.len() as u64;
        let mut requests = Vec::new();
        for row in rows.into_iter().filter(|r| !done.contains(&r.number)) {
            match row.identifier {
                Err(reason) => {
                    let line = json!({"row": row.number, "error": {"code": "INVALID_ARGUMENT", "message": reason, "fieldViolations": [{"field": "row", "description": reason}]}});
                    summary.count(&line);
                    write(line)?;
                    finished += 1;
                }
                Ok(identifier) => requests.push(pb::EnrichRequest {
                    request_id: row.number.to_string(),
                    identifier: Some(identifier),
                    ..self.template.clone()
                }),
            }
        }
        progress(&summary, finished);

        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let mut stop_tx = Some(stop_tx);
        let feed = futures::stream::iter(requests).take_until(stop_rx);
        let mut answers = start(Box::pin(feed)).await?;
        tokio::pin!(interrupt);
        let mut interrupted = false;
        loop {
            tokio::select! {
                () = &mut interrupt, if !interrupted => {
                    // Stop sending; the requests in flight still finish and are written.
                    interrupted = true;
                    if let Some(stop) = stop_tx.take() {
                        let _ = stop.send(());
                    }
                    bar.println("interrupted: finishing the rows in flight");
                }
                next = answers.next() => match next {
                    Some(Ok(answer)) => {
                        let row: u64 = answer.request_id.parse().unwrap_or(0);
                        let line = answer_line(row, answer);
                        summary.count(&line);
                        write(line)?;
                        finished += 1;
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
        summary.interrupted = interrupted;
        summary.elapsed_seconds = started.elapsed().as_secs_f64();
        let processed = finished - summary.already_done;
        summary.rows_per_second = processed as f64 / summary.elapsed_seconds.max(1e-9);
        let mut summary_path = self.output.as_os_str().to_owned();
        summary_path.push(".summary.json");
        std::fs::write(
            PathBuf::from(summary_path),
            serde_json::to_vec_pretty(&summary)?,
        )?;
        Ok(summary)
    }
}
