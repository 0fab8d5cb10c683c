//! `enrichd keys create | list | revoke`, on the configured ledger database.
use std::process::ExitCode;

use anyhow::Context;

use super::args::{KeyCreateArgs, KeysCommand};
use super::load_config;
use crate::auth::keys::{Keys, NewKey, is_live};
use crate::clock::SharedClock;
use crate::config::Config;
use crate::ledger::Ledger;
use crate::startup;

pub(super) async fn run(command: KeysCommand) -> anyhow::Result<ExitCode> {
    match command {
        KeysCommand::Create(args) => create(args).await,
        KeysCommand::List(config) => list(&load_config(&config)?).await,
        KeysCommand::Revoke(args) => {
            let keys = open(&load_config(&args.config)?).await?;
            let n = keys.revoke(&args.name, args.id.as_deref()).await?;
            if n == 0 {
                eprintln!(
                    "error: no live key named {:?}{}",
                    args.name,
                    match &args.id {
                        Some(id) => format!(" with id {id}"),
                        None => String::new(),
                    }
                );
                return Ok(ExitCode::FAILURE);
            }
            println!("revoked {n} key(s) of {:?}", args.name);
            Ok(ExitCode::SUCCESS)
        }
    }
}

async fn open(config: &Config) -> anyhow::Result<Keys> {
    let ledger = Ledger::open(&config.ledger.url)
        .await
        .with_context(|| "cannot open the ledger database (ledger.url)")?;
    let hasher = startup::hasher(config)?;
    ledger.bind_hash_key(&hasher.fingerprint()).await?;
    Ok(Keys::new(ledger, &hasher, SharedClock::system()))
}

/// "5/s" or "5".
fn quota(text: &str) -> anyhow::Result<f64> {
    let number = text.trim().strip_suffix("/s").unwrap_or(text.trim());
    number
        .parse::<f64>()
        .ok()
        .filter(|q| *q > 0.0 && q.is_finite())
        .ok_or_else(|| anyhow::anyhow!("--quota: {text:?} is not a rate such as \"5/s\""))
}

async fn create(args: KeyCreateArgs) -> anyhow::Result<ExitCode> {
    let config = load_config(&args.config)?;
    for purpose in &args.purposes {
        if !config.purposes.contains_key(purpose) {
            anyhow::bail!(
                "--purposes: {purpose:?} is not a declared purpose ({})",
                config.purpose_ids().join(", ")
            );
        }
    }
    let quota = args.quota.as_deref().map(quota).transpose()?;
    let keys = open(&config).await?;
    let issued = keys
        .create(NewKey {
            name: args.name.clone(),
            scopes: args.scopes.iter().copied().collect(),
            purposes: args.purposes.iter().cloned().collect(),
            quota_per_second: quota,
            expires_in: args.expires,
        })
        .await?;
    println!("created key {} for {:?}", issued.id, args.name.trim());
    println!("the secret is shown once; store it now:");
    println!("{}", issued.secret);
    Ok(ExitCode::SUCCESS)
}

async fn list(config: &Config) -> anyhow::Result<ExitCode> {
    let keys = open(config).await?;
    let now = chrono::Utc::now().timestamp_millis();
    let date = |ms: i64| match ms {
        0 => "-".to_owned(),
        ms => chrono::DateTime::from_timestamp_millis(ms).map_or_else(
            || ms.to_string(),
            |t| t.format("%Y-%m-%d %H:%M").to_string(),
        ),
    };
    println!(
        "{:<18} {:<20} {:<8} {:<34} {:<24} {:>7} {:<16} {:<16}",
        "ID", "NAME", "STATUS", "SCOPES", "PURPOSES", "QUOTA", "EXPIRES", "REVOKED"
    );
    for k in keys.list().await? {
        let status = if k.revoked_ms != 0 {
            "revoked"
        } else if is_live(&k, now) {
            "live"
        } else {
            "expired"
        };
        let quota = if k.quota_per_second > 0.0 {
            format!("{}/s", k.quota_per_second)
        } else {
            "-".to_owned()
        };
        let purposes = if k.purposes.is_empty() {
            "(any)"
        } else {
            &k.purposes
        };
        println!(
            "{:<18} {:<20} {:<8} {:<34} {:<24} {:>7} {:<16} {:<16}",
            k.id,
            k.name,
            status,
            k.scopes,
            purposes,
            quota,
            date(k.expires_ms),
            date(k.revoked_ms)
        );
    }
    Ok(ExitCode::SUCCESS)
}
