//! The [`Engine`]: the vault's master key, its providers, its metadata store, and the object
//! operations over them.

use std::collections::{BTreeMap, HashSet};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use archipel_codec::{
    DEFAULT_STRIPE_SIZE, Manifest, ManifestKey, MasterKey, SegmentId, ShardIdentity, VersionId,
};
use archipel_meta::{
    Bucket, BucketName, CommitCondition, DeleteCondition, ETag, GcBlob, MetaStore, NewVersion,
    ObjectKey, ProviderName, RepairItem, UnixMillis,
};
use archipel_provider::Provider;
use bytes::Bytes;
use futures::StreamExt;
use tokio::sync::{Notify, mpsc};

use crate::error::{EngineError, Result};
use crate::health::Health;
use crate::object::{Body, ByteRange, GetOutput, ObjectInfo, PutOptions, PutOutcome};
use crate::placement::{Policy, ProviderInfo};
use crate::read::{RepairNote, read_segment};
use crate::write::write_segment;

/// A provider and what placement knows of it.
#[derive(Debug, Clone)]
pub struct ProviderSlot {
    /// Name, labels, weight, state (`info.name` must equal `provider.name()`).
    pub info: ProviderInfo,
    /// The provider, usually wrapped in retry, timeout, limit and metrics layers.
    pub provider: Arc<dyn Provider>,
}

/// Tunables; the defaults suit local disks and LAN providers.
#[derive(Debug, Clone)]
pub struct EngineOptions {
    /// Plaintext bytes per stripe (`k` chunks of `stripe_size / k`).
    pub stripe_size: usize,
    /// Stripes in flight per shard between encoder and writer (and per reader): with the
    /// stripe size, the bound on memory per request.
    pub pipeline_depth: usize,
    /// Wait this long for a shard's chunk before asking one more provider; `None` = the
    /// provider's recent p95 latency (at least `hedge_floor`).
    pub hedge_delay: Option<Duration>,
    /// The shortest automatic hedge delay.
    pub hedge_floor: Duration,
    /// Hedge delay for a provider with no recent samples.
    pub hedge_default: Duration,
    /// Blobs of superseded versions stay this long before GC deletes them, so reads that
    /// started before the overwrite can finish.
    pub gc_delay: Duration,
    /// The smallest part a multipart upload accepts (except the last part).
    pub min_part_size: u64,
    /// The policy of buckets created without one; `None` = [`Policy::default_for`] the
    /// number of active providers.
    pub default_policy: Option<Policy>,
}

impl Default for EngineOptions {
    fn default() -> Self {
        EngineOptions {
            stripe_size: DEFAULT_STRIPE_SIZE,
            pipeline_depth: 4,
            hedge_delay: None,
            hedge_floor: Duration::from_millis(2),
            hedge_default: Duration::from_millis(50),
            gc_delay: Duration::from_secs(60),
            min_part_size: 5 * 1024 * 1024,
            default_policy: None,
        }
    }
}

pub(crate) struct Inner {
    pub(crate) master: MasterKey,
    pub(crate) manifest_key: ManifestKey,
    /// Names the journal's and the snapshots' blobs.
    pub(crate) namer: archipel_codec::MetaNamer,
    pub(crate) meta: Arc<dyn MetaStore>,
    /// The providers now; replaced as a whole when the registry changes (readers take a
    /// snapshot, so a write in progress keeps the set it started with).
    pub(crate) set: RwLock<Arc<ProviderSet>>,
    pub(crate) health: Health,
    pub(crate) opts: EngineOptions,
    /// Segments being written by this process: the orphan scan leaves them alone.
    pub(crate) inflight: Mutex<HashSet<SegmentId>>,
    pub(crate) gc_wake: Notify,
    /// Repair totals since start.
    pub(crate) repairs: crate::repair::RepairTotals,
}

/// The providers at one moment: what placement sees, and the providers by name.
#[derive(Debug, Default)]
pub(crate) struct ProviderSet {
    pub(crate) providers: BTreeMap<String, Arc<dyn Provider>>,
    pub(crate) infos: Vec<ProviderInfo>,
}

