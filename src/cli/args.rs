//! The command line's arguments (clap derive). Help texts are the
//! documentation users see first: each says what the flag is for.
use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

use crate::catalog::import::Format;
use crate::model::LawfulBasis;

#[derive(Parser)]
#[command(
    name = "enrichd",
    version,
    about = "Contact enrichment with provenance and GDPR flags"
)]
pub struct Cli {
    #[command(subcommand)]
    pub(super) command: Command,
}

#[derive(Subcommand)]
pub(super) enum Command {
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
    /// Manage the API keys callers authenticate with (in the ledger database).
    #[command(subcommand)]
    Keys(KeysCommand),
    /// Work with the ledger database.
    #[command(subcommand)]
    Ledger(LedgerCommand),
}

#[derive(Subcommand)]
pub(super) enum LedgerCommand {
    /// Write one self-contained, consistent copy of the SQLite ledger to
    /// FILE, while a server may be using it (for PostgreSQL, use pg_dump).
    Backup(BackupArgs),
}

#[derive(Args)]
pub(super) struct BackupArgs {
    /// Where the copy goes (must not exist yet).
    pub(super) file: PathBuf,
    #[command(flatten)]
    pub(super) config: ConfigArg,
}

/// Where a command sends its calls: a running server, or (without
/// --remote) the pipeline in this process, on the configured ledger.
#[derive(Args)]
pub(super) struct RemoteArgs {
    /// Call a running server ("host:port", "http://host:port" or
    /// "https://host:port") instead of working in this process.
    #[arg(long)]
    pub(super) remote: Option<String>,
    /// API key for --remote, sent as "authorization: Bearer <key>".
    #[arg(long, env = "ENRICHD_API_KEY", hide_env_values = true)]
    pub(super) api_key: Option<String>,
    /// CA certificate (PEM) to trust for an https:// --remote.
    #[arg(long)]
    pub(super) ca_cert: Option<PathBuf>,
    /// Client certificate (PEM) for mTLS with an https:// --remote.
    #[arg(long, requires = "client_key")]
    pub(super) client_cert: Option<PathBuf>,
    /// Key (PEM) of --client-cert.
    #[arg(long, requires = "client_cert")]
    pub(super) client_key: Option<PathBuf>,
}

#[derive(Subcommand)]
pub(super) enum KeysCommand {
    /// Create a key; its secret is printed once, alone on the last line.
    Create(KeyCreateArgs),
    /// List the keys (never their secrets).
    List(ConfigArg),
    /// Revoke the live keys of a name (or one of them, with --id).
    Revoke(KeyRevokeArgs),
    /// Rotate the hash key: add a new key to the chain and re-key every
    /// stored subject (ledger and suppression list) in one transaction.
    /// Stop every server sharing the ledger first.
    RotateHash(RotateHashArgs),
}

#[derive(Args)]
pub(super) struct RotateHashArgs {
    /// Where to write the new privacy.hash_key value when the key is set
    /// inline (a new file, mode 0600); not used with a key file, which is
    /// rewritten in place.
    #[arg(long)]
    pub(super) out: Option<PathBuf>,
    #[command(flatten)]
    pub(super) config: ConfigArg,
}

#[derive(Args)]
pub(super) struct KeyCreateArgs {
    /// Who the key is for ("crm-eu"); the ledger records it as the caller.
    #[arg(long)]
    pub(super) name: String,
    /// What it may call: enrich, stream, sources, access, erase, feedback,
    /// feedback_any, segments.
    #[arg(long, value_delimiter = ',', required = true)]
    pub(super) scopes: Vec<crate::auth::Scope>,
    /// Purposes it may enrich for (default: every declared purpose).
    #[arg(long, value_delimiter = ',')]
    pub(super) purposes: Vec<String>,
    /// Requests per second it may make ("5/s" or "5").
    #[arg(long)]
    pub(super) quota: Option<String>,
    /// How long until it expires ("90days", "12h").
    #[arg(long, value_parser = humantime::parse_duration)]
    pub(super) expires: Option<std::time::Duration>,
    #[command(flatten)]
    pub(super) config: ConfigArg,
}

