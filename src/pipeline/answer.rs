//! Stage 10, answer: the domain answer, assembled from what the earlier
//! stages decided; nothing is judged here.
use chrono::{DateTime, Utc};

use super::comply::Disclosed;
use super::merge::Merged;
use super::parse::Subject;
use super::query::EnrichQuery;
use crate::compliance::{notice, retention, suppression};
use crate::model::{CacheInfo, Compliance, Enrichment, LawfulGround};

pub(super) fn enriched(
    query: EnrichQuery,
    processing_id: String,
    subject: Subject,
    disclosed: Disclosed,
    merged: Merged,
    now: DateTime<Utc>,
) -> Enrichment {
    Enrichment {
        request_id: query.request_id,
        processing_id,
        identifier: Some(subject.identifier),
        verification: disclosed.verification,
        profiles: disclosed.profiles,
        possible_matches: disclosed.possible_matches,
        attributes: disclosed.attributes,
        sources: merged.outcomes,
        interests: disclosed.interests,
        footprint: disclosed.footprint,
        risk: disclosed.risk,
        breaches: disclosed.breaches,
        phone_line: disclosed.phone_line,
        mailbox: disclosed.mailbox,
        messaging_apps: disclosed.messaging_apps,
        compliance: disclosed.compliance,
        cache: merged.cache,
        coverage: merged.coverage,
        generated_at: now,
    }
}

/// A suppressed person's answer: the compliance block alone.
pub(super) fn suppressed(
    query: EnrichQuery,
    processing_id: String,
    ground: LawfulGround,
    now: DateTime<Utc>,
) -> Enrichment {
    Enrichment {
        request_id: query.request_id,
        processing_id,
        identifier: None,
        verification: None,
        profiles: Vec::new(),
        possible_matches: Vec::new(),
        attributes: Vec::new(),
        sources: Vec::new(),
        interests: Vec::new(),
        footprint: None,
        risk: None,
        breaches: Vec::new(),
        phone_line: None,
        mailbox: None,
        messaging_apps: Vec::new(),
        compliance: Compliance {
            retain_until: retention::retain_until(now, Some(&ground.purpose)),
            ground,
            notice: notice::duty(now, Vec::new(), Vec::new()),
            source_of_data: notice::SOURCE_OF_DATA,
            special_categories_suppressed: 0,
            identifier_suppressed: true,
            suppressions: vec![suppression::explanation()],
            fields_withheld: Vec::new(),
            profiles_withheld: 0,
        },
        cache: CacheInfo {
            policy: query.cache.mode,
            ..CacheInfo::default()
        },
        coverage: Default::default(),
        generated_at: now,
    }
}
