//! Requests in: proto messages become pipeline queries, structurally
//! validated with every malformed field reported at once. Whether the
//! processing is lawful, and whether the identifier parses, is the
//! pipeline's to decide (in that order).
use std::time::Duration;

use super::enums;
use crate::auth::Caller;
use crate::compliance::suppression::EraseKind;
use crate::error::{Error, FieldViolation};
use crate::identity::Region;
use crate::model::{BasisEvidence, CachePolicy, Claim};
use crate::pipeline::{EnrichQuery, RawIdentifier};
use crate::proto::v1 as pb;
use crate::rights::{DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE, Page, PageToken};

/// Longest evidence reference, data-subject request reference, name hint
/// or request id accepted.
const MAX_REF_CHARS: usize = 256;
/// Longest purpose id (purposes are declared in config: short words).
const MAX_PURPOSE_CHARS: usize = 64;
/// Longest email address as sent (RFC 5321 allows 254 octets; room for a
/// `mailto:` prefix and spaces around it).
const MAX_EMAIL_CHARS: usize = 320;
/// Longest phone number as sent (`tel:` prefix, spaces, an extension).
const MAX_PHONE_CHARS: usize = 64;
/// Longest region hint ("GB").
const MAX_REGION_CHARS: usize = 8;
/// Paths of a field mask, and the longest path.
const MAX_MASK_PATHS: usize = 64;
const MAX_MASK_PATH_CHARS: usize = 128;

/// The first control (Cc: NUL, CR, LF, TAB...) or format (Cf: zero-width
/// characters, bidi overrides, BOM) character: they hide what a value says,
/// so they are refused, never stripped.
fn hidden_char(value: &str) -> Option<char> {
    use unicode_properties::{GeneralCategory, UnicodeGeneralCategory};
    // ASCII holds controls (Cc) but no format characters: the table of
    // general categories is asked only of the rest.
    value.chars().find(|&c| {
        if c.is_ascii() {
            c.is_ascii_control()
        } else {
            c.is_control() || c.general_category() == GeneralCategory::Format
        }
    })
}

/// Checks a text field before anything records or echoes it: at most `max`
/// characters, no hidden characters. The violation names the field and
/// never repeats the value.
fn text_ok(value: &str, field: &str, max: usize, violations: &mut Vec<FieldViolation>) -> bool {
    let n = value.chars().count();
    if n > max {
        violations.push(FieldViolation::new(
            field,
            format!("must be at most {max} characters (has {n})"),
        ));
        return false;
    }
    if let Some(c) = hidden_char(value) {
        violations.push(FieldViolation::new(
            field,
            format!(
                "contains the control or format character U+{:04X}; send the value without it",
                c as u32
            ),
        ));
        return false;
    }
    true
}

fn optional_ref(value: &str, field: &str, violations: &mut Vec<FieldViolation>) -> Option<String> {
    let value = value.trim();
    if !text_ok(value, field, MAX_REF_CHARS, violations) {
        return None;
    }
    (!value.is_empty()).then(|| value.to_owned())
}

/// The purpose an enrichment or a source listing names.
pub fn purpose(value: &str) -> Result<&str, Error> {
    let mut violations = Vec::new();
    if text_ok(value, "purpose", MAX_PURPOSE_CHARS, &mut violations) {
        Ok(value)
    } else {
        Err(Error::InvalidArgument(violations))
    }
}

/// A proto enum field: `parse` the known values, name the field on others.
fn enum_field<P: TryFrom<i32>, T>(
    value: i32,
    field: &str,
    type_name: &str,
    parse: impl Fn(P) -> T,
    violations: &mut Vec<FieldViolation>,
) -> Option<T> {
    match P::try_from(value) {
        Ok(p) => Some(parse(p)),
        Err(_) => {
            violations.push(FieldViolation::new(
                field,
                format!("{value} is not a {type_name} value"),
            ));
            None
        }
    }
}

/// A region hint ("GB"); empty means none.
fn region(value: &str, field: &str, violations: &mut Vec<FieldViolation>) -> Option<Region> {
    if !text_ok(value, field, MAX_REGION_CHARS, violations) {
        return None;
    }
    match value.trim() {
        "" => None,
        region => region
            .parse::<Region>()
            .map_err(|e| violations.push(FieldViolation::new(field, e.to_string())))
            .ok(),
    }
}

/// The identifier oneof, as (email, phone).
fn raw_identifier(
    email: Option<String>,
    phone: Option<String>,
    violations: &mut Vec<FieldViolation>,
) -> Option<RawIdentifier> {
    match (email, phone) {
        (Some(e), _) => {
            text_ok(&e, "email", MAX_EMAIL_CHARS, violations).then_some(RawIdentifier::Email(e))
        }
        (None, Some(p)) => {
            text_ok(&p, "phone", MAX_PHONE_CHARS, violations).then_some(RawIdentifier::Phone(p))
        }
        (None, None) => {
            violations.push(FieldViolation::new(
                "identifier",
                "one of email or phone is required",
            ));
            None
        }
    }
}

