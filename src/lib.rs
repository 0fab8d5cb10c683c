//! enrichd: contact enrichment over gRPC, with provenance and GDPR flags.
//!
//! The flow of one request lives in [`enrich`]; the modules are its stages.
// House rule: errors are values. A panic on the service path takes every call
// on its task down; `expect` is reserved for invariants and says which one.
#![warn(clippy::unwrap_used)]
pub mod batch;
pub mod cache;
pub mod catalog;
pub mod cli;
pub mod config;
pub mod convert;
pub mod engine;
pub mod enrich;
pub mod error;
pub mod fetch;
pub mod identity;
pub mod ledger;
pub mod merge;
pub mod model;
pub mod privacy;
pub mod proto;
pub mod purpose;
pub mod reference;
pub mod resilience;
pub mod sandbox;
pub mod scoring;
pub mod server;
pub mod service;
pub mod telemetry;
pub mod verify;
