//! Storage limitation (GDPR Art. 5(1)(e)): every record carries the date
//! until which it is kept, fixed when it is written (refreshing a finding
//! never extends it), and a sweep (`ledger::retention`) deletes what is past
//! it.
use std::time::Duration;

use chrono::{DateTime, Utc};

use crate::model::Purpose;

/// How long a refusal's record is kept when it names no declared purpose.
pub const REFUSAL_RETENTION: Duration = Duration::from_secs(30 * 24 * 3600);

/// How long the record of a data-subject request (who asked for access or
/// erasure, when, under which reference) is kept: the evidence that it was
/// answered (GDPR Art. 5(2), 12(3)), for a limitation period of three years.
pub const REQUEST_RETENTION: Duration = Duration::from_secs(3 * 365 * 24 * 3600);

/// Until when a record of processing under `purpose` (or of a refusal that
/// named no valid purpose) written at `at` is kept.
/// In whole milliseconds, as the ledger stores it.
pub fn retain_until(at: DateTime<Utc>, purpose: Option<&Purpose>) -> DateTime<Utc> {
    keep_until(at, purpose.map_or(REFUSAL_RETENTION, |p| p.retention))
}

/// `at` plus `keep`, in whole milliseconds.
pub fn keep_until(at: DateTime<Utc>, keep: Duration) -> DateTime<Utc> {
    let until = at + chrono::Duration::from_std(keep).unwrap_or(chrono::Duration::MAX);
    DateTime::from_timestamp_millis(until.timestamp_millis()).unwrap_or(until)
}
