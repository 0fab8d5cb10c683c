//! The command line: `serve`, `enrich`, `purposes`.
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use clap::{Args, Parser, Subcommand};
use tonic::Request;
use tonic_types::StatusExt;

use crate::catalog::Catalog;
use crate::config::Config;
use crate::enrich::{Enricher, configured_catalog};
use crate::privacy::KeyedHasher;
use crate::proto::v1 as pb;
use crate::proto::v1::enrichment_server::Enrichment as _;
use crate::purpose::LawfulBasis;
use crate::sandbox::Sandbox;
use crate::server::{self, Application};
use crate::service::EnrichmentService;
use crate::{convert, telemetry};

#[derive(Parser)]
#[command(
    name = "enrichd",
    version,
    about = "Contact enrichment with provenance and GDPR flags"
)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the gRPC server.
    Serve(ServeArgs),
    /// Enrich one email address or phone number and print the answer as JSON.
    Enrich(EnrichArgs),
    /// Print the declared purposes (the record of processing activities).
    Purposes(ConfigArg),
    /// Ask a server's grpc.health.v1 service; exit 0 when SERVING (for
    /// container health checks).
    Health(HealthArgs),
    /// Work with source catalogs.
    #[command(subcommand)]
    Sources(SourcesCommand),
    /// GDPR Art. 17: erase what enrichd holds about a person and suppress
    /// them (or, with --objection, suppress them for marketing only).
    Erase(EraseArgs),
    /// GDPR Art. 15: print what enrichd holds about a person, as JSON.
    Access(AccessArgs),
    /// Enrich a customer list (CSV or JSONL) into JSONL, one line per row;
    /// resumable: run the same command again after a crash or Ctrl-C.
    Batch(BatchArgs),
}

#[derive(Args)]
struct BatchArgs {
    /// The list: CSV with a header row, or JSONL (by extension).
    #[arg(long)]
    input: PathBuf,
    /// Where the JSONL answers go (with .checkpoint and .summary.json beside it).
    #[arg(long)]
    output: PathBuf,
    /// Column (CSV) or field (JSONL) of the email; default: detected (email, e-mail, mail).
    #[arg(long)]
    email_column: Option<String>,
    /// Column or field of the phone number; default: detected (phone, mobile, tel).
    #[arg(long)]
    phone_column: Option<String>,
    /// Region for national phone numbers.
    #[arg(long)]
    region: Option<String>,
    #[arg(long)]
    purpose: String,
    #[arg(long, value_enum)]
    basis: LawfulBasis,
    #[arg(long)]
    consent_ref: Option<String>,
    #[arg(long)]
    lia_ref: Option<String>,
    #[arg(long)]
    contract_ref: Option<String>,
    /// Rows in progress at once (in process; a server applies its own
    /// batch.max_in_flight).
    #[arg(long, default_value_t = 32)]
    concurrency: usize,
    /// Send the rows to a running server's EnrichStream.
    #[arg(long)]
    remote: Option<String>,
    /// Use the sandbox sites (in process only).
    #[arg(long, conflicts_with = "remote")]
    sandbox: bool,
    #[command(flatten)]
    config: ConfigArg,
}

#[derive(Args)]
struct SubjectArgs {
    #[command(flatten)]
    identifier: IdentifierArgs,
    /// Region for national phone numbers (ISO 3166-1 alpha-2).
    #[arg(long)]
    region: Option<String>,
    /// Call a running server instead of working on the configured ledger
    /// in process (the in-process cache of a CLI run is empty).
    #[arg(long)]
    remote: Option<String>,
    #[command(flatten)]
    config: ConfigArg,
}

#[derive(Args)]
struct EraseArgs {
    #[command(flatten)]
    subject: SubjectArgs,
    /// Art. 21(3) objection to direct marketing instead of erasure.
    #[arg(long)]
    objection: bool,
    /// Reference of the data-subject request (ticket id), recorded.
    #[arg(long, default_value = "")]
    reference: String,
}

