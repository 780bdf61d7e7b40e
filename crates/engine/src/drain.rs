//! Leaving a provider: moving its shards elsewhere, and what the placement looks like.
//!
//! * [`Engine::move_off`] moves every shard that an object's current version places on one
//!   provider onto another that the bucket's policy allows (the rules — operator and
//!   jurisdiction caps, allowed jurisdictions — hold for the new placement): the shard is
//!   copied from the provider being left and verified on the way (header, every chunk's tag,
//!   trailer: [`ShardCheck`]); if it cannot be read or does not verify, it is rebuilt from
//!   the others. The new placement is committed with
//!   [`MetaStore::replace_manifest`](archipel_meta::MetaStore::replace_manifest) (only if the
//!   version is still the one read), and only then is the old shard queued for deletion —
//!   so at every moment the committed manifest names shards that exist, and a crash between
//!   the copy and the commit leaves an unreferenced copy for the orphan scan, nothing lost.
//! * [`Engine::census`] walks the index: shards and bytes per bucket and provider, per
//!   operator and jurisdiction, rule checks per object, and the worst cases — how many
//!   objects become unreadable if every provider of one jurisdiction (or one operator) is
//!   lost. The placement report, the exit plan and a drain's totals are made from it.
//! * [`Engine::drain_blockers`] says which buckets' policies cannot be kept without a
//!   provider, before anything moves.

use std::collections::{BTreeMap, HashSet};
use std::time::Duration;

use archipel_codec::{Manifest, ManifestSegment, SegmentLayout, ShardIdx, ShardPlacement};
use archipel_meta::{GcBlob, ListQuery, ProviderName};
use archipel_provider::{BlobName, ErrorKind, PutBody, PutMode};
use futures::StreamExt;
use serde::{Deserialize, Serialize};

use crate::engine::{Engine, bucket_name, object_key};
use crate::error::{EngineError, Result};
use crate::placement::{Placement, Policy, ProviderInfo, ProviderState};
use crate::scrub::ShardCheck;
use crate::write::{BLOB_PREFIX, Patience, SegmentKeys, ShardTarget, blob_name, rebuild_shard};

/// How long a shard copy may take without progress before it is given up (and rebuilt).
const COPY_STALL: Duration = Duration::from_secs(60);

/// What moving one object's shards off a provider did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MoveReport {
    /// Shards moved (committed in the new placement).
    pub shards: u64,
    /// Shard bytes written to their new providers.
    pub bytes: u64,
    /// Of the shards, copied from the provider being left (verified on the way).
    pub copied: u64,
    /// Of the shards, rebuilt from the others (the copy failed or did not verify).
    pub rebuilt: u64,
    /// Shards moved, by their new provider.
    pub to: BTreeMap<String, u64>,
    /// Shards that could not be moved now, with why (they stay where they are).
    pub stuck: Vec<String>,
}

/// Shards and bytes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Held {
    /// Shards.
    pub shards: u64,
    /// Their stored bytes.
    pub bytes: u64,
}

impl Held {
    pub(crate) fn add(&mut self, bytes: u64) {
        self.shards += 1;
        self.bytes += bytes;
    }
}

/// One bucket in the census.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct BucketCensus {
    /// Its policy, as `k+m` (e.g. `4+2`).
    pub policy: String,
    /// Its placement rules, readably (`none` without).
    pub rules: String,
    /// Object versions counted.
    pub objects: u64,
    /// Their plaintext bytes.
    pub bytes: u64,
    /// Shards per provider.
    pub per_provider: BTreeMap<String, Held>,
    /// Shards per operator.
    pub per_operator: BTreeMap<String, u64>,
    /// Shards per jurisdiction.
    pub per_jurisdiction: BTreeMap<String, u64>,
    /// Objects with a segment that has fewer than `k + m` shards (waiting for repair).
    pub degraded: u64,
    /// Objects whose placement breaks a rule of the policy, with the first few named.
    pub rule_violations: u64,
    /// The first objects that break a rule, with the rule.
    pub violations: Vec<String>,
    /// Per jurisdiction: objects unreadable if every provider there were lost.
    pub lost_with_jurisdiction: BTreeMap<String, u64>,
    /// Per operator: objects unreadable if every provider it runs were lost.
    pub lost_with_operator: BTreeMap<String, u64>,
}

