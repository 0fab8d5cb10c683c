//! Identifiers, parsed once at the edge: inside enrichd an [`Email`] or a
//! [`PhoneNumber`] is valid by construction.
mod email;
pub mod lookalike;
mod phone;

pub use email::{Email, EmailError};
pub use phone::{NumberType, PhoneError, PhoneNumber, Region, RegionError};

/// The one identifier a request is about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Identifier {
    Email(Email),
    Phone(PhoneNumber),
}

impl Identifier {
    /// The form used for matching and for keyed hashes (cache keys,
    /// suppression list, ledger): the same person always gives the same string.
    pub fn canonical(&self) -> String {
        match self {
            Identifier::Email(e) => format!("email:{}", e.canonical()),
            Identifier::Phone(p) => format!("phone:{}", p.e164()),
        }
    }

    pub fn kind(&self) -> &'static str {
        match self {
            Identifier::Email(_) => "email",
            Identifier::Phone(_) => "phone",
        }
    }
}
