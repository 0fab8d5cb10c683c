//! The accept loop, bounded: at most `server.max_connections` open (more are
//! closed at once, with a log line), accept errors back off instead of
//! spinning, and a connection with no open stream for
//! `server.idle_timeout` is closed (a silent TCP connection, a client that
//! sent only the HTTP/2 preface or half a request's headers, a pooled
//! connection nobody uses), and so is one whose peer takes nothing of an
//! answer for as long. The gRPC and the HTTP listener accept through
//! it with one shared count of connections.
use std::collections::HashMap;
use std::future::Future;
use std::io;
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use futures::Stream;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::{Instant, Sleep};
use tonic::transport::server::{Connected, TcpConnectInfo};
use tracing::{error, warn};

mod http;
pub use http::{Bounded, HttpServing, serve_http, track_http};

/// Longest pause after accept errors (out of descriptors, say).
const MAX_ACCEPT_BACKOFF: Duration = Duration::from_secs(1);
/// At most one "connection limit reached" line per this interval.
const LIMIT_LOG_EVERY: Duration = Duration::from_secs(10);

/// Limits of the accept loop; clones share the count of open connections.
#[derive(Debug, Clone)]
pub struct ConnectionLimits {
    pub max_connections: usize,
    pub idle_timeout: Duration,
    /// Open connections from one client address at most.
    pub per_address: usize,
    /// A connection that opens no call (stream, request) this long after it
    /// was accepted is closed: a silent socket holds a slot this long, not
    /// `idle_timeout`.
    pub first_call_within: Duration,
    slots: Arc<Semaphore>,
    addresses: Arc<Mutex<HashMap<IpAddr, usize>>>,
}

impl ConnectionLimits {
    /// No cap per address, and the idle timeout for the first call too.
    pub fn new(max_connections: usize, idle_timeout: Duration) -> Self {
        Self {
            max_connections,
            idle_timeout,
            per_address: max_connections,
            first_call_within: idle_timeout,
            slots: Arc::new(Semaphore::new(max_connections.max(1))),
            addresses: Arc::default(),
        }
    }

    /// At most `per_address` connections from one address, each closed
    /// unless it opens a call within `first_call_within`.
    pub fn per_client(mut self, per_address: usize, first_call_within: Duration) -> Self {
        self.per_address = per_address.max(1);
        self.first_call_within = first_call_within.min(self.idle_timeout);
        self
    }

    /// A slot for one more connection from `ip`, unless it has its share.
    fn address_slot(&self, ip: IpAddr) -> Option<AddressSlot> {
        let mut open = self.addresses.lock().unwrap_or_else(|p| p.into_inner());
        let count = open.entry(ip).or_default();
        if *count >= self.per_address {
            return None;
        }
        *count += 1;
        Some(AddressSlot {
            ip,
            addresses: self.addresses.clone(),
        })
    }
}

/// One connection's place in its address's count.
struct AddressSlot {
    ip: IpAddr,
    addresses: Arc<Mutex<HashMap<IpAddr, usize>>>,
}

impl Drop for AddressSlot {
    fn drop(&mut self) {
        let mut open = self.addresses.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(count) = open.get_mut(&self.ip) {
            *count -= 1;
            if *count == 0 {
                open.remove(&self.ip);
            }
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
        self.activity.called.store(true, Ordering::Release);
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
    /// Whether a call was ever opened on it.
    called: AtomicBool,
    /// How long it may stay without its first call.
    first_call_within: Duration,
}

impl Activity {
    fn new(first_call_within: Duration) -> Self {
        Self {
            base: Instant::now(),
            streams: AtomicUsize::new(0),
            last_closed_ms: AtomicU64::new(0),
            called: AtomicBool::new(false),
            first_call_within,
        }
    }

    /// When the connection turns idle-expired, or `None` while a stream is open.
    fn idle_deadline(&self, idle: Duration) -> Option<Instant> {
        if !self.called.load(Ordering::Acquire) {
            return Some(self.base + self.first_call_within.min(idle));
        }
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
    _address: AddressSlot,
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
        last_address_log: Option<Instant>,
    }
    let state = State {
        listener,
        slots,
        limits,
        backoff: Duration::ZERO,
        last_limit_log: None,
        last_address_log: None,
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
            let Some(address) = s.limits.address_slot(peer.ip()) else {
                metrics::counter!("enrichd_connections_refused_total").increment(1);
                if s.last_address_log
                    .is_none_or(|t| t.elapsed() >= LIMIT_LOG_EVERY)
                {
                    s.last_address_log = Some(Instant::now());
                    warn!(
                        peer = %peer.ip(),
                        max_connections_per_address = s.limits.per_address,
                        "server.max_connections_per_address reached: closing this address's \
                         new connections until some close"
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
                activity: Arc::new(Activity::new(s.limits.first_call_within)),
            };
            metrics::gauge!("enrichd_connections_open").increment(1);
            let conn = Conn {
                io,
                info,
                idle: s.limits.idle_timeout,
                timer: Box::pin(tokio::time::sleep(s.limits.first_call_within)),
                stalled: None,
                _slot: slot,
                _address: address,
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
