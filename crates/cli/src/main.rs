//! `archipel`: the command-line entry point.
//!
//! Today it offers `archipel demo`, an honest, in-memory run of the codec (encode an object
//! into `k + m` shards, lose `m` of them, decode, then corrupt one more and watch it be
//! detected). The S3 gateway (`archipel serve`) and the operator commands arrive with the
//! engine; see ARCHITECTURE.md for the status of each part.

mod demo;
mod size;

use clap::{Parser, Subcommand};

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
    /// Encode a random object in memory, lose providers, decode it, and detect tampering.
    ///
    /// Runs the real codec (AES-256-GCM + Reed–Solomon, the same bytes providers will store);
    /// nothing touches the network or the disk.
    Demo(demo::DemoArgs),
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::Demo(args) => demo::run(&args),
    }
}