fn cache_policy(
    policy: Option<&pb::CachePolicy>,
    violations: &mut Vec<FieldViolation>,
) -> CachePolicy {
    let Some(policy) = policy else {
        return CachePolicy::default();
    };
    let mode = enum_field(
        policy.mode,
        "cache.mode",
        "CachePolicy.Mode",
        enums::cache_mode_from_proto,
        violations,
    )
    .unwrap_or_default();
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
    caller: Caller,
) -> Result<EnrichQuery, Error> {
    let mut violations = Vec::new();
    text_ok(
        &req.request_id,
        "request_id",
        MAX_REF_CHARS,
        &mut violations,
    );
    text_ok(&req.purpose, "purpose", MAX_PURPOSE_CHARS, &mut violations);
    let (email, phone) = match req.identifier {
        Some(pb::enrich_request::Identifier::Email(e)) => (Some(e), None),
        Some(pb::enrich_request::Identifier::Phone(p)) => (None, Some(p)),
        None => (None, None),
    };
    let identifier = raw_identifier(email, phone, &mut violations);
    let hints = req.hints.unwrap_or_default();
    let default_region = region(
        &hints.default_region,
        "hints.default_region",
        &mut violations,
    );
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
    let basis = enum_field(
        req.lawful_basis,
        "lawful_basis",
        "LawfulBasis",
        enums::basis_from_proto,
        &mut violations,
    )
    .flatten();
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
    let min_confidence = enum_field(
        options.min_confidence,
        "options.min_confidence",
        "MatchConfidence",
        enums::confidence_from_proto,
        &mut violations,
    )
    .flatten();
    let min_interest_score = options.min_interest_score;
    if min_interest_score.is_some_and(|m| !(0.0..=1.0).contains(&m)) {
        violations.push(FieldViolation::new(
            "options.min_interest_score",
            "must be within 0 and 1",
        ));
    }
    let max_interests = (options.max_interests > 0).then_some(options.max_interests as usize);
    let field_mask = req.field_mask.map(|m| m.paths).unwrap_or_default();
    if field_mask.len() > MAX_MASK_PATHS {
        violations.push(FieldViolation::new(
            "field_mask",
            format!("must name at most {MAX_MASK_PATHS} paths"),
        ));
    } else {
        for path in &field_mask {
            if !text_ok(path, "field_mask", MAX_MASK_PATH_CHARS, &mut violations) {
                break;
            }
        }
    }
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
            field_mask,
            first_contact_at,
        }),
        _ => Err(Error::InvalidArgument(violations)),
    }
}

/// The person an Erase or Access request is about, and the request's
/// reference.
pub struct SubjectQuery {
    pub identifier: RawIdentifier,
    pub region: Option<Region>,
    pub reference: String,
}

fn subject_query(
    email: Option<String>,
    phone: Option<String>,
    default_region: &str,
    reference: &str,
) -> Result<SubjectQuery, Error> {
    let mut violations = Vec::new();
    let region = region(default_region, "default_region", &mut violations);
    let reference = optional_ref(reference, "reference", &mut violations).unwrap_or_default();
    match raw_identifier(email, phone, &mut violations) {
        Some(identifier) if violations.is_empty() => Ok(SubjectQuery {
            identifier,
            region,
            reference,
        }),
        _ => Err(Error::InvalidArgument(violations)),
    }
}

/// An Erase request: what it asks, and about whom.
pub fn erase_query(req: &pb::EraseRequest) -> Result<(SubjectQuery, EraseKind), Error> {
    use pb::erase_request::{Identifier, Kind};
    let kind = match Kind::try_from(req.kind) {
        Ok(Kind::ObjectionToMarketing) => EraseKind::ObjectionToMarketing,
        Ok(Kind::Unspecified | Kind::Erasure) => EraseKind::Erasure,
        Err(_) => {
            return Err(Error::InvalidArgument(vec![FieldViolation::new(
                "kind",
                format!("{} is not an EraseRequest.Kind value", req.kind),
            )]));
        }
    };
    let (email, phone) = match req.identifier.clone() {
        Some(Identifier::Email(e)) => (Some(e), None),
        Some(Identifier::Phone(p)) => (None, Some(p)),
        None => (None, None),
    };
    Ok((
        subject_query(email, phone, &req.default_region, &req.reference)?,
        kind,
    ))
}

