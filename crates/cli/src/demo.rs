//! `archipel demo`: the codec end to end, in memory.

use std::time::Instant;

use anyhow::{Context, bail};
use archipel_codec::{
    CodecError, CodecParams, DEFAULT_STRIPE_SIZE, DataKey, MasterKey, SegmentId, SegmentSpec,
    ShardIdentity, VersionId, WrappedKey, decode_segment_range, encode_segment,
};
use clap::Args;

use crate::size;

/// Options of `archipel demo`.
#[derive(Args, Debug)]
pub(crate) struct DemoArgs {
    /// Object size (e.g. 4096, 64MiB, 1GB).
    #[arg(long, default_value = "64MiB", value_parser = size::parse)]
    size: u64,
    /// Data shards (k).
    #[arg(long, default_value_t = 4)]
    data: usize,
    /// Parity shards (m): how many providers may be lost.
    #[arg(long, default_value_t = 2)]
    parity: usize,
    /// Plaintext bytes per stripe.
    #[arg(long, default_value_t = DEFAULT_STRIPE_SIZE as u64, value_parser = size::parse)]
    stripe_size: u64,
}

fn random<const N: usize>() -> anyhow::Result<[u8; N]> {
    let mut b = [0u8; N];
    getrandom::fill(&mut b).context("reading the operating system's random number generator")?;
    Ok(b)
}

fn timing(bytes: u64, secs: f64) -> String {
    if bytes < 1 << 20 {
        format!("{:.2} ms", secs * 1e3)
    } else {
        format!(
            "{:.2} GB/s on one core",
            bytes as f64 / secs.max(1e-9) / 1e9
        )
    }
}

pub(crate) fn run(args: &DemoArgs) -> anyhow::Result<()> {
    let (k, m) = (args.data, args.parity);
    let params = CodecParams::with_stripe_size(k, m, args.stripe_size as usize)
        .with_context(|| format!("--data {k} --parity {m} --stripe-size {}", args.stripe_size))?;
    if args.size > 4 << 30 {
        bail!(
            "--size {} is above the demo's in-memory limit of 4 GiB",
            size::human(args.size)
        );
    }
    println!(
        "Archipel codec demo: everything happens in memory (the S3 gateway is not built yet)."
    );
    println!(
        "object: {} of random bytes, {k} data + {m} parity shards, stripe {}",
        size::human(args.size),
        size::human(params.stripe_len() as u64)
    );
    let mut plain = vec![0u8; args.size as usize];
    getrandom::fill(&mut plain).context("generating the demo object")?;

    let master = MasterKey::from_bytes(random()?);
    let spec = SegmentSpec {
        version: VersionId(random()?),
        segment: SegmentId(random()?),
        params,
    };
    let key = DataKey::from_bytes(random()?);
    let wrapped = WrappedKey::wrap(&master, &spec.segment, &key, random()?)?;
    let identity = ShardIdentity {
        version: spec.version,
        timestamp_ms: 0,
        part_number: 0,
        bucket: "demo".into(),
        key: "random.bin".into(),
    };

    let t = Instant::now();
    let enc = encode_segment(spec, &key, &wrapped, &identity, &plain)?;
    let secs = t.elapsed().as_secs_f64();
    let stored: u64 = enc.shards.iter().map(|s| s.len() as u64).sum();
    let overhead = if args.size > 0 {
        format!(", {:.2}x the object", stored as f64 / args.size as f64)
    } else {
        String::new()
    };
    println!(
        "encode: {} shards of {}{overhead}, {}",
        enc.shards.len(),
        size::human(enc.shards[0].len() as u64),
        timing(args.size, secs)
    );

    // Lose the first m shards: with m ≤ k these are data shards, the hardest case.
    let lost: Vec<usize> = (0..m).collect();
    let mut shards: Vec<Option<&[u8]>> = enc.shards.iter().map(|s| Some(s.as_slice())).collect();
    for &i in &lost {
        shards[i] = None;
    }
    let t = Instant::now();
    let (out, _) = decode_segment_range(spec, &key, enc.len, enc.header_len, &shards, 0..enc.len)?;
    let secs = t.elapsed().as_secs_f64();
    if out != plain {
        bail!("decoded bytes differ from the original");
    }
    println!(
        "decode without shards {lost:?} ({m} providers gone): byte-identical, {}",
        timing(args.size, secs)
    );

    // Flip one bit in a surviving shard's first chunk: the codec must refuse, not return it.
    let victim = m.min(k + m - 1);
    let mut bad = enc.shards[victim].clone();
    if let Some(b) = bad.get_mut(enc.header_len) {
        *b ^= 1;
    }
    shards[victim] = Some(&bad);
    match decode_segment_range(spec, &key, enc.len, enc.header_len, &shards, 0..enc.len) {
        Err(e @ CodecError::NotEnoughChunks { .. }) => {
            println!("flip one bit in shard {victim}: detected, nothing returned ({e})");
        }
        Err(e) => bail!("unexpected error after corrupting shard {victim}: {e}"),
        // Exactly k shards remain, so a corrupt one must make the decode fail.
        Ok(_) => bail!("corruption of shard {victim} went undetected"),
    }
    println!("ok");
    Ok(())
}
