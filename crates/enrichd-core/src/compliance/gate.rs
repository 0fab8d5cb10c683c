//! The lawful-basis gate (Art. 6(1)): no enrichment without a declared
//! purpose and a lawful basis, with the evidence that basis needs; vital
//! interests are never a ground for enrichment.
//!
//! Purposes are data (the record of processing activities, Art. 30) declared
//! in config; the gate below is a pure function over them.
use std::collections::BTreeMap;
use std::sync::Arc;

use crate::error::PreconditionViolation;
use crate::model::PurposeConfig;
use crate::model::{Claim, LawfulBasis, LawfulGround, Purpose};

/// The declared purposes.
#[derive(Debug, Clone, Default)]
pub struct PurposeRegistry {
    purposes: BTreeMap<String, Arc<Purpose>>,
}

impl PurposeRegistry {
    pub fn new(declared: &BTreeMap<String, PurposeConfig>) -> Self {
        let purposes = declared
            .iter()
            .map(|(id, p)| {
                let purpose = Purpose {
                    id: id.clone(),
                    description: p.description.clone(),
                    lawful_bases: p.lawful_bases.clone(),
                    retention: p.retention,
                    dpia_ref: p.dpia_ref.clone(),
                    fields: p.fields.clone(),
                    sources: p.sources.clone(),
                    verdict: p.verdict,
                    audience: p.audience,
                    audience_members: p.audience_members,
                };
                (id.clone(), Arc::new(purpose))
            })
            .collect();
        Self { purposes }
    }

    pub fn get(&self, id: &str) -> Option<&Arc<Purpose>> {
        self.purposes.get(id)
    }

    pub fn iter(&self) -> impl Iterator<Item = &Arc<Purpose>> {
        self.purposes.values()
    }

    fn ids(&self) -> String {
        self.purposes.keys().cloned().collect::<Vec<_>>().join(", ")
    }

