//! `archipel serve`: the S3 endpoint and the admin endpoints over a vault, with zero
//! configuration (a demo vault in `./archipel-data`) or from `archipel.toml`.
//!
//! Start-up opens the vault (see [`archipel_vault::Vault`]), binds both listeners, prints the endpoint,
//! the credentials and an aws cli example, then serves until Ctrl-C or SIGTERM, running the
//! garbage collector, the orphan scan and the expiry of abandoned multipart uploads (each once
//! across the gateways sharing the metadata store, [`archipel_vault::services`]), the job
//! runner and the registry poll in the background. Shutdown lets in-flight requests finish, stops the jobs and closes the
//! metadata store.

use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, anyhow};
use archipel_s3::{AdminState, GatewayConfig};
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::config::{Listen, Settings};
use archipel_vault::Vault;
use archipel_vault::{CredentialsOrigin, KeyOrigin};

/// `archipel serve` options.
#[derive(clap::Args, Debug)]
pub(crate) struct ServeArgs {
    /// The configuration file (see `archipel init`); without it, a zero-configuration demo
    /// vault: six local-directory providers in the data directory, 4+2.
    #[arg(long, short = 'c', value_name = "FILE")]
    config: Option<PathBuf>,
    /// The data directory (key, credentials, embedded metadata; demo providers).
    /// Default: ./archipel-data, or `[server] data_dir` from the configuration.
    #[arg(long, value_name = "DIR")]
    data_dir: Option<PathBuf>,
    /// The S3 listen address [default: 127.0.0.1:9000, or `[server] listen`].
    #[arg(long, value_name = "ADDR")]
    listen: Option<SocketAddr>,
    /// The admin listen address (/health, /ready, /metrics), or `off`
    /// [default: 127.0.0.1:9001, or `[server] admin_listen`].
    #[arg(long, value_name = "ADDR|off", value_parser = parse_listen)]
    admin_listen: Option<Listen>,
    #[command(flatten)]
    shares: crate::ops::KeyShareArgs,
}

fn parse_listen(s: &str) -> Result<Listen, String> {
    s.parse()
}

/// Settings from `--config` (or zero configuration), with the command line's overrides.
pub(crate) fn settings(
    config: Option<&PathBuf>,
    data_dir: Option<&PathBuf>,
) -> anyhow::Result<Settings> {
    match config {
        Some(path) => {
            let mut s = crate::config::load(path)?;
            if let Some(d) = data_dir {
                if let crate::config::MetaSetting::Embedded(m) = &mut s.meta {
                    *m = d.join("meta");
                }
                s.data_dir = d.clone();
            }
            Ok(s)
        }
        None => Ok(Settings::zero_config(
            data_dir
                .map_or_else(
                    || PathBuf::from(crate::config::DEFAULT_DATA_DIR),
                    Clone::clone,
                )
                .as_path(),
        )?),
    }
}

/// Installs the Ctrl-C (SIGINT) and SIGTERM handlers now, and returns a future that
/// resolves when either arrives.
fn shutdown_signal() -> anyhow::Result<impl Future<Output = ()> + Send> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let mut int = signal(SignalKind::interrupt()).context("cannot handle Ctrl-C")?;
        let mut term = signal(SignalKind::terminate()).context("cannot handle SIGTERM")?;
        Ok(async move {
            tokio::select! {
                _ = int.recv() => tracing::info!("interrupted (Ctrl-C)"),
                _ = term.recv() => tracing::info!("terminated (SIGTERM)"),
            }
        })
    }
    #[cfg(not(unix))]
    Ok(async {
        if let Err(e) = tokio::signal::ctrl_c().await {
            tracing::error!("cannot listen for Ctrl-C: {e}");
            std::future::pending::<()>().await;
        }
    })
}

/// A future that completes when `rx` turns true.
async fn stopped(mut rx: watch::Receiver<bool>) {
    let _ = rx.wait_for(|v| *v).await;
}

async fn bind(addr: SocketAddr, what: &str, flag: &str) -> anyhow::Result<TcpListener> {
    TcpListener::bind(addr).await.map_err(|e| {
        anyhow!("cannot listen on {addr} for {what}: {e} (choose another address with {flag})")
    })
}