/// Where the data is: see the module docs.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Census {
    /// Per bucket.
    pub buckets: BTreeMap<String, BucketCensus>,
    /// Shards per provider over every bucket.
    pub per_provider: BTreeMap<String, Held>,
    /// Per provider: object versions with at least one shard there.
    pub objects_per_provider: BTreeMap<String, u64>,
    /// Object versions counted.
    pub objects: u64,
}

/// Objects named in a census's violation list at most (per bucket).
const MAX_NAMED: usize = 20;

/// The policy's rules, readably.
pub fn rules_text(p: &Policy) -> String {
    let mut parts = Vec::new();
    if let Some(c) = p.rules.max_per_operator {
        parts.push(format!("max_per_operator = {c}"));
    }
    if let Some(c) = p.rules.max_per_jurisdiction {
        parts.push(format!("max_per_jurisdiction = {c}"));
    }
    if let Some(a) = &p.rules.allowed_jurisdictions {
        let v: Vec<&str> = a.iter().map(String::as_str).collect();
        parts.push(format!("allowed_jurisdictions = [{}]", v.join(", ")));
    }
    if parts.is_empty() {
        "none".into()
    } else {
        parts.join(", ")
    }
}

impl Engine {
    /// Moves every shard that `bucket/key`'s current version places on `from` to a provider
    /// its policy allows; see the module docs. An object that is gone (or no longer uses
    /// `from`) moves nothing.
    pub async fn move_off(&self, bucket: &str, key: &str, from: &str) -> Result<MoveReport> {
        self.move_off_onto(bucket, key, from, None).await
    }

    /// [`Engine::move_off`], each shard onto `onto` where the policy allows it (a provider
    /// replacing `from`), elsewhere where it does not.
    pub async fn move_off_onto(
        &self,
        bucket: &str,
        key: &str,
        from: &str,
        onto: Option<&str>,
    ) -> Result<MoveReport> {
        // Overwritten between the read and the commit: once more with the new version.
        for _ in 0..3 {
            if let Some(r) = self.try_move_off(bucket, key, from, onto).await? {
                return Ok(r);
            }
        }
        Ok(MoveReport {
            stuck: vec![format!(
                "{bucket}/{key}: changed during every attempt to move it; the next pass tries again"
            )],
            ..MoveReport::default()
        })
    }