impl ProviderSet {
    /// Checks and indexes `slots`: names unique and equal to what each provider calls itself.
    fn new(slots: Vec<ProviderSlot>) -> Result<ProviderSet> {
        let mut set = ProviderSet::default();
        for slot in slots {
            if slot.info.name != slot.provider.name() {
                return Err(EngineError::Invalid(format!(
                    "provider {:?} is registered under the name {:?}",
                    slot.provider.name(),
                    slot.info.name
                )));
            }
            if set
                .providers
                .insert(slot.info.name.clone(), slot.provider.clone())
                .is_some()
            {
                return Err(EngineError::Invalid(format!(
                    "two providers are named {:?}",
                    slot.info.name
                )));
            }
            set.infos.push(slot.info);
        }
        Ok(set)
    }
}

/// An object version looked up by [`Engine::open_object`], to read with
/// [`Engine::read_object`].
#[derive(Debug, Clone)]
pub struct OpenObject {
    info: ObjectInfo,
    manifest: Manifest,
}

impl OpenObject {
    /// The version's description.
    pub fn info(&self) -> &ObjectInfo {
        &self.info
    }
}

/// The engine. Cheap to clone; clones share everything.
#[derive(Clone)]
pub struct Engine {
    pub(crate) inner: Arc<Inner>,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine")
            .field(
                "providers",
                &self.inner.set().providers.keys().collect::<Vec<_>>(),
            )
            .field("key", &self.inner.master)
            .finish_non_exhaustive()
    }
}

/// Fresh random bytes from the operating system.
pub(crate) fn random<const N: usize>() -> Result<[u8; N]> {
    let mut b = [0u8; N];
    getrandom::fill(&mut b).map_err(|e| EngineError::Internal(format!("random numbers: {e}")))?;
    Ok(b)
}

pub(crate) fn now_ms() -> u64 {
    UnixMillis::now().0.max(0) as u64
}

pub(crate) fn bucket_name(name: &str) -> Result<BucketName> {
    BucketName::s3(name).map_err(|e| EngineError::InvalidBucketName(e.to_string()))
}

pub(crate) fn object_key(key: &str) -> Result<ObjectKey> {
    ObjectKey::new(key).map_err(|e| EngineError::Invalid(e.to_string()))
}

pub(crate) fn meta_name<T>(r: archipel_meta::Result<T>) -> Result<T> {
    r.map_err(|e| EngineError::Invalid(e.to_string()))
}

/// Registers a segment as being written, and removes it when dropped (however the write ends).
pub(crate) struct InflightGuard {
    inner: Arc<Inner>,
    segment: SegmentId,
}

impl InflightGuard {
    pub(crate) fn new(inner: Arc<Inner>, segment: SegmentId) -> Self {
        inner
            .inflight
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .insert(segment);
        InflightGuard { inner, segment }
    }
}

impl Drop for InflightGuard {
    fn drop(&mut self) {
        self.inner
            .inflight
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .remove(&self.segment);
    }
}