#[derive(Args)]
struct AccessArgs {
    #[command(flatten)]
    subject: SubjectArgs,
}

#[derive(Subcommand)]
enum SourcesCommand {
    /// Validate a catalog and print its sources (exit 1 on any problem).
    Check(CheckArgs),
    /// Convert a Maigret, Sherlock or WhatsMyName site list into a catalog file.
    Import(ImportArgs),
}

#[derive(Args)]
struct ImportArgs {
    /// The list's format.
    #[arg(long, value_enum)]
    format: crate::catalog::import::Format,
    /// The list (JSON), as published by the project.
    file: PathBuf,
    /// Where to write the catalog file (default: standard output).
    #[arg(long, short)]
    output: Option<PathBuf>,
    /// Purposes the imported sources may serve.
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "marketing,crm_enrichment"
    )]
    purposes: Vec<String>,
}

#[derive(Args)]
struct CheckArgs {
    /// Catalog directory; default: the configured one (or the built-in catalog).
    #[arg(long)]
    catalog: Option<PathBuf>,
    /// Check the sandbox catalog instead.
    #[arg(long, conflicts_with = "catalog")]
    sandbox: bool,
    #[command(flatten)]
    config: ConfigArg,
}

#[derive(Args)]
struct HealthArgs {
    /// Server address ("host:port" or "http://host:port").
    #[arg(long, default_value = "127.0.0.1:50051")]
    addr: String,
    /// Service to ask about; empty: the server as a whole.
    #[arg(long, default_value = "")]
    service: String,
}

#[derive(Args)]
struct ConfigArg {
    /// Config file (TOML); the shipped defaults apply without one.
    #[arg(long, env = "ENRICHD_CONFIG")]
    config: Option<PathBuf>,
}

#[derive(Args)]
struct ServeArgs {
    #[command(flatten)]
    config: ConfigArg,
    /// gRPC address; overrides server.listen.
    #[arg(long)]
    listen: Option<SocketAddr>,
    /// Prometheus metrics address; overrides server.metrics_listen.
    #[arg(long)]
    metrics_listen: Option<SocketAddr>,
    /// Serve the sandbox: fake sites on loopback and their catalog, instead
    /// of the real sources (see the README for the people it knows).
    #[arg(long)]
    sandbox: bool,
}

#[derive(Args)]
#[group(id = "identifier", required = true, multiple = false)]
struct IdentifierArgs {
    /// Email address to enrich.
    #[arg(long, group = "identifier")]
    email: Option<String>,
    /// Phone number to enrich (E.164, or national with --region).
    #[arg(long, group = "identifier")]
    phone: Option<String>,
}

#[derive(Args)]
struct EnrichArgs {
    #[command(flatten)]
    identifier: IdentifierArgs,
    /// Purpose id declared in the config (`enrichd purposes` lists them).
    #[arg(long)]
    purpose: String,
    /// Art. 6(1) lawful basis.
    #[arg(long, value_enum)]
    basis: LawfulBasis,
    /// Consent reference (required with --basis consent).
    #[arg(long)]
    consent_ref: Option<String>,
    /// Legitimate-interest assessment reference (required with --basis legitimate_interests).
    #[arg(long)]
    lia_ref: Option<String>,
    /// Contract reference (recorded with --basis contract).
    #[arg(long)]
    contract_ref: Option<String>,
    /// Region for national phone numbers (ISO 3166-1 alpha-2, e.g. GB).
    #[arg(long)]
    region: Option<String>,
    /// The person's name as you know it (compared with names found).
    #[arg(long)]
    name: Option<String>,
    /// Correlation id echoed in the answer.
    #[arg(long, default_value = "")]
    request_id: String,
    /// Call a running server ("host:port" or "http://host:port") instead of
    /// running the pipeline in this process.
    #[arg(long)]
    remote: Option<String>,
    /// Use the sandbox (fake sites on loopback) instead of the real sources.
    #[arg(long, conflicts_with = "remote")]
    sandbox: bool,
    #[command(flatten)]
    config: ConfigArg,
}

