//! Multipart uploads: parts encoded as they arrive, completion as a metadata operation, S3's
//! validation (order, etags, minimum size), replaced and unlisted parts collected, abort and
//! expiry cleaning up.

use std::time::Duration;

use archipel_engine::{BodyCheck, EngineError, PutOptions};

use crate::harness::{Vault, body, pattern, read_all};

const MIB: usize = 1024 * 1024;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn complete_validates_parts_and_collects_the_unused_ones() {
    let v = Vault::new(6).await;
    v.engine.create_bucket("bkt", "owner", None).await.unwrap();
    let opts = PutOptions {
        content_type: Some("application/x-tar".into()),
        ..PutOptions::default()
    };
    let id = v.engine.create_upload("bkt", "big", &opts).await.unwrap();
    let p1 = pattern(1, MIB);
    let p2 = pattern(2, MIB + 1);
    let p3 = pattern(3, 10);
    let up = |n: u32, data: Vec<u8>| {
        let e = v.engine.clone();
        let id = id.clone();
        async move {
            e.upload_part(
                "bkt",
                "big",
                &id,
                n,
                body(&data, 30_000),
                BodyCheck::default(),
            )
            .await
            .unwrap()
        }
    };
    let e1_old = up(1, pattern(99, MIB)).await;
    let e1 = up(1, p1.clone()).await; // replaces the first upload of part 1
    assert_ne!(e1.etag, e1_old.etag);
    let e2 = up(2, p2.clone()).await;
    let e3 = up(3, p3.clone()).await;
    let _e4 = up(4, pattern(4, 100)).await; // uploaded, never listed
    let tiny = up(5, pattern(5, 100)).await;

    let complete = |parts: Vec<(u32, String)>| {
        let (e, id) = (v.engine.clone(), id.clone());
        async move { e.complete_upload("bkt", "big", &id, &parts, None).await }
    };
    assert!(matches!(
        complete(vec![(2, e2.etag.clone()), (1, e1.etag.clone())]).await,
        Err(EngineError::InvalidPartOrder(_))
    ));
    assert!(matches!(
        complete(vec![(1, e1_old.etag.clone())]).await,
        Err(EngineError::InvalidPart(_))
    ));
    assert!(matches!(
        complete(vec![(7, e1.etag.clone())]).await,
        Err(EngineError::InvalidPart(_))
    ));
    assert!(matches!(
        complete(vec![
            (1, e1.etag.clone()),
            (5, tiny.etag.clone()),
            (6, "x".into())
        ])
        .await,
        Err(EngineError::InvalidPart(_))
    ));
    assert!(matches!(
        complete(vec![(5, tiny.etag.clone()), (6, tiny.etag.clone())]).await,
        Err(EngineError::InvalidPart(_))
    ));
    let small_first = complete(vec![(3, e3.etag.clone()), (5, tiny.etag.clone())]).await;
    assert!(
        matches!(
            small_first,
            Err(EngineError::EntityTooSmall { part: 3, .. })
        ),
        "{small_first:?}"
    );
    let done = complete(vec![
        (1, format!("\"{}\"", e1.etag)), // quoted, as clients send them
        (2, e2.etag.clone()),
        (3, e3.etag.clone()),
    ])
    .await
    .unwrap();
    assert!(done.etag.ends_with("-3"));
    assert_eq!(done.size, (p1.len() + p2.len() + p3.len()) as u64);
    let info = v.engine.head_object("bkt", "big").await.unwrap();
    assert_eq!((info.parts, info.etag.as_str()), (3, done.etag.as_str()));
    assert_eq!(info.content_type.as_deref(), Some("application/x-tar"));
    assert!(read_all(&v.engine, "bkt", "big").await.unwrap() == [p1, p2, p3].concat());
    // The replaced part 1 and unlisted parts 4 and 5 are garbage; three parts remain.
    v.engine.gc_once().await.unwrap();
    assert_eq!(v.total_blobs().await, 3 * 6);
    // The upload is gone.
    assert!(matches!(
        v.engine
            .upload_part("bkt", "big", &id, 1, body(b"x", 1), BodyCheck::default())
            .await,
        Err(EngineError::NoSuchUpload { .. })
    ));
}

#[tokio::test]
async fn abort_and_expiry_clean_up() {
    let v = Vault::new(6).await;
    v.engine.create_bucket("bkt", "owner", None).await.unwrap();
    let a = v
        .engine
        .create_upload("bkt", "a", &PutOptions::default())
        .await
        .unwrap();
    let b = v
        .engine
        .create_upload("bkt", "bkt", &PutOptions::default())
        .await
        .unwrap();
    for (key, id) in [("a", &a), ("bkt", &b)] {
        v.engine
            .upload_part(
                "bkt",
                key,
                id,
                1,
                body(&pattern(1, 1000), 100),
                BodyCheck::default(),
            )
            .await
            .unwrap();
    }
    assert!(matches!(
        v.engine
            .upload_part("bkt", "a", &a, 0, body(b"x", 1), BodyCheck::default())
            .await,
        Err(EngineError::Invalid(_))
    ));
    v.engine.abort_upload("bkt", "a", &a).await.unwrap();
    assert!(matches!(
        v.engine.abort_upload("bkt", "a", &a).await,
        Err(EngineError::NoSuchUpload { .. })
    ));
    v.engine.gc_once().await.unwrap();
    assert_eq!(v.total_blobs().await, 6);
    assert_eq!(
        v.engine
            .expire_uploads(Duration::from_secs(3600))
            .await
            .unwrap(),
        0
    );
    tokio::time::sleep(Duration::from_millis(5)).await;
    assert_eq!(v.engine.expire_uploads(Duration::ZERO).await.unwrap(), 1);
    v.engine.gc_once().await.unwrap();
    assert_eq!(v.total_blobs().await, 0);
    v.engine.delete_bucket("bkt").await.unwrap();
}
