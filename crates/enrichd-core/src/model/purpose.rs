//! Purposes and lawful bases as data: what a caller claims, and the ground a
//! claim becomes once the compliance gate has accepted it.
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;

/// GDPR Art. 6(1) lawful bases. On the command line and in config they are
/// spelled in snake case (`legitimate_interests`).
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, eserde::Deserialize,
)]
#[serde(rename_all = "snake_case")]
pub enum LawfulBasis {
    Consent,
    Contract,
    LegalObligation,
    VitalInterests,
    PublicTask,
    LegitimateInterests,
}

impl LawfulBasis {
    pub const ALL: [LawfulBasis; 6] = [
        Self::Consent,
        Self::Contract,
        Self::LegalObligation,
        Self::VitalInterests,
        Self::PublicTask,
        Self::LegitimateInterests,
    ];

    /// The article the basis rests on.
    pub fn article(self) -> &'static str {
        match self {
            Self::Consent => "Art. 6(1)(a)",
            Self::Contract => "Art. 6(1)(b)",
            Self::LegalObligation => "Art. 6(1)(c)",
            Self::VitalInterests => "Art. 6(1)(d)",
            Self::PublicTask => "Art. 6(1)(e)",
            Self::LegitimateInterests => "Art. 6(1)(f)",
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Consent => "consent",
            Self::Contract => "contract",
            Self::LegalObligation => "legal_obligation",
            Self::VitalInterests => "vital_interests",
            Self::PublicTask => "public_task",
            Self::LegitimateInterests => "legitimate_interests",
        }
    }
}

impl fmt::Display for LawfulBasis {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The special categories of Art. 9(1), as catalog entries and the scoring
/// data name them (the vocabulary; what follows from them is
/// `compliance::special`).
pub const ART9_CATEGORIES: &[&str] = &[
    "racial_or_ethnic_origin",
    "political_opinions",
    "religious_beliefs",
    "philosophical_beliefs",
    "trade_union_membership",
    "genetic_data",
    "biometric_data",
    "health",
    "sex_life",
    "sexual_orientation",
];

/// A field of the answer that a purpose may return (data minimisation,
/// Art. 5(1)(c)), named in config and field masks as [`name`](Self::name)
/// gives it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ResponseField {
    Verification,
    Profiles,
    Attributes,
    Interests,
    Footprint,
    Risk,
    Breaches,
    PhoneLine,
    MessagingApps,
}

impl ResponseField {
    /// Every field, in the answer's order.
    pub const ALL: [ResponseField; 9] = [
        Self::Verification,
        Self::Profiles,
        Self::Attributes,
        Self::Interests,
        Self::Footprint,
        Self::Risk,
        Self::Breaches,
        Self::PhoneLine,
        Self::MessagingApps,
    ];

    /// The field's name in config, field masks and suppressions.
    pub const fn name(self) -> &'static str {
        match self {
            Self::Verification => "verification",
            Self::Profiles => "profiles",
            Self::Attributes => "attributes",
            Self::Interests => "interests",
            Self::Footprint => "footprint",
            Self::Risk => "risk",
            Self::Breaches => "breaches",
            Self::PhoneLine => "phone_line",
            Self::MessagingApps => "messaging_apps",
        }
    }

    /// The field of a name, if it is one.
    pub fn named(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|f| f.name() == name)
    }

    /// Whether the sources must be asked for it: every field but
    /// `verification` (whose mailbox check, from a source, comes when the
    /// sources are asked for another).
    pub fn needs_sources(self) -> bool {
        self != Self::Verification
    }
}

/// The response fields' names, in the answer's order.
pub const FIELDS: [&str; 9] = {
    let mut names = [""; 9];
    let mut i = 0;
    while i < 9 {
        names[i] = ResponseField::ALL[i].name();
        i += 1;
    }
    names
};

fn all_fields() -> Vec<String> {
    FIELDS.iter().map(|f| f.to_string()).collect()
}

/// A purpose as declared in config.
#[derive(Debug, Clone, PartialEq, serde::Serialize, eserde::Deserialize)]
pub struct PurposeConfig {
    pub description: String,
    /// The lawful bases a caller may rely on for this purpose.
    pub lawful_bases: Vec<LawfulBasis>,
    /// How long records of this processing are kept.
    #[serde(with = "humantime_serde")]
    pub retention: Duration,
    /// Data-protection impact assessment reference.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dpia_ref: Option<String>,
    /// Response fields it may return (default: all).
    #[serde(default = "all_fields")]
    pub fields: Vec<String>,
    /// Sources it may ask (default: every source whose catalog entry lists
    /// the purpose).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sources: Option<Vec<String>>,
    /// The risk scores at which its verdict turns REVIEW and DECLINE
    /// (default: the risk levels' `medium` and `high`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verdict: Option<super::VerdictThresholds>,
    /// Batch jobs of this purpose may be summarised as audience reports
    /// (aggregates and segments that identify no one).
    #[serde(default)]
    pub audience: bool,
    /// Each person's segment may be exported (per-person processing: the
    /// segment is then kept with the row, shown by Access, erased with it).
    #[serde(default)]
    pub audience_members: bool,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Purpose {
    pub id: String,
    pub description: String,
    pub lawful_bases: Vec<LawfulBasis>,
    pub retention: Duration,
    pub dpia_ref: Option<String>,
    pub fields: Vec<String>,
    pub sources: Option<Vec<String>>,
    pub verdict: Option<super::VerdictThresholds>,
    /// Audience reports of its batch jobs are allowed.
    pub audience: bool,
    /// Per-person segment membership may be exported.
    pub audience_members: bool,
}

impl Purpose {
    pub fn allows_field(&self, field: &str) -> bool {
        self.fields.iter().any(|f| f == field)
    }

    /// The purpose's own source list, if it has one, admits the source.
    pub fn allows_source(&self, id: &str) -> bool {
        self.sources
            .as_ref()
            .is_none_or(|list| list.iter().any(|s| s == id))
    }
}

/// Evidence references a caller gives for its basis; recorded, not just checked.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct BasisEvidence {
    pub consent_ref: Option<String>,
    pub legitimate_interest_assessment_ref: Option<String>,
    pub contract_ref: Option<String>,
}

/// What a caller claims: purpose id, basis, evidence. Unvalidated.
#[derive(Debug, Clone, Default)]
pub struct Claim {
    pub purpose: String,
    pub basis: Option<LawfulBasis>,
    pub evidence: BasisEvidence,
}

/// A claim that passed the gate: the processing may go ahead.
#[derive(Debug, Clone, PartialEq)]
pub struct LawfulGround {
    pub purpose: Arc<Purpose>,
    pub basis: LawfulBasis,
    pub evidence: BasisEvidence,
}
