//! The summary columns of a batch's answers as CSV, for spreadsheet users:
//! one line per row in row order, the row's own columns first, then the
//! answer's summary (name, location, avatar, top interests, footprint,
//! risk, validity flags) or its error.
//!
//! Cells that a spreadsheet would run as a formula (starting with `=`, `+`,
//! `-`, `@`, a tab or a carriage return: OWASP's CSV injection) are
//! prefixed with `'`: names and bios come from sites anyone can edit.
use std::io::{BufRead, Seek, SeekFrom, Write};

use serde_json::Value;

/// The answer's columns, after the row's own.
pub const COLUMNS: &[&str] = &[
    "row",
    "outcome",
    "error",
    "display_name",
    "display_name_source",
    "location",
    "avatar_url",
    "top_interests",
    "footprint_score",
    "risk_score",
    "risk_level",
    "verdict",
    "risk_reasons",
    "did_you_mean",
    "identifier_valid",
    "disposable",
    "has_mail_servers",
    "profiles_found",
];

/// The most columns of the rows' own a table carries. The rows of an NDJSON
/// list may each name other keys: a table of all of them would have as
/// many columns as the upload has keys (millions in 16 MiB), and every row a
/// cell for each. The NDJSON results keep every key.
pub const MAX_INPUT_COLUMNS: usize = 256;

/// The rows' own columns, in the order first seen, without the answer's
/// (at most `MAX_INPUT_COLUMNS`).
#[derive(Debug, Default)]
pub struct InputColumns {
    names: Vec<String>,
    seen: std::collections::HashSet<String>,
}

impl InputColumns {
    /// Takes in the columns of one row's `input`.
    pub fn add(&mut self, input: &Value) {
        for key in input.as_object().into_iter().flat_map(|o| o.keys()) {
            if self.full() {
                return;
            }
            if !COLUMNS.contains(&key.as_str()) && self.seen.insert(key.clone()) {
                self.names.push(key.clone());
            }
        }
    }

    /// No more columns can be taken in.
    pub fn full(&self) -> bool {
        self.names.len() == MAX_INPUT_COLUMNS
    }

    /// The header line. The input's column names are the uploader's text:
    /// made safe as every cell is.
    pub fn header(&self) -> Vec<String> {
        self.names
            .iter()
            .map(|name| safe(name))
            .chain(COLUMNS.iter().map(|c| c.to_string()))
            .collect()
    }

    /// One line's cells: its input's in these columns, then `answer`
    /// (the line's [`answer_cells`]).
    pub fn record(&self, input: &Value, answer: Vec<String>) -> Vec<String> {
        self.names
            .iter()
            .map(|k| text(&input[k.as_str()]))
            .chain(answer)
            .map(|c| safe(&c))
            .collect()
    }
}

/// A table's field delimiter by its name in a request (`comma`,
/// `semicolon`, `tab`, or the character itself): a spreadsheet where the
/// comma is the decimal mark (most of Europe) reads `;`.
pub fn delimiter_named(name: &str) -> Option<u8> {
    match name {
        "comma" | "," => Some(b','),
        "semicolon" | ";" => Some(b';'),
        "tab" | "\t" => Some(b'\t'),
        _ => None,
    }
}

/// How a table is written for whoever opens it: its field delimiter, and
/// whether it starts with UTF-8's byte-order mark, without which Excel
/// reads UTF-8 as its ANSI code page ("Jürgen" as "JÃ¼rgen").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Dialect {
    pub delimiter: u8,
    pub bom: bool,
}

impl Default for Dialect {
    fn default() -> Self {
        Self {
            delimiter: b',',
            bom: false,
        }
    }
}

impl Dialect {
    /// The table's first bytes: the byte-order mark, if it has one.
    pub fn preamble(&self) -> &'static [u8] {
        if self.bom { b"\xEF\xBB\xBF" } else { b"" }
    }
}

/// `records` as CSV text, fields separated by `delimiter`.
pub fn csv_text<R, C>(delimiter: u8, records: R) -> anyhow::Result<Vec<u8>>
where
    R: IntoIterator<Item = Vec<C>>,
    C: AsRef<[u8]>,
{
    let mut csv = csv::WriterBuilder::new()
        .delimiter(delimiter)
        .from_writer(Vec::new());
    for record in records {
        csv.write_record(record)?;
    }
    Ok(csv.into_inner().map_err(|e| e.into_error())?)
}