impl Inner {
    /// The providers now.
    pub(crate) fn set(&self) -> Arc<ProviderSet> {
        self.set
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    pub(crate) fn provider(&self, name: &str) -> Option<Arc<dyn Provider>> {
        self.set().providers.get(name).cloned()
    }

    pub(crate) async fn policy(&self, bucket: &BucketName) -> Result<Policy> {
        let b = self
            .meta
            .get_bucket(bucket)
            .await?
            .ok_or_else(|| EngineError::NoSuchBucket {
                bucket: bucket.to_string(),
            })?;
        Ok(Policy::decode(&b.policy)?)
    }

    pub(crate) fn decode_manifest(&self, bytes: &[u8]) -> Result<Manifest> {
        Ok(Manifest::decode(bytes, &self.manifest_key)?)
    }

    /// Queues every blob of `manifest` for deletion and wakes the GC.
    pub(crate) async fn collect_manifest(&self, manifest: &Manifest) -> Result<()> {
        let blobs: Vec<GcBlob> = manifest
            .segments
            .iter()
            .flat_map(|s| s.placement.iter())
            .filter_map(|p| {
                Some(GcBlob {
                    provider: ProviderName::new(p.provider.clone()).ok()?,
                    blob: p.blob.clone(),
                })
            })
            .collect();
        self.collect(blobs).await
    }

    pub(crate) async fn collect_manifest_bytes(&self, bytes: &[u8]) -> Result<()> {
        self.collect_superseded(bytes, None).await
    }

    /// Queues the blobs of a superseded manifest, except those `current` still references
    /// (a metadata-only update keeps the same shards).
    pub(crate) async fn collect_superseded(
        &self,
        bytes: &[u8],
        current: Option<&Manifest>,
    ) -> Result<()> {
        match self.decode_manifest(bytes) {
            Ok(mut m) => {
                if let Some(cur) = current {
                    m.segments
                        .retain(|s| !cur.segments.iter().any(|c| c.segment == s.segment));
                }
                self.collect_manifest(&m).await
            }
            Err(e) => {
                // A manifest we cannot read leaves its blobs to the orphan scan.
                tracing::warn!("superseded manifest unreadable, left to the orphan scan: {e}");
                Ok(())
            }
        }
    }

    pub(crate) async fn collect(&self, blobs: Vec<GcBlob>) -> Result<()> {
        if blobs.is_empty() {
            return Ok(());
        }
        self.meta.enqueue_gc(&blobs, UnixMillis::now()).await?;
        self.gc_wake.notify_one();
        Ok(())
    }

    /// Records shards to repair; failures to record are logged, never fatal to the read.
    pub(crate) async fn record_repairs(
        &self,
        bucket: &BucketName,
        key: &ObjectKey,
        version: &str,
        notes: &[RepairNote],
    ) {
        if notes.is_empty() {
            return;
        }
        let Ok(version_id) = archipel_meta::VersionId::new(version) else {
            return;
        };
        let items: Vec<RepairItem> = notes
            .iter()
            .filter_map(|n| {
                Some(RepairItem {
                    blob: GcBlob {
                        provider: ProviderName::new(n.provider.clone()).ok()?,
                        blob: n.blob.clone(),
                    },
                    bucket: bucket.clone(),
                    key: key.clone(),
                    version_id: version_id.clone(),
                    reason: n.reason.to_string(),
                })
            })
            .collect();
        for n in notes {
            tracing::warn!(
                "{bucket}/{key}: shard {} on {} ({}) is {}; queued for repair",
                n.shard,
                n.provider,
                n.blob,
                n.reason
            );
        }
        if let Err(e) = self.meta.enqueue_repair(&items, UnixMillis::now()).await {
            tracing::error!("{bucket}/{key}: could not queue shards for repair: {e}");
        }
    }
}

impl Engine {
    /// An engine over `providers` and `meta`, with the vault's master key.
    pub fn new(
        master: MasterKey,
        meta: Arc<dyn MetaStore>,
        providers: Vec<ProviderSlot>,
        opts: EngineOptions,
    ) -> Result<Self> {
        if opts.pipeline_depth == 0 {
            return Err(EngineError::Invalid(
                "pipeline_depth must be at least 1".into(),
            ));
        }
        let set = ProviderSet::new(providers)?;
        if let Some(p) = &opts.default_policy {
            p.validate(&set.infos)?;
        }
        Ok(Engine {
            inner: Arc::new(Inner {
                manifest_key: master.manifest_key(),
                namer: master.meta_namer()?,
                master,
                meta,
                set: RwLock::new(Arc::new(set)),
                health: Health::default(),
                opts,
                inflight: Mutex::new(HashSet::new()),
                gc_wake: Notify::new(),
                repairs: crate::repair::RepairTotals::default(),
            }),
        })
    }

