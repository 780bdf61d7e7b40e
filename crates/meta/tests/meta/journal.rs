//! The journal: a store journaled through an in-memory sink, replayed into an empty store,
//! holds exactly what the original holds — buckets with their settings, every current
//! version (racing overwrites of one key resolved as the store decided them), deletes kept
//! deleted, uploads in progress with their parts, access keys and grants, providers and the
//! journaled checkpoints; a sink that fails holds mutations until it takes their segment,
//! losing nothing; segment bytes cut short anywhere are refused, never a panic.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use archipel_meta::journal::{self, Record, Segment};
use archipel_meta::{
    AccessKey, AccessKeyId, Bucket, BucketName, CheckpointName, CommitCondition, DeleteCondition,
    JournalSink, Journaled, MetaStore, MetaStoreExt, NewUpload, ObjectKey, Part, PartQuery,
    Permissions, ProviderName, ProviderRecord, ProviderState, UnixMillis, UploadId, UploadQuery,
    UploadRef,
};
use async_trait::async_trait;

use crate::{embedded, version};

#[derive(Default)]
struct MemorySink {
    segments: Mutex<BTreeMap<(u64, u64), Vec<u8>>>,
    /// Fail this many writes first.
    fail: Mutex<u32>,
}

#[async_trait]
impl JournalSink for MemorySink {
    async fn write(&self, run: u64, number: u64, payload: Vec<u8>) -> Result<(), String> {
        {
            let mut f = self.fail.lock().unwrap();
            if *f > 0 {
                *f -= 1;
                return Err("the providers are down".into());
            }
        }
        self.segments.lock().unwrap().insert((run, number), payload);
        Ok(())
    }
}

fn b(name: &str) -> BucketName {
    BucketName::new(name).unwrap()
}

fn k(name: &str) -> ObjectKey {
    ObjectKey::new(name).unwrap()
}

fn bucket(name: &str, policy: &str) -> Bucket {
    Bucket {
        name: b(name),
        owner: "root".into(),
        policy: policy.as_bytes().to_vec(),
        created: UnixMillis(1),
        settings: Vec::new(),
    }
}

async fn replay(sink: &MemorySink, into: &dyn MetaStore) -> usize {
    let segments = sink.segments.lock().unwrap().clone();
    let mut records = 0;
    for ((run, number), payload) in segments {
        let s = Segment::decode(&payload).unwrap();
        assert_eq!((s.run, s.number), (run, number));
        for r in &s.records {
            journal::apply(into, r).await.unwrap();
            records += 1;
        }
    }
    records
}

/// Everything durable in a store, as comparable text.
async fn dump(s: &dyn MetaStore) -> Vec<String> {
    let mut out = Vec::new();
    for bk in s.list_buckets().await.unwrap() {
        out.push(format!(
            "bucket {} {:?} {:?}",
            bk.name, bk.policy, bk.settings
        ));
        for o in s.list_all(&bk.name, "").await.unwrap() {
            let v = s.get(&bk.name, &o.key).await.unwrap().unwrap();
            out.push(format!("object {}/{} {:?}", bk.name, o.key, v.version));
        }
        let ups = s
            .list_uploads(
                &bk.name,
                &UploadQuery {
                    max_uploads: 1000,
                    ..UploadQuery::default()
                },
            )
            .await
            .unwrap();
        for u in ups.uploads {
            out.push(format!("upload {:?}", u.upload));
            let r = UploadRef {
                bucket: bk.name.clone(),
                key: u.upload.key.clone(),
                upload_id: u.upload.upload_id.clone(),
            };
            let parts = s
                .list_parts(
                    &r,
                    &PartQuery {
                        after: None,
                        max_parts: 1000,
                    },
                )
                .await
                .unwrap();
            out.push(format!("parts {:?}", parts.parts));
        }
    }
    for key in s.list_access_keys().await.unwrap() {
        out.push(format!("key {key:?}"));
        out.push(format!(
            "grants {:?}",
            s.list_grants(&key.id).await.unwrap()
        ));
    }
    for p in s.list_providers().await.unwrap() {
        out.push(format!("provider {p:?}"));
    }
    for (n, d) in s.list_checkpoints("", None, 1000).await.unwrap() {
        if journal::journals_checkpoint(n.as_str()) {
            out.push(format!("checkpoint {n} {d:?}"));
        }
    }
    out
}

