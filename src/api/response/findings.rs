//! What was found, as proto: profiles and their provenance, attributes,
//! breaches, interests, the footprint and the risk.

use super::super::enums;
use super::provenance_to_proto;
use crate::model::{
    Attribute, Breach, EvidenceKind, Field, Footprint, Interest, Method, Profile, Provenance, Risk,
    RiskLevel, Sourced, Value,
};
use crate::proto::v1 as pb;

pub(crate) fn provenance_into_proto(p: Provenance) -> pb::Provenance {
    use pb::ExtractionMethod as M;
    pb::Provenance {
        source_id: String::from(&*p.source_id),
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

pub(crate) fn text_value(s: &Sourced) -> pb::TextValue {
    text_value_of(s.clone())
}

pub(crate) fn text_value_of(s: Sourced) -> pb::TextValue {
    pb::TextValue {
        value: s.value.into_text(),
        provenance: Some(provenance_into_proto(s.provenance)),
    }
}

/// Why a possible match is one.
pub(crate) fn doubt_to_proto(doubt: Option<crate::model::Doubt>) -> pb::Doubt {
    use crate::model::Doubt as D;
    match doubt {
        None => pb::Doubt::Unspecified,
        Some(D::Uncorroborated) => pb::Doubt::Uncorroborated,
        Some(D::Refuted) => pb::Doubt::Refuted,
        Some(D::SourceDemoted) => pb::Doubt::SourceDemoted,
        Some(D::RefutedOrigin) => pb::Doubt::RefutedOrigin,
    }
}

/// A profile as answered, its strings moved, not copied (an answer's
/// profiles are the bulk of it).
pub(crate) fn profile_into_proto(p: Profile) -> pb::Profile {
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
        source_id: String::from(&*p.source_id),
        platform: String::from(&*p.platform),
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
        doubt: doubt_to_proto(p.doubt).into(),
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
        found_via: p.found_via.as_deref().unwrap_or_default().to_owned(),
    }
}

pub(crate) fn attribute_to_proto(a: &Attribute) -> pb::Attribute {
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

pub(crate) fn interest_to_proto(i: &Interest) -> pb::Interest {
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
                source_id: String::from(&*e.source_id),
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

pub(crate) fn footprint_to_proto(f: &Footprint) -> pb::Footprint {
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

pub(crate) fn risk_to_proto(r: &Risk) -> pb::Risk {
    use crate::model::Verdict;
    use pb::risk::{Level, Verdict as V};
    pb::Risk {
        score: r.score,
        points: r.points,
        verdict: match r.verdict {
            Verdict::Accept => V::Accept,
            Verdict::Review => V::Review,
            Verdict::Decline => V::Decline,
        }
        .into(),
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

pub(crate) fn breach_to_proto(b: &Breach) -> pb::Breach {
    pb::Breach {
        name: b.name.clone(),
        title: b.title.clone().unwrap_or_default(),
        domain: b.domain.clone().unwrap_or_default(),
        breach_date: b.date.clone().unwrap_or_default(),
        data_classes: b.data_classes.clone(),
        provenance: Some(provenance_to_proto(&b.provenance)),
    }
}
