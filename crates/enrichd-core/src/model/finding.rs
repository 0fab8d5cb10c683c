//! Findings: what a source said about a person, and where each value came from.
use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// The input a source takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum InputKind {
    /// The email address as used (local part as given, ASCII domain).
    Email,
    /// Hex MD5 of the trimmed, lowercased address (Gravatar, Libravatar).
    EmailMd5,
    /// Hex SHA-256 of the trimmed, lowercased address.
    EmailSha256,
    /// The local part, lowercased, without +tag.
    EmailLocal,
    /// The ASCII domain.
    EmailDomain,
    PhoneE164,
    /// The national significant number, digits only.
    PhoneNational,
    /// A handle: from pivots, or guessed from the email's local part.
    Username,
    /// A profile or website URL from a pivot.
    Url,
}

impl InputKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Email => "email",
            Self::EmailMd5 => "email_md5",
            Self::EmailSha256 => "email_sha256",
            Self::EmailLocal => "email_local",
            Self::EmailDomain => "email_domain",
            Self::PhoneE164 => "phone_e164",
            Self::PhoneNational => "phone_national",
            Self::Username => "username",
            Self::Url => "url",
        }
    }
}

impl fmt::Display for InputKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How closely an input is tied to the identifier asked about. Ordered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Confidence {
    Guess,
    Pivot,
    Exact,
}

/// Profile fields a source can fill.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Field {
    Url,
    Username,
    DisplayName,
    Bio,
    Location,
    AvatarUrl,
    CreatedAt,
    LastActiveAt,
    Followers,
    Posts,
}

impl Field {
    pub const ALL: [Field; 10] = [
        Field::Url,
        Field::Username,
        Field::DisplayName,
        Field::Bio,
        Field::Location,
        Field::AvatarUrl,
        Field::CreatedAt,
        Field::LastActiveAt,
        Field::Followers,
        Field::Posts,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Field::Url => "url",
            Field::Username => "username",
            Field::DisplayName => "display_name",
            Field::Bio => "bio",
            Field::Location => "location",
            Field::AvatarUrl => "avatar_url",
            Field::CreatedAt => "created_at",
            Field::LastActiveAt => "last_active_at",
            Field::Followers => "followers",
            Field::Posts => "posts",
        }
    }

    pub fn from_name(name: &str) -> Option<Field> {
        Field::ALL.into_iter().find(|f| f.name() == name)
    }
}

/// How a value was obtained.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Method {
    JsonPointer,
    CssSelector,
    Regex,
    Detection,
    Dns,
}

/// Where a value came from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Provenance {
    pub source_id: Arc<str>,
    pub url: String,
    pub retrieved_at: DateTime<Utc>,
    pub method: Method,
    pub selector: String,
    pub confidence: Confidence,
}

/// An extracted value, typed where the field has a type.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Value {
    Text(String),
    Time(DateTime<Utc>),
    Count(i64),
}

impl Value {
    pub fn as_text(&self) -> String {
        match self {
            Value::Text(s) => s.clone(),
            Value::Time(t) => t.to_rfc3339(),
            Value::Count(n) => n.to_string(),
        }
    }

    /// The value as text, moved out when it is text.
    pub fn into_text(self) -> String {
        match self {
            Value::Text(s) => s,
            other => other.as_text(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Sourced {
    pub value: Value,
    pub provenance: Provenance,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LinkedAccount {
    pub platform: Option<String>,
    pub url: Option<String>,
    pub username: Option<String>,
    pub provenance: Provenance,
}

/// A profile found on one source.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Profile {
    /// The source's, shared (as every provenance's source id is).
    pub source_id: Arc<str>,
    pub platform: Arc<str>,
    pub provenance: Provenance,
    pub fields: BTreeMap<Field, Sourced>,
    pub extra: BTreeMap<String, Sourced>,
    pub accounts: Vec<LinkedAccount>,
    /// For a profile found only through a guessed username: what ties it to
    /// the person (empty for confirmed profiles).
    #[serde(default)]
    pub corroborated_by: Vec<Corroboration>,
    /// Breaches listed by a breach source (role `breaches`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub breaches: Vec<Breach>,
    /// Breaches of sites whose membership is sensitive (Art. 9): dropped
    /// where they were read, neither cached nor answered; only counted.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub sensitive_breaches_withheld: u32,
    /// For a pivot: the source whose profile published the handle or link
    /// it was found with (set per answer, not cached).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub found_via: Option<Arc<str>>,
    /// For a possible match: why it is not counted as the person's (set
    /// per answer, not cached).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub doubt: Option<Doubt>,
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

/// A data breach an address appears in: which and when, never the data.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Breach {
    /// The breach's id at its source ("Adobe").
    pub name: String,
    pub title: Option<String>,
    /// The breached site's domain.
    pub domain: Option<String>,
    /// When it happened, as the source dates it (usually YYYY-MM-DD).
    pub date: Option<String>,
    /// The kinds of data exposed ("Email addresses", "Passwords").
    pub data_classes: Vec<String>,
    pub provenance: Provenance,
}

/// What ties a guessed profile to the person asked about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Corroboration {
    /// The same avatar image (URL or image hash) as a confirmed profile.
    Avatar,
    /// A link between it and a confirmed profile, either way.
    Link,
    /// Its display name matches the name the caller gave.
    NameHint,
}

/// Why a profile is among the possible matches rather than the person's.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Doubt {
    /// Found only through a guessed username, and nothing ties it to them.
    Uncorroborated,
    /// Feedback on the person said this account is someone else's or not
    /// there (`Feedback`): held out of their profiles from then on.
    Refuted,
    /// Its source is demoted (its precision fell under the floor, or it
    /// claimed the canary's random name) and nothing corroborates it.
    SourceDemoted,
    /// Found by a pivot from a refuted profile.
    RefutedOrigin,
}

impl Profile {
    pub fn confidence(&self) -> Confidence {
        self.provenance.confidence
    }
}
