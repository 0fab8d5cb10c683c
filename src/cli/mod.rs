//! The command line: `serve`, `enrich`, `batch`, `erase`, `access`,
//! `purposes`, `health`, `sources check` and `sources import`. Commands
//! that call the service run it in process, or call a running server with
//! `--remote`; both go through one `Target`.
mod args;
mod batch;
mod keys;
mod output;
mod remote;
mod sources;

use std::process::ExitCode;

use anyhow::Context;

pub use args::Cli;
use args::{
    AccessArgs, Command, ConfigArg, EnrichArgs, EraseArgs, HealthArgs, IdentifierArgs, ServeArgs,
    SourcesCommand,
};

use crate::api::basis_to_proto;
use crate::config::Config;
use crate::proto::v1 as pb;
use crate::server::{self, Application};
use crate::{startup, telemetry};
use batch::batch;
use output::print_result;
use remote::{Target, as_cli, endpoint};

impl Cli {
    /// Whether the command runs for long (a server, a batch) rather than
    /// making one burst of work and exiting.
    pub fn runs_for_long(&self) -> bool {
        matches!(self.command, Command::Serve(_) | Command::Batch(_))
    }

    pub async fn run(self) -> anyhow::Result<ExitCode> {
        match self.command {
            Command::Serve(args) => serve(args).await,
            Command::Enrich(args) => enrich(args).await,
            Command::Purposes(args) => purposes(args),
            Command::Health(args) => health(args).await,
            Command::Sources(SourcesCommand::Check(args)) => sources::check(args).await,
            Command::Sources(SourcesCommand::Import(args)) => sources::import(args),
            Command::Erase(args) => erase(args).await,
            Command::Access(args) => access(args).await,
            Command::Batch(args) => batch(args).await,
            Command::Keys(command) => keys::run(command).await,
            Command::Ledger(args::LedgerCommand::Backup(args)) => backup(args).await,
        }
    }
}

fn load_config(arg: &ConfigArg) -> anyhow::Result<Config> {
    Ok(Config::load_with(
        config_file(arg).as_deref(),
        arg.data_dir.as_deref(),
    )?)
}

/// The config file named, or the first of the default places that exists.
fn config_file(arg: &ConfigArg) -> Option<std::path::PathBuf> {
    arg.config.clone().or_else(Config::default_file)
}

async fn serve(args: ServeArgs) -> anyhow::Result<ExitCode> {
    let mut config = load_config(&args.config)?;
    if let Some(listen) = args.listen {
        config.server.listen = listen;
    }
    if let Some(metrics) = args.metrics_listen {
        config.server.metrics_listen = Some(metrics);
    }
    if let Some(http) = args.http_listen {
        config.server.http_listen = Some(http);
    }
    telemetry::init_tracing(&config.log);
    let loopback = std::iter::once(config.server.listen)
        .chain(config.server.http_listen)
        .all(|a| a.ip().is_loopback());
    // The sandbox on loopback takes calls without a key, unless the
    // operator asks for keys (`auth.required = true` in their config file or
    // ENRICHD__AUTH__REQUIRED), to rehearse key handling against it.
    let file = config_file(&args.config);
    tracing::info!(
        config = %file.as_ref().map_or_else(|| "(shipped defaults)".to_owned(), |f| f.display().to_string()),
        "config"
    );
    let keys_asked = Config::operator_sets(file.as_deref(), "auth.required");
    if args.sandbox && loopback && config.auth.required && !keys_asked {
        tracing::warn!(
            "sandbox on loopback: callers need no API key (set auth.required = true to require them)"
        );
        config.auth.required = false;
    }
    // Where state lives, at every start.
    startup::prepare_data_dir(&config)?;
    let (catalog, _sandbox) = startup::catalog(&mut config, args.sandbox).await?;
    // A start that is refused leaves nothing behind: a key file created for
    // it goes again (a later start with the right settings makes its own).
    let new_key_file = Some(config.privacy.hash_key_file.clone())
        .filter(|path| config.privacy.hash_key.is_none() && !path.exists());
    let hasher = startup::hasher(&config)?;
    let app = match Application::build(config, hasher, catalog).await {
        Ok(app) => app,
        Err(refused) => {
            if let Some(path) = new_key_file {
                let _ = std::fs::remove_file(path);
            }
            return Err(refused.into());
        }
    };
    app.run_until_stopped(server::shutdown_signal()).await?;
    Ok(ExitCode::SUCCESS)
}

/// The identifier flags as (email, phone); clap requires exactly one.
fn identifier(args: &IdentifierArgs) -> (Option<String>, Option<String>) {
    (args.email.clone(), args.phone.clone())
}

impl args::ClaimArgs {
    /// The claim's fields of a request.
    fn fill(&self, request: &mut pb::EnrichRequest) {
        let text = |r: &Option<String>| r.clone().unwrap_or_default();
        request.purpose = self.purpose.clone();
        request.lawful_basis = basis_to_proto(self.basis).into();
        request.evidence = Some(pb::BasisEvidence {
            consent_ref: text(&self.consent_ref),
            legitimate_interest_assessment_ref: text(&self.lia_ref),
            contract_ref: text(&self.contract_ref),
        });
    }
}

