//! Garbage collection: superseded and deleted objects' shards are deleted, a provider that was
//! down is retried, and orphans (shards no manifest references) are found from the shards
//! themselves and reclaimed — but only once old enough.

use std::time::Duration;

use archipel_engine::{BodyCheck, PutOptions};
use archipel_meta::{BucketName, DeleteCondition, MetaStore, ObjectKey};

use crate::harness::{Vault, body, pattern, read_all};

#[tokio::test]
async fn overwrites_and_deletes_free_their_shards() {
    let v = Vault::new(6).await;
    v.engine.create_bucket("bkt", "owner", None).await.unwrap();
    for round in 0..3u64 {
        v.engine
            .put_object(
                "bkt",
                "k",
                body(&pattern(round, 300_000), 10_000),
                PutOptions::default(),
            )
            .await
            .unwrap();
    }
    let r = v.engine.gc_once().await.unwrap();
    assert_eq!(
        (r.deleted, r.failed),
        (12, 0),
        "two superseded versions × six shards"
    );
    assert_eq!(v.total_blobs().await, 6);
    assert!(read_all(&v.engine, "bkt", "k").await.unwrap() == pattern(2, 300_000));
    assert!(
        v.engine
            .delete_object("bkt", "k", &DeleteCondition::Unconditional)
            .await
            .unwrap()
            .is_some()
    );
    assert!(
        v.engine
            .delete_object("bkt", "k", &DeleteCondition::Unconditional)
            .await
            .unwrap()
            .is_none(),
        "idempotent"
    );
    v.engine.gc_once().await.unwrap();
    assert_eq!(v.total_blobs().await, 0);
    v.engine.delete_bucket("bkt").await.unwrap();
}

#[tokio::test]
async fn gc_keeps_and_retries_what_a_down_provider_holds() {
    let v = Vault::new(6).await;
    v.engine.create_bucket("bkt", "owner", None).await.unwrap();
    v.engine
        .put_object(
            "bkt",
            "k",
            body(&pattern(1, 1000), 100),
            PutOptions::default(),
        )
        .await
        .unwrap();
    v.engine
        .delete_object("bkt", "k", &DeleteCondition::Unconditional)
        .await
        .unwrap();
    v.faults[4].go_dark();
    let r = v.engine.gc_once().await.unwrap();
    assert_eq!((r.deleted, r.failed), (5, 1));
    v.faults[4].come_back();
    assert_eq!(
        v.blobs(4).await.len(),
        1,
        "kept while its provider was down"
    );
    let r = v.engine.gc_once().await.unwrap();
    assert_eq!((r.deleted, r.failed), (1, 0));
    assert_eq!(v.total_blobs().await, 0);
}

#[tokio::test]
async fn gc_waits_for_the_delay_so_running_reads_finish() {
    let tmp = tempfile::tempdir().unwrap();
    let opts = archipel_engine::EngineOptions {
        gc_delay: Duration::from_secs(3600),
        ..crate::harness::test_options()
    };
    let v = Vault::open_at(tmp.path(), 6, opts).await;
    v.engine.create_bucket("bkt", "owner", None).await.unwrap();
    for i in 0..2u64 {
        v.engine
            .put_object(
                "bkt",
                "k",
                body(&pattern(i, 1000), 100),
                PutOptions::default(),
            )
            .await
            .unwrap();
    }
    let r = v.engine.gc_once().await.unwrap();
    assert_eq!((r.deleted, r.waiting), (0, 6));
    assert_eq!(v.total_blobs().await, 12);
}

