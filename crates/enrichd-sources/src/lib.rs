//! Asking sources politely and safely, and what replicas share.
//!
//! - [`engine`]: running a request's sources in rounds with pivots,
//!   detection and extraction; known-account checks ([`engine::live`]);
//! - [`fetch`]: the one HTTP client (body caps, redirects, the address
//!   guard); [`verify`]: checks of the identifier (lists, MX, phone);
//! - [`cache`]: the answer cache; [`limiter`], [`resilience`]: rate limits,
//!   concurrency caps, `Retry-After` pauses, retries and breakers;
//! - [`cluster`]: the Redis tier replicas share (cache, limits, pauses,
//!   erasure news).
#![warn(clippy::unwrap_used)]
pub mod cache;
pub mod cluster;
pub mod engine;
pub mod fetch;
pub mod limiter;
pub mod resilience;
pub mod smtp;
pub mod verify;
