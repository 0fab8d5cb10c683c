//! The summary columns of a batch's answers as CSV, for spreadsheet users:
//! one line per row in row order, the row's own columns first, then the
//! answer's summary (name, location, avatar, top interests, footprint,
//! risk, validity flags) or its error.
//!
//! Cells that a spreadsheet would run as a formula (starting with `=`, `+`,
//! `-`, `@`, a tab or a carriage return: OWASP's CSV injection) are
//! prefixed with `'`: names and bios come from sites anyone can edit.
use std::io::Write;

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
    "identifier_valid",
    "disposable",
    "has_mail_servers",
    "profiles_found",
];

/// Writes `lines` (output lines of `enrichd batch` or a job's results) as
/// CSV, sorted by row.
pub fn write_csv(mut lines: Vec<Value>, out: impl Write) -> anyhow::Result<()> {
    lines.sort_by_key(|l| l["row"].as_u64().unwrap_or(0));
    // The rows' own columns, in the order first seen, without the answer's.
    let mut inputs: Vec<String> = Vec::new();
    for line in &lines {
        if let Some(input) = line["input"].as_object() {
            for key in input.keys() {
                if !inputs.contains(key) && !COLUMNS.contains(&key.as_str()) {
                    inputs.push(key.clone());
                }
            }
        }
    }
    let mut csv = csv::Writer::from_writer(out);
    let header: Vec<&str> = inputs
        .iter()
        .map(String::as_str)
        .chain(COLUMNS.iter().copied())
        .collect();
    csv.write_record(&header)?;
    for line in &lines {
        let mut record: Vec<String> = inputs
            .iter()
            .map(|k| text(&line["input"][k.as_str()]))
            .collect();
        record.extend(answer_cells(line));
        csv.write_record(record.iter().map(|c| safe(c)))?;
    }
    csv.flush()?;
    Ok(())
}

/// The answer's cells of one line, in `COLUMNS` order.
fn answer_cells(line: &Value) -> Vec<String> {
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
    fn rows_in_order_with_their_columns_and_no_formula_runs() {
        let lines = vec![
            json!({"row": 2, "input": {"customer_id": "c2", "email": "x"},
                   "error": {"code": "INVALID_ARGUMENT", "message": "email address has no '@'"}}),
            json!({"row": 1, "input": {"customer_id": "c1", "email": "jane@example.com"},
                   "answer": {"coverage": {"completeness": "COMPLETENESS_FOUND"},
                              "summary": {"displayName": {"value": "=HYPERLINK(\"http://evil\")", "sourceId": "forum"},
                                          "topInterests": ["Cooking", "Travel"],
                                          "footprintScore": 42, "riskScore": 10, "riskLevel": "LEVEL_LOW",
                                          "identifierValid": true, "disposable": false,
                                          "hasMailServers": true, "profilesFound": 3}}}),
        ];
        let mut out = Vec::new();
        write_csv(lines, &mut out).expect("writes");
        let text = String::from_utf8(out).unwrap();
        let mut rows = text.lines();
        assert_eq!(
            rows.next().unwrap(),
            "customer_id,email,row,outcome,error,display_name,display_name_source,location,\
             avatar_url,top_interests,footprint_score,risk_score,risk_level,identifier_valid,\
             disposable,has_mail_servers,profiles_found"
        );
        assert_eq!(
            rows.next().unwrap(),
            "c1,jane@example.com,1,enriched,,\"'=HYPERLINK(\"\"http://evil\"\")\",forum,,,\
             Cooking; Travel,42,10,low,true,false,true,3"
        );
        assert_eq!(
            rows.next().unwrap(),
            "c2,x,2,invalid,email address has no '@',,,,,,,,,,,,"
        );
    }
}
