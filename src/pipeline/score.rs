//! Stage 7, score: interests, digital footprint and contact risk from the
//! merged profiles (pure functions in `scoring`).
use chrono::{DateTime, Utc};

use super::Enricher;
use super::merge::Merged;
use super::query::EnrichQuery;
use crate::compliance::policy::FieldPolicy;
use crate::model::{Footprint, Risk, ScoredInterests};
use crate::scoring::{footprint, interests, risk};

/// What of the scores does not depend on the time (kept with a fully
/// cached answer's memo): the interests and the footprint's basis.
#[derive(Clone)]
pub(super) struct Lasting {
    pub interests: ScoredInterests,
    pub footprint: footprint::Basis,
}

pub(super) struct Scores {
    pub interests: ScoredInterests,
    pub footprint: Footprint,
    /// Only when risk is wanted and the identifier was verified.
    pub risk: Option<Risk>,
}

impl Enricher {
    /// The interests of the merged profiles and their footprint's basis.
    pub(super) fn lasting(&self, merged: &Merged, query: &EnrichQuery) -> Lasting {
        let defaults = &self.scoring.weights.interests;
        let options = interests::InterestOptions {
            min_score: query.min_interest_score.unwrap_or(defaults.min_score),
            max: query.max_interests.unwrap_or(defaults.max_interests),
        };
        let (profiles, catalog) = (&merged.profiles, self.catalog());
        Lasting {
            interests: interests::score(profiles, catalog, &self.scoring, options),
            footprint: footprint::Basis::of(profiles, catalog, &self.scoring),
        }
    }

    /// Footprint and risk as of `now`, from what was scored before.
    pub(super) fn score(
        &self,
        merged: &Merged,
        lasting: Lasting,
        fields: &FieldPolicy,
        verdict_at: Option<crate::model::VerdictThresholds>,
        query: &EnrichQuery,
        now: DateTime<Utc>,
    ) -> Scores {
        let profiles = &merged.profiles;
        let Lasting {
            interests,
            footprint,
        } = lasting;
        let footprint = footprint.at(&self.scoring, now);
        let verification = merged.verification.as_ref();
        let risk = verification
            .filter(|_| fields.wants(crate::model::ResponseField::Risk))
            .map(|v| {
                let hint = query.name_hint.as_deref();
                let evidence = risk::Evidence {
                    profiles,
                    footprint: &footprint,
                    coverage_sufficient: merged.coverage.sufficient,
                    phone_line: merged.roles.phone_line.as_deref(),
                    mailbox: merged.roles.mailbox.as_deref(),
                    breaches: &merged.roles.breaches,
                };
                risk::score(v, &evidence, hint, &self.scoring, verdict_at, now)
            });
        Scores {
            interests,
            footprint,
            risk,
        }
    }
}
