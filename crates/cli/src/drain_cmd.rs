//! `archipel provider drain|retire|exit-plan` and `archipel status --placement`: leaving a
//! provider with the evidence an auditor asks for, and where every shard is. Through the
//! gateway's admin API when one serves the vault (the drain then runs on the gateway, live,
//! and resumes if it restarts), else in this process until done.

use std::io::IsTerminal;
use std::time::Duration;

use anyhow::bail;
use archipel_engine::Census;
use archipel_vault::{DrainReport, ExitPlan, JobRecord, JobState};
use indicatif::{ProgressBar, ProgressStyle};

use crate::client::Control;
use crate::ops::{VaultArgs, fmt_time};
use crate::size;

/// `archipel provider drain`.
#[derive(clap::Args, Debug)]
pub(crate) struct DrainArgs {
    /// The provider to leave.
    name: String,
    /// At most this many shard bytes moved per second (e.g. 50MiB).
    #[arg(long, value_name = "BYTES", value_parser = size::parse)]
    rate: Option<u64>,
    /// Wait until the drain ends, showing its progress, then print the report (always so
    /// without a gateway).
    #[arg(long)]
    wait: bool,
    /// Print JSON (the job record, with its `drain` report).
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    vault: VaultArgs,
}

/// `archipel provider replace`.
#[derive(clap::Args, Debug)]
pub(crate) struct ReplaceArgs {
    /// The provider to leave.
    old: String,
    /// The provider taking its shards: added before (`archipel provider add`) and active.
    new: String,
    /// At most this many shard bytes moved per second (e.g. 50MiB).
    #[arg(long, value_name = "BYTES", value_parser = size::parse)]
    rate: Option<u64>,
    /// Wait until the drain ends, showing its progress, then print the report (always so
    /// without a gateway).
    #[arg(long)]
    wait: bool,
    /// Print JSON (the job record, with its `drain` report).
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    vault: VaultArgs,
}

/// `archipel provider retire`.
#[derive(clap::Args, Debug)]
pub(crate) struct RetireArgs {
    /// The drained provider.
    name: String,
    #[command(flatten)]
    vault: VaultArgs,
}

/// `archipel provider exit-plan`.
#[derive(clap::Args, Debug)]
pub(crate) struct ExitPlanArgs {
    /// The provider to plan leaving.
    name: String,
    /// The bandwidth to assume, bytes per second (e.g. 100MB/s).
    #[arg(long, default_value = "100MB/s", value_parser = parse_rate)]
    bandwidth: u64,
    /// Print JSON.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    vault: VaultArgs,
}

/// `100MB/s`, `1GiB/s`, `50MiB`: a size per second.
fn parse_rate(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let t = t
        .strip_suffix("/s")
        .or_else(|| t.strip_suffix("ps"))
        .unwrap_or(t);
    match size::parse(t)? {
        0 => Err("the bandwidth must be positive".into()),
        n => Ok(n),
    }
}

/// The report, for people.
pub(crate) fn render_report(d: &DrainReport) -> String {
    let mut out = format!(
        "drain of {} (operator {}, jurisdiction {}): {}\n",
        d.provider, d.operator, d.jurisdiction, d.phase
    );
    out.push_str(&format!(
        "  started {}{}\n",
        fmt_time(d.started_ms),
        d.finished_ms
            .map(|f| format!(
                ", finished {} ({:.1} s)",
                fmt_time(f),
                (f - d.started_ms) as f64 / 1000.0
            ))
            .unwrap_or_default()
    ));
    out.push_str(&format!(
        "  before: the provider listed {} Archipel blobs ({}); the index placed {} shards ({}) there\n",
        d.listed_before.shards,
        size::human(d.listed_before.bytes),
        d.indexed_before.shards,
        size::human(d.indexed_before.bytes)
    ));
    let to: Vec<String> = d.to.iter().map(|(p, n)| format!("{p} {n}")).collect();
    out.push_str(&format!(
        "  moved: {} shards ({}), {} copied and verified, {} rebuilt, in {} passes{}\n",
        d.moved.shards,
        size::human(d.moved.bytes),
        d.copied,
        d.rebuilt,
        d.passes,
        if to.is_empty() {
            String::new()
        } else {
            format!("; to {}", to.join(", "))
        }
    ));
    if d.leftovers_deleted > 0 {
        out.push_str(&format!(
            "  leftovers deleted (blobs no object used): {}\n",
            d.leftovers_deleted
        ));
    }
    for s in &d.stuck {
        out.push_str(&format!("  not moved in a pass: {s}\n"));
    }
    if let (Some(i), Some(l)) = (d.indexed_after, d.listed_after) {
        out.push_str(&format!(
            "  after: the index places {i} shards there; the provider's own listing shows {} Archipel blobs\n",
            l.shards
        ));
    }
    if let Some(dg) = &d.digest {
        out.push_str(&format!("  report digest (SHA-256): {dg}\n"));
    }
    out
}

