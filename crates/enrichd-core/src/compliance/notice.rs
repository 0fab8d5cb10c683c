//! GDPR Art. 14: the information duty when personal data were not obtained
//! from the person, and the date by which they must be told.
use chrono::{DateTime, Utc};

use crate::model::NoticeDuty;

/// Art. 14(3)(a): at the latest within one month of obtaining the data.
pub const DEADLINE_DAYS: i64 = 30;

/// enrichd never collects data from the person: everything it returns was
/// obtained from third-party sources, so Art. 14 (not Art. 13) governs every
/// answer, and Art. 14(2)(f) asks to say where the data came from.
pub const DATA_NOT_FROM_SUBJECT: bool = true;
pub const SOURCE_OF_DATA: &str = "not_obtained_from_data_subject";

/// The latest notice date: a month after the first processing of this
/// person, or the planned first contact if earlier (Art. 14(3)(a), (b)).
pub fn deadline(
    first_processed: DateTime<Utc>,
    first_contact: Option<DateTime<Utc>>,
) -> DateTime<Utc> {
    let month = first_processed + chrono::Duration::days(DEADLINE_DAYS);
    first_contact.map_or(month, |c| c.min(month))
}

/// The duty that follows from the sources that yielded personal data:
/// none when nothing was obtained, else a notice by `notify_by` naming the
/// sources and the categories of data (Art. 14(1)(d), (2)(f)).
pub fn duty(
    notify_by: DateTime<Utc>,
    sources: Vec<String>,
    data_categories: Vec<String>,
) -> NoticeDuty {
    let required = !sources.is_empty();
    NoticeDuty {
        required,
        data_not_from_subject: DATA_NOT_FROM_SUBJECT,
        data_categories,
        sources,
        notify_by: required.then_some(notify_by),
        exemption: (!required)
            .then(|| "no personal data was obtained from third-party sources".to_owned()),
    }
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;

    fn day(d: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 3, d, 12, 0, 0).unwrap()
    }

    #[test]
    fn the_deadline_is_a_month_after_first_processing_or_the_first_contact_if_sooner() {
        assert_eq!(deadline(day(1), None), day(31));
        assert_eq!(deadline(day(1), Some(day(10))), day(10));
        assert_eq!(
            deadline(
                day(1),
                Some(Utc.with_ymd_and_hms(2026, 5, 1, 0, 0, 0).unwrap())
            ),
            day(31)
        );
    }

    #[test]
    fn a_notice_is_due_only_when_sources_yielded_personal_data() {
        let none = duty(day(31), Vec::new(), Vec::new());
        assert!(!none.required && none.notify_by.is_none() && none.exemption.is_some());
        let some = duty(day(31), vec!["gravatar".into()], vec!["avatar".into()]);
        assert!(some.required && some.exemption.is_none());
        assert_eq!(some.notify_by, Some(day(31)));
    }
}
