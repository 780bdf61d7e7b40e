//! Draining a provider: every shard it holds moves to a provider the policy allows (copied
//! and verified, or rebuilt when its copy is damaged), objects stay byte-identical, and the
//! drained provider ends with no Archipel blob; the census shows where everything is.

use std::sync::Arc;

use archipel_engine::{Policy, PutOptions};
use archipel_provider::{BlobName, Provider, ProviderExt};

use crate::harness::{Vault, body, info, pattern, read_all};

const KIB: usize = 1024;

/// Marks provider `i` draining (new writes avoid it).
fn mark_draining(v: &Vault, i: usize) {
    let slots = v
        .faults
        .iter()
        .enumerate()
        .map(|(j, f)| {
            let mut inf = info(&format!("p{j}"));
            if j == i {
                inf.state = archipel_engine::ProviderState::Draining;
            }
            archipel_engine::ProviderSlot {
                info: inf,
                provider: f.clone() as Arc<dyn Provider>,
            }
        })
        .collect();
    v.engine.set_providers(slots).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_drained_provider_holds_nothing_and_every_object_reads_back() {
    let v = Vault::new(7).await;
    v.engine.create_bucket("bkt", "owner", None).await.unwrap();
    let sizes = [0, 1, 700, 4 * KIB, 64 * KIB, 1024 * KIB + 3, 3 * 1024 * KIB];
    let mut objects = Vec::new();
    for i in 0..28 {
        let data = pattern(i as u64, sizes[i % sizes.len()]);
        let key = format!("k{i}");
        v.engine
            .put_object("bkt", &key, body(&data, 65_536), PutOptions::default())
            .await
            .unwrap();
        objects.push((key, data));
    }
    let before = v.engine.census().await.unwrap();
    let on_p3 = before.per_provider["p3"];
    assert!(on_p3.shards > 0);
    assert_eq!(v.engine.provider_inventory("p3").await.unwrap(), on_p3);

    // One of p3's shards was damaged behind Archipel's back: it is rebuilt, not copied.
    let victim = v.blobs(3).await[0].clone();
    let name = BlobName::new(victim.clone()).unwrap();
    let mut bytes = v.locals[3].get_bytes(&name, None).await.unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0x55;
    v.locals[3].put_bytes(&name, bytes).await.unwrap();

    mark_draining(&v, 3);
    let (mut moved, mut copied, mut rebuilt) = (0, 0, 0);
    for (key, _) in &objects {
        let r = v.engine.move_off("bkt", key, "p3").await.unwrap();
        assert!(r.stuck.is_empty(), "{r:?}");
        assert!(!r.to.contains_key("p3"));
        moved += r.shards;
        copied += r.copied;
        rebuilt += r.rebuilt;
    }
    assert_eq!(moved, on_p3.shards);
    assert_eq!(rebuilt, 1, "the damaged shard is rebuilt");
    assert_eq!(copied, on_p3.shards - 1);
    let after = v.engine.census().await.unwrap();
    assert!(!after.per_provider.contains_key("p3"), "{after:?}");
    let total =
        |c: &archipel_engine::Census| c.per_provider.values().map(|h| h.shards).sum::<u64>();
    assert_eq!(
        total(&after),
        total(&before),
        "every shard still exists once"
    );
    // The old shards go with the GC (no delay in tests); nothing is left on p3.
    v.engine.gc_once().await.unwrap();
    assert_eq!(v.engine.provider_inventory("p3").await.unwrap().shards, 0);
    assert_eq!(v.engine.parts_on("p3").await.unwrap(), 0);
    // Every object reads back, with p3 gone and one more provider dark.
    v.faults[3].go_dark();
    v.faults[5].go_dark();
    for (key, data) in &objects {
        assert_eq!(
            &read_all(&v.engine, "bkt", key).await.unwrap(),
            data,
            "{key}"
        );
    }
    v.faults[5].come_back();
    // Moving again moves nothing.
    let r = v.engine.move_off("bkt", "k5", "p3").await.unwrap();
    assert_eq!(r.shards, 0);
    // New writes avoid the draining provider.
    v.faults[3].come_back();
    v.engine
        .put_object(
            "bkt",
            "new",
            body(&pattern(9, 5000), 4096),
            PutOptions::default(),
        )
        .await
        .unwrap();
    assert!(v.blobs(3).await.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_drain_that_would_break_a_policy_is_refused_naming_the_bucket() {
    let v = Vault::new(6).await;
    // 4+2 needs all six providers; 2+1 fits in five.
    v.engine.create_bucket("wide", "owner", None).await.unwrap();
    v.engine
        .create_bucket("narrow", "owner", Some(Policy::new(2, 1).unwrap()))
        .await
        .unwrap();
    let blockers = v.engine.drain_blockers("p0").await.unwrap();
    assert_eq!(blockers.len(), 1, "{blockers:?}");
    assert_eq!(blockers[0].0, "wide");
    assert!(
        blockers[0].1.contains("6 eligible providers"),
        "{blockers:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_census_counts_shards_and_the_worst_case_per_jurisdiction() {
    let v = Vault::new(6).await;
    // Three jurisdictions of two providers each; 2+2 survives the loss of any one of them
    // only if no jurisdiction holds more than 2 of its 4 shards.
    let slots = v
        .faults
        .iter()
        .enumerate()
        .map(|(j, f)| {
            let mut inf = info(&format!("p{j}"));
            inf.jurisdiction = ["FR", "DE", "NL"][j / 2].into();
            archipel_engine::ProviderSlot {
                info: inf,
                provider: f.clone() as Arc<dyn Provider>,
            }
        })
        .collect();
    v.engine.set_providers(slots).unwrap();
    let mut p = Policy::new(2, 2).unwrap();
    p.rules.max_per_jurisdiction = Some(2);
    v.engine
        .create_bucket("bjur", "owner", Some(p))
        .await
        .unwrap();
    for i in 0..10 {
        v.engine
            .put_object(
                "bjur",
                &format!("k{i}"),
                body(&pattern(i, 3000), 1000),
                PutOptions::default(),
            )
            .await
            .unwrap();
    }
    let c = v.engine.census().await.unwrap();
    let b = &c.buckets["bjur"];
    assert_eq!((b.objects, b.rule_violations, b.degraded), (10, 0, 0));
    assert_eq!(b.per_jurisdiction.values().sum::<u64>(), 40);
    assert!(b.per_jurisdiction.values().all(|n| *n > 0));
    for j in ["FR", "DE", "NL"] {
        assert_eq!(b.lost_with_jurisdiction[j], 0, "{b:?}");
    }
    assert_eq!(b.rules, "max_per_jurisdiction = 2");
}
