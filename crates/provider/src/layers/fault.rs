//! Fault injection for tests: wraps a provider and makes it misbehave on command — fail a share
//! of calls (transiently or permanently), add latency, hang, corrupt bytes on read, fail in the
//! middle of a stream, hang after taking a put's body, go dark and come back. Controlled at
//! run time through a shared [`Fault`].

use std::ops::Range;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use async_trait::async_trait;
use bytes::{Bytes, BytesMut};
use futures::StreamExt;

use crate::error::{ErrorKind, ProviderError, Result};
use crate::name::BlobName;
use crate::provider::{BlobMeta, ByteStream, Capabilities, ListPage, Provider, PutBody, PutMode};

/// What to inject. The default injects nothing.
#[derive(Debug, Clone, Default)]
pub struct Fault {
    /// Share of calls (0.0..=1.0) that fail with [`Fault::error_kind`] before reaching the
    /// provider.
    pub fail_rate: f64,
    /// The kind of the injected failures (default: `Unavailable`, which is retryable).
    pub error_kind: Option<ErrorKind>,
    /// Extra latency before every call.
    pub latency: Duration,
    /// Calls never complete (until the fault is lifted).
    pub hang: bool,
    /// Flip one bit in every chunk read.
    pub corrupt_reads: bool,
    /// Reads fail after their first chunk; puts fail after consuming their first chunk.
    pub fail_mid_stream: bool,
    /// Every call fails with `Unavailable`, as if the provider vanished.
    pub dark: bool,
    /// Extra delay before every piece of a read after the first (a slow stream).
    pub chunk_delay: Duration,
    /// Puts take their whole body and then never answer (until the fault is lifted, when
    /// they fail without storing it): a provider paused after its socket buffers took a
    /// small upload.
    pub hang_after_body: bool,
}

#[derive(Debug)]
struct State {
    fault: Fault,
    rng: fastrand::Rng,
    injected: u64,
    reads: u64,
}

/// A provider that misbehaves as told.
#[derive(Debug)]
pub struct FaultLayer {
    inner: Arc<dyn Provider>,
    state: Arc<Mutex<State>>,
}

