//! Stage 2, parse: the identifier becomes an `Email` or a `PhoneNumber`,
//! valid by construction, and the keyed hash that stands for the person.
use tracing::debug;

use super::Enricher;
use super::query::{EnrichQuery, RawIdentifier};
use crate::error::{Error, FieldViolation};
use crate::identity::{Email, Identifier, PhoneNumber, Region};
use crate::ledger::Refusal;

/// A parsed identifier and its keyed hash (the ledger's and the suppression
/// list's name for the person).
#[derive(Debug, Clone)]
pub struct Subject {
    pub identifier: Identifier,
    pub hash: String,
}

impl Enricher {
    pub(super) async fn parse(&self, query: &EnrichQuery) -> Result<Subject, Error> {
        match self.subject(&query.identifier, query.default_region) {
            Ok(subject) => {
                debug!(subject = %self.hasher.pii(&subject.identifier.canonical()), kind = subject.identifier.kind(), "identifier accepted");
                Ok(subject)
            }
            Err(e) => {
                Box::pin(self.record_refusal(query, Refusal::InvalidIdentifier)).await?;
                Err(e)
            }
        }
    }

    /// Parses an identifier (national phone numbers in `region`, else the
    /// configured default) and hashes it.
    pub fn subject(&self, raw: &RawIdentifier, region: Option<Region>) -> Result<Subject, Error> {
        let identifier = parse_identifier(raw, region.or(self.default_region))
            .map_err(|v| Error::InvalidArgument(vec![v]))?;
        Ok(Subject {
            hash: self.hasher.hash(&identifier.canonical()),
            identifier,
        })
    }
}

/// The identifier, or the field violation that names what is wrong with it.
pub fn parse_identifier(
    raw: &RawIdentifier,
    region: Option<Region>,
) -> Result<Identifier, FieldViolation> {
    match raw {
        RawIdentifier::Email(raw) => Email::parse(raw)
            .map(Identifier::Email)
            .map_err(|e| FieldViolation::new("email", format!("email address {e}"))),
        RawIdentifier::Phone(raw) => PhoneNumber::parse(raw, region)
            .map(Identifier::Phone)
            .map_err(|e| FieldViolation::new("phone", format!("phone number {e}"))),
    }
}
