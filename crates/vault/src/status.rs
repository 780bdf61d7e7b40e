//! Vault status: per provider, whether it answers, how fast, and what it holds; per vault,
//! objects, bytes and redundancy — how many objects survive how many more provider losses,
//! counted from the shards actually present on the providers (a provider that lost its data,
//! or does not answer, counts as holding nothing) — and shards per jurisdiction and operator.
//!
//! Memory is bounded by a budget of shard entries, not by the number of objects: see
//! [`collect`].

use std::collections::{BTreeMap, HashMap};
use std::time::Instant;

use archipel_codec::Manifest;
use archipel_meta::ListQuery;
use archipel_provider::{Provider, ProviderExt};
use serde::{Deserialize, Serialize};

use crate::error::{Result, VaultError};
use crate::open::Vault;

/// One provider's state.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ProviderStatus {
    /// The provider.
    pub name: String,
    /// `dir`, `s3` or `webdav`.
    pub kind: String,
    /// Where it is (no credentials).
    pub location: String,
    /// Who runs it.
    pub operator: String,
    /// Where it is, legally.
    pub jurisdiction: String,
    /// `active`, `draining` or `retired`.
    pub state: String,
    /// Whether it could be listed.
    pub reachable: bool,
    /// Why not.
    pub error: Option<String>,
    /// Time to list the provider's shards, in milliseconds.
    pub list_ms: Option<u64>,
    /// Shards of current object versions found on the provider, and their bytes.
    pub shards: u64,
    /// Bytes of those shards.
    pub bytes: u64,
    /// Other blobs: superseded or deleted versions awaiting garbage collection, parts of
    /// uploads in progress, orphans of interrupted writes.
    pub unreferenced_shards: u64,
    /// Bytes of those blobs.
    pub unreferenced_bytes: u64,
}

/// How many objects survive how many more provider losses.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Redundancy {
    /// Objects whose every segment has at least `k` shards present.
    pub readable: u64,
    /// Objects with some segment below `k` shards.
    pub unreadable: u64,
    /// Objects with fewer shards present than they were written with.
    pub degraded: u64,
    /// The fewest further provider losses any readable object survives (`None` without
    /// objects).
    pub min_tolerated_losses: Option<u64>,
    /// Objects by how many more losses they survive ("0", "1", "2", …).
    pub by_tolerated_losses: BTreeMap<String, u64>,
    /// One-line verdict.
    pub summary: String,
}

/// The whole report.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Status {
    /// The vault id, in hex.
    pub vault_id: String,
    /// The data directory.
    pub data_dir: String,
    /// Per provider.
    pub providers: Vec<ProviderStatus>,
    /// How many buckets.
    pub buckets: u64,
    /// How many live objects.
    pub objects: u64,
    /// Their plaintext bytes.
    pub bytes: u64,
    /// How many more losses the objects survive.
    pub redundancy: Redundancy,
    /// Shards present, by jurisdiction.
    pub shards_per_jurisdiction: BTreeMap<String, u64>,
    /// Shards present, by operator.
    pub shards_per_operator: BTreeMap<String, u64>,
    /// `bucket/key` of objects below `k` shards.
    pub unreadable_objects: Vec<String>,
    /// Where the configuration and the provider registry disagree.
    pub registry_notes: Vec<String>,
    /// Providers the gateway serves without because they do not answer (probed again every
    /// few seconds), with what their check found.
    #[serde(default)]
    pub outages: Vec<String>,
    /// The repair service, as this gateway has run it since it started.
    #[serde(default)]
    pub repair: RepairStatus,
    /// The latest finished scrub: when it ended and what it found per provider.
    #[serde(default)]
    pub last_scrub: Option<LastScrub>,
    /// Each provider's latest audit (`crate::audit`), in provider order.
    #[serde(default)]
    pub last_audits: Vec<crate::audit::AuditRecord>,
}

/// The latest finished scrub job.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LastScrub {
    /// Its job id.
    pub job: String,
    /// `done`, `failed` or `cancelled`.
    pub state: String,
    /// When it ended, Unix milliseconds.
    pub finished_ms: i64,
    /// Objects scrubbed.
    pub objects: u64,
    /// Per provider: shards verified and shards found missing or damaged.
    pub per_provider: BTreeMap<String, crate::jobs::ProviderScrub>,
}

