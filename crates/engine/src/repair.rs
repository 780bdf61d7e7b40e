//! Repair: giving back the redundancy a version lost — shards never written (a provider was
//! down or straggled while the object was written), missing (a read, a scrub or the inventory
//! did not find them) or corrupt (a check failed).
//!
//! * [`Engine::repair_once`] takes entries from the repair queue, groups them by object
//!   version and repairs the most endangered versions first (those with the fewest shards to
//!   spare). For each shard it first looks: a shard that is there and verifies (a straggling
//!   put that finished after all, a provider that was only briefly unreachable) is just
//!   recorded. Otherwise the shard is rebuilt from any `k` others — decrypted, checked and
//!   re-encoded through the read path; encryption is deterministic per (key, segment, stripe,
//!   shard), so the rebuilt shard is byte-identical to the lost one — onto its own provider
//!   when that one answers, else onto a spare the bucket's policy allows. The new placement is
//!   committed with [`MetaStore::replace_manifest`] (only if the version and its manifest are
//!   still what was read), and only then is a shard's old blob collected. Entries whose version
//!   was overwritten or deleted are dropped; entries that cannot be repaired yet (no provider
//!   to write to) stay queued.
//! * [`Engine::inventory_once`] lists what every reachable provider holds and queues each
//!   shard a committed version places on a provider that does not list it: how a provider that
//!   lost its data (wiped, restored from an old backup) gets its shards back without anyone
//!   reading them first.
//!
//! Both are bounded and resumable by construction: the queue is the state, each entry is
//! removed only once its shard is back, and a crash in between repeats at most the rebuild.
//!
//! [`MetaStore::replace_manifest`]: archipel_meta::MetaStore::replace_manifest

use std::collections::{BTreeMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use archipel_codec::{
    Manifest, ManifestSegment, SegmentId, SegmentLayout, SegmentSpec, ShardHeader, ShardIdentity,
    ShardIdx, ShardPlacement,
};
use archipel_meta::{
    BucketName, GcBlob, ListQuery, ObjectKey, ProviderName, RepairEntry, RepairItem, UnixMillis,
    VersionId,
};
use archipel_provider::{BlobName, ProviderExt};
use futures::StreamExt;

use crate::engine::Engine;
use crate::error::{EngineError, Result};
use crate::placement::Placement;
use crate::read::RepairReason;
use crate::write::{
    BLOB_PREFIX, Patience, SegmentKeys, ShardTarget, blob_name, parse_blob_name, rebuild_shard,
};

/// How a repair round may run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RepairOptions {
    /// Queue entries taken per round at most.
    pub max_entries: usize,
    /// Object versions repaired at once.
    pub concurrency: usize,
    /// Rebuilt shard bytes written per second at most (unlimited when absent).
    pub rate_bytes_per_s: Option<u64>,
}

impl Default for RepairOptions {
    fn default() -> Self {
        RepairOptions {
            max_entries: 1000,
            concurrency: 4,
            rate_bytes_per_s: None,
        }
    }
}

/// What one repair round did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RepairReport {
    /// Queue entries looked at.
    pub examined: u64,
    /// Shards rebuilt (on their own provider or a spare).
    pub rebuilt: u64,
    /// Of those, rebuilt on a spare provider.
    pub moved: u64,
    /// Shards found there and intact after all (recorded, nothing rebuilt).
    pub found_intact: u64,
    /// Entries dropped because their version is gone or no longer places that shard there.
    pub obsolete: u64,
    /// Entries kept for a later round (no provider to write to, or the rebuild failed).
    pub waiting: u64,
    /// Shard bytes written.
    pub bytes_written: u64,
}

/// What one inventory found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct InventoryReport {
    /// Providers listed.
    pub providers_listed: u64,
    /// Providers that could not be listed (left for the next inventory).
    pub providers_skipped: Vec<String>,
    /// Object versions whose placement was checked.
    pub versions: u64,
    /// Shards placed on a listed provider that it does not hold: queued for repair.
    pub missing: u64,
}

