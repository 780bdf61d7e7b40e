//! Lingering close: a refused request's answer reaches a client that is still sending.
//!
//! The gateway answers some requests before reading their body: a form POST without a
//! signature, a PUT over the size limit, a request refused by the guard. hyper then closes
//! the connection. If the client is still sending (curl uploading a 512 MiB file after
//! `100 Continue`), the unread bytes make the kernel answer with a reset, and a reset makes
//! the client's kernel drop what it had received but not yet read — the `403` itself: curl
//! reports the last status it saw, `100` (issue 14).
//!
//! RFC 9112 §9.6 says what to do: close the sending side first (the client sees the end of
//! the response), then keep reading and discarding for a while so the client can read the
//! answer and stop. [`LingerIo`] does this when hyper shuts the connection down: it sends
//! FIN, then discards what still arrives until the client closes, for at most [`LINGER`] and
//! [`LINGER_BYTES`]. A client that closes promptly (every normal close) ends it at once.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// The longest a closed connection keeps reading what its client still sends.
pub(crate) const LINGER: Duration = Duration::from_secs(2);
/// The most a closed connection discards before it gives up on its client.
pub(crate) const LINGER_BYTES: u64 = 256 * 1024 * 1024;

enum State {
    Open,
    Lingering {
        until: Pin<Box<tokio::time::Sleep>>,
        discarded: u64,
    },
    Closed,
}

/// A connection that lingers on shutdown (see the module docs).
pub(crate) struct LingerIo<T> {
    inner: T,
    state: State,
}

impl<T> LingerIo<T> {
    pub(crate) fn new(inner: T) -> Self {
        LingerIo {
            inner,
            state: State::Open,
        }
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for LingerIo<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<T: AsyncRead + AsyncWrite + Unpin> AsyncWrite for LingerIo<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = &mut *self;
        loop {
            match &mut this.state {
                State::Open => {
                    ready!(Pin::new(&mut this.inner).poll_shutdown(cx))?;
                    this.state = State::Lingering {
                        until: Box::pin(tokio::time::sleep(LINGER)),
                        discarded: 0,
                    };
                }
                State::Lingering { until, discarded } => {
                    if until.as_mut().poll(cx).is_ready() || *discarded > LINGER_BYTES {
                        this.state = State::Closed;
                        continue;
                    }
                    let mut scratch = [0u8; 16 * 1024];
                    let mut buf = ReadBuf::new(&mut scratch);
                    match Pin::new(&mut this.inner).poll_read(cx, &mut buf) {
                        Poll::Ready(Ok(())) if !buf.filled().is_empty() => {
                            *discarded += buf.filled().len() as u64;
                        }
                        // The client closed (or the connection broke): nothing to wait for.
                        Poll::Ready(_) => this.state = State::Closed,
                        Poll::Pending => return Poll::Pending,
                    }
                }
                State::Closed => return Poll::Ready(Ok(())),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[tokio::test]
    async fn shutdown_sends_the_end_then_reads_until_the_client_closes() {
        let (server, mut client) = tokio::io::duplex(1024);
        let mut io = LingerIo::new(server);
        io.write_all(b"HTTP/1.1 403 Forbidden\r\n\r\n")
            .await
            .unwrap();
        let closing = tokio::spawn(async move { io.shutdown().await });
        // The client still sends more than the pipe holds; the server keeps taking it.
        client.write_all(&[7u8; 64 * 1024]).await.unwrap();
        let mut answer = Vec::new();
        client.read_to_end(&mut answer).await.unwrap();
        assert_eq!(answer, b"HTTP/1.1 403 Forbidden\r\n\r\n");
        drop(client);
        tokio::time::timeout(Duration::from_millis(500), closing)
            .await
            .expect("a client that closes ends the linger at once")
            .unwrap()
            .unwrap();
    }

    #[tokio::test]
    async fn a_client_that_never_closes_is_given_up_on() {
        let (server, _client) = tokio::io::duplex(1024);
        let mut io = LingerIo::new(server);
        let t = std::time::Instant::now();
        io.shutdown().await.unwrap();
        assert!(t.elapsed() >= LINGER && t.elapsed() < LINGER * 2);
    }
}
