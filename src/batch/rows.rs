//! Reading a customer list: CSV with a header row or JSONL, the identifier
//! column detected or named, every row numbered (a bad row is kept, with its
//! reason, so it gets its own error line).
use std::fs::File;
use std::io::{BufRead, BufReader};
use std::path::Path;

use serde_json::Value;

mod bounded;
use bounded::{CsvRecords, next_line};

use crate::proto::v1 as pb;

/// One input row, numbered from 1 (the header is not a row).
pub struct Row {
    pub number: u64,
    pub identifier: Result<pb::enrich_request::Identifier, String>,
    /// The row as read (every column), carried to its output line.
    pub input: serde_json::Map<String, Value>,
    /// From a `name` column: the person's name as the list has it.
    pub name: Option<String>,
    /// From a `region`/`country` column: for national phone numbers.
    pub region: Option<String>,
}

const NAME_NAMES: &[&str] = &["name", "full_name", "fullname", "contact_name"];
const REGION_NAMES: &[&str] = &["region", "country", "country_code"];

/// A column's name as the known names are written: trimmed, lowercase,
/// with spaces and hyphens as underscores. A CRM's or a mailing tool's
/// export names its columns "Email Address", "Phone Number" or "Full Name".
fn column_key(name: &str) -> String {
    name.trim()
        .chars()
        .map(|c| match c {
            ' ' | '-' => '_',
            c => c.to_ascii_lowercase(),
        })
        .collect()
}

/// The text of the first of `names` (as `column_key` writes them) that
/// the row has.
fn named<'a>(row: &'a serde_json::Map<String, Value>, names: &[&str]) -> Option<&'a str> {
    names.iter().find_map(|n| {
        row.iter()
            .find(|(k, _)| column_key(k) == *n)
            .and_then(|(_, v)| v.as_str())
    })
}

/// The first non-empty text among `names` in a row.
fn text_of(input: &serde_json::Map<String, Value>, names: &[&str]) -> Option<String> {
    names.iter().find_map(|n| {
        named(input, &[n])
            .map(str::trim)
            .filter(|v| !v.is_empty())
            .map(str::to_owned)
    })
}

impl Row {
    /// The request for this row: `template` with the row's identifier, its
    /// number as the request id, and the list's name and region as hints.
    /// None for a row without a usable identifier.
    pub fn request(&self, template: &pb::EnrichRequest) -> Option<pb::EnrichRequest> {
        let identifier = self.identifier.as_ref().ok()?.clone();
        let mut request = pb::EnrichRequest {
            request_id: self.number.to_string(),
            identifier: Some(identifier),
            ..template.clone()
        };
        let hints = request.hints.get_or_insert_with(Default::default);
        if let Some(name) = &self.name {
            hints.name = name.clone();
        }
        if let Some(region) = self
            .region
            .as_ref()
            .filter(|r| r.len() == 2 && r.chars().all(|c| c.is_ascii_alphabetic()))
            && hints.default_region.is_empty()
        {
            hints.default_region = region.clone();
        }
        Some(request)
    }

    fn new(
        number: u64,
        identifier: Result<pb::enrich_request::Identifier, String>,
        input: serde_json::Map<String, Value>,
    ) -> Self {
        Self {
            number,
            identifier,
            name: text_of(&input, NAME_NAMES),
            region: text_of(&input, REGION_NAMES),
            input,
        }
    }
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

/// Known names, as `column_key` writes them.
const EMAIL_NAMES: &[&str] = &["email", "e_mail", "email_address", "e_mail_address", "mail"];
const PHONE_NAMES: &[&str] = &[
    "phone",
    "phone_number",
    "mobile",
    "mobile_phone",
    "mobile_number",
    "tel",
    "telephone",
];

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

/// The header's columns as an error message shows them: the first 20, each
/// cut at 64 characters (the header is the sender's text, echoed back).
fn shown(headers: &[String]) -> String {
    let mut shown: Vec<String> = headers
        .iter()
        .take(20)
        .map(|h| h.chars().take(64).collect())
        .collect();
    if headers.len() > 20 {
        shown.push(format!("... {} more", headers.len() - 20));
    }
    shown.join(", ")
}

/// The rows of the list at `path`, read one at a time as they are taken:
/// a list of any length is held a row at a time (a million rows read whole
/// took 1.3 GB).
pub fn read_rows(
    path: &Path,
    format: Format,
    columns: &Columns,
) -> anyhow::Result<RowReader<'static>> {
    let file =
        File::open(path).map_err(|e| anyhow::anyhow!("cannot open {}: {e}", path.display()))?;
    RowReader::new(
        file,
        &path.display().to_string(),
        format,
        columns,
        "--email-column or --phone-column",
        None,
    )
}