/// Running totals since the engine started, for `status` and `/metrics`.
#[derive(Debug, Default)]
pub(crate) struct RepairTotals {
    pub(crate) rebuilt: AtomicU64,
    pub(crate) moved: AtomicU64,
    pub(crate) found_intact: AtomicU64,
    pub(crate) obsolete: AtomicU64,
    pub(crate) failed: AtomicU64,
    pub(crate) bytes_written: AtomicU64,
    pub(crate) rounds: AtomicU64,
    pub(crate) missing_found: AtomicU64,
    /// The queue's length at the end of the last round.
    pub(crate) queued: AtomicU64,
}

/// Repair totals since the engine started.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RepairStats {
    /// Shards rebuilt.
    pub rebuilt: u64,
    /// Of those, onto a spare provider.
    pub moved: u64,
    /// Queued shards found intact.
    pub found_intact: u64,
    /// Entries dropped as obsolete.
    pub obsolete: u64,
    /// Rebuilds that failed (their entries stayed queued).
    pub failed: u64,
    /// Shard bytes written by repair.
    pub bytes_written: u64,
    /// Repair rounds run.
    pub rounds: u64,
    /// Shards the inventory found missing.
    pub missing_found: u64,
    /// Shards queued, as of the end of the last round.
    pub queued: u64,
}

/// How long a provider gets to answer the check before a round writes to it.
const PROBE_TIMEOUT: Duration = Duration::from_secs(2);

/// One object version's queued shards.
struct Group {
    bucket: BucketName,
    key: ObjectKey,
    version: VersionId,
    entries: Vec<RepairEntry>,
}

/// Paces writes to a byte rate.
struct Pace {
    started: Instant,
    bytes: AtomicU64,
    rate: Option<u64>,
}

impl Pace {
    async fn add(&self, n: u64) {
        let total = self.bytes.fetch_add(n, Ordering::Relaxed) + n;
        if let Some(rate) = self.rate.filter(|r| *r > 0) {
            let due = Duration::from_secs_f64(total as f64 / rate as f64);
            let elapsed = self.started.elapsed();
            if due > elapsed {
                tokio::time::sleep(due - elapsed).await;
            }
        }
    }
}

/// What repairing one shard came to.
enum Outcome {
    /// Intact where the manifest (or the entry) says: nothing written.
    Intact(Option<ShardPlacement>),
    /// Rebuilt here (bytes written).
    Rebuilt(ShardPlacement, u64, bool),
    /// Nothing to do for this entry any more.
    Obsolete,
    /// Not now.
    Wait(String),
}

impl Engine {
    /// Repair totals since the engine started.
    pub fn repair_stats(&self) -> RepairStats {
        let t = &self.inner.repairs;
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        RepairStats {
            rebuilt: get(&t.rebuilt),
            moved: get(&t.moved),
            found_intact: get(&t.found_intact),
            obsolete: get(&t.obsolete),
            failed: get(&t.failed),
            bytes_written: get(&t.bytes_written),
            rounds: get(&t.rounds),
            missing_found: get(&t.missing_found),
            queued: get(&t.queued),
        }
    }

    /// Where `bucket/key`'s shards are: for each segment, `(shard index, provider)` of every
    /// shard its manifest places, in shard order (a degraded segment lists fewer than `k + m`).
    pub async fn locate_object(
        &self,
        bucket: &str,
        key: &str,
    ) -> Result<Vec<Vec<(usize, String)>>> {
        let (b, k) = (
            crate::engine::bucket_name(bucket)?,
            crate::engine::object_key(key)?,
        );
        let v = self
            .inner
            .meta
            .get(&b, &k)
            .await?
            .filter(|v| !v.version.delete_marker)
            .ok_or_else(|| EngineError::NoSuchKey {
                bucket: bucket.to_string(),
                key: key.to_string(),
            })?;
        let m = self.inner.decode_manifest(&v.version.manifest)?;
        Ok(m.segments
            .iter()
            .map(|s| {
                s.placement
                    .iter()
                    .map(|p| (p.shard.get(), p.provider.clone()))
                    .collect()
            })
            .collect())
    }

