//! Adapters: the gRPC service and the mapping between proto messages and
//! the domain. They map types and never state a fact; the pipeline and
//! `compliance` decide.
mod enums;
pub mod grpc;
pub mod http;
pub mod openapi;
mod records;
pub mod request;
pub mod response;
pub mod status;

pub use enums::basis_to_proto;

/// The health-service name under which a server with replicas reports
/// whether Redis is shared right now (`/readyz` shows it as `cluster`).
pub const CLUSTER_HEALTH: &str = "enrichd.cluster";
