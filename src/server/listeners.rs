//! The HTTP listeners beside the gRPC port: Prometheus metrics, and the
//! JSON API, each over a bounded accept loop.
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::watch;
use tracing::{info, warn};

use super::connections;
use crate::telemetry;

/// Connections the metrics port keeps open at most: a scraper needs one or
/// two (they come out of the spare descriptors), and a flood there must not
/// take the descriptors the API needs.
const METRICS_CONNECTIONS: usize = 16;

/// Serves `/metrics` on `listener` (nothing when no recorder could be
/// installed).
pub(super) fn serve_metrics(listener: TcpListener, idle_timeout: Duration) {
    info!(addr = %shown(listener.local_addr()), "serving Prometheus metrics on /metrics");
    let limits = connections::ConnectionLimits::new(METRICS_CONNECTIONS, idle_timeout);
    match (
        telemetry::metrics_router(),
        connections::Bounded::new(listener, limits),
    ) {
        (Some(router), Ok(listener)) => {
            let router = router.layer(axum::middleware::from_fn(connections::track_http));
            tokio::spawn(async move {
                let app = router.into_make_service_with_connect_info::<connections::ConnInfo>();
                if let Err(e) = axum::serve(listener, app).await {
                    warn!(error = %e, "the metrics listener stopped");
                }
            });
        }
        (_, Err(e)) => warn!(error = %e, "the metrics listener stopped"),
        (None, _) => {}
    }
}

/// Serves the JSON API's `router` on `listener`, within the connection
/// `limits` the gRPC port shares, until `stopped` turns true.
pub(super) fn serve_http(
    listener: TcpListener,
    router: axum::Router,
    limits: connections::ConnectionLimits,
    serving: connections::HttpServing,
    mut stopped: watch::Receiver<bool>,
) {
    info!(addr = %shown(listener.local_addr()), "enrichd serving JSON over HTTP (/v1/..., /openapi.json)");
    tokio::spawn(async move {
        let until = async move {
            let _ = stopped.wait_for(|s| *s).await;
        };
        let router = router.layer(axum::middleware::from_fn(connections::track_http));
        let listener = match connections::Bounded::new(listener, limits) {
            Ok(listener) => listener,
            Err(e) => return warn!(error = %e, "the HTTP listener stopped"),
        };
        connections::serve_http(listener, router, serving, until).await;
    });
}

/// An address as a log line shows it: `127.0.0.1:8080`, not `Some(...)`.
pub(super) fn shown(addr: std::io::Result<std::net::SocketAddr>) -> String {
    addr.map_or_else(|e| format!("(unknown: {e})"), |a| a.to_string())
}
