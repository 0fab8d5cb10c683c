//! The summary a CRM maps, the coverage of an answer, and the views that
//! return less than the whole answer.

use super::super::enums;
use super::findings::risk_to_proto;
use crate::model::{Completeness, Confidence, Enrichment, MxStatus, Verification};
use crate::proto::v1 as pb;

/// The answer at a glance: each value the best supported one of its
/// attribute, from its most confident source.
pub(crate) fn summary_of(e: &Enrichment) -> pb::Summary {
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
            source_id: String::from(&*from.source_id),
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
    let did_you_mean = match &e.verification {
        Some(Verification::Email(v)) => v.did_you_mean.clone().unwrap_or_default(),
        _ => String::new(),
    };
    let risk = e.risk.as_ref().map(risk_to_proto);
    use pb::summary::Status;
    let status = if e.compliance.identifier_suppressed {
        Status::Suppressed
    } else {
        match e.completeness() {
            Completeness::Found => Status::Found,
            // Found, though the purpose does not return profiles.
            Completeness::NotFound if e.compliance.profiles_withheld > 0 => Status::Found,
            Completeness::NotFound => Status::NotFound,
            Completeness::Incomplete => Status::Incomplete,
        }
    };
    let first_seen = crate::model::first_seen(&e.profiles, &e.breaches, Confidence::Pivot)
        .map(|f| pb::TimeValue {
            value: Some(f.at.into()),
            provenance: Some(super::provenance_to_proto(&f.provenance)),
        })
        .unwrap_or_default();
    let mut dates: Vec<&str> = e
        .breaches
        .iter()
        .filter_map(|b| b.date.as_deref())
        .collect();
    dates.sort_unstable();
    let mut classes: Vec<String> = e
        .breaches
        .iter()
        .flat_map(|b| b.data_classes.clone())
        .collect();
    classes.sort();
    classes.dedup();
    let breaches = pb::BreachSummary {
        count: u32::try_from(e.breaches.len()).unwrap_or(u32::MAX),
        first_breach_date: dates.first().map(|d| d.to_string()).unwrap_or_default(),
        last_breach_date: dates.last().map(|d| d.to_string()).unwrap_or_default(),
        data_classes: classes,
    };
    // Every key is present whatever was found: a value not found is an
    // empty one, never a missing key a CRM mapping trips over.
    let value = |name: &str| Some(best(name).unwrap_or_default());
    pb::Summary {
        display_name: value("name"),
        location: value("location"),
        avatar_url: value("avatar_url"),
        top_interests: e.interests.iter().take(3).map(|i| i.name.clone()).collect(),
        footprint_score: e.footprint.as_ref().map_or(0, |f| f.score),
        risk_score: risk.as_ref().map_or(0, |r| r.score),
        risk_level: risk.as_ref().map_or(0, |r| r.level),
        identifier_valid,
        disposable,
        has_mail_servers,
        profiles_found: u32::try_from(e.profiles.len()).unwrap_or(u32::MAX),
        verdict: risk.as_ref().map_or(0, |r| r.verdict),
        risk_reasons: e.risk.as_ref().map_or_else(Vec::new, |r| {
            r.deciding().map(|x| x.code.to_owned()).collect()
        }),
        did_you_mean,
        profiles_withheld: e.compliance.profiles_withheld,
        status: status.into(),
        first_seen: Some(first_seen),
        breaches: Some(breaches),
        deliverable: super::deliverability_to_proto(match &e.verification {
            Some(Verification::Email(v)) => v.smtp.as_ref().map(|c| c.status),
            _ => None,
        })
        .into(),
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

pub(crate) fn coverage_to_proto(e: &Enrichment) -> pb::Coverage {
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
