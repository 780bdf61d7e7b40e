//! `archipel`: the command-line entry point.
//!
//! * `archipel serve`: the S3 endpoint (and `/health`, `/ready`, `/metrics` on an admin
//!   listener), with zero configuration — a demo vault in `./archipel-data` — or from a
//!   configuration file (`--config archipel.toml`).
//! * `archipel init`: writes a commented `archipel.toml`.
//! * Operator commands on a vault: `bucket create|list|policy`, `key create|list|delete|grant`
//!   (S3 access keys and their per-bucket permissions), `provider list|test|add` (reachability,
//!   permissions, latency, throughput; `add` appends a checked provider to the configuration),
//!   `status [--json]` (provider health and redundancy), `job start|list|show|cancel`
//!   (background jobs such as `scrub`, with progress and checkpoints), `ls`, `put`, `get`, `rm` (with progress bars on large transfers).
//! * `archipel demo`: an honest, in-memory run of the codec (encode an object into `k + m`
//!   shards, lose `m` of them, decode, then corrupt one more and watch it be detected).
//!
//! This binary is the only part of Archipel that prints or reads the environment. Logs go to
//! standard error through `tracing` (filter with `RUST_LOG`, default `info`).

mod audit_cmd;
mod client;
mod config;
mod demo;
mod drain_cmd;
mod init;
mod jobs;
mod keys;
mod metrics;
mod ops;
mod progress;
mod provider_add;
mod provider_cmd;
mod recover_cmd;
mod serve;
mod size;
mod status;

use clap::{Parser, Subcommand};

/// jemalloc, with background threads that return freed pages to the kernel: the gateway's RSS
/// stays flat under many clients (decision 0010; mimalloc and glibc kept growing).
/// (`--features system-alloc` builds with the system allocator instead, for heap profilers
/// such as heaptrack that follow malloc.)
#[cfg(not(feature = "system-alloc"))]
#[global_allocator]
static GLOBAL: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// Archipel: a sovereign object store that keeps each object encrypted and erasure-coded
/// across independent storage providers.
#[derive(Parser, Debug)]
#[command(name = "archipel", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Serve the S3 endpoint over a vault.
    ///
    /// Without --config: a zero-configuration demo vault in ./archipel-data (six
    /// local-directory providers on one disk, 4+2, a generated key and root credentials),
    /// reused on every restart.
    Serve(serve::ServeArgs),
    /// Write a commented configuration file (archipel.toml).
    Init(init::InitArgs),
    /// Create and list buckets, show or change their policy (through the running gateway's
    /// admin API when one serves the vault).
    #[command(subcommand)]
    Bucket(ops::BucketCmd),
    /// S3 access keys besides the root key, and what each may do per bucket.
    #[command(subcommand)]
    Key(keys::KeyCmd),
    /// The configured providers: list them, test reachability, permissions, latency and
    /// throughput (works beside a running gateway), or add one to the configuration.
    #[command(subcommand)]
    Provider(provider_cmd::ProviderCmd),
    /// Background jobs: start (`scrub`), list, show, cancel. They run on the gateway when one
    /// serves the vault, resume from their checkpoint after a restart, and run once across
    /// gateways sharing a metadata store.
    #[command(subcommand)]
    Job(jobs::JobCmd),
    /// Providers (health, latency, shards held) and redundancy: how many objects survive
    /// how many more provider losses.
    Status(status::StatusArgs),
    /// List buckets, or objects in BUCKET[/PREFIX].
    Ls(ops::LsArgs),
    /// Upload a file as BUCKET/KEY.
    Put(ops::PutArgs),
    /// Download BUCKET/KEY to a file (`-` for standard output).
    Get(ops::GetArgs),
    /// Delete BUCKET/KEY.
    Rm(ops::RmArgs),
    /// Encode a random object in memory, lose providers, decode it, and detect tampering.
    ///
    /// Runs the real codec (AES-256-GCM + Reed–Solomon, the same bytes providers will store);
    /// nothing touches the network or the disk.
    Demo(demo::DemoArgs),
    /// Rebuild the vault's metadata from its providers and the key alone, into an empty data
    /// directory (or database); `--check` is a drill into a scratch directory that compares
    /// the result with the live store.
    Recover(recover_cmd::RecoverArgs),
    /// Snapshot the metadata journal on the providers now and remove what the snapshot
    /// supersedes (the gateway does this by itself as the journal grows); shows the last one.
    Snapshot(recover_cmd::SnapshotArgs),
}

