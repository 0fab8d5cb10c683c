//! Logs and metrics. Log lines carry structured fields and never a raw
//! identifier (see `privacy::Pii`); metric labels are method names and status
//! codes, never request data.
use std::sync::OnceLock;

use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use tracing_subscriber::EnvFilter;

use serde::Serialize;

#[derive(Debug, Clone, Copy, Serialize, eserde::Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Clone, Serialize, eserde::Deserialize, PartialEq)]
pub struct LogConfig {
    pub format: LogFormat,
    pub filter: String,
}

pub const REQUESTS_TOTAL: &str = "enrichd_grpc_requests_total";
pub const REQUEST_DURATION: &str = "enrichd_grpc_request_duration_seconds";
pub const SHED_TOTAL: &str = "enrichd_grpc_shed_total";

/// Latency buckets (seconds): cache hits are sub-millisecond, cold calls are
/// bounded by the slowest source and the caller's deadline.
const BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];

/// Libraries that log the content they parse at debug and trace level (page
/// text, names, bios; the phone library the digits of the number it
/// parses): silenced whatever the filter says, because their lines would
/// carry personal data.
const CONTENT_LOGGERS: &[&str] = &["html5ever", "selectors", "markup5ever", "rlibphonenumber"];

/// The log filter: `RUST_LOG` or the configured directives, with the
/// content-logging libraries always off.
pub fn env_filter(configured: &str) -> EnvFilter {
    pii_safe(EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(configured)))
}

/// Turns the content-logging libraries off in `filter`.
pub fn pii_safe(mut filter: EnvFilter) -> EnvFilter {
    for target in CONTENT_LOGGERS {
        if let Ok(directive) = format!("{target}=off").parse() {
            filter = filter.add_directive(directive);
        }
    }
    filter
}

/// Installs the tracing subscriber. `RUST_LOG` overrides the configured filter.
/// Safe to call more than once (later calls are ignored).
pub fn init_tracing(config: &LogConfig) {
    let filter = env_filter(&config.filter);
    // Colour only for a person at a terminal: a log file or a collector
    // gets plain text.
    let terminal = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(terminal)
        .with_writer(std::io::stderr);
    let _ = match config.format {
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
        LogFormat::Text => builder.try_init(),
    };
}

static PROMETHEUS: OnceLock<Option<PrometheusHandle>> = OnceLock::new();

/// How often the recorder's histograms are drained between scrapes (the
/// exporter's own default when it runs its HTTP listener).
const UPKEEP_EVERY: std::time::Duration = std::time::Duration::from_secs(5);

/// The process-wide Prometheus recorder (installed on first use).
pub fn prometheus() -> Option<&'static PrometheusHandle> {
    let handle = PROMETHEUS
        .get_or_init(|| {
            PrometheusBuilder::new()
                .set_buckets(BUCKETS)
                .and_then(PrometheusBuilder::install_recorder)
                .map_err(|e| tracing::warn!(error = %e, "metrics recorder not installed"))
                .ok()
        })
        .as_ref()?;
    // `install_recorder` leaves upkeep to its caller: without it every
    // histogram sample is held until a scrape drains it, so a server that
    // nobody scrapes grows with every call (about 32 bytes a call).
    static UPKEEP: std::sync::Once = std::sync::Once::new();
    UPKEEP.call_once(|| {
        let spawned = std::thread::Builder::new()
            .name("metrics-upkeep".into())
            .spawn(move || {
                loop {
                    std::thread::sleep(UPKEEP_EVERY);
                    handle.run_upkeep();
                }
            });
        if let Err(e) = spawned {
            tracing::warn!(error = %e, "metrics upkeep not started: histograms drain only when scraped");
        }
    });
    Some(handle)
}

/// The recorder, if metrics are on (`server.metrics_listen`); never
/// installs it, so a server without metrics counts nothing on its hot path.
pub fn recording() -> Option<&'static PrometheusHandle> {
    PROMETHEUS.get().and_then(Option::as_ref)
}

/// The `GET /metrics` route, in the Prometheus text format (`None` when no
/// recorder could be installed).
pub fn metrics_router() -> Option<axum::Router> {
    let handle = prometheus()?;
    // The process's own figures (resident memory, open descriptors, CPU
    // seconds, threads), read at each scrape.
    let process = metrics_process::Collector::default();
    process.describe();
    Some(axum::Router::new().route(
        "/metrics",
        axum::routing::get(move || {
            process.collect();
            let body = handle.render();
            async move { body }
        }),
    ))
}

pub fn listen_metrics(socket: tokio::net::TcpSocket) -> std::io::Result<tokio::net::TcpListener> {
    // Make sure the recorder exists before the first call is counted.
    let _ = prometheus();
    socket.listen(crate::server::BACKLOG)
}

/// Records one finished call: a counter by method, caller and gRPC code, and
/// a latency histogram by method. The caller label is the name of a key or
/// certificate an operator created (bounded, never a secret, never a person).
pub fn record_call(
    method: &'static str,
    caller: &str,
    started: crate::clock::Stopwatch,
    code: tonic::Code,
) {
    call_counter(method, caller, code).increment(1);
    call_duration(method).record(started.elapsed().as_secs_f64());
}

/// The counter `record_call` counts a call in (a handle to keep: making it
/// looks it up in the recorder's registry).
pub fn call_counter(method: &'static str, caller: &str, code: tonic::Code) -> metrics::Counter {
    metrics::counter!(REQUESTS_TOTAL, "method" => method, "caller" => caller.to_owned(), "code" => code_name(code))
}

/// The histogram `record_call` times a call in.
pub fn call_duration(method: &'static str) -> metrics::Histogram {
    metrics::histogram!(REQUEST_DURATION, "method" => method)
}

pub fn record_shed() {
    metrics::counter!(SHED_TOTAL).increment(1);
}

/// Canonical upper-snake names of gRPC codes, as other gRPC tooling prints them.
pub fn code_name(code: tonic::Code) -> &'static str {
    use tonic::Code::*;
    match code {
        Ok => "OK",
        Cancelled => "CANCELLED",
        Unknown => "UNKNOWN",
        InvalidArgument => "INVALID_ARGUMENT",
        DeadlineExceeded => "DEADLINE_EXCEEDED",
        NotFound => "NOT_FOUND",
        AlreadyExists => "ALREADY_EXISTS",
        PermissionDenied => "PERMISSION_DENIED",
        ResourceExhausted => "RESOURCE_EXHAUSTED",
        FailedPrecondition => "FAILED_PRECONDITION",
        Aborted => "ABORTED",
        OutOfRange => "OUT_OF_RANGE",
        Unimplemented => "UNIMPLEMENTED",
        Internal => "INTERNAL",
        Unavailable => "UNAVAILABLE",
        DataLoss => "DATA_LOSS",
        Unauthenticated => "UNAUTHENTICATED",
    }
}
