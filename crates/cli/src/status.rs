//! `archipel status`: per provider, whether it answers, how fast, and what it holds; per
//! vault, objects, bytes and redundancy — how many objects survive how many more provider
//! losses, counted from the shards actually present on the providers (a provider that lost its
//! data, or does not answer, counts as holding nothing) — and shards per jurisdiction and
//! operator.

//!
//! The report is computed by the control plane ([`archipel_vault::status`]); this module only
//! renders it.

use std::collections::BTreeMap;

use archipel_vault::Status;

use crate::client::Control;
use crate::ops::{VaultArgs, fmt_time};
use crate::size;

/// `archipel status`.
#[derive(clap::Args, Debug)]
pub(crate) struct StatusArgs {
    /// Print JSON.
    #[arg(long)]
    json: bool,
    /// The placement report instead: per bucket, shards per provider, operator and
    /// jurisdiction, whether every object keeps the placement rules, and how many objects
    /// losing one jurisdiction or operator would leave unreadable.
    #[arg(long)]
    placement: bool,
    #[command(flatten)]
    vault: VaultArgs,
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
    let r = &s.repair;
    if r.queued + r.rebuilt + r.found_intact + r.failed + r.missing_found > 0 {
        line(format!(
            "repair: {} shards queued; since the gateway started {} rebuilt ({} on spares, {}), {} found intact, {} failed, {} found missing by the inventory",
            r.queued,
            r.rebuilt,
            r.moved,
            crate::size::human(r.bytes_written),
            r.found_intact,
            r.failed,
            r.missing_found
        ));
    }
    if !s.last_audits.is_empty() {
        line("last audits:".to_string());
        for a in &s.last_audits {
            let evidence = if a.population == 0 {
                "no shard to check".to_string()
            } else if a.exhaustive {
                format!(
                    "every shard checked, {:.3} % present",
                    a.present_at_least * 100.0
                )
            } else {
                format!(
                    "{} of {} shards sampled, ≥ {:.3} % present (99 % confidence)",
                    a.samples,
                    a.population,
                    a.present_at_least * 100.0
                )
            };
            line(format!(
                "  {:12} {:6} {} — {evidence}",
                a.provider,
                a.verdict,
                fmt_time(a.finished_ms),
            ));
        }
    }
    if let Some(l) = &s.last_scrub {
        let per: Vec<String> = l
            .per_provider
            .iter()
            .map(|(p, r)| format!("{p} {}/{} bad", r.bad, r.checked))
            .collect();
        line(format!(
            "last scrub: {} ({}, {} objects): {}",
            l.job,
            l.state,
            l.objects,
            if per.is_empty() {
                "nothing to verify".to_string()
            } else {
                per.join(", ")
            }
        ));
    }
    for o in &s.outages {
        line(format!("SERVING WITHOUT: {o}"));
    }
    for n in &s.registry_notes {
        line(format!("note: {n}"));
    }
    out
}

/// Runs `archipel status` (through the gateway's admin API when one serves the vault).
pub(crate) async fn run(a: StatusArgs) -> anyhow::Result<()> {
    if a.placement {
        let c = Control::with(&a.vault, async |c: &Control| c.placement().await).await?;
        if a.json {
            println!("{}", serde_json::to_string_pretty(&c)?);
        } else {
            print!("{}", crate::drain_cmd::render_placement(&c));
        }
        return Ok(());
    }
    let s = Control::with(&a.vault, async |c: &Control| c.status().await).await?;
    if a.json {
        println!("{}", serde_json::to_string_pretty(&s)?);
    } else {
        print!("{}", render(&s));
    }
    Ok(())
}

fn losses_word(n: u64) -> &'static str {
    if n == 1 { "loss" } else { "losses" }
}