/// Logs to standard error, filtered by `RUST_LOG` (default `default`). Whatever `RUST_LOG`
/// says, the debug and trace events of the HTTP and S3 protocol crates are never logged: s3s
/// logs expected signatures and request details there, which would let a reader of the logs
/// mint or replay requests (docs/security.md, "Logs").
fn init_logging(default: &str) {
    use tracing_subscriber::prelude::*;
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    let never_secrets = tracing_subscriber::filter::filter_fn(|m| !may_carry_secrets(m));
    let _ = tracing_subscriber::registry()
        .with(
            tracing_subscriber::fmt::layer()
                .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
                .with_writer(std::io::stderr)
                .with_filter(filter)
                .with_filter(never_secrets),
        )
        .try_init();
}

/// Debug and trace output of the crates that see raw requests (signatures, presigned queries,
/// authorization headers).
fn may_carry_secrets(m: &tracing::Metadata<'_>) -> bool {
    const RAW_REQUEST_CRATES: [&str; 4] = ["s3s", "hyper", "hyper_util", "h2"];
    *m.level() > tracing::Level::INFO
        && RAW_REQUEST_CRATES
            .iter()
            .any(|c| m.target() == *c || m.target().starts_with(&format!("{c}::")))
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| anyhow::anyhow!("cannot start the async runtime: {e}"))
}

fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Demo(args) => demo::run(&args),
        Command::Init(args) => init::run(&args),
        Command::Serve(args) => {
            init_logging("info");
            runtime()?.block_on(serve::run(args))
        }
        // Operator commands print their results; logs only for what goes wrong.
        command => {
            init_logging("warn");
            let rt = runtime()?;
            match command {
                Command::Bucket(cmd) => rt.block_on(ops::bucket(cmd)),
                Command::Key(cmd) => rt.block_on(keys::key(cmd)),
                Command::Provider(cmd) => rt.block_on(provider_cmd::provider(cmd)),
                Command::Status(args) => rt.block_on(status::run(args)),
                Command::Job(cmd) => rt.block_on(jobs::job(cmd)),
                Command::Ls(args) => rt.block_on(ops::ls(args)),
                Command::Put(args) => rt.block_on(ops::put(args)),
                Command::Get(args) => rt.block_on(ops::get(args)),
                Command::Rm(args) => rt.block_on(ops::rm(args)),
                Command::Recover(args) => rt.block_on(recover_cmd::run(args)),
                Command::Snapshot(args) => rt.block_on(recover_cmd::snapshot(args)),
                Command::Demo(_) | Command::Init(_) | Command::Serve(_) => Ok(()),
            }
        }
    }
}

fn main() -> std::process::ExitCode {
    // Everything Archipel creates (data directory, index, demo providers, configuration that
    // may hold credentials) is its owner's only: files 0600, directories 0700.
    rustix::process::umask(rustix::fs::Mode::from_raw_mode(0o077));
    match run(Cli::parse()) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            // The chain of causes on one line each, without a backtrace: errors here are
            // meant for operators.
            eprintln!("error: {e}");
            for cause in e.chain().skip(1) {
                eprintln!("  caused by: {cause}");
            }
            std::process::ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    /// clap's own checks of every command and flag (unique names, valid defaults): what a
    /// release build would only find when a user runs the command.
    #[test]
    fn the_command_line_is_well_formed() {
        use clap::CommandFactory as _;
        super::Cli::command().debug_assert();
    }
}
