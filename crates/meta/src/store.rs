//! The [`MetaStore`] trait: the one interface the engine and gateway use for metadata, and
//! [`MetaStoreExt`], conveniences built on it.

use async_trait::async_trait;

use crate::error::Result;
use crate::types::{
    AccessKey, AccessKeyId, Bucket, BucketName, CheckpointName, CommitCondition, Completed,
    DeleteCondition, GcBlob, GcEntry, Grant, ListQuery, NewUpload, NewVersion, ObjectKey,
    ObjectPage, ObjectVersion, Part, PartPage, PartQuery, Permissions, ProviderName,
    ProviderRecord, RepairEntry, RepairItem, Superseded, UnixMillis, Upload, UploadPage,
    UploadQuery, UploadRef, VersionId,
};

/// Archipel's metadata: buckets, object versions, multipart uploads, access keys and grants,
/// the provider registry, the garbage-collection and repair queues and job checkpoints.
///
/// Every method is one indivisible primitive; conveniences live in [`MetaStoreExt`] so that
/// wrappers (metrics, fault injection) only have these to forward.
///
/// # Contract
///
/// * **Atomic.** Each call takes effect entirely or not at all, also across a crash of the
///   process (kill -9) or of the database.
/// * **Durable.** Once a mutating call returns `Ok`, its effect survives a crash (and, with the
///   embedded store, a power loss: SQLite `synchronous=FULL`).
/// * **Linearizable per key.** Calls that return `Ok` are ordered; a read begun after a
///   mutation returned sees it, from any gateway sharing the database.
/// * **Conditional commits decide exactly one winner.** Of concurrent [`commit`] calls on one
///   key with [`CommitCondition::IfAbsent`] (or `IfMatch` of the same etag), at most one
///   succeeds, whichever processes they run in; the others get
///   [`MetaError::AlreadyExists`] / [`MetaError::EtagMismatch`] naming what is current.
/// * **Conditions are decided where the change is made.** Every [`CommitCondition`] and
///   [`DeleteCondition`] (`If-None-Match: *`, `If-Match: *`, `If-Match: <etag>`) is checked
///   against the current version inside the transaction that commits or deletes, never by an
///   earlier read, so no commit or delete from another gateway can land in between. A delete
///   marker counts as no live version: `IfExists` on it fails with
///   [`MetaError::NoLiveVersion`], `IfMatch` with `EtagMismatch { current: None }`.
/// * **Nothing leaks silently.** Every call that replaces or removes a version or a part
///   returns it, manifest included, so the caller can garbage-collect its shards.
/// * **Listing is S3-ordered and bounded.** Keys sort by their UTF-8 bytes; a page costs
///   index range scans proportional to the page (plus one seek per common prefix), never a
///   scan of the bucket. Pages are consistent per row, not snapshots of the whole bucket.
/// * **Missing buckets are errors** for object and upload calls
///   ([`MetaError::NoSuchBucket`]); missing objects are `Ok(None)`.
/// * Transient database failures are retried inside the store (serialization failures and
///   deadlocks); what still fails is [`MetaError::is_retryable`].
///
/// [`commit`]: MetaStore::commit
/// [`MetaError::AlreadyExists`]: crate::MetaError::AlreadyExists
/// [`MetaError::EtagMismatch`]: crate::MetaError::EtagMismatch
/// [`MetaError::NoLiveVersion`]: crate::MetaError::NoLiveVersion
/// [`MetaError::NoSuchBucket`]: crate::MetaError::NoSuchBucket
/// [`MetaError::is_retryable`]: crate::MetaError::is_retryable
#[async_trait]
pub trait MetaStore: Send + Sync {
    // ---- buckets ----

    /// Creates a bucket; [`MetaError::BucketExists`](crate::MetaError::BucketExists) if the
    /// name is taken.
    async fn create_bucket(&self, bucket: &Bucket) -> Result<()>;
    /// Reads a bucket.
    async fn get_bucket(&self, name: &BucketName) -> Result<Option<Bucket>>;
    /// Every bucket, in name order.
    async fn list_buckets(&self) -> Result<Vec<Bucket>>;
    /// Replaces a bucket's policy.
    async fn set_bucket_policy(&self, name: &BucketName, policy: &[u8]) -> Result<()>;
    /// Replaces a bucket's settings (opaque bytes; empty for none).
    async fn set_bucket_settings(&self, name: &BucketName, settings: &[u8]) -> Result<()>;
    /// Deletes an empty bucket (and the grants on it);
    /// [`MetaError::BucketNotEmpty`](crate::MetaError::BucketNotEmpty) if it holds objects or
    /// uploads (delete markers count as empty).
    async fn delete_bucket(&self, name: &BucketName) -> Result<()>;

