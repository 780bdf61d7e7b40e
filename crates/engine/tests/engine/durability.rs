//! Writes under provider failures: spares, degraded commits recorded for repair, quorum
//! failures that leave nothing visible, broken and abandoned bodies — and GC reclaiming every
//! blob that no committed object needs.

use std::time::Duration;

use archipel_engine::{EngineError, PutOptions};
use archipel_meta::MetaStore;
use archipel_provider::Fault;
use bytes::Bytes;
use futures::StreamExt;

use crate::harness::{Vault, body, pattern, read_all};

const MIB: usize = 1024 * 1024;

fn mid_stream() -> Fault {
    Fault {
        fail_mid_stream: true,
        ..Fault::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_provider_failing_mid_write_hands_its_shard_to_a_spare() {
    let v = Vault::new(7).await;
    v.engine.create_bucket("bkt", "owner", None).await.unwrap();
    let data = pattern(3, 3 * MIB + 11);
    // p3 fails every write mid-stream; 6 of 7 providers hold each object, so some put picks
    // it (and once it failed, placement avoids it for a while).
    v.faults[3].set(mid_stream());
    let mut spared = false;
    for i in 0..10 {
        let key = format!("k{i}");
        let out = v
            .engine
            .put_object("bkt", &key, body(&data, 65_536), PutOptions::default())
            .await
            .unwrap();
        assert_eq!(out.unwritten_shards, 0, "a spare was available");
        if out.spared_shards == 1 {
            spared = true;
            v.faults[3].set(Fault::default());
            // The spare holds a real shard: the object keeps its full redundancy (any two of
            // the providers holding it may go).
            for down in [[0, 1], [4, 5], [2, 6]] {
                for d in down {
                    v.faults[d].go_dark();
                }
                assert!(read_all(&v.engine, "bkt", &key).await.unwrap() == data);
                for d in down {
                    v.faults[d].come_back();
                }
            }
            break;
        }
    }
    assert!(
        spared,
        "6 of 7 providers hold each object, so some put hit the failing one"
    );
    assert_eq!(v.meta.count_repair().await.unwrap(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_spare_the_write_commits_degraded_and_queues_the_repair() {
    let v = Vault::new(6).await;
    v.engine.create_bucket("bkt", "owner", None).await.unwrap();
    let data = pattern(4, 2 * MIB + 3);
    v.faults[2].set(mid_stream());
    let out = v
        .engine
        .put_object("bkt", "k", body(&data, 65_536), PutOptions::default())
        .await
        .unwrap();
    v.faults[2].set(Fault::default());
    assert_eq!((out.unwritten_shards, out.spared_shards), (1, 0));
    let queued = v.meta.peek_repair(None, 10).await.unwrap();
    assert_eq!(queued.len(), 1);
    assert_eq!(queued[0].item.blob.provider.as_str(), "p2");
    assert_eq!(queued[0].item.reason, "unwritten");
    assert_eq!(queued[0].item.key.as_str(), "k");
    // Still readable with one more provider gone (five shards, k = 4).
    v.faults[0].go_dark();
    assert!(read_all(&v.engine, "bkt", "k").await.unwrap() == data);
    v.faults[0].come_back();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn below_the_write_quorum_nothing_is_visible_and_gc_reclaims_everything() {
    let v = Vault::new(6).await;
    v.engine.create_bucket("bkt", "owner", None).await.unwrap();
    for i in [1, 3] {
        v.faults[i].set(mid_stream());
    }
    let data = pattern(5, MIB);
    let e = v
        .engine
        .put_object("bkt", "k", body(&data, 65_536), PutOptions::default())
        .await
        .unwrap_err();
    assert!(
        matches!(
            e,
            EngineError::Unavailable {
                needed: 5,
                usable: 4,
                ..
            }
        ),
        "{e}"
    );
    assert!(e.is_retryable());
    assert!(matches!(
        v.engine.head_object("bkt", "k").await,
        Err(EngineError::NoSuchKey { .. })
    ));
    for i in [1, 3] {
        v.faults[i].set(Fault::default());
    }
    v.engine.gc_once().await.unwrap();
    assert_eq!(
        v.total_blobs().await,
        0,
        "every shard of the failed write is gone"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broken_short_long_and_misdigested_bodies_store_nothing() {
    let v = Vault::new(6).await;
    v.engine.create_bucket("bkt", "owner", None).await.unwrap();
    // The client's stream fails half-way.
    let pieces: Vec<std::io::Result<Bytes>> = vec![
        Ok(Bytes::from(pattern(1, MIB))),
        Err(std::io::Error::other("connection reset")),
    ];
    let e = v
        .engine
        .put_object(
            "bkt",
            "k",
            futures::stream::iter(pieces).boxed(),
            PutOptions::default(),
        )
        .await
        .unwrap_err();
    assert!(matches!(e, EngineError::Body(_)), "{e}");
    // Shorter and longer than announced.
    for (len, announced) in [(1000, 1001), (1001, 1000)] {
        let opts = PutOptions {
            expected_len: Some(announced),
            ..PutOptions::default()
        };
        let e = v
            .engine
            .put_object("bkt", "k", body(&pattern(2, len), 100), opts)
            .await
            .unwrap_err();
        assert!(matches!(e, EngineError::Body(_)), "{e}");
    }
    // A body whose MD5 is not the announced Content-MD5.
    let opts = PutOptions {
        content_md5: Some([0; 16]),
        ..PutOptions::default()
    };
    let e = v
        .engine
        .put_object("bkt", "k", body(b"hello", 2), opts)
        .await
        .unwrap_err();
    assert!(matches!(e, EngineError::BadDigest { .. }), "{e}");
    assert!(matches!(
        v.engine.head_object("bkt", "k").await,
        Err(EngineError::NoSuchKey { .. })
    ));
    v.engine.gc_once().await.unwrap();
    let r = v.engine.reclaim_orphans(Duration::ZERO).await.unwrap();
    assert!(r.errors.is_empty(), "{r:?}");
    assert_eq!(v.total_blobs().await, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dropped_put_leaves_nothing_visible_and_nothing_behind() {
    let v = Vault::new(6).await;
    v.engine.create_bucket("bkt", "owner", None).await.unwrap();
    // A client that sends 2 MiB and then stalls forever.
    let stalled = futures::stream::iter(vec![Ok(Bytes::from(pattern(1, 2 * MIB)))])
        .chain(futures::stream::pending())
        .boxed();
    let put = v
        .engine
        .put_object("bkt", "k", stalled, PutOptions::default());
    assert!(
        tokio::time::timeout(Duration::from_millis(300), put)
            .await
            .is_err()
    );
    // The request is gone (dropped); let aborted writers unwind.
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(matches!(
        v.engine.head_object("bkt", "k").await,
        Err(EngineError::NoSuchKey { .. })
    ));
    v.engine.gc_once().await.unwrap();
    let r = v.engine.reclaim_orphans(Duration::ZERO).await.unwrap();
    assert!(r.errors.is_empty(), "{r:?}");
    assert_eq!(v.total_blobs().await, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn random_failures_leave_objects_whole_or_absent() {
    let v = Vault::new(6).await;
    v.engine.create_bucket("bkt", "owner", None).await.unwrap();
    let mut rng = fastrand::Rng::with_seed(42);
    let mut live = Vec::new();
    for round in 0..24 {
        let failing: Vec<usize> = (0..rng.usize(0..=3)).map(|_| rng.usize(0..6)).collect();
        for &i in &failing {
            v.faults[i].set(if rng.bool() {
                mid_stream()
            } else {
                Fault {
                    dark: true,
                    ..Fault::default()
                }
            });
        }
        let len = [0, 1, 1000, 300_000, 2 * MIB + 7][rng.usize(0..5)];
        let data = pattern(round, len);
        let key = format!("k{round}");
        let r = v
            .engine
            .put_object("bkt", &key, body(&data, 50_000), PutOptions::default())
            .await;
        for i in 0..6 {
            v.faults[i].set(Fault::default());
        }
        match r {
            Ok(_) => {
                assert!(
                    read_all(&v.engine, "bkt", &key).await.unwrap() == data,
                    "{key}"
                );
                live.push(key);
            }
            Err(EngineError::Unavailable { .. }) => {
                assert!(
                    matches!(
                        v.engine.head_object("bkt", &key).await,
                        Err(EngineError::NoSuchKey { .. })
                    ),
                    "{key}: a failed put must not be visible"
                );
            }
            Err(e) => panic!("{key}: {e}"),
        }
    }
    assert!(!live.is_empty());
    // Wait out the health tracker's memory of the injected failures, then collect.
    v.engine.gc_once().await.unwrap();
    let r = v.engine.reclaim_orphans(Duration::ZERO).await.unwrap();
    assert!(r.errors.is_empty(), "{r:?}");
    // Exactly the shards of committed objects remain.
    let mut expected = 0;
    for key in &live {
        let bytes = v
            .meta
            .get(
                &"bkt".parse_bucket(),
                &archipel_meta::ObjectKey::new(key.clone()).unwrap(),
            )
            .await
            .unwrap()
            .unwrap()
            .version
            .manifest;
        let m = archipel_codec::Manifest::decode(
            &bytes,
            &archipel_codec::MasterKey::from_bytes(crate::harness::KEY).manifest_key(),
        )
        .unwrap();
        expected += m.segments.iter().map(|s| s.placement.len()).sum::<usize>();
    }
    assert_eq!(v.total_blobs().await, expected);
}

trait ParseBucket {
    fn parse_bucket(&self) -> archipel_meta::BucketName;
}

impl ParseBucket for str {
    fn parse_bucket(&self) -> archipel_meta::BucketName {
        archipel_meta::BucketName::s3(self).unwrap()
    }
}

/// Puts `data` as `key` and returns how long it took and what happened.
async fn timed_put(
    v: &Vault,
    key: &str,
    data: &[u8],
) -> (
    Duration,
    archipel_engine::Result<archipel_engine::PutOutcome>,
) {
    let started = std::time::Instant::now();
    let out = v
        .engine
        .put_object("bkt", key, body(data, 65_536), PutOptions::default())
        .await;
    (started.elapsed(), out)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_provider_that_takes_a_small_put_and_never_answers_delays_it_by_its_patience_only() {
    let v = Vault::new(6).await;
    v.engine.create_bucket("bkt", "owner", None).await.unwrap();
    let data = pattern(8, 1024);
    let (healthy, out) = timed_put(&v, "warm", &data).await;
    assert_eq!(out.unwrap().unwritten_shards, 0);
    v.faults[3].set(Fault {
        hang_after_body: true,
        ..Fault::default()
    });
    let (hung, out) = timed_put(&v, "k", &data).await;
    let out = out.unwrap();
    assert_eq!((out.unwritten_shards, out.spared_shards), (1, 0));
    assert!(
        hung <= healthy + Duration::from_millis(1800),
        "a hung provider held a 1 KiB put for {hung:?} (healthy: {healthy:?})"
    );
    let queued = v.meta.peek_repair(None, 10).await.unwrap();
    assert_eq!(queued.len(), 1, "{queued:?}");
    assert_eq!(queued[0].item.blob.provider.as_str(), "p3");
    // Now known to be down, it is not tried: the next puts do not wait for it at all.
    for i in 0..3 {
        let (t, out) = timed_put(&v, &format!("next{i}"), &data).await;
        assert_eq!(out.unwrap().unwritten_shards, 1);
        assert!(
            t <= healthy * 4 + Duration::from_millis(200),
            "put {i} after the straggler took {t:?} (healthy: {healthy:?})"
        );
    }
    assert_eq!(read_all(&v.engine, "bkt", "k").await.unwrap(), data);
    v.faults[3].set(Fault::default());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_provider_hung_mid_stream_is_left_behind_after_its_stall_patience() {
    let v = Vault::new(6).await;
    v.engine.create_bucket("bkt", "owner", None).await.unwrap();
    let data = pattern(9, 16 * MIB);
    let (healthy, out) = timed_put(&v, "warm", &data).await;
    assert_eq!(out.unwrap().unwritten_shards, 0);
    v.faults[1].set(Fault {
        hang: true,
        ..Fault::default()
    });
    let (hung, out) = timed_put(&v, "big", &data).await;
    let out = out.unwrap();
    v.faults[1].set(Fault::default());
    assert_eq!((out.unwritten_shards, out.spared_shards), (1, 0));
    assert!(
        hung <= healthy + Duration::from_millis(2000),
        "a hung provider held a 16 MiB put for {hung:?} (healthy: {healthy:?})"
    );
    assert_eq!(read_all(&v.engine, "bkt", "big").await.unwrap(), data);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_the_quorum_a_write_fails_in_bounded_time_and_says_who_answered() {
    let v = Vault::new(6).await;
    v.engine.create_bucket("bkt", "owner", None).await.unwrap();
    let data = pattern(10, 1024);
    for i in [2, 4] {
        v.faults[i].set(Fault {
            hang_after_body: true,
            ..Fault::default()
        });
    }
    let (t, out) = timed_put(&v, "k", &data).await;
    for i in [2, 4] {
        v.faults[i].set(Fault::default());
    }
    let err = out.expect_err("5 of 6 shards are needed and only 4 providers answer");
    assert!(t < Duration::from_secs(15), "{t:?}");
    assert!(
        matches!(
            err,
            EngineError::Unavailable {
                usable: 4,
                needed: 5,
                ..
            }
        ),
        "{err}"
    );
    let text = err.to_string();
    assert!(text.contains("p2") && text.contains("p4"), "{text}");
    assert!(
        v.engine.head_object("bkt", "k").await.is_err(),
        "nothing is visible"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_an_outage_writes_probe_no_more_providers_than_they_can_afford_to_lose() {
    // 3+2 with quorum 4 on six providers: each write may lose one shard. Two providers are
    // down; once their down period is over, a write that probed both would fail (3 of 4).
    let v = Vault::new(6).await;
    let mut p = archipel_engine::Policy::new(3, 2).unwrap();
    p.write_quorum = 4;
    v.engine
        .create_bucket("bkt", "owner", Some(p))
        .await
        .unwrap();
    let data = pattern(11, 4096);
    for i in [1, 4] {
        v.faults[i].go_dark();
    }
    // Writes until both are known to be down (a write that picked both may fail).
    let mut n = 0;
    while !(v.engine.health().is_down("p1") && v.engine.health().is_down("p4")) {
        let _ = timed_put(&v, &format!("first{n}"), &data).await;
        n += 1;
        assert!(n < 50, "the dark providers were never tried");
    }
    // Their down period (5 s) ends; they are still dark.
    tokio::time::sleep(Duration::from_millis(5200)).await;
    for i in 0..6 {
        let (_, out) = timed_put(&v, &format!("after{i}"), &data).await;
        let out = out.unwrap_or_else(|e| panic!("put {i} after the down period: {e}"));
        assert!(out.unwritten_shards <= 1, "{out:?}");
    }
    for i in 0..6 {
        assert_eq!(
            read_all(&v.engine, "bkt", &format!("after{i}"))
                .await
                .unwrap(),
            data
        );
    }
    for i in [1, 4] {
        v.faults[i].come_back();
    }
}
