//! Reclaiming space: the GC queue (blobs of superseded, deleted and failed writes) and the
//! orphan scan (blobs no manifest knows, left by a crash between writing shards and
//! committing).
//!
//! * [`Engine::gc_once`] deletes queued blobs older than the GC delay; a provider that is down
//!   keeps its entries, which are retried on the next run.
//! * [`Engine::reclaim_orphans`] lists every provider, reads each unknown blob's shard header
//!   (self-describing: with the master key it names its bucket, key, version and part), and
//!   deletes the blob if neither the current version of that key nor an upload in progress
//!   references its segment, and it is older than `min_age` (so writes in flight in other
//!   gateways are safe). Segments being written by this process are always skipped.
//! * [`Engine::sweep_temp`] removes what interrupted puts left in the providers' temporary
//!   areas, by age.
//! * [`Engine::spawn_gc`] runs both in the background as an owned, cancellable task.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use archipel_codec::{Manifest, SegmentId, ShardHeader, ShardIdentity};
use archipel_meta::{
    BucketName, GcBlob, GcEntry, ObjectKey, PartQuery, UnixMillis, UploadQuery, UploadRef,
};
use archipel_provider::{BlobName, ErrorKind, Provider, ProviderExt};
use futures::StreamExt;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::engine::{Engine, Inner};
use crate::error::{EngineError, Result};
use crate::write::{BLOB_PREFIX, parse_blob_name};

/// What one GC run did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct GcReport {
    /// Blobs deleted (or found already gone) and removed from the queue.
    pub deleted: u64,
    /// Blobs whose provider failed or is not configured: kept for the next run.
    pub failed: u64,
    /// Blobs younger than the GC delay: kept for a later run.
    pub waiting: u64,
}

/// What one orphan scan found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OrphanReport {
    /// Blobs examined.
    pub scanned: u64,
    /// Blobs a committed version or an upload in progress references.
    pub referenced: u64,
    /// Orphans deleted.
    pub deleted: u64,
    /// Orphans (or possible orphans) too young to delete, or being written here.
    pub young: u64,
    /// Blobs whose header could not be read or verified: left alone (they may be corrupt
    /// shards of live objects, or another vault's).
    pub unrecognized: u64,
    /// Providers that could not be listed or blobs that could not be deleted.
    pub errors: Vec<String>,
}

/// A background job: cancel it, or wait for it.
#[derive(Debug)]
pub struct JobHandle {
    stop: watch::Sender<bool>,
    task: JoinHandle<()>,
}

impl JobHandle {
    /// Asks the job to stop and waits until it has.
    pub async fn stop(self) {
        let _ = self.stop.send(true);
        let _ = self.task.await;
    }
}

const GC_PAGE: usize = 256;
const GC_PARALLEL: usize = 16;

impl Engine {
    /// Sweeps every provider's leftovers of interrupted puts older than `older_than` (see
    /// [`Provider::sweep_temp`]): how many were removed, and the providers that failed.
    pub async fn sweep_temp(&self, older_than: Duration) -> (u64, Vec<String>) {
        let set = self.inner.set();
        let sweeps = set
            .providers
            .iter()
            .map(|(name, p)| async move { (name.clone(), p.sweep_temp(older_than).await) });
        let mut removed = 0;
        let mut failed = Vec::new();
        for (name, r) in futures::future::join_all(sweeps).await {
            match r {
                Ok(n) => removed += n,
                Err(e) => failed.push(format!("{name}: {e}")),
            }
        }
        (removed, failed)
    }

    /// Deletes the queued blobs that are older than the GC delay.
    pub async fn gc_once(&self) -> Result<GcReport> {
        let inner = &self.inner;
        let mut report = GcReport::default();
        let delay_ms = inner.opts.gc_delay.as_millis().min(i64::MAX as u128) as i64;
        let ripe_before = UnixMillis::now().0.saturating_sub(delay_ms);
        let mut after: Option<GcEntry> = None;
        loop {
            let page = inner.meta.peek_gc(after.as_ref(), GC_PAGE).await?;
            let Some(last) = page.last().cloned() else {
                break;
            };
            let (ripe, young): (Vec<GcEntry>, Vec<GcEntry>) =
                page.into_iter().partition(|e| e.enqueued.0 <= ripe_before);
            report.waiting += young.len() as u64;
            let outcomes: Vec<(GcBlob, bool)> = futures::stream::iter(ripe)
                .map(|e| {
                    let inner = inner.clone();
                    async move {
                        let ok = delete_blob(&inner, &e.blob).await;
                        (e.blob, ok)
                    }
                })
                .buffer_unordered(GC_PARALLEL)
                .collect()
                .await;
            let done: Vec<GcBlob> = outcomes
                .iter()
                .filter(|(_, ok)| *ok)
                .map(|(b, _)| b.clone())
                .collect();
            report.failed += (outcomes.len() - done.len()) as u64;
            report.deleted += inner.meta.remove_gc(&done).await?;
            // Entries are oldest first: once one is too young, all later ones are too.
            if !young.is_empty() {
                break;
            }
            after = Some(last);
        }
        Ok(report)
    }