fn upload(bucket: &str, key: &str, id: &str) -> UploadRef {
    UploadRef {
        bucket: b(bucket),
        key: k(key),
        upload_id: UploadId::new(id).unwrap(),
    }
}

fn part(n: u32) -> Part {
    Part {
        part_number: n,
        manifest: vec![n as u8; 40],
        size: 5 << 20,
        etag: archipel_meta::ETag::new(format!("\"p{n}\"")).unwrap(),
        last_modified: UnixMillis(n as i64),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replayed_journal_rebuilds_exactly_what_the_store_holds() {
    let original = embedded().await;
    let sink = Arc::new(MemorySink::default());
    let j = Arc::new(Journaled::new(original.dyn_store(), 7));
    j.set_sink(sink.clone());

    j.create_bucket(&bucket("photos", "k=2")).await.unwrap();
    j.create_bucket(&bucket("scratch", "k=4")).await.unwrap();
    j.set_bucket_policy(&b("photos"), b"k=3").await.unwrap();
    j.set_bucket_settings(&b("photos"), b"{\"public\":true}")
        .await
        .unwrap();
    for i in 0..50 {
        j.commit(
            &b("photos"),
            &k(&format!("o{i:02}")),
            &version(&format!("v{i}")),
            &CommitCondition::Unconditional,
        )
        .await
        .unwrap();
    }
    // Overwrites of one key racing each other: the store decides the order; the journal
    // must agree with it.
    let mut racers = Vec::new();
    for i in 0..24 {
        let j = j.clone();
        racers.push(tokio::spawn(async move {
            j.commit(
                &b("photos"),
                &k("hot"),
                &version(&format!("hot{i}")),
                &CommitCondition::Unconditional,
            )
            .await
            .unwrap();
        }));
    }
    for r in racers {
        r.await.unwrap();
    }
    for i in (0..50).step_by(3) {
        j.delete(
            &b("photos"),
            &k(&format!("o{i:02}")),
            &DeleteCondition::Unconditional,
        )
        .await
        .unwrap();
    }
    let mut marker = version("dm");
    marker.delete_marker = true;
    j.commit(
        &b("photos"),
        &k("o01"),
        &marker,
        &CommitCondition::Unconditional,
    )
    .await
    .unwrap();
    let current = j.get(&b("photos"), &k("o02")).await.unwrap().unwrap();
    assert!(
        j.replace_manifest(
            &b("photos"),
            &k("o02"),
            &current.version.version_id,
            &current.version.manifest,
            b"moved",
        )
        .await
        .unwrap()
    );
    // Multipart: one completed, one in progress, one aborted.
    for (key, id) in [("mp-done", "u1"), ("mp-open", "u2"), ("mp-gone", "u3")] {
        j.create_upload(
            &b("photos"),
            &NewUpload {
                key: k(key),
                upload_id: UploadId::new(id).unwrap(),
                initiated: UnixMillis(5),
                metadata: b"ct".to_vec(),
            },
        )
        .await
        .unwrap();
        for n in 1..=3 {
            j.put_part(&upload("photos", key, id), &part(n))
                .await
                .unwrap();
        }
    }
    j.put_part(&upload("photos", "mp-open", "u2"), &part(2))
        .await
        .unwrap();
    j.complete_upload(
        &upload("photos", "mp-done", "u1"),
        &version("mpv"),
        &CommitCondition::Unconditional,
    )
    .await
    .unwrap();
    j.abort_upload(&upload("photos", "mp-gone", "u3"))
        .await
        .unwrap();
    // A bucket emptied and deleted.
    j.commit(
        &b("scratch"),
        &k("tmp"),
        &version("t"),
        &CommitCondition::Unconditional,
    )
    .await
    .unwrap();
    j.delete(&b("scratch"), &k("tmp"), &DeleteCondition::Unconditional)
        .await
        .unwrap();
    j.delete_bucket(&b("scratch")).await.unwrap();
    // Keys, grants, providers, checkpoints.
    for id in ["AKONE", "AKTWO", "AKGONE"] {
        j.create_access_key(&AccessKey {
            id: AccessKeyId::new(id).unwrap(),
            sealed_secret: id.as_bytes().to_vec(),
            owner: format!("owner of {id}"),
            created: UnixMillis(3),
            enabled: true,
        })
        .await
        .unwrap();
    }
    let rw = Permissions {
        read: true,
        write: true,
        admin: false,
    };
    j.set_grant(&AccessKeyId::new("AKONE").unwrap(), &b("photos"), rw)
        .await
        .unwrap();
    j.delete_access_key(&AccessKeyId::new("AKGONE").unwrap())
        .await
        .unwrap();
    for (name, state) in [
        ("p1", ProviderState::Active),
        ("p2", ProviderState::Draining),
    ] {
        j.put_provider(&ProviderRecord {
            name: ProviderName::new(name).unwrap(),
            labels: [("jurisdiction".to_string(), "FR".to_string())].into(),
            state,
            config: b"sealed".to_vec(),
            generation: 2,
        })
        .await
        .unwrap();
    }
    let cp = |n: &str| CheckpointName::new(n).unwrap();
    j.put_checkpoint(&cp("default-policy"), b"k=3")
        .await
        .unwrap();
    j.put_checkpoint(&cp("job:17"), b"progress").await.unwrap();
    j.put_checkpoint(&cp("audit:p1:1"), b"evidence")
        .await
        .unwrap();
    j.delete_checkpoint(&cp("audit:p1:1")).await.unwrap();

    let segments_before_close = sink.segments.lock().unwrap().len();
    assert!(segments_before_close > 0);
    j.close().await;

    let rebuilt = embedded().await;
    let records = replay(&sink, rebuilt.store.as_ref()).await;
    assert!(records >= 120, "{records} records");
    let want = dump(original.store.as_ref()).await;
    let got = dump(rebuilt.store.as_ref()).await;
    assert_eq!(got, want);
    // The things that must not come back did not.
    assert!(
        rebuilt
            .store
            .get_bucket(&b("scratch"))
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        rebuilt
            .store
            .get(&b("photos"), &k("o00"))
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        rebuilt
            .store
            .get_checkpoint(&cp("job:17"))
            .await
            .unwrap()
            .is_none()
    );
    // Replaying again (a recovery resumed before its last segment) changes nothing.
    replay(&sink, rebuilt.store.as_ref()).await;
    assert_eq!(dump(rebuilt.store.as_ref()).await, want);
    original.finish().await;
    rebuilt.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_sink_holds_the_mutation_until_its_segment_is_written() {
    let h = embedded().await;
    let sink = Arc::new(MemorySink::default());
    *sink.fail.lock().unwrap() = 3;
    let j = Journaled::new(h.dyn_store(), 1);
    j.set_sink(sink.clone());
    j.create_bucket(&bucket("held", "k=1")).await.unwrap();
    // Three failures, backing off 50 + 100 + 200 ms, then the fourth write took it.
    assert_eq!(*sink.fail.lock().unwrap(), 0);
    let segs = sink.segments.lock().unwrap().clone();
    assert_eq!(segs.len(), 1);
    let s = Segment::decode(&segs[&(1, 0)]).unwrap();
    assert_eq!(s.records, vec![Record::BucketPut(bucket("held", "k=1"))]);
    j.close().await;
    h.finish().await;
}

#[test]
fn segment_bytes_cut_short_or_altered_are_refused_without_a_panic() {
    let s = Segment {
        run: 3,
        number: 9,
        records: vec![
            Record::BucketPut(bucket("cut", "k=1")),
            Record::ObjectDelete {
                bucket: b("cut"),
                key: k("x"),
                version_id: archipel_meta::VersionId::new("v").unwrap(),
            },
            Record::GrantSet {
                key: AccessKeyId::new("AK").unwrap(),
                bucket: b("cut"),
                permissions: Permissions {
                    read: true,
                    write: false,
                    admin: true,
                },
            },
        ],
    };
    let bytes = s.encode();
    assert_eq!(Segment::decode(&bytes).unwrap(), s);
    for n in 0..bytes.len() {
        assert!(Segment::decode(&bytes[..n]).is_err(), "cut at {n}");
    }
    let mut longer = bytes.clone();
    longer.push(0);
    assert!(Segment::decode(&longer).is_err());
}
