//! Leaving a provider with proof: the drain job, its report, retiring, the exit plan and the
//! placement report.
//!
//! * [`Vault::drain_provider`] refuses before anything moves when a bucket's policy cannot
//!   be kept without the provider (naming the buckets), marks it `draining` in the registry
//!   (new writes avoid it at once, on every gateway at its next refresh) and starts a `drain`
//!   job. The job ([`Vault::drain`]) runs live and resumably like every job (checkpointed
//!   cursor, lease, rate limit, cancel):
//!   1. **inventory**: what the provider itself lists, and what the index places on it;
//!   2. **moving**: every object, in key order from the cursor, has its shards on the
//!      provider moved ([`Engine::move_off`](archipel_engine::Engine::move_off): copied and
//!      verified or rebuilt, committed, the old shard queued for deletion); passes repeat
//!      until the census finds no shard placed there (writes that began before the drain
//!      may commit during the first);
//!   3. **uploads**: waits while parts of multipart uploads in progress have shards there
//!      (completed, they are objects the next pass moves; aborted, they are collected);
//!   4. **collecting**: the old shards are deleted by the GC once its delay has passed (a
//!      read that began with the old placement still finds them until then);
//!   5. **leftovers**: whatever Archipel blob the provider still lists (shards of failed
//!      writes, copies of interrupted moves) is deleted; then a journal snapshot, placed on
//!      the other providers, supersedes every journal segment and snapshot with a shard
//!      there, and the provider's metadata blobs (journal, snapshots, vault header) are
//!      deleted;
//!   6. **proof**: a last census (no shard placed there) and a last listing from the
//!      provider itself (no Archipel blob left, metadata included). The report ([`DrainReport`]) carries both
//!      inventories, what moved where, the times, and a SHA-256 digest of itself.
//! * [`Vault::retire_provider`] takes a drained provider out for good — only after a
//!   complete drain and a fresh listing showing nothing left (a vault header written there by
//!   a restart since is deleted).
//! * [`Vault::exit_plan`] says, without moving anything, what leaving would take: shards and
//!   bytes, time at a bandwidth, egress cost from the provider's `egress_price_per_gb`, and
//!   which buckets' policies would not hold without it.
//! * [`Vault::placement_report`] is the census: shards per bucket, provider, operator and
//!   jurisdiction, rule checks, and the worst cases per jurisdiction and operator.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use archipel_engine::{Census, Held, ProviderState};
use archipel_meta::{ListQuery, ProviderName};
use futures::StreamExt;
use serde::{Deserialize, Serialize};

use crate::error::{Result, VaultError};
use crate::jobs::{CHECKPOINT_EVERY, Cursor, JobKind, JobParams, JobRecord, JobState};
use crate::open::Vault;

/// Object names kept in a report's `stuck` list at most.
const MAX_STUCK: usize = 100;
/// Objects a drain moves at once.
const DRAIN_CONCURRENCY: usize = 8;
/// Objects a drain takes from the index at a time (the cursor passes a page once it is done).
const DRAIN_PAGE: usize = 32;
/// Passes over the index before a drain gives up on shards that will not move.
const MAX_PASSES: u32 = 20;

/// Shards and bytes, as recorded in reports.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Count {
    /// Shards (or blobs).
    pub shards: u64,
    /// Their bytes.
    pub bytes: u64,
}

impl From<Held> for Count {
    fn from(h: Held) -> Self {
        Count {
            shards: h.shards,
            bytes: h.bytes,
        }
    }
}

