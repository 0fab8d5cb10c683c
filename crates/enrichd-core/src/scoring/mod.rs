//! Scores, each with its evidence: interests (IAB Audience Taxonomy 1.1),
//! digital footprint, contact risk. Pure functions of the findings, the
//! catalog and the scoring data; no I/O.
pub mod data;
pub mod footprint;
pub mod interests;
pub mod risk;

pub use data::{ScoringData, ScoringPaths};