    // ---- objects ----

    /// Commits `version` as the current version of `key` if `condition` holds, atomically.
    /// Returns the version it superseded (delete markers included).
    async fn commit(
        &self,
        bucket: &BucketName,
        key: &ObjectKey,
        version: &NewVersion,
        condition: &CommitCondition,
    ) -> Result<Superseded>;
    /// The current version of `key`, manifest included (a delete marker is returned as such).
    async fn get(&self, bucket: &BucketName, key: &ObjectKey) -> Result<Option<ObjectVersion>>;
    /// Removes the current version of `key` (a delete marker included) if `condition` holds,
    /// atomically, and returns it; `Ok` with nothing if there was none and the condition is
    /// [`DeleteCondition::Unconditional`].
    async fn delete(
        &self,
        bucket: &BucketName,
        key: &ObjectKey,
        condition: &DeleteCondition,
    ) -> Result<Superseded>;
    /// Replaces the manifest of `key`'s current version if that version is still
    /// `version_id` and its manifest still exactly `expected` (nothing else changes: size,
    /// etag, time and metadata stay); whether it did. What repair and drain use to record a
    /// shard's new place: a version overwritten or deleted meanwhile is left alone, and of two
    /// concurrent replacements from the same manifest only one lands.
    async fn replace_manifest(
        &self,
        bucket: &BucketName,
        key: &ObjectKey,
        version_id: &VersionId,
        expected: &[u8],
        manifest: &[u8],
    ) -> Result<bool>;
    /// A page of live (non-delete-marker) objects and common prefixes, in S3 order.
    async fn list(&self, bucket: &BucketName, query: &ListQuery) -> Result<ObjectPage>;
    /// The current versions of `bucket` after the key `after` (from the first without), in
    /// key order, at most `limit`, manifests and delete markers included: one page of a walk
    /// over the whole index (snapshots, audits of the index). An empty page ends the walk.
    async fn list_versions(
        &self,
        bucket: &BucketName,
        after: Option<&ObjectKey>,
        limit: usize,
    ) -> Result<Vec<ObjectVersion>>;

    // ---- multipart uploads ----

    /// Starts a multipart upload;
    /// [`MetaError::Duplicate`](crate::MetaError::Duplicate) if the id is taken.
    async fn create_upload(&self, bucket: &BucketName, upload: &NewUpload) -> Result<()>;
    /// Reads an upload in progress.
    async fn get_upload(&self, upload: &UploadRef) -> Result<Option<Upload>>;
    /// Records a part (replacing one with the same number, which is returned).
    async fn put_part(&self, upload: &UploadRef, part: &Part) -> Result<Option<Part>>;
    /// A page of an upload's parts, in number order.
    async fn list_parts(&self, upload: &UploadRef, query: &PartQuery) -> Result<PartPage>;
    /// A page of uploads in progress, in (key, upload id) order.
    async fn list_uploads(&self, bucket: &BucketName, query: &UploadQuery) -> Result<UploadPage>;
    /// Atomically commits `version` under `condition` (as [`commit`](MetaStore::commit)) and
    /// removes the upload and its parts, returning both the superseded version and the parts.
    async fn complete_upload(
        &self,
        upload: &UploadRef,
        version: &NewVersion,
        condition: &CommitCondition,
    ) -> Result<Completed>;
    /// Removes the upload and returns its parts.
    async fn abort_upload(&self, upload: &UploadRef) -> Result<Completed>;

    // ---- access keys and grants ----

    /// Stores a new access key; [`MetaError::Duplicate`](crate::MetaError::Duplicate) if the
    /// id is taken.
    async fn create_access_key(&self, key: &AccessKey) -> Result<()>;
    /// Reads an access key.
    async fn get_access_key(&self, id: &AccessKeyId) -> Result<Option<AccessKey>>;
    /// Every access key, in id order.
    async fn list_access_keys(&self) -> Result<Vec<AccessKey>>;
    /// Deletes an access key and its grants; whether it existed.
    async fn delete_access_key(&self, id: &AccessKeyId) -> Result<bool>;
    /// Sets what `key` may do in `bucket` (all-false permissions revoke the grant).
    async fn set_grant(
        &self,
        key: &AccessKeyId,
        bucket: &BucketName,
        permissions: Permissions,
    ) -> Result<()>;
    /// The grants of `key`, in bucket order.
    async fn list_grants(&self, key: &AccessKeyId) -> Result<Vec<Grant>>;

    // ---- provider registry ----