#[derive(Args)]
pub(super) struct KeyRevokeArgs {
    /// The key's name.
    pub(super) name: String,
    /// Only this key id (`enrichd keys list` shows them).
    #[arg(long)]
    pub(super) id: Option<String>,
    #[command(flatten)]
    pub(super) config: ConfigArg,
}

#[derive(Args)]
pub(super) struct BatchArgs {
    /// The list: CSV with a header row, or JSONL (by extension).
    #[arg(long)]
    pub(super) input: PathBuf,
    /// Where the JSONL answers go (a .jsonl or .ndjson file, with
    /// .checkpoint and .summary.json beside it).
    #[arg(long, value_parser = with_extension(&["jsonl", "ndjson"], "answers are written as JSONL; for a spreadsheet add --csv FILE.csv"))]
    pub(super) output: PathBuf,
    /// Also write the answers' summary columns (name, location, avatar,
    /// interests, footprint, risk, verdict, validity) as CSV here (a .csv
    /// file), one line per row in row order, for spreadsheets.
    #[arg(long, value_parser = with_extension(&["csv"], "the table is written as CSV"))]
    pub(super) csv: Option<PathBuf>,
    /// The table's field delimiter: comma, semicolon or tab (default: the
    /// input list's own, a comma for JSONL).
    #[arg(long, requires = "csv", value_parser = delimiter)]
    pub(super) csv_delimiter: Option<u8>,
    /// Also write the list's audience report (JSON: shares, distributions,
    /// segments; no cell under `audience.k` people) here, for a purpose that
    /// declares audience analytics.
    #[arg(long, value_parser = with_extension(&["json"], "the report is written as JSON"))]
    pub(super) audience: Option<PathBuf>,
    /// Column (CSV) or field (JSONL) of the email; default: detected (email, e-mail, mail).
    #[arg(long)]
    pub(super) email_column: Option<String>,
    /// Column or field of the phone number; default: detected (phone, mobile, tel).
    #[arg(long)]
    pub(super) phone_column: Option<String>,
    /// Region for national phone numbers.
    #[arg(long)]
    pub(super) region: Option<String>,
    #[command(flatten)]
    pub(super) claim: ClaimArgs,
    /// Rows in progress at once (in process; a server applies its own
    /// batch.max_in_flight).
    #[arg(long, default_value_t = 32)]
    pub(super) concurrency: usize,
    #[command(flatten)]
    pub(super) remote: RemoteArgs,
    /// Use the sandbox sites (in process only).
    #[arg(long, conflicts_with = "remote")]
    pub(super) sandbox: bool,
    #[command(flatten)]
    pub(super) config: ConfigArg,
}

#[derive(Args)]
pub(super) struct SubjectArgs {
    #[command(flatten)]
    pub(super) identifier: IdentifierArgs,
    /// Region for national phone numbers (ISO 3166-1 alpha-2).
    #[arg(long)]
    pub(super) region: Option<String>,
    /// Reference of the data-subject request (ticket id), recorded in the ledger.
    #[arg(long, default_value = "")]
    pub(super) reference: String,
    #[command(flatten)]
    pub(super) remote: RemoteArgs,
    #[command(flatten)]
    pub(super) config: ConfigArg,
}

#[derive(Args)]
pub(super) struct EraseArgs {
    #[command(flatten)]
    pub(super) subject: SubjectArgs,
    /// Art. 21(3) objection to direct marketing instead of erasure.
    #[arg(long)]
    pub(super) objection: bool,
}