    /// The metadata store (listing, uploads and keys go straight to it).
    pub fn meta(&self) -> &Arc<dyn MetaStore> {
        &self.inner.meta
    }

    /// The providers, as placement sees them now.
    pub fn providers(&self) -> Vec<ProviderInfo> {
        self.inner.set().infos.clone()
    }

    /// The provider named `name` as the engine uses it (with its layers), if any.
    pub fn provider(&self, name: &str) -> Option<Arc<dyn Provider>> {
        self.inner.provider(name)
    }

    /// Replaces the provider set, live: placement of new writes follows it at once; reads
    /// and writes in progress finish on the providers they started with. Providers taken out
    /// are no longer read from (their shards count as missing), so a provider is retired
    /// from the set only once it holds nothing. Refused (and nothing changes) when names
    /// repeat or the default policy no longer fits.
    pub fn set_providers(&self, slots: Vec<ProviderSlot>) -> Result<()> {
        let set = ProviderSet::new(slots)?;
        if let Some(p) = &self.inner.opts.default_policy {
            p.validate(&set.infos)?;
        }
        *self
            .inner
            .set
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Arc::new(set);
        Ok(())
    }

    /// How long a superseded shard is kept before the GC deletes it (reads that began
    /// before stay whole).
    pub fn gc_delay(&self) -> std::time::Duration {
        self.inner.opts.gc_delay
    }

    /// Recent health of the providers.
    pub fn health(&self) -> &Health {
        &self.inner.health
    }

    /// The policy of new buckets: the configured one ([`EngineOptions::default_policy`]), else
    /// [`Policy::default_for`] the active providers.
    pub fn default_policy(&self) -> Result<Policy> {
        if let Some(p) = &self.inner.opts.default_policy {
            return Ok(p.clone());
        }
        let active = self
            .inner
            .set()
            .infos
            .iter()
            .filter(|p| p.state == crate::placement::ProviderState::Active)
            .count();
        Ok(Policy::default_for(active)?)
    }

    // ---- buckets ----

    /// Creates a bucket with `policy` (or the vault default), refusing a policy the providers
    /// cannot satisfy.
    pub async fn create_bucket(
        &self,
        bucket: &str,
        owner: &str,
        policy: Option<Policy>,
    ) -> Result<Policy> {
        let name = bucket_name(bucket)?;
        let policy = match policy {
            Some(p) => p,
            None => self.default_policy()?,
        };
        policy.validate(&self.inner.set().infos)?;
        self.inner
            .meta
            .create_bucket(&Bucket {
                name,
                owner: owner.to_string(),
                policy: policy.encode(),
                created: UnixMillis::now(),
                settings: Vec::new(),
            })
            .await?;
        Ok(policy)
    }

    /// A bucket's policy.
    pub async fn bucket_policy(&self, bucket: &str) -> Result<Policy> {
        self.inner.policy(&bucket_name(bucket)?).await
    }

    /// Replaces a bucket's policy (new writes follow it; existing objects keep their shards).
    pub async fn set_bucket_policy(&self, bucket: &str, policy: &Policy) -> Result<()> {
        policy.validate(&self.inner.set().infos)?;
        let name = bucket_name(bucket)?;
        self.inner
            .meta
            .set_bucket_policy(&name, &policy.encode())
            .await?;
        Ok(())
    }

    /// Deletes a bucket that holds no objects, aborting the multipart uploads still open in
    /// it (as S3 does; their parts' shards go to the GC queue). A bucket with objects is
    /// refused (`BucketNotEmpty`) and keeps its uploads.
    pub async fn delete_bucket(&self, bucket: &str) -> Result<()> {
        let name = bucket_name(bucket)?;
        let any = archipel_meta::ListQuery {
            max_keys: 1,
            ..archipel_meta::ListQuery::default()
        };
        if !self.inner.meta.list(&name, &any).await?.objects.is_empty() {
            return Err(archipel_meta::MetaError::BucketNotEmpty { bucket: name }.into());
        }
        loop {
            let query = archipel_meta::UploadQuery {
                max_uploads: archipel_meta::MAX_PAGE,
                ..archipel_meta::UploadQuery::default()
            };
            let page = self.inner.meta.list_uploads(&name, &query).await?;
            if page.uploads.is_empty() {
                break;
            }
            for u in &page.uploads {
                match self
                    .abort_upload(bucket, u.upload.key.as_str(), u.upload.upload_id.as_str())
                    .await
                {
                    Ok(()) | Err(EngineError::NoSuchUpload { .. }) => {}
                    Err(e) => return Err(e),
                }
            }
        }
        // Still refused if an object or an upload arrived meanwhile.
        self.inner.meta.delete_bucket(&name).await?;
        Ok(())
    }

