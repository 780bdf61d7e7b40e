//! A slow provider does not slow reads: when a shard's chunk is late the engine asks one more
//! provider, and then keeps away from the slow one. (The latency ratio itself is measured by
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