#[derive(Args)]
pub(super) struct AccessArgs {
    #[command(flatten)]
    pub(super) subject: SubjectArgs,
    /// Processing records per page, oldest first (at most 10000).
    #[arg(long, default_value_t = crate::rights::DEFAULT_PAGE_SIZE,
          value_parser = clap::value_parser!(u32).range(1..=i64::from(crate::rights::MAX_PAGE_SIZE)))]
    pub(super) page_size: u32,
    /// The nextPageToken of the previous page, for the page after it.
    #[arg(long, value_parser = page_token)]
    pub(super) page_token: Option<String>,
}

fn page_token(text: &str) -> Result<String, String> {
    crate::rights::PageToken::parse(text)
        .map(|_| text.to_owned())
        .ok_or_else(|| "not a nextPageToken of an earlier access answer".to_owned())
}

#[derive(Subcommand)]
pub(super) enum SourcesCommand {
    /// Validate a catalog and print its sources (exit 1 on any problem).
    Check(CheckArgs),
    /// Convert a Maigret, Sherlock or WhatsMyName site list into a catalog file.
    Import(ImportArgs),
}

#[derive(Args)]
pub(super) struct ImportArgs {
    /// The list's format.
    #[arg(long, value_parser = one_of(&Format::ALL, |f| f.name()))]
    pub(super) format: Format,
    /// The list (JSON), as published by the project.
    pub(super) file: PathBuf,
    /// Where to write the catalog file (default: standard output).
    #[arg(long, short)]
    pub(super) output: Option<PathBuf>,
    /// Purposes the imported sources may serve.
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "marketing,crm_enrichment"
    )]
    pub(super) purposes: Vec<String>,
}

#[derive(Args)]
pub(super) struct CheckArgs {
    /// Catalog directory; default: the configured one (or the built-in catalog).
    #[arg(long)]
    pub(super) catalog: Option<PathBuf>,
    /// Check the sandbox catalog instead.
    #[arg(long, conflicts_with = "catalog")]
    pub(super) sandbox: bool,
    /// Also ask every enabled source with its known accounts (known_present,
    /// known_absent) and report detections that no longer tell them apart
    /// (needs the internet; exit 1 on any).
    #[arg(long)]
    pub(super) live: bool,
    /// With --live: only sources whose id starts with this.
    #[arg(long, requires = "live")]
    pub(super) only: Option<String>,
    #[command(flatten)]
    pub(super) config: ConfigArg,
}

#[derive(Args)]
pub(super) struct HealthArgs {
    /// Server address ("host:port" or "http://host:port").
    #[arg(long, default_value = "127.0.0.1:50051")]
    pub(super) addr: String,
    /// Service to ask about; empty: the server as a whole.
    #[arg(long, default_value = "")]
    pub(super) service: String,
}

#[derive(Args)]
pub(super) struct ConfigArg {
    /// Config file (TOML); the shipped defaults apply without one.
    #[arg(long, env = "ENRICHD_CONFIG")]
    pub(super) config: Option<PathBuf>,
    /// Where the ledger and the hash key live (overrides storage.data_dir;
    /// default: the platform's data directory, e.g. ~/.local/share/enrichd).
    #[arg(long, env = "ENRICHD_DATA_DIR")]
    pub(super) data_dir: Option<PathBuf>,
}

#[derive(Args)]
pub(super) struct ServeArgs {
    #[command(flatten)]
    pub(super) config: ConfigArg,
    /// gRPC address; overrides server.listen.
    #[arg(long)]
    pub(super) listen: Option<SocketAddr>,
    /// Prometheus metrics address; overrides server.metrics_listen.
    #[arg(long)]
    pub(super) metrics_listen: Option<SocketAddr>,
    /// JSON-over-HTTP address (POST /v1/enrich ...); overrides server.http_listen.
    #[arg(long)]
    pub(super) http_listen: Option<SocketAddr>,
    /// Serve the sandbox: fake sites on loopback and their catalog, instead
    /// of the real sources (see the README for the people it knows).
    #[arg(long)]
    pub(super) sandbox: bool,
}