    // ---- objects ----

    /// Stores `body` as `bucket/key`, streaming: shards go to `k + m` providers as the body
    /// arrives, and the object becomes visible only once the write quorum is durable.
    pub async fn put_object(
        &self,
        bucket: &str,
        key: &str,
        body: Body,
        opts: PutOptions,
    ) -> Result<PutOutcome> {
        let inner = &self.inner;
        let (bname, okey) = (bucket_name(bucket)?, object_key(key)?);
        let policy = inner.policy(&bname).await?;
        let version = VersionId(random()?);
        let timestamp_ms = now_ms();
        let identity = ShardIdentity {
            version,
            timestamp_ms,
            part_number: 0,
            bucket: bucket.to_string(),
            key: key.to_string(),
        };
        let written = write_segment(
            inner,
            &policy,
            &identity,
            &format!("{bucket}/{key}"),
            body,
            opts.expected_len,
            opts.content_md5,
        )
        .await?;
        let etag = written.segment.etag.clone();
        let mut headers = opts.headers;
        if let Some(late) = &opts.late_headers {
            headers.extend(
                late.lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .iter()
                    .cloned(),
            );
        }
        let manifest = Manifest {
            version,
            timestamp_ms,
            bucket: bucket.to_string(),
            key: key.to_string(),
            size: written.segment.len,
            etag: etag.clone(),
            content_type: opts.content_type,
            headers,
            user_metadata: opts.user_metadata.into_iter().collect(),
            segments: vec![written.segment],
        };
        let outcome = PutOutcome {
            etag,
            version_id: version.to_hex(),
            size: manifest.size,
            unwritten_shards: written.unwritten.len(),
            spared_shards: written.spared,
        };
        self.commit(
            &bname,
            &okey,
            manifest,
            opts.condition.as_ref(),
            &written.unwritten,
        )
        .await?;
        Ok(outcome)
    }

    /// Commits a manifest whose shards are durable; on failure its blobs go to the GC.
    pub(crate) async fn commit(
        &self,
        bucket: &BucketName,
        key: &ObjectKey,
        manifest: Manifest,
        condition: Option<&CommitCondition>,
        unwritten: &[RepairNote],
    ) -> Result<()> {
        let inner = &self.inner;
        let version = NewVersion {
            version_id: meta_name(archipel_meta::VersionId::new(manifest.version.to_hex()))?,
            manifest: manifest.encode(&inner.manifest_key)?,
            size: manifest.size,
            etag: meta_name(ETag::new(manifest.etag.clone()))?,
            last_modified: UnixMillis(manifest.timestamp_ms as i64),
            user_metadata: manifest.user_metadata.iter().cloned().collect(),
            delete_marker: false,
        };
        let cond = condition.cloned().unwrap_or(CommitCondition::Unconditional);
        match inner.meta.commit(bucket, key, &version, &cond).await {
            Ok(superseded) => {
                inner
                    .record_repairs(bucket, key, &manifest.version.to_hex(), unwritten)
                    .await;
                if let Some(prev) = superseded.previous {
                    inner
                        .collect_superseded(&prev.version.manifest, Some(&manifest))
                        .await?;
                }
                Ok(())
            }
            Err(e) => {
                // Only when the store definitely refused: after an ambiguous failure (the
                // connection dropped) the commit may have landed, so the orphan scan, which
                // asks the store, decides.
                let refused = matches!(
                    e,
                    archipel_meta::MetaError::AlreadyExists { .. }
                        | archipel_meta::MetaError::EtagMismatch { .. }
                        | archipel_meta::MetaError::NoLiveVersion { .. }
                        | archipel_meta::MetaError::NoSuchBucket { .. }
                );
                if refused {
                    inner.collect_manifest(&manifest).await?;
                }
                Err(e.into())
            }
        }
    }