/// The repair queue and what repair did since the gateway started.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct RepairStatus {
    /// Shards queued for repair now.
    pub queued: u64,
    /// Shards rebuilt.
    pub rebuilt: u64,
    /// Of those, on a spare provider.
    pub moved: u64,
    /// Queued shards found intact after all.
    pub found_intact: u64,
    /// Rebuilds that failed (their shards stay queued).
    pub failed: u64,
    /// Bytes written by repair.
    pub bytes_written: u64,
    /// Shards the inventory found missing from their providers.
    pub missing_found: u64,
}

/// Shard entries held at once by [`collect`] (about 100 bytes each): past this many shards the
/// inventory takes more passes over the metadata instead of more memory.
pub const DEFAULT_BUDGET: usize = 400_000;

/// How long a provider gets to answer one listing (or `head`) of the report.
const ANSWER_WITHIN: std::time::Duration = std::time::Duration::from_secs(10);

/// Object names listed as unreadable at most.
const MAX_NAMED: usize = 1000;

fn losses_word(n: u64) -> &'static str {
    if n == 1 { "loss" } else { "losses" }
}

/// The partition of a blob name `v1/<2 hex>/…` (all shards of a segment share it).
fn partition(blob: &str) -> Option<u8> {
    u8::from_str_radix(blob.strip_prefix("v1/")?.get(..2)?, 16).ok()
}

/// One provider's shards in the partitions of a pass: name → (size, referenced).
type Loaded = HashMap<String, (u64, bool)>;

/// What a pass adds up.
#[derive(Default)]
struct Tally {
    objects: u64,
    bytes: u64,
    readable: u64,
    unreadable: u64,
    degraded: u64,
    by_margin: BTreeMap<u64, u64>,
    per_jurisdiction: BTreeMap<String, u64>,
    per_operator: BTreeMap<String, u64>,
    unreadable_objects: Vec<String>,
}

/// Builds the report.
///
/// Memory is bounded by [`DEFAULT_BUDGET`] shard entries whatever the number of objects: the
/// providers' listings are read by blob partition (`v1/00/` … `v1/ff/`), as many partitions at
/// a time as fit the budget, and each such pass goes once over the metadata. An object is
/// judged in the pass that holds its first segment; its other segments (multipart objects),
/// when they fall in other partitions, are checked with one `head` per shard. Objects written
/// or deleted while it runs may be counted in one pass and not another.
pub async fn collect(v: &Vault) -> Result<Status> {
    collect_with_budget(v, DEFAULT_BUDGET).await
}