#[derive(Args)]
#[group(id = "identifier", required = true, multiple = false)]
pub(super) struct IdentifierArgs {
    /// The person's email address.
    #[arg(long, group = "identifier")]
    pub(super) email: Option<String>,
    /// The person's phone number (E.164, or national with --region).
    #[arg(long, group = "identifier")]
    pub(super) phone: Option<String>,
}

/// The purpose and the lawful basis a processing rests on, with its evidence.
#[derive(Args)]
pub(super) struct ClaimArgs {
    /// Purpose id declared in the config (`enrichd purposes` lists them).
    #[arg(long)]
    pub(super) purpose: String,
    /// Art. 6(1) lawful basis.
    #[arg(long, value_parser = one_of(&LawfulBasis::ALL, |b| b.as_str()))]
    pub(super) basis: LawfulBasis,
    /// Consent reference (required with --basis consent).
    #[arg(long)]
    pub(super) consent_ref: Option<String>,
    /// Legitimate-interest assessment reference (required with --basis legitimate_interests).
    #[arg(long)]
    pub(super) lia_ref: Option<String>,
    /// Contract reference (recorded with --basis contract).
    #[arg(long)]
    pub(super) contract_ref: Option<String>,
}

/// `--view`: EnrichOptions.view.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(super) enum View {
    Summary,
    Standard,
    Full,
}

#[derive(Args)]
pub(super) struct EnrichArgs {
    #[command(flatten)]
    pub(super) identifier: IdentifierArgs,
    #[command(flatten)]
    pub(super) claim: ClaimArgs,
    /// Region for national phone numbers (ISO 3166-1 alpha-2, e.g. GB).
    #[arg(long)]
    pub(super) region: Option<String>,
    /// The person's name as you know it (compared with names found).
    #[arg(long)]
    pub(super) name: Option<String>,
    /// Correlation id echoed in the answer.
    #[arg(long, default_value = "")]
    pub(super) request_id: String,
    /// How much to print: the summary alone, the answer without per-source
    /// outcomes, or everything.
    #[arg(long, value_enum, default_value_t = View::Full)]
    pub(super) view: View,
    #[command(flatten)]
    pub(super) remote: RemoteArgs,
    /// Use the sandbox (fake sites on loopback) instead of the real sources.
    #[arg(long, conflicts_with = "remote")]
    pub(super) sandbox: bool,
    #[command(flatten)]
    pub(super) config: ConfigArg,
}

/// A flag that takes one of `all`, by name (clap lists them in the help and
/// names them when the value is none of them).
fn one_of<T: Copy + Send + Sync + 'static>(
    all: &'static [T],
    name: fn(T) -> &'static str,
) -> impl clap::builder::TypedValueParser<Value = T> {
    use clap::builder::TypedValueParser;
    clap::builder::PossibleValuesParser::new(all.iter().map(|v| name(*v))).map(move |chosen| {
        *all.iter()
            .find(|v| name(**v) == chosen)
            .expect("clap let through one of the possible values")
    })
}

/// A table's delimiter by name (`--csv-delimiter`).
fn delimiter(text: &str) -> Result<u8, String> {
    crate::batch::table::delimiter_named(text)
        .ok_or_else(|| format!("{text:?} is not a delimiter: comma, semicolon or tab"))
}

/// A path whose extension is one of `allowed` (any case), or the reason it
/// is refused: a file named `.xlsx` that holds JSONL misleads whoever opens it.
fn with_extension(
    allowed: &'static [&'static str],
    why: &'static str,
) -> impl Fn(&str) -> Result<PathBuf, String> + Clone + Send + Sync + 'static {
    move |text: &str| {
        let path = PathBuf::from(text);
        let extension = path
            .extension()
            .and_then(|e| e.to_str())
            .map(str::to_ascii_lowercase);
        match extension {
            Some(e) if allowed.contains(&e.as_str()) => Ok(path),
            _ => Err(format!(
                "{why}: name a file ending in .{}",
                allowed.join(" or .")
            )),
        }
    }
}