    /// One attempt; `None` when the version changed before the commit.
    async fn try_move_off(
        &self,
        bucket: &str,
        key: &str,
        from: &str,
        onto: Option<&str>,
    ) -> Result<Option<MoveReport>> {
        let inner = &self.inner;
        let (b, k) = (bucket_name(bucket)?, object_key(key)?);
        let mut report = MoveReport::default();
        let Some(current) = inner.meta.get(&b, &k).await? else {
            return Ok(Some(report));
        };
        if current.version.delete_marker {
            return Ok(Some(report));
        }
        let old_bytes = current.version.manifest.clone();
        let mut manifest = inner.decode_manifest(&old_bytes)?;
        if !manifest
            .segments
            .iter()
            .any(|s| s.placement.iter().any(|p| p.provider == from))
        {
            return Ok(Some(report));
        }
        let policy = inner.policy(&b).await?;
        let mut written: Vec<GcBlob> = Vec::new();
        let mut retire: Vec<GcBlob> = Vec::new();
        for si in 0..manifest.segments.len() {
            let seg = manifest.segments[si].clone();
            for p in seg.placement.iter().filter(|p| p.provider == from) {
                match self.move_shard(&manifest, &seg, p, &policy, onto).await {
                    Ok((to, bytes, copied)) => {
                        report.shards += 1;
                        report.bytes += bytes;
                        if copied {
                            report.copied += 1;
                        } else {
                            report.rebuilt += 1;
                        }
                        *report.to.entry(to.provider.clone()).or_default() += 1;
                        if let Ok(name) = ProviderName::new(to.provider.clone()) {
                            written.push(GcBlob {
                                provider: name,
                                blob: to.blob.clone(),
                            });
                        }
                        if let Ok(name) = ProviderName::new(from.to_string()) {
                            retire.push(GcBlob {
                                provider: name,
                                blob: p.blob.clone(),
                            });
                        }
                        let s = &mut manifest.segments[si];
                        s.placement.retain(|q| q.shard != p.shard);
                        s.placement.push(to);
                        s.placement.sort_by_key(|q| q.shard.0);
                    }
                    Err(e) => report.stuck.push(format!(
                        "{bucket}/{key} shard {} ({}): {e}",
                        p.shard.get(),
                        p.blob
                    )),
                }
            }
        }
        if report.shards == 0 {
            return Ok(Some(report));
        }
        let new_bytes = manifest.encode(&inner.manifest_key)?;
        let replaced = inner
            .meta
            .replace_manifest(&b, &k, &current.version.version_id, &old_bytes, &new_bytes)
            .await?;
        if !replaced {
            // The copies are referenced by nothing: reclaimed like any unused shard.
            inner.collect(written).await?;
            return Ok(None);
        }
        // The old shards only now that nothing points there (after the GC delay, so a read
        // that began with the old placement still finds them).
        inner.collect(retire).await?;
        Ok(Some(report))
    }

    /// Moves one shard: its new place, the bytes written, and whether it was copied (rather
    /// than rebuilt).
    async fn move_shard(
        &self,
        manifest: &Manifest,
        seg: &ManifestSegment,
        p: &ShardPlacement,
        policy: &Policy,
        onto: Option<&str>,
    ) -> Result<(ShardPlacement, u64, bool)> {
        let inner = &self.inner;
        let shard = p.shard.get();
        let target = onto
            .and_then(|o| self.spare_preferring(policy, seg, shard, &p.provider, o))
            .or_else(|| self.spare_for(policy, seg, shard, &p.provider))
            .ok_or_else(|| EngineError::Unavailable {
                what: format!("{}/{}", manifest.bucket, manifest.key),
                needed: 1,
                usable: 0,
                detail: format!(
                    "no provider outside this segment's others fits the policy ({})",
                    rules_text(policy)
                ),
            })?;
        let blob = blob_name(&seg.segment, shard)?;
        let bytes = SegmentLayout::new(seg.params, seg.len, u64::from(seg.header_len)).shard_len();
        let placed = ShardPlacement {
            shard: ShardIdx(shard as u8),
            provider: target.clone(),
            blob: blob.as_str().to_string(),
        };
        match self.copy_shard(manifest, seg, p, &target, &blob).await {
            Ok(()) => return Ok((placed, bytes, true)),
            Err(e) => tracing::info!(
                "drain: copying {}/{} shard {shard} from {} failed ({e}); rebuilding it",
                manifest.bucket,
                manifest.key,
                p.provider
            ),
        }
        let others: Vec<ShardPlacement> = seg
            .placement
            .iter()
            .filter(|q| q.shard != p.shard)
            .cloned()
            .collect();
        if others.len() < seg.params.k() {
            return Err(EngineError::Unavailable {
                what: format!("{}/{}", manifest.bucket, manifest.key),
                needed: seg.params.k(),
                usable: others.len(),
                detail: "the shard could not be copied and too few others are placed".into(),
            });
        }
        let data_key = seg.wrapped_key.unwrap(&inner.master, &seg.segment)?;
        let identity = self.identity_of(manifest, seg, &others, &data_key).await;
        let keys = SegmentKeys {
            spec: archipel_codec::SegmentSpec {
                version: manifest.version,
                segment: seg.segment,
                params: seg.params,
            },
            data_key,
            wrapped: seg.wrapped_key.clone(),
        };
        let from = ManifestSegment {
            placement: others,
            ..seg.clone()
        };
        rebuild_shard(
            inner,
            &keys,
            &identity,
            &format!("{}/{} (drain)", manifest.bucket, manifest.key),
            &from,
            ShardTarget {
                shard,
                provider: target,
                blob,
            },
            Patience::background(),
        )
        .await?;
        Ok((placed, bytes, false))
    }