/// How many rows the list at `path` has, read as `read_rows` reads them.
pub fn count_rows(path: &Path, format: Format, columns: &Columns) -> anyhow::Result<u64> {
    read_rows(path, format, columns)?.try_fold(0, |n, row| row.map(|_| n + 1))
}

/// The most bytes one row may hold (a CSV record, an NDJSON line): a row is
/// a contact and a few columns, and its input comes back whole in answers
/// and Access reports. A longer one is that row's error, not parsed.
pub const MAX_ROW_BYTES: usize = 64 * 1024;

/// The most columns a CSV header may name.
pub const MAX_HEADER_COLUMNS: usize = 1024;

/// How the list at `path` was saved, for its table to be written alike:
/// its header's delimiter for a CSV list (see `csv_delimiter`; a comma for
/// JSONL), and whether it starts with a byte-order mark (Excel's "CSV
/// UTF-8" and "Unicode Text" do), so a list saved from a spreadsheet comes
/// back as that spreadsheet reads it.
pub fn list_dialect(path: &Path, format: Format) -> anyhow::Result<super::table::Dialect> {
    use std::io::Read;
    let mut head = Vec::with_capacity(4096);
    File::open(path)
        .map_err(|e| anyhow::anyhow!("cannot open {}: {e}", path.display()))?
        .take(64 * 1024)
        .read_to_end(&mut head)?;
    let bom = encoding_rs::Encoding::for_bom(&head).is_some();
    let delimiter = if format == Format::Csv {
        let mut text = Vec::with_capacity(head.len());
        unicode_text(head.as_slice()).read_to_end(&mut text)?;
        csv_delimiter(&text)
    } else {
        b','
    };
    Ok(super::table::Dialect { delimiter, bom })
}

/// A CSV list's field delimiter, read from its header line: a comma,
/// unless the header holds more semicolons or tabs outside quotes. A
/// spreadsheet saved as CSV where the comma is the decimal mark (most of
/// Europe) separates fields with `;`, and a copy out of one with tabs.
fn csv_delimiter(head: &[u8]) -> u8 {
    let line = head.split(|&b| b == b'\n').next().unwrap_or_default();
    let (mut quoted, mut counts) = (false, [(b',', 0), (b';', 0), (b'\t', 0)]);
    for &byte in line {
        if byte == b'"' {
            quoted = !quoted;
        } else if !quoted && let Some(count) = counts.iter_mut().find(|(d, _)| *d == byte) {
            count.1 += 1;
        }
    }
    // The first of the most frequent: a comma on a tie.
    counts
        .iter()
        .fold(
            (b',', 0),
            |best, &(d, n)| if n > best.1 { (d, n) } else { best },
        )
        .0
}

/// A CSV cell's text: UTF-8, or else Windows-1252, which is what a
/// spreadsheet's plain "CSV" writes in Western locales ("Müller" as the
/// byte 0xFC, not UTF-8's two). Read as UTF-8 such a row was unreadable,
/// and every row with an accented name became an error.
fn cell_text(cell: &[u8]) -> String {
    match std::str::from_utf8(cell) {
        Ok(text) => text.to_owned(),
        Err(_) => encoding_rs::WINDOWS_1252
            .decode_without_bom_handling(cell)
            .0
            .into_owned(),
    }
}

