//! Vault status: per provider, whether it answers, how fast, and what it holds; per vault,
//! objects, bytes and redundancy — how many objects survive how many more provider losses,
//! counted from the shards actually present on the providers (a provider that lost its data,
//! or does not answer, counts as holding nothing) — and shards per jurisdiction and operator.
//!
//! Memory: the inventory holds every shard name of every provider while it runs (about 100
//! bytes per shard); a streaming inventory is still to come.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::Instant;

use archipel_codec::Manifest;
use archipel_meta::{MetaStore, MetaStoreExt};
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
}

/// The shards (blob names) each provider holds, or why it could not be listed.
async fn inventory(
    p: &std::sync::Arc<dyn Provider>,
) -> (Result<HashMap<String, u64>, String>, Option<u64>) {
    let started = Instant::now();
    match p.list_all("v1/").await {
        Ok(blobs) => {
            let names = blobs
                .into_iter()
                .map(|b| (b.name.as_str().to_string(), b.size))
                .collect();
            (Ok(names), Some(started.elapsed().as_millis() as u64))
        }
        Err(e) => (Err(e.to_string()), None),
    }
}

fn losses_word(n: u64) -> &'static str {
    if n == 1 { "loss" } else { "losses" }
}

/// Builds the report.
pub async fn collect(v: &Vault) -> Result<Status> {
    // Providers: list every shard once.
    let built = v.providers();
    let lists = futures::future::join_all(
        built
            .iter()
            .map(|b| async move { inventory(&b.slot.provider).await }),
    )
    .await;
    let mut present: HashMap<String, HashMap<String, u64>> = HashMap::new();
    let mut providers = Vec::new();
    for (b, (names, list_ms)) in built.iter().zip(lists) {
        let info = &b.slot.info;
        let (reachable, error) = match &names {
            Ok(_) => (true, None),
            Err(e) => (false, Some(e.clone())),
        };
        if let Ok(n) = names {
            present.insert(info.name.clone(), n);
        }
        providers.push(ProviderStatus {
            name: info.name.clone(),
            kind: b.spec.backend.kind().to_string(),
            location: b.spec.backend.location(),
            operator: info.operator.clone(),
            jurisdiction: info.jurisdiction.clone(),
            state: info.state.as_str().to_string(),
            reachable,
            error,
            list_ms,
            shards: 0,
            bytes: 0,
            unreferenced_shards: 0,
            unreferenced_bytes: 0,
        });
    }
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

    // Objects: every current version's manifest against the inventory.
    let manifest_key = v.unlocked().key.manifest_key();
    let meta = v.meta();
    let buckets = meta.list_buckets().await?;
    let (mut objects, mut bytes, mut readable, mut unreadable, mut degraded) = (0, 0, 0, 0, 0);
    let mut by_margin: BTreeMap<u64, u64> = BTreeMap::new();
    let mut per_jurisdiction: BTreeMap<String, u64> = BTreeMap::new();
    let mut per_operator: BTreeMap<String, u64> = BTreeMap::new();
    let mut unreadable_objects = Vec::new();
    let mut referenced: HashMap<&str, HashSet<&str>> = HashMap::new();
    for b in &buckets {
        for o in meta.list_all(&b.name, "").await? {
            let Some(version) = meta.get(&b.name, &o.key).await? else {
                continue; // deleted meanwhile
            };
            if version.version.delete_marker {
                continue;
            }
            objects += 1;
            bytes += o.size;
            let what = format!("{}/{}", b.name, o.key.as_str());
            let manifest = Manifest::decode(&version.version.manifest, &manifest_key)
                .map_err(|e| VaultError::Invalid(format!("{what}: manifest: {e}")))?;
            let mut margin: Option<i64> = None;
            let mut is_degraded = false;
            for seg in &manifest.segments {
                let (k, n) = (seg.params.k(), seg.params.k() + seg.params.m());
                let mut here = 0usize;
                for p in &seg.placement {
                    if let Some((pname, blobs)) = present.get_key_value(&p.provider)
                        && let Some((bname, _)) = blobs.get_key_value(&p.blob)
                    {
                        referenced
                            .entry(pname.as_str())
                            .or_default()
                            .insert(bname.as_str());
                        here += 1;
                        if let Some((op, j)) = labels.get(p.provider.as_str()) {
                            *per_operator.entry((*op).to_string()).or_default() += 1;
                            *per_jurisdiction.entry((*j).to_string()).or_default() += 1;
                        }
                    }
                }
                is_degraded |= here < n;
                let m = here as i64 - k as i64;
                margin = Some(margin.map_or(m, |x| x.min(m)));
            }
            if is_degraded {
                degraded += 1;
            }
            match margin {
                Some(m) if m < 0 => {
                    unreadable += 1;
                    unreadable_objects.push(what);
                }
                Some(m) => {
                    readable += 1;
                    *by_margin.entry(m as u64).or_default() += 1;
                }
                // An empty object has no segments to lose.
                None => readable += 1,
            }
        }
    }
    for ps in &mut providers {
        let Some(blobs) = present.get(&ps.name) else {
            continue;
        };
        let refs = referenced.get(ps.name.as_str());
        for (blob, size) in blobs {
            if refs.is_some_and(|r| r.contains(blob.as_str())) {
                ps.shards += 1;
                ps.bytes += size;
            } else {
                ps.unreferenced_shards += 1;
                ps.unreferenced_bytes += size;
            }
        }
    }
    let min = by_margin.keys().next().copied();
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
        registry_notes: v.registry_notes(),
        providers,
        buckets: buckets.len() as u64,
        objects,
        bytes,
        redundancy: Redundancy {
            readable,
            unreadable,
            degraded,
            min_tolerated_losses: min,
            by_tolerated_losses: by_margin
                .into_iter()
                .map(|(k, v)| (k.to_string(), v))
                .collect(),
            summary,
        },
        shards_per_jurisdiction: per_jurisdiction,
        shards_per_operator: per_operator,
        unreadable_objects,
    })
}
