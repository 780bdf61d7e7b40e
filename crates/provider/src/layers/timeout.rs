//! Deadlines: every request must answer within `request`; a read stream must deliver each next
//! chunk within `request` too; a put must finish within `put`.

use std::future::Future;
use std::ops::Range;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use futures::StreamExt;

use crate::error::{ErrorKind, ProviderError, Result};
use crate::name::BlobName;
use crate::provider::{BlobMeta, ByteStream, Capabilities, ListPage, Provider, PutBody, PutMode};

/// Applies deadlines to the wrapped provider.
#[derive(Debug)]
pub struct Timeout {
    inner: Arc<dyn Provider>,
    request: Duration,
    put: Duration,
}

impl Timeout {
    /// `request` bounds every call and every gap between read chunks; `put` bounds a whole put.
    pub fn new(inner: Arc<dyn Provider>, request: Duration, put: Duration) -> Self {
        Timeout {
            inner,
            request,
            put,
        }
    }

    async fn bound<T>(
        &self,
        limit: Duration,
        op: &'static str,
        blob: Option<&BlobName>,
        f: impl Future<Output = Result<T>>,
    ) -> Result<T> {
        match tokio::time::timeout(limit, f).await {
            Ok(r) => r,
            Err(_) => Err(ProviderError::new(
                ErrorKind::Timeout,
                self.inner.name(),
                op,
                blob.map(BlobName::as_str),
                format!("no answer within {limit:?}"),
            )),
        }
    }
}

#[async_trait]
impl Provider for Timeout {
    fn name(&self) -> &str {
        self.inner.name()
    }
    fn capabilities(&self) -> Capabilities {
        self.inner.capabilities()
    }
    async fn put(&self, blob: &BlobName, body: PutBody, mode: PutMode) -> Result<BlobMeta> {
        self.bound(
            self.put,
            "put",
            Some(blob),
            self.inner.put(blob, body, mode),
        )
        .await
    }
    async fn get(&self, blob: &BlobName, range: Option<Range<u64>>) -> Result<ByteStream> {
        let stream = self
            .bound(self.request, "get", Some(blob), self.inner.get(blob, range))
            .await?;
        let idle = self.request;
        let provider = self.inner.name().to_string();
        let name = blob.as_str().to_string();
        let guarded = futures::stream::unfold((stream, false), move |(mut s, done)| {
            let provider = provider.clone();
            let name = name.clone();
            async move {
                if done {
                    return None;
                }
                match tokio::time::timeout(idle, s.next()).await {
                    Ok(Some(item)) => Some((item, (s, false))),
                    Ok(None) => None,
                    Err(_) => Some((
                        Err(ProviderError::new(
                            ErrorKind::Timeout,
                            &provider,
                            "get",
                            Some(&name),
                            format!("stream stalled for {idle:?}"),
                        )),
                        (s, true),
                    )),
                }
            }
        });
        Ok(guarded.boxed())
    }
    async fn head(&self, blob: &BlobName) -> Result<BlobMeta> {
        self.bound(self.request, "head", Some(blob), self.inner.head(blob))
            .await
    }
    async fn delete(&self, blob: &BlobName) -> Result<()> {
        self.bound(self.request, "delete", Some(blob), self.inner.delete(blob))
            .await
    }
    async fn list(
        &self,
        prefix: &str,
        start_after: Option<&BlobName>,
        limit: usize,
    ) -> Result<ListPage> {
        self.bound(
            self.request,
            "list",
            None,
            self.inner.list(prefix, start_after, limit),
        )
        .await
    }
    async fn sweep_temp(&self, older_than: std::time::Duration) -> Result<u64> {
        self.inner.sweep_temp(older_than).await
    }
}