    /// One round over the repair queue; see the module docs.
    pub async fn repair_once(&self, opts: &RepairOptions) -> Result<RepairReport> {
        let inner = &self.inner;
        let mut entries: Vec<RepairEntry> = Vec::new();
        let mut after: Option<RepairEntry> = None;
        while entries.len() < opts.max_entries.max(1) {
            let want = (opts.max_entries.max(1) - entries.len()).min(archipel_meta::MAX_PAGE);
            let page = inner.meta.peek_repair(after.as_ref(), want).await?;
            let Some(last) = page.last().cloned() else {
                break;
            };
            let full = page.len() == want;
            entries.extend(page);
            after = Some(last);
            if !full {
                break;
            }
        }
        let mut report = RepairReport {
            examined: entries.len() as u64,
            ..RepairReport::default()
        };
        inner.repairs.rounds.fetch_add(1, Ordering::Relaxed);
        if entries.is_empty() {
            inner.repairs.queued.store(0, Ordering::Relaxed);
            return Ok(report);
        }

        // Which providers answer now (a hung one would hold the round).
        let answering = self.answering_providers().await;

        // One group per object version.
        let mut groups: BTreeMap<(String, Vec<u8>, String), Group> = BTreeMap::new();
        for e in entries {
            let id = (
                e.item.bucket.to_string(),
                e.item.key.as_str().as_bytes().to_vec(),
                e.item.version_id.as_str().to_string(),
            );
            groups
                .entry(id)
                .or_insert_with(|| Group {
                    bucket: e.item.bucket.clone(),
                    key: e.item.key.clone(),
                    version: e.item.version_id.clone(),
                    entries: Vec::new(),
                })
                .entries
                .push(e);
        }
        // Most endangered first: the fewest shards to spare.
        let mut ranked = Vec::with_capacity(groups.len());
        for g in groups.into_values() {
            let spare = self.spare_shards(&g).await;
            ranked.push((spare, g));
        }
        ranked.sort_by_key(|(spare, _)| *spare);

        let pace = Pace {
            started: Instant::now(),
            bytes: AtomicU64::new(0),
            rate: opts.rate_bytes_per_s,
        };
        let answering = &answering;
        let pace = &pace;
        let outcomes: Vec<RepairReport> =
            futures::stream::iter(ranked.into_iter().map(|(_, g)| async move {
                match self.repair_group(&g, answering, pace).await {
                    Ok(r) => r,
                    Err(e) => {
                        tracing::warn!(
                            "repair of {}/{} (version {}): {e}",
                            g.bucket,
                            g.key.as_str(),
                            g.version.as_str()
                        );
                        RepairReport {
                            waiting: g.entries.len() as u64,
                            ..RepairReport::default()
                        }
                    }
                }
            }))
            .buffer_unordered(opts.concurrency.max(1))
            .collect()
            .await;
        for r in outcomes {
            report.rebuilt += r.rebuilt;
            report.moved += r.moved;
            report.found_intact += r.found_intact;
            report.obsolete += r.obsolete;
            report.waiting += r.waiting;
            report.bytes_written += r.bytes_written;
        }
        let t = &inner.repairs;
        t.rebuilt.fetch_add(report.rebuilt, Ordering::Relaxed);
        t.moved.fetch_add(report.moved, Ordering::Relaxed);
        t.found_intact
            .fetch_add(report.found_intact, Ordering::Relaxed);
        t.obsolete.fetch_add(report.obsolete, Ordering::Relaxed);
        t.bytes_written
            .fetch_add(report.bytes_written, Ordering::Relaxed);
        if let Ok(n) = inner.meta.count_repair().await {
            t.queued.store(n, Ordering::Relaxed);
        }
        if report.rebuilt + report.found_intact > 0 {
            tracing::info!(
                "repair: {} shards rebuilt ({} on spares), {} found intact, {} obsolete, {} waiting",
                report.rebuilt,
                report.moved,
                report.found_intact,
                report.obsolete,
                report.waiting
            );
        }
        Ok(report)
    }

