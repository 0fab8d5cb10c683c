//! The one place where proto messages meet domain types: requests become
//! queries (structurally validated, every bad field reported at once), answers
//! become responses, errors become `tonic::Status` with google.rpc details.
use std::time::Duration;

use tonic::{Code, Status};
use tonic_types::{ErrorDetails, StatusExt};

use crate::catalog::Source;
use crate::catalog::source::Field;
use crate::enrich::{EnrichQuery, RawIdentifier};
use crate::error::{Error, FieldViolation};
use crate::identity::{Identifier, NumberType, Region};
use crate::model::{
    Attribute, CacheInfo, CacheMode, CachePolicy, Compliance, Confidence, Enrichment, Method,
    NoticeDuty, Outcome, Profile, Provenance, SkipReason, SourceOutcome, Sourced, Value, Withheld,
};
use crate::proto::v1 as pb;
use crate::purpose::{BasisEvidence, Claim, LawfulBasis};
use crate::scoring::{footprint, interests, risk};
use crate::verify::{MxCheck, MxStatus, Verification};

/// Longest evidence reference or request id accepted.
const MAX_REF_CHARS: usize = 256;

impl From<Error> for Status {
    fn from(e: Error) -> Self {
        let message = e.to_string();
        match e {
            Error::InvalidArgument(violations) => Status::with_error_details(
                Code::InvalidArgument,
                message,
                ErrorDetails::with_bad_request(
                    violations
                        .into_iter()
                        .map(|v| tonic_types::FieldViolation::new(v.field, v.description))
                        .collect::<Vec<_>>(),
                ),
            ),
            Error::NoLawfulGround(violations) => Status::with_error_details(
                Code::FailedPrecondition,
                message,
                ErrorDetails::with_precondition_failure(
                    violations
                        .into_iter()
                        .map(|v| {
                            tonic_types::PreconditionViolation::new(
                                v.kind,
                                v.subject,
                                v.description,
                            )
                        })
                        .collect::<Vec<_>>(),
                ),
            ),
            Error::Unimplemented(_) => Status::unimplemented(message),
            Error::Internal(_) => Status::internal(message),
            Error::Unavailable(_) => Status::unavailable(message),
        }
    }
}

/// A failed stream item, shaped like google.rpc.Status.
pub fn request_error(status: &Status) -> pb::RequestError {
    let details = status.get_error_details();
    pb::RequestError {
        code: status.code() as i32,
        message: status.message().to_owned(),
        field_violations: details
            .bad_request()
            .map(|b| {
                b.field_violations
                    .iter()
                    .map(|v| pb::FieldViolation {
                        field: v.field.clone(),
                        description: v.description.clone(),
                    })
                    .collect()
            })
            .unwrap_or_default(),
        precondition_violations: details
            .precondition_failure()
            .map(|p| {
                p.violations
                    .iter()
                    .map(|v| pb::PreconditionViolation {
                        r#type: v.r#type.clone(),
                        subject: v.subject.clone(),
                        description: v.description.clone(),
                    })
                    .collect()
            })
            .unwrap_or_default(),
    }
}

/// Load shedding's answer: RESOURCE_EXHAUSTED with a retry delay.
pub fn overloaded(retry_after: Duration) -> Status {
    Status::with_error_details(
        Code::ResourceExhausted,
        "enrichd is at its concurrency limit; retry after the delay in RetryInfo",
        ErrorDetails::with_retry_info(Some(retry_after)),
    )
}

fn optional_ref(value: &str, field: &str, violations: &mut Vec<FieldViolation>) -> Option<String> {
    let value = value.trim();
    if value.chars().count() > MAX_REF_CHARS {
        violations.push(FieldViolation::new(
            field,
            format!("must be at most {MAX_REF_CHARS} characters"),
        ));
        return None;
    }
    (!value.is_empty()).then(|| value.to_owned())
}

