//! The run's summary: counts by outcome and error code, rates, and the
//! files it wrote.
use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
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
        self.add(&Counted::of(line));
    }

    /// Counts a line as read for a resume (without building it).
    pub(super) fn add(&mut self, line: &Counted) {
        match line.outcome().as_str() {
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
        let cache = line.answer.as_ref().and_then(|a| a.cache.as_ref());
        self.upstream_requests += cache.and_then(|c| c.sources_fetched).unwrap_or(0);
        self.cache_hits += cache.and_then(|c| c.sources_from_cache).unwrap_or(0);
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
    Counted::of(line).outcome()
}

/// What is counted of an output line (its row, its error's code, whether
/// its answer was suppressed or found, and its cache's counts), read
/// without building the rest: an answer is tens of kilobytes, and resuming
/// a run of 20,000 rows built 876 MB of them as JSON values (6.8 s in a
/// release build) to count them.
#[derive(Debug, Default, Deserialize)]
pub struct Counted {
    pub row: Option<u64>,
    error: Option<ErrorPart>,
    answer: Option<AnswerPart>,
}

#[derive(Debug, Default, Deserialize)]
struct ErrorPart {
    code: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
struct AnswerPart {
    compliance: Option<CompliancePart>,
    coverage: Option<CoveragePart>,
    cache: Option<CachePart>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct CompliancePart {
    identifier_suppressed: Option<bool>,
}

#[derive(Debug, Default, Deserialize)]
struct CoveragePart {
    completeness: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct CachePart {
    sources_fetched: Option<u64>,
    sources_from_cache: Option<u64>,
}

impl Counted {
    /// A line already read; one whose parts are not of the shape enrichd
    /// writes keeps its row and counts as `incomplete`.
    pub fn of(line: &Value) -> Self {
        Self::deserialize(line).unwrap_or_else(|_| Self {
            row: line["row"].as_u64(),
            ..Self::default()
        })
    }

    /// A line as text: read without building the answer, or, if its parts
    /// are not of that shape, as [`Counted::of`] its JSON; None when it is
    /// not JSON.
    pub fn read(line: &str) -> Option<Self> {
        serde_json::from_str(line).ok().or_else(|| {
            serde_json::from_str::<Value>(line)
                .ok()
                .map(|v| Self::of(&v))
        })
    }

    pub fn outcome(&self) -> String {
        if let Some(err) = &self.error {
            let code = err.code.as_deref().unwrap_or("UNKNOWN");
            return if code == "INVALID_ARGUMENT" {
                "invalid".to_owned()
            } else {
                format!("error:{code}")
            };
        }
        let answer = self.answer.as_ref();
        let suppressed = answer
            .and_then(|a| a.compliance.as_ref())
            .and_then(|c| c.identifier_suppressed);
        if suppressed == Some(true) {
            return "suppressed".to_owned();
        }
        let completeness = answer
            .and_then(|a| a.coverage.as_ref())
            .and_then(|c| c.completeness.as_deref());
        match completeness {
            Some("COMPLETENESS_FOUND") => "enriched",
            Some("COMPLETENESS_NOT_FOUND") => "not_found",
            _ => "incomplete",
        }
        .to_owned()
    }
}

pub(super) fn code_name(code: i32) -> &'static str {
    crate::telemetry::code_name(tonic::Code::from(code))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Read as text (without building the answer) or from its JSON value,
    /// a line counts the same.
    #[test]
    fn a_line_counts_the_same_read_as_text_or_as_json() {
        let lines = [
            (
                r#"{"row":1,"answer":{"coverage":{"completeness":"COMPLETENESS_FOUND"},"cache":{"sourcesFetched":3,"sourcesFromCache":2},"profiles":[{"x":[1,2,{"y":null}]}]}}"#,
                "enriched",
                3,
            ),
            (
                r#"{"row":2,"answer":{"coverage":{"completeness":"COMPLETENESS_NOT_FOUND"}}}"#,
                "not_found",
                0,
            ),
            (
                r#"{"row":3,"answer":{"compliance":{"identifierSuppressed":true},"coverage":{"completeness":"COMPLETENESS_FOUND"}}}"#,
                "suppressed",
                0,
            ),
            (
                r#"{"row":4,"input":{"email":""},"error":{"code":"INVALID_ARGUMENT","message":"empty row"}}"#,
                "invalid",
                0,
            ),
            (
                r#"{"row":5,"error":{"code":"UNAVAILABLE"}}"#,
                "error:UNAVAILABLE",
                0,
            ),
            (r#"{"row":6,"error":{}}"#, "error:UNKNOWN", 0),
            (r#"{"row":7,"answer":{}}"#, "incomplete", 0),
            // Not of the shape enrichd writes: its row is kept.
            (r#"{"row":8,"answer":"not an answer"}"#, "incomplete", 0),
        ];
        for (text, outcome, fetched) in lines {
            let read = Counted::read(text).expect("JSON");
            let value: Value = serde_json::from_str(text).unwrap();
            assert_eq!(read.outcome(), outcome, "{text}");
            assert_eq!(outcome_of(&value), outcome, "{text}");
            assert_eq!(read.row, value["row"].as_u64(), "{text}");
            let (mut a, mut b) = (Summary::default(), Summary::default());
            a.add(&read);
            b.count(&value);
            assert_eq!(a.upstream_requests, fetched, "{text}");
            assert_eq!(b.upstream_requests, fetched, "{text}");
        }
        assert!(Counted::read("{\"row\":9,").is_none(), "cut short");
    }
}
