//! `enrichd sources check` and `enrichd sources import`.
use std::process::ExitCode;

use anyhow::Context;

use super::args::{CheckArgs, ImportArgs};
use super::load_config;
use crate::startup;

pub(super) async fn check(args: CheckArgs) -> anyhow::Result<ExitCode> {
    let mut config = load_config(&args.config)?;
    if args.catalog.is_some() {
        config.sources.catalog = args.catalog;
    }
    let catalog = match startup::catalog(&config, args.sandbox).await {
        Ok((c, _)) => c,
        Err(e) => {
            eprintln!("{e}");
            return Ok(ExitCode::FAILURE);
        }
    };
    println!(
        "{:<22} {:<15} {:<42} {:>12} STATUS",
        "ID", "INPUT", "PURPOSES", "RATE LIMIT"
    );
    for s in catalog.sources() {
        let rate = format!(
            "{}/s+{}",
            s.limits.rate_limit.per_second, s.limits.rate_limit.burst
        );
        let status = match &s.disabled {
            None => "enabled".to_owned(),
            Some(why) => format!("disabled: {why}"),
        };
        println!(
            "{:<22} {:<15} {:<42} {:>12} {}",
            s.id,
            s.input.as_str(),
            s.purposes.join(","),
            rate,
            status
        );
    }
    println!(
        "{} sources, {} enabled",
        catalog.sources().len(),
        catalog.sources().iter().filter(|s| s.enabled()).count()
    );
    Ok(ExitCode::SUCCESS)
}

pub(super) fn import(args: ImportArgs) -> anyhow::Result<ExitCode> {
    let text = std::fs::read_to_string(&args.file)
        .with_context(|| format!("cannot read {}", args.file.display()))?;
    let imported = crate::catalog::import::import(args.format, &text, &args.purposes)
        .map_err(|e| anyhow::anyhow!("{}: {e}", args.file.display()))?;
    match &args.output {
        Some(path) => std::fs::write(path, &imported.toml)
            .with_context(|| format!("cannot write {}", path.display()))?,
        None => print!("{}", imported.toml),
    }
    eprintln!(
        "imported {} sources, skipped {}",
        imported.count,
        imported.skipped.len()
    );
    for (name, why) in &imported.skipped {
        eprintln!("  skipped {name}: {why}");
    }
    Ok(ExitCode::SUCCESS)
}
