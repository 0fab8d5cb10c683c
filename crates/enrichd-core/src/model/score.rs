//! Score results: interests, digital footprint and contact risk, each with
//! the evidence that produced it. The scoring module computes them.

/// Ordered as declared (interest evidence is keyed by kind).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum EvidenceKind {
    SourceTag,
    TextTerm,
    Child,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Evidence {
    pub source_id: std::sync::Arc<str>,
    pub kind: EvidenceKind,
    pub matched: String,
    pub span: String,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Interest {
    pub id: String,
    pub name: String,
    pub tier_path: Vec<String>,
    pub score: f64,
    pub evidence: Vec<Evidence>,
}

/// Interests as scoring found them: those above the threshold, best first,
/// and the special-category ones kept apart (`compliance::special` decides
/// what becomes of them).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ScoredInterests {
    pub ranked: Vec<Interest>,
    pub special: Vec<Interest>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Component {
    pub name: &'static str,
    pub value: f64,
    pub contribution: f64,
    pub explanation: String,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Footprint {
    pub score: u32,
    pub components: Vec<Component>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RiskLevel {
    Low,
    Medium,
    High,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Reason {
    pub code: &'static str,
    pub weight: f64,
    pub detail: String,
}

/// What the risk suggests an analyst do with the contact: a suggestion
/// for a human decision, never the decision (GDPR Art. 22).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Accept,
    Review,
    Decline,
}

/// The scores at which the verdict turns REVIEW and DECLINE, per purpose
/// (`[purposes.<id>.verdict]`; by default the risk levels' `medium` and
/// `high`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, eserde::Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct VerdictThresholds {
    pub review: u32,
    pub decline: u32,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Risk {
    /// 0-100, a monotone map of `points`: more evidence always ranks
    /// higher, and no sum is cut off at 100.
    pub score: u32,
    /// The reasons' weights added up, without a cap.
    pub points: f64,
    pub level: RiskLevel,
    pub verdict: Verdict,
    /// The reasons, heaviest first.
    pub reasons: Vec<Reason>,
}

impl Risk {
    /// The reasons that decided the verdict: the heaviest three.
    pub fn deciding(&self) -> impl Iterator<Item = &Reason> {
        self.reasons.iter().take(3)
    }
}
