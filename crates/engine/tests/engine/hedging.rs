//! A slow provider does not slow reads: when a shard's chunk is late the engine asks one more
//! provider, and then keeps away from the slow one. A stream that stalls behind its peers is
//! hedged; streams that are all slow (a busy disk) are not, since extra readers would only add
//! load. (The latency ratio itself is measured by
//! the benchmark, `cargo run --release -p archipel-engine --example engine_bench`.)

use std::time::{Duration, Instant};

use archipel_engine::PutOptions;
use archipel_provider::Fault;

use crate::harness::{Vault, body, pattern, read_all};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_provider_slowed_by_a_second_is_hedged_around() {
    let v = Vault::new(6).await;
    v.engine.create_bucket("bkt", "owner", None).await.unwrap();
    let data = pattern(8, 2 * 1024 * 1024);
    v.engine
        .put_object("bkt", "k", body(&data, 65_536), PutOptions::default())
        .await
        .unwrap();
    for _ in 0..8 {
        assert!(read_all(&v.engine, "bkt", "k").await.unwrap() == data);
    }
    // Slow down every provider in turn (each holds a shard; four of them are data shards a
    // healthy read uses).
    for i in 0..6 {
        v.faults[i].set(Fault {
            latency: Duration::from_secs(1),
            ..Fault::default()
        });
        for _ in 0..3 {
            let t = Instant::now();
            assert!(read_all(&v.engine, "bkt", "k").await.unwrap() == data);
            let took = t.elapsed();
            assert!(
                took < Duration::from_millis(700),
                "provider p{i} slowed by 1 s: a GET took {took:?}, so it waited for it"
            );
        }
        v.faults[i].set(Fault::default());
    }
}

/// A vault whose hedges wait at least 50 ms, with a 16 MiB object (shards of 4 MiB: five
/// pieces per directory read).
async fn slow_stream_vault(tmp: &std::path::Path) -> (Vault, Vec<u8>) {
    let opts = archipel_engine::EngineOptions {
        hedge_floor: Duration::from_millis(50),
        ..crate::harness::test_options()
    };
    let v = Vault::open_at(tmp, 6, opts).await;
    v.engine.create_bucket("bkt", "owner", None).await.unwrap();
    let data = pattern(9, 16 * 1024 * 1024);
    v.engine
        .put_object("bkt", "k", body(&data, 1 << 20), PutOptions::default())
        .await
        .unwrap();
    for _ in 0..4 {
        assert!(read_all(&v.engine, "bkt", "k").await.unwrap() == data);
    }
    (v, data)
}

fn reads(v: &Vault) -> u64 {
    v.faults.iter().map(|f| f.reads()).sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streams_slow_on_every_provider_are_not_hedged() {
    let tmp = tempfile::tempdir().unwrap();
    let (v, data) = slow_stream_vault(tmp.path()).await;
    // Every provider's stream pauses 150 ms between pieces (a busy disk): nobody is behind a
    // peer, so hedging would only add load. Exactly k = 4 reads per GET.
    for f in &v.faults {
        f.set(Fault {
            chunk_delay: Duration::from_millis(150),
            ..Fault::default()
        });
    }
    for _ in 0..2 {
        let before = reads(&v);
        assert!(read_all(&v.engine, "bkt", "k").await.unwrap() == data);
        assert_eq!(reads(&v) - before, 4, "a GET started extra readers");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_stalling_behind_its_peers_is_hedged() {
    let tmp = tempfile::tempdir().unwrap();
    let (v, data) = slow_stream_vault(tmp.path()).await;
    // One provider at a time streams its first piece at once, then pauses 2 s before each
    // of the next four: a read that waited for it would take 8 s.
    for i in 0..6 {
        v.faults[i].set(Fault {
            chunk_delay: Duration::from_secs(2),
            ..Fault::default()
        });
        let t = Instant::now();
        assert!(read_all(&v.engine, "bkt", "k").await.unwrap() == data);
        let took = t.elapsed();
        assert!(
            took < Duration::from_millis(1500),
            "p{i} stalled mid-stream: a GET took {took:?}"
        );
        v.faults[i].set(Fault::default());
    }
}
