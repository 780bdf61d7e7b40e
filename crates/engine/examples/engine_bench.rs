//! End-to-end engine benchmark over six local-directory providers (4+2) on one disk, with the
//! raw-disk baseline measured in the same run:
//!
//! * large objects (16 × 64 MiB, 4 at a time): PUT, healthy GET, GET with two providers gone;
//! * GET latency with one provider slowed by 1 s, against the healthy latency (hedging);
//! * one 4 GiB PUT and GET: peak heap (counting allocator) and peak RSS;
//! * small objects (2,000 × 4 KiB, 16 at a time): PUT and GET rates and latencies, and what
//!   committing the same objects inline in the metadata store alone would give.
//!
//! `cargo run --release -p archipel-engine --example engine_bench [-- --dir /path] [--only large|hedging|huge|small]`
//! Prints a table, then one line of JSON.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use archipel_codec::MasterKey;
use archipel_engine::{
    Body, Engine, EngineOptions, ProviderInfo, ProviderSlot, ProviderState, PutOptions,
};
use archipel_meta::{
    BucketName, CommitCondition, DeleteCondition, ETag, EmbeddedOptions, MetaStore, NewVersion,
    ObjectKey, SqlMetaStore, UnixMillis, VersionId,
};
use archipel_provider::{Fault, FaultLayer, LocalDir, Provider};
use bytes::Bytes;
use futures::StreamExt;
use peak_alloc::PeakAlloc;

#[global_allocator]
static ALLOC: PeakAlloc = PeakAlloc;

const MIB: usize = 1024 * 1024;

fn body(piece: &Bytes, total: usize) -> Body {
    let mut left = total;
    let piece = piece.clone();
    futures::stream::iter(std::iter::from_fn(move || {
        if left == 0 {
            return None;
        }
        let n = left.min(piece.len());
        left -= n;
        Some(Ok(piece.slice(..n)))
    }))
    .boxed()
}

async fn drain(e: &Engine, key: &str) -> u64 {
    let mut out = e.get_object("bench", key, None).await.unwrap();
    let mut n = 0;
    while let Some(p) = out.body.next().await {
        n += p.unwrap().len() as u64;
    }
    n
}

fn mbps(bytes: u64, d: Duration) -> f64 {
    bytes as f64 / 1e6 / d.as_secs_f64()
}

fn quantile(v: &mut [Duration], q: f64) -> Duration {
    v.sort_unstable();
    v[((v.len() - 1) as f64 * q).round() as usize]
}

/// Peak resident set since the last reset (Linux; 0 elsewhere).
fn peak_rss_mib() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse::<f64>().ok())
        })
        .map_or(0.0, |kib| kib / 1024.0)
}

fn reset_peaks() {
    let _ = std::fs::write("/proc/self/clear_refs", "5");
    ALLOC.reset_peak_usage();
}