fn lawful_basis(value: i32, violations: &mut Vec<FieldViolation>) -> Option<LawfulBasis> {
    match pb::LawfulBasis::try_from(value) {
        Ok(pb::LawfulBasis::Unspecified) => None,
        Ok(pb::LawfulBasis::Consent) => Some(LawfulBasis::Consent),
        Ok(pb::LawfulBasis::Contract) => Some(LawfulBasis::Contract),
        Ok(pb::LawfulBasis::LegalObligation) => Some(LawfulBasis::LegalObligation),
        Ok(pb::LawfulBasis::VitalInterests) => Some(LawfulBasis::VitalInterests),
        Ok(pb::LawfulBasis::PublicTask) => Some(LawfulBasis::PublicTask),
        Ok(pb::LawfulBasis::LegitimateInterests) => Some(LawfulBasis::LegitimateInterests),
        Err(_) => {
            violations.push(FieldViolation::new(
                "lawful_basis",
                format!("{value} is not a LawfulBasis value"),
            ));
            None
        }
    }
}

pub fn lawful_basis_to_proto(basis: LawfulBasis) -> pb::LawfulBasis {
    match basis {
        LawfulBasis::Consent => pb::LawfulBasis::Consent,
        LawfulBasis::Contract => pb::LawfulBasis::Contract,
        LawfulBasis::LegalObligation => pb::LawfulBasis::LegalObligation,
        LawfulBasis::VitalInterests => pb::LawfulBasis::VitalInterests,
        LawfulBasis::PublicTask => pb::LawfulBasis::PublicTask,
        LawfulBasis::LegitimateInterests => pb::LawfulBasis::LegitimateInterests,
    }
}

fn cache_policy(
    policy: Option<&pb::CachePolicy>,
    violations: &mut Vec<FieldViolation>,
) -> CachePolicy {
    let Some(policy) = policy else {
        return CachePolicy::default();
    };
    use pb::cache_policy::Mode;
    let mode = match Mode::try_from(policy.mode) {
        Ok(Mode::Unspecified | Mode::Use) => CacheMode::Use,
        Ok(Mode::Refresh) => CacheMode::Refresh,
        Ok(Mode::CacheOnly) => CacheMode::CacheOnly,
        Err(_) => {
            violations.push(FieldViolation::new(
                "cache.mode",
                format!("{} is not a CachePolicy.Mode value", policy.mode),
            ));
            CacheMode::Use
        }
    };
    let max_age = policy.max_age.and_then(|d| match Duration::try_from(d) {
        Ok(d) => Some(d),
        Err(_) => {
            violations.push(FieldViolation::new("cache.max_age", "must not be negative"));
            None
        }
    });
    CachePolicy { mode, max_age }
}

