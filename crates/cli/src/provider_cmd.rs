//! `archipel provider list|test|add`: the configured providers, and whether each really
//! works (`add` is in [`crate::provider_add`]).
//!
//! Both read the configuration only (no master key, no metadata store), so they run beside a
//! serving gateway, and on a configuration before its first `archipel serve`.
//!
//! `test` checks, per provider and one provider at a time (so throughput figures do not share
//! the disk or the link): reachability (a listing), permissions (write a probe blob, read it
//! back, delete it and check it is gone), latency (the median of a few small put / get / delete
//! round trips) and throughput (write and read back one larger blob). Every probe blob lives
//! under `probe/` and is deleted; none is ever a shard. Requests go through the provider's
//! deadlines only — no retries — so a flaky provider shows as such.

use anyhow::bail;
use serde::Serialize;

use crate::config::{ProviderSetting, Settings};
use crate::ops::VaultArgs;
use crate::size;
use archipel_vault::provider_test::{Check, ProviderTest};

/// `archipel provider …`.
#[derive(clap::Subcommand, Debug)]
pub(crate) enum ProviderCmd {
    /// List the configured providers: kind, location (no secrets), labels, state.
    List(ProviderListArgs),
    /// Test providers: reachability, write/read/delete permissions, latency, throughput.
    Test(ProviderTestArgs),
    /// Add a provider to the configuration file (appended; the rest of the file is kept as
    /// it is), after checking that it loads and that the provider answers. Existing objects
    /// are not moved: new writes use the provider once the gateway is (re)started.
    Add(Box<crate::provider_add::ProviderAddArgs>),
    /// Leave a provider, live: new writes avoid it at once, every shard it holds moves to a
    /// provider the bucket's policy allows (refused before anything moves if a policy cannot
    /// be kept), what is left is deleted, and a report proves it empty.
    Drain(crate::drain_cmd::DrainArgs),
    /// Replace a provider by another (added before with `provider add`): a drain of OLD that
    /// moves each shard onto NEW where the bucket's policy allows it.
    Replace(crate::drain_cmd::ReplaceArgs),
    /// Take a drained provider out of the vault (refused unless a drain proved it empty).
    Retire(crate::drain_cmd::RetireArgs),
    /// What leaving a provider would take — shards, bytes, time, egress cost, blocking
    /// policies — without moving anything.
    ExitPlan(crate::drain_cmd::ExitPlanArgs),
    /// Audit providers: read back a random sample of their chunks and verify each, within a
    /// byte budget; what is missing goes to repair. Prints the evidence.
    Audit(crate::audit_cmd::AuditArgs),
    /// The audit evidence kept, newest first: dated, with the confidence each gives.
    Audits(crate::audit_cmd::AuditsArgs),
}

/// `archipel provider list`.
#[derive(clap::Args, Debug)]
pub(crate) struct ProviderListArgs {
    /// Print JSON.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    vault: VaultArgs,
}

/// `archipel provider test`.
#[derive(clap::Args, Debug)]
pub(crate) struct ProviderTestArgs {
    /// Test only this provider [default: all].
    name: Option<String>,
    /// Small round trips for the latency median.
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u32).range(1..=1000))]
    rounds: u32,
    /// Size of the throughput blob (e.g. 8MiB; 0 skips the throughput test).
    #[arg(long, default_value = "8MiB", value_parser = size::parse)]
    size: u64,
    /// Print JSON.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    vault: VaultArgs,
}

/// The settings the provider commands work from.
fn settings(v: &VaultArgs) -> anyhow::Result<Settings> {
    let s = v.settings()?;
    if s.is_demo() && !s.data_dir.join("vault").is_file() {
        bail!(
            "no vault in {}: start one with `archipel serve` (or point to it with --data-dir / --config)",
            s.data_dir.display()
        );
    }
    Ok(s)
}

/// One provider as listed.
#[derive(Debug, Serialize)]
pub(crate) struct ProviderRow {
    name: String,
    kind: String,
    location: String,
    operator: String,
    jurisdiction: String,
    weight: u32,
    state: String,
}

