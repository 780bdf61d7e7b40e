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

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail};
use archipel_provider::{BlobName, ErrorKind, Provider, ProviderError, ProviderExt};
use serde::Serialize;

use crate::config::{ProviderSetting, Settings};
use crate::ops::VaultArgs;
use crate::size;

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
    let s = crate::serve::settings(v.config.as_ref(), v.data_dir.as_ref())?;
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
    kind: &'static str,
    location: String,
    operator: String,
    jurisdiction: String,
    weight: u32,
    state: String,
}

fn row(s: &ProviderSetting) -> ProviderRow {
    ProviderRow {
        name: s.info.name.clone(),
        kind: s.backend.kind(),
        location: s.backend.location(),
        operator: s.info.operator.clone(),
        jurisdiction: s.info.jurisdiction.clone(),
        weight: s.info.weight,
        state: format!("{:?}", s.info.state).to_lowercase(),
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
                r.kind.to_string(),
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

/// One check's outcome: how long it took, or why it failed; `None` in the report when an
/// earlier failure made it pointless.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct Check {
    ok: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    ms: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
}

/// Median latencies of small operations, in milliseconds.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct Latency {
    rounds: u32,
    blob_bytes: u64,
    put_ms: f64,
    get_ms: f64,
    delete_ms: f64,
}

/// Sequential throughput of one blob, in MiB/s.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct Throughput {
    bytes: u64,
    write_mib_s: f64,
    read_mib_s: f64,
}

/// One provider's test report.
#[derive(Debug, Serialize)]
pub(crate) struct ProviderTest {
    name: String,
    kind: &'static str,
    location: String,
    ok: bool,
    reachable: Option<Check>,
    write: Option<Check>,
    read: Option<Check>,
    delete: Option<Check>,
    latency: Option<Latency>,
    throughput: Option<Throughput>,
    /// The first failure, with a hint.
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
}

/// A failed step: which, and the provider's error.
struct Failure {
    step: &'static str,
    text: String,
}

fn fail(step: &'static str, s: &ProviderSetting, e: &ProviderError) -> Failure {
    Failure {
        step,
        text: crate::providers::explain(e, &s.backend),
    }
}

fn ms(d: Duration) -> f64 {
    (d.as_secs_f64() * 1e6).round() / 1e3
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    match v.len() {
        0 => 0.0,
        n if n % 2 == 1 => v[n / 2],
        n => (v[n / 2 - 1] + v[n / 2]) / 2.0,
    }
}

/// `len` bytes that do not compress (a provider that compresses must not flatter itself).
fn payload(len: usize) -> anyhow::Result<Vec<u8>> {
    let seed = crate::vault::random::<8>()?;
    let mut x = u64::from_le_bytes(seed) | 1;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        out.extend_from_slice(&x.to_le_bytes());
    }
    out.truncate(len);
    Ok(out)
}

fn probe_name(tag: &str) -> anyhow::Result<BlobName> {
    let suffix = crate::vault::hex(&crate::vault::random::<8>()?);
    BlobName::new(format!("probe/{tag}-{suffix}")).map_err(|e| anyhow!("{e}"))
}

/// Puts, reads back (checking the bytes), deletes and checks the blob is gone: the three
/// durations.
async fn round_trip(
    p: &Arc<dyn Provider>,
    s: &ProviderSetting,
    blob: &BlobName,
    body: &[u8],
) -> Result<(Duration, Duration, Duration), Failure> {
    let t = Instant::now();
    p.put_bytes(blob, body.to_vec())
        .await
        .map_err(|e| fail("write", s, &e))?;
    let put = t.elapsed();
    let t = Instant::now();
    let back = p.get_bytes(blob, None).await;
    let get = t.elapsed();
    let back = match back {
        Ok(b) => b,
        Err(e) => {
            let _ = p.delete(blob).await;
            return Err(fail("read", s, &e));
        }
    };
    if back != body {
        let _ = p.delete(blob).await;
        return Err(Failure {
            step: "read",
            text: format!(
                "the blob read back ({} bytes) differs from what was written ({} bytes)",
                back.len(),
                body.len()
            ),
        });
    }
    let t = Instant::now();
    p.delete(blob).await.map_err(|e| fail("delete", s, &e))?;
    let del = t.elapsed();
    match p.head(blob).await {
        Err(e) if e.kind == ErrorKind::NotFound => Ok((put, get, del)),
        Err(e) => Err(fail("delete", s, &e)),
        Ok(_) => Err(Failure {
            step: "delete",
            text: "the blob is still there after its delete succeeded".into(),
        }),
    }
}

