//! Answers out for the other RPCs: data-subject requests (Erase, Access)
//! and the source catalog (ListSources).
use super::enums;
use super::response::{duration, profile_to_proto};
use crate::catalog::Source;
use crate::model::Outcome;
use crate::proto::v1 as pb;
use crate::rights::{AccessReport, Erased};

pub fn erased_to_proto(e: &Erased) -> pb::EraseResponse {
    pb::EraseResponse {
        cache_entries_removed: e.cache_entries_removed,
        ledger_records_redacted: e.ledger_records_redacted,
        batch_rows_erased: e.batch_rows_erased,
        redaction_pending: e.redaction_pending,
        suppressed: true,
        suppressed_purposes: e.suppressed_purposes.clone(),
        tombstone: e.tombstone.clone(),
    }
}

fn millis(ms: i64) -> Option<pbjson_types::Timestamp> {
    chrono::DateTime::<chrono::Utc>::from_timestamp_millis(ms).map(Into::into)
}

pub fn access_to_proto(a: &AccessReport) -> pb::AccessResponse {
    use pb::source_outcome::Outcome as O;
    pb::AccessResponse {
        next_page_token: a
            .next_page
            .as_ref()
            .map(ToString::to_string)
            .unwrap_or_default(),
        ledger_total: a.records_total,
        smtp: a.smtp.as_ref().map(crate::api::response::smtp_to_proto),
        feedback: a
            .feedback
            .iter()
            .map(|f| pb::FeedbackRecord {
                feedback_id: f.id.clone(),
                at: millis(f.at_ms),
                processing_id: f.processing_id.clone(),
                source_id: f.source_id.clone(),
                finding: f.finding.clone(),
                verdict: verdict_to_proto(&f.verdict).into(),
                caller: f.caller.clone(),
                note: f.note.clone(),
            })
            .collect(),
        batch_rows: a
            .batch_rows
            .iter()
            .map(|r| pb::BatchRowHeld {
                job_id: r.job_id.clone(),
                row: u64::try_from(r.row).unwrap_or_default(),
                input: r.input.clone(),
                purpose: r.purpose.clone(),
                segment: r.segment.clone().unwrap_or_default(),
            })
            .collect(),
        cached: a
            .cached
            .iter()
            .map(|e| pb::CachedFinding {
                source_id: e.source_id.to_string(),
                outcome: match e.outcome {
                    Outcome::Found => O::Found,
                    _ => O::NotFound,
                }
                .into(),
                retrieved_at: Some(e.retrieved_at.into()),
                expires_at: Some(
                    (e.retrieved_at + chrono::Duration::from_std(e.ttl()).unwrap_or_default())
                        .into(),
                ),
                profiles: e
                    .profile
                    .as_deref()
                    .into_iter()
                    .map(profile_to_proto)
                    .collect(),
            })
            .collect(),
        ledger: a
            .records
            .iter()
            .map(|r| pb::LedgerRecord {
                id: r.id.clone(),
                at: millis(r.at_ms),
                caller: r.caller.clone(),
                purpose: r.purpose.clone(),
                lawful_basis: enums::basis_from_str(&r.lawful_basis).into(),
                evidence: Some(pb::BasisEvidence {
                    consent_ref: r.consent_ref.clone(),
                    legitimate_interest_assessment_ref: r.lia_ref.clone(),
                    contract_ref: r.contract_ref.clone(),
                }),
                sources_asked: r.sources.clone(),
                field_categories: r.field_categories.clone(),
                outcome: crate::rights::outcome_shown(r),
                retain_until: millis(r.retain_until_ms),
                caller_key_id: r.caller_id.clone(),
                on_behalf_of: r.on_behalf_of.clone(),
                reference: r.reference.clone(),
                detail: r.detail.clone(),
            })
            .collect(),
        suppressed: !a.suppressions.is_empty(),
        suppressed_purposes: a.suppressions.iter().map(|s| s.scope.clone()).collect(),
        summary: Some(pb::ProcessingSummary {
            purposes: a
                .summary
                .purposes
                .iter()
                .map(|(p, bases)| pb::PurposeSummary {
                    id: p.id.clone(),
                    description: p.description.clone(),
                    lawful_bases: bases
                        .iter()
                        .map(|b| enums::basis_to_proto(*b).into())
                        .collect(),
                    retention: Some(duration(p.retention)),
                    retention_days: super::response::days(p.retention),
                })
                .collect(),
            data_categories: a.summary.data_categories.clone(),
            recipients: a.summary.recipients.clone(),
            sources: a.summary.sources.clone(),
        }),
        suppressions: a
            .suppressions
            .iter()
            .map(|s| pb::SuppressionRecord {
                scope: s.scope.clone(),
                at: millis(s.at_ms),
                reference: s.reference.clone(),
            })
            .collect(),
        logic: a.logic.clone(),
    }
}

/// A stored verdict as the API names it.
pub fn verdict_to_proto(verdict: &str) -> pb::FeedbackVerdict {
    match verdict {
        crate::ledger::WRONG_PERSON => pb::FeedbackVerdict::WrongPerson,
        crate::ledger::NOT_THERE => pb::FeedbackVerdict::NotThere,
        crate::ledger::CORRECT => pb::FeedbackVerdict::Correct,
        _ => pb::FeedbackVerdict::Unspecified,
    }
}

/// A source's standing as the API shows it.
pub fn standing_to_proto(v: &crate::feedback::View) -> pb::SourceStanding {
    pb::SourceStanding {
        correct: v.tally.correct,
        wrong_person: v.tally.wrong_person,
        not_there: v.tally.not_there,
        precision: v.tally.precision(),
        demoted: v.demoted,
        demoted_reason: v.reason.clone(),
        canary_claimed: v.canary.as_ref().is_some_and(|c| c.claimed),
        canary_at: v.canary.as_ref().and_then(|c| millis(c.at_ms)),
        canary_evidence: v
            .canary
            .as_ref()
            .map(|c| format!("asked {:?}: {}", c.probe, c.detail))
            .unwrap_or_default(),
    }
}

pub fn source_to_proto(s: &Source, standing: &crate::feedback::View) -> pb::SourceInfo {
    pb::SourceInfo {
        standing: Some(standing_to_proto(standing)),
        id: s.id.to_string(),
        name: s.name.clone(),
        platform: s.platform.to_string(),
        input: s.input.as_str().to_owned(),
        tags: s.tags.clone(),
        weight: s.weight,
        data_categories: s.data_categories.clone(),
        purposes: s.purposes.clone(),
        public: s.public,
        enabled: s.enabled(),
        disabled_reason: s.disabled.clone().unwrap_or_default(),
        rate_limit_per_second: s.limits.rate_limit.per_second,
        rate_limit_burst: s.limits.rate_limit.burst,
        max_concurrency: s.limits.max_concurrency,
        timeout: Some(duration(s.limits.timeout)),
        cache_ttl: Some(duration(s.limits.cache_ttl)),
    }
}
