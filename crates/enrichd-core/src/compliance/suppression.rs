//! The suppression list (GDPR Art. 17 erasure, Art. 21 objection): who may
//! no longer be enriched, and for which purposes. It is checked before the
//! cache and before any source.
use crate::model::{Suppression, SuppressionReason};

/// Suppression scope covering every purpose (after an erasure).
pub const ALL_PURPOSES: &str = "all";
/// Suppression scope of an objection to direct marketing.
pub const MARKETING: &str = "marketing";

/// What a data-subject request asks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EraseKind {
    /// Art. 17: purge every tier and suppress for every purpose.
    Erasure,
    /// Art. 21(3): suppress for marketing only; nothing is purged.
    ObjectionToMarketing,
}

impl EraseKind {
    /// The suppression scope the request adds.
    pub fn scope(self) -> &'static str {
        match self {
            Self::Erasure => ALL_PURPOSES,
            Self::ObjectionToMarketing => MARKETING,
        }
    }

    /// Erasure removes what enrichd holds; an objection only stops future use.
    pub fn purges(self) -> bool {
        self == Self::Erasure
    }

    /// The purposes an answer reports as suppressed (empty: all of them).
    pub fn reported_purposes(self) -> Vec<String> {
        match self {
            Self::Erasure => Vec::new(),
            Self::ObjectionToMarketing => vec![MARKETING.to_owned()],
        }
    }
}

/// Whether `scopes` (a person's suppressions) stop processing for `purpose`.
pub fn stops(scopes: &[String], purpose: &str) -> bool {
    stops_where(|scope| scopes.iter().any(|s| s == scope), purpose)
}

/// The rule itself, over however the scopes are held (`holds(scope)`): an
/// erasure stops every purpose, an objection the purpose objected to.
pub fn stops_where(holds: impl Fn(&str) -> bool, purpose: &str) -> bool {
    holds(ALL_PURPOSES) || holds(purpose)
}

/// The answer's account of a suppressed person.
pub fn explanation() -> Suppression {
    Suppression {
        target: "identifier".into(),
        reason: SuppressionReason::DataSubjectRequest,
        detail: "the person erased their data or objected; nothing was processed".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn erasure_stops_every_purpose_and_an_objection_only_marketing() {
        let erased = vec![EraseKind::Erasure.scope().to_owned()];
        let objected = vec![EraseKind::ObjectionToMarketing.scope().to_owned()];
        assert!(stops(&erased, "fraud_prevention") && stops(&erased, "marketing"));
        assert!(stops(&objected, "marketing") && !stops(&objected, "fraud_prevention"));
        assert!(!stops(&[], "marketing"));
        assert!(EraseKind::Erasure.purges() && !EraseKind::ObjectionToMarketing.purges());
    }
}
