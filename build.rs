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
        .compile_with_config(
            config,
            &[PathBuf::from(proto)],
            &[PathBuf::from("proto"), well_known],
        )?;

    // The shipped source catalog, embedded so the binary runs with no files
    // (by file name), and the source packs (off unless `sources.packs` names
    // them; by pack name).
    let root = PathBuf::from(env::var("CARGO_MANIFEST_DIR")?);
    embed_toml(
        &root.join("config/sources"),
        true,
        &out.join("shipped_catalog.rs"),
    )?;
    embed_toml(&root.join("config/packs"), false, &out.join("packs.rs"))?;

    let descriptors = std::fs::read(&descriptor_path)?;
    // Every field in every answer, false and 0 included: a CRM's field
    // mapping never meets a missing key.
    pbjson_build::Builder::new()
        .register_descriptors(&descriptors)?
        .emit_fields()
        .build(&[".enrichd"])?;
    Ok(())
}

/// Writes `out`: a `&[(name, text)]` of every `*.toml` in `dir`, sorted, each
/// named by its file name (`with_extension`) or stem.
fn embed_toml(
    dir: &std::path::Path,
    with_extension: bool,
    out: &std::path::Path,
) -> Result<(), Box<dyn std::error::Error>> {
    println!("cargo:rerun-if-changed={}", dir.display());
    let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "toml"))
        .collect();
    entries.sort();
    let mut listing = String::from("&[\n");
    for path in &entries {
        println!("cargo:rerun-if-changed={}", path.display());
        let name = if with_extension {
            path.file_name()
        } else {
            path.file_stem()
        };
        let name = name.and_then(|n| n.to_str()).unwrap_or_default();
        listing.push_str(&format!(
            "    ({name:?}, include_str!({:?})),\n",
            path.display().to_string()
        ));
    }
    listing.push(']');
    std::fs::write(out, listing)?;
    Ok(())
}
