//! Repair: shards never written, lost or corrupt come back — on their own provider when it
//! answers, else on a spare — without an operator, and the object then survives the loss of
//! any `m` other providers again.

use archipel_engine::{PutOptions, RepairOptions};
use archipel_meta::MetaStore;
use archipel_provider::{BlobName, Provider};

use crate::harness::{Vault, body, pattern, read_all};

const MIB: usize = 1024 * 1024;

async fn put(v: &Vault, key: &str, data: &[u8]) -> archipel_engine::PutOutcome {
    v.engine
        .put_object("bkt", key, body(data, 65_536), PutOptions::default())
        .await
        .unwrap()
}

/// Every pair of providers other than `except` taken away in turn: the object still reads.
async fn survives_any_two_losses(v: &Vault, key: &str, data: &[u8], except: &[usize]) {
    let n = v.faults.len();
    for a in 0..n {
        for b in a + 1..n {
            if except.contains(&a) || except.contains(&b) {
                continue;
            }
            v.faults[a].go_dark();
            v.faults[b].go_dark();
            let got = read_all(&v.engine, "bkt", key).await;
            v.faults[a].come_back();
            v.faults[b].come_back();
            assert!(
                got.as_deref().ok() == Some(data),
                "{key} without p{a} and p{b}: {:?}",
                got.err()
            );
        }
    }
}