impl FaultLayer {
    /// Wraps `inner`, injecting nothing yet; `seed` makes the random choices reproducible.
    pub fn new(inner: Arc<dyn Provider>, seed: u64) -> Self {
        FaultLayer {
            inner,
            state: Arc::new(Mutex::new(State {
                fault: Fault::default(),
                rng: fastrand::Rng::with_seed(seed),
                injected: 0,
                reads: 0,
            })),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Replaces the injected faults.
    pub fn set(&self, fault: Fault) {
        self.lock().fault = fault;
    }

    /// The provider vanishes: every call fails.
    pub fn go_dark(&self) {
        self.lock().fault.dark = true;
    }

    /// The provider comes back.
    pub fn come_back(&self) {
        self.lock().fault.dark = false;
    }

    /// Failures injected so far.
    pub fn injected(&self) -> u64 {
        self.lock().injected
    }

    /// How many reads (`get` calls) were started.
    pub fn reads(&self) -> u64 {
        self.lock().reads
    }

    fn err(
        &self,
        kind: ErrorKind,
        op: &'static str,
        blob: Option<&BlobName>,
        msg: &str,
    ) -> ProviderError {
        ProviderError::new(
            kind,
            self.inner.name(),
            op,
            blob.map(BlobName::as_str),
            format!("injected fault: {msg}"),
        )
    }

    /// Applies the call-level faults; returns the fault in force for stream-level ones.
    async fn before(&self, op: &'static str, blob: Option<&BlobName>) -> Result<Fault> {
        let (fault, fail) = {
            let mut s = self.lock();
            let fail = s.fault.dark || (s.fault.fail_rate > 0.0 && s.rng.f64() < s.fault.fail_rate);
            if fail {
                s.injected += 1;
            }
            (s.fault.clone(), fail)
        };
        if !fault.latency.is_zero() {
            tokio::time::sleep(fault.latency).await;
        }
        if fault.hang {
            loop {
                tokio::time::sleep(Duration::from_millis(20)).await;
                if !self.lock().fault.hang {
                    break;
                }
            }
        }
        if fault.dark {
            return Err(self.err(ErrorKind::Unavailable, op, blob, "provider is dark"));
        }
        if fail {
            let kind = fault.error_kind.unwrap_or(ErrorKind::Unavailable);
            return Err(self.err(kind, op, blob, "call failed"));
        }
        Ok(fault)
    }
}

fn flip_bit(b: Bytes, rng_bit: usize) -> Bytes {
    if b.is_empty() {
        return b;
    }
    let mut m = BytesMut::from(&b[..]);
    let bit = rng_bit % (m.len() * 8);
    m[bit / 8] ^= 1 << (bit % 8);
    m.freeze()
}

#[async_trait]
impl Provider for FaultLayer {
    fn name(&self) -> &str {
        self.inner.name()
    }
    fn capabilities(&self) -> Capabilities {
        self.inner.capabilities()
    }
    async fn put(&self, blob: &BlobName, body: PutBody, mode: PutMode) -> Result<BlobMeta> {
        let fault = self.before("put", Some(blob)).await?;
        if fault.fail_mid_stream {
            let err = self.err(
                ErrorKind::Unavailable,
                "put",
                Some(blob),
                "connection lost mid-upload",
            );
            let mut first = true;
            let mut err = Some(err);
            let body = body.into_stream().map(move |item| {
                if first {
                    first = false;
                    item
                } else {
                    match err.take() {
                        Some(e) => Err(e),
                        None => item,
                    }
                }
            });
            let res = self
                .inner
                .put(blob, PutBody::Stream(body.boxed()), mode)
                .await;
            self.lock().injected += 1;
            return res;
        }
        if fault.hang_after_body {
            let mut stream = body.into_stream();
            while let Some(item) = stream.next().await {
                item?;
            }
            while self.lock().fault.hang_after_body {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            self.lock().injected += 1;
            return Err(self.err(
                ErrorKind::Unavailable,
                "put",
                Some(blob),
                "hung after the body, then dropped it",
            ));
        }
        self.inner.put(blob, body, mode).await
    }
    async fn get(&self, blob: &BlobName, range: Option<Range<u64>>) -> Result<ByteStream> {
        self.lock().reads += 1;
        let fault = self.before("get", Some(blob)).await?;
        let mut stream = self.inner.get(blob, range).await?;
        if !fault.chunk_delay.is_zero() {
            let delay = fault.chunk_delay;
            let mut pieces = 0usize;
            stream = stream
                .then(move |item| {
                    pieces += 1;
                    let wait = pieces > 1;
                    async move {
                        if wait {
                            tokio::time::sleep(delay).await;
                        }
                        item
                    }
                })
                .boxed();
        }
        if !fault.corrupt_reads && !fault.fail_mid_stream {
            return Ok(stream);
        }
        let seed = self.lock().rng.usize(..);
        let mid_err = fault.fail_mid_stream.then(|| {
            self.err(
                ErrorKind::Unavailable,
                "get",
                Some(blob),
                "connection lost mid-download",
            )
        });
        let corrupt = fault.corrupt_reads;
        let mut sent = 0usize;
        let mut mid_err = mid_err;
        Ok(stream
            .map(move |item| {
                sent += 1;
                if sent > 1
                    && let Some(e) = mid_err.take()
                {
                    return Err(e);
                }
                match item {
                    Ok(b) if corrupt => Ok(flip_bit(b, seed.wrapping_add(sent))),
                    other => other,
                }
            })
            .boxed())
    }
    async fn head(&self, blob: &BlobName) -> Result<BlobMeta> {
        self.before("head", Some(blob)).await?;
        self.inner.head(blob).await
    }
    async fn delete(&self, blob: &BlobName) -> Result<()> {
        self.before("delete", Some(blob)).await?;
        self.inner.delete(blob).await
    }
    async fn list(
        &self,
        prefix: &str,
        start_after: Option<&BlobName>,
        limit: usize,
    ) -> Result<ListPage> {
        self.before("list", None).await?;
        self.inner.list(prefix, start_after, limit).await
    }
    async fn sweep_temp(&self, older_than: std::time::Duration) -> Result<u64> {
        self.inner.sweep_temp(older_than).await
    }
}
