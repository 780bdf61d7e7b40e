//! A cap on concurrent requests to one provider. A read keeps its slot until its stream is
//! dropped, so the cap also bounds open downloads.

use std::ops::Range;
use std::sync::Arc;

use async_trait::async_trait;
use futures::StreamExt;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::error::{ErrorKind, ProviderError, Result};
use crate::name::BlobName;
use crate::provider::{BlobMeta, ByteStream, Capabilities, ListPage, Provider, PutBody, PutMode};

/// Limits concurrent requests to the wrapped provider.
#[derive(Debug)]
pub struct Limit {
    inner: Arc<dyn Provider>,
    slots: Arc<Semaphore>,
}

impl Limit {
    /// At most `max` requests at once (at least 1).
    pub fn new(inner: Arc<dyn Provider>, max: usize) -> Self {
        Limit {
            inner,
            slots: Arc::new(Semaphore::new(max.max(1))),
        }
    }

    async fn slot(&self, op: &'static str) -> Result<OwnedSemaphorePermit> {
        self.slots.clone().acquire_owned().await.map_err(|_| {
            ProviderError::new(
                ErrorKind::Unavailable,
                self.inner.name(),
                op,
                None,
                "limiter closed",
            )
        })
    }
}

#[async_trait]
impl Provider for Limit {
    fn name(&self) -> &str {
        self.inner.name()
    }
    fn capabilities(&self) -> Capabilities {
        self.inner.capabilities()
    }
    async fn put(&self, blob: &BlobName, body: PutBody, mode: PutMode) -> Result<BlobMeta> {
        let _slot = self.slot("put").await?;
        self.inner.put(blob, body, mode).await
    }
    async fn get(&self, blob: &BlobName, range: Option<Range<u64>>) -> Result<ByteStream> {
        let slot = self.slot("get").await?;
        let stream = self.inner.get(blob, range).await?;
        // The permit travels with the stream and is released when it is dropped.
        Ok(stream
            .map(move |item| {
                let _hold = &slot;
                item
            })
            .boxed())
    }
    async fn head(&self, blob: &BlobName) -> Result<BlobMeta> {
        let _slot = self.slot("head").await?;
        self.inner.head(blob).await
    }
    async fn delete(&self, blob: &BlobName) -> Result<()> {
        let _slot = self.slot("delete").await?;
        self.inner.delete(blob).await
    }
    async fn list(
        &self,
        prefix: &str,
        start_after: Option<&BlobName>,
        limit: usize,
    ) -> Result<ListPage> {
        let _slot = self.slot("list").await?;
        self.inner.list(prefix, start_after, limit).await
    }
    async fn sweep_temp(&self, older_than: std::time::Duration) -> Result<u64> {
        self.inner.sweep_temp(older_than).await
    }
}