/// What a drain did, as evidence: see the module docs.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DrainReport {
    /// The provider drained.
    pub provider: String,
    /// Its operator label.
    pub operator: String,
    /// Its jurisdiction label.
    pub jurisdiction: String,
    /// When the drain started, Unix milliseconds.
    pub started_ms: i64,
    /// When it finished.
    pub finished_ms: Option<i64>,
    /// Where it is: `moving`, `waiting for uploads`, `collecting`, `leftovers`, `proof`,
    /// `done`.
    pub phase: String,
    /// Archipel blobs the provider listed before anything moved.
    pub listed_before: Count,
    /// Shards the index placed on it before anything moved.
    pub indexed_before: Count,
    /// Shards moved off it (and bytes written elsewhere).
    pub moved: Count,
    /// Of those, copied from it and verified on the way.
    pub copied: u64,
    /// Of those, rebuilt from other providers (unreadable or damaged there).
    pub rebuilt: u64,
    /// Shards moved, by their new provider.
    pub to: BTreeMap<String, u64>,
    /// Passes over the index.
    pub passes: u32,
    /// Shards that could not be moved in a pass, with why (first [`MAX_STUCK`]).
    pub stuck: Vec<String>,
    /// Archipel blobs deleted at the end that no object used (failed writes, interrupted
    /// moves).
    pub leftovers_deleted: u64,
    /// Metadata blobs deleted at the end (journal and snapshot shards, the vault header),
    /// once the snapshot below superseded them.
    #[serde(default)]
    pub metadata_deleted: u64,
    /// The journal snapshot (`run/number`) taken on the other providers before the metadata
    /// here was deleted.
    #[serde(default)]
    pub snapshot: Option<String>,
    /// Shards the index places on it at the end (0 for a complete drain).
    pub indexed_after: Option<u64>,
    /// Archipel blobs the provider itself lists at the end (0 for a complete drain).
    pub listed_after: Option<Count>,
    /// SHA-256 (hex) of this report in JSON with `digest` empty, set when it is done.
    pub digest: Option<String>,
}

impl DrainReport {
    /// The digest this report should carry.
    pub fn compute_digest(&self) -> Result<String> {
        let mut copy = self.clone();
        copy.digest = None;
        let json = serde_json::to_vec(&copy)
            .map_err(|e| VaultError::Internal(format!("drain report: {e}")))?;
        let d = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, &json);
        Ok(crate::secrets::hex(d.as_ref()))
    }

    /// Whether it proves the provider empty: done, nothing indexed, nothing listed.
    pub fn is_complete(&self) -> bool {
        self.phase == "done"
            && self.indexed_after == Some(0)
            && self.listed_after.is_some_and(|c| c.shards == 0)
    }
}

/// What leaving a provider would take; see [`Vault::exit_plan`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ExitPlan {
    /// The provider.
    pub provider: String,
    /// Its operator label.
    pub operator: String,
    /// Its jurisdiction label.
    pub jurisdiction: String,
    /// Its state now.
    pub state: String,
    /// Object versions with a shard there.
    pub objects: u64,
    /// Shards the index places there and their bytes: what a drain moves.
    pub to_move: Count,
    /// What the provider itself lists (absent when it does not answer).
    pub listed: Option<Count>,
    /// The bandwidth assumed, bytes per second.
    pub bandwidth_bytes_per_s: u64,
    /// Seconds to move it all at that bandwidth.
    pub seconds: f64,
    /// The provider's egress price per GB (10^9 bytes), from its label.
    pub egress_price_per_gb: Option<f64>,
    /// Egress cost of reading it all out once, at that price.
    pub egress_cost: Option<f64>,
    /// Buckets whose policy would not hold without it, with why (empty: it can be left).
    pub blockers: Vec<(String, String)>,
    /// The providers that would take its shards (active, answering or not).
    pub remaining: Vec<String>,
}

impl Vault {
    /// Starts draining `name`; see the module docs. A drain already running for it is
    /// returned as it is.
    pub async fn drain_provider(&self, name: &str, rate: Option<u64>) -> Result<JobRecord> {
        self.drain_provider_onto(name, rate, None).await
    }