/// Structural validation of an EnrichRequest: every malformed field at once.
/// Whether the processing is lawful, and whether the identifier parses, is the
/// pipeline's to decide (in that order).
pub fn enrich_query(
    req: pb::EnrichRequest,
    deadline: tokio::time::Instant,
    caller: String,
) -> Result<EnrichQuery, Error> {
    let mut violations = Vec::new();
    if req.request_id.chars().count() > MAX_REF_CHARS {
        violations.push(FieldViolation::new(
            "request_id",
            format!("must be at most {MAX_REF_CHARS} characters"),
        ));
    }
    let identifier = match req.identifier {
        Some(pb::enrich_request::Identifier::Email(e)) => Some(RawIdentifier::Email(e)),
        Some(pb::enrich_request::Identifier::Phone(p)) => Some(RawIdentifier::Phone(p)),
        None => {
            violations.push(FieldViolation::new(
                "identifier",
                "one of email or phone is required",
            ));
            None
        }
    };
    let hints = req.hints.unwrap_or_default();
    let default_region = match hints.default_region.trim() {
        "" => None,
        region => match region.parse::<Region>() {
            Ok(r) => Some(r),
            Err(e) => {
                violations.push(FieldViolation::new("hints.default_region", e.to_string()));
                None
            }
        },
    };
    let name_hint = optional_ref(&hints.name, "hints.name", &mut violations);
    let first_contact_at = hints.first_contact_at.and_then(|t| {
        chrono::DateTime::<chrono::Utc>::try_from(t)
            .map_err(|_| {
                violations.push(FieldViolation::new(
                    "hints.first_contact_at",
                    "is not a valid timestamp",
                ))
            })
            .ok()
    });
    let basis = lawful_basis(req.lawful_basis, &mut violations);
    let evidence = req.evidence.unwrap_or_default();
    let evidence = BasisEvidence {
        consent_ref: optional_ref(
            &evidence.consent_ref,
            "evidence.consent_ref",
            &mut violations,
        ),
        legitimate_interest_assessment_ref: optional_ref(
            &evidence.legitimate_interest_assessment_ref,
            "evidence.legitimate_interest_assessment_ref",
            &mut violations,
        ),
        contract_ref: optional_ref(
            &evidence.contract_ref,
            "evidence.contract_ref",
            &mut violations,
        ),
    };
    let cache = cache_policy(req.cache.as_ref(), &mut violations);
    let options = req.options.unwrap_or_default();
    let min_confidence = match pb::MatchConfidence::try_from(options.min_confidence) {
        Ok(pb::MatchConfidence::Unspecified) => None,
        Ok(pb::MatchConfidence::Guess) => Some(Confidence::Guess),
        Ok(pb::MatchConfidence::Pivot) => Some(Confidence::Pivot),
        Ok(pb::MatchConfidence::Exact) => Some(Confidence::Exact),
        Err(_) => {
            violations.push(FieldViolation::new(
                "options.min_confidence",
                format!("{} is not a MatchConfidence value", options.min_confidence),
            ));
            None
        }
    };
    let min_interest_score = options.min_interest_score;
    if min_interest_score.is_some_and(|m| !(0.0..=1.0).contains(&m)) {
        violations.push(FieldViolation::new(
            "options.min_interest_score",
            "must be within 0 and 1",
        ));
    }
    let max_interests = (options.max_interests > 0).then_some(options.max_interests as usize);
    match identifier {
        Some(identifier) if violations.is_empty() => Ok(EnrichQuery {
            request_id: req.request_id,
            identifier,
            default_region,
            name_hint,
            claim: Claim {
                purpose: req.purpose,
                basis,
                evidence,
            },
            cache,
            min_confidence,
            min_interest_score,
            max_interests,
            deadline,
            caller,
            field_mask: req.field_mask.map(|m| m.paths).unwrap_or_default(),
            first_contact_at,
        }),
        _ => Err(Error::InvalidArgument(violations)),
    }
}