    /// Inserts or replaces a provider record.
    async fn put_provider(&self, provider: &ProviderRecord) -> Result<()>;
    /// Reads a provider record.
    async fn get_provider(&self, name: &ProviderName) -> Result<Option<ProviderRecord>>;
    /// Every provider, in name order.
    async fn list_providers(&self) -> Result<Vec<ProviderRecord>>;
    /// Removes a provider record; whether it existed.
    async fn delete_provider(&self, name: &ProviderName) -> Result<bool>;

    // ---- garbage-collection queue ----

    /// Enqueues blobs (idempotent: a blob already queued keeps its first time).
    async fn enqueue_gc(&self, blobs: &[GcBlob], now: UnixMillis) -> Result<()>;
    /// Up to `limit` entries, oldest first, strictly after `after` (to page past entries
    /// that could not be removed yet).
    async fn peek_gc(&self, after: Option<&GcEntry>, limit: usize) -> Result<Vec<GcEntry>>;
    /// Removes blobs from the queue (absent ones are ignored); how many were removed.
    async fn remove_gc(&self, blobs: &[GcBlob]) -> Result<u64>;

    // ---- repair queue ----

    /// Records shards to repair (idempotent per (provider, blob): an entry already queued keeps
    /// its first time and reason, and the rest of its first record). Entries are independent
    /// of buckets and objects: deleting either leaves them queued.
    /// [`MetaError::InvalidArgument`](crate::MetaError::InvalidArgument) if a reason contains
    /// NUL.
    async fn enqueue_repair(&self, items: &[RepairItem], now: UnixMillis) -> Result<()>;
    /// Up to `limit` entries (at most [`MAX_PAGE`](crate::MAX_PAGE)), oldest first (ties by
    /// provider, then blob, bytewise), strictly after `after` (to page past entries that
    /// could not be repaired yet).
    async fn peek_repair(
        &self,
        after: Option<&RepairEntry>,
        limit: usize,
    ) -> Result<Vec<RepairEntry>>;
    /// Removes entries by (provider, blob) (absent ones are ignored); how many were removed.
    async fn remove_repair(&self, blobs: &[GcBlob]) -> Result<u64>;
    /// How many entries are queued.
    async fn count_repair(&self) -> Result<u64>;

    // ---- job checkpoints ----

    /// Stores a checkpoint (replacing any previous one).
    async fn put_checkpoint(&self, name: &CheckpointName, data: &[u8]) -> Result<()>;
    /// Reads a checkpoint.
    async fn get_checkpoint(&self, name: &CheckpointName) -> Result<Option<Vec<u8>>>;
    /// Removes a checkpoint; whether it existed.
    async fn delete_checkpoint(&self, name: &CheckpointName) -> Result<bool>;
    /// Up to `limit` checkpoints (at most [`MAX_PAGE`](crate::MAX_PAGE)) whose names start
    /// with `prefix` and sort after `after`, in name order, with their data.
    async fn list_checkpoints(
        &self,
        prefix: &str,
        after: Option<&CheckpointName>,
        limit: usize,
    ) -> Result<Vec<(CheckpointName, Vec<u8>)>>;

    // ---- leases ----

    /// Takes or renews the lease `name` for `owner` until `until`, atomically: granted when
    /// nobody holds it, when its holder's lease ended before `now`, or when `owner` holds it
    /// already. Whether `owner` holds it now. Of concurrent takers of a free lease, across
    /// processes, exactly one wins.
    async fn take_lease(
        &self,
        name: &CheckpointName,
        owner: &str,
        now: UnixMillis,
        until: UnixMillis,
    ) -> Result<bool>;
    /// Gives the lease up if `owner` holds it; whether it did.
    async fn release_lease(&self, name: &CheckpointName, owner: &str) -> Result<bool>;
}

/// Conveniences over [`MetaStore`], implemented for every store.
#[async_trait]
pub trait MetaStoreExt: MetaStore {
    /// Every live object with `prefix`, following pages (no delimiter). For tools and tests;
    /// holds the whole listing in memory.
    async fn list_all(
        &self,
        bucket: &BucketName,
        prefix: &str,
    ) -> Result<Vec<crate::ObjectSummary>> {
        let mut out = Vec::new();
        let mut query = ListQuery {
            prefix: prefix.to_string(),
            delimiter: None,
            start_after: None,
            max_keys: crate::MAX_PAGE,
        };
        loop {
            let page = self.list(bucket, &query).await?;
            out.extend(page.objects);
            match page.next_start_after {
                Some(next) if page.is_truncated => query.start_after = Some(next),
                _ => return Ok(out),
            }
        }
    }
}

impl<T: MetaStore + ?Sized> MetaStoreExt for T {}