/// A list's bytes as UTF-8 when they start with a UTF-16 byte-order mark
/// (a spreadsheet's "Unicode Text" export, tab-separated); any other list
/// passes through as it is (UTF-8, or Windows-1252 cells, see
/// `cell_text`), its UTF-8 byte-order mark dropped.
fn unicode_text<R: std::io::Read>(input: R) -> encoding_rs_io::DecodeReaderBytes<R, Vec<u8>> {
    encoding_rs_io::DecodeReaderBytesBuilder::new()
        .strip_bom(true)
        .utf8_passthru(true)
        .build(input)
}

/// The reader of a CSV list (rows may have fewer or more cells than the
/// header).
fn csv_reader<R: std::io::Read>(delimiter: u8, input: R) -> csv::Reader<R> {
    csv::ReaderBuilder::new()
        .flexible(true)
        .delimiter(delimiter)
        .from_reader(input)
}

/// Why a list of more than `max` rows is refused.
fn too_many_rows(source: &str, max: usize) -> anyhow::Error {
    anyhow::anyhow!(
        "{source}: more than {max} rows; a job holds at most {max} (batch.max_job_rows): \
         split the list"
    )
}

/// Refuses a list of more than `max` rows before any row is parsed: the
/// rows are counted as the readers will count them (lines of NDJSON, CSV
/// records after the header), without keeping any of them. Four million
/// one-character rows were parsed up to the limit first, 100 MB of rows
/// for a refusal.
pub fn refuse_more_than(
    body: &[u8],
    source: &str,
    format: Format,
    max: usize,
) -> anyhow::Result<()> {
    // Counted as read: a UTF-16 list as its UTF-8.
    let decoded = encoding_rs::Encoding::for_bom(body)
        .filter(|(encoding, _)| *encoding != encoding_rs::UTF_8)
        .map(|(encoding, bom)| encoding.decode_without_bom_handling(&body[bom..]).0);
    let body = decoded.as_deref().map_or(body, str::as_bytes);
    let rows = match format {
        Format::Jsonl => {
            // `lines()` counts a last line without its newline too.
            let newlines = body.iter().filter(|&&b| b == b'\n').count();
            newlines + usize::from(!body.is_empty() && !body.ends_with(b"\n"))
        }
        Format::Csv => {
            let mut reader = csv_reader(csv_delimiter(body), body);
            let mut record = csv::ByteRecord::new();
            let mut rows = 0;
            while rows <= max && matches!(reader.read_byte_record(&mut record), Ok(true)) {
                rows += 1;
            }
            rows
        }
    };
    if rows > max {
        return Err(too_many_rows(source, max));
    }
    Ok(())
}

/// A list's rows, read as they are taken (an `Iterator`); the first error
/// (reading the input, or a row past `max_rows`) ends it.
pub struct RowReader<'a> {
    source: String,
    max_rows: Option<usize>,
    read: usize,
    failed: bool,
    list: List<'a>,
}

enum List<'a> {
    Jsonl {
        input: Box<dyn BufRead + 'a>,
        line: Vec<u8>,
        columns: Columns,
    },
    Csv {
        records: Box<CsvRecords<Box<dyn BufRead + 'a>>>,
        /// The header's names, as written.
        original: Vec<String>,
        email: Option<usize>,
        phone: Option<usize>,
    },
}

fn oversized(bytes: usize) -> String {
    format!("the row is {bytes} bytes; a row holds at most {MAX_ROW_BYTES}")
}