/// Writes `lines` (output lines of `enrichd batch` or a job's results) as
/// CSV in `dialect`, sorted by row: `write_csv_of` over them as JSONL.
pub fn write_csv(
    lines: impl IntoIterator<Item = Value>,
    out: impl Write,
    dialect: Dialect,
) -> anyhow::Result<()> {
    let mut text = Vec::new();
    for line in lines {
        serde_json::to_writer(&mut text, &line)?;
        text.push(b'\n');
    }
    write_csv_of(std::io::Cursor::new(text), out, dialect)
}

/// Writes the JSONL output of `enrichd batch` (lines in the order the rows
/// finished) as CSV in `dialect`, sorted by row. The output is read twice:
/// once for the rows' own columns and where each row's line starts, then a
/// line at a time in row order, so what is held is 16 bytes a row (a
/// million rows' cells, held to be sorted, took about a gigabyte).
/// Lines that are not JSON (a line cut short) are left out.
pub fn write_csv_of(
    mut output: impl BufRead + Seek,
    mut out: impl Write,
    dialect: Dialect,
) -> anyhow::Result<()> {
    let mut inputs = InputColumns::default();
    let (mut starts, mut line, mut at) = (Vec::new(), Vec::new(), 0_u64);
    loop {
        line.clear();
        let read = output.read_until(b'\n', &mut line)?;
        if read == 0 {
            break;
        }
        if let Ok(value) = serde_json::from_slice::<Value>(&line) {
            inputs.add(&value["input"]);
            starts.push((value["row"].as_u64().unwrap_or(0), at));
        }
        at += read as u64;
    }
    starts.sort_unstable();
    out.write_all(dialect.preamble())?;
    out.write_all(&csv_text(dialect.delimiter, [inputs.header()])?)?;
    for chunk in starts.chunks(256) {
        let mut records = Vec::with_capacity(chunk.len());
        for &(_, start) in chunk {
            output.seek(SeekFrom::Start(start))?;
            line.clear();
            output.read_until(b'\n', &mut line)?;
            let value: Value = serde_json::from_slice(&line)?;
            records.push(inputs.record(&value["input"], answer_cells(&value)));
        }
        out.write_all(&csv_text(dialect.delimiter, records)?)?;
    }
    out.flush()?;
    Ok(())
}

/// The answer's cells of one line, in `COLUMNS` order.
pub fn answer_cells(line: &Value) -> Vec<String> {
    let s = &line["answer"]["summary"];
    let outcome = if line.get("erased").is_some() {
        "erased".to_owned()
    } else if line.get("suppressed").is_some() {
        "suppressed".to_owned()
    } else {
        super::outcome_of(line)
    };
    let interests: Vec<String> = s["topInterests"]
        .as_array()
        .map(|a| a.iter().map(text).collect())
        .unwrap_or_default();
    let reasons: Vec<String> = s["riskReasons"]
        .as_array()
        .map(|a| a.iter().map(text).collect())
        .unwrap_or_default();
    vec![
        text(&line["row"]),
        outcome,
        text(&line["error"]["message"]),
        text(&s["displayName"]["value"]),
        text(&s["displayName"]["sourceId"]),
        text(&s["location"]["value"]),
        text(&s["avatarUrl"]["value"]),
        interests.join("; "),
        text(&s["footprintScore"]),
        text(&s["riskScore"]),
        text(&s["riskLevel"])
            .trim_start_matches("LEVEL_")
            .to_ascii_lowercase(),
        text(&s["verdict"])
            .trim_start_matches("VERDICT_")
            .to_ascii_lowercase(),
        reasons.join("; "),
        text(&s["didYouMean"]),
        text(&s["identifierValid"]),
        text(&s["disposable"]),
        text(&s["hasMailServers"]),
        text(&s["profilesFound"]),
    ]
}

