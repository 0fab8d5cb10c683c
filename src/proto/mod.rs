//! The generated gRPC contract (`proto/enrichd/v1/enrichment.proto`).
pub mod codec;

#[allow(clippy::all, missing_docs)]
pub mod v1 {
    tonic::include_proto!("enrichd.v1");
    include!(concat!(env!("OUT_DIR"), "/enrichd.v1.serde.rs"));
}

/// Encoded descriptors of the contract, served by gRPC reflection.
pub const FILE_DESCRIPTOR_SET: &[u8] = tonic::include_file_descriptor_set!("enrichd_descriptor");