impl<'a> RowReader<'a> {
    /// Starts reading: a CSV list's header is read (and refused when it
    /// names no identifier column) before any row.
    pub fn new(
        input: impl std::io::Read + 'a,
        source: &str,
        format: Format,
        columns: &Columns,
        choose: &str,
        max_rows: Option<usize>,
    ) -> anyhow::Result<Self> {
        let input = unicode_text(input);
        let list = match format {
            Format::Jsonl => List::Jsonl {
                input: Box::new(BufReader::new(input)),
                line: Vec::new(),
                columns: columns.clone(),
            },
            Format::Csv => {
                // The header line says how fields are separated: read first
                // (a decoder may hand it over a few bytes at a time), then
                // put back in front of the rest.
                let mut input = BufReader::with_capacity(MAX_ROW_BYTES, input);
                let mut head = Vec::new();
                std::io::Read::take(&mut input, MAX_ROW_BYTES as u64)
                    .read_until(b'\n', &mut head)?;
                let delimiter = csv_delimiter(&head);
                let input = std::io::Read::chain(std::io::Cursor::new(head), input);
                let mut records: CsvRecords<Box<dyn BufRead + 'a>> =
                    CsvRecords::new(delimiter, Box::new(BufReader::new(input)));
                let original = match records.next()? {
                    None => Vec::new(),
                    Some(Ok(cells)) => cells,
                    Some(Err(bytes)) => anyhow::bail!(
                        "{source}: the header is {bytes} bytes; a row holds at most {MAX_ROW_BYTES}"
                    ),
                };
                let headers: Vec<String> = original.iter().map(|h| column_key(h)).collect();
                let find = |chosen: &Option<String>, names: &[&str]| -> Option<usize> {
                    match chosen {
                        Some(c) => headers.iter().position(|h| *h == column_key(c)),
                        None => headers.iter().position(|h| names.contains(&h.as_str())),
                    }
                };
                if headers.len() > MAX_HEADER_COLUMNS {
                    anyhow::bail!(
                        "{source}: the header names {} columns; a list has at most {MAX_HEADER_COLUMNS}",
                        headers.len()
                    );
                }
                let email = find(&columns.email, EMAIL_NAMES);
                let phone = find(&columns.phone, PHONE_NAMES);
                if email.is_none() && phone.is_none() {
                    anyhow::bail!(
                        "{source}: no email or phone column in the header ({}); name one with {choose}",
                        shown(&original)
                    );
                }
                List::Csv {
                    records: Box::new(records),
                    original,
                    email,
                    phone,
                }
            }
        };
        Ok(RowReader {
            source: source.to_owned(),
            max_rows,
            read: 0,
            failed: false,
            list,
        })
    }

    fn next_row(&mut self) -> anyhow::Result<Option<Row>> {
        let number = self.read as u64 + 1;
        let row = match &mut self.list {
            List::Jsonl {
                input,
                line,
                columns,
            } => match next_line(input, line)? {
                None => return Ok(None),
                Some(Err(bytes)) => Row::new(number, Err(oversized(bytes)), serde_json::Map::new()),
                Some(Ok(())) => jsonl_row(number, line, columns),
            },
            List::Csv {
                records,
                original,
                email,
                phone,
            } => match records.next()? {
                None => return Ok(None),
                Some(Err(bytes)) => Row::new(number, Err(oversized(bytes)), serde_json::Map::new()),
                Some(Ok(cells)) => csv_row(number, cells, original, *email, *phone),
            },
        };
        if self.max_rows.is_some_and(|max| self.read >= max) {
            return Err(too_many_rows(&self.source, self.read));
        }
        self.read += 1;
        Ok(Some(row))
    }
}

impl Iterator for RowReader<'_> {
    type Item = anyhow::Result<Row>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.failed {
            return None;
        }
        let next = self.next_row().transpose();
        self.failed = matches!(next, Some(Err(_)));
        next
    }
}

/// One NDJSON line as a row. Lines as bytes: one that is not UTF-8 is read
/// as Windows-1252, as a CSV cell is, and stays that row's, not the run's,
/// problem.
fn jsonl_row(number: u64, line: &mut Vec<u8>, columns: &Columns) -> Row {
    if line.last() == Some(&b'\r') {
        line.pop();
    }
    let line = cell_text(line);
    if line.len() > MAX_ROW_BYTES {
        return Row::new(number, Err(oversized(line.len())), serde_json::Map::new());
    }
    let parsed = serde_json::from_str::<Value>(&line);
    let identifier = match &parsed {
        Ok(v) => {
            let field = |names: &[&str], chosen: &Option<String>| {
                let object = v.as_object()?;
                match chosen {
                    Some(c) => named(object, &[column_key(c).as_str()]),
                    None => named(object, names),
                }
            };
            identifier(
                field(EMAIL_NAMES, &columns.email),
                field(PHONE_NAMES, &columns.phone),
            )
        }
        Err(e) => Err(format!("not a JSON object: {e}")),
    };
    let input = match parsed {
        Ok(Value::Object(m)) => m,
        _ => serde_json::Map::new(),
    };
    Row::new(number, identifier, input)
}