    /// Finds and deletes orphaned shards older than `min_age`; see the module docs.
    pub async fn reclaim_orphans(&self, min_age: Duration) -> Result<OrphanReport> {
        let inner = &self.inner;
        let mut report = OrphanReport::default();
        let mut verdicts: HashMap<SegmentId, Verdict> = HashMap::new();
        let cutoff = SystemTime::now().checked_sub(min_age);
        let set = inner.set();
        for (name, provider) in &set.providers {
            let mut start: Option<BlobName> = None;
            loop {
                let page = match provider
                    .list(
                        BLOB_PREFIX,
                        start.as_ref(),
                        provider.capabilities().max_list_page,
                    )
                    .await
                {
                    Ok(p) => p,
                    Err(e) => {
                        report.errors.push(e.to_string());
                        break;
                    }
                };
                start = page.blobs.last().map(|b| b.name.clone());
                for blob in &page.blobs {
                    report.scanned += 1;
                    let Some((segment, _)) = parse_blob_name(blob.name.as_str()) else {
                        report.unrecognized += 1;
                        continue;
                    };
                    let inflight = inner
                        .inflight
                        .lock()
                        .unwrap_or_else(std::sync::PoisonError::into_inner)
                        .contains(&segment);
                    let old_enough = match (blob.modified, cutoff) {
                        (Some(m), Some(c)) => m <= c,
                        (_, None) => false,
                        (None, Some(_)) => min_age.is_zero(),
                    };
                    if inflight || !old_enough {
                        report.young += 1;
                        continue;
                    }
                    let verdict = match verdicts.get(&segment) {
                        Some(v) => *v,
                        None => {
                            let v = judge(inner, provider.as_ref(), &blob.name, &segment).await;
                            verdicts.insert(segment, v);
                            v
                        }
                    };
                    match verdict {
                        Verdict::Referenced => report.referenced += 1,
                        Verdict::Unrecognized => report.unrecognized += 1,
                        Verdict::Unknown => report
                            .errors
                            .push(format!("{name}: {}: could not check the index", blob.name)),
                        Verdict::Orphan => match provider.delete(&blob.name).await {
                            Ok(()) => report.deleted += 1,
                            Err(e) => report.errors.push(e.to_string()),
                        },
                    }
                }
                if !page.more {
                    break;
                }
            }
        }
        Ok(report)
    }

    /// Runs the GC (and, every `orphan_every` runs, the orphan scan with `orphan_min_age`) in
    /// the background: every `interval`, and soon after anything is queued.
    pub fn spawn_gc(
        &self,
        interval: Duration,
        orphan_every: u32,
        orphan_min_age: Duration,
    ) -> JobHandle {
        let (stop, mut stopped) = watch::channel(false);
        let engine = self.clone();
        let task = tokio::spawn(async move {
            let mut runs = 0u32;
            loop {
                if let Err(e) = engine.gc_once().await {
                    tracing::warn!("gc: {e}");
                }
                runs = runs.wrapping_add(1);
                if orphan_every > 0 && runs.is_multiple_of(orphan_every) {
                    match engine.reclaim_orphans(orphan_min_age).await {
                        Ok(r) if r.deleted > 0 || !r.errors.is_empty() => {
                            tracing::info!("orphan scan: {r:?}");
                        }
                        Ok(_) => {}
                        Err(e) => tracing::warn!("orphan scan: {e}"),
                    }
                }
                tokio::select! {
                    _ = stopped.changed() => return,
                    () = tokio::time::sleep(interval) => {}
                    () = engine.inner.gc_wake.notified() => {
                        // Let the GC delay pass before looking again.
                        tokio::select! {
                            _ = stopped.changed() => return,
                            () = tokio::time::sleep(engine.inner.opts.gc_delay.min(interval)) => {}
                        }
                    }
                }
            }
        });
        JobHandle { stop, task }
    }
}

