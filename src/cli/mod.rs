//! The command line: `serve`, `enrich`, `batch`, `erase`, `access`,
//! `purposes`, `health`, `sources check` and `sources import`. Commands
//! that call the service run it in process, or call a running server with
//! `--remote`; both go through one `Target`.
mod args;
mod keys;
mod sources;

use std::process::ExitCode;

use anyhow::Context;
use tonic::{Request, Response, Status};
use tonic_types::StatusExt;
use tower::util::BoxCloneService;
use tower::{BoxError, ServiceExt};

pub use args::Cli;
use args::{
    AccessArgs, BatchArgs, Command, ConfigArg, EnrichArgs, EraseArgs, HealthArgs, IdentifierArgs,
    RemoteArgs, ServeArgs, SourcesCommand,
};

use crate::api::basis_to_proto;
use crate::api::grpc::EnrichmentServer;
use crate::auth::Caller;
use crate::config::Config;
use crate::proto::v1 as pb;
use crate::proto::v1::enrichment_client::EnrichmentClient;
use crate::sandbox::Sandbox;
use crate::server::{self, Application};
use crate::{startup, telemetry};

/// The caller name the CLI records in the ledger.
const CLI_CALLER: &str = "cli";

impl Cli {
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
        arg.config.as_deref(),
        arg.data_dir.as_deref(),
    )?)
}

/// A gRPC client of a running server, or of the service in this process
/// (through the same codec, so both paths behave alike).
type Client = EnrichmentClient<
    BoxCloneService<
        axum::http::Request<tonic::body::Body>,
        axum::http::Response<tonic::body::Body>,
        BoxError,
    >,
>;

/// Where a command's calls go: a running server, or the pipeline in this
/// process (with the sandbox kept alive while it is used).
struct Target {
    client: Client,
    _sandbox: Option<Sandbox>,
}

impl Target {
    async fn open(remote: &RemoteArgs, config: &Config, sandbox: bool) -> anyhow::Result<Self> {
        type HttpRequest = axum::http::Request<tonic::body::Body>;
        Ok(match &remote.remote {
            Some(addr) => {
                let channel = connect(addr, remote).await?;
                let bearer = match remote.api_key.as_deref().filter(|k| !k.trim().is_empty()) {
                    Some(key) => Some(
                        format!("Bearer {}", key.trim())
                            .parse::<axum::http::HeaderValue>()
                            .map_err(|_| anyhow::anyhow!("--api-key: not a valid header value"))?,
                    ),
                    None => None,
                };
                let service = channel
                    .map_request(move |mut request: HttpRequest| {
                        if let Some(bearer) = &bearer {
                            request
                                .headers_mut()
                                .insert(axum::http::header::AUTHORIZATION, bearer.clone());
                        }
                        request
                    })
                    .map_err(BoxError::from);
                Self {
                    client: EnrichmentClient::new(BoxCloneService::new(service)),
                    _sandbox: None,
                }
            }
            None => {
                // The operator's own command line, on the ledger it configures.
                let (service, sb) = startup::local_service(config, sandbox).await?;
                let server = ServiceExt::<HttpRequest>::map_request(
                    EnrichmentServer::new(service),
                    |mut request: HttpRequest| {
                        request.extensions_mut().insert(Caller::operator());
                        request
                    },
                )
                .map_err(BoxError::from);
                Self {
                    client: EnrichmentClient::new(BoxCloneService::new(server)),
                    _sandbox: sb,
                }
            }
        })
    }
}

/// A channel to `addr`, over TLS for https:// (trusting --ca-cert, with
/// --client-cert for mTLS).
async fn connect(addr: &str, remote: &RemoteArgs) -> anyhow::Result<tonic::transport::Channel> {
    let endpoint = endpoint(addr);
    let mut builder = tonic::transport::Endpoint::from_shared(endpoint.clone())?;
    if endpoint.starts_with("https://") {
        let read = |path: &std::path::Path| {
            std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))
        };
        let mut tls = tonic::transport::ClientTlsConfig::new();
        if let Some(ca) = &remote.ca_cert {
            tls = tls.ca_certificate(tonic::transport::Certificate::from_pem(read(ca)?));
        }
        if let (Some(cert), Some(key)) = (&remote.client_cert, &remote.client_key) {
            tls = tls.identity(tonic::transport::Identity::from_pem(
                read(cert)?,
                read(key)?,
            ));
        }
        builder = builder.tls_config(tls)?;
    }
    builder
        .connect()
        .await
        .with_context(|| format!("cannot connect to {endpoint}"))
}

