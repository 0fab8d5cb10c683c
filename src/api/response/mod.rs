//! Answers out: the domain answer of an enrichment becomes its proto message.
//! Only mapping happens here; every fact was decided by the pipeline.
mod findings;
mod summary;

use std::time::Duration;

use super::enums;
use crate::identity::{Identifier, NumberType};
use crate::model::{
    BasisEvidence, CacheInfo, Compliance, Enrichment, Mailbox, MxCheck, MxStatus, NoticeDuty,
    Outcome, Profile, Provenance, SkipReason, SourceOutcome, SuppressionReason, Verification,
};
use crate::proto::v1 as pb;
use findings::{
    attribute_to_proto, breach_to_proto, footprint_to_proto, interest_to_proto, profile_into_proto,
    provenance_into_proto, risk_to_proto, text_value,
};
pub use summary::apply_view;
use summary::{coverage_to_proto, summary_of};

pub(super) fn duration(d: Duration) -> pbjson_types::Duration {
    d.into()
}

fn mx_to_proto(mx: &MxCheck) -> pb::MxCheck {
    use pb::mx_check::Status as S;
    let (status, hosts, detail) = match &mx.status {
        MxStatus::Found { hosts } => (S::Found, hosts.clone(), String::new()),
        MxStatus::None { detail } => (S::None, Vec::new(), detail.clone()),
        MxStatus::Error { detail } => (S::Error, Vec::new(), detail.clone()),
        MxStatus::Skipped => (S::Skipped, Vec::new(), "MX checks are disabled".to_owned()),
    };
    pb::MxCheck {
        status: status.into(),
        hosts: hosts
            .into_iter()
            .map(|h| pb::MxHost {
                preference: h.preference.into(),
                exchange: h.exchange,
            })
            .collect(),
        detail,
        latency: Some(duration(mx.latency)),
        latency_ms: millis(mx.latency),
    }
}

fn number_type_to_proto(t: NumberType) -> pb::phone_verification::NumberType {
    use pb::phone_verification::NumberType as P;
    match t {
        NumberType::FixedLine => P::FixedLine,
        NumberType::Mobile => P::Mobile,
        NumberType::FixedLineOrMobile => P::FixedLineOrMobile,
        NumberType::TollFree => P::TollFree,
        NumberType::PremiumRate => P::PremiumRate,
        NumberType::SharedCost => P::SharedCost,
        NumberType::Voip => P::Voip,
        NumberType::PersonalNumber => P::PersonalNumber,
        NumberType::Pager => P::Pager,
        NumberType::Uan => P::Uan,
        NumberType::Voicemail => P::Voicemail,
        NumberType::Unknown => P::Unknown,
    }
}

fn identifier_to_proto(id: &Identifier) -> pb::NormalizedIdentifier {
    use pb::normalized_identifier::Kind;
    let kind = match id {
        Identifier::Email(e) => Kind::Email(pb::EmailIdentity {
            address: e.address(),
            canonical: e.canonical().to_owned(),
            local_part: e.local_part().to_owned(),
            domain: e.domain().to_owned(),
            domain_unicode: if e.domain_unicode() == e.domain() {
                String::new()
            } else {
                e.domain_unicode().to_owned()
            },
        }),
        Identifier::Phone(p) => Kind::Phone(pb::PhoneIdentity {
            e164: p.e164().to_owned(),
            international: p.international().to_owned(),
            national: p.national().to_owned(),
            region: p.region().unwrap_or_default().to_owned(),
            country_code: p.country_code().into(),
        }),
    };
    pb::NormalizedIdentifier { kind: Some(kind) }
}

/// An SMTP status as the API names it (`None`: not asked).
pub(crate) fn deliverability_to_proto(
    d: Option<crate::model::Deliverability>,
) -> pb::Deliverability {
    use crate::model::Deliverability as D;
    match d {
        None => pb::Deliverability::Unspecified,
        Some(D::Deliverable) => pb::Deliverability::Deliverable,
        Some(D::Undeliverable) => pb::Deliverability::Undeliverable,
        Some(D::CatchAll) => pb::Deliverability::CatchAll,
        Some(D::Unknown) => pb::Deliverability::Unknown,
    }
}

