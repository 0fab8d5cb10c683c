//! The accept loop, bounded: at most `server.max_connections` open (more are
//! closed at once, with a log line), accept errors back off instead of
//! spinning, and a connection with no open stream for
//! `server.idle_timeout` is closed (a silent TCP connection, a client that
//! sent only the HTTP/2 preface or half a request's headers, a pooled
//! connection nobody uses), and so is one whose peer takes nothing of an
//! answer for as long. The gRPC and the HTTP listener accept through
//! it with one shared count of connections.
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use futures::Stream;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::{Instant, Sleep};
use tonic::transport::server::{Connected, TcpConnectInfo};
use tracing::{error, warn};

/// Longest pause after accept errors (out of descriptors, say).
const MAX_ACCEPT_BACKOFF: Duration = Duration::from_secs(1);
/// At most one "connection limit reached" line per this interval.
const LIMIT_LOG_EVERY: Duration = Duration::from_secs(10);

/// Limits of the accept loop; clones share the count of open connections.
#[derive(Debug, Clone)]
pub struct ConnectionLimits {
    pub max_connections: usize,
    pub idle_timeout: Duration,
    slots: Arc<Semaphore>,
}

impl ConnectionLimits {
    pub fn new(max_connections: usize, idle_timeout: Duration) -> Self {
        Self {
            max_connections,
            idle_timeout,
            slots: Arc::new(Semaphore::new(max_connections.max(1))),
        }
    }
}

/// What a connection's requests see of it: its TCP addresses, and the
/// count of its open streams that decides when it is idle.
#[derive(Clone, Debug)]
pub struct ConnInfo {
    pub tcp: TcpConnectInfo,
    activity: Arc<Activity>,
}

impl ConnInfo {
    /// Marks a stream open until the guard is dropped.
    pub fn open_stream(&self) -> StreamGuard {
        self.activity.streams.fetch_add(1, Ordering::AcqRel);
        StreamGuard(self.activity.clone())
    }
}

#[derive(Debug)]
struct Activity {
    base: Instant,
    streams: AtomicUsize,
    /// Milliseconds after `base` when the last stream closed.
    last_closed_ms: AtomicU64,
}

impl Activity {
    fn new() -> Self {
        Self {
            base: Instant::now(),
            streams: AtomicUsize::new(0),
            last_closed_ms: AtomicU64::new(0),
        }
    }

    /// When the connection turns idle-expired, or `None` while a stream is open.
    fn idle_deadline(&self, idle: Duration) -> Option<Instant> {
        (self.streams.load(Ordering::Acquire) == 0).then(|| {
            self.base + Duration::from_millis(self.last_closed_ms.load(Ordering::Acquire)) + idle
        })
    }
}

/// An open stream of a connection; dropping it closes the stream.
pub struct StreamGuard(Arc<Activity>);

impl Drop for StreamGuard {
    fn drop(&mut self) {
        let ms = self.0.base.elapsed().as_millis() as u64;
        self.0.last_closed_ms.fetch_max(ms, Ordering::AcqRel);
        self.0.streams.fetch_sub(1, Ordering::AcqRel);
    }
}

/// An accepted connection: closed when idle past the timeout; its slot of
/// `max_connections` is released when it is dropped.
pub struct Conn {
    io: TcpStream,
    info: ConnInfo,
    idle: Duration,
    timer: Pin<Box<Sleep>>,
    /// Armed while a write waits on a peer that takes nothing: a peer that
    /// reads nothing of an answer for `idle` is closed.
    stalled: Option<Pin<Box<Sleep>>>,
    _slot: OwnedSemaphorePermit,
}

impl Drop for Conn {
    fn drop(&mut self) {
        metrics::gauge!("enrichd_connections_open").decrement(1);
    }
}

impl Conn {
    /// Whether the idle timeout has passed; otherwise the timer is armed
    /// for the next moment it could.
    fn idle_expired(&mut self, cx: &mut Context<'_>) -> bool {
        loop {
            if self.timer.as_mut().poll(cx).is_pending() {
                return false;
            }
            let now = Instant::now();
            match self.info.activity.idle_deadline(self.idle) {
                Some(deadline) if deadline <= now => return true,
                Some(deadline) => self.timer.as_mut().reset(deadline),
                None => self.timer.as_mut().reset(now + self.idle),
            }
        }
    }
}

impl Conn {
    /// A write's outcome, with the stall timer kept: `Pending` for longer
    /// than the idle timeout is an error that closes the connection.
    fn written<T>(
        &mut self,
        cx: &mut Context<'_>,
        done: Poll<io::Result<T>>,
    ) -> Poll<io::Result<T>> {
        if done.is_ready() {
            self.stalled = None;
            return done;
        }
        let idle = self.idle;
        let stalled = self
            .stalled
            .get_or_insert_with(|| Box::pin(tokio::time::sleep(idle)));
        if stalled.as_mut().poll(cx).is_ready() {
            metrics::counter!("enrichd_connections_stalled_closed_total").increment(1);
            return Poll::Ready(Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "the peer took nothing of its answer for server.idle_timeout",
            )));
        }
        Poll::Pending
    }
}

