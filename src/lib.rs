//! enrichd: contact enrichment over gRPC, with provenance and GDPR flags.
pub mod identity;
pub mod privacy;
pub mod proto;
pub mod reference;
