//! enrichd: contact enrichment over gRPC, with provenance and GDPR flags.
//!
//! Where things are:
//! - [`pipeline`]: one request, stage by stage (gate, parse, suppress,
//!   policy, gather, merge, score, comply, record, answer);
//! - [`compliance`]: every rule the law or the product decides;
//! - [`rights`]: data-subject requests (access, erasure, objection);
//! - [`engine`], [`catalog`], [`fetch`], [`cache`], [`resilience`]: asking
//!   sources politely and safely; [`cluster`]: what replicas share
//!   through Redis; [`verify`], [`scoring`]: checks and scores;
//! - [`model`]: the domain vocabulary; [`ledger`]: the record of processing;
//! - [`api`], [`server`], [`cli`], [`batch`], [`startup`]: the ways in.
// House rule: errors are values. A panic on the service path takes every call
// on its task down; `expect` is reserved for invariants and says which one.
#![warn(clippy::unwrap_used)]
// The domain, from the crate below (the paths stay `enrichd::model`, ...).
pub use enrichd_core::{
    catalog, clock, compliance, error, identity, model, privacy, reference, scoring,
};
// The record of processing, from its crate (`enrichd::ledger`).
pub use enrichd_ledger as ledger;
// Asking sources, from their crate (`enrichd::engine`, ...).
pub use enrichd_sources::{cache, cluster, engine, fetch, limiter, resilience, verify};
pub mod api;
pub mod audience;
pub mod auth;
pub mod batch;
pub mod cli;
pub mod config;
pub mod console;
pub mod feedback;
pub mod fence;
pub mod pipeline;
pub mod proto;
pub mod rights;
pub mod sandbox;
pub mod server;
pub mod startup;
pub mod telemetry;
