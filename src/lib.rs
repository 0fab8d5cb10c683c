//! enrichd: contact enrichment over gRPC, with provenance and GDPR flags.
pub mod cli;
pub mod config;
pub mod convert;
pub mod enrich;
pub mod error;
pub mod identity;
pub mod model;
pub mod privacy;
pub mod proto;
pub mod purpose;
pub mod reference;
pub mod server;
pub mod service;
pub mod telemetry;
pub mod verify;
