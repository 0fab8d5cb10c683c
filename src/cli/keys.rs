//! `enrichd keys create | list | revoke`, on the configured ledger database.
use std::process::ExitCode;

use anyhow::Context;

use super::args::{KeyCreateArgs, KeysCommand, RotateHashArgs};
use super::load_config;
use crate::auth::keys::{Keys, NewKey, is_live};
use crate::clock::SharedClock;
use crate::config::Config;
use crate::ledger::Ledger;
use crate::privacy::{KeyedHasher, write_private};
use crate::startup;

pub(super) async fn run(command: KeysCommand) -> anyhow::Result<ExitCode> {
    match command {
        KeysCommand::Create(args) => create(args).await,
        KeysCommand::List(config) => list(&load_config(&config)?).await,
        KeysCommand::RotateHash(args) => rotate_hash(args).await,
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
    let now = crate::clock::SharedClock::system().utc().timestamp_millis();
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

/// `<key file>.next`: the rotated chain, written before the ledger moves to
/// it and renamed over the key file after, so a crash between the two
/// leaves both keys on disk and a rerun finishes the rotation.
fn next_path(key_file: &std::path::Path) -> std::path::PathBuf {
    let mut name = key_file.as_os_str().to_owned();
    name.push(".next");
    name.into()
}

async fn rotate_hash(args: RotateHashArgs) -> anyhow::Result<ExitCode> {
    let config = load_config(&args.config)?;
    startup::existing_ledger(&config)?;
    let inline = config.privacy.hash_key.is_some();
    if inline && args.out.is_none() {
        anyhow::bail!(
            "--out: privacy.hash_key is set inline, so the rotated key cannot be written back; \
             name a new file for it (--out FILE) and put its contents in privacy.hash_key"
        );
    }
    if !inline && args.out.is_some() {
        anyhow::bail!(
            "--out: the hash key lives in {} and is rewritten in place; drop --out",
            config.privacy.hash_key_file.display()
        );
    }
    let ledger = Ledger::open(&config.ledger.url)
        .await
        .with_context(|| "cannot open the ledger database (ledger.url)")?;
    let current = startup::hasher(&config)?;
    let key_file = &config.privacy.hash_key_file;
    let next = next_path(key_file);
    let stored = ledger.hash_key_fingerprint().await?;

    // A rotation that stopped between the ledger's commit and the rename.
    if !inline && next.exists() {
        let pending = KeyedHasher::parse_file(&std::fs::read_to_string(&next)?)
            .with_context(|| format!("{} is not a key file", next.display()))?;
        if stored.as_deref() == Some(pending.fingerprint().as_str()) {
            std::fs::rename(&next, key_file)?;
            println!(
                "finished an interrupted rotation: {} holds key generation {} (fingerprint {})",
                key_file.display(),
                pending.generation(),
                pending.fingerprint()
            );
            return Ok(ExitCode::SUCCESS);
        }
        std::fs::remove_file(&next)?;
    }
    if let Some(stored) = &stored
        && *stored != current.fingerprint()
    {
        return Err(crate::ledger::LedgerError::HashKeyChanged {
            stored: stored.clone(),
            given: current.fingerprint(),
        }
        .into());
    }

    // Before anything changes: no server may still be hashing with the old
    // key (checked again in the rotation's own transaction).
    let now_ms = || crate::clock::SharedClock::system().utc().timestamp_millis();
    let holders = ledger.holders(now_ms()).await?;
    if !holders.is_empty() {
        return Err(crate::ledger::LedgerError::Held(holders).into());
    }
    // First, so that a Redis that cannot be reached stops the rotation
    // before anything changed.
    let cleared = crate::cluster::cache::clear(&config.cluster)
        .await
        .context(
            "cluster.redis_url: cannot clear the shared cache, whose entries would outlive \
             the old key out of an erasure's reach; nothing was changed",
        )?;
    let rotated = current.rotated();
    match &args.out {
        Some(out) => write_private(out, &(rotated.inline_text() + "\n"), true)
            .with_context(|| format!("--out: cannot create {}", out.display()))?,
        None => write_private(&next, &rotated.file_text(), false)
            .with_context(|| format!("cannot write {}", next.display()))?,
    }
    let subjects = ledger
        .rekey(&current.fingerprint(), &rotated, now_ms())
        .await?;
    if args.out.is_none() {
        std::fs::rename(&next, key_file).with_context(|| {
            format!("cannot rename {} to {}", next.display(), key_file.display())
        })?;
    }
    ledger.checkpoint().await?;
    println!(
        "re-keyed {subjects} subject(s) in the ledger, the suppression list and batch job rows; \
         key generation {} (fingerprint {})",
        rotated.generation(),
        rotated.fingerprint()
    );
    if config.cluster.redis_url.is_some() {
        println!("removed {cleared} shared cache key(s) from Redis (entries and lineages)");
    }
    match &args.out {
        Some(out) => println!(
            "put the contents of {} in privacy.hash_key of every replica, then start them",
            out.display()
        ),
        None => println!(
            "{} holds the new key chain; start the servers",
            key_file.display()
        ),
    }
    Ok(ExitCode::SUCCESS)
}
