//! A probe's conversation stream, as lettre takes one: direct or through
//! the proxy, with what the exchanger may send bounded. lettre reads a
//! reply line by line and checks a line's length only once its end has
//! come, so an exchanger that sends one line without end would grow the
//! probe's buffer until the probe's timeout: here the stream itself ends
//! the conversation once the exchanger has sent more than a probe needs.
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, ReadBuf, Take};

/// What an exchanger may send in one conversation: its greeting, the EHLO
/// reply (a few hundred bytes from real servers), and four short replies.
pub(super) const MAX_RECEIVED: u64 = 64 * 1024;

pub(super) struct Conversation<S> {
    /// Read through tokio's `Take`, written to through it.
    stream: Take<S>,
    peer: SocketAddr,
}

impl<S: AsyncRead> Conversation<S> {
    pub(super) fn new(stream: S, peer: SocketAddr) -> Self {
        Self {
            stream: stream.take(MAX_RECEIVED),
            peer,
        }
    }
}

impl<S> std::fmt::Debug for Conversation<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Conversation({})", self.peer)
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Conversation<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        // Said as what it is, rather than as the end of the stream.
        if self.stream.limit() == 0 {
            return Poll::Ready(Err(io::Error::other(format!(
                "the exchanger sent more than {MAX_RECEIVED} bytes"
            ))));
        }
        Pin::new(&mut self.stream).poll_read(cx, buf)
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncWrite for Conversation<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(self.stream.get_mut()).poll_write(cx, data)
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(self.stream.get_mut()).poll_flush(cx)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(self.stream.get_mut()).poll_shutdown(cx)
    }
}

impl<S> lettre::transport::smtp::client::AsyncTokioStream for Conversation<S>
where
    S: AsyncRead + AsyncWrite + Send + Sync + Unpin,
{
    fn peer_addr(&self) -> io::Result<SocketAddr> {
        Ok(self.peer)
    }
}
