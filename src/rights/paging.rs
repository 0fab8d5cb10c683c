//! Pages of an access report: how many records, where the next page
//! starts, and how much one page may carry.
use crate::ledger::Record;

/// Records in a page of an access report when the caller names no size.
pub const DEFAULT_PAGE_SIZE: u32 = 1_000;
/// The most records a page of an access report holds.
pub const MAX_PAGE_SIZE: u32 = 10_000;

/// What a page of an access report may carry, estimated from its strings:
/// with the framing of its fields and what every page repeats (summary,
/// logic, suppressions), it stays under the 4 MiB message a default gRPC
/// client takes, whatever the records and batch rows hold.
pub const PAGE_BYTES: usize = 3 * 1024 * 1024;

/// Where a page of an access report starts: after the record at `after`
/// (time, id) or, once the records are done, after the first
/// `rows_offset` batch rows; for every page of one access, at most up to
/// `until_ms`, when its first page was asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PageToken {
    pub(super) until_ms: i64,
    pub(super) after_ms: i64,
    /// Empty once every record was carried (the batch rows follow).
    pub(super) after_id: String,
    pub(super) rows_offset: u64,
}

impl PageToken {
    const PREFIX: &str = "p2.";

    /// A token this server issued, or `None`.
    pub fn parse(text: &str) -> Option<Self> {
        let mut parts = text.strip_prefix(Self::PREFIX)?.splitn(4, '.');
        let until_ms = parts.next()?.parse().ok()?;
        let after_ms = parts.next()?.parse().ok()?;
        let rows_offset = parts.next()?.parse().ok()?;
        // Processing ids are 32 hex digits today; a token names whatever id
        // its page ended on (records of earlier versions included).
        let after_id = parts.next()?;
        let id_like = after_id.len() <= 64;
        (id_like && after_ms <= until_ms).then(|| Self {
            until_ms,
            after_ms,
            after_id: after_id.to_owned(),
            rows_offset,
        })
    }

    pub(super) fn records_done(&self) -> bool {
        self.after_id.is_empty()
    }
}

impl std::fmt::Display for PageToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let Self {
            until_ms,
            after_ms,
            after_id,
            rows_offset,
        } = self;
        write!(
            f,
            "{}{until_ms}.{after_ms}.{rows_offset}.{after_id}",
            Self::PREFIX
        )
    }
}

/// About what a record takes in a message.
pub(super) fn record_bytes(r: &Record) -> usize {
    let lists: usize = r
        .sources
        .iter()
        .chain(&r.field_categories)
        .map(|s| s.len() + 2)
        .sum();
    let text = [
        &r.id,
        &r.caller,
        &r.caller_id,
        &r.on_behalf_of,
        &r.purpose,
        &r.lawful_basis,
        &r.consent_ref,
        &r.lia_ref,
        &r.contract_ref,
        &r.reference,
        &r.detail,
    ];
    lists + text.iter().map(|t| t.len() + 2).sum::<usize>() + 64
}

/// About what a batch row takes in a message.
pub(super) fn row_bytes(row: &crate::ledger::HeldRow) -> usize {
    let (job, input, purpose) = (&row.job_id, &row.input, &row.purpose);
    job.len() + input.len() + purpose.len() + 24
}

/// Batch rows read at a time while a page is filled.
pub(super) const ROWS_AT_A_TIME: u64 = 256;

/// Which page of the records an access report carries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Page {
    /// 1 to `MAX_PAGE_SIZE`.
    pub size: u32,
    /// `None`: the first page.
    pub token: Option<PageToken>,
}

#[cfg(test)]
mod tests {
    use super::PageToken;

    #[test]
    fn a_page_token_reads_back_what_it_wrote_and_nothing_else() {
        let token = PageToken {
            until_ms: 1_796_000_000_000,
            after_ms: 1_795_000_000_000,
            after_id: "019ae1c2d3e4f5a6b7c8d9e0f1a2b3c4".into(),
            rows_offset: 0,
        };
        assert_eq!(PageToken::parse(&token.to_string()), Some(token));
        // The records done, the batch rows from the 300th on.
        let rows = "p2.20.10.300.";
        let parsed = PageToken::parse(rows).unwrap();
        assert!(parsed.records_done() && parsed.rows_offset == 300);
        assert_eq!(parsed.to_string(), rows);
        // An id of an earlier version's record, dots and all.
        let older = "p2.20.10.0.ab-cd.ef";
        assert_eq!(PageToken::parse(older).unwrap().to_string(), older);
        for bad in [
            "",
            "p2.",
            "p2.10.20.0.abc",
            "p1.20.10.abc",
            "p2.x.10.0.abc",
            "p2.20.10.-1.abc",
            "p2.20.10.abc",
        ] {
            assert_eq!(PageToken::parse(bad), None, "{bad:?}");
        }
    }
}
