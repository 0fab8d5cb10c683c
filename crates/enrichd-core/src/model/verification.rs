//! Verification results: what the checks of an email address or a phone
//! number found. A failed check is a value here, never an error.
use std::time::Duration;

use serde::Serialize;

use crate::identity::NumberType;

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MxHost {
    pub preference: u16,
    pub exchange: String,
}

/// The outcome of an MX lookup. `None` is a fact about the domain; `Error`
/// says nothing about it (the lookup itself failed).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum MxStatus {
    Found { hosts: Vec<MxHost> },
    None { detail: String },
    Error { detail: String },
    Skipped,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MxCheck {
    #[serde(flatten)]
    pub status: MxStatus,
    pub latency: Duration,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct EmailVerification {
    /// RFC 5321/5322 syntax, as `identity::Email::parse` judged it.
    pub syntax_valid: bool,
    pub disposable: bool,
    pub free_provider: bool,
    pub role_account: bool,
    pub mx: MxCheck,
    /// The well-known domain this one is probably a typo or look-alike of.
    pub did_you_mean: Option<String>,
    /// A label of the domain mixes scripts (Unicode TR39).
    pub mixed_script: bool,
    /// What the domain's mail exchanger said of the mailbox over SMTP
    /// (`[smtp]`, off by default); `None` when not asked.
    pub smtp: Option<SmtpCheck>,
}

/// What an exchanger said of an address over SMTP.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Deliverability {
    Deliverable,
    Undeliverable,
    /// The domain takes any address: this one says nothing.
    CatchAll,
    Unknown,
}

impl Deliverability {
    /// An answer the exchanger gave (not a probe that could not tell:
    /// greylisted, busy, over budget, timed out), worth keeping.
    pub fn is_known(self) -> bool {
        self != Self::Unknown
    }
}

/// An SMTP probe's outcome: the status, why (accepted, refused, greylisted,
/// blocked, tempfail, timeout, never probed ...), the reply code that
/// decided it, and the exchanger asked.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SmtpCheck {
    pub status: Deliverability,
    pub reason: String,
    pub code: Option<u16>,
    pub host: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PhoneVerification {
    pub valid: bool,
    pub number_type: NumberType,
    pub region: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Verification {
    Email(EmailVerification),
    Phone(PhoneVerification),
}
