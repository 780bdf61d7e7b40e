//! `archipel job start|list|show|cancel`: background jobs (today: `scrub`, which reads and
//! verifies every shard). With a gateway serving the vault, a job started here runs on the
//! gateway (resumed from its checkpoint if the gateway restarts; taken over by another
//! gateway sharing the store if it dies); without one, it runs in this command until done.

use std::time::Duration;

use anyhow::bail;
use archipel_vault::{JobKind, JobParams, JobRecord, JobState};

use crate::client::Control;
use crate::ops::{VaultArgs, fmt_time};
use crate::size;

/// `archipel job …`.
#[derive(clap::Subcommand, Debug)]
pub(crate) enum JobCmd {
    /// Start a job: `scrub` reads and verifies every shard of every object (bad shards go to
    /// the repair queue).
    Start(JobStartArgs),
    /// List the jobs, newest first.
    List(JobListArgs),
    /// Show one job.
    Show(JobShowArgs),
    /// Ask a job to stop (it stops at its next item).
    Cancel(JobShowArgs),
}

/// Which kind of job.
#[derive(clap::ValueEnum, Debug, Clone, Copy)]
pub(crate) enum KindArg {
    /// Read and verify every shard.
    Scrub,
}

/// `archipel job start`.
#[derive(clap::Args, Debug)]
pub(crate) struct JobStartArgs {
    /// What to run.
    kind: KindArg,
    /// Only this bucket.
    #[arg(long, value_name = "BUCKET")]
    bucket: Option<String>,
    /// At most this many object bytes per second (e.g. 50MiB).
    #[arg(long, value_name = "BYTES", value_parser = size::parse)]
    rate: Option<u64>,
    /// Wait until the job ends, showing its progress (always so without a gateway).
    #[arg(long)]
    wait: bool,
    /// Print JSON.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    vault: VaultArgs,
}

/// `archipel job list`.
#[derive(clap::Args, Debug)]
pub(crate) struct JobListArgs {
    /// Print JSON.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    vault: VaultArgs,
}

/// `archipel job show|cancel`.
#[derive(clap::Args, Debug)]
pub(crate) struct JobShowArgs {
    /// The job id (see `archipel job list`).
    id: String,
    /// Print JSON.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    vault: VaultArgs,
}

fn state_word(s: JobState) -> &'static str {
    match s {
        JobState::Queued => "queued",
        JobState::Running => "running",
        JobState::Done => "done",
        JobState::Failed => "failed",
        JobState::Cancelled => "cancelled",
    }
}

/// One line per job.
pub(crate) fn render_list(jobs: &[JobRecord]) -> String {
    if jobs.is_empty() {
        return "no jobs (start one with `archipel job start scrub`)\n".into();
    }
    let mut out = format!(
        "{:18}  {:6}  {:9}  {:>15}  {:>10}  {:>10}  {:20}\n",
        "ID", "KIND", "STATE", "ITEMS", "BYTES", "RATE/s", "CREATED"
    );
    for j in jobs {
        let items = match j.progress.items_total {
            Some(t) => format!("{}/{t}", j.progress.items_done),
            None => j.progress.items_done.to_string(),
        };
        out.push_str(&format!(
            "{:18}  {:6}  {:9}  {:>15}  {:>10}  {:>10}  {:20}\n",
            j.id,
            j.kind.as_str(),
            state_word(j.state),
            items,
            size::human(j.progress.bytes_done),
            size::human(j.progress.rate_bytes_per_s as u64),
            fmt_time(j.created_ms),
        ));
    }
    out
}

/// The periodic services, one line each.
pub(crate) fn render_services(services: &[archipel_vault::services::ServiceRecord]) -> String {
    if services.is_empty() {
        return String::new();
    }
    let mut out = String::from("\nservices (each runs on one gateway at a time):\n");
    for s in services {
        out.push_str(&format!(
            "  {:14} every {:>6} s, {} runs, last {} {}: {}\n",
            s.name,
            s.every_s,
            s.runs,
            fmt_time(s.last_run_ms),
            if s.last_ok { "ok" } else { "FAILED" },
            s.last_outcome
        ));
    }
    out
}

