//! Answers out: the domain answer of an enrichment becomes its proto message.
//! Only mapping happens here; every fact was decided by the pipeline.
use std::time::Duration;

use super::enums;
use crate::identity::{Identifier, NumberType};
use crate::model::{
    Attribute, BasisEvidence, Breach, CacheInfo, Completeness, Compliance, Enrichment,
    EvidenceKind, Field, Footprint, Interest, Mailbox, Method, MxCheck, MxStatus, NoticeDuty,
    Outcome, Profile, Provenance, Risk, RiskLevel, SkipReason, SourceOutcome, Sourced,
    SuppressionReason, Value, Verification,
};
use crate::proto::v1 as pb;

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
        }),
        Verification::Phone(p) => Kind::Phone(pb::PhoneVerification {
            valid: p.valid,
            number_type: number_type_to_proto(p.number_type).into(),
            region: p.region.clone().unwrap_or_default(),
        }),
    };
    pb::Verification { kind: Some(kind) }
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

fn provenance_into_proto(p: Provenance) -> pb::Provenance {
    use pb::ExtractionMethod as M;
    pb::Provenance {
        source_id: p.source_id,
        url: p.url,
        retrieved_at: Some(p.retrieved_at.into()),
        method: match p.method {
            Method::JsonPointer => M::JsonPointer,
            Method::CssSelector => M::CssSelector,
            Method::Regex => M::Regex,
            Method::Detection => M::Detection,
            Method::Dns => M::Dns,
        }
        .into(),
        selector: p.selector,
        confidence: enums::confidence_to_proto(p.confidence).into(),
    }
}

fn text_value(s: &Sourced) -> pb::TextValue {
    text_value_of(s.clone())
}

fn text_value_of(s: Sourced) -> pb::TextValue {
    pb::TextValue {
        value: s.value.into_text(),
        provenance: Some(provenance_into_proto(s.provenance)),
    }
}

pub(super) fn profile_to_proto(p: &Profile) -> pb::Profile {
    profile_into_proto(p.clone())
}

/// A profile as answered, its strings moved, not copied (an answer's
/// profiles are the bulk of it).
fn profile_into_proto(p: Profile) -> pb::Profile {
    let mut fields = p.fields;
    let mut text = |f: Field| fields.remove(&f).map(text_value_of);
    let (url, username, display_name, bio, location, avatar_url) = (
        text(Field::Url),
        text(Field::Username),
        text(Field::DisplayName),
        text(Field::Bio),
        text(Field::Location),
        text(Field::AvatarUrl),
    );
    let mut time = |f: Field| match fields.remove(&f) {
        Some(Sourced {
            value: Value::Time(t),
            provenance,
        }) => Some(pb::TimeValue {
            value: Some(t.into()),
            provenance: Some(provenance_into_proto(provenance)),
        }),
        _ => None,
    };
    let (created_at, last_active_at) = (time(Field::CreatedAt), time(Field::LastActiveAt));
    let mut count = |f: Field| match fields.remove(&f) {
        Some(Sourced {
            value: Value::Count(n),
            provenance,
        }) => Some(pb::CountValue {
            value: n,
            provenance: Some(provenance_into_proto(provenance)),
        }),
        _ => None,
    };
    let (followers, posts) = (count(Field::Followers), count(Field::Posts));
    pb::Profile {
        source_id: p.source_id,
        platform: p.platform,
        provenance: Some(provenance_into_proto(p.provenance)),
        url,
        username,
        display_name,
        bio,
        location,
        avatar_url,
        created_at,
        last_active_at,
        followers,
        posts,
        linked_accounts: p
            .accounts
            .into_iter()
            .map(|a| pb::LinkedAccount {
                platform: a.platform.unwrap_or_default(),
                url: a.url.unwrap_or_default(),
                username: a.username.unwrap_or_default(),
                provenance: Some(provenance_into_proto(a.provenance)),
            })
            .collect(),
        extra: p
            .extra
            .into_iter()
            .map(|(k, v)| (k, text_value_of(v)))
            .collect(),
        corroborated_by: p
            .corroborated_by
            .iter()
            .map(|c| {
                use crate::model::Corroboration as C;
                match c {
                    C::Avatar => pb::Corroboration::Avatar,
                    C::Link => pb::Corroboration::Link,
                    C::NameHint => pb::Corroboration::NameHint,
                }
                .into()
            })
            .collect(),
    }
}

