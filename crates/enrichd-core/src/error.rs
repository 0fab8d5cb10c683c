//! The library's error type. Handlers convert it to a `tonic::Status` in one
//! place (`api::status`); a failing *source* is never an `Error`, it is an
//! outcome in the answer.
/// A request field that is malformed, in the shape of google.rpc.BadRequest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldViolation {
    /// Request field path: "email", "hints.default_region".
    pub field: String,
    pub description: String,
}

impl FieldViolation {
    pub fn new(field: impl Into<String>, description: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            description: description.into(),
        }
    }
}

/// One reason the gate refused, in the shape of google.rpc.PreconditionFailure.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PreconditionViolation {
    /// "PURPOSE", "LAWFUL_BASIS", "LAWFUL_BASIS_REFUSED", "BASIS_EVIDENCE".
    pub kind: &'static str,
    pub subject: String,
    pub description: String,
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Malformed input (INVALID_ARGUMENT with field violations).
    #[error("invalid request: {}", describe_fields(.0))]
    InvalidArgument(Vec<FieldViolation>),

    /// No lawful ground for the processing (FAILED_PRECONDITION).
    #[error("no lawful ground for this processing: {}", describe_preconditions(.0))]
    NoLawfulGround(Vec<PreconditionViolation>),

    /// The caller may not do this (PERMISSION_DENIED).
    #[error("{0}")]
    PermissionDenied(String),

    /// A dependency enrichd cannot answer without (the ledger) failed.
    #[error("{0}")]
    Unavailable(&'static str),

    /// What the request names does not exist (NOT_FOUND).
    #[error("{0}")]
    NotFound(String),

    /// The request is well formed but the state it needs does not hold
    /// (FAILED_PRECONDITION with one violation).
    #[error("{}", .0.description)]
    Precondition(PreconditionViolation),

    /// The caller is over a limit of its own (RESOURCE_EXHAUSTED with the
    /// delay after which to retry).
    #[error("{why}")]
    Exhausted {
        why: String,
        retry_after: std::time::Duration,
    },
}

fn describe_fields(v: &[FieldViolation]) -> String {
    v.iter()
        .map(|f| {
            // "email address has no '@'" names its field already.
            let named = f.field.rsplit('.').next().unwrap_or(&f.field);
            if f.description.starts_with(named) {
                f.description.clone()
            } else {
                format!("{} {}", f.field, f.description)
            }
        })
        .collect::<Vec<_>>()
        .join("; ")
}

fn describe_preconditions(v: &[PreconditionViolation]) -> String {
    v.iter()
        .map(|p| p.description.as_str())
        .collect::<Vec<_>>()
        .join("; ")
}

/// Writes a titled list of problems, one a line: how configuration and
/// catalog validation report everything they found at once.
/// `write_problems` as a string, for error types that derive `Display`.
pub fn problems_text(what: &str, problems: &[String]) -> String {
    struct Problems<'a>(&'a str, &'a [String]);
    impl std::fmt::Display for Problems<'_> {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            write_problems(f, self.0, self.1)
        }
    }
    Problems(what, problems).to_string()
}

pub fn write_problems(
    f: &mut std::fmt::Formatter<'_>,
    what: &str,
    problems: &[String],
) -> std::fmt::Result {
    let n = problems.len();
    let plural = if n == 1 { "" } else { "s" };
    writeln!(f, "invalid {what} ({n} problem{plural}):")?;
    for p in problems {
        writeln!(f, "  - {p}")?;
    }
    Ok(())
}
