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

const CONFIDENCES: [(Confidence, pb::MatchConfidence); 3] = [
    (Confidence::Guess, pb::MatchConfidence::Guess),
    (Confidence::Pivot, pb::MatchConfidence::Pivot),
    (Confidence::Exact, pb::MatchConfidence::Exact),
];

const CACHE_MODES: [(CacheMode, pb::cache_policy::Mode); 3] = [
    (CacheMode::Use, pb::cache_policy::Mode::Use),
    (CacheMode::Refresh, pb::cache_policy::Mode::Refresh),
    (CacheMode::CacheOnly, pb::cache_policy::Mode::CacheOnly),
];

/// The proto twin of a domain value.
fn to_proto<D: PartialEq + Copy, P: Copy>(table: &[(D, P)], value: D) -> Option<P> {
    table.iter().find(|(d, _)| *d == value).map(|(_, p)| *p)
}

/// The domain twin of a proto value (`None` for UNSPECIFIED).
fn from_proto<D: Copy, P: PartialEq + Copy>(table: &[(D, P)], value: P) -> Option<D> {
    table.iter().find(|(_, p)| *p == value).map(|(d, _)| *d)
}

pub fn basis_to_proto(basis: LawfulBasis) -> pb::LawfulBasis {
    to_proto(&BASES, basis).unwrap_or_default()
}

pub fn basis_from_proto(basis: pb::LawfulBasis) -> Option<LawfulBasis> {
    from_proto(&BASES, basis)
}

/// A basis as the ledger spells it.
pub fn basis_from_str(text: &str) -> pb::LawfulBasis {
    LawfulBasis::ALL
        .into_iter()
        .find(|b| b.as_str() == text)
        .map_or(pb::LawfulBasis::Unspecified, basis_to_proto)
}

pub fn confidence_to_proto(c: Confidence) -> pb::MatchConfidence {
    to_proto(&CONFIDENCES, c).unwrap_or_default()
}

pub fn confidence_from_proto(c: pb::MatchConfidence) -> Option<Confidence> {
    from_proto(&CONFIDENCES, c)
}

pub fn cache_mode_to_proto(m: CacheMode) -> pb::cache_policy::Mode {
    to_proto(&CACHE_MODES, m).unwrap_or_default()
}

/// UNSPECIFIED means the default, `Use`.
pub fn cache_mode_from_proto(m: pb::cache_policy::Mode) -> CacheMode {
    from_proto(&CACHE_MODES, m).unwrap_or_default()
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