/// One CSV record as a row, its cells named by the header's columns.
fn csv_row(
    number: u64,
    cells: Vec<String>,
    original: &[String],
    email: Option<usize>,
    phone: Option<usize>,
) -> Row {
    // Bounded as read and as text: a Windows-1252 byte may take three as
    // UTF-8.
    let bytes = cells.iter().map(String::len).sum::<usize>();
    if bytes > MAX_ROW_BYTES {
        return Row::new(number, Err(oversized(bytes)), serde_json::Map::new());
    }
    let cell = |column: Option<usize>| column.and_then(|c| cells.get(c)).map(String::as_str);
    let identifier = if cells.len() == original.len() {
        identifier(cell(email), cell(phone))
    } else {
        Err(format!(
            "{} columns where the header has {}",
            cells.len(),
            original.len()
        ))
    };
    let input = original
        .iter()
        .cloned()
        .zip(cells.into_iter().map(Value::String))
        .collect();
    Row::new(number, identifier, input)
}

#[cfg(test)]
mod tests {
    use super::{Columns, Format, Row, csv_delimiter, refuse_more_than};

    /// The rows of `input`, all of them.
    fn read_rows_from(
        input: impl std::io::Read,
        source: &str,
        format: Format,
        columns: &Columns,
        choose: &str,
        max_rows: Option<usize>,
    ) -> anyhow::Result<Vec<Row>> {
        super::RowReader::new(input, source, format, columns, choose, max_rows)?.collect()
    }

    /// The first row's email address when the caller names the column
    /// "work e-mail".
    fn work_email_of(list: &[u8], format: Format) -> String {
        let chosen = Columns {
            email: Some("work e-mail".into()),
            phone: None,
        };
        let rows = read_rows_from(list, "body", format, &chosen, "emailColumn", None).unwrap();
        match &rows[0].identifier {
            Ok(crate::proto::v1::enrich_request::Identifier::Email(e)) => e.clone(),
            other => panic!("{other:?}"),
        }
    }

    /// The rows of `list`, its columns found by their names.
    fn rows_of(list: impl std::io::Read, format: Format) -> Vec<Row> {
        read_rows_from(
            list,
            "body",
            format,
            &Columns::default(),
            "emailColumn",
            None,
        )
        .unwrap()
    }

    fn csv_rows(list: &[u8]) -> Vec<Row> {
        rows_of(list, Format::Csv)
    }