/// Tests one provider.
async fn test_one(s: &ProviderSetting, rounds: u32, size: u64) -> anyhow::Result<ProviderTest> {
    let mut t = ProviderTest {
        name: s.info.name.clone(),
        kind: s.backend.kind(),
        location: s.backend.location(),
        ok: false,
        reachable: None,
        write: None,
        read: None,
        delete: None,
        latency: None,
        throughput: None,
        error: None,
    };
    let failed = |t: &mut ProviderTest, f: Failure| {
        let c = Some(Check {
            ok: false,
            ms: None,
            error: Some(f.text.clone()),
        });
        match f.step {
            "reachable" => t.reachable = c,
            "write" => t.write = c,
            "read" => t.read = c,
            _ => t.delete = c,
        }
        t.error = Some(format!("{} failed: {}", f.step, f.text));
    };
    let good = |d: Duration| {
        Some(Check {
            ok: true,
            ms: Some(ms(d)),
            error: None,
        })
    };

    // Reachable: open it and list the probe folder.
    let started = Instant::now();
    let listed = match crate::providers::open_for_test(s).await {
        Ok(p) => p.list("probe/", None, 1).await.map(|_| p),
        Err(e) => Err(e),
    };
    let p = match listed {
        Ok(p) => p,
        Err(e) => {
            failed(&mut t, fail("reachable", s, &e));
            return Ok(t);
        }
    };
    t.reachable = good(started.elapsed());

    // Permissions: write, read back, delete (and gone).
    let blob = probe_name("check")?;
    let body = format!("archipel probe {blob}").into_bytes();
    let started = Instant::now();
    if let Err(e) = p.put_bytes(&blob, body.clone()).await {
        failed(&mut t, fail("write", s, &e));
        return Ok(t);
    }
    t.write = good(started.elapsed());
    let started = Instant::now();
    let back = p.get_bytes(&blob, None).await;
    let read_time = started.elapsed();
    match back {
        Ok(b) if b == body => t.read = good(read_time),
        other => {
            let _ = p.delete(&blob).await;
            let f = match other {
                Err(e) => fail("read", s, &e),
                Ok(b) => Failure {
                    step: "read",
                    text: format!(
                        "the probe read back ({} bytes) differs from what was written ({} bytes)",
                        b.len(),
                        body.len()
                    ),
                },
            };
            failed(&mut t, f);
            return Ok(t);
        }
    }
    let started = Instant::now();
    let deleted = match p.delete(&blob).await {
        Ok(()) => match (started.elapsed(), p.head(&blob).await) {
            (d, Err(e)) if e.kind == ErrorKind::NotFound => Ok(d),
            (_, Err(e)) => Err(fail("delete", s, &e)),
            (_, Ok(_)) => Err(Failure {
                step: "delete",
                text: "the probe is still there after its delete succeeded".into(),
            }),
        },
        Err(e) => Err(fail("delete", s, &e)),
    };
    match deleted {
        Ok(d) => t.delete = good(d),
        Err(f) => {
            failed(&mut t, f);
            return Ok(t);
        }
    }

    // Latency: the median of small round trips.
    const SMALL: usize = 4096;
    let body = payload(SMALL)?;
    let (mut puts, mut gets, mut dels) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..rounds {
        let blob = probe_name("latency")?;
        match round_trip(&p, s, &blob, &body).await {
            Ok((put, get, del)) => {
                puts.push(ms(put));
                gets.push(ms(get));
                dels.push(ms(del));
            }
            Err(f) => {
                t.error = Some(format!("latency: {} failed: {}", f.step, f.text));
                return Ok(t);
            }
        }
    }
    t.latency = Some(Latency {
        rounds,
        blob_bytes: SMALL as u64,
        put_ms: median(puts),
        get_ms: median(gets),
        delete_ms: median(dels),
    });

    // Throughput: one larger blob, written then read back.
    if size > 0 {
        let len = usize::try_from(size).map_err(|_| anyhow!("--size {size} is too large"))?;
        let body = payload(len)?;
        let blob = probe_name("throughput")?;
        match round_trip(&p, s, &blob, &body).await {
            Ok((put, get, _)) => {
                let rate = |d: Duration| {
                    let secs = d.as_secs_f64().max(1e-9);
                    ((size as f64 / (1024.0 * 1024.0)) / secs * 10.0).round() / 10.0
                };
                t.throughput = Some(Throughput {
                    bytes: size,
                    write_mib_s: rate(put),
                    read_mib_s: rate(get),
                });
            }
            Err(f) => {
                t.error = Some(format!("throughput: {} failed: {}", f.step, f.text));
                return Ok(t);
            }
        }
    }
    t.ok = true;
    Ok(t)
}

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
        ProviderCmd::List(a) => {
            let s = settings(&a.vault)?;
            let rows: Vec<ProviderRow> = s.providers.iter().map(row).collect();
            if a.json {
                println!("{}", serde_json::to_string_pretty(&rows)?);
            } else {
                print!("{}", render_list(&rows));
            }
            Ok(())
        }
        ProviderCmd::Test(a) => {
            let s = settings(&a.vault)?;
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
                tests.push(test_one(p, a.rounds, a.size).await?);
            }
            if a.json {
                println!("{}", serde_json::to_string_pretty(&tests)?);
            } else {
                print!("{}", render_test(&tests));
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
    fn medians() {
        assert!((median(vec![3.0, 1.0, 2.0]) - 2.0).abs() < 1e-9);
        assert!((median(vec![4.0, 1.0, 2.0, 3.0]) - 2.5).abs() < 1e-9);
        assert!(median(Vec::new()).abs() < 1e-9);
    }

    #[test]
    fn tables_align_and_trim() {
        let t = table(
            &["A", "BB", "C"],
            &[vec!["xxx".into(), "y".into(), "z".into()]],
        );
        assert_eq!(t, "A    BB  C\nxxx  y   z\n");
    }
}