fn text(v: &Value) -> String {
    match v {
        Value::Null => String::new(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// A cell a spreadsheet shows as text, never runs.
fn safe(cell: &str) -> String {
    if cell.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        format!("'{cell}")
    } else {
        cell.to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_table_keeps_at_most_its_share_of_the_rows_own_columns() {
        let lines =
            (0..2_000).map(|n| json!({"row": n, "input": {"email": "x", format!("k{n}"): 1}}));
        let mut out = Vec::new();
        write_csv(lines, &mut out, Dialect::default()).expect("writes");
        let text = String::from_utf8(out).unwrap();
        let header: Vec<&str> = text.lines().next().unwrap().split(',').collect();
        assert_eq!(header.len(), MAX_INPUT_COLUMNS + COLUMNS.len());
        assert_eq!(&header[..3], ["email", "k0", "k1"]);
        assert_eq!(text.lines().count(), 2_001);
    }

    #[test]
    fn rows_in_order_with_their_columns_and_no_formula_runs() {
        let lines = vec![
            json!({"row": 2, "input": {"customer_id": "c2", "email": "x"},
                   "error": {"code": "INVALID_ARGUMENT", "message": "email address has no '@'"}}),
            json!({"row": 1, "input": {"customer_id": "c1", "email": "jane@example.com"},
                   "answer": {"coverage": {"completeness": "COMPLETENESS_FOUND"},
                              "summary": {"displayName": {"value": "=HYPERLINK(\"http://evil\")", "sourceId": "forum"},
                                          "topInterests": ["Cooking", "Travel"],
                                          "footprintScore": 42, "riskScore": 10, "riskLevel": "LEVEL_LOW",
                                          "verdict": "VERDICT_ACCEPT", "didYouMean": "gmail.com",
                                          "riskReasons": ["domain_typo", "free_provider"],
                                          "identifierValid": true, "disposable": false,
                                          "hasMailServers": true, "profilesFound": 3}}}),
        ];
        let mut out = Vec::new();
        write_csv(lines, &mut out, Dialect::default()).expect("writes");
        let text = String::from_utf8(out).unwrap();
        let mut rows = text.lines();
        assert_eq!(
            rows.next().unwrap(),
            "customer_id,email,row,outcome,error,display_name,display_name_source,location,\
             avatar_url,top_interests,footprint_score,risk_score,risk_level,verdict,risk_reasons,\
             did_you_mean,identifier_valid,disposable,has_mail_servers,profiles_found"
        );
        assert_eq!(
            rows.next().unwrap(),
            "c1,jane@example.com,1,enriched,,\"'=HYPERLINK(\"\"http://evil\"\")\",forum,,,\
             Cooking; Travel,42,10,low,accept,domain_typo; free_provider,gmail.com,true,false,true,3"
        );
        assert_eq!(
            rows.next().unwrap(),
            "c2,x,2,invalid,email address has no '@',,,,,,,,,,,,,,,"
        );
    }

    #[test]
    fn a_table_for_a_semicolon_spreadsheet_separates_its_fields_with_semicolons() {
        let lines = vec![
            json!({"row": 1, "input": {"email": "jane@example.com", "revenue": "1,5"},
                                "answer": {"summary": {"topInterests": ["Cooking", "Travel"]}}}),
        ];
        let mut out = Vec::new();
        let dialect = Dialect {
            delimiter: delimiter_named("semicolon").unwrap(),
            bom: true,
        };
        write_csv(lines, &mut out, dialect).expect("writes");
        let text = String::from_utf8(out).unwrap();
        let mut rows = text
            .strip_prefix('\u{feff}')
            .expect("the BOM first")
            .lines();
        assert!(
            rows.next()
                .unwrap()
                .starts_with("email;revenue;row;outcome;")
        );
        // The decimal comma stays in its cell; a cell holding `;` is quoted.
        assert!(rows.next().unwrap().starts_with("jane@example.com;1,5;1;"),);
        assert!(text.contains(";\"Cooking; Travel\";"), "{text}");
        assert_eq!(delimiter_named("tab"), Some(b'\t'));
        assert_eq!(delimiter_named("pipe"), None);
    }

    #[test]
    fn a_column_name_that_is_a_formula_is_shown_not_run() {
        let lines = vec![
            json!({"row": 1, "input": {"=HYPERLINK(\"http://evil\")": "a", "@SUM(1+1)": "b"}}),
        ];
        let mut out = Vec::new();
        write_csv(lines, &mut out, Dialect::default()).expect("writes");
        let text = String::from_utf8(out).unwrap();
        let header = text.lines().next().unwrap();
        assert!(
            header.starts_with("\"'=HYPERLINK(\"\"http://evil\"\")\",'@SUM(1+1),row,"),
            "{header}"
        );
    }
}