    /// Streams the shard from where it is to `target`, verifying every piece on the way; the
    /// put fails (and leaves nothing) if a piece does not verify or the shard is cut short.
    async fn copy_shard(
        &self,
        manifest: &Manifest,
        seg: &ManifestSegment,
        p: &ShardPlacement,
        target: &str,
        blob: &BlobName,
    ) -> Result<()> {
        let inner = &self.inner;
        let (Some(src), Some(dst)) = (inner.provider(&p.provider), inner.provider(target)) else {
            return Err(EngineError::Internal("provider left the vault".into()));
        };
        let name = BlobName::new(p.blob.clone())
            .map_err(|e| EngineError::Internal(format!("blob name: {e}")))?;
        let mut check = ShardCheck::new(&inner.master, manifest.version, seg, p.shard)
            .map_err(|r| EngineError::Internal(format!("shard check: {}", r.as_str())))?;
        let source = src.get(&name, None).await?;
        let src_name = p.provider.clone();
        let blob_text = p.blob.clone();
        let mut source = Some(source);
        let verified = futures::stream::poll_fn(move |cx| {
            let Some(s) = source.as_mut() else {
                return std::task::Poll::Ready(None);
            };
            let bad = |msg: &str| {
                archipel_provider::ProviderError::new(
                    ErrorKind::Integrity,
                    &src_name,
                    "get",
                    Some(&blob_text),
                    msg.to_string(),
                )
            };
            match s.poll_next_unpin(cx) {
                std::task::Poll::Ready(Some(Ok(b))) => match check.feed(&b) {
                    Ok(()) => std::task::Poll::Ready(Some(Ok(b))),
                    Err(_) => {
                        source = None;
                        std::task::Poll::Ready(Some(Err(bad("a piece does not verify"))))
                    }
                },
                std::task::Poll::Ready(Some(Err(e))) => {
                    source = None;
                    std::task::Poll::Ready(Some(Err(e)))
                }
                std::task::Poll::Ready(None) => {
                    source = None;
                    match check.finish() {
                        Ok(()) => std::task::Poll::Ready(None),
                        Err(_) => std::task::Poll::Ready(Some(Err(bad("the shard is cut short")))),
                    }
                }
                std::task::Poll::Pending => std::task::Poll::Pending,
            }
        });
        let put = dst.put(blob, PutBody::Stream(verified.boxed()), PutMode::Overwrite);
        match tokio::time::timeout(COPY_STALL, put).await {
            Ok(r) => {
                r?;
                Ok(())
            }
            Err(_) => Err(EngineError::Unavailable {
                what: format!("{}/{}", manifest.bucket, manifest.key),
                needed: 1,
                usable: 0,
                detail: format!("copying to {target} took over {COPY_STALL:?}"),
            }),
        }
    }

    /// A provider to take shard `shard` of `seg` in place of `leaving`: active, not down,
    /// not holding another shard of the segment, and keeping the policy's rules.
    pub(crate) fn spare_for(
        &self,
        policy: &Policy,
        seg: &ManifestSegment,
        shard: usize,
        leaving: &str,
    ) -> Option<String> {
        self.spare_among(policy, seg, shard, leaving, true)
    }