    fn email_of(row: &Row) -> String {
        match &row.identifier {
            Ok(crate::proto::v1::enrich_request::Identifier::Email(e)) => e.clone(),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_row_too_long_is_its_own_error_and_the_list_goes_on() {
        let long = "x".repeat(3 << 20);
        let at_most = "a row holds at most 65536";
        let jsonl =
            format!("{{\"email\":\"a@example.com\"}}\n{long}\n{{\"email\":\"b@example.com\"}}");
        let rows = rows_of(jsonl.as_bytes(), Format::Jsonl);
        assert_eq!(rows.len(), 3);
        assert_eq!(email_of(&rows[0]), "a@example.com");
        let why = rows[1].identifier.as_ref().unwrap_err();
        assert!(
            why.contains("the row is 3145728 bytes") && why.contains(at_most),
            "{why}"
        );
        assert_eq!(email_of(&rows[2]), "b@example.com");
        // Skipped as read, not held.
        let mut line = Vec::new();
        let text = format!("{long}\nnext");
        let mut input = std::io::BufReader::new(text.as_bytes());
        let read = super::bounded::next_line(&mut input, &mut line).unwrap();
        assert_eq!(read, Some(Err(3 << 20)));
        assert!(
            line.capacity() <= 2 * super::MAX_ROW_BYTES,
            "{}",
            line.capacity()
        );
        assert_eq!(
            super::bounded::next_line(&mut input, &mut line).unwrap(),
            Some(Ok(()))
        );
        assert_eq!(line, b"next");

        // A quoted cell over many lines is one record, however long.
        let lines = "y\n".repeat(1 << 20);
        let csv = format!(
            "email,note\na@example.com,\"{long}\"\nb@example.com,\"{lines}\"\nc@example.com,n\n"
        );
        let rows = csv_rows(csv.as_bytes());
        assert_eq!(rows.len(), 3);
        for (row, bytes) in [(&rows[0], long.len() + 17), (&rows[1], lines.len() + 17)] {
            let why = row.identifier.as_ref().unwrap_err();
            assert!(why.contains(&format!("the row is {bytes} bytes")), "{why}");
        }
        assert_eq!(email_of(&rows[2]), "c@example.com");
    }

    #[test]
    fn rows_are_read_as_they_are_taken() {
        // A list that never ends, and says so if read past 1 MiB.
        struct Endless(usize);
        impl std::io::Read for Endless {
            fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
                let row = b"someone@example.com\n";
                let n = buf.len().min(row.len());
                buf[..n].copy_from_slice(&row[..n]);
                self.0 += n;
                assert!(self.0 < 1 << 20, "the list was read ahead of its rows");
                Ok(n)
            }
        }
        for format in [Format::Csv, Format::Jsonl] {
            let head: &[u8] = match format {
                Format::Csv => b"email\n",
                Format::Jsonl => b"",
            };
            let list = std::io::Read::chain(head, Endless(0));
            let rows = super::RowReader::new(list, "list", format, &Columns::default(), "", None);
            let taken = rows.unwrap().take(1000).count();
            assert_eq!(taken, 1000);
        }
    }

    #[test]
    fn a_row_of_the_most_bytes_a_row_may_hold_is_read() {
        // Cells of 65536 bytes in all, with a delimiter, quotes, escaped
        // quotes and a CRLF around them.
        let email = "a@example.com";
        let quotes = "\"".repeat(100);
        let pad = "p".repeat(super::MAX_ROW_BYTES - email.len() - quotes.len());
        let escaped = quotes.replace('"', "\"\"");
        for (extra, fits) in [("", true), ("p", false)] {
            let list = format!("email,pad\r\n{email},\"{escaped}{pad}{extra}\"\r\n");
            let rows = csv_rows(list.as_bytes());
            assert_eq!(rows.len(), 1);
            if fits {
                assert_eq!(email_of(&rows[0]), email);
                assert_eq!(rows[0].input["pad"].as_str().unwrap().len(), 65536 - 13);
            } else {
                let why = rows[0].identifier.as_ref().unwrap_err();
                assert!(why.contains("the row is 65537 bytes"), "{why}");
            }
            let jsonl = format!(
                "{{\"email\":\"{email}\",\"p\":\"{}{extra}\"}}\r\n",
                "p".repeat(super::MAX_ROW_BYTES - 19 - email.len())
            );
            let rows = rows_of(jsonl.as_bytes(), Format::Jsonl);
            assert_eq!(rows[0].identifier.is_ok(), fits, "{:?}", rows[0].identifier);
        }
    }

    #[test]
    fn a_list_s_delimiter_is_the_one_its_header_uses() {
        assert_eq!(csv_delimiter(b"email,name\na@example.com;x\n"), b',');
        assert_eq!(csv_delimiter(b"email;name;region\na,b,c\n"), b';');
        assert_eq!(csv_delimiter(b"email\tname\n"), b'\t');
        // One column, or as many of each: a comma.
        assert_eq!(csv_delimiter(b"email\n"), b',');
        assert_eq!(csv_delimiter(b"email;name,region\n"), b',');
        // Inside quotes a semicolon is text.
        assert_eq!(csv_delimiter(b"email,\"a;b;c\"\n"), b',');
        assert_eq!(csv_delimiter(b""), b',');
    }

    #[test]
    fn a_semicolon_list_is_read_by_its_columns() {
        // As a spreadsheet in a German locale saves it, with its BOM.
        let list =
            "\u{feff}Name;E-Mail;Umsatz\nJane Doe;jane@example.com;1,5\n;bob@example.org;2\n";
        let rows = csv_rows(list.as_bytes());
        assert_eq!(rows.len(), 2);
        let email = |i: usize| match &rows[i].identifier {
            Ok(crate::proto::v1::enrich_request::Identifier::Email(e)) => e.clone(),
            other => panic!("{other:?}"),
        };
        assert_eq!(
            (email(0), email(1)),
            ("jane@example.com".into(), "bob@example.org".into())
        );
        assert_eq!(rows[0].name.as_deref(), Some("Jane Doe"));
        assert_eq!(rows[0].input["Umsatz"], "1,5");
        let counted = list.as_bytes();
        assert!(refuse_more_than(counted, "body", Format::Csv, 2).is_ok());
        assert!(refuse_more_than(counted, "body", Format::Csv, 1).is_err());
        // Read from a file or a socket a few bytes at a time, without its
        // BOM: the header still says semicolons.
        struct Trickle<'a>(&'a [u8]);
        impl std::io::Read for Trickle<'_> {
            fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
                let n = self.0.len().min(buf.len()).min(2);
                buf[..n].copy_from_slice(&self.0[..n]);
                self.0 = &self.0[n..];
                Ok(n)
            }
        }
        let plain = list.trim_start_matches('\u{feff}');
        let rows = rows_of(Trickle(plain.as_bytes()), Format::Csv);
        assert_eq!(rows.len(), 2);
        assert!(rows.iter().all(|r| r.identifier.is_ok()));
    }

    #[test]
    fn an_export_s_column_names_are_found_whatever_their_spelling() {
        let rows = csv_rows(b"Full Name,Email Address,Mobile Phone,Country\nJane Doe,jane@example.com,,GB\nBob,,07700 900123,GB\n");
        let id = |i: usize| match &rows[i].identifier {
            Ok(crate::proto::v1::enrich_request::Identifier::Email(e)) => format!("email {e}"),
            Ok(crate::proto::v1::enrich_request::Identifier::Phone(p)) => format!("phone {p}"),
            Err(e) => panic!("{e}"),
        };
        assert_eq!(id(0), "email jane@example.com");
        assert_eq!(id(1), "phone 07700 900123");
        assert_eq!(rows[0].name.as_deref(), Some("Jane Doe"));
        assert_eq!(rows[1].region.as_deref(), Some("GB"));
        // A column named by the caller is found by the same key.
        let list = b"Email,Work E-Mail\nold@example.com,new@example.com\n";
        assert_eq!(work_email_of(list, Format::Csv), "new@example.com");
    }

    #[test]
    fn a_jsonl_row_s_keys_are_found_as_a_header_s() {
        let list = b"{\"E-Mail\": \"jane@example.com\", \"Full Name\": \"Jane\"}\n{\"phone_number\": \"+447700900123\"}\n";
        let rows = rows_of(&list[..], Format::Jsonl);
        assert!(
            rows.iter().all(|r| r.identifier.is_ok()),
            "{:?}",
            rows[0].identifier
        );
        assert_eq!(rows[0].name.as_deref(), Some("Jane"));
        // A key named by the caller is found by the same key.
        let list = b"{\"email\": \"old@example.com\", \"Work E-Mail\": \"new@example.com\"}\n";
        assert_eq!(work_email_of(list, Format::Jsonl), "new@example.com");
    }

    #[test]
    fn a_row_is_bounded_as_text_too() {
        // 30,000 bytes of "€" in Windows-1252 (0x80) are 90,000 as UTF-8.
        let mut list = b"email,note\njane@example.com,".to_vec();
        list.extend(std::iter::repeat_n(0x80, 30_000));
        list.extend(b"\nbob@example.org,x\n");
        let rows = csv_rows(&list);
        let refused = rows[0].identifier.as_ref().unwrap_err();
        assert!(refused.contains("a row holds at most"), "{refused}");
        assert!(rows[0].input.is_empty());
        assert!(rows[1].identifier.is_ok(), "the list goes on");
    }

    #[test]
    fn a_list_saved_in_windows_1252_keeps_its_accents() {
        // Excel's plain "CSV" on a Western Windows: 0xFC is "ü".
        let list = b"email,name\njane@example.com,J\xfcrgen M\xfcller\nbob@example.org,Bob\n";
        let rows = csv_rows(&list[..]);
        assert!(rows.iter().all(|r| r.identifier.is_ok()));
        assert_eq!(rows[0].name.as_deref(), Some("Jürgen Müller"));
        assert_eq!(rows[0].input["name"], "Jürgen Müller");
        // UTF-8 stays UTF-8.
        let list = "email,name\njane@example.com,Jürgen\n";
        let rows = csv_rows(list.as_bytes());
        assert_eq!(rows[0].name.as_deref(), Some("Jürgen"));
    }

    /// `text` as UTF-16 with its byte-order mark, little- or big-endian.
    fn utf16(text: &str, little: bool) -> Vec<u8> {
        let bom = if little { [0xFF, 0xFE] } else { [0xFE, 0xFF] };
        bom.into_iter()
            .chain(text.encode_utf16().flat_map(|u| {
                if little {
                    u.to_le_bytes()
                } else {
                    u.to_be_bytes()
                }
            }))
            .collect()
    }

    #[test]
    fn a_list_saved_as_unicode_text_is_read_and_counted() {
        // Excel's "Unicode Text": UTF-16 with a byte-order mark, tabs.
        let text = "E-Mail\tName\njane@example.com\tJürgen Müller\nbob@example.org\tBob\n";
        for little in [true, false] {
            let list = utf16(text, little);
            let rows = csv_rows(&list);
            assert_eq!(rows.len(), 2);
            assert!(rows.iter().all(|r| r.identifier.is_ok()));
            assert_eq!(rows[0].name.as_deref(), Some("Jürgen Müller"));
            assert!(refuse_more_than(&list, "body", Format::Csv, 2).is_ok());
            assert!(refuse_more_than(&list, "body", Format::Csv, 1).is_err());
        }
        let ndjson = utf16("{\"email\":\"a@example.com\"}\n", true);
        let rows = rows_of(&ndjson[..], Format::Jsonl);
        assert!(rows[0].identifier.is_ok());
    }

    #[test]
    fn a_jsonl_line_that_is_not_utf8_is_its_row_s_alone() {
        let list = b"{\"email\":\"a@example.com\",\"name\":\"J\xfcrgen\"}\r\n\xff\xfe\n{\"email\":\"b@example.com\"}\n";
        let rows = rows_of(&list[..], Format::Jsonl);
        assert_eq!(rows.len(), 3);
        assert!(rows[0].identifier.is_ok());
        assert_eq!(rows[0].input["name"], "Jürgen");
        assert!(rows[1].identifier.is_err(), "not an object: its own error");
        assert!(rows[2].identifier.is_ok(), "the list goes on");
    }

    #[test]
    fn rows_are_counted_as_the_readers_count_them() {
        // A quoted cell may hold a newline: still one row.
        let csv = b"email,note\na@example.com,\"two\nlines\"\nb@example.com,x\n";
        assert!(refuse_more_than(csv, "body", Format::Csv, 2).is_ok());
        let refused = refuse_more_than(csv, "body", Format::Csv, 1).unwrap_err();
        assert!(
            refused.to_string().contains("more than 1 rows"),
            "{refused}"
        );
        // A last line without its newline is a row too.
        let ndjson = b"{\"email\":\"a@example.com\"}\n{\"email\":\"b@example.com\"}";
        assert!(refuse_more_than(ndjson, "body", Format::Jsonl, 2).is_ok());
        assert!(refuse_more_than(ndjson, "body", Format::Jsonl, 1).is_err());
        assert!(refuse_more_than(b"", "body", Format::Jsonl, 0).is_ok());
    }
}
