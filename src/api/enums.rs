//! Proto enums and their domain twins: one table per enum, read both ways.
use crate::model::{CacheMode, Confidence, LawfulBasis};
use crate::proto::v1 as pb;

const BASES: [(LawfulBasis, pb::LawfulBasis); 6] = [
    (LawfulBasis::Consent, pb::LawfulBasis::Consent),
    (LawfulBasis::Contract, pb::LawfulBasis::Contract),
    (
        LawfulBasis::LegalObligation,
        pb::LawfulBasis::LegalObligation,
    ),
    (LawfulBasis::VitalInterests, pb::LawfulBasis::VitalInterests),
    (LawfulBasis::PublicTask, pb::LawfulBasis::PublicTask),
    (
        LawfulBasis::LegitimateInterests,
        pb::LawfulBasis::LegitimateInterests,
    ),
];

pub fn basis_to_proto(basis: LawfulBasis) -> pb::LawfulBasis {
    BASES
        .iter()
        .find(|(b, _)| *b == basis)
        .map_or(pb::LawfulBasis::Unspecified, |(_, p)| *p)
}

/// `None` for UNSPECIFIED.
pub fn basis_from_proto(basis: pb::LawfulBasis) -> Option<LawfulBasis> {
    BASES.iter().find(|(_, p)| *p == basis).map(|(b, _)| *b)
}

/// A basis as the ledger spells it.
pub fn basis_from_str(text: &str) -> pb::LawfulBasis {
    BASES
        .iter()
        .find(|(b, _)| b.as_str() == text)
        .map_or(pb::LawfulBasis::Unspecified, |(_, p)| *p)
}

const CONFIDENCES: [(Confidence, pb::MatchConfidence); 3] = [
    (Confidence::Guess, pb::MatchConfidence::Guess),
    (Confidence::Pivot, pb::MatchConfidence::Pivot),
    (Confidence::Exact, pb::MatchConfidence::Exact),
];

pub fn confidence_to_proto(c: Confidence) -> pb::MatchConfidence {
    CONFIDENCES
        .iter()
        .find(|(d, _)| *d == c)
        .map_or(pb::MatchConfidence::Unspecified, |(_, p)| *p)
}

/// `None` for UNSPECIFIED.
pub fn confidence_from_proto(c: pb::MatchConfidence) -> Option<Confidence> {
    CONFIDENCES.iter().find(|(_, p)| *p == c).map(|(d, _)| *d)
}

const CACHE_MODES: [(CacheMode, pb::cache_policy::Mode); 3] = [
    (CacheMode::Use, pb::cache_policy::Mode::Use),
    (CacheMode::Refresh, pb::cache_policy::Mode::Refresh),
    (CacheMode::CacheOnly, pb::cache_policy::Mode::CacheOnly),
];

pub fn cache_mode_to_proto(m: CacheMode) -> pb::cache_policy::Mode {
    CACHE_MODES
        .iter()
        .find(|(d, _)| *d == m)
        .map_or(pb::cache_policy::Mode::Unspecified, |(_, p)| *p)
}

/// UNSPECIFIED means the default, `Use`.
pub fn cache_mode_from_proto(m: pb::cache_policy::Mode) -> CacheMode {
    CACHE_MODES
        .iter()
        .find(|(_, p)| *p == m)
        .map_or(CacheMode::Use, |(d, _)| *d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_basis_maps_both_ways_and_by_its_ledger_spelling() {
        for basis in LawfulBasis::ALL {
            let p = basis_to_proto(basis);
            assert_ne!(p, pb::LawfulBasis::Unspecified);
            assert_eq!(basis_from_proto(p), Some(basis));
            assert_eq!(basis_from_str(basis.as_str()), p);
        }
        assert_eq!(basis_from_proto(pb::LawfulBasis::Unspecified), None);
        assert_eq!(basis_from_str(""), pb::LawfulBasis::Unspecified);
    }
}