fn duration(d: Duration) -> pbjson_types::Duration {
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

fn verification_to_proto(v: &Verification) -> pb::Verification {
    use pb::verification::Kind;
    let kind = match v {
        Verification::Email(e) => Kind::Email(pb::EmailVerification {
            syntax_valid: true,
            disposable: e.disposable,
            free_provider: e.free_provider,
            role_account: e.role_account,
            mx: Some(mx_to_proto(&e.mx)),
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
        data_not_from_subject: true,
        data_categories: n.data_categories.clone(),
        sources: n.sources.clone(),
        notify_by: n.notify_by.map(Into::into),
        exemption: n.exemption.clone().unwrap_or_default(),
    }
}

fn compliance_to_proto(c: &Compliance, processing_id: &str) -> pb::Compliance {
    use pb::suppression::Reason;
    let g = &c.ground;
    let mut suppressed = Vec::new();
    if c.identifier_suppressed {
        suppressed.push(pb::Suppression {
            target: "identifier".into(),
            reason: Reason::DataSubjectRequest.into(),
            detail: "the person erased their data or objected; nothing was processed".into(),
        });
    }
    if c.special_categories_suppressed > 0 {
        suppressed.push(pb::Suppression {
            target: "interests".into(),
            reason: Reason::SpecialCategory.into(),
            detail: format!(
                "{} interests revealing GDPR Art. 9 special-category data were found and left out",
                c.special_categories_suppressed
            ),
        });
    }
    for (field, why) in &c.withheld {
        let (reason, detail) = match why {
            Withheld::Purpose => (
                Reason::Purpose,
                format!("purpose {:?} may not return it", g.purpose.id),
            ),
            Withheld::FieldMask => (
                Reason::FieldMask,
                "not in the request's field mask".to_owned(),
            ),
        };
        suppressed.push(pb::Suppression {
            target: field.clone(),
            reason: reason.into(),
            detail,
        });
    }
    pb::Compliance {
        purpose: g.purpose.id.clone(),
        purpose_description: g.purpose.description.clone(),
        lawful_basis: lawful_basis_to_proto(g.basis).into(),
        lawful_basis_article: g.basis.article().to_owned(),
        evidence: Some(pb::BasisEvidence {
            consent_ref: g.evidence.consent_ref.clone().unwrap_or_default(),
            legitimate_interest_assessment_ref: g
                .evidence
                .legitimate_interest_assessment_ref
                .clone()
                .unwrap_or_default(),
            contract_ref: g.evidence.contract_ref.clone().unwrap_or_default(),
        }),
        identifier_suppressed: c.identifier_suppressed,
        suppressed,
        special_categories_suppressed: c.special_categories_suppressed,
        notice: Some(notice_to_proto(&c.notice)),
        retention: Some(duration(g.purpose.retention)),
        dpia_ref: g.purpose.dpia_ref.clone().unwrap_or_default(),
        processing_id: processing_id.to_owned(),
        source_of_data: "not_obtained_from_data_subject".into(),
        retain_until: Some(c.retain_until.into()),
        fields_withheld: c.withheld.iter().map(|(f, _)| f.clone()).collect(),
    }
}

fn cache_mode_to_proto(m: CacheMode) -> pb::cache_policy::Mode {
    match m {
        CacheMode::Use => pb::cache_policy::Mode::Use,
        CacheMode::Refresh => pb::cache_policy::Mode::Refresh,
        CacheMode::CacheOnly => pb::cache_policy::Mode::CacheOnly,
    }
}

fn cache_to_proto(c: &CacheInfo) -> pb::CacheInfo {
    pb::CacheInfo {
        policy: cache_mode_to_proto(c.policy).into(),
        sources_from_cache: c.sources_from_cache,
        sources_fetched: c.sources_fetched,
        oldest_entry_age: c.oldest_entry_age.map(duration),
    }
}

fn confidence_to_proto(c: Confidence) -> pb::MatchConfidence {
    match c {
        Confidence::Guess => pb::MatchConfidence::Guess,
        Confidence::Pivot => pb::MatchConfidence::Pivot,
        Confidence::Exact => pb::MatchConfidence::Exact,
    }
}

fn provenance_to_proto(p: &Provenance) -> pb::Provenance {
    use pb::ExtractionMethod as M;
    pb::Provenance {
        source_id: p.source_id.clone(),
        url: p.url.clone(),
        retrieved_at: Some(p.retrieved_at.into()),
        method: match p.method {
            Method::JsonPointer => M::JsonPointer,
            Method::CssSelector => M::CssSelector,
            Method::Regex => M::Regex,
            Method::Detection => M::Detection,
            Method::Dns => M::Dns,
        }
        .into(),
        selector: p.selector.clone(),
        confidence: confidence_to_proto(p.confidence).into(),
    }
}

fn text_value(s: &Sourced) -> pb::TextValue {
    pb::TextValue {
        value: s.value.as_text(),
        provenance: Some(provenance_to_proto(&s.provenance)),
    }
}

fn profile_to_proto(p: &Profile) -> pb::Profile {
    let text = |f: Field| p.fields.get(&f).map(text_value);
    let time = |f: Field| {
        p.fields.get(&f).and_then(|s| match &s.value {
            Value::Time(t) => Some(pb::TimeValue {
                value: Some((*t).into()),
                provenance: Some(provenance_to_proto(&s.provenance)),
            }),
            _ => None,
        })
    };
    let count = |f: Field| {
        p.fields.get(&f).and_then(|s| match &s.value {
            Value::Count(n) => Some(pb::CountValue {
                value: *n,
                provenance: Some(provenance_to_proto(&s.provenance)),
            }),
            _ => None,
        })
    };
    pb::Profile {
        source_id: p.source_id.clone(),
        platform: p.platform.clone(),
        provenance: Some(provenance_to_proto(&p.provenance)),
        url: text(Field::Url),
        username: text(Field::Username),
        display_name: text(Field::DisplayName),
        bio: text(Field::Bio),
        location: text(Field::Location),
        avatar_url: text(Field::AvatarUrl),
        created_at: time(Field::CreatedAt),
        last_active_at: time(Field::LastActiveAt),
        followers: count(Field::Followers),
        posts: count(Field::Posts),
        linked_accounts: p
            .accounts
            .iter()
            .map(|a| pb::LinkedAccount {
                platform: a.platform.clone().unwrap_or_default(),
                url: a.url.clone().unwrap_or_default(),
                username: a.username.clone().unwrap_or_default(),
                provenance: Some(provenance_to_proto(&a.provenance)),
            })
            .collect(),
        extra: p
            .extra
            .iter()
            .map(|(k, v)| (k.clone(), text_value(v)))
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
        Outcome::Skipped(reason) => (
            O::Skipped,
            match reason {
                SkipReason::InputNotApplicable => S::InputNotApplicable,
                SkipReason::Purpose => S::Purpose,
                SkipReason::Disabled => S::Disabled,
                SkipReason::Depth => S::Depth,
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
        http_status: o.http_status.map(u32::from).unwrap_or_default(),
        cached: o.cached,
        cache_age: o.cache_age.map(duration),
        stale: o.stale,
        depth: o.depth,
        retry_after: o.retry_after.map(duration),
        input: o.input.as_str().to_owned(),
    }
}

fn interest_to_proto(i: &interests::Interest) -> pb::Interest {
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
                    interests::EvidenceKind::SourceTag => Kind::SourceTag,
                    interests::EvidenceKind::TextTerm => Kind::TextTerm,
                    interests::EvidenceKind::Child => Kind::Child,
                }
                .into(),
                matched: e.matched.clone(),
                span: e.span.clone(),
            })
            .collect(),
    }
}

fn footprint_to_proto(f: &footprint::Footprint) -> pb::Footprint {
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

fn risk_to_proto(r: &risk::Risk) -> pb::Risk {
    use pb::risk::Level;
    pb::Risk {
        score: r.score,
        level: match r.level {
            risk::Level::Low => Level::Low,
            risk::Level::Medium => Level::Medium,
            risk::Level::High => Level::High,
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

/// The identifier of an Erase or Access request.
pub fn subject_identifier(
    email: Option<String>,
    phone: Option<String>,
    default_region: &str,
) -> Result<(RawIdentifier, Option<Region>), Error> {
    let mut violations = Vec::new();
    let region = match default_region.trim() {
        "" => None,
        r => r
            .parse::<Region>()
            .map_err(|e| violations.push(FieldViolation::new("default_region", e.to_string())))
            .ok(),
    };
    let raw = match (email, phone) {
        (Some(e), _) => Some(RawIdentifier::Email(e)),
        (None, Some(p)) => Some(RawIdentifier::Phone(p)),
        (None, None) => {
            violations.push(FieldViolation::new(
                "identifier",
                "one of email or phone is required",
            ));
            None
        }
    };
    match raw {
        Some(raw) if violations.is_empty() => Ok((raw, region)),
        _ => Err(Error::InvalidArgument(violations)),
    }
}

pub fn erased_to_proto(e: &crate::enrich::Erased) -> pb::EraseResponse {
    pb::EraseResponse {
        cache_entries_removed: e.cache_entries_removed,
        ledger_records_redacted: e.ledger_records_redacted,
        suppressed: true,
        suppressed_purposes: e.suppressed_purposes.clone(),
        tombstone: e.tombstone.clone(),
    }
}

fn millis(ms: i64) -> Option<pbjson_types::Timestamp> {
    chrono::DateTime::<chrono::Utc>::from_timestamp_millis(ms).map(Into::into)
}

fn basis_from_str(s: &str) -> pb::LawfulBasis {
    LawfulBasis::ALL
        .into_iter()
        .find(|b| b.as_str() == s)
        .map_or(pb::LawfulBasis::Unspecified, lawful_basis_to_proto)
}

pub fn access_to_proto(a: &crate::enrich::AccessReport) -> pb::AccessResponse {
    use pb::source_outcome::Outcome as O;
    pb::AccessResponse {
        cached: a
            .cached
            .iter()
            .map(|e| pb::CachedFinding {
                source_id: e.source_id.clone(),
                outcome: match e.outcome {
                    Outcome::Found => O::Found,
                    _ => O::NotFound,
                }
                .into(),
                retrieved_at: Some(e.retrieved_at().into()),
                expires_at: Some(
                    (e.retrieved_at() + chrono::Duration::from_std(e.ttl).unwrap_or_default())
                        .into(),
                ),
                profiles: e.profile.iter().map(profile_to_proto).collect(),
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
                lawful_basis: basis_from_str(&r.lawful_basis).into(),
                evidence: Some(pb::BasisEvidence {
                    consent_ref: r.consent_ref.clone(),
                    legitimate_interest_assessment_ref: r.lia_ref.clone(),
                    contract_ref: r.contract_ref.clone(),
                }),
                sources_asked: r.sources.clone(),
                field_categories: r.field_categories.clone(),
                outcome: if r.redacted {
                    format!("{} (redacted)", r.outcome)
                } else {
                    r.outcome.clone()
                },
                retain_until: millis(r.retain_until_ms),
            })
            .collect(),
        suppressed: !a.suppressed.is_empty(),
        suppressed_purposes: a.suppressed.clone(),
        logic: a.logic.clone(),
    }
}

pub fn source_to_proto(s: &Source) -> pb::SourceInfo {
    pb::SourceInfo {
        id: s.id.clone(),
        name: s.name.clone(),
        platform: s.platform.clone(),
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

pub fn enrichment_to_proto(e: &Enrichment) -> pb::EnrichResponse {
    pb::EnrichResponse {
        request_id: e.request_id.clone(),
        identifier: e.identifier.as_ref().map(identifier_to_proto),
        verification: e.verification.as_ref().map(verification_to_proto),
        profiles: e.profiles.iter().map(profile_to_proto).collect(),
        attributes: e.attributes.iter().map(attribute_to_proto).collect(),
        interests: e.interests.iter().map(interest_to_proto).collect(),
        footprint: e.footprint.as_ref().map(footprint_to_proto),
        risk: e.risk.as_ref().map(risk_to_proto),
        compliance: Some(compliance_to_proto(&e.compliance, &e.processing_id)),
        sources: e.sources.iter().map(outcome_to_proto).collect(),
        cache: Some(cache_to_proto(&e.cache)),
        confidence: e
            .profiles
            .iter()
            .map(Profile::confidence)
            .max()
            .map_or(pb::MatchConfidence::Unspecified, confidence_to_proto)
            .into(),
        error: None,
        generated_at: Some(e.generated_at.into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_malformed_field_is_reported_at_once() {
        let req = pb::EnrichRequest {
            request_id: "r".repeat(300),
            identifier: None,
            hints: Some(pb::Hints {
                name: String::new(),
                default_region: "Narnia".into(),
                first_contact_at: None,
            }),
            lawful_basis: 42,
            cache: Some(pb::CachePolicy {
                mode: 9,
                max_age: None,
            }),
            ..Default::default()
        };
        let Err(Error::InvalidArgument(v)) =
            enrich_query(req, tokio::time::Instant::now(), String::new())
        else {
            panic!("expected InvalidArgument");
        };
        let fields: Vec<&str> = v.iter().map(|f| f.field.as_str()).collect();
        assert_eq!(
            fields,
            [
                "request_id",
                "identifier",
                "hints.default_region",
                "lawful_basis",
                "cache.mode"
            ]
        );
    }

    #[test]
    fn evidence_refs_are_trimmed_and_empty_means_absent() {
        let req = pb::EnrichRequest {
            identifier: Some(pb::enrich_request::Identifier::Email("a@b.co".into())),
            evidence: Some(pb::BasisEvidence {
                consent_ref: "  C-1 ".into(),
                legitimate_interest_assessment_ref: "   ".into(),
                contract_ref: String::new(),
            }),
            ..Default::default()
        };
        let q = enrich_query(req, tokio::time::Instant::now(), String::new()).expect("valid");
        assert_eq!(q.claim.evidence.consent_ref.as_deref(), Some("C-1"));
        assert_eq!(q.claim.evidence.legitimate_interest_assessment_ref, None);
    }
}
