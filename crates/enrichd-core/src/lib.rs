//! enrichd's domain, below every transport and store: what a contact, a
//! finding and a source are, and what the law and the product decide about
//! them. No gRPC, HTTP, SQL or Redis here: the crates above do I/O and
//! call these.
//!
//! - [`model`]: the vocabulary (findings, outcomes, purposes, scores, the
//!   answer); [`identity`]: `Email` and `PhoneNumber`, parsed once;
//! - [`catalog`]: the source catalog, compiled from TOML;
//! - [`compliance`]: every rule the law or the product decides;
//! - [`scoring`]: interests, footprint and risk, pure functions over data;
//! - [`privacy`]: keyed hashes and `Pii`; [`reference`]: domain lists;
//!   [`clock`]: time as a dependency; [`error`]: the library's error.
// House rule: errors are values. A panic on the service path takes every call
// on its task down; `expect` is reserved for invariants and says which one.
#![warn(clippy::unwrap_used)]
pub mod catalog;
pub mod clock;
pub mod compliance;
pub mod error;
pub mod identity;
pub mod model;
pub mod privacy;
pub mod reference;
pub mod scoring;