/// The address clients should use for a listener bound to `addr`.
pub(crate) fn reachable(addr: SocketAddr) -> SocketAddr {
    if addr.ip().is_unspecified() {
        let ip = if addr.is_ipv4() {
            std::net::Ipv4Addr::LOCALHOST.into()
        } else {
            std::net::Ipv6Addr::LOCALHOST.into()
        };
        SocketAddr::new(ip, addr.port())
    } else {
        addr
    }
}

/// Quotes `s` for a POSIX shell when needed.
fn shell_quote(s: &str) -> String {
    if !s.is_empty()
        && s.chars().all(|c| {
            c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '/' | '+' | ':' | '=')
        })
    {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', r"'\''"))
    }
}

/// What `archipel serve` prints once it is listening.
pub(crate) fn banner(
    settings: &Settings,
    vault: &Vault,
    s3: SocketAddr,
    admin: Option<SocketAddr>,
) -> String {
    let endpoint = format!("http://{}", reachable(s3));
    let c = &vault.credentials();
    let mut out = String::new();
    let mut line = |s: String| {
        out.push_str(&s);
        out.push('\n');
    };
    line(format!(
        "Archipel S3 endpoint: {endpoint}  (region {})",
        settings.region
    ));
    match admin {
        Some(a) => line(format!(
            "admin: http://{}  (/health, /ready, /metrics)",
            reachable(a)
        )),
        None => line("admin: off".into()),
    }
    let key = match &vault.unlocked().origin {
        KeyOrigin::File(p) => format!("key file {}", p.display()),
        KeyOrigin::Passphrase => "passphrase".into(),
        KeyOrigin::Shares(n) => format!("{n} key shares"),
    };
    line(format!(
        "vault: {} in {} ({}{})",
        vault.unlocked().vault_id(),
        settings.data_dir.display(),
        key,
        if vault.unlocked().created {
            ", created now"
        } else {
            ""
        }
    ));
    let p = &vault.default_policy();
    line(format!(
        "providers: {} ({}); new buckets: {} data + {} parity shards, write quorum {}",
        vault.providers().len(),
        vault
            .providers()
            .iter()
            .map(|b| b.slot.info.name.as_str())
            .collect::<Vec<_>>()
            .join(", "),
        p.k,
        p.m,
        p.write_quorum
    ));
    for o in vault.outages() {
        line(format!(
            "WARNING: serving without provider `{}` (probed again every few seconds): {}",
            o.name, o.reason
        ));
    }
    line(String::new());
    let (secret_shown, secret_env) = match &c.origin {
        CredentialsOrigin::Generated(path) => {
            // Shown this once: later starts point at the file instead (logs keep banners).
            line(format!(
                "root credentials (generated now, kept in {}; the secret is shown only this once):",
                path.display()
            ));
            (c.secret_key.to_string(), shell_quote(c.secret_key.as_str()))
        }
        CredentialsOrigin::File(path) => {
            line(format!("root credentials (kept in {}):", path.display()));
            (
                format!("(in {}; shown only when generated)", path.display()),
                format!(
                    "\"$(sed -n 's/^secret_access_key = \"\\(.*\\)\"$/\\1/p' {})\"",
                    shell_quote(&path.display().to_string())
                ),
            )
        }
        CredentialsOrigin::Env => {
            line(
                "root credentials (from ARCHIPEL_ROOT_ACCESS_KEY / ARCHIPEL_ROOT_SECRET_KEY):"
                    .into(),
            );
            (
                "(the value of ARCHIPEL_ROOT_SECRET_KEY)".into(),
                "\"$ARCHIPEL_ROOT_SECRET_KEY\"".into(),
            )
        }
        CredentialsOrigin::Config => {
            line("root credentials (from [server] root_access_key / root_secret_key):".into());
            ("(as configured)".into(), "<secret>".into())
        }
    };
    line(format!("  access key id:     {}", c.access_key));
    line(format!("  secret access key: {secret_shown}"));
    line(String::new());
    line("try it:".into());
    // Clients sign for the gateway's region; aws cli uses us-east-1 when none is configured.
    let region = if settings.region == crate::config::DEFAULT_REGION {
        String::new()
    } else {
        format!(" --region {}", shell_quote(&settings.region))
    };
    line(format!(
        "  AWS_ACCESS_KEY_ID={} AWS_SECRET_ACCESS_KEY={secret_env} aws --endpoint-url {endpoint}{region} s3 ls",
        shell_quote(&c.access_key)
    ));
    if settings.is_demo() {
        line(String::new());
        line(format!(
            "WARNING: demo setup. The {} providers are directories on one disk ({}): objects are \
             encrypted and erasure-coded {}+{}, but losing this disk loses everything.",
            vault.providers().len(),
            settings.data_dir.join("providers").display(),
            p.k,
            p.m
        ));
        line(
            "To use real, independent providers (other disks, S3-compatible or WebDAV services), \
             write a configuration with `archipel init --provider-dir DIR …` (or edit the \
             archipel.toml it writes) and run `archipel serve --config archipel.toml`."
                .into(),
        );
    }
    out
}

