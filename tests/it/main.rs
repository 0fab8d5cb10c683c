//! The integration tests: one binary, so the crate and its dependencies link
//! once. Each module is one area of the service, tested over real
//! connections (the server on port 0, wiremock sites, a DNS server on
//! loopback, PostgreSQL and Redis). Tests that must own their process (an
//! RSS bound, a process-wide log subscriber) are binaries of their own beside
//! this directory.
// Tests time real servers and processes from outside; the code they test
// reads the injected clock (clippy.toml).
#![allow(clippy::disallowed_methods)]

mod common;

mod audience;
mod auth;
mod batch;
mod batches;
mod bounds;
mod catalog;
mod cli;
mod cluster;
mod console;
mod docs;
mod feedback;
mod grpc;
mod hostile;
mod http;
mod import;
mod keyed_sources;
mod ledger;
mod lifecycle;
mod mx;
mod outcomes;
mod packs;
mod phone_parity;
mod privacy;
mod properties;
mod resilience;
mod rights;
mod sandbox;
mod scoring;
mod smtp;
mod sources;
mod storage;
mod username_sources;
