//! Purpose policy (data minimisation, GDPR Art. 5(1)(c)): a purpose returns
//! only the response fields it declares and asks only the sources that
//! serve it; a caller's field mask narrows that further, never widens it.
use std::sync::Arc;

use super::PurposeRegistry;
use crate::catalog::source::Role;
use crate::catalog::{Catalog, Source};
use crate::error::FieldViolation;
use crate::model::{FIELDS, Purpose, ResponseField, SkipReason, Suppression, SuppressionReason};

/// Field-mask entries that name no response field.
pub fn check_mask(mask: &[String]) -> Result<(), Vec<FieldViolation>> {
    let unknown: Vec<FieldViolation> = mask
        .iter()
        .filter(|f| !FIELDS.contains(&f.as_str()))
        .map(|f| {
            FieldViolation::new(
                "field_mask",
                format!("{f:?} is not a response field ({})", FIELDS.join(", ")),
            )
        })
        .collect();
    if unknown.is_empty() {
        Ok(())
    } else {
        Err(unknown)
    }
}

/// The response fields one answer may carry, and those it leaves out.
#[derive(Debug, Clone, PartialEq)]
pub struct FieldPolicy {
    wanted: Vec<ResponseField>,
    /// Left out, in response-field order, with the reason.
    pub withheld: Vec<Suppression>,
}

impl FieldPolicy {
    /// What `purpose` allows, narrowed by `mask` (empty: no narrowing).
    pub fn decide(purpose: &Purpose, mask: &[String]) -> Self {
        let mut wanted = Vec::new();
        let mut withheld = Vec::new();
        for field in ResponseField::ALL {
            let name = field.name();
            let left_out = if !purpose.fields.iter().any(|f| f == name) {
                Some((
                    SuppressionReason::Purpose,
                    format!("purpose {:?} may not return it", purpose.id),
                ))
            } else if !mask.is_empty() && !mask.iter().any(|m| m == name) {
                Some((
                    SuppressionReason::FieldMask,
                    "not in the request's field mask".to_owned(),
                ))
            } else {
                None
            };
            match left_out {
                Some((reason, detail)) => withheld.push(Suppression {
                    target: name.to_owned(),
                    reason,
                    detail,
                }),
                None => wanted.push(field),
            }
        }
        Self { wanted, withheld }
    }

    pub fn wants(&self, field: ResponseField) -> bool {
        self.wanted.contains(&field)
    }

    /// Some wanted field needs the sources to be asked.
    pub fn needs_sources(&self) -> bool {
        self.wanted.iter().any(|f| f.needs_sources())
    }

    /// Verification runs for its own field and as evidence for risk.
    pub fn needs_verification(&self) -> bool {
        self.wants(ResponseField::Verification) || self.wants(ResponseField::Risk)
    }

    /// The names of the fields left out.
    pub fn withheld_fields(&self) -> Vec<String> {
        self.withheld.iter().map(|s| s.target.clone()).collect()
    }
}

/// Why `source` may not be asked for `purpose`, if it may not.
pub fn source_refusal(source: &Source, purpose: &Purpose) -> Option<(SkipReason, String)> {
    if let Some(why) = &source.disabled {
        return Some((SkipReason::Disabled, why.clone()));
    }
    let serves = source.serves(&purpose.id);
    let listed = purpose
        .sources
        .as_ref()
        .is_none_or(|list| list.iter().any(|s| **s == *source.id));
    (!(serves && listed)).then(|| {
        (
            SkipReason::Purpose,
            format!("not allowed for purpose {:?}", purpose.id),
        )
    })
}

