//! The `Provider` trait: one independent place that stores opaque blobs.
//!
//! # Contract
//!
//! * **Blobs are opaque and whole.** A provider stores bytes under a [`BlobName`]; it knows
//!   nothing of objects, buckets, shards or other providers.
//! * **Put is atomic.** After `put` returns `Ok`, the whole blob is durable and readable; if it
//!   returns an error or the process dies, either the previous content (or nothing) is visible —
//!   never a partial blob. A put over an existing blob replaces it (unless
//!   [`PutMode::Create`]).
//! * **Conditional create.** With [`PutMode::Create`] and
//!   [`Capabilities::conditional_create`], exactly one of several concurrent creators succeeds;
//!   the others get [`ErrorKind::AlreadyExists`](crate::ErrorKind::AlreadyExists). Without the
//!   capability, callers must not rely on it (the provider falls back to check-then-write).
//! * **Get with a range** returns exactly the bytes `range` of the blob. A range that ends past
//!   the blob's end is an [`ErrorKind::InvalidRange`](crate::ErrorKind::InvalidRange) error —
//!   raised before the first byte or, for services that only reveal it then, at the end of the
//!   stream; a short read is never silent.
//! * **Delete is idempotent**: deleting a missing blob succeeds.
//! * **List** returns blob names with a prefix in ascending byte order, at most `limit` per page,
//!   strictly after `start_after`, and says whether more follow. Consistency is
//!   read-after-write for puts and deletes that completed before the list started.
//! * **Errors** name the provider, the operation and the blob, and say whether a retry may help
//!   ([`ProviderError::is_retryable`]).

use std::fmt;
use std::ops::Range;
use std::pin::Pin;
use std::time::SystemTime;

use async_trait::async_trait;
use bytes::Bytes;
use futures::{Stream, StreamExt};

use crate::error::{ProviderError, Result};
use crate::name::BlobName;

/// A stream of byte chunks.
pub type ByteStream = Pin<Box<dyn Stream<Item = Result<Bytes>> + Send>>;

/// The body of a put.
pub enum PutBody {
    /// All bytes in memory: can be replayed, so retry layers may retry the put.
    Bytes(Bytes),
    /// A stream: sent once; a failure is returned to the caller, who can resend.
    Stream(ByteStream),
}

impl fmt::Debug for PutBody {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PutBody::Bytes(b) => write!(f, "PutBody::Bytes({} bytes)", b.len()),
            PutBody::Stream(_) => f.write_str("PutBody::Stream"),
        }
    }
}

impl PutBody {
    /// The body as a stream.
    pub fn into_stream(self) -> ByteStream {
        match self {
            PutBody::Bytes(b) => futures::stream::once(async move { Ok(b) }).boxed(),
            PutBody::Stream(s) => s,
        }
    }
}

impl From<Bytes> for PutBody {
    fn from(b: Bytes) -> Self {
        PutBody::Bytes(b)
    }
}

impl From<Vec<u8>> for PutBody {
    fn from(b: Vec<u8>) -> Self {
        PutBody::Bytes(Bytes::from(b))
    }
}

/// How a put treats an existing blob.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PutMode {
    /// Create or replace.
    Overwrite,
    /// Create only; fail with `AlreadyExists` if the blob exists.
    Create,
}

/// What a provider can do, as data callers and tests branch on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Capabilities {
    /// `PutMode::Create` is atomic on the service (not check-then-write).
    pub conditional_create: bool,
    /// Largest blob the provider accepts, if limited.
    pub max_blob_size: Option<u64>,
    /// Largest page `list` returns.
    pub max_list_page: usize,
}

/// Size and time of a stored blob.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlobMeta {
    /// The blob's name.
    pub name: BlobName,
    /// Its size in bytes.
    pub size: u64,
    /// When it was last written, if the provider knows.
    pub modified: Option<SystemTime>,
}

/// One page of a listing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListPage {
    /// Blobs in ascending name order.
    pub blobs: Vec<BlobMeta>,
    /// True if more blobs follow the last one returned.
    pub more: bool,
}

/// One independent place that stores opaque blobs. See the module docs for the contract.
#[async_trait]
pub trait Provider: Send + Sync + fmt::Debug {
    /// The provider's name (unique in a vault).
    fn name(&self) -> &str;

