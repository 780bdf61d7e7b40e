//! Corruption: a flipped bit anywhere in any shard is detected — by a read when the read uses
//! that byte, by a scrub always — the right data is still returned, and the bad shard is
//! queued for repair.

use archipel_engine::PutOptions;
use archipel_meta::MetaStore;

use crate::harness::{Vault, body, pattern, read_all};

/// Where the bytes of a blob of provider `i` are on disk: a file (its own, or a pack) and the
/// blob's range in it.
fn blob_bytes(v: &Vault, i: usize, blob: &str) -> (std::path::PathBuf, std::ops::Range<u64>) {
    v.locals[i]
        .locate(&archipel_provider::BlobName::new(blob).unwrap())
        .unwrap()
}

/// Flips bit `bit` of byte `offset` of `blob` on provider `i`.
fn flip(v: &Vault, i: usize, blob: &str, offset: u64, bit: u8) {
    use std::os::unix::fs::FileExt;
    let (path, range) = blob_bytes(v, i, blob);
    assert!(offset < range.end - range.start);
    let f = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
        .unwrap();
    let mut byte = [0u8];
    f.read_exact_at(&mut byte, range.start + offset).unwrap();
    byte[0] ^= 1 << bit;
    f.write_all_at(&byte, range.start + offset).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flipped_bit_in_any_shard_is_detected_and_routed_around() {
    // Three stripes (shards are files of their own), and one small stripe (shards in packs).
    for size in [700_000, 30_000] {
        flipped_bits_in(size).await;
    }
}

async fn flipped_bits_in(size: usize) {
    let v = Vault::new(6).await;
    v.engine.create_bucket("bkt", "owner", None).await.unwrap();
    let data = pattern(77, size);
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
        let (_, range) = blob_bytes(&v, i, &blob);
        let (offset, bit) = (rng.u64(0..range.end - range.start), rng.u8(0..8));
        flip(&v, i, &blob, offset, bit);

        let before = v.meta.count_repair().await.unwrap();
        // Reads return the right bytes whatever was flipped.
        assert!(
            read_all(&v.engine, "bkt", "k").await.unwrap() == data,
            "{size} bytes, round {round}"
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
            "{size} bytes, round {round}: flip at {offset} of shard {i}: {report:?}"
        );
        assert_eq!(report.bad[0].1, format!("p{i}"));
        assert_eq!(report.bad[0].3, "corrupt");
        let queued = v.meta.peek_repair(None, 100).await.unwrap();
        assert!(
            queued
                .iter()
                .any(|e| e.item.blob.blob == blob && e.item.reason == "corrupt")
        );

        flip(&v, i, &blob, offset, bit); // heal
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
    let m = manifest(&v).await;
    let seg = &m.segments[0];
    for p in seg.placement.iter().filter(|p| p.shard.0 < 2) {
        let i = v.index(&p.provider);
        flip(&v, i, &p.blob, u64::from(seg.header_len) + 10, 0);
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
        let i = v.index(&p.provider);
        let (_, range) = blob_bytes(&v, i, &p.blob);
        let len = range.end - range.start;
        flip(&v, i, &p.blob, len - 36 - 20, 3); // inside the last chunk, before the trailer
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
