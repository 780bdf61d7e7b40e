//! `archipel recover`: rebuild a vault's metadata from the journal on its providers into an
//! empty data directory (or database), and `archipel recover --check`, the recovery drill
//! that does the same into a scratch directory and compares with the live store; and
//! `archipel snapshot`, which snapshots the journal now (through the gateway's admin API when
//! one serves the vault).

use std::io::IsTerminal;
use std::sync::Mutex;

use archipel_vault::RecoverReport;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::client::Control;
use crate::ops::{VaultArgs, fmt_time};

/// Arguments of `archipel snapshot`.
#[derive(clap::Args, Debug)]
pub(crate) struct SnapshotArgs {
    #[command(flatten)]
    vault: VaultArgs,
    /// Only show the last snapshot; take none.
    #[arg(long)]
    last: bool,
    /// Print the snapshot record as JSON.
    #[arg(long)]
    json: bool,
}

/// Runs `archipel snapshot`.
pub(crate) async fn snapshot(args: SnapshotArgs) -> anyhow::Result<()> {
    let record = Control::with(&args.vault, async |c: &Control| {
        if args.last {
            c.last_snapshot().await
        } else {
            c.snapshot().await.map(Some)
        }
    })
    .await?;
    match (&record, args.json) {
        (_, true) => println!("{}", serde_json::to_string_pretty(&record)?),
        (Some(r), false) => {
            println!("{r}");
            println!("taken {}", fmt_time(r.taken_ms));
            for f in &r.failed {
                println!("  not deleted: {f}");
            }
        }
        (None, false) => println!("no snapshot yet"),
    }
    Ok(())
}

/// Arguments of `archipel recover`.
#[derive(clap::Args, Debug)]
pub(crate) struct RecoverArgs {
    #[command(flatten)]
    vault: VaultArgs,
    /// A drill: recover into a scratch directory, compare with the live store, report the
    /// differences and the time; the live vault is not touched.
    #[arg(long)]
    check: bool,
    /// Print the report as JSON.
    #[arg(long)]
    json: bool,
}

/// Progress on standard error: a bar per phase on a terminal, one line per phase otherwise.
struct Phases {
    bar: Option<ProgressBar>,
    phase: Mutex<&'static str>,
}

impl Phases {
    fn new(json: bool) -> Phases {
        let bar = (!json && std::io::stderr().is_terminal()).then(|| {
            let b = ProgressBar::with_draw_target(Some(0), ProgressDrawTarget::stderr());
            b.set_style(
                ProgressStyle::with_template("{msg:>28} [{bar:30}] {pos}/{len} {elapsed}")
                    .unwrap_or_else(|_| ProgressStyle::default_bar())
                    .progress_chars("=> "),
            );
            b
        });
        Phases {
            bar,
            phase: Mutex::new(""),
        }
    }
}

impl archipel_vault::recover::Progress for Phases {
    fn update(&self, phase: &'static str, done: u64, total: u64) {
        let mut current = self
            .phase
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let new = *current != phase;
        *current = phase;
        match &self.bar {
            Some(b) => {
                if new {
                    b.set_message(phase);
                }
                b.set_length(total);
                b.set_position(done);
            }
            None if new => eprintln!("{phase}…"),
            None => {}
        }
    }
}

pub(crate) async fn run(args: RecoverArgs) -> anyhow::Result<()> {
    let spec = args.vault.settings()?;
    let phases = Phases::new(args.json);
    let report = if args.check {
        archipel_vault::recover::check(&spec, &phases).await?
    } else {
        archipel_vault::recover::recover(&spec, &phases).await?
    };
    if let Some(b) = &phases.bar {
        b.finish_and_clear();
    }
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print_report(&report);
    }
    let differs = report
        .check
        .as_ref()
        .is_some_and(|c| c.difference_count > 0);
    if differs {
        anyhow::bail!("the recovered index differs from the live one");
    }
    Ok(())
}

fn list(title: &str, items: &[String], count: u64) {
    if count == 0 {
        return;
    }
    println!("{title} ({count}):");
    for i in items {
        println!("  {i}");
    }
    if count > items.len() as u64 {
        println!("  … and {} more", count - items.len() as u64);
    }
}

fn print_report(r: &RecoverReport) {
    let verb = if r.check.is_some() {
        "drill: recovered"
    } else {
        "recovered"
    };
    println!(
        "{verb} vault {} in {:.1} s{}",
        r.vault_id,
        r.elapsed_ms as f64 / 1000.0,
        if r.resumed { " (resumed)" } else { "" }
    );
    match &r.snapshot {
        Some(s) => println!("  snapshot {s}"),
        None => println!("  no snapshot: the whole journal was replayed"),
    }
    println!(
        "  journal: {} segments ({} applied now; {} before the snapshot, not read), {} records ({} about things deleted later)",
        r.segments, r.segments_applied, r.segments_superseded, r.records, r.records_moot
    );
    println!(
        "  {} buckets, {} objects ({} bytes), {} uploads in progress, {} access keys, {} providers",
        r.buckets, r.objects, r.bytes, r.uploads, r.access_keys, r.providers
    );
    if let Some(a) = &r.root_credentials {
        println!("  root credentials written back to the data directory (access key id {a})");
    }
    println!(
        "  unreadable (fewer than k shards on the providers): {}",
        r.unreadable_count
    );
    println!(
        "  orphan segments (left to the orphan scan): {}",
        r.orphan_segments
    );
    if !r.phases_ms.is_empty() {
        let phases: Vec<String> = r
            .phases_ms
            .iter()
            .map(|(p, ms)| format!("{p} {:.1} s", *ms as f64 / 1000.0))
            .collect();
        println!("  time: {}", phases.join(", "));
    }
    list(
        "snapshots passed over",
        &r.snapshots_passed_over,
        r.snapshots_passed_over.len() as u64,
    );
    list("unreadable", &r.unreadable, r.unreadable_count);
    list(
        "journal segments that could not be read",
        &r.unreadable_segments,
        r.unreadable_segments.len() as u64,
    );
    list("gaps in the journal", &r.gaps, r.gaps.len() as u64);
    list(
        "providers that did not answer",
        &r.unreachable,
        r.unreachable.len() as u64,
    );
    if let Some(c) = &r.check {
        println!(
            "  compared with the live store: {} records, {} differences",
            c.compared, c.difference_count
        );
        list("differences", &c.differences, c.difference_count);
    } else {
        println!("start it with `archipel serve` (same configuration)");
    }
}