fn enrich_request(args: &EnrichArgs) -> pb::EnrichRequest {
    use pb::enrich_request::Identifier;
    let identifier = match identifier(&args.identifier) {
        (Some(email), _) => Some(Identifier::Email(email)),
        (None, phone) => phone.map(Identifier::Phone),
    };
    let mut request = pb::EnrichRequest {
        request_id: args.request_id.clone(),
        identifier,
        hints: Some(pb::Hints {
            name: args.name.clone().unwrap_or_default(),
            default_region: args.region.clone().unwrap_or_default(),
            first_contact_at: None,
        }),
        options: Some(pb::EnrichOptions {
            view: match args.view {
                args::View::Summary => pb::View::Summary,
                args::View::Standard => pb::View::Standard,
                args::View::Full => pb::View::Full,
            }
            .into(),
            ..Default::default()
        }),
        ..Default::default()
    };
    args.claim.fill(&mut request);
    request
}

async fn enrich(args: EnrichArgs) -> anyhow::Result<ExitCode> {
    let config = load_config(&args.config)?;
    quiet_logs(&config);
    let mut target = Target::open(&args.remote, &config, args.sandbox).await?;
    print_result(target.client.enrich(as_cli(enrich_request(&args))).await)
}

async fn health(args: HealthArgs) -> anyhow::Result<ExitCode> {
    use tonic_health::pb::health_check_response::ServingStatus;
    use tonic_health::pb::{HealthCheckRequest, health_client::HealthClient};
    let endpoint = endpoint(&args.addr);
    let channel = tonic::transport::Endpoint::from_shared(endpoint.clone())?
        .connect()
        .await
        .with_context(|| format!("cannot connect to {endpoint}"))?;
    let mut client = HealthClient::new(channel);
    let status = client
        .check(HealthCheckRequest {
            service: args.service,
        })
        .await?
        .into_inner()
        .status();
    println!("{}", status.as_str_name());
    Ok(if status == ServingStatus::Serving {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

async fn erase(args: EraseArgs) -> anyhow::Result<ExitCode> {
    use pb::erase_request::{Identifier, Kind};
    let s = &args.subject;
    let config = load_config(&s.config)?;
    quiet_logs(&config);
    let request = pb::EraseRequest {
        identifier: match identifier(&s.identifier) {
            (Some(e), _) => Some(Identifier::Email(e)),
            (None, p) => p.map(Identifier::Phone),
        },
        default_region: s.region.clone().unwrap_or_default(),
        kind: if args.objection {
            Kind::ObjectionToMarketing
        } else {
            Kind::Erasure
        }
        .into(),
        reference: s.reference.clone(),
    };
    if s.remote.remote.is_none() {
        startup::existing_ledger(&config)?;
    }
    let mut target = Target::open(&s.remote, &config, false).await?;
    let done = print_result(target.client.erase(as_cli(request)).await)?;
    if s.remote.remote.is_none() && !args.objection && done == ExitCode::SUCCESS {
        // An answer that says `redactionPending` leaves the redaction going
        // on in this process: a one-shot command finishes it before it exits.
        crate::ledger::Ledger::open(&config.ledger.url)
            .await
            .with_context(|| "cannot open the ledger database (ledger.url)")?
            .finish_purges()
            .await?;
    }
    Ok(done)
}

async fn access(args: AccessArgs) -> anyhow::Result<ExitCode> {
    use pb::access_request::Identifier;
    let s = &args.subject;
    let config = load_config(&s.config)?;
    quiet_logs(&config);
    let request = pb::AccessRequest {
        identifier: match identifier(&s.identifier) {
            (Some(e), _) => Some(Identifier::Email(e)),
            (None, p) => p.map(Identifier::Phone),
        },
        default_region: s.region.clone().unwrap_or_default(),
        reference: s.reference.clone(),
        page_size: args.page_size,
        page_token: args.page_token.clone().unwrap_or_default(),
    };
    if s.remote.remote.is_none() {
        startup::existing_ledger(&config)?;
    }
    let mut target = Target::open(&s.remote, &config, false).await?;
    print_result(target.client.access(as_cli(request)).await)
}

async fn backup(args: args::BackupArgs) -> anyhow::Result<ExitCode> {
    let config = load_config(&args.config)?;
    let Some(_) = config.sqlite_path() else {
        eprintln!(
            "error: the ledger is not a SQLite file ({}); back a PostgreSQL ledger up with \
             pg_dump (e.g. `pg_dump --format=custom --file enrichd.dump DBNAME`)",
            if config.ledger.url.starts_with("postgres") {
                "PostgreSQL"
            } else {
                "in memory"
            }
        );
        return Ok(ExitCode::from(2));
    };
    startup::existing_ledger(&config)?;
    if args.file.exists() {
        anyhow::bail!("{} exists already; choose a new file", args.file.display());
    }
    let ledger = crate::ledger::Ledger::open(&config.ledger.url).await?;
    ledger.backup(&args.file).await?;
    println!("ledger copied to {}", args.file.display());
    Ok(ExitCode::SUCCESS)
}

/// One-shot commands keep stdout for the answer and stderr quiet unless asked.
fn quiet_logs(config: &Config) {
    let mut log = config.log.clone();
    if std::env::var_os("RUST_LOG").is_none() {
        log.filter = "warn".into();
    }
    telemetry::init_tracing(&log);
}

fn purposes(args: ConfigArg) -> anyhow::Result<ExitCode> {
    let config = load_config(&args)?;
    println!(
        "{:<18} {:<44} {:<10} DESCRIPTION",
        "PURPOSE", "LAWFUL BASES", "RETENTION"
    );
    for (id, p) in &config.purposes {
        let bases: Vec<&str> = p.lawful_bases.iter().map(|b| b.as_str()).collect();
        println!(
            "{:<18} {:<44} {:<10} {}",
            id,
            bases.join(","),
            format!("{}d", p.retention.as_secs() / 86_400),
            p.description
        );
    }
    Ok(ExitCode::SUCCESS)
}