fn verification_to_proto(v: &Verification, mailbox: Option<&Mailbox>) -> pb::Verification {
    use pb::verification::Kind;
    let kind = match v {
        Verification::Email(e) => Kind::Email(pb::EmailVerification {
            syntax_valid: e.syntax_valid,
            disposable: e.disposable,
            free_provider: e.free_provider,
            role_account: e.role_account,
            mx: Some(mx_to_proto(&e.mx)),
            did_you_mean: e.did_you_mean.clone().unwrap_or_default(),
            mixed_script: e.mixed_script,
            mailbox: mailbox.map(|m| pb::MailboxCheck {
                status: Some(text_value(&m.status)),
                score: m.score.as_ref().map(text_value),
            }),
            smtp: e.smtp.as_ref().map(smtp_to_proto),
        }),
        Verification::Phone(p) => Kind::Phone(pb::PhoneVerification {
            valid: p.valid,
            number_type: number_type_to_proto(p.number_type).into(),
            region: p.region.clone().unwrap_or_default(),
        }),
    };
    pb::Verification { kind: Some(kind) }
}

/// A mailbox probe's answer (in a verification, and in an access report).
pub(crate) fn smtp_to_proto(c: &crate::model::SmtpCheck) -> pb::SmtpCheck {
    pb::SmtpCheck {
        status: deliverability_to_proto(Some(c.status)).into(),
        reason: c.reason.clone(),
        code: c.code.map(u32::from).unwrap_or_default(),
        host: c.host.clone(),
    }
}

fn notice_to_proto(n: &NoticeDuty) -> pb::NoticeDuty {
    pb::NoticeDuty {
        required: n.required,
        data_not_from_subject: n.data_not_from_subject,
        data_categories: n.data_categories.clone(),
        sources: n.sources.clone(),
        notify_by: n.notify_by.map(Into::into),
        exemption: n.exemption.clone().unwrap_or_default(),
    }
}

fn compliance_to_proto(c: &Compliance, processing_id: &str) -> pb::Compliance {
    use pb::suppression::Reason;
    let g = &c.ground;
    let suppressed = c
        .suppressions
        .iter()
        .map(|s| pb::Suppression {
            target: s.target.clone(),
            reason: match s.reason {
                SuppressionReason::DataSubjectRequest => Reason::DataSubjectRequest,
                SuppressionReason::SpecialCategory => Reason::SpecialCategory,
                SuppressionReason::Purpose => Reason::Purpose,
                SuppressionReason::FieldMask => Reason::FieldMask,
            }
            .into(),
            detail: s.detail.clone(),
        })
        .collect();
    pb::Compliance {
        purpose: g.purpose.id.clone(),
        purpose_description: g.purpose.description.clone(),
        lawful_basis: enums::basis_to_proto(g.basis).into(),
        lawful_basis_article: g.basis.article().to_owned(),
        evidence: Some(evidence_to_proto(&g.evidence)),
        identifier_suppressed: c.identifier_suppressed,
        suppressed,
        special_categories_suppressed: c.special_categories_suppressed,
        notice: Some(notice_to_proto(&c.notice)),
        retention: Some(duration(g.purpose.retention)),
        retention_days: days(g.purpose.retention),
        dpia_ref: g.purpose.dpia_ref.clone().unwrap_or_default(),
        processing_id: processing_id.to_owned(),
        source_of_data: c.source_of_data.to_owned(),
        retain_until: Some(c.retain_until.into()),
        fields_withheld: c.fields_withheld.clone(),
    }
}

pub fn evidence_to_proto(e: &BasisEvidence) -> pb::BasisEvidence {
    let text = |r: &Option<String>| r.clone().unwrap_or_default();
    pb::BasisEvidence {
        consent_ref: text(&e.consent_ref),
        legitimate_interest_assessment_ref: text(&e.legitimate_interest_assessment_ref),
        contract_ref: text(&e.contract_ref),
    }
}

fn cache_to_proto(c: &CacheInfo) -> pb::CacheInfo {
    pb::CacheInfo {
        policy: enums::cache_mode_to_proto(c.policy).into(),
        sources_from_cache: c.sources_from_cache,
        sources_fetched: c.sources_fetched,
        oldest_entry_age: c.oldest_entry_age.map(duration),
    }
}

pub(super) fn provenance_to_proto(p: &Provenance) -> pb::Provenance {
    provenance_into_proto(p.clone())
}

pub(super) fn profile_to_proto(p: &Profile) -> pb::Profile {
    profile_into_proto(p.clone())
}