fn shards(places: &[Vec<(usize, String)>]) -> Vec<usize> {
    places.iter().map(Vec::len).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_shard_unwritten_while_its_provider_was_down_is_rebuilt_there_once_it_is_back() {
    let v = Vault::new(6).await;
    v.engine.create_bucket("bkt", "owner", None).await.unwrap();
    let data = pattern(20, 3 * MIB + 17);
    let small = pattern(21, 2000);
    v.faults[4].go_dark();
    assert_eq!(put(&v, "big", &data).await.unwrap_written(), 1);
    assert_eq!(put(&v, "small", &small).await.unwrap_written(), 1);
    assert_eq!(v.meta.count_repair().await.unwrap(), 2);
    // While it is still down nothing can be done (no spare among six), and nothing is lost.
    let r = v
        .engine
        .repair_once(&RepairOptions::default())
        .await
        .unwrap();
    assert_eq!((r.rebuilt, r.waiting), (0, 2), "{r:?}");
    assert_eq!(v.meta.count_repair().await.unwrap(), 2);

    v.faults[4].come_back();
    let r = v
        .engine
        .repair_once(&RepairOptions::default())
        .await
        .unwrap();
    assert_eq!((r.rebuilt, r.moved, r.waiting), (2, 0, 0), "{r:?}");
    assert!(r.bytes_written > 3 * MIB as u64 / 4, "{r:?}");
    assert_eq!(v.meta.count_repair().await.unwrap(), 0);
    for (key, d) in [("big", &data), ("small", &small)] {
        let places = v.engine.locate_object("bkt", key).await.unwrap();
        assert_eq!(shards(&places), vec![6], "{places:?}");
        assert!(places[0].iter().any(|(_, p)| p == "p4"), "{places:?}");
        survives_any_two_losses(&v, key, d, &[]).await;
    }
    // A second round finds nothing to do.
    let r = v
        .engine
        .repair_once(&RepairOptions::default())
        .await
        .unwrap();
    assert_eq!(r.examined, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_provider_that_stays_away_has_its_shards_rebuilt_on_a_spare() {
    let v = Vault::new(7).await;
    v.engine.create_bucket("bkt", "owner", None).await.unwrap();
    let data = pattern(22, MIB + 5);
    put(&v, "k", &data).await;
    let places = v.engine.locate_object("bkt", "k").await.unwrap();
    let (lost_shard, lost) = places[0][2].clone();
    let lost_i = v.index(&lost);
    // Its blob is gone and so is the provider, for good.
    let blob = v.blobs(lost_i).await.pop().unwrap();
    v.faults[lost_i].go_dark();
    v.meta
        .enqueue_repair(
            &[archipel_meta::RepairItem {
                blob: archipel_meta::GcBlob {
                    provider: archipel_meta::ProviderName::new(lost.clone()).unwrap(),
                    blob: blob.clone(),
                },
                bucket: archipel_meta::BucketName::s3("bkt").unwrap(),
                key: archipel_meta::ObjectKey::new("k").unwrap(),
                version_id: archipel_meta::VersionId::new(
                    v.engine.head_object("bkt", "k").await.unwrap().version_id,
                )
                .unwrap(),
                reason: "missing".into(),
            }],
            archipel_meta::UnixMillis::now(),
        )
        .await
        .unwrap();
    let r = v
        .engine
        .repair_once(&RepairOptions::default())
        .await
        .unwrap();
    assert_eq!((r.rebuilt, r.moved), (1, 1), "{r:?}");
    let after = v.engine.locate_object("bkt", "k").await.unwrap();
    assert_eq!(shards(&after), vec![6]);
    let spare = after[0]
        .iter()
        .find(|(s, _)| *s == lost_shard)
        .map(|(_, p)| p.clone())
        .unwrap();
    assert_ne!(spare, lost);
    assert!(
        !places[0].iter().any(|(_, p)| *p == spare),
        "a spare holds no other shard"
    );
    // With the lost provider still away, any two of the others can go too.
    survives_any_two_losses(&v, "k", &data, &[lost_i]).await;
    // The old location is collected once it is back (GC delay 0 in tests).
    v.faults[lost_i].come_back();
    v.engine.gc_once().await.unwrap();
    assert!(v.blobs(lost_i).await.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wiped_provider_is_found_by_the_inventory_and_refilled() {
    let v = Vault::new(6).await;
    v.engine.create_bucket("bkt", "owner", None).await.unwrap();
    let objects: Vec<(String, Vec<u8>)> = (0..5)
        .map(|i| {
            (
                format!("o{i}"),
                pattern(30 + i as u64, 40_000 + i * 300_000),
            )
        })
        .collect();
    for (k, d) in &objects {
        put(&v, k, d).await;
    }
    // Everything provider 3 held disappears.
    for blob in v.blobs(3).await {
        v.locals[3]
            .delete(&BlobName::new(blob).unwrap())
            .await
            .unwrap();
    }
    assert!(v.blobs(3).await.is_empty());
    let inv = v.engine.inventory_once().await.unwrap();
    assert_eq!((inv.providers_listed, inv.missing), (6, 5), "{inv:?}");
    let r = v
        .engine
        .repair_once(&RepairOptions::default())
        .await
        .unwrap();
    assert_eq!((r.rebuilt, r.waiting), (5, 0), "{r:?}");
    assert_eq!(v.blobs(3).await.len(), 5);
    assert_eq!(v.engine.inventory_once().await.unwrap().missing, 0);
    for (k, d) in &objects {
        survives_any_two_losses(&v, k, d, &[]).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn corrupt_shards_are_rewritten_and_obsolete_or_intact_entries_are_dropped() {
    let v = Vault::new(6).await;
    v.engine.create_bucket("bkt", "owner", None).await.unwrap();
    let data = pattern(40, 900_000);
    put(&v, "k", &data).await;
    // Corrupt one shard in place: the scrub finds it.
    let blob = v.blobs(1).await.pop().unwrap();
    let name = BlobName::new(blob.clone()).unwrap();
    let mut bytes = {
        use archipel_provider::ProviderExt;
        v.locals[1].get_bytes(&name, None).await.unwrap()
    };
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0x40;
    {
        use archipel_provider::ProviderExt;
        v.locals[1].put_bytes(&name, bytes).await.unwrap();
    }
    let scrub = v.engine.scrub_object("bkt", "k").await.unwrap();
    assert_eq!(scrub.bad.len(), 1, "{scrub:?}");
    // Also queued: a shard that is fine, and one of a version since overwritten.
    let other = v.blobs(2).await.pop().unwrap();
    put(&v, "gone", &pattern(41, 1000)).await;
    let gone_blob = v
        .blobs(0)
        .await
        .into_iter()
        .find(|b| *b != blob && *b != other);
    let version = v.engine.head_object("bkt", "k").await.unwrap().version_id;
    let gone_version = v
        .engine
        .head_object("bkt", "gone")
        .await
        .unwrap()
        .version_id;
    let item = |p: &str, blob: &str, key: &str, version: &str| archipel_meta::RepairItem {
        blob: archipel_meta::GcBlob {
            provider: archipel_meta::ProviderName::new(p).unwrap(),
            blob: blob.to_string(),
        },
        bucket: archipel_meta::BucketName::s3("bkt").unwrap(),
        key: archipel_meta::ObjectKey::new(key).unwrap(),
        version_id: archipel_meta::VersionId::new(version).unwrap(),
        reason: "missing".into(),
    };
    let mut items = vec![item("p2", &other, "k", &version)];
    if let Some(g) = &gone_blob {
        items.push(item("p0", g, "gone", &gone_version));
    }
    v.meta
        .enqueue_repair(&items, archipel_meta::UnixMillis::now())
        .await
        .unwrap();
    put(&v, "gone", &pattern(42, 1000)).await;
    let r = v
        .engine
        .repair_once(&RepairOptions::default())
        .await
        .unwrap();
    assert_eq!(r.rebuilt, 1, "{r:?}");
    assert_eq!(r.found_intact, 1, "{r:?}");
    assert_eq!(r.obsolete, items.len() as u64 - 1, "{r:?}");
    assert_eq!(v.meta.count_repair().await.unwrap(), 0);
    assert!(
        v.engine
            .scrub_object("bkt", "k")
            .await
            .unwrap()
            .bad
            .is_empty()
    );
    survives_any_two_losses(&v, "k", &data, &[]).await;
}

/// The shards a put could not write anywhere.
trait Unwritten {
    fn unwrap_written(&self) -> usize;
}

impl Unwritten for archipel_engine::PutOutcome {
    fn unwrap_written(&self) -> usize {
        assert_eq!(self.spared_shards, 0);
        self.unwritten_shards
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parts_written_degraded_wait_for_their_upload_and_are_repaired_once_it_completes() {
    let v = Vault::new(6).await;
    v.engine.create_bucket("bkt", "owner", None).await.unwrap();
    let id = v
        .engine
        .create_upload("bkt", "mp", &PutOptions::default())
        .await
        .unwrap();
    let parts: Vec<Vec<u8>> = (0..2).map(|i| pattern(50 + i, MIB + 100)).collect();
    v.faults[5].go_dark();
    let mut etags = Vec::new();
    for (i, p) in parts.iter().enumerate() {
        let out = v
            .engine
            .upload_part(
                "bkt",
                "mp",
                &id,
                i as u32 + 1,
                body(p, 65_536),
                archipel_engine::BodyCheck::default(),
            )
            .await
            .unwrap();
        etags.push((i as u32 + 1, out.etag));
    }
    v.faults[5].come_back();
    assert_eq!(v.meta.count_repair().await.unwrap(), 2);
    // The upload is not complete: its parts' shards wait, they are not obsolete.
    let r = v
        .engine
        .repair_once(&RepairOptions::default())
        .await
        .unwrap();
    assert_eq!((r.obsolete, r.waiting), (0, 2), "{r:?}");
    v.engine
        .complete_upload("bkt", "mp", &id, &etags, None)
        .await
        .unwrap();
    let r = v
        .engine
        .repair_once(&RepairOptions::default())
        .await
        .unwrap();
    assert_eq!((r.rebuilt, r.waiting), (2, 0), "{r:?}");
    let places = v.engine.locate_object("bkt", "mp").await.unwrap();
    assert_eq!(shards(&places), vec![6, 6]);
    let whole: Vec<u8> = parts.concat();
    survives_any_two_losses(&v, "mp", &whole, &[]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_inventory_queues_shards_a_degraded_manifest_does_not_place() {
    let v = Vault::new(6).await;
    v.engine.create_bucket("bkt", "owner", None).await.unwrap();
    let data = pattern(60, 300_000);
    v.faults[2].go_dark();
    put(&v, "k", &data).await;
    v.faults[2].come_back();
    // Its queue entry is lost (say, a metadata restore from before it was written).
    let queued = v.meta.peek_repair(None, 10).await.unwrap();
    let blobs: Vec<_> = queued.iter().map(|e| e.item.blob.clone()).collect();
    v.meta.remove_repair(&blobs).await.unwrap();
    let inv = v.engine.inventory_once().await.unwrap();
    assert_eq!(inv.missing, 1, "{inv:?}");
    let r = v
        .engine
        .repair_once(&RepairOptions::default())
        .await
        .unwrap();
    assert_eq!(r.rebuilt, 1, "{r:?}");
    assert_eq!(
        shards(&v.engine.locate_object("bkt", "k").await.unwrap()),
        vec![6]
    );
    survives_any_two_losses(&v, "k", &data, &[]).await;
}
