//! What became of one processing, as the ledger records it.
use std::fmt;

/// Why a request was refused before anything was looked up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    NoLawfulGround,
    /// The caller's key does not allow the purpose.
    PurposeNotAllowed,
    InvalidFieldMask,
    InvalidIdentifier,
}

impl Refusal {
    const ALL: [Refusal; 4] = [
        Self::NoLawfulGround,
        Self::PurposeNotAllowed,
        Self::InvalidFieldMask,
        Self::InvalidIdentifier,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::NoLawfulGround => "no lawful ground",
            Self::PurposeNotAllowed => "purpose not allowed for the caller",
            Self::InvalidFieldMask => "invalid field mask",
            Self::InvalidIdentifier => "invalid identifier",
        }
    }
}

/// The outcome column of a ledger record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LedgerOutcome {
    /// Sources yielded at least one profile.
    Enriched,
    /// Enough sources answered, and none found the person.
    NotFound,
    /// Nothing found, but too few sources answered to say nobody is there.
    Incomplete,
    /// The person is on the suppression list for this purpose.
    Suppressed,
    Refused(Refusal),
    /// A data-subject request: Art. 15 access, Art. 17 erasure, Art. 21(3)
    /// objection.
    Access,
    Erasure,
    Objection,
    /// Feedback on an answer's finding (the Feedback RPC).
    Feedback,
}

const REFUSED_PREFIX: &str = "refused: ";

impl LedgerOutcome {
    /// The stored spelling (stable: records written by earlier versions use it).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Enriched => "enriched",
            Self::NotFound => "not_found",
            Self::Incomplete => "incomplete",
            Self::Suppressed => "suppressed",
            Self::Access => "access",
            Self::Erasure => "erasure",
            Self::Objection => "objection",
            Self::Feedback => "feedback",
            Self::Refused(Refusal::NoLawfulGround) => "refused: no lawful ground",
            Self::Refused(Refusal::PurposeNotAllowed) => {
                "refused: purpose not allowed for the caller"
            }
            Self::Refused(Refusal::InvalidFieldMask) => "refused: invalid field mask",
            Self::Refused(Refusal::InvalidIdentifier) => "refused: invalid identifier",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "enriched" => Some(Self::Enriched),
            "not_found" => Some(Self::NotFound),
            "incomplete" => Some(Self::Incomplete),
            "suppressed" => Some(Self::Suppressed),
            "access" => Some(Self::Access),
            "erasure" => Some(Self::Erasure),
            "objection" => Some(Self::Objection),
            "feedback" => Some(Self::Feedback),
            _ => {
                let why = text.strip_prefix(REFUSED_PREFIX)?;
                Refusal::ALL
                    .into_iter()
                    .find(|r| r.as_str() == why)
                    .map(Self::Refused)
            }
        }
    }
}

impl fmt::Display for LedgerOutcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_outcome_reads_back_as_written() {
        let all = [
            LedgerOutcome::Enriched,
            LedgerOutcome::NotFound,
            LedgerOutcome::Incomplete,
            LedgerOutcome::Suppressed,
            LedgerOutcome::Access,
            LedgerOutcome::Erasure,
            LedgerOutcome::Objection,
            LedgerOutcome::Feedback,
        ]
        .into_iter()
        .chain(Refusal::ALL.map(LedgerOutcome::Refused));
        for outcome in all {
            assert_eq!(LedgerOutcome::parse(outcome.as_str()), Some(outcome));
            if let LedgerOutcome::Refused(r) = outcome {
                assert_eq!(outcome.as_str(), format!("{REFUSED_PREFIX}{}", r.as_str()));
            }
        }
        assert_eq!(LedgerOutcome::parse("refused: because"), None);
    }
}