/// The whole record, for people.
pub(crate) fn render_one(j: &JobRecord) -> String {
    let p = &j.progress;
    if let Some(d) = &j.drain {
        let mut out = format!("job {} (drain): {}\n", j.id, state_word(j.state));
        out.push_str(&crate::drain_cmd::render_report(d));
        if let Some(e) = &j.error {
            out.push_str(&format!("  error: {e}\n"));
        }
        return out;
    }
    if j.kind == JobKind::Audit {
        let mut out = format!("job {} (audit): {}\n", j.id, state_word(j.state));
        for a in &j.audit {
            out.push_str(&crate::audit_cmd::render_record(a));
        }
        if let Some(e) = &j.error {
            out.push_str(&format!("  error: {e}\n"));
        }
        return out;
    }
    let mut out = format!(
        "job {} ({}): {}\n",
        j.id,
        j.kind.as_str(),
        state_word(j.state)
    );
    out.push_str(&format!(
        "  items: {}{}\n  bytes: {}{}\n",
        p.items_done,
        p.items_total
            .map(|t| format!(" of {t}"))
            .unwrap_or_default(),
        size::human(p.bytes_done),
        p.bytes_total
            .map(|t| format!(" of {}", size::human(t)))
            .unwrap_or_default()
    ));
    if j.state == JobState::Running {
        out.push_str(&format!(
            "  rate: {}/s{}\n",
            size::human(p.rate_bytes_per_s as u64),
            p.eta_s
                .map(|e| format!(", about {e:.0} s left"))
                .unwrap_or_default()
        ));
    }
    out.push_str(&format!(
        "  found: {} objects scrubbed, {} shards verified, {} bad (queued for repair)\n",
        j.result.objects, j.result.shards_checked, j.result.bad_shards
    ));
    for f in &j.result.failed {
        out.push_str(&format!("  not scrubbed: {f}\n"));
    }
    for (i, r) in j.runs.iter().enumerate() {
        out.push_str(&format!(
            "  run {}: {} from item {} ({})\n",
            i + 1,
            fmt_time(r.started_ms),
            r.from_items,
            r.owner
        ));
    }
    if let Some(e) = &j.error {
        out.push_str(&format!("  error: {e}\n"));
    }
    out
}

async fn wait(c: &Control, id: &str, json: bool) -> anyhow::Result<JobRecord> {
    let mut last = String::new();
    loop {
        let j = c.job(id).await?;
        if !json {
            let line = format!(
                "{}: {} of {} objects, {}",
                state_word(j.state),
                j.progress.items_done,
                j.progress
                    .items_total
                    .map_or_else(|| "?".to_string(), |t| t.to_string()),
                size::human(j.progress.bytes_done)
            );
            if line != last {
                eprintln!("{line}");
                last = line;
            }
        }
        if j.state.is_final() {
            return Ok(j);
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

fn print(j: &JobRecord, json: bool) -> anyhow::Result<()> {
    if json {
        println!("{}", serde_json::to_string_pretty(j)?);
    } else {
        print!("{}", render_one(j));
    }
    Ok(())
}

/// Runs `archipel job …`.
pub(crate) async fn job(cmd: JobCmd) -> anyhow::Result<()> {
    match cmd {
        JobCmd::Start(a) => {
            Control::with(&a.vault, async |c: &Control| {
                let kind = match a.kind {
                    KindArg::Scrub => JobKind::Scrub,
                };
                let params = JobParams {
                    bucket: a.bucket.clone(),
                    rate_bytes_per_s: a.rate,
                    ..JobParams::default()
                };
                let j = c.start_job(kind, &params).await?;
                if !(a.wait || c.is_local()) {
                    return print(&j, a.json);
                }
                let j = wait(c, &j.id, a.json).await?;
                print(&j, a.json)?;
                match j.state {
                    JobState::Done if j.result.bad_shards == 0 && j.result.failed.is_empty() => {
                        Ok(())
                    }
                    JobState::Done => bail!(
                        "scrub found {} bad shards and {} objects it could not read",
                        j.result.bad_shards,
                        j.result.failed.len()
                    ),
                    s => bail!("job {} ended {}", j.id, state_word(s)),
                }
            })
            .await
        }
        JobCmd::List(a) => {
            Control::with(&a.vault, async |c: &Control| {
                let jobs = c.list_jobs().await?;
                let services = c.list_services().await?;
                if a.json {
                    println!(
                        "{}",
                        serde_json::to_string_pretty(
                            &serde_json::json!({"jobs": jobs, "services": services})
                        )?
                    );
                } else {
                    print!("{}", render_list(&jobs));
                    print!("{}", render_services(&services));
                }
                Ok(())
            })
            .await
        }
        JobCmd::Show(a) => {
            Control::with(&a.vault, async |c: &Control| {
                print(&c.job(&a.id).await?, a.json)
            })
            .await
        }
        JobCmd::Cancel(a) => {
            Control::with(&a.vault, async |c: &Control| {
                print(&c.cancel_job(&a.id).await?, a.json)
            })
            .await
        }
    }
}