    /// The providers that answer a one-blob listing within [`PROBE_TIMEOUT`] now (a provider
    /// that does is no longer counted as down; one that does not is).
    pub(crate) async fn answering_providers(&self) -> HashSet<String> {
        let set = self.inner.set();
        let probes = set.infos.iter().map(|info| {
            let name = info.name.clone();
            let provider = set.providers.get(&name).cloned();
            let inner = self.inner.clone();
            async move {
                let provider = provider?;
                match tokio::time::timeout(PROBE_TIMEOUT, provider.list(BLOB_PREFIX, None, 1)).await
                {
                    Ok(Ok(_)) => {
                        inner.health.record_alive(&name);
                        Some(name)
                    }
                    Ok(Err(e)) => {
                        tracing::debug!("repair: provider {name} does not answer: {e}");
                        inner.health.record_error(&name);
                        None
                    }
                    Err(_) => {
                        inner.health.record_error(&name);
                        None
                    }
                }
            }
        });
        futures::future::join_all(probes)
            .await
            .into_iter()
            .flatten()
            .collect()
    }

    /// How many shards the group's version can still lose (its worst segment), counting the
    /// queued ones as lost; `i64::MAX` when it cannot be read (it is looked at in its turn).
    async fn spare_shards(&self, g: &Group) -> i64 {
        let Ok(Some(v)) = self.inner.meta.get(&g.bucket, &g.key).await else {
            return i64::MAX;
        };
        let Ok(m) = self.inner.decode_manifest(&v.version.manifest) else {
            return i64::MAX;
        };
        let bad: HashSet<(&str, &str)> = g
            .entries
            .iter()
            .map(|e| (e.item.blob.provider.as_str(), e.item.blob.blob.as_str()))
            .collect();
        m.segments
            .iter()
            .map(|s| {
                let good = s
                    .placement
                    .iter()
                    .filter(|p| !bad.contains(&(p.provider.as_str(), p.blob.as_str())))
                    .count() as i64;
                good - s.params.k() as i64
            })
            .min()
            .unwrap_or(i64::MAX)
    }