fn row(s: &ProviderSetting) -> ProviderRow {
    ProviderRow {
        name: s.info.name.clone(),
        kind: s.backend.kind().to_string(),
        location: s.backend.location(),
        operator: s.info.operator.clone(),
        jurisdiction: s.info.jurisdiction.clone(),
        weight: s.info.weight,
        state: s.info.state.as_str().to_string(),
    }
}

/// Left-aligned columns, two spaces apart, the last one unpadded.
fn table(header: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for r in rows {
        for (w, c) in widths.iter_mut().zip(r) {
            *w = (*w).max(c.chars().count());
        }
    }
    let mut out = String::new();
    let all = std::iter::once(header.iter().map(|h| (*h).to_string()).collect::<Vec<_>>())
        .chain(rows.iter().cloned());
    for r in all {
        let mut line = String::new();
        for (i, (c, w)) in r.iter().zip(&widths).enumerate() {
            if i > 0 {
                line.push_str("  ");
            }
            line.push_str(c);
            if i + 1 < r.len() {
                line.push_str(&" ".repeat(w - c.chars().count()));
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

/// The human rendering of `provider list`.
pub(crate) fn render_list(rows: &[ProviderRow]) -> String {
    let body: Vec<Vec<String>> = rows
        .iter()
        .map(|r| {
            vec![
                r.name.clone(),
                r.kind.clone(),
                r.operator.clone(),
                r.jurisdiction.clone(),
                r.weight.to_string(),
                r.state.clone(),
                r.location.clone(),
            ]
        })
        .collect();
    table(
        &[
            "NAME",
            "KIND",
            "OPERATOR",
            "JURISDICTION",
            "WEIGHT",
            "STATE",
            "LOCATION",
        ],
        &body,
    )
}

// ---------------------------------------------------------------------------------------------
// test

fn check_text(c: Option<&Check>) -> String {
    match c {
        None => "-".into(),
        Some(c) if c.ok => "ok".into(),
        Some(_) => "FAILED".into(),
    }
}

/// The human rendering of `provider test`.
pub(crate) fn render_test(tests: &[ProviderTest]) -> String {
    let body: Vec<Vec<String>> = tests
        .iter()
        .map(|t| {
            let (put, get, del) = t.latency.as_ref().map_or_else(
                || ("-".to_string(), "-".to_string(), "-".to_string()),
                |l| {
                    (
                        format!("{:.1} ms", l.put_ms),
                        format!("{:.1} ms", l.get_ms),
                        format!("{:.1} ms", l.delete_ms),
                    )
                },
            );
            let (w, r) = t.throughput.as_ref().map_or_else(
                || ("-".to_string(), "-".to_string()),
                |x| {
                    (
                        format!("{:.1} MiB/s", x.write_mib_s),
                        format!("{:.1} MiB/s", x.read_mib_s),
                    )
                },
            );
            vec![
                t.name.clone(),
                t.kind.to_string(),
                check_text(t.reachable.as_ref()),
                check_text(t.write.as_ref()),
                check_text(t.read.as_ref()),
                check_text(t.delete.as_ref()),
                put,
                get,
                del,
                w,
                r,
            ]
        })
        .collect();
    let mut out = table(
        &[
            "NAME",
            "KIND",
            "REACHABLE",
            "WRITE",
            "READ",
            "DELETE",
            "PUT p50",
            "GET p50",
            "DELETE p50",
            "WRITE RATE",
            "READ RATE",
        ],
        &body,
    );
    if let Some(t) = tests.iter().find_map(|t| t.latency.as_ref()) {
        out.push_str(&format!(
            "latency: median of {} round trips of {}",
            t.rounds,
            size::human(t.blob_bytes)
        ));
        match tests.iter().find_map(|t| t.throughput.as_ref()) {
            Some(x) => out.push_str(&format!(
                "; throughput: one {} blob written, then read back\n",
                size::human(x.bytes)
            )),
            None => out.push('\n'),
        }
    }
    for t in tests {
        if let Some(e) = &t.error {
            out.push_str(&format!("{} [{} at {}]: {e}\n", t.name, t.kind, t.location));
        }
    }
    let failed = tests.iter().filter(|t| !t.ok).count();
    if failed == 0 {
        out.push_str(&format!(
            "{} provider{} passed\n",
            tests.len(),
            if tests.len() == 1 { "" } else { "s" }
        ));
    }
    out
}

/// Runs `archipel provider …`.
pub(crate) async fn provider(cmd: ProviderCmd) -> anyhow::Result<()> {
    match cmd {
        ProviderCmd::Add(a) => crate::provider_add::run(*a).await,
        ProviderCmd::Drain(a) => crate::drain_cmd::drain(a).await,
        ProviderCmd::Retire(a) => crate::drain_cmd::retire(a).await,
        ProviderCmd::Replace(a) => crate::drain_cmd::replace(a).await,
        ProviderCmd::ExitPlan(a) => crate::drain_cmd::exit_plan(a).await,
        ProviderCmd::Audit(a) => crate::audit_cmd::audit(a).await,
        ProviderCmd::Audits(a) => crate::audit_cmd::audits(a).await,
        ProviderCmd::List(a) => {
            let s = settings(&a.vault)?;
            // A running gateway answers from the registry (providers added live included).
            let rows: Vec<ProviderRow> = match crate::client::Admin::find(&s).await? {
                Some(admin) => crate::client::Control::Remote(admin)
                    .registry()
                    .await?
                    .into_iter()
                    .map(|e| ProviderRow {
                        name: e.name,
                        kind: e.kind,
                        location: e.location,
                        operator: e.operator,
                        jurisdiction: e.jurisdiction,
                        weight: e.weight,
                        state: e.state,
                    })
                    .collect(),
                None => s.providers.iter().map(row).collect(),
            };
            if a.json {
                println!("{}", serde_json::to_string_pretty(&rows)?);
            } else {
                print!("{}", render_list(&rows));
            }
            Ok(())
        }
        ProviderCmd::Test(a) => {
            let s = settings(&a.vault)?;
            // Beside a running gateway, its own provider instances are tested (a directory
            // provider belongs to one process).
            if let Some(admin) = crate::client::Admin::find(&s).await? {
                let tests =
                    crate::client::remote_test(&admin, a.name.as_deref(), a.rounds, a.size).await?;
                return report_tests(&tests, a.json);
            }
            let chosen: Vec<&ProviderSetting> = match &a.name {
                None => s.providers.iter().collect(),
                Some(n) => {
                    let Some(p) = s.providers.iter().find(|p| &p.info.name == n) else {
                        bail!(
                            "no provider named {n:?} (configured: {})",
                            s.providers
                                .iter()
                                .map(|p| p.info.name.as_str())
                                .collect::<Vec<_>>()
                                .join(", ")
                        );
                    };
                    vec![p]
                }
            };
            let mut tests = Vec::new();
            for p in chosen {
                tests.push(archipel_vault::test_provider(p, None, a.rounds, a.size).await?);
            }
            report_tests(&tests, a.json)
        }
    }
}

fn report_tests(tests: &[ProviderTest], json: bool) -> anyhow::Result<()> {
    {
        {
            if json {
                println!("{}", serde_json::to_string_pretty(&tests)?);
            } else {
                print!("{}", render_test(tests));
            }
            let failed = tests.iter().filter(|t| !t.ok).count();
            if failed > 0 {
                bail!(
                    "{failed} of {} provider{} failed the test",
                    tests.len(),
                    if tests.len() == 1 { "" } else { "s" }
                );
            }
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_align_and_trim() {
        let t = table(
            &["A", "BB", "C"],
            &[vec!["xxx".into(), "y".into(), "z".into()]],
        );
        assert_eq!(t, "A    BB  C\nxxx  y   z\n");
    }
}
