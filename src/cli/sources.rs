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
    let catalog = match startup::catalog(&mut config, args.sandbox).await {
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
    if !args.live {
        return Ok(ExitCode::SUCCESS);
    }
    let checks = crate::engine::live::check(&catalog, &config.http, args.only.as_deref())
        .await
        .map_err(|e| anyhow::anyhow!("http: {e}"))?;
    let broken: Vec<_> = checks.iter().filter(|c| !c.holds()).collect();
    println!();
    for c in &broken {
        println!(
            "BROKEN {:<22} {:?} is known {} but the source answered {} ({})",
            c.source,
            c.account,
            if c.present { "present" } else { "absent" },
            c.got,
            c.detail
        );
    }
    println!(
        "live: {} known accounts asked of {} sources, {} detections broken",
        checks.len(),
        checks
            .iter()
            .map(|c| c.source.as_str())
            .collect::<std::collections::BTreeSet<_>>()
            .len(),
        broken.len()
    );
    Ok(if broken.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
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