    /// Repairs the queued shards of one version; the entries done are removed from the queue.
    async fn repair_group(
        &self,
        g: &Group,
        answering: &HashSet<String>,
        pace: &Pace,
    ) -> Result<RepairReport> {
        let inner = &self.inner;
        let mut report = RepairReport::default();
        let all: Vec<GcBlob> = g.entries.iter().map(|e| e.item.blob.clone()).collect();
        let current = inner.meta.get(&g.bucket, &g.key).await?;
        let Some(current) = current.filter(|v| {
            !v.version.delete_marker && v.version.version_id.as_str() == g.version.as_str()
        }) else {
            // Parts of a multipart upload still in progress carry the version id it will
            // commit: they wait for the completion (or the abort, which makes them obsolete).
            if self.upload_in_progress(g).await? {
                report.waiting = g.entries.len() as u64;
                return Ok(report);
            }
            report.obsolete = inner.meta.remove_repair(&all).await?;
            return Ok(report);
        };
        let old_bytes = current.version.manifest.clone();
        let mut manifest = inner.decode_manifest(&old_bytes)?;
        let policy = inner.policy(&g.bucket).await?;
        let mut done: Vec<GcBlob> = Vec::new();
        let mut retire: Vec<GcBlob> = Vec::new();
        let mut changed = false;
        for e in &g.entries {
            let outcome = self
                .repair_shard(&manifest, e, &policy, answering, pace)
                .await;
            match outcome {
                Ok(Outcome::Obsolete) => {
                    report.obsolete += 1;
                    done.push(e.item.blob.clone());
                }
                Ok(Outcome::Intact(add)) => {
                    report.found_intact += 1;
                    if let Some(p) = add {
                        changed |= set_placement(&mut manifest, &e.item.blob, p, &mut retire);
                    }
                    done.push(e.item.blob.clone());
                }
                Ok(Outcome::Rebuilt(p, bytes, moved)) => {
                    report.rebuilt += 1;
                    report.moved += u64::from(moved);
                    report.bytes_written += bytes;
                    changed |= set_placement(&mut manifest, &e.item.blob, p, &mut retire);
                    done.push(e.item.blob.clone());
                }
                Ok(Outcome::Wait(why)) => {
                    tracing::debug!(
                        "repair of {}/{} shard {}: {why}",
                        g.bucket,
                        g.key.as_str(),
                        e.item.blob.blob
                    );
                    report.waiting += 1;
                }
                Err(err) => {
                    inner.repairs.failed.fetch_add(1, Ordering::Relaxed);
                    tracing::warn!(
                        "repair of {}/{} shard {} on {}: {err}",
                        g.bucket,
                        g.key.as_str(),
                        e.item.blob.blob,
                        e.item.blob.provider
                    );
                    report.waiting += 1;
                }
            }
        }
        if changed {
            let new_bytes = manifest.encode(&inner.manifest_key)?;
            let replaced = inner
                .meta
                .replace_manifest(&g.bucket, &g.key, &g.version, &old_bytes, &new_bytes)
                .await?;
            if !replaced {
                // Overwritten or repaired elsewhere meanwhile: the next round looks again
                // (what was written here is either referenced by then or the orphan scan's).
                report.waiting += done.len() as u64;
                report.rebuilt = 0;
                report.moved = 0;
                report.found_intact = 0;
                return Ok(report);
            }
            // Old locations of moved shards are reclaimed only now that nothing points there.
            inner.collect(retire).await?;
        }
        inner.meta.remove_repair(&done).await?;
        Ok(report)
    }

    /// Whether a multipart upload of the group's key that will commit the group's version is
    /// in progress.
    async fn upload_in_progress(&self, g: &Group) -> Result<bool> {
        let mut q = archipel_meta::UploadQuery {
            prefix: g.key.as_str().to_string(),
            delimiter: None,
            key_marker: None,
            upload_id_marker: None,
            max_uploads: archipel_meta::MAX_PAGE,
        };
        loop {
            let page = self.inner.meta.list_uploads(&g.bucket, &q).await?;
            for u in &page.uploads {
                if u.upload.key != g.key {
                    continue;
                }
                if let Ok(t) = self.inner.decode_manifest(&u.upload.metadata)
                    && t.version.to_hex() == g.version.as_str()
                {
                    return Ok(true);
                }
            }
            if !page.is_truncated {
                return Ok(false);
            }
            match (page.next_key_marker, page.next_upload_id_marker) {
                (Some(k), u) => {
                    q.key_marker = Some(k);
                    q.upload_id_marker = u;
                }
                (None, _) => return Ok(false),
            }
        }
    }