/// A Feedback request: the finding and the verdict, checked for shape.
pub fn feedback_query(req: &pb::FeedbackRequest) -> Result<crate::feedback::FeedbackQuery, Error> {
    use crate::feedback::{Finding, Verdict};
    use pb::feedback_request::Finding as F;
    let mut violations = Vec::new();
    let verdict = match pb::FeedbackVerdict::try_from(req.verdict) {
        Ok(pb::FeedbackVerdict::WrongPerson) => Some(Verdict::WrongPerson),
        Ok(pb::FeedbackVerdict::NotThere) => Some(Verdict::NotThere),
        Ok(pb::FeedbackVerdict::Correct) => Some(Verdict::Correct),
        Ok(pb::FeedbackVerdict::Unspecified) => {
            violations.push(FieldViolation::new(
                "verdict",
                "is required: WRONG_PERSON, NOT_THERE or CORRECT",
            ));
            None
        }
        Err(_) => {
            violations.push(FieldViolation::new(
                "verdict",
                format!("{} is not a FeedbackVerdict value", req.verdict),
            ));
            None
        }
    };
    let finding = match &req.finding {
        Some(F::Profile(p)) => Some(Finding::Profile {
            source_id: p.source_id.clone(),
            url: p.url.clone(),
        }),
        Some(F::Attribute(a)) => Some(Finding::Attribute {
            source_id: a.source_id.clone(),
            name: a.name.clone(),
            value: a.value.clone(),
        }),
        None => {
            violations.push(FieldViolation::new(
                "finding",
                "is required: a profile (source_id, url) or an attribute (source_id, name, value)",
            ));
            None
        }
    };
    let (Some(verdict), Some(finding)) = (verdict, finding) else {
        return Err(Error::InvalidArgument(violations));
    };
    let query = crate::feedback::FeedbackQuery {
        processing_id: req.processing_id.clone(),
        finding,
        verdict,
        note: req.note.clone(),
    };
    query.check()?;
    Ok(query)
}

/// An Access request: about whom, and which page of their records.
pub fn access_query(req: &pb::AccessRequest) -> Result<(SubjectQuery, Page), Error> {
    use pb::access_request::Identifier;
    let mut violations = Vec::new();
    let size = match req.page_size {
        0 => DEFAULT_PAGE_SIZE,
        n if n > MAX_PAGE_SIZE => {
            violations.push(FieldViolation::new(
                "page_size",
                format!("{n} is more than the {MAX_PAGE_SIZE} records a page holds at most"),
            ));
            MAX_PAGE_SIZE
        }
        n => n,
    };
    let token = match req.page_token.as_str() {
        "" => None,
        text => {
            let token = PageToken::parse(text);
            if token.is_none() {
                violations.push(FieldViolation::new(
                    "page_token",
                    "not a next_page_token of an earlier Access answer",
                ));
            }
            token
        }
    };
    let (email, phone) = match req.identifier.clone() {
        Some(Identifier::Email(e)) => (Some(e), None),
        Some(Identifier::Phone(p)) => (None, Some(p)),
        None => (None, None),
    };
    match subject_query(email, phone, &req.default_region, &req.reference) {
        Ok(subject) if violations.is_empty() => Ok((subject, Page { size, token })),
        Ok(_) => Err(Error::InvalidArgument(violations)),
        Err(Error::InvalidArgument(mut first)) => {
            first.extend(violations);
            Err(Error::InvalidArgument(first))
        }
        Err(e) => Err(e),
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
            enrich_query(req, tokio::time::Instant::now(), Caller::anonymous())
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
    fn long_values_and_hidden_characters_are_refused_naming_the_field() {
        let req = pb::EnrichRequest {
            request_id: "r\u{0}".into(),
            purpose: "p".repeat(60_000),
            identifier: Some(pb::enrich_request::Identifier::Phone(
                "+44 7700\u{200B}900123".into(),
            )),
            evidence: Some(pb::BasisEvidence {
                consent_ref: "C-\u{202E}1".into(),
                ..Default::default()
            }),
            field_mask: Some(pbjson_types::FieldMask {
                paths: vec!["profiles".into(); 65],
            }),
            ..Default::default()
        };
        let Err(Error::InvalidArgument(v)) =
            enrich_query(req, tokio::time::Instant::now(), Caller::anonymous())
        else {
            panic!("expected InvalidArgument");
        };
        let fields: Vec<&str> = v.iter().map(|f| f.field.as_str()).collect();
        assert_eq!(
            fields,
            [
                "request_id",
                "purpose",
                "phone",
                "evidence.consent_ref",
                "field_mask"
            ]
        );
        assert!(v[1].description.contains("at most 64"), "{:?}", v[1]);
        assert!(v[2].description.contains("U+200B"), "{:?}", v[2]);
        assert!(
            v.iter().all(|f| f.description.len() < 200),
            "nothing echoed"
        );

        let erase = pb::EraseRequest {
            identifier: Some(pb::erase_request::Identifier::Email("a@b.co\r\n".into())),
            reference: "DSR\n1".into(),
            ..Default::default()
        };
        let Err(Error::InvalidArgument(v)) = erase_query(&erase) else {
            panic!("expected InvalidArgument");
        };
        let fields: Vec<&str> = v.iter().map(|f| f.field.as_str()).collect();
        assert_eq!(fields, ["reference", "email"]);
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
        let q = enrich_query(req, tokio::time::Instant::now(), Caller::anonymous()).expect("valid");
        assert_eq!(q.claim.evidence.consent_ref.as_deref(), Some("C-1"));
        assert_eq!(q.claim.evidence.legitimate_interest_assessment_ref, None);
    }
}
