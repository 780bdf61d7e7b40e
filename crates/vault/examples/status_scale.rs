//! How `status` scales with the number of objects: fills a zero-configuration vault (six
//! directory providers, 4+2, embedded metadata) in DIR with N small objects through the
//! engine, then reports the time and peak heap of `status::collect` over it (with a budget
//! of shard entries, default `status::DEFAULT_BUDGET`: `status_scale DIR N BUDGET`).
//!
//! ```sh
//! cargo run --release -p archipel-vault --example status_scale -- DIR 100000
//! # then, for the real command's peak RSS and time:
//! /usr/bin/time -v target/release/archipel status --data-dir DIR/data --json > /dev/null
//! ```
//!
//! A DIR that already holds a vault is reused (objects are added up to N).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Instant;

use archipel_engine::{Body, PutOptions};
use archipel_vault::{Vault, VaultSpec};
use bytes::Bytes;
use futures::StreamExt;
use peak_alloc::PeakAlloc;

#[global_allocator]
static PEAK: PeakAlloc = PeakAlloc;

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let mut args = std::env::args().skip(1);
    let dir = std::path::PathBuf::from(args.next().expect("DIR"));
    let n: usize = args.next().map_or(100_000, |a| a.parse().expect("N"));
    let budget: usize = args
        .next()
        .map_or(archipel_vault::status::DEFAULT_BUDGET, |a| {
            a.parse().expect("BUDGET")
        });
    let spec = VaultSpec::zero_config(&dir.join("data")).unwrap();
    let v = Vault::open(&spec, false).await.unwrap();
    let engine = v.engine().clone();
    if engine.bucket_policy("scale").await.is_err() {
        engine.create_bucket("scale", "root", None).await.unwrap();
    }
    let have = archipel_vault::status::collect(&v).await.unwrap().objects as usize;
    let started = Instant::now();
    futures::stream::iter(have..n)
        .for_each_concurrent(64, |i| {
            let engine = engine.clone();
            async move {
                let body: Body = Box::pin(futures::stream::once(async move {
                    Ok::<_, std::io::Error>(Bytes::from(format!("object {i:08}")))
                }));
                engine
                    .put_object("scale", &format!("o/{i:08}"), body, PutOptions::default())
                    .await
                    .unwrap();
            }
        })
        .await;
    let put_s = started.elapsed().as_secs_f64();
    PEAK.reset_peak_usage();
    let base = PEAK.current_usage();
    let started = Instant::now();
    let s = archipel_vault::status::collect_with_budget(&v, budget)
        .await
        .unwrap();
    let status_s = started.elapsed().as_secs_f64();
    let peak = PEAK.peak_usage().saturating_sub(base);
    println!(
        "{}",
        serde_json::json!({
            "objects": s.objects,
            "budget": budget,
            "shards": s.providers.iter().map(|p| p.shards).sum::<u64>(),
            "put_s": (put_s * 10.0).round() / 10.0,
            "put_per_s": ((n - have) as f64 / put_s.max(1e-9)).round(),
            "status_s": (status_s * 100.0).round() / 100.0,
            "status_peak_heap_mib": (peak as f64 / 1048576.0 * 10.0).round() / 10.0,
            "summary": s.redundancy.summary,
        })
    );
    v.close().await;
}