    /// Replaces `old` by `new` (already added, active): drains `old`, each shard onto `new`
    /// where the bucket's policy allows it (elsewhere where it does not).
    pub async fn replace_provider(
        &self,
        old: &str,
        new: &str,
        rate: Option<u64>,
    ) -> Result<JobRecord> {
        if old == new {
            return Err(VaultError::Invalid(format!(
                "`{old}` cannot replace itself"
            )));
        }
        let Some(info) = self
            .inner
            .engine
            .providers()
            .into_iter()
            .find(|i| i.name == new)
        else {
            return Err(VaultError::Invalid(format!(
                "no provider `{new}`: add it first (`archipel provider add --name {new} …`), \
                 then replace `{old}` by it"
            )));
        };
        if info.state != ProviderState::Active {
            return Err(VaultError::Invalid(format!(
                "provider `{new}` is {}: only an active provider can take `{old}`'s shards",
                info.state.as_str()
            )));
        }
        self.drain_provider_onto(old, rate, Some(new)).await
    }

    async fn drain_provider_onto(
        &self,
        name: &str,
        rate: Option<u64>,
        onto: Option<&str>,
    ) -> Result<JobRecord> {
        let entry = self.registry_entry(name).await?;
        if entry.state == ProviderState::Retired.as_str() {
            return Err(VaultError::Invalid(format!(
                "provider `{name}` is retired: it holds nothing to drain"
            )));
        }
        if let Some(j) = self.last_drain(name).await?.filter(|j| !j.state.is_final()) {
            return Ok(j);
        }
        let blockers = self.inner.engine.drain_blockers(name).await?;
        if !blockers.is_empty() {
            let list: Vec<String> = blockers
                .iter()
                .map(|(b, why)| format!("bucket `{b}`: {why}"))
                .collect();
            return Err(VaultError::Invalid(format!(
                "cannot drain `{name}`: without it, these buckets' policies cannot be kept \
                 (add a provider first, or change their policies): {}",
                list.join("; ")
            )));
        }
        if entry.state != ProviderState::Draining.as_str() {
            self.update_provider(name, Some(ProviderState::Draining), None)
                .await?;
        }
        self.start_job(
            JobKind::Drain,
            JobParams {
                rate_bytes_per_s: rate,
                provider: Some(name.to_string()),
                onto: onto.map(str::to_string),
                ..JobParams::default()
            },
        )
        .await
    }

    /// The registry's entry of `name`.
    async fn registry_entry(&self, name: &str) -> Result<crate::registry::RegistryEntry> {
        self.list_registry()
            .await?
            .into_iter()
            .find(|e| e.name == name)
            .ok_or_else(|| VaultError::NoSuchProvider { name: name.into() })
    }

    /// The newest drain job of `name`, if any.
    pub async fn last_drain(&self, name: &str) -> Result<Option<JobRecord>> {
        Ok(self
            .list_jobs()
            .await?
            .into_iter()
            .find(|j| j.kind == JobKind::Drain && j.params.provider.as_deref() == Some(name)))
    }

    /// Takes a drained provider out of the vault for good: refused unless its last drain is
    /// complete and it lists no Archipel blob now.
    pub async fn retire_provider(&self, name: &str) -> Result<crate::registry::RegistryEntry> {
        let entry = self.registry_entry(name).await?;
        if entry.state == ProviderState::Retired.as_str() {
            return Ok(entry);
        }
        let done = self.last_drain(name).await?.and_then(|j| {
            j.drain
                .filter(|d| j.state == JobState::Done && d.is_complete())
        });
        if done.is_none() {
            return Err(VaultError::Invalid(format!(
                "provider `{name}` has no complete drain: drain it first \
                 (`archipel provider drain {name} --wait`)"
            )));
        }
        let census = self.inner.engine.census().await?;
        if let Some(h) = census.per_provider.get(name).filter(|h| h.shards > 0) {
            return Err(VaultError::Invalid(format!(
                "provider `{name}` still holds {} shards of committed objects: drain it again",
                h.shards
            )));
        }
        let listed = self.inner.engine.provider_inventory(name).await?;
        if listed.shards > 0 {
            return Err(VaultError::Invalid(format!(
                "provider `{name}` still lists {} Archipel blobs: drain it again",
                listed.shards
            )));
        }
        // What a restart wrote there since the drain (the vault header) goes too: a retired
        // provider keeps nothing of the vault.
        self.inner.engine.purge_metadata(name).await?;
        self.update_provider(name, Some(ProviderState::Retired), None)
            .await
    }

