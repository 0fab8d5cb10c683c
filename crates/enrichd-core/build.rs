//! Embeds the shipped source catalog (`config/sources/`, by file name) and
//! the source packs (`config/packs/`, by pack name), so the binary runs with
//! no files beside it.
use std::{env, path::PathBuf};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let out = PathBuf::from(env::var("OUT_DIR")?);
    let root = PathBuf::from(env::var("CARGO_MANIFEST_DIR")?).join("../..");
    embed_toml(
        &root.join("config/sources"),
        true,
        &out.join("shipped_catalog.rs"),
    )?;
    embed_toml(&root.join("config/packs"), false, &out.join("packs.rs"))?;

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