fn print_job(j: &JobRecord, json: bool) -> anyhow::Result<()> {
    if json {
        println!("{}", serde_json::to_string_pretty(j)?);
    } else {
        match &j.drain {
            Some(d) => print!("{}", render_report(d)),
            None => println!("drain job {}: {}", j.id, j.state.as_str()),
        }
        if let Some(e) = &j.error {
            println!("  error: {e}");
        }
    }
    Ok(())
}

/// Follows the drain until it ends: a bar on a terminal, a line per change otherwise.
async fn follow(c: &Control, id: &str, json: bool) -> anyhow::Result<JobRecord> {
    let bar = (!json && std::io::stderr().is_terminal()).then(|| {
        let b = ProgressBar::new(0);
        if let Ok(style) = ProgressStyle::with_template(
            "{msg} [{bar:30}] {binary_bytes}/{binary_total_bytes} {binary_bytes_per_sec}, {eta} left",
        ) {
            b.set_style(style.progress_chars("=> "));
        }
        b
    });
    let mut last = String::new();
    loop {
        let j = c.job(id).await?;
        let phase = j.drain.as_ref().map_or("queued", |d| d.phase.as_str());
        let p = &j.progress;
        if let Some(b) = &bar {
            b.set_length(p.bytes_total.unwrap_or(0).max(p.bytes_done));
            b.set_position(p.bytes_done);
            b.set_message(format!(
                "{phase}: {}/{} objects",
                p.items_done,
                p.items_total.unwrap_or(0)
            ));
        } else if !json {
            let line = format!(
                "{phase}: {} of {} objects, {} of {} moved{}",
                p.items_done,
                p.items_total.map_or_else(|| "?".into(), |t| t.to_string()),
                size::human(p.bytes_done),
                size::human(p.bytes_total.unwrap_or(0)),
                p.eta_s
                    .filter(|_| phase == "moving")
                    .map(|e| format!(", about {e:.0} s left"))
                    .unwrap_or_default()
            );
            if line != last {
                eprintln!("{line}");
                last = line;
            }
        }
        if j.state.is_final() {
            if let Some(b) = bar {
                b.finish_and_clear();
            }
            return Ok(j);
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// Runs `archipel provider drain`.
pub(crate) async fn drain(a: DrainArgs) -> anyhow::Result<()> {
    run_drain(a.name, None, a.rate, a.wait, a.json, &a.vault).await
}

/// Runs `archipel provider replace`: a drain of OLD onto NEW.
pub(crate) async fn replace(a: ReplaceArgs) -> anyhow::Result<()> {
    run_drain(a.old, Some(a.new), a.rate, a.wait, a.json, &a.vault).await
}

async fn run_drain(
    name: String,
    onto: Option<String>,
    rate: Option<u64>,
    wait: bool,
    json: bool,
    vault: &VaultArgs,
) -> anyhow::Result<()> {
    let a = DrainArgs {
        name,
        rate,
        wait,
        json,
        vault: vault.clone(),
    };
    Control::with(&a.vault, async |c: &Control| {
        let j = c.drain_provider(&a.name, a.rate, onto.as_deref()).await?;
        if !(a.wait || c.is_local()) {
            if !a.json {
                eprintln!(
                    "drain job {} started on the gateway: follow it with `archipel job show {}` \
                     (or start it with --wait)",
                    j.id, j.id
                );
            }
            return print_job(&j, a.json);
        }
        let j = follow(c, &j.id, a.json).await?;
        print_job(&j, a.json)?;
        match j.state {
            JobState::Done if j.drain.as_ref().is_some_and(DrainReport::is_complete) => {
                if !a.json {
                    println!(
                        "`{}` holds nothing now: retire it with `archipel provider retire {}`",
                        a.name, a.name
                    );
                }
                Ok(())
            }
            s => bail!("drain {} ended {}", j.id, s.as_str()),
        }
    })
    .await
}

/// Runs `archipel provider retire`.
pub(crate) async fn retire(a: RetireArgs) -> anyhow::Result<()> {
    Control::with(&a.vault, async |c: &Control| {
        let e = c.retire_provider(&a.name).await?;
        println!("provider `{}` is {}", e.name, e.state);
        Ok(())
    })
    .await
}

/// The exit plan, for people.
pub(crate) fn render_plan(p: &ExitPlan) -> String {
    let mut out = format!(
        "exit plan for {} (operator {}, jurisdiction {}, {}):\n",
        p.provider, p.operator, p.jurisdiction, p.state
    );
    out.push_str(&format!(
        "  to move: {} shards ({}) of {} objects\n",
        p.to_move.shards,
        size::human(p.to_move.bytes),
        p.objects
    ));
    match &p.listed {
        Some(l) => out.push_str(&format!(
            "  the provider lists {} Archipel blobs ({})\n",
            l.shards,
            size::human(l.bytes)
        )),
        None => out.push_str("  the provider did not answer a listing\n"),
    }
    out.push_str(&format!(
        "  time at {}/s: {}\n",
        size::human(p.bandwidth_bytes_per_s),
        duration(p.seconds)
    ));
    match (p.egress_price_per_gb, p.egress_cost) {
        (Some(price), Some(cost)) => out.push_str(&format!(
            "  egress: {:.3} GB at {price} per GB = {cost:.2}\n",
            p.to_move.bytes as f64 / 1e9
        )),
        _ => out.push_str("  egress: no price known (set `egress_price_per_gb` on the provider)\n"),
    }
    if p.blockers.is_empty() {
        out.push_str(&format!(
            "  every bucket's policy holds without it: its shards go to {}\n",
            p.remaining.join(", ")
        ));
    } else {
        out.push_str("  it cannot be left yet; these buckets' policies would not hold:\n");
        for (b, why) in &p.blockers {
            out.push_str(&format!("    {b}: {why}\n"));
        }
    }
    out
}

fn duration(s: f64) -> String {
    if s < 90.0 {
        format!("{s:.1} s")
    } else if s < 5400.0 {
        format!("{:.1} min", s / 60.0)
    } else {
        format!("{:.1} h", s / 3600.0)
    }
}

/// Runs `archipel provider exit-plan`.
pub(crate) async fn exit_plan(a: ExitPlanArgs) -> anyhow::Result<()> {
    let p = Control::with(&a.vault, async |c: &Control| {
        c.exit_plan(&a.name, a.bandwidth).await
    })
    .await?;
    if a.json {
        println!("{}", serde_json::to_string_pretty(&p)?);
    } else {
        print!("{}", render_plan(&p));
    }
    Ok(())
}

/// The placement report, for people.
pub(crate) fn render_placement(c: &Census) -> String {
    let mut out = format!("placement of {} objects:\n", c.objects);
    if c.buckets.is_empty() {
        out.push_str("  no buckets\n");
    }
    let counts = |m: &std::collections::BTreeMap<String, u64>| -> String {
        m.iter()
            .map(|(k, v)| format!("{k} {v}"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    for (name, b) in &c.buckets {
        out.push_str(&format!(
            "bucket {name} ({}, rules: {}): {} objects, {}\n",
            b.policy,
            b.rules,
            b.objects,
            size::human(b.bytes)
        ));
        if b.objects == 0 {
            continue;
        }
        let per: Vec<String> = b
            .per_provider
            .iter()
            .map(|(p, h)| format!("{p} {}", h.shards))
            .collect();
        out.push_str(&format!("  shards per provider: {}\n", per.join(", ")));
        out.push_str(&format!(
            "  shards per operator: {}\n",
            counts(&b.per_operator)
        ));
        out.push_str(&format!(
            "  shards per jurisdiction: {}\n",
            counts(&b.per_jurisdiction)
        ));
        out.push_str(&format!(
            "  rules: {}\n",
            if b.rule_violations == 0 {
                "every object keeps them".to_string()
            } else {
                format!("{} objects break them", b.rule_violations)
            }
        ));
        for v in &b.violations {
            out.push_str(&format!("    {v}\n"));
        }
        if b.degraded > 0 {
            out.push_str(&format!(
                "  degraded (waiting for repair): {} objects\n",
                b.degraded
            ));
        }
        for (j, n) in &b.lost_with_jurisdiction {
            out.push_str(&format!(
                "  losing jurisdiction {j} leaves {n} objects unreadable\n"
            ));
        }
        for (o, n) in &b.lost_with_operator {
            out.push_str(&format!(
                "  losing operator {o} leaves {n} objects unreadable\n"
            ));
        }
    }
    out
}