/// The baseline: `bytes × 1.5` written as six files per object with fsync, `conc` objects at a
/// time, then read back; returns (write, read) object-bytes per second in MB/s.
async fn raw_disk(
    dir: &Path,
    objects: usize,
    size: usize,
    conc: usize,
    piece: &Bytes,
) -> (f64, f64) {
    let dir = dir.join("raw");
    std::fs::create_dir_all(&dir).unwrap();
    let shard = size.div_ceil(4);
    let t = Instant::now();
    futures::stream::iter(0..objects)
        .map(|o| {
            let dir = dir.clone();
            let piece = piece.clone();
            tokio::task::spawn_blocking(move || {
                for s in 0..6 {
                    let mut f = std::fs::File::create(dir.join(format!("{o}.{s}"))).unwrap();
                    let mut left = shard;
                    while left > 0 {
                        let n = left.min(piece.len());
                        f.write_all(&piece[..n]).unwrap();
                        left -= n;
                    }
                    f.sync_all().unwrap();
                }
            })
        })
        .buffer_unordered(conc)
        .for_each(|r| async move { r.unwrap() })
        .await;
    let write = mbps((objects * size) as u64, t.elapsed());
    let t = Instant::now();
    futures::stream::iter(0..objects)
        .map(|o| {
            let dir = dir.clone();
            tokio::task::spawn_blocking(move || {
                // A read touches k = 4 of the 6 shards.
                for s in 0..4 {
                    std::hint::black_box(std::fs::read(dir.join(format!("{o}.{s}"))).unwrap());
                }
            })
        })
        .buffer_unordered(conc)
        .for_each(|r| async move { r.unwrap() })
        .await;
    let read = mbps((objects * size) as u64, t.elapsed());
    std::fs::remove_dir_all(&dir).unwrap();
    (write, read)
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let base = args
        .iter()
        .position(|a| a == "--dir")
        .and_then(|i| args.get(i + 1))
        .map(PathBuf::from);
    let only = args
        .iter()
        .position(|a| a == "--only")
        .and_then(|i| args.get(i + 1))
        .cloned();
    let run_phase = |p: &str| only.as_deref().is_none_or(|o| o == p);
    let tmp = tempfile::tempdir_in(base.unwrap_or_else(std::env::temp_dir)).unwrap();
    let root = tmp.path();
    let meta = Arc::new(
        SqlMetaStore::open_embedded(EmbeddedOptions::new(root.join("meta")))
            .await
            .unwrap(),
    );
    let mut slots = Vec::new();
    let mut faults = Vec::new();
    for i in 0..6 {
        let name = format!("p{i}");
        let local: Arc<dyn Provider> =
            Arc::new(LocalDir::open(&name, root.join(&name)).await.unwrap());
        let f = Arc::new(FaultLayer::new(local, i));
        faults.push(f.clone());
        slots.push(ProviderSlot {
            info: ProviderInfo {
                name,
                operator: "self".into(),
                jurisdiction: "FR".into(),
                weight: 1,
                state: ProviderState::Active,
            },
            provider: f,
        });
    }
    let opts = EngineOptions {
        gc_delay: Duration::ZERO,
        ..EngineOptions::default()
    };
    let engine = Engine::new(
        MasterKey::from_bytes([1; 32]),
        meta.clone() as Arc<dyn MetaStore>,
        slots,
        opts,
    )
    .unwrap();
    engine.create_bucket("bench", "bench", None).await.unwrap();
    let mut rnd = vec![0u8; MIB];
    getrandom::fill(&mut rnd).unwrap();
    let piece = Bytes::from(rnd);
    let mut json = Vec::new();

    // ---- large objects ----
    if run_phase("large") {
        let (objects, size, conc) = (16, 64 * MIB, 4);
        let (raw_w, raw_r) = raw_disk(root, objects, size, conc, &piece).await;
        let total = (objects * size) as u64;
        let t = Instant::now();
        futures::stream::iter(0..objects)
            .map(|i| {
                let (e, p) = (engine.clone(), piece.clone());
                async move {
                    e.put_object(
                        "bench",
                        &format!("large/{i}"),
                        body(&p, size),
                        PutOptions::default(),
                    )
                    .await
                    .unwrap()
                }
            })
            .buffer_unordered(conc)
            .for_each(|_| async {})
            .await;
        let put = mbps(total, t.elapsed());
        let get_all = |label: &'static str| {
            let engine = engine.clone();
            async move {
                let t = Instant::now();
                let n: u64 = futures::stream::iter(0..objects)
                    .map(|i| {
                        let e = engine.clone();
                        async move { drain(&e, &format!("large/{i}")).await }
                    })
                    .buffer_unordered(conc)
                    .fold(0, |a, b| async move { a + b })
                    .await;
                assert_eq!(n, total, "{label}");
                mbps(total, t.elapsed())
            }
        };
        let get = get_all("healthy").await;
        faults[0].go_dark();
        faults[3].go_dark();
        let degraded = get_all("degraded").await;
        faults[0].come_back();
        faults[3].come_back();
        println!(
            "large objects: {objects} × {} MiB, {conc} at a time",
            size / MIB
        );
        println!(
            "  raw disk (×1.5 written, fsync)  write {raw_w:8.0} MB/s   read {raw_r:8.0} MB/s (object bytes)"
        );
        println!(
            "  engine PUT  {put:8.0} MB/s   = {:.2}× raw write",
            put / raw_w
        );
        println!(
            "  engine GET  {get:8.0} MB/s   = {:.2}× raw read",
            get / raw_r
        );
        println!(
            "  GET, 2 of 6 providers gone {degraded:8.0} MB/s   = {:.2}× healthy GET",
            degraded / get
        );
        json.push(format!(
        "\"large\":{{\"raw_write_mbps\":{raw_w:.0},\"raw_read_mbps\":{raw_r:.0},\"put_mbps\":{put:.0},\"get_mbps\":{get:.0},\"degraded_get_mbps\":{degraded:.0},\"put_ratio\":{:.3},\"get_ratio\":{:.3},\"degraded_ratio\":{:.3}}}",
        put / raw_w, get / raw_r, degraded / get
    ));
        for i in 0..objects {
            engine
                .delete_object(
                    "bench",
                    &format!("large/{i}"),
                    &DeleteCondition::Unconditional,
                )
                .await
                .unwrap();
        }
        engine.gc_once().await.unwrap();
    }

    // ---- hedging ----
    if run_phase("hedging") {
        engine
            .put_object(
                "bench",
                "hedge",
                body(&piece, 4 * MIB),
                PutOptions::default(),
            )
            .await
            .unwrap();
        let lat = |n: usize| {
            let engine = engine.clone();
            async move {
                let mut v = Vec::new();
                for _ in 0..n {
                    let t = Instant::now();
                    drain(&engine, "hedge").await;
                    v.push(t.elapsed());
                }
                v
            }
        };
        let _ = lat(10).await; // warm up
        let mut healthy = lat(40).await;
        // Slow the provider holding shard 0 (a data shard every healthy read uses).
        faults[first_data_provider(&engine, &meta).await].set(Fault {
            latency: Duration::from_secs(1),
            ..Fault::default()
        });
        let mut slowed = lat(40).await;
        for f in &faults {
            f.set(Fault::default());
        }
        let (h50, h99) = (quantile(&mut healthy, 0.5), quantile(&mut healthy, 0.99));
        let (s50, s99) = (quantile(&mut slowed, 0.5), quantile(&mut slowed, 0.99));
        println!(
            "GET 4 MiB, 40 sequential: healthy p50 {h50:?} p99 {h99:?}; one provider +1 s: p50 {s50:?} p99 {s99:?} ({:.2}× / {:.2}×)",
            s50.as_secs_f64() / h50.as_secs_f64(),
            s99.as_secs_f64() / h99.as_secs_f64()
        );
        json.push(format!(
        "\"hedging\":{{\"healthy_p50_ms\":{:.2},\"healthy_p99_ms\":{:.2},\"slowed_p50_ms\":{:.2},\"slowed_p99_ms\":{:.2}}}",
        h50.as_secs_f64() * 1e3, h99.as_secs_f64() * 1e3, s50.as_secs_f64() * 1e3, s99.as_secs_f64() * 1e3
    ));
    }

    // ---- one huge object ----
    if run_phase("huge") {
        let huge = 4 * 1024 * MIB;
        reset_peaks();
        let base_heap = ALLOC.current_usage();
        let t = Instant::now();
        engine
            .put_object("bench", "huge", body(&piece, huge), PutOptions::default())
            .await
            .unwrap();
        let (put_t, put_heap, put_rss) =
            (t.elapsed(), ALLOC.peak_usage() - base_heap, peak_rss_mib());
        reset_peaks();
        let base_heap = ALLOC.current_usage();
        let t = Instant::now();
        assert_eq!(drain(&engine, "huge").await, huge as u64);
        let (get_t, get_heap, get_rss) =
            (t.elapsed(), ALLOC.peak_usage() - base_heap, peak_rss_mib());
        println!(
            "4 GiB object: PUT {:.0} MB/s, peak heap +{:.1} MiB, peak RSS {put_rss:.0} MiB; GET {:.0} MB/s, peak heap +{:.1} MiB, peak RSS {get_rss:.0} MiB",
            mbps(huge as u64, put_t),
            put_heap as f64 / MIB as f64,
            mbps(huge as u64, get_t),
            get_heap as f64 / MIB as f64
        );
        json.push(format!(
        "\"huge\":{{\"bytes\":{huge},\"put_mbps\":{:.0},\"get_mbps\":{:.0},\"put_peak_heap_mib\":{:.1},\"get_peak_heap_mib\":{:.1},\"put_peak_rss_mib\":{put_rss:.0},\"get_peak_rss_mib\":{get_rss:.0}}}",
        mbps(huge as u64, put_t), mbps(huge as u64, get_t), put_heap as f64 / MIB as f64, get_heap as f64 / MIB as f64
    ));
        engine
            .delete_object("bench", "huge", &DeleteCondition::Unconditional)
            .await
            .unwrap();
        engine.gc_once().await.unwrap();
    }

    // ---- small objects ----
    if run_phase("small") {
        let (count, small, conc) = (2000, 4096, 16);
        let run = |label: &'static str| {
            let (engine, piece) = (engine.clone(), piece.clone());
            async move {
                let t = Instant::now();
                let mut lat: Vec<Duration> = futures::stream::iter(0..count)
                    .map(|i| {
                        let (e, p) = (engine.clone(), piece.clone());
                        async move {
                            let t = Instant::now();
                            let key = format!("small/{i}");
                            if label == "put" {
                                e.put_object("bench", &key, body(&p, small), PutOptions::default())
                                    .await
                                    .unwrap();
                            } else {
                                assert_eq!(drain(&e, &key).await, small as u64);
                            }
                            t.elapsed()
                        }
                    })
                    .buffer_unordered(conc)
                    .collect()
                    .await;
                let rate = count as f64 / t.elapsed().as_secs_f64();
                (rate, quantile(&mut lat, 0.5), quantile(&mut lat, 0.99))
            }
        };
        let (put_rate, p50, p99) = run("put").await;
        let (get_rate, g50, g99) = run("get").await;
        // What inline storage (object bytes in the metadata store only) would achieve.
        let bucket = BucketName::s3("bench").unwrap();
        let t = Instant::now();
        futures::stream::iter(0..count)
            .map(|i| {
                let (meta, bucket) = (meta.clone(), bucket.clone());
                async move {
                    let v = NewVersion {
                        version_id: VersionId::new(format!("v{i}")).unwrap(),
                        manifest: vec![7; small + 300],
                        size: small as u64,
                        etag: ETag::new("e").unwrap(),
                        last_modified: UnixMillis::now(),
                        user_metadata: Default::default(),
                        delete_marker: false,
                    };
                    meta.commit(
                        &bucket,
                        &ObjectKey::new(format!("inline/{i}")).unwrap(),
                        &v,
                        &CommitCondition::Unconditional,
                    )
                    .await
                    .unwrap();
                }
            })
            .buffer_unordered(conc)
            .for_each(|_| async {})
            .await;
        let inline_rate = count as f64 / t.elapsed().as_secs_f64();
        println!(
            "small objects: {count} × 4 KiB, {conc} at a time: PUT {put_rate:.0}/s (p50 {p50:?}, p99 {p99:?}); GET {get_rate:.0}/s (p50 {g50:?}, p99 {g99:?}); inline-in-metadata commits {inline_rate:.0}/s"
        );
        json.push(format!(
        "\"small\":{{\"put_per_s\":{put_rate:.0},\"put_p50_ms\":{:.2},\"put_p99_ms\":{:.2},\"get_per_s\":{get_rate:.0},\"get_p50_ms\":{:.2},\"get_p99_ms\":{:.2},\"inline_commit_per_s\":{inline_rate:.0}}}",
        p50.as_secs_f64() * 1e3, p99.as_secs_f64() * 1e3, g50.as_secs_f64() * 1e3, g99.as_secs_f64() * 1e3
    ));
    }
    println!("{{{}}}", json.join(","));
}

async fn first_data_provider(engine: &Engine, meta: &Arc<SqlMetaStore>) -> usize {
    let v = meta
        .get(
            &BucketName::s3("bench").unwrap(),
            &ObjectKey::new("hedge").unwrap(),
        )
        .await
        .unwrap()
        .unwrap();
    let m = archipel_codec::Manifest::decode(
        &v.version.manifest,
        &MasterKey::from_bytes([1; 32]).manifest_key(),
    )
    .unwrap();
    let _ = engine;
    let p = m.segments[0]
        .placement
        .iter()
        .find(|p| p.shard.0 == 0)
        .unwrap();
    p.provider[1..].parse().unwrap()
}
