//! The gRPC server: Enrichment, health and reflection on one port, behind a
//! tower stack (request timeout from `grpc-timeout`, authentication,
//! admission with load shedding), over a bounded accept loop, with graceful
//! shutdown.
pub mod admission;
pub mod connections;
mod grpc;
mod health;
mod listeners;
mod metered;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tonic::codec::CompressionEncoding;

use tracing::{info, warn};

use crate::api::grpc::{EnrichmentServer, EnrichmentService, StreamLimits};
use crate::auth::keys::Keys;
use crate::auth::layer::{AuthLayer, Authenticator};
use crate::catalog::Catalog;
use crate::config::Config;
use crate::ledger::retention;
use crate::pipeline::{BuildError, Enricher, Settings};
use crate::privacy::KeyedHasher;
use crate::telemetry;

#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    /// (The cause is in the message, not the error's chain: printed with
    /// its chain, it said it twice.)
    #[error("cannot bind {addr} ({setting}): {cause}")]
    Bind {
        addr: SocketAddr,
        setting: &'static str,
        cause: std::io::Error,
    },
    #[error(transparent)]
    Build(#[from] BuildError),
    #[error("reflection service: {0}")]
    Reflection(#[from] tonic_reflection::server::Error),
    #[error("transport: {0}")]
    Transport(#[from] tonic::transport::Error),
    #[error("TLS: {0}")]
    Tls(tonic::transport::Error),
    #[error("cannot read {path}: {cause}")]
    TlsFile {
        path: std::path::PathBuf,
        cause: std::io::Error,
    },
    #[error("refusing to start: {0}")]
    Anonymous(String),
}

/// A bound, ready-to-run server. `build` does the I/O of start-up (binding,
/// loading lists, the resolver); `run_until_stopped` serves.
pub struct Application {
    listener: TcpListener,
    metrics_listener: Option<TcpListener>,
    http_listener: Option<TcpListener>,
    config: Config,
    service: EnrichmentService,
    enricher: Arc<Enricher>,
}

/// Connections a listener holds before they are accepted (as tokio's
/// `TcpListener::bind`).
pub(crate) const BACKLOG: u32 = 1024;

/// The server's addresses, bound (so an address taken refuses the start)
/// before anything else is made, and listened on only once the server is
/// built: a connection before that is refused, not held unanswered.
struct Bound {
    listener: Reserved,
    metrics: Option<Reserved>,
    http: Option<Reserved>,
}

/// An address bound and not yet listened on, with the setting that names it.
struct Reserved {
    socket: tokio::net::TcpSocket,
    addr: SocketAddr,
    setting: &'static str,
}

impl Reserved {
    fn bind(addr: SocketAddr, setting: &'static str) -> Result<Self, ServerError> {
        let fail = |cause| ServerError::Bind {
            addr,
            setting,
            cause,
        };
        let socket = if addr.is_ipv4() {
            tokio::net::TcpSocket::new_v4()
        } else {
            tokio::net::TcpSocket::new_v6()
        }
        .map_err(fail)?;
        // As `TcpListener::bind`: a restart need not wait out TIME_WAIT.
        #[cfg(unix)]
        socket.set_reuseaddr(true).map_err(fail)?;
        socket.bind(addr).map_err(fail)?;
        Ok(Self {
            socket,
            addr,
            setting,
        })
    }

    fn listen(
        self,
        how: impl FnOnce(tokio::net::TcpSocket) -> std::io::Result<TcpListener>,
    ) -> Result<TcpListener, ServerError> {
        let (addr, setting) = (self.addr, self.setting);
        how(self.socket).map_err(|cause| ServerError::Bind {
            addr,
            setting,
            cause,
        })
    }
}

impl Bound {
    fn bind(config: &Config) -> Result<Self, ServerError> {
        if let Some(problem) = config.anonymous_problem() {
            return Err(ServerError::Anonymous(problem));
        }
        let server = &config.server;
        Ok(Self {
            listener: Reserved::bind(server.listen, "server.listen, --listen")?,
            metrics: server
                .metrics_listen
                .map(|a| Reserved::bind(a, "server.metrics_listen, --metrics-listen"))
                .transpose()?,
            http: server
                .http_listen
                .map(|a| Reserved::bind(a, "server.http_listen, --http-listen"))
                .transpose()?,
        })
    }
}

impl Application {
    /// Builds the server around `catalog` (see `startup::catalog`).
    /// What can refuse the start (anonymous callers on a public address, an
    /// address taken) is tried before the ledger is opened: a refused start
    /// leaves no ledger bound to a key it made.
    pub async fn build(
        config: Config,
        hasher: KeyedHasher,
        catalog: Catalog,
    ) -> Result<Self, ServerError> {
        let bound = Bound::bind(&config)?;
        let settings = Settings::from_config(&config);
        let enricher = Arc::new(Enricher::build(settings, hasher, catalog).await?);
        Self::around(config, enricher, bound)
    }

    pub async fn with_enricher(
        config: Config,
        enricher: Arc<Enricher>,
    ) -> Result<Self, ServerError> {
        let bound = Bound::bind(&config)?;
        Self::around(config, enricher, bound)
    }

    fn around(config: Config, enricher: Arc<Enricher>, bound: Bound) -> Result<Self, ServerError> {
        let listen = |socket: tokio::net::TcpSocket| socket.listen(BACKLOG);
        let listener = bound.listener.listen(listen)?;
        let metrics_listener = bound
            .metrics
            .map(|m| m.listen(telemetry::listen_metrics))
            .transpose()?;
        let http_listener = bound.http.map(|h| h.listen(listen)).transpose()?;
        enricher.follow_standing();
        if !config.auth.required {
            warn!(
                listen = %config.server.listen,
                "auth.required = false: anyone who can reach this loopback address may call enrichd"
            );
        }
        let service = EnrichmentService::new(enricher.clone(), config.sources.deadline)
            .with_batch(config.batch.clone())
            .with_stream_limits(StreamLimits {
                idle: config.server.stream_idle_timeout,
                max_duration: config.server.stream_max_duration,
            });
        Ok(Self {
            listener,
            metrics_listener,
            http_listener,
            service,
            enricher,
            config,
        })
    }

    /// The gRPC address actually bound (useful with port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.listener
            .local_addr()
            .expect("a bound listener has an address")
    }

    /// The JSON-over-HTTP address actually bound, when served.
    pub fn http_addr(&self) -> Option<SocketAddr> {
        self.http_listener
            .as_ref()
            .and_then(|l| l.local_addr().ok())
    }

    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        self.metrics_listener
            .as_ref()
            .and_then(|l| l.local_addr().ok())
    }

    /// Serves until `shutdown` completes, then drains: health turns
    /// NOT_SERVING, new calls are refused, in-flight calls get
    /// `server.drain_timeout` to finish.
    pub async fn run_until_stopped(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Result<(), ServerError> {
        let server_cfg = &self.config.server;
        if let Some(listener) = self.metrics_listener {
            listeners::serve_metrics(listener, server_cfg.idle_timeout);
        }

        // No hash-key rotation while this server hashes with its key.
        let clock = self.enricher.clock().clone();
        let lease = self
            .enricher
            .ledger()
            .hold(&self.enricher.hasher().fingerprint(), move || {
                clock.utc().timestamp_millis()
            })
            .await
            .map_err(crate::pipeline::BuildError::from)?;

        // Retention: records past their purpose's retention are deleted.
        tokio::spawn(retention::sweep_every(
            self.enricher.ledger().clone(),
            self.enricher.clock().clone(),
            self.config.ledger.sweep_every,
        ));

        let (health, health_service) = tonic_health::server::health_reporter();
        health
            .set_serving::<EnrichmentServer<EnrichmentService>>()
            .await;
        let (stop_http, http_stopped) = tokio::sync::watch::channel(false);
        health::follow_ledger(health.clone(), self.enricher.ledger(), http_stopped.clone());
        if let Some(cluster) = self.enricher.cluster() {
            health::follow_cluster(health.clone(), cluster);
        }
        let (reflection_v1, reflection_v1alpha) = grpc::reflection()?;
        // Every unary call counted and timed, whichever door it came in by.
        let enrichment = tower::Layer::layer(
            &metered::MeteredLayer::default(),
            EnrichmentServer::new(self.service)
                .max_decoding_message_size(server_cfg.max_request_bytes)
                .accept_compressed(CompressionEncoding::Gzip)
                .send_compressed(CompressionEncoding::Gzip),
        );

        let admission = admission::AdmissionLayer::new(
            server_cfg.max_concurrent_requests,
            server_cfg.max_concurrent_per_caller,
            server_cfg.shed_retry_after,
        );
        // One count of connections for both listeners.
        let limits = connections::ConnectionLimits::new(
            descriptor_room(
                server_cfg.max_connections,
                self.config.http.max_requests_in_flight,
            ),
            server_cfg.idle_timeout,
        )
        .per_client(
            server_cfg.max_connections_per_address,
            server_cfg.first_call_within,
        );

        let keys = Keys::new(
            self.enricher.ledger().clone(),
            self.enricher.hasher(),
            self.enricher.clock().clone(),
        );
        let auth = AuthLayer::new(Authenticator::new(
            keys,
            self.config.auth.clone(),
            self.enricher.cluster().cloned(),
        ));
        let jobs = start_jobs(&self.enricher, &self.config, auth.authenticator()).await;

        let (drain_tx, drain_rx) = tokio::sync::oneshot::channel::<()>();
        let reporter = health.clone();
        let stopping = jobs.clone();
        let signal = async move {
            shutdown.await;
            // No job row starts from now on; those in flight finish.
            stopping.cancel();
            info!("shutdown requested: health NOT_SERVING, draining in-flight calls");
            let _ = stop_http.send(true);
            health::not_serving(&reporter).await;
            let _ = drain_tx.send(());
        };

        let addr = listeners::shown(self.listener.local_addr());
        info!(
            %addr,
            "enrichd serving gRPC (Enrichment, health, reflection)"
        );
        if let Some(listener) = self.http_listener {
            // The same stack as the gRPC port: caller, scopes, quotas, then
            // a concurrency slot from the same pool.
            let guarded = tower::ServiceBuilder::new()
                .layer(auth.clone())
                .layer(admission.clone())
                .service(enrichment.clone());
            let router = crate::api::http::router(
                crate::api::http::stack(guarded),
                crate::api::http::stack(health_service.clone()),
                server_cfg.max_request_bytes,
                server_cfg.request_timeout,
                crate::batch::http::Batches {
                    jobs: jobs.clone(),
                    auth: auth.authenticator(),
                    max_upload: self.config.batch.max_upload_bytes,
                    admit: {
                        let admission = admission.clone();
                        Arc::new(move |caller: &crate::auth::Caller| {
                            let held: Box<dyn std::any::Any + Send + Sync> =
                                Box::new(admission.admit(Some(caller))?);
                            Ok(held)
                        })
                    },
                }
                .router(),
                !self.config.auth.required,
            );
            let router = if self.config.console.enabled {
                let console = crate::console::router(crate::console::Parts {
                    api: router.clone(),
                    auth: auth.authenticator(),
                    config: self.config.console.clone(),
                    clock: self.enricher.clock().clone(),
                    purposes: self.config.purpose_ids(),
                    secure: server_cfg.tls.is_some(),
                    max_upload: self.config.batch.max_upload_bytes,
                    ledger: self.enricher.ledger().clone(),
                    retention: self
                        .config
                        .purposes
                        .iter()
                        .map(|(id, p)| (id.clone(), p.retention.as_secs() / 86_400))
                        .collect(),
                    cluster: self.enricher.cluster().cloned(),
                });
                crate::api::http::with_console(
                    router,
                    console,
                    !self.config.auth.required,
                    server_cfg.request_timeout,
                )
            } else {
                router
            };
            let serving = connections::HttpServing {
                headers_within: server_cfg.request_timeout,
                max_concurrent_streams: server_cfg.max_concurrent_streams,
                keepalive_interval: server_cfg.http2_keepalive_interval,
                keepalive_timeout: server_cfg.http2_keepalive_timeout,
            };
            listeners::serve_http(listener, router, limits.clone(), serving, http_stopped);
        }
        let serve = grpc::builder(server_cfg)?
            // Who calls is decided before a call takes a concurrency slot.
            .layer(
                tower::ServiceBuilder::new()
                    .map_request(admission::client_certificates)
                    .layer(auth)
                    .layer(admission),
            )
            .add_service(health_service)
            .add_service(reflection_v1)
            .add_service(reflection_v1alpha)
            .add_service(enrichment)
            // The listener is ours (bound in `build` for port 0): the accept
            // loop sets its own limits and turns Nagle off, or every answer
            // larger than a segment waits ~40 ms for a delayed ACK.
            .serve_with_incoming_shutdown(connections::incoming(self.listener, limits), signal);

        let drain_timeout: Duration = server_cfg.drain_timeout;
        tokio::select! {
            result = serve => result?,
            () = grpc::drain_expired(drain_rx, drain_timeout) => {
                warn!(?drain_timeout, "drain timeout reached; abandoning calls still in flight");
            }
        }
        jobs.stop(drain_timeout).await;
        // The ledger file alone is then a complete copy (no -wal needed).
        if let Err(e) = self.enricher.ledger().checkpoint().await {
            warn!(error = %e, "ledger checkpoint at shutdown failed");
        }
        lease.release().await;
        info!("enrichd stopped");
        Ok(())
    }
}

/// Descriptors each process keeps besides its connections and its requests
/// to sources in flight (ledger, DNS, idle pooled connections, logs).
const SPARE_DESCRIPTORS: u64 = 256;

/// `max_connections`, once the descriptor limit is raised to fit it, the
/// requests to sources in flight (`http.max_requests_in_flight`) and the
/// spare (soft up to hard); lowered, with a warning, when the hard limit is
/// too low.
fn descriptor_room(max_connections: usize, outbound: usize) -> usize {
    let spare = SPARE_DESCRIPTORS + outbound as u64;
    let wanted = max_connections as u64 + spare;
    let limit = match rlimit::increase_nofile_limit(wanted) {
        Ok(limit) => limit,
        Err(e) => {
            warn!(error = %e, "cannot read or raise the open-files limit");
            return max_connections;
        }
    };
    if limit >= wanted {
        return max_connections;
    }
    let fitted = limit.saturating_sub(spare).max(1) as usize;
    warn!(
        max_connections,
        open_files_limit = limit,
        using = fitted,
        "server.max_connections does not fit the open-files limit; using fewer"
    );
    fitted
}

/// Completes on SIGTERM or Ctrl-C.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        if let Err(e) = tokio::signal::ctrl_c().await {
            warn!(error = %e, "cannot listen for Ctrl-C");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(e) => {
                warn!(error = %e, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = term => {},
    }
}

/// Batch jobs over HTTP: those a previous run left unfinished go on, and
/// finished ones are swept after their retention.
async fn start_jobs(
    enricher: &Arc<Enricher>,
    config: &Config,
    auth: Arc<Authenticator>,
) -> Arc<crate::batch::jobs::Jobs> {
    let jobs = Arc::new(
        crate::batch::jobs::Jobs::new(
            EnrichmentService::new(enricher.clone(), config.sources.deadline)
                .with_batch(config.batch.clone()),
            enricher.clone(),
            config.batch.clone(),
        )
        .with_quotas(auth)
        .with_audience(config.audience.clone()),
    );
    jobs.resume().await;
    tokio::spawn(crate::batch::jobs::sweep_every(
        Arc::downgrade(&jobs),
        config.ledger.sweep_every,
    ));
    jobs
}