    /// Repairs one queued shard of `manifest`'s version (the manifest itself is not changed
    /// here).
    async fn repair_shard(
        &self,
        manifest: &Manifest,
        e: &RepairEntry,
        policy: &crate::placement::Policy,
        answering: &HashSet<String>,
        pace: &Pace,
    ) -> Result<Outcome> {
        let inner = &self.inner;
        let Some((segment, shard)) = parse_blob_name(&e.item.blob.blob) else {
            return Ok(Outcome::Obsolete);
        };
        let Some(seg) = manifest.segments.iter().find(|s| s.segment == segment) else {
            return Ok(Outcome::Obsolete);
        };
        let shard = usize::from(shard);
        if shard >= seg.params.n() {
            return Ok(Outcome::Obsolete);
        }
        let queued_at = e.item.blob.provider.as_str();
        let placed = seg.placement.iter().find(|p| p.shard.get() == shard);
        match placed {
            // Since moved elsewhere: this entry is about a place nothing uses.
            Some(p) if p.provider != queued_at || p.blob != e.item.blob.blob => {
                return Ok(Outcome::Obsolete);
            }
            _ => {}
        }
        let here = ShardPlacement {
            shard: ShardIdx(shard as u8),
            provider: queued_at.to_string(),
            blob: e.item.blob.blob.clone(),
        };
        // Look first: it may be there after all.
        if answering.contains(queued_at) {
            let (_, verdict) = self.scrub_shard(manifest.version, seg, &here).await;
            if verdict.is_ok() {
                return Ok(Outcome::Intact(placed.is_none().then_some(here)));
            }
        }
        let others: Vec<ShardPlacement> = seg
            .placement
            .iter()
            .filter(|p| p.shard.get() != shard)
            .cloned()
            .collect();
        if others.len() < seg.params.k() {
            return Ok(Outcome::Wait(format!(
                "only {} other shards are placed, {} needed to rebuild",
                others.len(),
                seg.params.k()
            )));
        }
        // Its own provider if it answers (and still exists), else a spare the policy allows.
        let own = answering.contains(queued_at)
            && inner.provider(queued_at).is_some()
            && !others.iter().any(|p| p.provider == queued_at);
        let target = if own {
            Some(queued_at.to_string())
        } else {
            let used: Vec<&str> = others.iter().map(|p| p.provider.as_str()).collect();
            let candidates: Vec<_> = inner
                .set()
                .infos
                .iter()
                .filter(|i| answering.contains(&i.name) && !used.contains(&i.name.as_str()))
                .cloned()
                .collect();
            let mut slots: Vec<String> = vec![String::new(); seg.params.n()];
            for p in &seg.placement {
                if let Some(s) = slots.get_mut(p.shard.get()) {
                    s.clone_from(&p.provider);
                }
            }
            if let Some(s) = slots.get_mut(shard) {
                *s = queued_at.to_string();
            }
            // Every provider of the vault is ranked, so the rules count the others' labels.
            let mut all = candidates.clone();
            for info in inner.set().infos.iter() {
                if used.contains(&info.name.as_str()) {
                    all.push(info.clone());
                }
            }
            policy
                .spare(
                    &all,
                    segment.as_bytes(),
                    &Placement { providers: slots },
                    shard,
                )
                .filter(|name| candidates.iter().any(|c| &c.name == name))
        };
        let Some(target) = target else {
            return Ok(Outcome::Wait(format!(
                "{queued_at} does not answer and no spare provider fits the policy"
            )));
        };
        let blob = if own {
            BlobName::new(e.item.blob.blob.clone())
                .map_err(|e| EngineError::Internal(format!("blob name: {e}")))?
        } else {
            blob_name(&segment, shard)?
        };
        let data_key = seg.wrapped_key.unwrap(&inner.master, &seg.segment)?;
        let identity = self.identity_of(manifest, seg, &others, &data_key).await;
        let keys = SegmentKeys {
            spec: SegmentSpec {
                version: manifest.version,
                segment,
                params: seg.params,
            },
            data_key,
            wrapped: seg.wrapped_key.clone(),
        };
        // Rebuilt from the others only.
        let from = ManifestSegment {
            placement: others,
            ..seg.clone()
        };
        let what = format!("{}/{} (repair)", manifest.bucket, manifest.key);
        let target = ShardTarget {
            shard,
            provider: target,
            blob,
        };
        rebuild_shard(
            inner,
            &keys,
            &identity,
            &what,
            &from,
            target.clone(),
            Patience::background(),
        )
        .await?;
        let bytes = SegmentLayout::new(seg.params, seg.len, u64::from(seg.header_len)).shard_len();
        pace.add(bytes).await;
        Ok(Outcome::Rebuilt(
            ShardPlacement {
                shard: ShardIdx(shard as u8),
                provider: target.provider,
                blob: target.blob.as_str().to_string(),
            },
            bytes,
            !own,
        ))
    }