impl Cli {
    pub async fn run(self) -> anyhow::Result<ExitCode> {
        match self.command {
            Command::Serve(args) => serve(args).await,
            Command::Enrich(args) => enrich(args).await,
            Command::Purposes(args) => purposes(args),
            Command::Health(args) => health(args).await,
            Command::Sources(SourcesCommand::Check(args)) => sources_check(args).await,
            Command::Sources(SourcesCommand::Import(args)) => sources_import(args),
            Command::Erase(args) => erase(args).await,
            Command::Access(args) => access(args).await,
            Command::Batch(args) => batch(args).await,
        }
    }
}

fn load_config(arg: &ConfigArg) -> anyhow::Result<Config> {
    Ok(Config::load(arg.config.as_deref())?)
}

/// The configured hash key, or the key file's (created on first use, so
/// keyed hashes in the ledger and the suppression list stay stable).
fn hasher(config: &Config) -> anyhow::Result<KeyedHasher> {
    if let Some(key) = &config.privacy.hash_key {
        return Ok(KeyedHasher::new(key.as_bytes().to_vec()));
    }
    let path = &config.privacy.hash_key_file;
    let (hasher, created) = KeyedHasher::load_or_create(path)
        .with_context(|| format!("cannot read or create the hash key file {}", path.display()))?;
    if created {
        tracing::warn!(
            file = %path.display(),
            "privacy.hash_key is not set: created a key file; in production set \
             privacy.hash_key from a secret store so every replica shares it"
        );
    }
    Ok(hasher)
}

/// The catalog to run: the sandbox's (whose server must stay alive as long
/// as the catalog is used), or the configured one.
async fn catalog(config: &Config, sandbox: bool) -> anyhow::Result<(Catalog, Option<Sandbox>)> {
    if sandbox {
        let sb = Sandbox::start().await.context("cannot start the sandbox")?;
        let purposes = config.purpose_ids();
        tracing::info!(addr = %sb.addr(), "sandbox sites serving on loopback");
        Ok((sb.catalog(&purposes)?, Some(sb)))
    } else {
        Ok((configured_catalog(config)?, None))
    }
}

async fn serve(args: ServeArgs) -> anyhow::Result<ExitCode> {
    let mut config = load_config(&args.config)?;
    if let Some(listen) = args.listen {
        config.server.listen = listen;
    }
    if let Some(metrics) = args.metrics_listen {
        config.server.metrics_listen = Some(metrics);
    }
    telemetry::init_tracing(&config.log);
    let (catalog, _sandbox) = catalog(&config, args.sandbox).await?;
    let hasher = hasher(&config)?;
    let app = Application::build(config, hasher, catalog).await?;
    app.run_until_stopped(server::shutdown_signal()).await?;
    Ok(ExitCode::SUCCESS)
}

fn enrich_request(args: &EnrichArgs) -> pb::EnrichRequest {
    use pb::enrich_request::Identifier;
    let identifier = match (&args.identifier.email, &args.identifier.phone) {
        (Some(email), _) => Identifier::Email(email.clone()),
        (None, Some(phone)) => Identifier::Phone(phone.clone()),
        (None, None) => unreachable!("clap requires one identifier"),
    };
    pb::EnrichRequest {
        request_id: args.request_id.clone(),
        identifier: Some(identifier),
        hints: Some(pb::Hints {
            name: args.name.clone().unwrap_or_default(),
            default_region: args.region.clone().unwrap_or_default(),
            first_contact_at: None,
        }),
        purpose: args.purpose.clone(),
        lawful_basis: convert::lawful_basis_to_proto(args.basis).into(),
        evidence: Some(pb::BasisEvidence {
            consent_ref: args.consent_ref.clone().unwrap_or_default(),
            legitimate_interest_assessment_ref: args.lia_ref.clone().unwrap_or_default(),
            contract_ref: args.contract_ref.clone().unwrap_or_default(),
        }),
        ..Default::default()
    }
}

