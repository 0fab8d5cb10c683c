//! The run's summary: counts by outcome and error code, rates, and the
//! files it wrote.
use std::collections::BTreeMap;

use serde::Serialize;
use serde_json::Value;

/// Counts by outcome, for the bar and the summary.
#[derive(Debug, Default, Serialize)]
pub struct Summary {
    pub rows_in: u64,
    pub already_done: u64,
    pub enriched: u64,
    pub not_found: u64,
    /// Nothing found, but too few sources answered to say nobody is there.
    pub incomplete: u64,
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
    pub(super) fn count(&mut self, line: &Value) {
        match outcome_of(line).as_str() {
            "enriched" => self.enriched += 1,
            "not_found" => self.not_found += 1,
            "incomplete" => self.incomplete += 1,
            "suppressed" => self.suppressed += 1,
            "invalid" => self.invalid += 1,
            other => {
                let code = other.strip_prefix("error:").unwrap_or(other);
                *self.errors.entry(code.to_owned()).or_default() += 1;
            }
        }
        let answer = &line["answer"];
        self.upstream_requests += answer["cache"]["sourcesFetched"].as_u64().unwrap_or(0);
        self.cache_hits += answer["cache"]["sourcesFromCache"].as_u64().unwrap_or(0);
    }

    pub(super) fn short(&self) -> String {
        format!(
            "enriched {} · not found {} · incomplete {} · invalid {} · suppressed {} · errors {}",
            self.enriched,
            self.not_found,
            self.incomplete,
            self.invalid,
            self.suppressed,
            self.errors.values().sum::<u64>()
        )
    }

    pub fn render(&self) -> String {
        let mut out = format!(
            "rows in          {}\nalready done     {}\nenriched         {}\nnot found        {}\nincomplete       {}\ninvalid          {}\nsuppressed       {}\n",
            self.rows_in,
            self.already_done,
            self.enriched,
            self.not_found,
            self.incomplete,
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

/// What an output line counts as: `enriched`, `not_found`, `incomplete`,
/// `suppressed`, `invalid` (a row refused for its own content) or
/// `error:<CODE>`.
pub fn outcome_of(line: &Value) -> String {
    if let Some(err) = line.get("error") {
        let code = err.get("code").and_then(Value::as_str).unwrap_or("UNKNOWN");
        return if code == "INVALID_ARGUMENT" {
            "invalid".to_owned()
        } else {
            format!("error:{code}")
        };
    }
    let answer = &line["answer"];
    if answer["compliance"]["identifierSuppressed"].as_bool() == Some(true) {
        return "suppressed".to_owned();
    }
    match answer["coverage"]["completeness"].as_str() {
        Some("COMPLETENESS_FOUND") => "enriched",
        Some("COMPLETENESS_NOT_FOUND") => "not_found",
        _ => "incomplete",
    }
    .to_owned()
}

pub(super) fn code_name(code: i32) -> &'static str {
    crate::telemetry::code_name(tonic::Code::from(code))
}
