//! Compiles the gRPC contract. Uses the protoc shipped in the
//! `protoc-bin-vendored` crate, so a fresh machine builds with cargo alone.
use std::{env, path::PathBuf};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let protoc = protoc_bin_vendored::protoc_bin_path()?;
    let well_known = protoc_bin_vendored::include_path()?;
    let mut config = prost_build::Config::new();
    config.protoc_executable(protoc);

    let out = PathBuf::from(env::var("OUT_DIR")?);
    let descriptor_path = out.join("enrichd_descriptor.bin");
    let proto = "proto/enrichd/v1/enrichment.proto";
    println!("cargo:rerun-if-changed={proto}");

    tonic_prost_build::configure()
        .file_descriptor_set_path(&descriptor_path)
        // Well-known types with serde support, so the CLI prints canonical proto3 JSON.
        .compile_well_known_types(true)
        .extern_path(".google.protobuf", "::pbjson_types")
        // prost's encoding, into a buffer of the message's size (`src/proto/codec.rs`).
        .codec_path("crate::proto::codec::Codec")
        .compile_with_config(
            config,
            &[PathBuf::from(proto)],
            &[PathBuf::from("proto"), well_known],
        )?;

    let descriptors = std::fs::read(&descriptor_path)?;
    // Every field in every answer, false and 0 included: a CRM's field
    // mapping never meets a missing key.
    pbjson_build::Builder::new()
        .register_descriptors(&descriptors)?
        .emit_fields()
        .build(&[".enrichd"])?;
    Ok(())
}