/// Why `source` need not be asked for the fields the caller wants, if so:
/// a source whose every use the field mask leaves out is not asked (data
/// minimisation, Art. 5(1)(c)). Profiles feed the profile fields, the
/// scores and messaging apps; a phone line and a mailbox check feed risk
/// too; breaches and phone intelligence's messaging apps feed nothing else.
pub fn field_refusal(source: &Source, fields: &FieldPolicy) -> Option<(SkipReason, String)> {
    use ResponseField as F;
    let feeds: &[ResponseField] = match source.role {
        Role::Profile => &[
            F::Profiles,
            F::Attributes,
            F::Interests,
            F::Footprint,
            F::Risk,
            F::MessagingApps,
        ],
        Role::Breaches => &[F::Breaches],
        Role::PhoneLine => &[F::PhoneLine, F::Risk],
        Role::Mailbox => &[F::Verification, F::Risk],
        Role::MessagingApps => &[F::MessagingApps],
    };
    (!feeds.iter().any(|f| fields.wants(*f))).then(|| {
        (
            SkipReason::FieldMask,
            format!(
                "none of the fields it feeds ({}) is asked for",
                feeds
                    .iter()
                    .map(|f| f.name())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        )
    })
}

/// The sources a purpose may ask (every source when `purpose` is empty);
/// an undeclared purpose is named.
pub fn listed_sources<'a>(
    catalog: &'a Catalog,
    purposes: &PurposeRegistry,
    purpose: &str,
) -> Result<Vec<&'a Arc<Source>>, FieldViolation> {
    if !purpose.is_empty() && purposes.get(purpose).is_none() {
        return Err(FieldViolation::new(
            "purpose",
            format!("purpose {purpose:?} is not declared"),
        ));
    }
    Ok(catalog
        .sources()
        .iter()
        .filter(|s| purpose.is_empty() || s.serves(purpose))
        .collect())
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::model::LawfulBasis;

    fn purpose(fields: &[&str]) -> Purpose {
        Purpose {
            id: "crm".into(),
            description: String::new(),
            lawful_bases: vec![LawfulBasis::Contract],
            retention: Duration::from_secs(1),
            dpia_ref: None,
            fields: fields.iter().map(|f| f.to_string()).collect(),
            sources: None,
            verdict: None,
            audience: false,
            audience_members: false,
        }
    }

    #[test]
    fn the_purpose_decides_and_the_mask_only_narrows() {
        let p = purpose(&["verification", "profiles", "risk"]);
        let all = FieldPolicy::decide(&p, &[]);
        assert!(all.wants(ResponseField::Profiles) && !all.wants(ResponseField::Interests));
        assert_eq!(
            all.withheld_fields(),
            [
                "attributes",
                "interests",
                "footprint",
                "breaches",
                "phone_line",
                "messaging_apps"
            ]
        );
        assert!(
            all.withheld
                .iter()
                .all(|s| s.reason == SuppressionReason::Purpose)
        );

        // Asking for a field the purpose withholds does not bring it back.
        let masked = FieldPolicy::decide(&p, &["risk".into(), "interests".into()]);
        assert!(
            masked.wants(ResponseField::Risk)
                && !masked.wants(ResponseField::Interests)
                && !masked.wants(ResponseField::Profiles)
        );
        let reasons: Vec<(&str, SuppressionReason)> = masked
            .withheld
            .iter()
            .map(|s| (s.target.as_str(), s.reason))
            .collect();
        assert_eq!(
            reasons,
            [
                ("verification", SuppressionReason::FieldMask),
                ("profiles", SuppressionReason::FieldMask),
                ("attributes", SuppressionReason::Purpose),
                ("interests", SuppressionReason::Purpose),
                ("footprint", SuppressionReason::Purpose),
                ("breaches", SuppressionReason::Purpose),
                ("phone_line", SuppressionReason::Purpose),
                ("messaging_apps", SuppressionReason::Purpose),
            ]
        );
        assert!(masked.needs_sources() && masked.needs_verification());
        let verification_only = FieldPolicy::decide(&p, &["verification".into()]);
        assert!(!verification_only.needs_sources());
    }

    #[test]
    fn unknown_mask_entries_are_named() {
        let err = check_mask(&["risk".into(), "salary".into()]).expect_err("unknown");
        assert_eq!(err.len(), 1);
        assert!(err[0].description.contains("\"salary\""), "{:?}", err[0]);
    }
}
