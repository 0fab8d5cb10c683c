//! Pivots: the handles and links a found profile publishes, as the inputs
//! of the next round, normalised and capped (a hostile profile listing a
//! thousand links makes at most `PivotLimits::per_profile` requests).
use super::http;
use enrichd_core::catalog::input::Input;
use enrichd_core::catalog::source::{PivotFrom, Source};
use enrichd_core::model::{InputKind, Profile, Value};

/// How many inputs pivots may add: a hostile profile listing a thousand
/// links must not make a thousand requests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PivotLimits {
    /// Inputs taken from one profile (the first ones it lists).
    pub per_profile: usize,
    /// Inputs added by pivots in one call, over every round.
    pub per_call: usize,
}

/// Normalises a pivot value for its input kind; `None` drops it.
pub(crate) fn pivot_value(kind: InputKind, raw: &str) -> Option<String> {
    let v = raw.trim();
    match kind {
        InputKind::Username => {
            let v = v.trim_start_matches('@');
            (!v.is_empty() && v.len() <= 100 && !v.chars().any(char::is_whitespace))
                .then(|| v.to_owned())
        }
        InputKind::Url => url::Url::parse(v)
            .ok()
            .filter(|u| matches!(u.scheme(), "http" | "https"))
            .map(|u| u.to_string()),
        _ => (!v.is_empty()).then(|| v.to_owned()),
    }
}

pub(crate) fn text(v: &Value) -> String {
    v.as_text()
}

/// Inputs the pivots of `source` produce from `profile`.
pub(crate) fn pivots_of(source: &Source, profile: &Profile, parent: &Input) -> Vec<Input> {
    let confidence = http::pivot_confidence(parent.confidence);
    let mut out = Vec::new();
    for pivot in source.pivots() {
        let values: Vec<String> = match &pivot.from {
            PivotFrom::Field(f) => profile
                .fields
                .get(f)
                .map(|s| text(&s.value))
                .into_iter()
                .collect(),
            PivotFrom::Extra(name) => profile
                .extra
                .get(name)
                .map(|s| text(&s.value))
                .into_iter()
                .collect(),
            PivotFrom::AccountUsername => profile
                .accounts
                .iter()
                .filter_map(|a| a.username.clone())
                .collect(),
            PivotFrom::AccountUrl => profile
                .accounts
                .iter()
                .filter_map(|a| a.url.clone())
                .collect(),
        };
        out.extend(
            values
                .iter()
                .filter_map(|v| pivot_value(pivot.to, v))
                .map(|value| Input {
                    kind: pivot.to,
                    value,
                    confidence,
                    depth: parent.depth + 1,
                    via: Some(source.id.clone()),
                }),
        );
    }
    out
}

impl Default for PivotLimits {
    fn default() -> Self {
        Self {
            per_profile: 20,
            per_call: 100,
        }
    }
}