    /// The identity sealed in the segment's other shards (what its headers say), so a rebuilt
    /// shard names its object exactly as they do; from the manifest if none can be read.
    pub(crate) async fn identity_of(
        &self,
        manifest: &Manifest,
        seg: &ManifestSegment,
        others: &[ShardPlacement],
        key: &archipel_codec::DataKey,
    ) -> ShardIdentity {
        for p in others {
            let (Some(provider), Ok(blob)) = (
                self.inner.provider(&p.provider),
                BlobName::new(p.blob.clone()),
            ) else {
                continue;
            };
            let Ok(bytes) = provider
                .get_bytes(&blob, Some(0..u64::from(seg.header_len)))
                .await
            else {
                continue;
            };
            if let Ok(id) = ShardHeader::parse(&bytes)
                .and_then(|h| h.open(key))
                .map_err(|_| ())
                .and_then(|id| {
                    if id.version == manifest.version {
                        Ok(id)
                    } else {
                        Err(())
                    }
                })
            {
                return id;
            }
        }
        ShardIdentity {
            version: manifest.version,
            timestamp_ms: manifest.timestamp_ms,
            part_number: seg.part_number,
            bucket: manifest.bucket.clone(),
            key: manifest.key.clone(),
        }
    }

    /// Lists every reachable provider and queues each shard that a committed version places
    /// on it and it does not hold; see the module docs.
    pub async fn inventory_once(&self) -> Result<InventoryReport> {
        self.inventory_of(None).await
    }

