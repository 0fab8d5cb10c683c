//! The HTTP listener's side of the bounded accept loop: its connections
//! as an axum listener, each request counted as a stream of its connection.
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use futures::Stream;
use tokio::net::TcpListener;
use tonic::transport::server::TcpConnectInfo;

use super::{Activity, Conn, ConnInfo, ConnectionLimits, Tracked, incoming};
/// The HTTP listener's connections, through the same bounded accept loop
/// as gRPC's (`axum::serve` takes it as a listener).
pub struct Bounded {
    incoming: Pin<Box<dyn Stream<Item = Result<Conn, io::Error>> + Send>>,
    local: ConnInfo,
}

impl Bounded {
    pub fn new(listener: TcpListener, limits: ConnectionLimits) -> io::Result<Self> {
        let local = ConnInfo {
            tcp: TcpConnectInfo {
                local_addr: Some(listener.local_addr()?),
                remote_addr: None,
            },
            activity: Arc::new(Activity::new(limits.first_call_within)),
        };
        Ok(Self {
            incoming: Box::pin(incoming(listener, limits)),
            local,
        })
    }
}

impl axum::serve::Listener for Bounded {
    type Io = Conn;
    type Addr = ConnInfo;

    async fn accept(&mut self) -> (Conn, ConnInfo) {
        use futures::StreamExt;
        loop {
            match self.incoming.next().await {
                Some(Ok(conn)) => {
                    let info = conn.info.clone();
                    return (conn, info);
                }
                // `incoming` yields no errors (it logs and retries them).
                Some(Err(_)) => continue,
                // Nor does it end; if it did, accept nothing rather than spin.
                None => std::future::pending::<()>().await,
            }
        }
    }

    fn local_addr(&self) -> io::Result<ConnInfo> {
        Ok(self.local.clone())
    }
}

impl axum::extract::connect_info::Connected<axum::serve::IncomingStream<'_, Bounded>> for ConnInfo {
    fn connect_info(stream: axum::serve::IncomingStream<'_, Bounded>) -> Self {
        stream.remote_addr().clone()
    }
}

/// Counts an HTTP request as an open stream of its connection until its
/// response body is dropped (axum middleware).
pub async fn track_http(
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    let guard = request
        .extensions()
        .get::<axum::extract::ConnectInfo<ConnInfo>>()
        .map(|c| c.0.open_stream());
    let response = next.run(request).await;
    match guard {
        Some(guard) => response.map(|body| axum::body::Body::new(Tracked::new(body, guard))),
        None => response,
    }
}

/// How the HTTP port serves each connection: hyper's protocols with the
/// gRPC port's HTTP/2 bounds, and a deadline for a request's headers.
#[derive(Debug, Clone, Copy)]
pub struct HttpServing {
    /// An HTTP/1 request's headers must arrive whole within this (hyper's
    /// `header_read_timeout`): a client trickling them is cut off.
    pub headers_within: Duration,
    pub max_concurrent_streams: u32,
    pub keepalive_interval: Duration,
    pub keepalive_timeout: Duration,
}

/// Serves `router` on the connections `listener` accepts until `until`
/// resolves, then lets each connection finish what it has in flight.
pub async fn serve_http(
    mut listener: Bounded,
    router: axum::Router,
    serving: HttpServing,
    until: impl Future<Output = ()>,
) {
    use axum::serve::Listener;
    use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
    use tower::ServiceExt;

    let mut builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(serving.headers_within);
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_concurrent_streams(serving.max_concurrent_streams)
        .keep_alive_interval(serving.keepalive_interval)
        .keep_alive_timeout(serving.keepalive_timeout);
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let mut until = std::pin::pin!(until);
    loop {
        let (io, info) = tokio::select! {
            accepted = listener.accept() => accepted,
            () = until.as_mut() => break,
        };
        // What `ConnectInfo` reads, as axum's own server provides it.
        let service = router.clone().map_request(
            move |mut request: axum::http::Request<hyper::body::Incoming>| {
                request
                    .extensions_mut()
                    .insert(axum::extract::ConnectInfo(info.clone()));
                request
            },
        );
        let service = hyper_util::service::TowerToHyperService::new(service);
        let connection = builder.serve_connection_with_upgrades(TokioIo::new(io), service);
        let connection = graceful.watch(connection.into_owned());
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::debug!(error = %e, "HTTP connection ended");
            }
        });
    }
    graceful.shutdown().await;
}