    /// `prefer` if it may take shard `shard` of `seg` in place of `leaving` (active, not
    /// down, not holding another shard of the segment, keeping the rules).
    fn spare_preferring(
        &self,
        policy: &Policy,
        seg: &ManifestSegment,
        shard: usize,
        leaving: &str,
        prefer: &str,
    ) -> Option<String> {
        let inner = &self.inner;
        if inner.health.is_down(prefer) {
            return None;
        }
        let mut slots: Vec<String> = vec![String::new(); seg.params.n()];
        for p in &seg.placement {
            if let Some(s) = slots.get_mut(p.shard.get()) {
                s.clone_from(&p.provider);
            }
        }
        if let Some(s) = slots.get_mut(shard) {
            *s = leaving.to_string();
        }
        // The only candidate is `prefer`: the others offered are the segment's own providers
        // (whose labels count for the rules), which a spare never is.
        let set = inner.set();
        let candidates: Vec<ProviderInfo> = set
            .infos
            .iter()
            .filter(|i| i.name == prefer || slots.iter().any(|s| s == &i.name))
            .cloned()
            .collect();
        policy
            .spare(
                &candidates,
                seg.segment.as_bytes(),
                &Placement { providers: slots },
                shard,
            )
            .filter(|n| n == prefer)
    }

    /// Like [`Engine::spare_for`]; down providers are candidates too unless `avoid_down`.
    pub(crate) fn spare_among(
        &self,
        policy: &Policy,
        seg: &ManifestSegment,
        shard: usize,
        leaving: &str,
        avoid_down: bool,
    ) -> Option<String> {
        let inner = &self.inner;
        let set = inner.set();
        let mut slots: Vec<String> = vec![String::new(); seg.params.n()];
        for p in &seg.placement {
            if let Some(s) = slots.get_mut(p.shard.get()) {
                s.clone_from(&p.provider);
            }
        }
        if let Some(s) = slots.get_mut(shard) {
            *s = leaving.to_string();
        }
        // Down providers are left out as candidates; the others' labels still count.
        let used: HashSet<&str> = slots.iter().map(String::as_str).collect();
        let all: Vec<ProviderInfo> = set
            .infos
            .iter()
            .filter(|i| {
                !avoid_down || used.contains(i.name.as_str()) || !inner.health.is_down(&i.name)
            })
            .cloned()
            .collect();
        policy
            .spare(
                &all,
                seg.segment.as_bytes(),
                &Placement { providers: slots },
                shard,
            )
            .filter(|n| n != leaving)
    }

    /// The buckets whose policy cannot be kept without `provider` (every other provider as
    /// it is now), each with why; empty when the provider can be left.
    pub async fn drain_blockers(&self, provider: &str) -> Result<Vec<(String, String)>> {
        let infos: Vec<ProviderInfo> = self
            .inner
            .set()
            .infos
            .iter()
            .filter(|i| i.name != provider && i.state == ProviderState::Active)
            .cloned()
            .collect();
        let mut out = Vec::new();
        for b in self.inner.meta.list_buckets().await? {
            let policy = Policy::decode(&b.policy)?;
            if let Err(e) = policy.validate(&infos) {
                out.push((b.name.to_string(), e.to_string()));
            }
        }
        Ok(out)
    }

    /// Every Archipel blob `provider` lists: how many and their bytes (page by page).
    pub async fn provider_inventory(&self, provider: &str) -> Result<Held> {
        let p = self
            .inner
            .provider(provider)
            .ok_or_else(|| EngineError::Invalid(format!("no provider named {provider}")))?;
        let mut held = Held::default();
        let mut after: Option<BlobName> = None;
        loop {
            let page = p
                .list(BLOB_PREFIX, after.as_ref(), p.capabilities().max_list_page)
                .await?;
            for b in &page.blobs {
                held.add(b.size);
            }
            after = page.blobs.last().map(|b| b.name.clone());
            if !page.more || after.is_none() {
                return Ok(held);
            }
        }
    }