    async fn load(&self, bucket: &str, key: &str) -> Result<(ObjectInfo, Manifest)> {
        let (bname, okey) = (bucket_name(bucket)?, object_key(key)?);
        let v = self.inner.meta.get(&bname, &okey).await?;
        let v = match v {
            Some(v) if !v.version.delete_marker => v,
            _ => {
                return Err(EngineError::NoSuchKey {
                    bucket: bucket.to_string(),
                    key: key.to_string(),
                });
            }
        };
        let manifest = self.inner.decode_manifest(&v.version.manifest)?;
        Ok((ObjectInfo::from_manifest(&v, &manifest), manifest))
    }

    /// Describes an object.
    pub async fn head_object(&self, bucket: &str, key: &str) -> Result<ObjectInfo> {
        Ok(self.load(bucket, key).await?.0)
    }

    /// Reads an object, or a byte range of it. Reads `k` shards from the providers that
    /// answered best lately, hedges to another when one is late, verifies every chunk, and
    /// rebuilds from parity what is missing or corrupt (queueing the bad shards for repair).
    pub async fn get_object(
        &self,
        bucket: &str,
        key: &str,
        range: Option<ByteRange>,
    ) -> Result<GetOutput> {
        let object = self.open_object(bucket, key).await?;
        self.read_object(object, range).await
    }

    /// Looks an object's current version up, for callers that check it (preconditions) before
    /// reading exactly that version with [`Engine::read_object`].
    pub async fn open_object(&self, bucket: &str, key: &str) -> Result<OpenObject> {
        let (info, manifest) = self.load(bucket, key).await?;
        Ok(OpenObject { info, manifest })
    }

    /// Reads an object opened with [`Engine::open_object`] (see [`Engine::get_object`]).
    pub async fn read_object(
        &self,
        object: OpenObject,
        range: Option<ByteRange>,
    ) -> Result<GetOutput> {
        let OpenObject { info, manifest } = object;
        let (bucket, key) = (info.bucket.clone(), info.key.clone());
        let range = match range {
            Some(r) => r.resolve(info.size)?,
            None => 0..info.size,
        };
        let (tx, mut rx) = mpsc::channel::<Result<Bytes>>(2);
        let inner = self.inner.clone();
        let (bname, okey) = (bucket_name(&bucket)?, object_key(&key)?);
        let what = format!("{bucket}/{key}");
        let want = range.clone();
        tokio::spawn(async move {
            let mut notes = Vec::new();
            let mut offset = 0u64;
            for seg in &manifest.segments {
                let seg_range = offset..offset + seg.len;
                offset += seg.len;
                let lo = want.start.max(seg_range.start);
                let hi = want.end.min(seg_range.end);
                if lo >= hi {
                    continue;
                }
                let sub = lo - seg_range.start..hi - seg_range.start;
                match read_segment(&inner, &what, manifest.version, seg, sub, &tx, &mut notes).await
                {
                    Ok(true) => {}
                    Ok(false) => break, // the reader went away
                    Err(e) => {
                        let _ = tx.send(Err(e)).await;
                        break;
                    }
                }
            }
            inner
                .record_repairs(&bname, &okey, &manifest.version.to_hex(), &notes)
                .await;
        });
        // Wait for the first piece, so that an unreadable object fails before any byte.
        let first = rx.recv().await;
        let first = match first {
            Some(Err(e)) => return Err(e),
            other => other,
        };
        let rest = futures::stream::unfold(rx, |mut rx| async move {
            rx.recv().await.map(|item| (item, rx))
        });
        let body = futures::stream::iter(first).chain(rest).boxed();
        Ok(GetOutput { info, range, body })
    }