    /// What this provider supports.
    fn capabilities(&self) -> Capabilities;

    /// Stores `body` as `blob`, atomically.
    async fn put(&self, blob: &BlobName, body: PutBody, mode: PutMode) -> Result<BlobMeta>;

    /// Streams the blob, or `range` of it.
    async fn get(&self, blob: &BlobName, range: Option<Range<u64>>) -> Result<ByteStream>;

    /// Size and time of the blob.
    async fn head(&self, blob: &BlobName) -> Result<BlobMeta>;

    /// Deletes the blob; succeeds if it does not exist.
    async fn delete(&self, blob: &BlobName) -> Result<()>;

    /// Lists blobs whose names start with `prefix`, after `start_after`, at most `limit`.
    async fn list(
        &self,
        prefix: &str,
        start_after: Option<&BlobName>,
        limit: usize,
    ) -> Result<ListPage>;

    /// Removes what interrupted puts left behind (temporary files, never visible as blobs)
    /// that is older than `older_than`, so a put still going on elsewhere is left alone; how
    /// many were removed. Providers that keep no such leftovers remove nothing (S3: a put is
    /// one request, or a multipart upload the bucket's lifecycle rule expires).
    async fn sweep_temp(&self, older_than: std::time::Duration) -> Result<u64> {
        let _ = older_than;
        Ok(0)
    }
}

/// Conveniences over any [`Provider`], kept out of the trait so wrappers cannot get them
/// subtly wrong.
#[async_trait]
pub trait ProviderExt: Provider {
    /// Puts bytes from memory.
    async fn put_bytes(&self, blob: &BlobName, bytes: impl Into<Bytes> + Send) -> Result<BlobMeta> {
        self.put(blob, PutBody::Bytes(bytes.into()), PutMode::Overwrite)
            .await
    }

    /// Reads a whole blob (or a range) into memory.
    async fn get_bytes(&self, blob: &BlobName, range: Option<Range<u64>>) -> Result<Vec<u8>> {
        let mut s = self.get(blob, range).await?;
        let mut out = Vec::new();
        while let Some(chunk) = s.next().await {
            out.extend_from_slice(&chunk?);
        }
        Ok(out)
    }

    /// Lists every blob with `prefix`, page by page.
    async fn list_all(&self, prefix: &str) -> Result<Vec<BlobMeta>> {
        let mut out: Vec<BlobMeta> = Vec::new();
        loop {
            let after = out.last().map(|b| b.name.clone());
            let page = self
                .list(prefix, after.as_ref(), self.capabilities().max_list_page)
                .await?;
            out.extend(page.blobs);
            if !page.more {
                return Ok(out);
            }
        }
    }
}

impl<P: Provider + ?Sized> ProviderExt for P {}

#[async_trait]
impl<P: Provider + ?Sized> Provider for std::sync::Arc<P> {
    fn name(&self) -> &str {
        (**self).name()
    }
    fn capabilities(&self) -> Capabilities {
        (**self).capabilities()
    }
    async fn put(&self, blob: &BlobName, body: PutBody, mode: PutMode) -> Result<BlobMeta> {
        (**self).put(blob, body, mode).await
    }
    async fn get(&self, blob: &BlobName, range: Option<Range<u64>>) -> Result<ByteStream> {
        (**self).get(blob, range).await
    }
    async fn head(&self, blob: &BlobName) -> Result<BlobMeta> {
        (**self).head(blob).await
    }
    async fn delete(&self, blob: &BlobName) -> Result<()> {
        (**self).delete(blob).await
    }
    async fn list(
        &self,
        prefix: &str,
        start_after: Option<&BlobName>,
        limit: usize,
    ) -> Result<ListPage> {
        (**self).list(prefix, start_after, limit).await
    }
}

/// Checks a requested range against a blob size (`InvalidRange` unless `start ≤ end ≤ size`).
pub(crate) fn check_range(
    provider: &str,
    blob: &BlobName,
    range: &Range<u64>,
    size: u64,
) -> Result<()> {
    if range.start > range.end || range.end > size {
        return Err(ProviderError::new(
            crate::ErrorKind::InvalidRange,
            provider,
            "get",
            Some(blob.as_str()),
            format!(
                "range {}..{} outside blob of {size} bytes",
                range.start, range.end
            ),
        ));
    }
    Ok(())
}