/// How often the garbage collector runs, and how often (in runs) it scans for orphans.
const GC_INTERVAL: Duration = Duration::from_secs(30);
const ORPHAN_EVERY: u32 = 120;
const ORPHAN_MIN_AGE: Duration = Duration::from_secs(24 * 3600);
/// How often the provider registry is read for changes made by other gateways.
const REGISTRY_POLL: Duration = Duration::from_secs(3);
/// Multipart uploads older than this are aborted, checked this often.
const UPLOAD_MAX_AGE: Duration = Duration::from_secs(7 * 24 * 3600);
const UPLOAD_EXPIRY_EVERY: Duration = Duration::from_secs(24 * 3600);

/// Runs `archipel serve`.
pub(crate) async fn run(args: ServeArgs) -> anyhow::Result<()> {
    let mut settings = settings(args.config.as_ref(), args.data_dir.as_ref())?;
    args.shares.apply(&mut settings)?;
    settings.override_with(args.listen, args.admin_listen);
    if settings.is_demo() {
        tracing::info!(
            "no --config: serving the zero-configuration demo vault in {}",
            settings.data_dir.display()
        );
    }
    let vault = Vault::open(&settings, true).await?;
    let result = serve_vault(&settings, &vault).await;
    vault.close().await;
    result
}