    /// Changes stored headers of the current version (`Some` sets, `None` removes) without
    /// touching its data, etag or last-modified time: a metadata-only commit over the same
    /// shards (used for object tagging). Fails with `PreconditionFailed` if the object was
    /// replaced meanwhile.
    pub async fn set_object_headers(
        &self,
        bucket: &str,
        key: &str,
        updates: &[(String, Option<String>)],
    ) -> Result<()> {
        let (bname, okey) = (bucket_name(bucket)?, object_key(key)?);
        let inner = &self.inner;
        let v = match inner.meta.get(&bname, &okey).await? {
            Some(v) if !v.version.delete_marker => v,
            _ => {
                return Err(EngineError::NoSuchKey {
                    bucket: bucket.to_string(),
                    key: key.to_string(),
                });
            }
        };
        let mut m = inner.decode_manifest(&v.version.manifest)?;
        for (name, value) in updates {
            m.headers.retain(|(n, _)| n != name);
            if let Some(value) = value {
                m.headers.push((name.clone(), value.clone()));
            }
        }
        let new = NewVersion {
            manifest: m.encode(&inner.manifest_key)?,
            ..v.version.clone()
        };
        let cond = CommitCondition::IfMatch(v.version.etag.clone());
        let superseded = inner.meta.commit(&bname, &okey, &new, &cond).await?;
        if let Some(prev) = superseded.previous
            && prev.version.version_id != v.version.version_id
        {
            // A write with the same etag landed in between: put it back, keep ours out.
            let restored = inner
                .meta
                .commit(
                    &bname,
                    &okey,
                    &prev.version,
                    &CommitCondition::IfMatch(v.version.etag),
                )
                .await;
            if restored.is_err() {
                tracing::error!(
                    "{bucket}/{key}: could not restore a concurrent write after a header update"
                );
            }
            return Err(EngineError::PreconditionFailed(format!(
                "{bucket}/{key} was replaced during the update"
            )));
        }
        Ok(())
    }

    /// Deletes an object if `condition` holds; its shards go to the GC queue. Returns the
    /// version id of what was deleted, if anything.
    ///
    /// The condition is decided by the metadata store in the delete's own transaction. A
    /// conditional delete (`If-Match: *` or `If-Match: <etag>`) of a key with no live version
    /// (absent, or a delete marker) fails with [`EngineError::NoSuchKey`]; one whose etag
    /// differs fails with [`EngineError::PreconditionFailed`]. This is what Amazon S3 answers
    /// (404 `NoSuchKey`, 412 `PreconditionFailed`): its user guide says a missing key "fails"
    /// a conditional delete, and S3 measurably answers 404 for it, `If-Match: *` included
    /// (the older DeleteObject reference promised 204 for directory buckets, which would
    /// report a stale compare-and-delete as done; we do not follow that). An unconditional
    /// delete of a missing key is `Ok(None)`.
    pub async fn delete_object(
        &self,
        bucket: &str,
        key: &str,
        condition: &DeleteCondition,
    ) -> Result<Option<String>> {
        let (bname, okey) = (bucket_name(bucket)?, object_key(key)?);
        let superseded = match self.inner.meta.delete(&bname, &okey, condition).await {
            Ok(s) => s,
            Err(
                archipel_meta::MetaError::NoLiveVersion { .. }
                | archipel_meta::MetaError::EtagMismatch { current: None, .. },
            ) => {
                return Err(EngineError::NoSuchKey {
                    bucket: bucket.to_string(),
                    key: key.to_string(),
                });
            }
            Err(e) => return Err(e.into()),
        };
        match superseded.previous {
            Some(prev) => {
                self.inner
                    .collect_manifest_bytes(&prev.version.manifest)
                    .await?;
                Ok(Some(prev.version.version_id.to_string()))
            }
            None => Ok(None),
        }
    }
}