    /// What leaving `name` would take at `bandwidth` bytes per second; moves nothing.
    pub async fn exit_plan(&self, name: &str, bandwidth: u64) -> Result<ExitPlan> {
        if bandwidth == 0 {
            return Err(VaultError::Invalid(
                "bandwidth: give a positive number of bytes per second".into(),
            ));
        }
        let entry = self.registry_entry(name).await?;
        let engine = &self.inner.engine;
        let census = engine.census().await?;
        let to_move: Count = census
            .per_provider
            .get(name)
            .copied()
            .unwrap_or_default()
            .into();
        let objects = census.objects_per_provider.get(name).copied().unwrap_or(0);
        let listed =
            match tokio::time::timeout(Duration::from_secs(30), engine.provider_inventory(name))
                .await
            {
                Ok(Ok(h)) => Some(h.into()),
                _ => None,
            };
        let price = self
            .inner
            .meta
            .get_provider(&ProviderName::new(name.to_string())?)
            .await?
            .and_then(|r| r.labels.get("egress_price_per_gb").cloned())
            .and_then(|p| p.parse::<f64>().ok());
        let blockers = engine.drain_blockers(name).await?;
        let remaining = engine
            .providers()
            .into_iter()
            .filter(|p| p.name != name && p.state == ProviderState::Active)
            .map(|p| p.name)
            .collect();
        Ok(ExitPlan {
            provider: name.to_string(),
            operator: entry.operator,
            jurisdiction: entry.jurisdiction,
            state: entry.state,
            objects,
            to_move,
            listed,
            bandwidth_bytes_per_s: bandwidth,
            seconds: to_move.bytes as f64 / bandwidth as f64,
            egress_price_per_gb: price,
            egress_cost: price.map(|p| p * to_move.bytes as f64 / 1e9),
            blockers,
            remaining,
        })
    }

    /// Where every shard is; see the module docs.
    pub async fn placement_report(&self) -> Result<Census> {
        Ok(self.inner.engine.census().await?)
    }

