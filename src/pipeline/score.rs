//! Stage 7, score: interests, digital footprint and contact risk from the
//! merged profiles (pure functions in `scoring`).
use chrono::{DateTime, Utc};

use super::Enricher;
use super::merge::Merged;
use super::query::EnrichQuery;
use crate::compliance::policy::FieldPolicy;
use crate::model::{Footprint, Risk, ScoredInterests};
use crate::scoring::{footprint, interests, risk};

pub(super) struct Scores {
    pub interests: ScoredInterests,
    pub footprint: Footprint,
    /// Only when risk is wanted and the identifier was verified.
    pub risk: Option<Risk>,
}

impl Enricher {
    /// The interests of the merged profiles (they do not depend on the
    /// time, and are kept with a fully cached answer's memo).
    pub(super) fn interests(&self, merged: &Merged, query: &EnrichQuery) -> ScoredInterests {
        let defaults = &self.scoring.weights.interests;
        let options = interests::InterestOptions {
            min_score: query.min_interest_score.unwrap_or(defaults.min_score),
            max: query.max_interests.unwrap_or(defaults.max_interests),
        };
        interests::score(&merged.profiles, self.catalog(), &self.scoring, options)
    }

    /// Footprint and risk, as of `now`, with the interests scored before.
    pub(super) fn score(
        &self,
        merged: &Merged,
        interests: ScoredInterests,
        fields: &FieldPolicy,
        query: &EnrichQuery,
        now: DateTime<Utc>,
    ) -> Scores {
        let catalog = self.catalog();
        let profiles = &merged.profiles;
        let footprint = footprint::score(profiles, catalog, &self.scoring, now);
        let verification = merged.verification.as_ref();
        let risk = verification.filter(|_| fields.wants("risk")).map(|v| {
            let hint = query.name_hint.as_deref();
            let evidence = risk::Evidence {
                profiles,
                footprint: &footprint,
                coverage_sufficient: merged.coverage.sufficient,
                phone_line: merged.roles.phone_line.as_ref(),
                mailbox: merged.roles.mailbox.as_ref(),
            };
            risk::score(v, &evidence, hint, &self.scoring, now)
        });
        Scores {
            interests,
            footprint,
            risk,
        }
    }
}