fn attribute_to_proto(a: &Attribute) -> pb::Attribute {
    pb::Attribute {
        name: a.name.to_owned(),
        values: a
            .values
            .iter()
            .map(|v| pb::AttributeValue {
                value: v.value.clone(),
                provenance: v.provenance.iter().map(provenance_to_proto).collect(),
            })
            .collect(),
    }
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

fn interest_to_proto(i: &Interest) -> pb::Interest {
    use pb::interest_evidence::Kind;
    pb::Interest {
        id: i.id.clone(),
        name: i.name.clone(),
        tier_path: i.tier_path.clone(),
        score: i.score,
        evidence: i
            .evidence
            .iter()
            .map(|e| pb::InterestEvidence {
                source_id: e.source_id.clone(),
                kind: match e.kind {
                    EvidenceKind::SourceTag => Kind::SourceTag,
                    EvidenceKind::TextTerm => Kind::TextTerm,
                    EvidenceKind::Child => Kind::Child,
                }
                .into(),
                matched: e.matched.clone(),
                span: e.span.clone(),
            })
            .collect(),
    }
}

fn footprint_to_proto(f: &Footprint) -> pb::Footprint {
    pb::Footprint {
        score: f.score,
        components: f
            .components
            .iter()
            .map(|c| pb::ScoreComponent {
                name: c.name.to_owned(),
                value: c.value,
                contribution: c.contribution,
                explanation: c.explanation.clone(),
            })
            .collect(),
    }
}

fn risk_to_proto(r: &Risk) -> pb::Risk {
    use pb::risk::Level;
    pb::Risk {
        score: r.score,
        level: match r.level {
            RiskLevel::Low => Level::Low,
            RiskLevel::Medium => Level::Medium,
            RiskLevel::High => Level::High,
        }
        .into(),
        reasons: r
            .reasons
            .iter()
            .map(|x| pb::RiskReason {
                code: x.code.to_owned(),
                weight: x.weight,
                detail: x.detail.clone(),
            })
            .collect(),
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

fn breach_to_proto(b: &Breach) -> pb::Breach {
    pb::Breach {
        name: b.name.clone(),
        title: b.title.clone().unwrap_or_default(),
        domain: b.domain.clone().unwrap_or_default(),
        breach_date: b.date.clone().unwrap_or_default(),
        data_classes: b.data_classes.clone(),
        provenance: Some(provenance_to_proto(&b.provenance)),
    }
}

/// The answer at a glance: each value the best supported one of its
/// attribute, from its most confident source.
fn summary_of(e: &Enrichment) -> pb::Summary {
    let best = |name: &str| -> Option<pb::SummaryValue> {
        let attribute = e.attributes.iter().find(|a| a.name == name)?;
        let value = attribute.values.first()?;
        // The first of the most confident (provenance comes best source first).
        let from = value
            .provenance
            .iter()
            .min_by_key(|p| std::cmp::Reverse(p.confidence))?;
        Some(pb::SummaryValue {
            value: value.value.clone(),
            source_id: from.source_id.clone(),
            url: from.url.clone(),
            confidence: enums::confidence_to_proto(from.confidence).into(),
        })
    };
    let (identifier_valid, disposable, has_mail_servers) = match &e.verification {
        Some(Verification::Email(v)) => (
            v.syntax_valid,
            v.disposable,
            matches!(v.mx.status, MxStatus::Found { .. }),
        ),
        Some(Verification::Phone(v)) => (v.valid, false, false),
        None => (false, false, false),
    };
    let risk = e.risk.as_ref().map(risk_to_proto);
    pb::Summary {
        display_name: best("name"),
        location: best("location"),
        avatar_url: best("avatar_url"),
        top_interests: e.interests.iter().take(3).map(|i| i.name.clone()).collect(),
        footprint_score: e.footprint.as_ref().map_or(0, |f| f.score),
        risk_score: risk.as_ref().map_or(0, |r| r.score),
        risk_level: risk.as_ref().map_or(0, |r| r.level),
        identifier_valid,
        disposable,
        has_mail_servers,
        profiles_found: u32::try_from(e.profiles.len()).unwrap_or(u32::MAX),
    }
}

/// Narrows an answer to the caller's `view` (the summary stays in all).
pub fn apply_view(answer: &mut pb::EnrichResponse, view: pb::View) {
    match view {
        pb::View::Unspecified | pb::View::Full => {}
        pb::View::Standard => answer.sources.clear(),
        pb::View::Summary => {
            answer.verification = None;
            answer.profiles.clear();
            answer.possible_matches.clear();
            answer.attributes.clear();
            answer.interests.clear();
            answer.footprint = None;
            answer.risk = None;
            answer.sources.clear();
            answer.breaches.clear();
            answer.phone_line = None;
            answer.messaging_apps.clear();
        }
    }
}

fn coverage_to_proto(e: &Enrichment) -> pb::Coverage {
    use pb::coverage::Completeness as C;
    let completeness = match e.completeness() {
        Completeness::Found => C::Found,
        Completeness::NotFound => C::NotFound,
        Completeness::Incomplete => C::Incomplete,
    };
    pb::Coverage {
        completeness: completeness as i32,
        answered: e.coverage.answered,
        unanswered: e.coverage.unanswered,
        skipped: e.coverage.skipped,
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