pub fn outcome_to_proto(o: &SourceOutcome) -> pb::SourceOutcome {
    use pb::source_outcome::{Outcome as O, SkipReason as S};
    let (outcome, skip) = match o.outcome {
        Outcome::Found => (O::Found, S::Unspecified),
        Outcome::NotFound => (O::NotFound, S::Unspecified),
        Outcome::Error => (O::Error, S::Unspecified),
        Outcome::Timeout => (O::Timeout, S::Unspecified),
        Outcome::RateLimited => (O::RateLimited, S::Unspecified),
        Outcome::CircuitOpen => (O::CircuitOpen, S::Unspecified),
        Outcome::Blocked => (O::Blocked, S::Unspecified),
        Outcome::Skipped(reason) => (
            O::Skipped,
            match reason {
                SkipReason::InputNotApplicable => S::InputNotApplicable,
                SkipReason::Purpose => S::Purpose,
                SkipReason::Disabled => S::Disabled,
                SkipReason::Depth => S::Depth,
                SkipReason::FieldMask => S::FieldMask,
                SkipReason::CacheOnly => S::CacheOnly,
            },
        ),
    };
    pb::SourceOutcome {
        source_id: o.source_id.clone(),
        outcome: outcome.into(),
        skip_reason: skip.into(),
        detail: o.detail.clone().unwrap_or_default(),
        latency: Some(duration(o.latency)),
        latency_ms: millis(o.latency),
        http_status: o.http_status.map(u32::from).unwrap_or_default(),
        cached: o.cached,
        cache_age: o.cache_age.map(duration),
        stale: o.stale,
        depth: o.depth,
        retry_after: o.retry_after.map(duration),
        input: o.input.as_str().to_owned(),
    }
}

/// The answer, its profiles moved into the message (an answer's bulk).
pub fn enrichment_to_proto(mut e: Enrichment) -> pb::EnrichResponse {
    // What reads the whole answer first: the summary, confidence, coverage.
    let summary = summary_of(&e);
    let confidence = e
        .confidence()
        .map_or(pb::MatchConfidence::Unspecified, enums::confidence_to_proto);
    let coverage = (!e.compliance.identifier_suppressed).then(|| coverage_to_proto(&e));
    let profiles = std::mem::take(&mut e.profiles);
    let possible_matches = std::mem::take(&mut e.possible_matches);
    pb::EnrichResponse {
        request_id: e.request_id.clone(),
        identifier: e.identifier.as_ref().map(identifier_to_proto),
        verification: e
            .verification
            .as_ref()
            .map(|v| verification_to_proto(v, e.mailbox.as_ref())),
        profiles: profiles.into_iter().map(profile_into_proto).collect(),
        possible_matches: possible_matches
            .into_iter()
            .map(profile_into_proto)
            .collect(),
        attributes: e.attributes.iter().map(attribute_to_proto).collect(),
        interests: e.interests.iter().map(interest_to_proto).collect(),
        footprint: e.footprint.as_ref().map(footprint_to_proto),
        risk: e.risk.as_ref().map(risk_to_proto),
        compliance: Some(compliance_to_proto(&e.compliance, &e.processing_id)),
        sources: e.sources.iter().map(outcome_to_proto).collect(),
        cache: Some(cache_to_proto(&e.cache)),
        confidence: confidence.into(),
        error: None,
        generated_at: Some(e.generated_at.into()),
        coverage,
        summary: Some(summary),
        breaches: e.breaches.iter().map(breach_to_proto).collect(),
        phone_line: e.phone_line.as_ref().map(|l| pb::PhoneLine {
            carrier: l.carrier.as_ref().map(text_value),
            line_type: l.line_type.as_ref().map(text_value),
            caller_name: l.caller_name.as_ref().map(text_value),
            last_sim_swap: l.last_sim_swap.as_ref().and_then(|s| match &s.value {
                crate::model::Value::Time(t) => Some(pb::TimeValue {
                    value: Some((*t).into()),
                    provenance: Some(provenance_to_proto(&s.provenance)),
                }),
                _ => None,
            }),
            sim_swapped_in_period: l.sim_swapped_in_period.as_ref().map(text_value),
            sim_swap_period: l.sim_swap_period.as_ref().map(text_value),
            call_forwarding: l.call_forwarding.as_ref().map(text_value),
        }),
        messaging_apps: e
            .messaging_apps
            .iter()
            .map(|m| pb::MessagingApp {
                platform: m.platform.clone(),
                source_id: m.source_id.clone(),
                present: m.present,
                url: m.url.clone().unwrap_or_default(),
                checked_at: Some(m.checked_at.into()),
                confidence: enums::confidence_to_proto(m.confidence).into(),
            })
            .collect(),
    }
}

/// Whole milliseconds, for spreadsheets.
pub fn millis(d: std::time::Duration) -> u32 {
    u32::try_from(d.as_millis()).unwrap_or(u32::MAX)
}

/// Whole days, for spreadsheets.
pub fn days(d: std::time::Duration) -> u32 {
    u32::try_from(d.as_secs() / 86_400).unwrap_or(u32::MAX)
}
