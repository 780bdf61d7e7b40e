//! Corruption: a flipped bit anywhere in any shard is detected — by a read when the read uses
//! that byte, by a scrub always — the right data is still returned, and the bad shard is
//! queued for repair.

use archipel_engine::PutOptions;
use archipel_meta::MetaStore;

use crate::harness::{Vault, body, pattern, read_all};

/// Path of a blob of provider `i` on disk.
fn blob_path(v: &Vault, i: usize, blob: &str) -> std::path::PathBuf {
    v.dirs[i].join(blob)
}

fn flip(path: &std::path::Path, offset: usize, bit: u8) {
    let mut bytes = std::fs::read(path).unwrap();
    bytes[offset] ^= 1 << bit;
    std::fs::write(path, bytes).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flipped_bit_in_any_shard_is_detected_and_routed_around() {
    let v = Vault::new(6).await;
    v.engine.create_bucket("bkt", "owner", None).await.unwrap();
    let data = pattern(77, 700_000); // three stripes
    v.engine
        .put_object("bkt", "k", body(&data, 8192), PutOptions::default())
        .await
        .unwrap();
    let mut rng = fastrand::Rng::with_seed(3);
    let mut reads_detected = 0;
    for round in 0..24 {
        // Pick a shard and any byte of it (header, chunks or trailer).
        let i = round % 6;
        let blob = v.blobs(i).await.pop().unwrap();
        let path = blob_path(&v, i, &blob);
        let len = std::fs::metadata(&path).unwrap().len() as usize;
        let (offset, bit) = (rng.usize(0..len), rng.u8(0..8));
        flip(&path, offset, bit);

        let before = v.meta.count_repair().await.unwrap();
        // Reads return the right bytes whatever was flipped.
        assert!(
            read_all(&v.engine, "bkt", "k").await.unwrap() == data,
            "round {round}"
        );
        if v.meta.count_repair().await.unwrap() > before {
            reads_detected += 1;
        }
        // A scrub finds the flip wherever it is.
        let report = v.engine.scrub_object("bkt", "k").await.unwrap();
        assert_eq!(report.shards_checked, 6);
        assert_eq!(
            report.bad.len(),
            1,
            "round {round}: flip at {offset} of shard {i}: {report:?}"
        );
        assert_eq!(report.bad[0].1, format!("p{i}"));
        assert_eq!(report.bad[0].3, "corrupt");
        let queued = v.meta.peek_repair(None, 100).await.unwrap();
        assert!(
            queued
                .iter()
                .any(|e| e.item.blob.blob == blob && e.item.reason == "corrupt")
        );

        flip(&path, offset, bit); // heal
        assert!(
            v.engine
                .scrub_object("bkt", "k")
                .await
                .unwrap()
                .bad
                .is_empty()
        );
        let gone: Vec<archipel_meta::GcBlob> = queued.into_iter().map(|e| e.item.blob).collect();
        v.meta.remove_repair(&gone).await.unwrap();
    }
    // Flips in data chunks of data shards are caught by reads too (the read path verifies
    // every chunk it uses); flips in parity shards or headers only by the scrub.
    assert!(reads_detected > 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_corrupt_chunk_on_read_is_replaced_from_parity() {
    let v = Vault::new(6).await;
    v.engine.create_bucket("bkt", "owner", None).await.unwrap();
    let data = pattern(5, 1_000_000);
    v.engine
        .put_object("bkt", "k", body(&data, 8192), PutOptions::default())
        .await
        .unwrap();
    // Corrupt the first chunk of two data shards (the header is ~150 bytes; chunks follow).
    let m = {
        let bytes = v
            .meta
            .get(
                &archipel_meta::BucketName::s3("bkt").unwrap(),
                &archipel_meta::ObjectKey::new("k").unwrap(),
            )
            .await
            .unwrap()
            .unwrap()
            .version
            .manifest;
        archipel_codec::Manifest::decode(
            &bytes,
            &archipel_codec::MasterKey::from_bytes(crate::harness::KEY).manifest_key(),
        )
        .unwrap()
    };
    let seg = &m.segments[0];
    for p in seg.placement.iter().filter(|p| p.shard.0 < 2) {
        let i = v.index(&p.provider);
        flip(&blob_path(&v, i, &p.blob), seg.header_len as usize + 10, 0);
    }
    assert!(read_all(&v.engine, "bkt", "k").await.unwrap() == data);
    let queued = v.meta.peek_repair(None, 100).await.unwrap();
    assert_eq!(queued.len(), 2, "{queued:?}");
    assert!(queued.iter().all(|e| e.item.reason == "corrupt"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readers_stopped_by_hedging_remain_candidates_for_later_stripes() {
    // Hedge at once: every read starts extra readers and stops the laggards after stripe 0.
    let tmp = tempfile::tempdir().unwrap();
    let opts = archipel_engine::EngineOptions {
        hedge_delay: Some(std::time::Duration::from_micros(1)),
        ..crate::harness::test_options()
    };
    let v = Vault::open_at(tmp.path(), 6, opts).await;
    v.engine.create_bucket("bkt", "owner", None).await.unwrap();
    let data = pattern(6, 2_000_000); // eight stripes
    v.engine
        .put_object("bkt", "k", body(&data, 8192), PutOptions::default())
        .await
        .unwrap();
    // Corrupt the last stripe's chunk in every data shard but one: the read must fall back to
    // parity shards even if their readers were stopped earlier.
    let m = manifest(&v).await;
    let seg = &m.segments[0];
    for p in seg.placement.iter().filter(|p| p.shard.0 < 2) {
        let path = blob_path(&v, v.index(&p.provider), &p.blob);
        let len = std::fs::metadata(&path).unwrap().len() as usize;
        flip(&path, len - 36 - 20, 3); // inside the last chunk, before the trailer
    }
    for _ in 0..5 {
        assert!(read_all(&v.engine, "bkt", "k").await.unwrap() == data);
    }
}

async fn manifest(v: &Vault) -> archipel_codec::Manifest {
    let bytes = v
        .meta
        .get(
            &archipel_meta::BucketName::s3("bkt").unwrap(),
            &archipel_meta::ObjectKey::new("k").unwrap(),
        )
        .await
        .unwrap()
        .unwrap()
        .version
        .manifest;
    archipel_codec::Manifest::decode(
        &bytes,
        &archipel_codec::MasterKey::from_bytes(crate::harness::KEY).manifest_key(),
    )
    .unwrap()
}