impl Connected for Conn {
    type ConnectInfo = ConnInfo;

    fn connect_info(&self) -> ConnInfo {
        self.info.clone()
    }
}

impl AsyncRead for Conn {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        match Pin::new(&mut this.io).poll_read(cx, buf) {
            Poll::Pending if this.idle_expired(cx) => {
                metrics::counter!("enrichd_connections_idle_closed_total").increment(1);
                Poll::Ready(Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    "no open stream for server.idle_timeout",
                )))
            }
            other => other,
        }
    }
}

impl AsyncWrite for Conn {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let done = Pin::new(&mut this.io).poll_write(cx, buf);
        this.written(cx, done)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let done = Pin::new(&mut this.io).poll_flush(cx);
        this.written(cx, done)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let done = Pin::new(&mut this.io).poll_write_vectored(cx, bufs);
        this.written(cx, done)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }
}

/// The accepted connections of `listener`, within `limits`. Never yields an
/// error: accept errors are logged and retried after a growing pause.
pub fn incoming(
    listener: TcpListener,
    limits: ConnectionLimits,
) -> impl Stream<Item = Result<Conn, io::Error>> {
    let slots = limits.slots.clone();
    struct State {
        listener: TcpListener,
        slots: Arc<Semaphore>,
        limits: ConnectionLimits,
        backoff: Duration,
        last_limit_log: Option<Instant>,
    }
    let state = State {
        listener,
        slots,
        limits,
        backoff: Duration::ZERO,
        last_limit_log: None,
    };
    futures::stream::unfold(state, |mut s| async move {
        loop {
            let (io, peer) = match s.listener.accept().await {
                Ok(accepted) => {
                    s.backoff = Duration::ZERO;
                    accepted
                }
                Err(e) => {
                    s.backoff = (s.backoff * 2)
                        .max(Duration::from_millis(5))
                        .min(MAX_ACCEPT_BACKOFF);
                    error!(error = %e, pause = ?s.backoff, "accept failed; pausing");
                    metrics::counter!("enrichd_accept_errors_total").increment(1);
                    tokio::time::sleep(s.backoff).await;
                    continue;
                }
            };
            let Ok(slot) = s.slots.clone().try_acquire_owned() else {
                metrics::counter!("enrichd_connections_refused_total").increment(1);
                if s.last_limit_log
                    .is_none_or(|t| t.elapsed() >= LIMIT_LOG_EVERY)
                {
                    s.last_limit_log = Some(Instant::now());
                    warn!(
                        max_connections = s.limits.max_connections,
                        "server.max_connections reached: closing new connections until some close"
                    );
                }
                drop(io);
                continue;
            };
            if let Err(e) = io.set_nodelay(true) {
                warn!(error = %e, "cannot turn Nagle off on a connection");
            }
            let info = ConnInfo {
                tcp: TcpConnectInfo {
                    local_addr: io.local_addr().ok(),
                    remote_addr: Some(peer),
                },
                activity: Arc::new(Activity::new()),
            };
            metrics::gauge!("enrichd_connections_open").increment(1);
            let conn = Conn {
                io,
                info,
                idle: s.limits.idle_timeout,
                timer: Box::pin(tokio::time::sleep(s.limits.idle_timeout)),
                stalled: None,
                _slot: slot,
            };
            return Some((Ok(conn), s));
        }
    })
}

/// A response body that keeps its connection's stream open until dropped
/// (a response still being written is not idleness).
pub struct Tracked<B> {
    body: B,
    _guard: StreamGuard,
}

impl<B> Tracked<B> {
    pub fn new(body: B, guard: StreamGuard) -> Self {
        Self {
            body,
            _guard: guard,
        }
    }
}

impl<B: http_body::Body + Unpin> http_body::Body for Tracked<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Self::Data>, Self::Error>>> {
        Pin::new(&mut self.get_mut().body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.body.size_hint()
    }
}

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
            activity: Arc::new(Activity::new()),
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

#[cfg(test)]
mod tests {
    use super::*;
    use futures::StreamExt;
    use tokio::io::AsyncWriteExt;

    #[tokio::test]
    async fn a_peer_that_reads_nothing_of_an_answer_is_closed_after_the_idle_timeout() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let idle = Duration::from_millis(300);
        let mut accepted = Box::pin(incoming(listener, ConnectionLimits::new(4, idle)));
        // The peer connects and never reads.
        let _peer = TcpStream::connect(addr).await.unwrap();
        let mut conn = accepted.next().await.unwrap().unwrap();
        let answer = vec![b'x'; 64 << 20];
        let started = crate::clock::Stopwatch::start();
        let written = tokio::time::timeout(Duration::from_secs(20), conn.write_all(&answer))
            .await
            .expect("the write ends instead of waiting forever");
        let e = written.expect_err("the kernel's buffers cannot take 64 MiB");
        assert_eq!(e.kind(), io::ErrorKind::TimedOut, "{e}");
        assert!(started.elapsed() >= idle);
    }
}
