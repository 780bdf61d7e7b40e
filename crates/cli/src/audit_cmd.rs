//! `archipel provider audit|audits`: proof that providers still hold their shards — random
//! chunks read back and verified within a byte budget — and the dated evidence kept. Through
//! the gateway's admin API when one serves the vault (the audit then runs there), else in this
//! process until done.

use std::time::Duration;

use anyhow::bail;
use archipel_vault::{AuditRecord, JobRecord, JobState};

use crate::client::Control;
use crate::ops::{VaultArgs, fmt_time};
use crate::size;

/// `archipel provider audit`.
#[derive(clap::Args, Debug)]
pub(crate) struct AuditArgs {
    /// The provider to audit [default: every provider not retired].
    name: Option<String>,
    /// At most this many bytes read from each provider (e.g. 256MiB) [default: what is left
    /// of today's `[audit] max_mib_per_day`].
    #[arg(long, value_name = "BYTES", value_parser = size::parse)]
    budget: Option<u64>,
    /// At most this many bytes read per second.
    #[arg(long, value_name = "BYTES", value_parser = size::parse)]
    rate: Option<u64>,
    /// Wait until the audit ends, then print its evidence (always so without a gateway).
    #[arg(long)]
    wait: bool,
    /// Print JSON (the job record, with its `audit` records).
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    vault: VaultArgs,
}

/// `archipel provider audits`.
#[derive(clap::Args, Debug)]
pub(crate) struct AuditsArgs {
    /// Only this provider's [default: every provider's].
    name: Option<String>,
    /// At most this many records.
    #[arg(long, default_value_t = 20)]
    limit: usize,
    /// Print JSON.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    vault: VaultArgs,
}

/// One record, for people.
pub(crate) fn render_record(a: &AuditRecord) -> String {
    let mut out = format!(
        "audit of {} on {}: {}\n",
        a.provider,
        fmt_time(a.finished_ms),
        a.verdict.to_uppercase()
    );
    out.push_str(&format!(
        "  sampled {} of {} shards ({}): {} verified, {} missing, {} corrupt{}{}{}\n",
        a.samples,
        a.population,
        size::human(a.population_bytes),
        a.verified,
        a.missing,
        a.corrupt,
        if a.unreadable > 0 {
            format!(", {} not served when asked twice", a.unreadable)
        } else {
            String::new()
        },
        if a.obsolete > 0 {
            format!(", {} changed meanwhile (not counted)", a.obsolete)
        } else {
            String::new()
        },
        if a.unreachable > 0 {
            format!(", {} unanswered (not counted)", a.unreachable)
        } else {
            String::new()
        }
    ));
    out.push_str(&format!(
        "  read {} of a {} budget in {:.1} s\n",
        size::human(a.bytes_read),
        size::human(a.budget_bytes),
        (a.finished_ms - a.started_ms) as f64 / 1000.0
    ));
    let evidence = if a.population == 0 {
        "it holds no shard".to_string()
    } else if a.exhaustive {
        format!(
            "every shard checked: {:.3} % present",
            a.present_at_least * 100.0
        )
    } else {
        format!(
            "≥ {:.3} % of its shards present with {:.0} % confidence",
            a.present_at_least * 100.0,
            a.confidence * 100.0
        )
    };
    out.push_str(&format!(
        "  evidence: {evidence} — target {:.1} % {}\n",
        a.target_present * 100.0,
        if a.target_met {
            "met".to_string()
        } else {
            format!(
                "not met (needs {} clean samples: raise the budget)",
                a.samples_for_target
            )
        }
    ));
    for f in &a.failed {
        out.push_str(&format!("    {f}\n"));
    }
    if a.repairs_queued > 0 {
        out.push_str(&format!(
            "  {} shards queued for repair\n",
            a.repairs_queued
        ));
    }
    if let Some(i) = &a.inventory {
        out.push_str(&format!("  inventory: {i}\n"));
    }
    if let Some(n) = &a.note {
        out.push_str(&format!("  note: {n}\n"));
    }
    if let Some(d) = &a.digest {
        out.push_str(&format!("  record digest (SHA-256): {d}\n"));
    }
    out
}

fn print_job(j: &JobRecord, json: bool) -> anyhow::Result<()> {
    if json {
        println!("{}", serde_json::to_string_pretty(j)?);
    } else {
        print!("{}", crate::jobs::render_one(j));
    }
    Ok(())
}

/// Runs `archipel provider audit`.
pub(crate) async fn audit(a: AuditArgs) -> anyhow::Result<()> {
    Control::with(&a.vault, async |c: &Control| {
        let j = c
            .audit_providers(a.name.as_deref(), a.budget, a.rate)
            .await?;
        if !(a.wait || c.is_local()) {
            if !a.json {
                eprintln!(
                    "audit job {} started on the gateway: follow it with `archipel job show {}` \
                     (or start it with --wait)",
                    j.id, j.id
                );
            }
            return print_job(&j, a.json);
        }
        let mut last = String::new();
        let j = loop {
            let j = c.job(&j.id).await?;
            if !a.json {
                let line = match j.progress.items_total {
                    Some(t) => format!(
                        "audit: {} of {t} providers done, {} read",
                        j.progress.items_done,
                        size::human(j.progress.bytes_done)
                    ),
                    None => "audit: starting".to_string(),
                };
                if line != last {
                    eprintln!("{line}");
                    last = line;
                }
            }
            if j.state.is_final() {
                break j;
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        };
        print_job(&j, a.json)?;
        match j.state {
            JobState::Done => {
                let failed: Vec<&str> = j
                    .audit
                    .iter()
                    .filter(|r| r.verdict == "fail")
                    .map(|r| r.provider.as_str())
                    .collect();
                if failed.is_empty() {
                    Ok(())
                } else {
                    bail!(
                        "the audit found shards missing or corrupt on {} (queued for repair)",
                        failed.join(", ")
                    )
                }
            }
            s => bail!("audit {} ended {}", j.id, s.as_str()),
        }
    })
    .await
}

/// Runs `archipel provider audits`.
pub(crate) async fn audits(a: AuditsArgs) -> anyhow::Result<()> {
    let list = Control::with(&a.vault, async |c: &Control| {
        c.audits(a.name.as_deref(), a.limit).await
    })
    .await?;
    if a.json {
        println!("{}", serde_json::to_string_pretty(&list)?);
    } else if list.is_empty() {
        println!("no audit yet: run `archipel provider audit` (or wait for the daily one)");
    } else {
        for r in &list {
            print!("{}", render_record(r));
        }
    }
    Ok(())
}