/// [`collect`] with another budget of shard entries (tests force several passes with it).
pub async fn collect_with_budget(v: &Vault, budget: usize) -> Result<Status> {
    // Outages first: a provider that comes back is in use before it leaves the outages, so
    // this order never shows it in neither.
    let outages: Vec<String> = v.outages().into_iter().map(|o| o.reason).collect();
    let built = v.providers();
    let mut providers: Vec<ProviderStatus> = built
        .iter()
        .map(|b| ProviderStatus {
            name: b.slot.info.name.clone(),
            kind: b.spec.backend.kind().to_string(),
            location: b.spec.backend.location(),
            operator: b.slot.info.operator.clone(),
            jurisdiction: b.slot.info.jurisdiction.clone(),
            state: b.slot.info.state.as_str().to_string(),
            reachable: true,
            error: None,
            list_ms: Some(0),
            shards: 0,
            bytes: 0,
            unreferenced_shards: 0,
            unreferenced_bytes: 0,
        })
        .collect();
    let labels: HashMap<&str, (&str, &str)> = built
        .iter()
        .map(|b| {
            (
                b.slot.info.name.as_str(),
                (
                    b.slot.info.operator.as_str(),
                    b.slot.info.jurisdiction.as_str(),
                ),
            )
        })
        .collect();
    let manifest_key = v.unlocked().key.manifest_key();
    let meta = v.meta();
    let buckets = meta.list_buckets().await?;
    let mut t = Tally::default();

    let mut next_partition: u16 = 0;
    while next_partition < 256 {
        // Load partitions until the budget is reached (at least one).
        let first = next_partition;
        let mut loaded: Vec<Loaded> = vec![HashMap::new(); built.len()];
        let mut held = 0usize;
        while next_partition < 256 && (next_partition == first || held < budget) {
            let prefix = format!("v1/{next_partition:02x}/");
            let lists = futures::future::join_all(built.iter().zip(&providers).map(|(b, ps)| {
                let prefix = prefix.clone();
                async move {
                    if !ps.reachable {
                        return (Ok(Vec::new()), 0);
                    }
                    let started = Instant::now();
                    // A provider that hangs (paused, a dead TCP peer) must not hang the report.
                    let r = match tokio::time::timeout(
                        ANSWER_WITHIN,
                        b.slot.provider.list_all(&prefix),
                    )
                    .await
                    {
                        Ok(r) => r.map_err(|e| e.to_string()),
                        Err(_) => Err(format!(
                            "{}: no answer to a listing within {} s",
                            b.slot.info.name,
                            ANSWER_WITHIN.as_secs()
                        )),
                    };
                    (r, started.elapsed().as_millis() as u64)
                }
            }))
            .await;
            for ((l, ps), (r, ms)) in loaded.iter_mut().zip(providers.iter_mut()).zip(lists) {
                match r {
                    Ok(blobs) => {
                        *ps.list_ms.get_or_insert(0) += ms;
                        held += blobs.len();
                        l.extend(
                            blobs
                                .into_iter()
                                .map(|b| (b.name.as_str().to_string(), (b.size, false))),
                        );
                    }
                    Err(e) => {
                        ps.reachable = false;
                        ps.error = Some(e);
                        ps.list_ms = None;
                        l.clear();
                    }
                }
            }
            next_partition += 1;
        }
        let range = first..next_partition;
        let in_range = |blob: &str| partition(blob).is_some_and(|p| range.contains(&u16::from(p)));
        let index: HashMap<&str, usize> = built
            .iter()
            .enumerate()
            .map(|(i, b)| (b.slot.info.name.as_str(), i))
            .collect();

        // One pass over the metadata.
        for b in &buckets {
            let mut q = ListQuery {
                prefix: String::new(),
                delimiter: None,
                start_after: None,
                max_keys: archipel_meta::MAX_PAGE,
            };
            loop {
                let page = meta.list(&b.name, &q).await?;
                for o in &page.objects {
                    let Some(version) = meta.get(&b.name, &o.key).await? else {
                        continue; // deleted meanwhile
                    };
                    if version.version.delete_marker {
                        continue;
                    }
                    let what = format!("{}/{}", b.name, o.key.as_str());
                    let manifest = Manifest::decode(&version.version.manifest, &manifest_key)
                        .map_err(|e| VaultError::Invalid(format!("{what}: manifest: {e}")))?;
                    let judged_here = match manifest.segments.first() {
                        Some(seg) => seg.placement.first().is_some_and(|p| in_range(&p.blob)),
                        None => first == 0,
                    };
                    let mut margin: Option<i64> = None;
                    let mut is_degraded = false;
                    for seg in &manifest.segments {
                        let (k, n) = (seg.params.k(), seg.params.k() + seg.params.m());
                        let mut here = 0usize;
                        for p in &seg.placement {
                            let Some(&pi) = index.get(p.provider.as_str()) else {
                                continue; // a provider this vault no longer uses
                            };
                            if in_range(&p.blob) {
                                if let Some((size, seen)) = loaded[pi].get_mut(&p.blob) {
                                    here += 1;
                                    if !*seen {
                                        *seen = true;
                                        providers[pi].shards += 1;
                                        providers[pi].bytes += *size;
                                        if let Some((op, j)) = labels.get(p.provider.as_str()) {
                                            *t.per_operator
                                                .entry((*op).to_string())
                                                .or_default() += 1;
                                            *t.per_jurisdiction
                                                .entry((*j).to_string())
                                                .or_default() += 1;
                                        }
                                    }
                                }
                            } else if judged_here && providers[pi].reachable {
                                let present = match archipel_provider::BlobName::new(p.blob.clone())
                                {
                                    Ok(name) => {
                                        let head = built[pi].slot.provider.head(&name);
                                        match tokio::time::timeout(ANSWER_WITHIN, head).await {
                                            Ok(r) => r.is_ok(),
                                            Err(_) => {
                                                // Not asked again in this report.
                                                providers[pi].reachable = false;
                                                providers[pi].error = Some(format!(
                                                    "no answer to a head within {} s",
                                                    ANSWER_WITHIN.as_secs()
                                                ));
                                                false
                                            }
                                        }
                                    }
                                    Err(_) => false,
                                };
                                here += usize::from(present);
                            }
                        }
                        is_degraded |= here < n;
                        let m = here as i64 - k as i64;
                        margin = Some(margin.map_or(m, |x| x.min(m)));
                    }
                    if !judged_here {
                        continue;
                    }
                    t.objects += 1;
                    t.bytes += o.size;
                    if is_degraded {
                        t.degraded += 1;
                    }
                    match margin {
                        Some(m) if m < 0 => {
                            t.unreadable += 1;
                            if t.unreadable_objects.len() < MAX_NAMED {
                                t.unreadable_objects.push(what);
                            }
                        }
                        Some(m) => {
                            t.readable += 1;
                            *t.by_margin.entry(m as u64).or_default() += 1;
                        }
                        // An empty object has no segments to lose.
                        None => t.readable += 1,
                    }
                }
                match page.next_start_after {
                    Some(next) if page.is_truncated => q.start_after = Some(next),
                    _ => break,
                }
            }
        }
        for (l, ps) in loaded.iter().zip(providers.iter_mut()) {
            for (size, seen) in l.values() {
                if !seen {
                    ps.unreferenced_shards += 1;
                    ps.unreferenced_bytes += size;
                }
            }
        }
    }

    let (objects, unreadable, degraded) = (t.objects, t.unreadable, t.degraded);
    let min = t.by_margin.keys().next().copied();
    let summary = if objects == 0 {
        "no objects".to_string()
    } else if unreadable > 0 {
        format!(
            "{unreadable} of {objects} objects NOT readable: fewer shards remain than they need"
        )
    } else {
        match min {
            Some(m) => format!(
                "all objects readable, tolerate {m} more provider {}{}",
                losses_word(m),
                if degraded > 0 {
                    format!(" ({degraded} degraded: fewer shards than written)")
                } else {
                    String::new()
                }
            ),
            None => "all objects readable".to_string(),
        }
    };
    Ok(Status {
        vault_id: v.unlocked().vault_id(),
        data_dir: v.spec().data_dir.display().to_string(),
        providers,
        buckets: buckets.len() as u64,
        objects,
        bytes: t.bytes,
        redundancy: Redundancy {
            readable: t.readable,
            unreadable,
            degraded,
            min_tolerated_losses: min,
            by_tolerated_losses: t
                .by_margin
                .into_iter()
                .map(|(k, v)| (k.to_string(), v))
                .collect(),
            summary,
        },
        shards_per_jurisdiction: t.per_jurisdiction,
        shards_per_operator: t.per_operator,
        unreadable_objects: t.unreadable_objects,
        registry_notes: v.registry_notes(),
        outages,
        last_audits: {
            let mut latest: Vec<crate::audit::AuditRecord> = Vec::new();
            for r in v.audits(None, usize::MAX).await? {
                if !latest.iter().any(|l| l.provider == r.provider) {
                    latest.push(r);
                }
            }
            latest.sort_by(|a, b| a.provider.cmp(&b.provider));
            latest
        },
        last_scrub: v
            .list_jobs()
            .await?
            .into_iter()
            .filter(|j| j.kind == crate::jobs::JobKind::Scrub && j.state.is_final())
            .filter_map(|j| {
                Some(LastScrub {
                    finished_ms: j.finished_ms?,
                    job: j.id,
                    state: j.state.as_str().to_string(),
                    objects: j.result.objects,
                    per_provider: j.result.per_provider,
                })
            })
            .max_by_key(|l| l.finished_ms),
        repair: {
            let r = v.engine().repair_stats();
            RepairStatus {
                queued: v.meta().count_repair().await?,
                rebuilt: r.rebuilt,
                moved: r.moved,
                found_intact: r.found_intact,
                failed: r.failed,
                bytes_written: r.bytes_written,
                missing_found: r.missing_found,
            }
        },
    })
}
