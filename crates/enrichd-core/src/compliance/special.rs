//! GDPR Art. 9: interests that reveal health, religion, political opinions,
//! sexuality, ethnicity, trade-union membership, biometric or genetic data
//! are never returned (nor cached: the cache holds source answers, never
//! interests), whatever the lawful basis; the answer counts what it left out.
//!
//! Which taxonomy nodes are special is data (`data/scoring/special-categories.toml`);
//! scoring keeps them apart (they never rank and never roll up into a parent).
use crate::model::{Interest, ScoredInterests, Suppression, SuppressionReason};

pub use crate::model::ART9_CATEGORIES;

/// What may be returned, and how many special-category interests were left out.
pub fn suppress(scored: ScoredInterests) -> (Vec<Interest>, u32) {
    let left_out = u32::try_from(scored.special.len()).unwrap_or(u32::MAX);
    (scored.ranked, left_out)
}

/// The answer's account of what Art. 9 left out, if anything.
pub fn explanation(left_out: u32) -> Option<Suppression> {
    (left_out > 0).then(|| Suppression {
        target: "interests".into(),
        reason: SuppressionReason::SpecialCategory,
        detail: format!(
            "{left_out} interests revealing GDPR Art. 9 special-category data were found and left out"
        ),
    })
}

/// The answer's account of the catalog's sites it never asks because
/// presence on them would reveal special-category data (count per Art. 9
/// category), if the catalog has any. A property of the catalog (such a
/// site is disabled in every request), so worked out once. Nothing is learnt
/// of the person: this counts questions not put, not data found (which
/// `special_categories_suppressed` counts).
pub fn sites_not_asked(catalog: &crate::catalog::Catalog) -> Option<Suppression> {
    let mut not_asked: std::collections::BTreeMap<&str, u32> = Default::default();
    for category in catalog
        .sources()
        .iter()
        .filter_map(|s| s.special_category.as_deref())
    {
        *not_asked.entry(category).or_insert(0) += 1;
    }
    let total: u32 = not_asked.values().sum();
    (total > 0).then(|| Suppression {
        target: "profiles".into(),
        reason: SuppressionReason::SpecialCategory,
        detail: format!(
            "{total} sites whose membership reveals GDPR Art. 9 special-category data were not \
             asked ({}): asking would itself process such data",
            not_asked
                .iter()
                .map(|(category, n)| format!("{category}: {n}"))
                .collect::<Vec<_>>()
                .join(", ")
        ),
    })
}

/// The answer's account of the breaches of sensitive sites (a dating or
/// health site's breach reveals membership) left out, if any.
pub fn breaches_explanation(left_out: u32) -> Option<Suppression> {
    (left_out > 0).then(|| Suppression {
        target: "breaches".into(),
        reason: SuppressionReason::SpecialCategory,
        detail: format!(
            "{left_out} breaches of sites whose membership reveals GDPR Art. 9 \
             special-category data were left out (neither kept nor cached)"
        ),
    })
}