    /// The drain job's body; see the module docs.
    pub(crate) async fn drain(&self, mut r: JobRecord) -> Result<()> {
        let name = r
            .params
            .provider
            .clone()
            .ok_or_else(|| VaultError::Invalid("a drain job names its provider".into()))?;
        let engine = self.inner.engine.clone();
        if r.drain.is_none() {
            let info = engine
                .providers()
                .into_iter()
                .find(|p| p.name == name)
                .ok_or_else(|| VaultError::NoSuchProvider { name: name.clone() })?;
            let census = engine.census().await?;
            let indexed: Count = census
                .per_provider
                .get(&name)
                .copied()
                .unwrap_or_default()
                .into();
            let listed = engine.provider_inventory(&name).await?;
            r.progress.items_total = Some(census.objects);
            r.progress.bytes_total = Some(indexed.bytes);
            r.drain = Some(DrainReport {
                provider: name.clone(),
                operator: info.operator,
                jurisdiction: info.jurisdiction,
                started_ms: archipel_meta::UnixMillis::now().0,
                phase: "moving".into(),
                listed_before: listed.into(),
                indexed_before: indexed,
                ..DrainReport::default()
            });
            tracing::info!(
                "drain of {name}: {} shards ({} bytes) indexed there, {} blobs listed",
                indexed.shards,
                indexed.bytes,
                listed.shards
            );
        }
        if !self.checkpoint(&mut r).await? {
            return self.stopped(r).await;
        }
        let run_started = Instant::now();
        let run_from_bytes = r.progress.bytes_done;
        loop {
            let phase = r
                .drain
                .as_ref()
                .map(|d| d.phase.clone())
                .unwrap_or_default();
            match phase.as_str() {
                "moving" => {
                    if !self
                        .drain_pass(&mut r, &name, run_started, run_from_bytes)
                        .await?
                    {
                        return self.stopped(r).await;
                    }
                    let census = engine.census().await?;
                    let left = census.per_provider.get(&name).copied().unwrap_or_default();
                    let d = report(&mut r)?;
                    d.passes += 1;
                    r.cursor = None;
                    if left.shards > 0 {
                        if r.drain.as_ref().is_some_and(|d| d.passes >= MAX_PASSES) {
                            return Err(VaultError::Invalid(format!(
                                "{} shards on `{name}` could not be moved in {MAX_PASSES} passes \
                                 (see the report's `stuck`)",
                                left.shards
                            )));
                        }
                        tracing::info!(
                            "drain of {name}: {} shards left after the pass; another pass",
                            left.shards
                        );
                        // Whatever blocked them (a provider down) gets a moment.
                        tokio::time::sleep(Duration::from_secs(2)).await;
                        r.progress.items_done = 0;
                        r.progress.items_total = Some(census.objects);
                    } else {
                        report(&mut r)?.phase = "waiting for uploads".into();
                    }
                }
                "waiting for uploads" => {
                    let parts = engine.parts_on(&name).await?;
                    if parts == 0 {
                        report(&mut r)?.phase = "collecting".into();
                    } else {
                        tracing::info!(
                            "drain of {name}: waiting for {parts} parts of multipart uploads \
                             in progress (complete or abort them)"
                        );
                        tokio::time::sleep(Duration::from_secs(5)).await;
                        // Completed uploads are objects now: one more pass.
                        if engine.parts_on(&name).await? < parts {
                            report(&mut r)?.phase = "moving".into();
                        }
                    }
                }
                "collecting" => {
                    let deadline = Instant::now() + engine.gc_delay() + Duration::from_secs(120);
                    loop {
                        engine.gc_once().await?;
                        let pending = engine.gc_pending_on(&name).await?;
                        if pending == 0 || Instant::now() >= deadline {
                            break;
                        }
                        if !self.checkpoint(&mut r).await? {
                            return self.stopped(r).await;
                        }
                        tokio::time::sleep(Duration::from_secs(1)).await;
                    }
                    report(&mut r)?.phase = "leftovers".into();
                }
                "leftovers" => {
                    let n = engine.purge_provider(&name).await?;
                    report(&mut r)?.leftovers_deleted += n;
                    // The metadata: a snapshot placed on the other providers supersedes every
                    // journal segment and snapshot with a shard here; then this provider's
                    // are deleted, with its copy of the vault header.
                    let snap = self.snapshot_journal(true).await?;
                    let m = engine.purge_metadata(&name).await?;
                    let d = report(&mut r)?;
                    d.metadata_deleted += m;
                    d.snapshot = snap.map(|s| format!("{}/{}", s.run, s.number));
                    d.phase = "proof".into();
                }
                "proof" => {
                    let census = engine.census().await?;
                    let indexed = census.per_provider.get(&name).map_or(0, |h| h.shards);
                    if indexed > 0 {
                        // Committed meanwhile by a write that began before the drain.
                        report(&mut r)?.phase = "moving".into();
                        continue;
                    }
                    let listed = engine.provider_inventory(&name).await?;
                    let metadata = engine.metadata_on(&name).await?;
                    if listed.shards > 0 || metadata.shards > 0 {
                        // A write still going on when the leftovers went: once more.
                        tokio::time::sleep(Duration::from_secs(2)).await;
                        report(&mut r)?.phase = "leftovers".into();
                        if r.drain.as_ref().is_some_and(|d| d.passes >= MAX_PASSES) {
                            return Err(VaultError::Invalid(format!(
                                "`{name}` still lists {} Archipel blobs after deleting leftovers",
                                listed.shards + metadata.shards
                            )));
                        }
                        report(&mut r)?.passes += 1;
                        continue;
                    }
                    let d = report(&mut r)?;
                    d.indexed_after = Some(indexed);
                    d.listed_after = Some(listed.into());
                    d.finished_ms = Some(archipel_meta::UnixMillis::now().0);
                    d.phase = "done".into();
                    d.digest = Some(d.compute_digest()?);
                    tracing::info!(
                        "drain of {name} done: {} shards ({} bytes) moved ({} copied, {} rebuilt) \
                         in {} passes, {} leftovers deleted, 0 blobs left",
                        d.moved.shards,
                        d.moved.bytes,
                        d.copied,
                        d.rebuilt,
                        d.passes,
                        d.leftovers_deleted
                    );
                    return self.finish(&mut r, JobState::Done).await;
                }
                other => {
                    return Err(VaultError::Internal(format!(
                        "drain job in an unknown phase `{other}`"
                    )));
                }
            }
            if !self.checkpoint(&mut r).await? {
                return self.stopped(r).await;
            }
        }
    }