    /// The gate: every problem with the claim, reported at once.
    pub fn check(&self, claim: &Claim) -> Result<LawfulGround, Vec<PreconditionViolation>> {
        let mut violations = Vec::new();
        let purpose = if claim.purpose.trim().is_empty() {
            violations.push(PreconditionViolation {
                kind: "PURPOSE",
                subject: "purpose".into(),
                description: format!("a purpose is required; declared purposes: {}", self.ids()),
            });
            None
        } else {
            let found = self.get(claim.purpose.trim());
            if found.is_none() {
                violations.push(PreconditionViolation {
                    kind: "PURPOSE",
                    subject: claim.purpose.clone(),
                    description: format!(
                        "purpose {:?} is not declared; declared purposes: {}",
                        claim.purpose,
                        self.ids()
                    ),
                });
            }
            found
        };

        match claim.basis {
            None => violations.push(PreconditionViolation {
                kind: "LAWFUL_BASIS",
                subject: "lawful_basis".into(),
                description: "an Art. 6(1) lawful basis is required".into(),
            }),
            Some(LawfulBasis::VitalInterests) => violations.push(PreconditionViolation {
                kind: "LAWFUL_BASIS_REFUSED",
                subject: LawfulBasis::VitalInterests.to_string(),
                description: "vital interests (Art. 6(1)(d)) protect someone's life; they never \
                              justify enriching a contact, so enrichd refuses this basis"
                    .into(),
            }),
            Some(basis) => {
                if let Some(p) = purpose
                    && !p.lawful_bases.contains(&basis)
                {
                    let allowed: Vec<&str> = p.lawful_bases.iter().map(|b| b.as_str()).collect();
                    violations.push(PreconditionViolation {
                        kind: "LAWFUL_BASIS",
                        subject: basis.to_string(),
                        description: format!(
                            "purpose {:?} does not allow lawful basis {basis}; allowed: {}",
                            p.id,
                            allowed.join(", ")
                        ),
                    });
                }
                let missing = match basis {
                    LawfulBasis::Consent if claim.evidence.consent_ref.is_none() => {
                        Some(("evidence.consent_ref", "consent needs a consent reference"))
                    }
                    LawfulBasis::LegitimateInterests
                        if claim.evidence.legitimate_interest_assessment_ref.is_none() =>
                    {
                        Some((
                            "evidence.legitimate_interest_assessment_ref",
                            "legitimate interests need a legitimate-interest assessment reference",
                        ))
                    }
                    _ => None,
                };
                if let Some((field, why)) = missing {
                    violations.push(PreconditionViolation {
                        kind: "BASIS_EVIDENCE",
                        subject: field.into(),
                        description: why.into(),
                    });
                }
            }
        }

        match (purpose, claim.basis) {
            (Some(purpose), Some(basis)) if violations.is_empty() => Ok(LawfulGround {
                purpose: purpose.clone(),
                basis,
                evidence: claim.evidence.clone(),
            }),
            _ => Err(violations),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::model::{BasisEvidence, FIELDS};

    fn registry() -> PurposeRegistry {
        let mut declared = BTreeMap::new();
        declared.insert(
            "marketing".to_string(),
            PurposeConfig {
                description: "Direct marketing".into(),
                lawful_bases: vec![LawfulBasis::Consent, LawfulBasis::LegitimateInterests],
                retention: Duration::from_secs(86400),
                dpia_ref: None,
                fields: FIELDS.iter().map(|f| f.to_string()).collect(),
                sources: None,
                verdict: None,
                audience: false,
                audience_members: false,
            },
        );
        PurposeRegistry::new(&declared)
    }

    fn claim(purpose: &str, basis: Option<LawfulBasis>, evidence: BasisEvidence) -> Claim {
        Claim {
            purpose: purpose.into(),
            basis,
            evidence,
        }
    }

    fn lia() -> BasisEvidence {
        BasisEvidence {
            legitimate_interest_assessment_ref: Some("LIA-1".into()),
            ..Default::default()
        }
    }

    #[test]
    fn accepts_an_allowed_basis_with_its_evidence() {
        let g = registry()
            .check(&claim(
                "marketing",
                Some(LawfulBasis::LegitimateInterests),
                lia(),
            ))
            .expect("lawful");
        assert_eq!(g.purpose.id, "marketing");
        assert_eq!(
            g.evidence.legitimate_interest_assessment_ref.as_deref(),
            Some("LIA-1")
        );
    }

    #[test]
    fn refusals_name_every_problem() {
        use LawfulBasis::*;
        let none = BasisEvidence::default();
        // (claim, expected violation kinds and subjects)
        let cases: Vec<(Claim, Vec<(&str, &str)>)> = vec![
            (
                claim("", None, none.clone()),
                vec![("PURPOSE", "purpose"), ("LAWFUL_BASIS", "lawful_basis")],
            ),
            (
                claim("sales", Some(LegitimateInterests), lia()),
                vec![("PURPOSE", "sales")],
            ),
            (
                claim("marketing", Some(Contract), none.clone()),
                vec![("LAWFUL_BASIS", "contract")],
            ),
            (
                claim("marketing", Some(Consent), none.clone()),
                vec![("BASIS_EVIDENCE", "evidence.consent_ref")],
            ),
            (
                claim("marketing", Some(LegitimateInterests), none.clone()),
                vec![(
                    "BASIS_EVIDENCE",
                    "evidence.legitimate_interest_assessment_ref",
                )],
            ),
            (
                claim("marketing", Some(VitalInterests), none.clone()),
                vec![("LAWFUL_BASIS_REFUSED", "vital_interests")],
            ),
        ];
        for (c, want) in cases {
            let got = registry().check(&c).expect_err("refused");
            let got: Vec<(&str, &str)> = got.iter().map(|v| (v.kind, v.subject.as_str())).collect();
            assert_eq!(got, want, "{c:?}");
        }
    }
}