async fn enrich(args: EnrichArgs) -> anyhow::Result<ExitCode> {
    let config = load_config(&args.config)?;
    quiet_logs(&config);
    let mut request = Request::new(enrich_request(&args));
    request.metadata_mut().insert(
        "x-caller",
        tonic::metadata::MetadataValue::from_static("cli"),
    );
    let result = match &args.remote {
        Some(addr) => remote_client(addr).await?.enrich(request).await,
        None => {
            let (service, _sandbox) = local_service(&config, args.sandbox).await?;
            service.enrich(request).await
        }
    };
    print_result(result)
}

/// "host:port" or a full URI.
fn endpoint(addr: &str) -> String {
    if addr.contains("://") {
        addr.to_owned()
    } else {
        format!("http://{addr}")
    }
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

async fn sources_check(args: CheckArgs) -> anyhow::Result<ExitCode> {
    let mut config = load_config(&args.config)?;
    if args.catalog.is_some() {
        config.sources.catalog = args.catalog;
    }
    let loaded = if args.sandbox {
        catalog(&config, true).await.map(|(c, _)| c)
    } else {
        configured_catalog(&config).map_err(Into::into)
    };
    let catalog = match loaded {
        Ok(c) => c,
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

/// A service for in-process commands: the configured catalog, ledger and keys.
async fn local_service(
    config: &Config,
    sandbox: bool,
) -> anyhow::Result<(EnrichmentService, Option<Sandbox>)> {
    let (catalog, sb) = catalog(config, sandbox).await?;
    let enricher = Enricher::build(config, hasher(config)?, catalog).await?;
    Ok((
        EnrichmentService::new(Arc::new(enricher), config.sources.deadline),
        sb,
    ))
}

async fn remote_client(
    addr: &str,
) -> anyhow::Result<pb::enrichment_client::EnrichmentClient<tonic::transport::Channel>> {
    let endpoint = endpoint(addr);
    pb::enrichment_client::EnrichmentClient::connect(endpoint.clone())
        .await
        .with_context(|| format!("cannot connect to {endpoint}"))
}

/// Prints an answer as JSON, or the error and its details.
fn print_result<T: serde::Serialize>(
    result: Result<tonic::Response<T>, tonic::Status>,
) -> anyhow::Result<ExitCode> {
    match result {
        Ok(response) => {
            let text = serde_json::to_string_pretty(response.get_ref())?;
            // A reader that stops early (`| head`) is not an error.
            use std::io::Write as _;
            match writeln!(std::io::stdout().lock(), "{text}") {
                Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => return Err(e.into()),
                _ => {}
            }
            Ok(ExitCode::SUCCESS)
        }
        Err(status) => {
            eprintln!(
                "error: {}: {}",
                telemetry::code_name(status.code()),
                status.message()
            );
            let details = status.get_error_details();
            if let Some(bad) = details.bad_request() {
                for v in &bad.field_violations {
                    eprintln!("  field {}: {}", v.field, v.description);
                }
            }
            if let Some(pre) = details.precondition_failure() {
                for v in &pre.violations {
                    eprintln!("  {} {}: {}", v.r#type, v.subject, v.description);
                }
            }
            Ok(ExitCode::from(match status.code() {
                tonic::Code::InvalidArgument | tonic::Code::FailedPrecondition => 2,
                _ => 1,
            }))
        }
    }
}

async fn erase(args: EraseArgs) -> anyhow::Result<ExitCode> {
    let s = &args.subject;
    let config = load_config(&s.config)?;
    quiet_logs(&config);
    let request = pb::EraseRequest {
        identifier: match (&s.identifier.email, &s.identifier.phone) {
            (Some(e), _) => Some(pb::erase_request::Identifier::Email(e.clone())),
            (None, Some(p)) => Some(pb::erase_request::Identifier::Phone(p.clone())),
            (None, None) => None,
        },
        default_region: s.region.clone().unwrap_or_default(),
        kind: if args.objection {
            pb::erase_request::Kind::ObjectionToMarketing
        } else {
            pb::erase_request::Kind::Erasure
        }
        .into(),
        reference: args.reference.clone(),
    };
    let result = match &s.remote {
        Some(addr) => remote_client(addr).await?.erase(request).await,
        None => {
            local_service(&config, false)
                .await?
                .0
                .erase(Request::new(request))
                .await
        }
    };
    print_result(result)
}

async fn access(args: AccessArgs) -> anyhow::Result<ExitCode> {
    let s = &args.subject;
    let config = load_config(&s.config)?;
    quiet_logs(&config);
    let request = pb::AccessRequest {
        identifier: match (&s.identifier.email, &s.identifier.phone) {
            (Some(e), _) => Some(pb::access_request::Identifier::Email(e.clone())),
            (None, Some(p)) => Some(pb::access_request::Identifier::Phone(p.clone())),
            (None, None) => None,
        },
        default_region: s.region.clone().unwrap_or_default(),
    };
    let result = match &s.remote {
        Some(addr) => remote_client(addr).await?.access(request).await,
        None => {
            local_service(&config, false)
                .await?
                .0
                .access(Request::new(request))
                .await
        }
    };
    print_result(result)
}

async fn batch(args: BatchArgs) -> anyhow::Result<ExitCode> {
    use futures::{FutureExt, StreamExt};
    let mut config = load_config(&args.config)?;
    config.batch.max_in_flight = args.concurrency.max(1);
    quiet_logs(&config);
    let run = crate::batch::Run {
        input: args.input.clone(),
        output: args.output.clone(),
        columns: crate::batch::Columns {
            email: args.email_column.clone(),
            phone: args.phone_column.clone(),
        },
        template: pb::EnrichRequest {
            purpose: args.purpose.clone(),
            lawful_basis: convert::lawful_basis_to_proto(args.basis).into(),
            evidence: Some(pb::BasisEvidence {
                consent_ref: args.consent_ref.clone().unwrap_or_default(),
                legitimate_interest_assessment_ref: args.lia_ref.clone().unwrap_or_default(),
                contract_ref: args.contract_ref.clone().unwrap_or_default(),
            }),
            hints: Some(pb::Hints {
                default_region: args.region.clone().unwrap_or_default(),
                ..Default::default()
            }),
            ..Default::default()
        },
    };
    let interrupt = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    let summary = match &args.remote {
        Some(addr) => {
            let mut client = remote_client(addr).await?;
            run.execute(
                move |requests| {
                    async move {
                        let mut request = Request::new(requests);
                        request.metadata_mut().insert(
                            "x-caller",
                            tonic::metadata::MetadataValue::from_static("cli"),
                        );
                        let answers = client.enrich_stream(request).await?.into_inner();
                        Ok(Box::pin(answers) as crate::batch::Answers)
                    }
                    .boxed_local()
                },
                interrupt,
            )
            .await?
        }
        None => {
            let (service, _sandbox) = local_service(&config, args.sandbox).await?;
            run.execute(
                move |requests| {
                    let answers = service.process_stream(requests.map(Ok), "cli".to_owned());
                    async move { Ok(Box::pin(answers) as crate::batch::Answers) }.boxed_local()
                },
                interrupt,
            )
            .await?
        }
    };
    eprint!("{}", summary.render());
    Ok(if summary.interrupted {
        ExitCode::from(130)
    } else {
        ExitCode::SUCCESS
    })
}

/// One-shot commands keep stdout for the answer and stderr quiet unless asked.
fn quiet_logs(config: &Config) {
    let mut log = config.log.clone();
    if std::env::var_os("RUST_LOG").is_none() {
        log.filter = "warn".into();
    }
    telemetry::init_tracing(&log);
}

fn sources_import(args: ImportArgs) -> anyhow::Result<ExitCode> {
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