    /// One pass over the index from the cursor, moving shards off `name`; `false` when the
    /// job must stop (cancelled, or the lease went elsewhere).
    async fn drain_pass(
        &self,
        r: &mut JobRecord,
        name: &str,
        run_started: Instant,
        run_from_bytes: u64,
    ) -> Result<bool> {
        let meta = self.inner.meta.clone();
        let mut buckets: Vec<_> = meta
            .list_buckets()
            .await?
            .into_iter()
            .map(|b| b.name)
            .collect();
        buckets.sort();
        let mut last_checkpoint = Instant::now();
        for b in &buckets {
            let start_after = match &r.cursor {
                Some(c) if c.bucket.as_str() > b.as_str() => continue,
                Some(c) if c.bucket == b.as_str() => Some(c.key.clone()),
                _ => None,
            };
            let mut q = ListQuery {
                prefix: String::new(),
                delimiter: None,
                start_after,
                max_keys: DRAIN_PAGE,
            };
            loop {
                let page = meta.list(b, &q).await?;
                // A page's objects move at once (each move waits on a durable put and a
                // commit); the cursor passes the page only when all of it is done.
                let futs: Vec<_> = page
                    .objects
                    .iter()
                    .map(|o| {
                        let (engine, bucket, key, from, onto) = (
                            self.inner.engine.clone(),
                            b.to_string(),
                            o.key.as_str().to_string(),
                            name.to_string(),
                            r.params.onto.clone(),
                        );
                        Box::pin(async move {
                            let r = engine
                                .move_off_onto(&bucket, &key, &from, onto.as_deref())
                                .await;
                            (key, r)
                        })
                    })
                    .collect();
                let moves: Vec<_> = futures::stream::iter(futs)
                    .buffered(DRAIN_CONCURRENCY)
                    .collect()
                    .await;
                for (key, outcome) in moves {
                    let d = report(r)?;
                    match outcome {
                        Ok(m) => {
                            d.moved.shards += m.shards;
                            d.moved.bytes += m.bytes;
                            d.copied += m.copied;
                            d.rebuilt += m.rebuilt;
                            for (to, n) in &m.to {
                                *d.to.entry(to.clone()).or_default() += n;
                            }
                            for s in m.stuck {
                                if d.stuck.len() < MAX_STUCK {
                                    d.stuck.push(s);
                                }
                            }
                            r.progress.bytes_done += m.bytes;
                        }
                        Err(e) => {
                            if d.stuck.len() < MAX_STUCK {
                                d.stuck.push(format!("{b}/{key}: {e}"));
                            }
                        }
                    }
                    r.progress.items_done += 1;
                    r.cursor = Some(Cursor {
                        bucket: b.to_string(),
                        key,
                    });
                }
                crate::jobs::pace(r, run_started, run_from_bytes).await;
                if last_checkpoint.elapsed() >= CHECKPOINT_EVERY {
                    if !self.checkpoint(r).await? {
                        return Ok(false);
                    }
                    last_checkpoint = Instant::now();
                }
                match page.next_start_after {
                    Some(next) if page.is_truncated => q.start_after = Some(next),
                    _ => break,
                }
            }
        }
        Ok(true)
    }
}

fn report(r: &mut JobRecord) -> Result<&mut DrainReport> {
    r.drain
        .as_mut()
        .ok_or_else(|| VaultError::Internal("drain job without its report".into()))
}