    /// Deletes every Archipel blob `provider` still lists (a drained provider's leftovers:
    /// shards of writes that failed, copies of interrupted moves); how many. Only for a
    /// provider no committed version and no upload in progress places a shard on.
    pub async fn purge_provider(&self, provider: &str) -> Result<u64> {
        let p = self
            .inner
            .provider(provider)
            .ok_or_else(|| EngineError::Invalid(format!("no provider named {provider}")))?;
        let mut n = 0;
        let mut after: Option<BlobName> = None;
        loop {
            let page = p
                .list(BLOB_PREFIX, after.as_ref(), p.capabilities().max_list_page)
                .await?;
            for b in &page.blobs {
                // A write still going on (it may have started before the drain) is left
                // alone: if it commits, the next pass moves its shard.
                let writing =
                    crate::write::parse_blob_name(b.name.as_str()).is_some_and(|(seg, _)| {
                        self.inner
                            .inflight
                            .lock()
                            .unwrap_or_else(std::sync::PoisonError::into_inner)
                            .contains(&seg)
                    });
                if writing {
                    continue;
                }
                p.delete(&b.name).await?;
                n += 1;
            }
            after = page.blobs.last().map(|b| b.name.clone());
            if !page.more || after.is_none() {
                return Ok(n);
            }
        }
    }

    /// Blobs on `provider` waiting in the GC queue (to be deleted once the GC delay passed).
    pub async fn gc_pending_on(&self, provider: &str) -> Result<u64> {
        let mut n = 0;
        let mut after: Option<archipel_meta::GcEntry> = None;
        loop {
            let page = self
                .inner
                .meta
                .peek_gc(after.as_ref(), archipel_meta::MAX_PAGE)
                .await?;
            n += page
                .iter()
                .filter(|e| e.blob.provider.as_str() == provider)
                .count() as u64;
            let full = page.len() == archipel_meta::MAX_PAGE;
            after = page.last().cloned();
            if !full || after.is_none() {
                return Ok(n);
            }
        }
    }

    /// Parts of uploads in progress that place a shard on `provider`.
    pub async fn parts_on(&self, provider: &str) -> Result<u64> {
        let inner = &self.inner;
        let mut n = 0;
        for b in inner.meta.list_buckets().await? {
            let mut q = archipel_meta::UploadQuery {
                prefix: String::new(),
                delimiter: None,
                key_marker: None,
                upload_id_marker: None,
                max_uploads: archipel_meta::MAX_PAGE,
            };
            loop {
                let page = inner.meta.list_uploads(&b.name, &q).await?;
                for u in &page.uploads {
                    let r = archipel_meta::UploadRef {
                        bucket: b.name.clone(),
                        key: u.upload.key.clone(),
                        upload_id: u.upload.upload_id.clone(),
                    };
                    let mut pq = archipel_meta::PartQuery {
                        after: None,
                        max_parts: archipel_meta::MAX_PAGE,
                    };
                    loop {
                        let parts = inner.meta.list_parts(&r, &pq).await?;
                        for part in &parts.parts {
                            if let Ok(m) = inner.decode_manifest(&part.manifest)
                                && m.segments
                                    .iter()
                                    .any(|s| s.placement.iter().any(|p| p.provider == provider))
                            {
                                n += 1;
                            }
                        }
                        match parts.next_after {
                            Some(next) if parts.is_truncated => pq.after = Some(next),
                            _ => break,
                        }
                    }
                }
                match (page.next_key_marker, page.next_upload_id_marker) {
                    (Some(k), u) if page.is_truncated => {
                        q.key_marker = Some(k);
                        q.upload_id_marker = u;
                    }
                    _ => break,
                }
            }
        }
        Ok(n)
    }