    /// [`Engine::inventory_once`] of one provider only (`None`: all of them) — what a failed
    /// audit starts, to find every shard the provider lost rather than only those sampled.
    pub async fn inventory_of(&self, only: Option<&str>) -> Result<InventoryReport> {
        let inner = &self.inner;
        let started = UnixMillis::now();
        let answering = self.answering_providers().await;
        let mut report = InventoryReport::default();
        // What each listed provider holds, as (segment, shard).
        let mut held: BTreeMap<String, HashSet<(SegmentId, u8)>> = BTreeMap::new();
        let set = inner.set();
        for info in &set.infos {
            if only.is_some_and(|o| o != info.name) {
                continue;
            }
            let Some(provider) = set.providers.get(&info.name) else {
                continue;
            };
            if !answering.contains(&info.name) {
                report.providers_skipped.push(info.name.clone());
                continue;
            }
            let mut names = HashSet::new();
            let ok = match provider.list_all(BLOB_PREFIX).await {
                Ok(blobs) => {
                    names.extend(
                        blobs
                            .iter()
                            .filter_map(|b| parse_blob_name(b.name.as_str())),
                    );
                    true
                }
                Err(e) => {
                    tracing::warn!("inventory: {} could not be listed: {e}", info.name);
                    false
                }
            };
            if ok {
                report.providers_listed += 1;
                held.insert(info.name.clone(), names);
            } else {
                report.providers_skipped.push(info.name.clone());
            }
        }
        if held.is_empty() {
            return Ok(report);
        }
        for bucket in inner.meta.list_buckets().await? {
            let mut q = ListQuery {
                prefix: String::new(),
                delimiter: None,
                start_after: None,
                max_keys: archipel_meta::MAX_PAGE,
            };
            loop {
                let page = inner.meta.list(&bucket.name, &q).await?;
                for o in &page.objects {
                    // Committed after the listings began: its shards may not have been listed.
                    if o.last_modified.0 >= started.0 {
                        continue;
                    }
                    let Some(v) = inner.meta.get(&bucket.name, &o.key).await? else {
                        continue;
                    };
                    if v.version.delete_marker {
                        continue;
                    }
                    let Ok(m) = inner.decode_manifest(&v.version.manifest) else {
                        continue;
                    };
                    report.versions += 1;
                    let mut items = Vec::new();
                    // Shards the manifest does not place at all (a degraded write whose queue
                    // entry is gone): queued under the provider the policy would choose.
                    let policy = inner.policy(&bucket.name).await.ok();
                    for s in &m.segments {
                        if only.is_some() || s.placement.len() >= s.params.n() {
                            continue;
                        }
                        for shard in 0..s.params.n() {
                            if s.placement.iter().any(|p| p.shard.get() == shard) {
                                continue;
                            }
                            // A provider holding none of the segment's other shards: the
                            // one the write left out, when it is still there (so an entry
                            // the write queued is the same entry).
                            let provider = policy
                                .as_ref()
                                .and_then(|p| self.spare_among(p, s, shard, "", false))
                                .or_else(|| set.infos.first().map(|i| i.name.clone()));
                            let (Some(provider), Ok(blob)) =
                                (provider, blob_name(&s.segment, shard))
                            else {
                                continue;
                            };
                            let Ok(provider) = ProviderName::new(provider) else {
                                continue;
                            };
                            items.push(RepairItem {
                                blob: GcBlob {
                                    provider,
                                    blob: blob.as_str().to_string(),
                                },
                                bucket: bucket.name.clone(),
                                key: o.key.clone(),
                                version_id: v.version.version_id.clone(),
                                reason: RepairReason::Unwritten.as_str().to_string(),
                            });
                        }
                    }
                    for s in &m.segments {
                        for p in &s.placement {
                            let Some(names) = held.get(&p.provider) else {
                                continue;
                            };
                            if names.contains(&(s.segment, p.shard.0)) {
                                continue;
                            }
                            let Ok(provider) = ProviderName::new(p.provider.clone()) else {
                                continue;
                            };
                            items.push(RepairItem {
                                blob: GcBlob {
                                    provider,
                                    blob: p.blob.clone(),
                                },
                                bucket: bucket.name.clone(),
                                key: o.key.clone(),
                                version_id: v.version.version_id.clone(),
                                reason: RepairReason::Missing.as_str().to_string(),
                            });
                        }
                    }
                    if !items.is_empty() {
                        report.missing += items.len() as u64;
                        inner.meta.enqueue_repair(&items, UnixMillis::now()).await?;
                    }
                }
                match page.next_start_after {
                    Some(next) if page.is_truncated => q.start_after = Some(next),
                    _ => break,
                }
            }
        }
        inner
            .repairs
            .missing_found
            .fetch_add(report.missing, Ordering::Relaxed);
        if report.missing > 0 {
            tracing::warn!(
                "inventory: {} shards missing from their providers, queued for repair",
                report.missing
            );
        }
        Ok(report)
    }
}

/// Records `p` as the place of its shard in `manifest` (replacing where the entry said it
/// was); the place it replaces, if another, goes to `retire`. Whether anything changed.
fn set_placement(
    manifest: &mut Manifest,
    queued: &GcBlob,
    p: ShardPlacement,
    retire: &mut Vec<GcBlob>,
) -> bool {
    let Some((segment, _)) = parse_blob_name(&p.blob) else {
        return false;
    };
    let Some(seg) = manifest.segments.iter_mut().find(|s| s.segment == segment) else {
        return false;
    };
    let before = seg.placement.clone();
    seg.placement.retain(|q| q.shard != p.shard);
    if (queued.provider.as_str(), queued.blob.as_str()) != (p.provider.as_str(), p.blob.as_str())
        && before
            .iter()
            .any(|q| q.provider == queued.provider.as_str() && q.blob == queued.blob)
    {
        retire.push(queued.clone());
    }
    seg.placement.push(p);
    seg.placement.sort_by_key(|q| q.shard.0);
    seg.placement != before
}