#[tokio::test]
async fn the_orphan_scan_reclaims_unreferenced_shards_once_old_enough() {
    let v = Vault::new(6).await;
    v.engine.create_bucket("bkt", "owner", None).await.unwrap();
    for k in ["keep", "lose"] {
        v.engine
            .put_object(
                "bkt",
                k,
                body(&pattern(9, 600_000), 4096),
                PutOptions::default(),
            )
            .await
            .unwrap();
    }
    // An upload in progress: its parts are referenced by the upload, not by an object.
    let id = v
        .engine
        .create_upload("bkt", "up", &PutOptions::default())
        .await
        .unwrap();
    v.engine
        .upload_part(
            "bkt",
            "up",
            &id,
            1,
            body(&pattern(3, 5000), 100),
            BodyCheck::default(),
        )
        .await
        .unwrap();
    // Forget "lose" in the index without queueing its shards: as if a crash came between.
    v.meta
        .delete(
            &BucketName::s3("bkt").unwrap(),
            &ObjectKey::new("lose").unwrap(),
            &DeleteCondition::Unconditional,
        )
        .await
        .unwrap();
    assert_eq!(v.total_blobs().await, 18);
    // Too young: left alone.
    let r = v
        .engine
        .reclaim_orphans(Duration::from_secs(3600))
        .await
        .unwrap();
    assert_eq!((r.deleted, r.young), (0, 18), "{r:?}");
    let r = v.engine.reclaim_orphans(Duration::ZERO).await.unwrap();
    assert_eq!((r.scanned, r.referenced, r.deleted), (18, 12, 6), "{r:?}");
    assert_eq!(v.total_blobs().await, 12);
    assert!(read_all(&v.engine, "bkt", "keep").await.unwrap() == pattern(9, 600_000));
    // A foreign blob under our prefix is not ours to judge.
    archipel_provider::ProviderExt::put_bytes(
        v.faults[0].as_ref(),
        &archipel_provider::BlobName::new("v1/zz/not-a-shard").unwrap(),
        b"x".to_vec(),
    )
    .await
    .unwrap();
    let r = v.engine.reclaim_orphans(Duration::ZERO).await.unwrap();
    assert_eq!((r.deleted, r.unrecognized), (0, 1), "{r:?}");
}

#[tokio::test]
async fn the_background_gc_job_collects_and_stops() {
    let v = Vault::new(6).await;
    v.engine.create_bucket("bkt", "owner", None).await.unwrap();
    let job = v
        .engine
        .spawn_gc(Duration::from_millis(50), 0, Duration::from_secs(3600));
    v.engine
        .put_object("bkt", "k", body(b"hello", 1), PutOptions::default())
        .await
        .unwrap();
    v.engine
        .delete_object("bkt", "k", &DeleteCondition::Unconditional)
        .await
        .unwrap();
    let mut left = usize::MAX;
    for _ in 0..100 {
        left = v.total_blobs().await;
        if left == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(left, 0);
    job.stop().await;
}

#[tokio::test]
async fn a_metadata_only_update_keeps_its_shards_through_gc() {
    let v = Vault::new(6).await;
    v.engine.create_bucket("bkt", "owner", None).await.unwrap();
    let data = pattern(5, 400_000);
    let put = v
        .engine
        .put_object("bkt", "k", body(&data, 4096), PutOptions::default())
        .await
        .unwrap();
    v.engine
        .set_object_headers("bkt", "k", &[("x-amz-tagging".into(), Some("a=1".into()))])
        .await
        .unwrap();
    let r = v.engine.gc_once().await.unwrap();
    assert_eq!(r.deleted, 0, "the same shards are still referenced");
    let info = v.engine.head_object("bkt", "k").await.unwrap();
    assert_eq!(info.etag, put.etag);
    assert!(
        info.headers
            .contains(&("x-amz-tagging".to_string(), "a=1".to_string()))
    );
    assert!(read_all(&v.engine, "bkt", "k").await.unwrap() == data);
    v.engine
        .set_object_headers("bkt", "k", &[("x-amz-tagging".into(), None)])
        .await
        .unwrap();
    assert!(
        v.engine
            .head_object("bkt", "k")
            .await
            .unwrap()
            .headers
            .is_empty()
    );
    assert!(matches!(
        v.engine.set_object_headers("bkt", "nope", &[]).await,
        Err(archipel_engine::EngineError::NoSuchKey { .. })
    ));
    assert_eq!(v.total_blobs().await, 6);
}
