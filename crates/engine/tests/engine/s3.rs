//! The engine over S3 providers: six buckets on a real, independent S3 server (moto_server on
//! 127.0.0.1), each behind a fault layer — objects, ranges and multipart read back with any
//! two providers gone, and three gone is a typed error.

use std::sync::Arc;

use archipel_codec::MasterKey;
use archipel_engine::{BodyCheck, ByteRange, Engine, EngineError, ProviderSlot, PutOptions};
use archipel_meta::{DeleteCondition, EmbeddedOptions, MetaStore, SqlMetaStore};
use archipel_provider::{FaultLayer, Provider, S3};

use crate::harness::{body, info, pattern, read_all, read_range, test_options};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn objects_on_s3_providers_survive_two_losses() {
    let Some(moto) = archipel_testkit::moto::moto() else {
        return; // require_tool printed the SKIP line (and panics under CI)
    };
    let tmp = tempfile::tempdir().unwrap();
    let mut slots = Vec::new();
    let mut faults = Vec::new();
    for i in 0..6 {
        let name = format!("s{i}");
        let cfg = moto
            .bucket(&format!("engine-{}-{i}", std::process::id()))
            .await;
        let s3: Arc<dyn Provider> = Arc::new(S3::s3(&name, &cfg).unwrap());
        let f = Arc::new(FaultLayer::new(s3, i));
        faults.push(f.clone());
        slots.push(ProviderSlot {
            info: info(&name),
            provider: f,
        });
    }
    let meta = Arc::new(
        SqlMetaStore::open_embedded(EmbeddedOptions::new(tmp.path().join("meta")))
            .await
            .unwrap(),
    );
    let engine = Engine::new(
        MasterKey::from_bytes([9; 32]),
        meta as Arc<dyn MetaStore>,
        slots,
        test_options(),
    )
    .unwrap();
    engine.create_bucket("bkt", "owner", None).await.unwrap();
    let objects: Vec<(String, Vec<u8>)> = [0usize, 1, 262_143, 262_145, 3 * 1024 * 1024]
        .iter()
        .map(|&n| (format!("o{n}"), pattern(n as u64, n)))
        .collect();
    for (k, d) in &objects {
        engine
            .put_object("bkt", k, body(d, 50_000), PutOptions::default())
            .await
            .unwrap();
    }
    let id = engine
        .create_upload("bkt", "mp", &PutOptions::default())
        .await
        .unwrap();
    let parts = [pattern(1, 1024 * 1024), pattern(2, 70_000)];
    let mut listed = Vec::new();
    for (i, p) in parts.iter().enumerate() {
        let out = engine
            .upload_part(
                "bkt",
                "mp",
                &id,
                i as u32 + 1,
                body(p, 40_000),
                BodyCheck::default(),
            )
            .await
            .unwrap();
        listed.push((i as u32 + 1, out.etag));
    }
    engine
        .complete_upload("bkt", "mp", &id, &listed, None)
        .await
        .unwrap();
    let mp = parts.concat();

    for down in [[0, 1], [2, 5], [3, 4]] {
        for &i in &down {
            faults[i].go_dark();
        }
        for (k, d) in &objects {
            assert!(
                read_all(&engine, "bkt", k).await.unwrap() == *d,
                "{k} with {down:?} down"
            );
        }
        assert!(read_all(&engine, "bkt", "mp").await.unwrap() == mp);
        let r = ByteRange::FromTo {
            first: 1_000_000,
            last: Some(1_100_000),
        };
        assert!(
            read_range(&engine, "bkt", "mp", Some(r)).await.unwrap() == mp[1_000_000..=1_100_000]
        );
        for &i in &down {
            faults[i].come_back();
        }
    }
    for i in [0, 2, 4] {
        faults[i].go_dark();
    }
    let e = read_all(&engine, "bkt", "o262145").await.unwrap_err();
    assert!(matches!(e, EngineError::Unavailable { .. }), "{e}");
    for i in [0, 2, 4] {
        faults[i].come_back();
    }
    // Deletes reach the S3 buckets.
    for (k, _) in &objects {
        engine
            .delete_object("bkt", k, &DeleteCondition::Unconditional)
            .await
            .unwrap();
    }
    engine
        .delete_object("bkt", "mp", &DeleteCondition::Unconditional)
        .await
        .unwrap();
    assert_eq!(engine.gc_once().await.unwrap().failed, 0);
    for f in &faults {
        assert!(
            archipel_provider::ProviderExt::list_all(f.as_ref(), "v1/")
                .await
                .unwrap()
                .is_empty()
        );
    }
}
