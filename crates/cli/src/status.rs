//! `archipel status`: per provider, whether it answers, how fast, and what it holds; per
//! vault, objects, bytes and redundancy — how many objects survive how many more provider
//! losses, counted from the shards actually present on the providers (a provider that lost its
//! data, or does not answer, counts as holding nothing) — and shards per jurisdiction and
//! operator.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::Instant;

use anyhow::anyhow;
use archipel_codec::Manifest;
use archipel_meta::MetaStoreExt;
use archipel_provider::{Provider, ProviderExt};
use serde::Serialize;

use crate::ops::VaultArgs;
use crate::size;

/// `archipel status`.
#[derive(clap::Args, Debug)]
pub(crate) struct StatusArgs {
    /// Print JSON.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    vault: VaultArgs,
}

/// One provider's state.
#[derive(Debug, Serialize)]
pub(crate) struct ProviderStatus {
    name: String,
    kind: &'static str,
    location: String,
    operator: String,
    jurisdiction: String,
    state: String,
    reachable: bool,
    error: Option<String>,
    /// Time to list the provider's shards, in milliseconds.
    list_ms: Option<u64>,
    /// Shards of current object versions found on the provider, and their bytes.
    shards: u64,
    bytes: u64,
    /// Other blobs: superseded or deleted versions awaiting garbage collection, parts of
    /// uploads in progress, orphans of interrupted writes.
    unreferenced_shards: u64,
    unreferenced_bytes: u64,
}

/// How many objects survive how many more provider losses.
#[derive(Debug, Serialize)]
pub(crate) struct Redundancy {
    /// Objects whose every segment has at least `k` shards present.
    readable: u64,
    /// Objects with some segment below `k` shards.
    unreadable: u64,
    /// Objects with fewer shards present than they were written with.
    degraded: u64,
    /// The fewest further provider losses any readable object survives (`None` without
    /// objects).
    min_tolerated_losses: Option<u64>,
    /// Objects by how many more losses they survive ("0", "1", "2", …).
    by_tolerated_losses: BTreeMap<String, u64>,
    /// One-line verdict.
    summary: String,
}

/// The whole report.
#[derive(Debug, Serialize)]
pub(crate) struct Status {
    vault_id: String,
    data_dir: String,
    providers: Vec<ProviderStatus>,
    buckets: u64,
    objects: u64,
    bytes: u64,
    redundancy: Redundancy,
    shards_per_jurisdiction: BTreeMap<String, u64>,
    shards_per_operator: BTreeMap<String, u64>,
    unreadable_objects: Vec<String>,
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
pub(crate) async fn collect(v: &crate::open::Vault, settings_dir: &str) -> anyhow::Result<Status> {
    // Providers: list every shard once.
    let lists = futures::future::join_all(
        v.providers
            .iter()
            .map(|b| async move { inventory(&b.slot.provider).await }),
    )
    .await;
    let mut present: HashMap<String, HashMap<String, u64>> = HashMap::new();
    let mut providers = Vec::new();
    for (b, (names, list_ms)) in v.providers.iter().zip(lists) {
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
            kind: b.setting.backend.kind(),
            location: b.setting.backend.location(),
            operator: info.operator.clone(),
            jurisdiction: info.jurisdiction.clone(),
            state: format!("{:?}", info.state).to_lowercase(),
            reachable,
            error,
            list_ms,
            shards: 0,
            bytes: 0,
            unreferenced_shards: 0,
            unreferenced_bytes: 0,
        });
    }
    let labels: HashMap<&str, (&str, &str)> = v
        .providers
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
    let manifest_key = v.unlocked.key.manifest_key();
    let meta = v.meta_dyn();
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
                .map_err(|e| anyhow!("{what}: manifest: {e}"))?;
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
        vault_id: v.unlocked.vault_id(),
        data_dir: settings_dir.to_string(),
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

/// The human rendering.
pub(crate) fn render(s: &Status) -> String {
    let mut out = String::new();
    let mut line = |l: String| {
        out.push_str(&l);
        out.push('\n');
    };
    line(format!("vault {} ({})", s.vault_id, s.data_dir));
    line(String::new());
    line("providers:".into());
    for p in &s.providers {
        let health = if p.reachable {
            format!(
                "ok, listed in {} ms",
                p.list_ms.map_or_else(|| "?".into(), |m| m.to_string())
            )
        } else {
            format!("UNREACHABLE: {}", p.error.as_deref().unwrap_or("?"))
        };
        line(format!(
            "  {:12} {:6} {:>6} shards {:>10}  {}/{}  {}  [{}]",
            p.name,
            p.kind,
            p.shards,
            size::human(p.bytes),
            p.operator,
            p.jurisdiction,
            health,
            p.state
        ));
        if p.unreferenced_shards > 0 {
            line(format!(
                "  {:12} {:6} {:>6} more   {:>10}  unreferenced (awaiting GC, uploads in progress, orphans)",
                "",
                "",
                p.unreferenced_shards,
                size::human(p.unreferenced_bytes)
            ));
        }
    }
    line(String::new());
    line(format!(
        "{} buckets, {} objects, {}",
        s.buckets,
        s.objects,
        size::human(s.bytes)
    ));
    line(format!("redundancy: {}", s.redundancy.summary));
    for (m, n) in &s.redundancy.by_tolerated_losses {
        let m: u64 = m.parse().unwrap_or(0);
        line(format!(
            "  {n} objects survive {m} more provider {}",
            losses_word(m)
        ));
    }
    for o in &s.unreadable_objects {
        line(format!("  unreadable: {o}"));
    }
    let join = |m: &BTreeMap<String, u64>| {
        m.iter()
            .map(|(k, v)| format!("{k} {v}"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    if !s.shards_per_jurisdiction.is_empty() {
        line(format!(
            "shards per jurisdiction: {}",
            join(&s.shards_per_jurisdiction)
        ));
        line(format!(
            "shards per operator: {}",
            join(&s.shards_per_operator)
        ));
    }
    out
}

/// Runs `archipel status`.
pub(crate) async fn run(a: StatusArgs) -> anyhow::Result<()> {
    let vault = a.vault.open().await?;
    let dir = crate::serve::settings(a.vault.config.as_ref(), a.vault.data_dir.as_ref())
        .map(|s| s.data_dir.display().to_string())
        .unwrap_or_default();
    let r = collect(&vault, &dir).await;
    vault.close().await;
    let s = r?;
    if a.json {
        println!("{}", serde_json::to_string_pretty(&s)?);
    } else {
        print!("{}", render(&s));
    }
    Ok(())
}
