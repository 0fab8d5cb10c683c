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
    let standing = standing(&config).await;
    println!(
        "{:<22} {:<15} {:<42} {:>12} {:>13} STATUS",
        "ID", "INPUT", "PURPOSES", "RATE LIMIT", "PRECISION"
    );
    for s in catalog.sources() {
        let rate = format!(
            "{}/s+{}",
            s.limits.rate_limit.per_second, s.limits.rate_limit.burst
        );
        let mut status = match &s.disabled {
            None => "enabled".to_owned(),
            Some(why) => format!("disabled: {why}"),
        };
        let view = standing.as_ref().map(|st| st.of(&s.id)).unwrap_or_default();
        let precision = match view.tally.precision() {
            Some(p) => format!("{p:.2} of {}", view.tally.total()),
            None => "-".to_owned(),
        };
        if view.demoted {
            status.push_str(&format!("; demoted: {}", view.reason));
        }
        println!(
            "{:<22} {:<15} {:<42} {:>12} {:>13} {}",
            s.id,
            s.input.as_str(),
            s.purposes.join(","),
            rate,
            precision,
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
        if c.canary {
            println!(
                "UNRELIABLE {:<18} said the random name {:?} exists ({}): it claims every name",
                c.source, c.account, c.got
            );
            continue;
        }
        println!(
            "BROKEN {:<22} {:?} is known {} but the source answered {} ({})",
            c.source,
            c.account,
            if c.present { "present" } else { "absent" },
            c.got,
            c.detail
        );
    }
    let (canaries, known): (Vec<_>, Vec<_>) = checks.iter().partition(|c| c.canary);
    println!(
        "live: {} known accounts asked of {} sources, {} detections broken",
        known.len(),
        known
            .iter()
            .map(|c| c.source.as_str())
            .collect::<std::collections::BTreeSet<_>>()
            .len(),
        known.iter().filter(|c| !c.holds()).count()
    );
    println!(
        "canary: {} username sources asked for a random name, {} claimed it",
        canaries.len(),
        canaries.iter().filter(|c| !c.holds()).count()
    );
    Ok(if broken.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// The sources' standing from the configured ledger, when there is one
/// (a SQLite ledger that does not exist yet is not created for this).
async fn standing(config: &crate::config::Config) -> Option<crate::feedback::Standing> {
    let url = &config.ledger.url;
    if crate::ledger::sqlite_file(url).is_some_and(|path| !path.exists()) {
        return None;
    }
    let ledger = match crate::ledger::Ledger::open(url).await {
        Ok(ledger) => ledger,
        Err(e) => {
            eprintln!("ledger.url: cannot read the sources' feedback: {e}");
            return None;
        }
    };
    let standing = crate::feedback::Standing::new(config.feedback.clone());
    standing
        .refresh(&ledger, crate::clock::SharedClock::system().utc())
        .await;
    Some(standing)
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