async fn serve_vault(settings: &Settings, vault: &Vault) -> anyhow::Result<()> {
    let s3_listener = bind(settings.listen, "S3", "--listen").await?;
    let s3_addr = s3_listener.local_addr().context("S3 listener address")?;
    let admin_listener = match settings.admin_listen {
        Listen::Off => None,
        Listen::At(a) => Some(bind(a, "the admin endpoints", "--admin-listen").await?),
    };
    let admin_addr = match &admin_listener {
        Some(l) => Some(l.local_addr().context("admin listener address")?),
        None => None,
    };

    let engine = vault.engine().clone();
    let mut gateway = GatewayConfig::new(
        vault.credentials().access_key.clone(),
        vault.credentials().secret_key.to_string(),
    );
    gateway.region = settings.region.clone();
    gateway.domain = settings.domain.clone();
    gateway.allow_sigv2 = settings.allow_sigv2;
    if let Some(n) = settings.max_requests {
        gateway.max_requests = n;
    }
    if settings.allow_sigv2 {
        tracing::warn!(
            "[server] allow_sigv2 = true: SigV2 requests are accepted (Date within 15 minutes, presigned URLs up to 7 days)"
        );
    }

    let signal = shutdown_signal()?;
    let (stop_tx, stop_rx) = watch::channel(false);
    let s3_task = tokio::spawn(archipel_s3::serve(
        engine.clone(),
        gateway,
        s3_listener,
        stopped(stop_rx.clone()),
    ));
    let admin_task = admin_listener.map(|l| {
        let state = AdminState {
            engine: engine.clone(),
            metrics: crate::metrics::renderer(
                engine.clone(),
                vault
                    .providers()
                    .iter()
                    .map(|b| b.metrics.clone())
                    .collect(),
            ),
            vault: Some(vault.clone()),
        };
        tokio::spawn(archipel_s3::serve_admin(state, l, stopped(stop_rx.clone())))
    });
    // GC, the orphan scan, upload expiry, repair and the inventory: each once across the
    // gateways sharing the store.
    let services = vault.spawn_services(
        archipel_vault::services::Schedule {
            gc_every: GC_INTERVAL,
            orphans_every: GC_INTERVAL * ORPHAN_EVERY,
            orphan_min_age: ORPHAN_MIN_AGE,
            uploads_every: UPLOAD_EXPIRY_EVERY,
            upload_max_age: UPLOAD_MAX_AGE,
            repair_every: settings.repair.every,
            inventory_every: settings.repair.inventory_every,
            repair: archipel_engine::RepairOptions {
                concurrency: settings.repair.concurrency,
                rate_bytes_per_s: settings.repair.rate_bytes_per_s,
                ..archipel_engine::RepairOptions::default()
            },
            scrub_interval: settings.scrub.every,
            scrub_rate: settings.scrub.rate_bytes_per_s,
            // Longer than any put may take (the providers' put timeout), plus a margin.
            temp_min_age: settings
                .providers
                .iter()
                .map(|p| p.put_timeout)
                .max()
                .unwrap_or(Duration::from_secs(6 * 3600))
                + Duration::from_secs(3600),
        },
        stop_rx.clone(),
    );
    // Registry changes made through another gateway sharing the metadata store, and jobs
    // to resume (after a restart, or from a gateway that died: once its lease ends).
    let registry = {
        let vault = vault.clone();
        let mut stop = stop_rx.clone();
        tokio::spawn(async move {
            loop {
                match vault.resume_jobs().await {
                    Ok(0) => {}
                    Ok(n) => tracing::info!("resumed {n} job(s)"),
                    Err(e) => tracing::warn!("looking for jobs to resume: {e}"),
                }
                tokio::select! {
                    () = tokio::time::sleep(REGISTRY_POLL) => {}
                    _ = stop.wait_for(|v| *v) => break,
                }
                if let Err(e) = vault.refresh_registry().await {
                    tracing::warn!("reading the provider registry: {e}");
                }
                if let Err(e) = vault.recheck_outages().await {
                    tracing::warn!("probing the providers that were out: {e}");
                }
            }
        })
    };
    {
        let text = banner(settings, vault, s3_addr, admin_addr);
        let mut stdout = std::io::stdout().lock();
        let _ = stdout.write_all(text.as_bytes());
        let _ = stdout.flush();
    }
    tracing::info!("serving S3 on {s3_addr}");

    let mut s3_task = s3_task;
    let early = tokio::select! {
        () = signal => None,
        r = &mut s3_task => Some(r),
    };
    tracing::info!("shutting down: letting requests in flight finish");
    let _ = stop_tx.send(true);
    let s3_result = match early {
        Some(r) => r,
        None => s3_task.await,
    };
    if let Some(t) = admin_task {
        match t.await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::warn!("admin listener: {e}"),
            Err(e) => tracing::warn!("admin listener task: {e}"),
        }
    }
    let _ = services.await;
    let _ = registry.await;
    vault.stop_jobs().await;
    match s3_result {
        Ok(Ok(())) => {
            tracing::info!("stopped");
            Ok(())
        }
        Ok(Err(e)) => Err(anyhow!("S3 listener: {e}")),
        Err(e) => Err(anyhow!("S3 listener task: {e}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoting() {
        assert_eq!(shell_quote("abc/DEF+1"), "abc/DEF+1");
        assert_eq!(shell_quote("a b"), "'a b'");
        assert_eq!(shell_quote("it's"), r"'it'\''s'");
        assert_eq!(shell_quote(""), "''");
    }

    #[test]
    fn unspecified_addresses_become_loopback() {
        let a: SocketAddr = "0.0.0.0:9000".parse().unwrap_or_else(|_| unreachable!());
        assert_eq!(reachable(a).to_string(), "127.0.0.1:9000");
        let a: SocketAddr = "10.0.0.1:9000".parse().unwrap_or_else(|_| unreachable!());
        assert_eq!(reachable(a), a);
    }
}