    /// Walks the index; see the module docs.
    pub async fn census(&self) -> Result<Census> {
        let inner = &self.inner;
        let set = inner.set();
        let by_name: BTreeMap<&str, &ProviderInfo> =
            set.infos.iter().map(|p| (p.name.as_str(), p)).collect();
        let label = |name: &str| -> (String, String) {
            by_name.get(name).map_or_else(
                || ("?".to_string(), "?".to_string()),
                |p| (p.operator.clone(), p.jurisdiction.clone()),
            )
        };
        let mut census = Census::default();
        for bucket in inner.meta.list_buckets().await? {
            let policy = Policy::decode(&bucket.policy)?;
            let mut bc = BucketCensus {
                policy: format!("{}+{}", policy.k, policy.m),
                rules: rules_text(&policy),
                ..BucketCensus::default()
            };
            let mut q = ListQuery {
                prefix: String::new(),
                delimiter: None,
                start_after: None,
                max_keys: archipel_meta::MAX_PAGE,
            };
            loop {
                let page = inner.meta.list(&bucket.name, &q).await?;
                for o in &page.objects {
                    let Some(v) = inner.meta.get(&bucket.name, &o.key).await? else {
                        continue;
                    };
                    if v.version.delete_marker {
                        continue;
                    }
                    let Ok(m) = inner.decode_manifest(&v.version.manifest) else {
                        continue;
                    };
                    bc.objects += 1;
                    bc.bytes += o.size;
                    let mut degraded = false;
                    let mut broken: Option<String> = None;
                    let mut lost_j: HashSet<String> = HashSet::new();
                    let mut lost_o: HashSet<String> = HashSet::new();
                    let mut holders: HashSet<&str> = HashSet::new();
                    for s in &m.segments {
                        let shard_len =
                            SegmentLayout::new(s.params, s.len, u64::from(s.header_len))
                                .shard_len();
                        if s.placement.len() < s.params.n() {
                            degraded = true;
                        }
                        let mut ops: BTreeMap<String, usize> = BTreeMap::new();
                        let mut jurs: BTreeMap<String, usize> = BTreeMap::new();
                        for p in &s.placement {
                            holders.insert(p.provider.as_str());
                            bc.per_provider
                                .entry(p.provider.clone())
                                .or_default()
                                .add(shard_len);
                            census
                                .per_provider
                                .entry(p.provider.clone())
                                .or_default()
                                .add(shard_len);
                            let (op, jur) = label(&p.provider);
                            *bc.per_operator.entry(op.clone()).or_default() += 1;
                            *bc.per_jurisdiction.entry(jur.clone()).or_default() += 1;
                            *ops.entry(op).or_default() += 1;
                            *jurs.entry(jur.clone()).or_default() += 1;
                            if let Some(allowed) = &policy.rules.allowed_jurisdictions
                                && !allowed.contains(&jur)
                            {
                                broken.get_or_insert(format!(
                                    "shard {} on {} in {jur}, not an allowed jurisdiction",
                                    p.shard.get(),
                                    p.provider
                                ));
                            }
                        }
                        let k = s.params.k();
                        let total = s.placement.len();
                        for (groups, cap, lost, what) in [
                            (&jurs, policy.rules.max_per_jurisdiction, &mut lost_j, "in"),
                            (
                                &ops,
                                policy.rules.max_per_operator,
                                &mut lost_o,
                                "with operator",
                            ),
                        ] {
                            for (g, n) in groups {
                                if total - n < k {
                                    lost.insert(g.clone());
                                }
                                if let Some(cap) = cap
                                    && *n > cap
                                {
                                    broken.get_or_insert(format!(
                                        "{n} shards {what} {g}, at most {cap} allowed"
                                    ));
                                }
                            }
                        }
                    }
                    for h in holders {
                        *census
                            .objects_per_provider
                            .entry(h.to_string())
                            .or_default() += 1;
                    }
                    bc.degraded += u64::from(degraded);
                    if let Some(why) = broken {
                        bc.rule_violations += 1;
                        if bc.violations.len() < MAX_NAMED {
                            bc.violations.push(format!("{}: {why}", o.key.as_str()));
                        }
                    }
                    for j in lost_j {
                        *bc.lost_with_jurisdiction.entry(j).or_default() += 1;
                    }
                    for op in lost_o {
                        *bc.lost_with_operator.entry(op).or_default() += 1;
                    }
                }
                match page.next_start_after {
                    Some(next) if page.is_truncated => q.start_after = Some(next),
                    _ => break,
                }
            }
            // Every jurisdiction and operator that holds shards is named, 0 included.
            for j in bc.per_jurisdiction.keys() {
                bc.lost_with_jurisdiction.entry(j.clone()).or_default();
            }
            for op in bc.per_operator.keys() {
                bc.lost_with_operator.entry(op.clone()).or_default();
            }
            census.objects += bc.objects;
            census.buckets.insert(bucket.name.to_string(), bc);
        }
        Ok(census)
    }
}
