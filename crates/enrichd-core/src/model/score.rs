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
    pub source_id: String,
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

#[derive(Debug, Clone, PartialEq)]
pub struct Risk {
    pub score: u32,
    pub level: RiskLevel,
    pub reasons: Vec<Reason>,
}