async fn delete_blob(inner: &Arc<Inner>, blob: &GcBlob) -> bool {
    let Some(provider) = inner.provider(blob.provider.as_str()) else {
        return false;
    };
    let Ok(name) = BlobName::new(blob.blob.clone()) else {
        return true; // not a name any provider can hold: nothing to delete
    };
    match provider.delete(&name).await {
        Ok(()) => true,
        Err(e) if e.kind() == ErrorKind::NotFound => true,
        Err(e) => {
            tracing::debug!("gc: {e}");
            false
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Verdict {
    Referenced,
    Orphan,
    Unrecognized,
    Unknown,
}

/// Reads the blob's header and asks the index whether its segment is referenced.
async fn judge(
    inner: &Inner,
    provider: &dyn Provider,
    blob: &BlobName,
    segment: &SegmentId,
) -> Verdict {
    let Some(identity) = read_identity(inner, provider, blob, segment).await else {
        return Verdict::Unrecognized;
    };
    match referenced(inner, &identity, segment).await {
        Ok(true) => Verdict::Referenced,
        Ok(false) => Verdict::Orphan,
        Err(e) => {
            tracing::warn!("orphan scan: {e}");
            Verdict::Unknown
        }
    }
}

async fn read_identity(
    inner: &Inner,
    provider: &dyn Provider,
    blob: &BlobName,
    segment: &SegmentId,
) -> Option<ShardIdentity> {
    let fixed = provider
        .get_bytes(blob, Some(0..ShardHeader::FIXED_LEN as u64))
        .await
        .ok()?;
    let len = ShardHeader::peek_len(&fixed).ok()?;
    let bytes = provider.get_bytes(blob, Some(0..len as u64)).await.ok()?;
    let header = ShardHeader::parse(&bytes).ok()?;
    if &header.segment != segment {
        return None;
    }
    let key = header
        .wrapped_key
        .unwrap(&inner.master, &header.segment)
        .ok()?;
    header.open(&key).ok()
}

fn manifest_has(m: &Manifest, segment: &SegmentId) -> bool {
    m.segments.iter().any(|s| &s.segment == segment)
}

async fn referenced(inner: &Inner, id: &ShardIdentity, segment: &SegmentId) -> Result<bool> {
    let (Ok(bucket), Ok(key)) = (
        BucketName::new(id.bucket.clone()),
        ObjectKey::new(id.key.clone()),
    ) else {
        return Ok(false);
    };
    match inner.meta.get(&bucket, &key).await {
        Ok(Some(v)) if !v.version.delete_marker => {
            if let Ok(m) = inner.decode_manifest(&v.version.manifest)
                && manifest_has(&m, segment)
            {
                return Ok(true);
            }
        }
        Ok(_) => {}
        Err(archipel_meta::MetaError::NoSuchBucket { .. }) => return Ok(false),
        Err(e) => return Err(EngineError::from(e)),
    }
    if id.part_number == 0 {
        return Ok(false);
    }
    // A part of an upload in progress?
    let mut query = UploadQuery {
        prefix: id.key.clone(),
        max_uploads: archipel_meta::MAX_PAGE,
        ..UploadQuery::default()
    };
    loop {
        let page = inner.meta.list_uploads(&bucket, &query).await?;
        for u in page.uploads.iter().filter(|u| u.upload.key == key) {
            let r = UploadRef {
                bucket: bucket.clone(),
                key: key.clone(),
                upload_id: u.upload.upload_id.clone(),
            };
            let mut pq = PartQuery {
                after: None,
                max_parts: archipel_meta::MAX_PAGE,
            };
            loop {
                let parts = inner.meta.list_parts(&r, &pq).await?;
                for p in &parts.parts {
                    if let Ok(m) = inner.decode_manifest(&p.manifest)
                        && manifest_has(&m, segment)
                    {
                        return Ok(true);
                    }
                }
                match parts.next_after {
                    Some(n) if parts.is_truncated => pq.after = Some(n),
                    _ => break,
                }
            }
        }
        if !page.is_truncated {
            return Ok(false);
        }
        query.key_marker = page.next_key_marker;
        query.upload_id_marker = page.next_upload_id_marker;
    }
}
