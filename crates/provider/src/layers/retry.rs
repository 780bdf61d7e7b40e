//! Retry with exponential backoff and full jitter, for retryable errors only.
//!
//! Puts are retried only when their body is in memory ([`PutBody::Bytes`]); a streamed body
//! can be sent once, so its failure goes back to the caller (the engine resends the shard).
//! Reads are retried while opening; an error in the middle of a stream is returned.

use std::ops::Range;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;

use crate::error::Result;
use crate::name::BlobName;
use crate::provider::{BlobMeta, ByteStream, Capabilities, ListPage, Provider, PutBody, PutMode};

/// How often and how patiently to retry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Attempts in total, including the first.
    pub attempts: u32,
    /// Backoff before the first retry (doubled each time, then jittered).
    pub base: Duration,
    /// Upper bound of one backoff.
    pub max: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            attempts: 4,
            base: Duration::from_millis(50),
            max: Duration::from_secs(2),
        }
    }
}

impl RetryPolicy {
    fn backoff(&self, retry: u32) -> Duration {
        let exp = self
            .base
            .saturating_mul(1u32 << retry.min(16))
            .min(self.max);
        // Full jitter: uniform in [0, exp].
        exp.mul_f64(fastrand::f64())
    }
}

/// Retries retryable errors of the wrapped provider.
#[derive(Debug)]
pub struct Retry {
    inner: Arc<dyn Provider>,
    policy: RetryPolicy,
}

impl Retry {
    /// Wraps `inner`.
    pub fn new(inner: Arc<dyn Provider>, policy: RetryPolicy) -> Self {
        Retry { inner, policy }
    }

    async fn run<T, F, Fut>(&self, mut f: F) -> Result<T>
    where
        F: FnMut() -> Fut + Send,
        Fut: std::future::Future<Output = Result<T>> + Send,
        T: Send,
    {
        let mut attempt = 0;
        loop {
            match f().await {
                Err(e) if e.is_retryable() && attempt + 1 < self.policy.attempts => {
                    tokio::time::sleep(self.policy.backoff(attempt)).await;
                    attempt += 1;
                }
                other => return other,
            }
        }
    }
}

#[async_trait]
impl Provider for Retry {
    fn name(&self) -> &str {
        self.inner.name()
    }
    fn capabilities(&self) -> Capabilities {
        self.inner.capabilities()
    }
    async fn put(&self, blob: &BlobName, body: PutBody, mode: PutMode) -> Result<BlobMeta> {
        match body {
            PutBody::Bytes(b) => {
                self.run(|| self.inner.put(blob, PutBody::Bytes(b.clone()), mode))
                    .await
            }
            stream => self.inner.put(blob, stream, mode).await,
        }
    }
    async fn get(&self, blob: &BlobName, range: Option<Range<u64>>) -> Result<ByteStream> {
        self.run(|| self.inner.get(blob, range.clone())).await
    }
    async fn head(&self, blob: &BlobName) -> Result<BlobMeta> {
        self.run(|| self.inner.head(blob)).await
    }
    async fn delete(&self, blob: &BlobName) -> Result<()> {
        self.run(|| self.inner.delete(blob)).await
    }
    async fn list(
        &self,
        prefix: &str,
        start_after: Option<&BlobName>,
        limit: usize,
    ) -> Result<ListPage> {
        self.run(|| self.inner.list(prefix, start_after, limit))
            .await
    }
    async fn sweep_temp(&self, older_than: std::time::Duration) -> Result<u64> {
        self.inner.sweep_temp(older_than).await
    }
}