/// A request that says it comes from the command line.
fn as_cli<T>(message: T) -> Request<T> {
    let mut request = Request::new(message);
    request.metadata_mut().insert(
        "x-caller",
        tonic::metadata::MetadataValue::from_static(CLI_CALLER),
    );
    request
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
    if args.sandbox && loopback && config.auth.required {
        tracing::warn!("sandbox on loopback: callers need no API key");
        config.auth.required = false;
    }
    let (catalog, _sandbox) = startup::catalog(&config, args.sandbox).await?;
    let hasher = startup::hasher(&config)?;
    let app = Application::build(config, hasher, catalog).await?;
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

/// Prints an answer as JSON, or the error and its details.
fn print_result<T: serde::Serialize>(
    result: Result<Response<T>, Status>,
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
            let fields: Vec<(String, String)> = details
                .bad_request()
                .map(|b| {
                    b.field_violations
                        .iter()
                        .map(|v| (v.field.clone(), v.description.clone()))
                        .collect()
                })
                .unwrap_or_default();
            let preconditions: Vec<(String, String, String)> = details
                .precondition_failure()
                .map(|p| {
                    p.violations
                        .iter()
                        .map(|v| (v.r#type.clone(), v.subject.clone(), v.description.clone()))
                        .collect()
                })
                .unwrap_or_default();
            print_violations(&fields, &preconditions);
            Ok(ExitCode::from(match status.code() {
                tonic::Code::InvalidArgument | tonic::Code::FailedPrecondition => 2,
                _ => 1,
            }))
        }
    }
}

/// A refusal's violations, each under the flag that fixes it.
fn print_violations(fields: &[(String, String)], preconditions: &[(String, String, String)]) {
    for (field, why) in fields {
        eprintln!("  {}: {why}", flag_of(field));
    }
    for (kind, subject, why) in preconditions {
        let flag = match kind.as_str() {
            "PURPOSE" => "--purpose".to_owned(),
            "LAWFUL_BASIS" | "LAWFUL_BASIS_REFUSED" => "--basis".to_owned(),
            _ => flag_of(subject),
        };
        eprintln!("  {flag}: {why}");
    }
}

/// The command-line flag that sets a request field, for errors a user of
/// the command line can act on (the field itself when no flag sets it).
fn flag_of(field: &str) -> String {
    let flag = match field.trim_start_matches("request.") {
        "email" => "--email",
        "phone" => "--phone",
        "purpose" => "--purpose",
        "lawful_basis" | "lawfulBasis" => "--basis",
        "evidence.consent_ref" | "evidence.consentRef" => "--consent-ref",
        "evidence.legitimate_interest_assessment_ref"
        | "evidence.legitimateInterestAssessmentRef" => "--lia-ref",
        "evidence.contract_ref" | "evidence.contractRef" => "--contract-ref",
        "hints.default_region" | "default_region" | "hints.defaultRegion" => "--region",
        "hints.name" => "--name",
        "request_id" => "--request-id",
        "reference" => "--reference",
        other => return other.to_owned(),
    };
    flag.to_owned()
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

async fn batch(args: BatchArgs) -> anyhow::Result<ExitCode> {
    use futures::FutureExt;
    let mut config = load_config(&args.config)?;
    config.batch.max_in_flight = args.concurrency.max(1);
    quiet_logs(&config);
    let mut template = pb::EnrichRequest {
        hints: Some(pb::Hints {
            default_region: args.region.clone().unwrap_or_default(),
            ..Default::default()
        }),
        ..Default::default()
    };
    args.claim.fill(&mut template);
    let run = crate::batch::Run {
        input: args.input.clone(),
        output: args.output.clone(),
        columns: crate::batch::Columns {
            email: args.email_column.clone(),
            phone: args.phone_column.clone(),
        },
        template,
        window: args.concurrency.max(1),
    };
    if args.remote.remote.is_none() && !args.sandbox {
        slow_budget_note(&config, &args)?;
    }
    let interrupt = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    let target = Target::open(&args.remote, &config, args.sandbox).await?;
    let mut client = target.client.clone();
    let executed = run
        .execute(
            move |requests| {
                async move {
                    let answers = client.enrich_stream(as_cli(requests)).await?.into_inner();
                    Ok(Box::pin(answers) as crate::batch::Answers)
                }
                .boxed_local()
            },
            interrupt,
        )
        .await;
    let summary = match executed {
        Ok(summary) => summary,
        Err(e) => match e.downcast::<crate::batch::RunRefused>() {
            Ok(refused) => {
                eprintln!("error: {refused}");
                print_violations(&refused.fields, &refused.preconditions);
                return Ok(ExitCode::from(2));
            }
            Err(e) => return Err(e),
        },
    };
    eprint!("{}", summary.render());
    if let Some(csv) = &args.csv {
        crate::batch::write_table(&args.output, csv)?;
        eprintln!("summary columns written to {}", csv.display());
    }
    Ok(if summary.interrupted {
        ExitCode::from(130)
    } else {
        ExitCode::SUCCESS
    })
}

/// Real sources allow a few requests a minute, not a second: before a run
/// on them, say how long its slowest budget makes it, at worst, so a
/// five-row list that takes minutes is no surprise.
fn slow_budget_note(config: &Config, args: &BatchArgs) -> anyhow::Result<()> {
    let catalog = startup::configured_catalog(config)?;
    let purpose = args.claim.purpose.as_str();
    let Some(slowest) = catalog
        .sources()
        .iter()
        .filter(|s| s.enabled() && s.purposes.iter().any(|p| p == purpose))
        .min_by(|a, b| {
            a.limits
                .rate_limit
                .per_second
                .total_cmp(&b.limits.rate_limit.per_second)
        })
    else {
        return Ok(());
    };
    let rows = crate::batch::read_rows(
        &args.input,
        crate::batch::Format::of(&args.input),
        &crate::batch::Columns {
            email: args.email_column.clone(),
            phone: args.phone_column.clone(),
        },
    )
    .map(|r| r.len())
    .unwrap_or(0);
    let rate = slowest.limits.rate_limit;
    let beyond = rows.saturating_sub(rate.burst as usize) as f64;
    let seconds = beyond / rate.per_second.max(f64::MIN_POSITIVE);
    if seconds >= 60.0 {
        eprintln!(
            "note: source {:?} allows {} requests/s (burst {}): {rows} rows may take up to {} \
             on the configured catalog (fewer when rows skip it or hit the cache); \
             --sandbox runs on local sites",
            slowest.id,
            rate.per_second,
            rate.burst,
            humantime::format_duration(std::time::Duration::from_secs(seconds.ceil() as u64))
        );
    }
    Ok(())
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
