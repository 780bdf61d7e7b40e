//! `Expect: 100-continue` on requests whose body is empty.
//!
//! hyper sends `100 Continue` when the service first reads the body, and never for a request
//! whose body is empty (`Content-Length: 0`): RFC 9110 allows answering such a request with
//! the final response alone. botocore (the aws cli, boto3) sends `Expect: 100-continue` on
//! every PUT and UploadPart, empty ones included, and when the first answer it sees is a
//! final response it keeps that status line on the pooled connection: the *next* request on
//! it reads its real status line as a header, loses every header (the ETag of an UploadPart)
//! and fails (boto/botocore#3755; issue 14). S3 itself always answers `100 Continue` first,
//! so the gateway does the same: the service marks the connection ([`ExpectService`]) and the
//! connection's writer ([`ContinueIo`]) puts `HTTP/1.1 100 Continue` in front of the response.
//!
//! HTTP/1.1 answers one request at a time on a connection (hyper's server does not overlap
//! them), so a per-connection flag set when the request arrives is consumed by exactly that
//! request's response.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll, ready};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

const CONTINUE: &[u8] = b"HTTP/1.1 100 Continue\r\n\r\n";

/// True when hyper will not send `100 Continue` for `req` although the client asked for it.
fn wants_continue_without_body<B: hyper::body::Body>(req: &http::Request<B>) -> bool {
    req.version() == http::Version::HTTP_11
        && req.body().is_end_stream()
        && req
            .headers()
            .get(http::header::EXPECT)
            .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"100-continue"))
}

/// Wraps a connection's service: marks requests that need the interim `100 Continue`.
#[derive(Clone)]
pub(crate) struct ExpectService<S> {
    pub(crate) inner: S,
    pub(crate) pending: Arc<AtomicBool>,
}

impl<S, B> hyper::service::Service<http::Request<B>> for ExpectService<S>
where
    S: hyper::service::Service<http::Request<B>>,
    B: hyper::body::Body,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = S::Future;

    fn call(&self, req: http::Request<B>) -> Self::Future {
        if wants_continue_without_body(&req) {
            self.pending.store(true, Ordering::Release);
        }
        self.inner.call(req)
    }
}

/// A connection that writes `100 Continue` before the next response when its service asked.
pub(crate) struct ContinueIo<T> {
    inner: T,
    pending: Arc<AtomicBool>,
    /// Bytes of [`CONTINUE`] written so far while one is being sent.
    writing: Option<usize>,
}

impl<T> ContinueIo<T> {
    pub(crate) fn new(inner: T, pending: Arc<AtomicBool>) -> Self {
        ContinueIo {
            inner,
            pending,
            writing: None,
        }
    }
}

impl<T: AsyncWrite + Unpin> ContinueIo<T> {
    /// Writes the pending `100 Continue`, if any, before anything else.
    fn poll_interim(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        if self.writing.is_none() && self.pending.swap(false, Ordering::AcqRel) {
            self.writing = Some(0);
        }
        while let Some(done) = self.writing {
            let n = ready!(Pin::new(&mut self.inner).poll_write(cx, &CONTINUE[done..]))?;
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            let done = done + n;
            self.writing = (done < CONTINUE.len()).then_some(done);
        }
        Poll::Ready(Ok(()))
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for ContinueIo<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for ContinueIo<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        ready!(self.poll_interim(cx))?;
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        ready!(self.poll_interim(cx))?;
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        ready!(self.poll_interim(cx))?;
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use tokio::io::AsyncWriteExt;

    /// A writer that takes at most 3 bytes per call, to exercise partial interim writes.
    struct Trickle(Vec<u8>);

    impl AsyncWrite for Trickle {
        fn poll_write(
            mut self: Pin<&mut Self>,
            _: &mut Context<'_>,
            buf: &[u8],
        ) -> Poll<io::Result<usize>> {
            let n = buf.len().min(3);
            self.0.extend_from_slice(&buf[..n]);
            Poll::Ready(Ok(n))
        }
        fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
            Poll::Ready(Ok(()))
        }
        fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
            Poll::Ready(Ok(()))
        }
    }

    #[tokio::test]
    async fn the_interim_answer_precedes_the_response_once() {
        let pending = Arc::new(AtomicBool::new(false));
        let mut io = ContinueIo::new(Trickle(Vec::new()), pending.clone());
        io.write_all(b"A").await.unwrap();
        pending.store(true, Ordering::Release);
        io.write_all(b"HTTP/1.1 200 OK\r\n\r\n").await.unwrap();
        io.write_all(b"B").await.unwrap();
        assert_eq!(
            io.inner.0,
            b"AHTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\n\r\nB".to_vec()
        );
    }

    #[test]
    fn only_bodiless_http11_requests_with_the_expectation_are_marked() {
        let req = |expect: Option<&str>, body: &'static str, v: http::Version| {
            let mut b = http::Request::builder()
                .method("PUT")
                .uri("/b/k")
                .version(v);
            if let Some(e) = expect {
                b = b.header("expect", e);
            }
            b.body(http_body_util::Full::new(bytes::Bytes::from_static(
                body.as_bytes(),
            )))
            .unwrap()
        };
        use http::Version as V;
        assert!(wants_continue_without_body(&req(
            Some("100-continue"),
            "",
            V::HTTP_11
        )));
        assert!(wants_continue_without_body(&req(
            Some("100-Continue"),
            "",
            V::HTTP_11
        )));
        // hyper answers these itself (non-empty body) or must not (no expectation, HTTP/1.0).
        assert!(!wants_continue_without_body(&req(
            Some("100-continue"),
            "x",
            V::HTTP_11
        )));
        assert!(!wants_continue_without_body(&req(None, "", V::HTTP_11)));
        assert!(!wants_continue_without_body(&req(
            Some("100-continue"),
            "",
            V::HTTP_10
        )));
    }
}
