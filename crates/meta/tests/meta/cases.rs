//! Deterministic cases for every operation.

use std::sync::Arc;

use archipel_meta::*;

use crate::{bucket_name, delete_marker, etag, key, new_bucket, version};

async fn with_bucket(store: &Arc<dyn MetaStore>, name: &str) -> BucketName {
    store.create_bucket(&new_bucket(name)).await.unwrap();
    bucket_name(name)
}

async fn commit(store: &Arc<dyn MetaStore>, b: &BucketName, k: &str, id: &str) -> Superseded {
    store
        .commit(b, &key(k), &version(id), &CommitCondition::Unconditional)
        .await
        .unwrap()
}

pub(crate) async fn buckets_are_created_listed_and_deleted_only_when_empty(
    store: Arc<dyn MetaStore>,
) {
    for name in ["zeta", "alpha-1", "alpha.2", "alpha"] {
        store.create_bucket(&new_bucket(name)).await.unwrap();
    }
    let mut other = new_bucket("alpha");
    other.owner = "bob".into();
    assert_eq!(
        store.create_bucket(&other).await,
        Err(MetaError::BucketExists {
            bucket: bucket_name("alpha"),
            owner: "alice".into()
        })
    );
    let names: Vec<String> = store
        .list_buckets()
        .await
        .unwrap()
        .into_iter()
        .map(|b| b.name.to_string())
        .collect();
    assert_eq!(
        names,
        ["alpha", "alpha-1", "alpha.2", "zeta"],
        "byte order, whatever the collation"
    );
    assert_eq!(
        store.get_bucket(&bucket_name("alpha")).await.unwrap(),
        Some(new_bucket("alpha"))
    );
    assert_eq!(store.get_bucket(&bucket_name("nope")).await.unwrap(), None);

    store
        .set_bucket_policy(&bucket_name("alpha"), b"k=6,m=3")
        .await
        .unwrap();
    assert_eq!(
        store
            .get_bucket(&bucket_name("alpha"))
            .await
            .unwrap()
            .unwrap()
            .policy,
        b"k=6,m=3"
    );
    assert_eq!(
        store.set_bucket_policy(&bucket_name("nope"), b"").await,
        Err(MetaError::NoSuchBucket {
            bucket: bucket_name("nope")
        })
    );

    let b = bucket_name("alpha");
    commit(&store, &b, "k", "v1").await;
    assert_eq!(
        store.delete_bucket(&b).await,
        Err(MetaError::BucketNotEmpty { bucket: b.clone() })
    );
    store
        .delete(&b, &key("k"), &DeleteCondition::Unconditional)
        .await
        .unwrap();
    let upload = NewUpload {
        key: key("u"),
        upload_id: UploadId::new("up1").unwrap(),
        initiated: UnixMillis(1),
        metadata: vec![],
    };
    store.create_upload(&b, &upload).await.unwrap();
    assert_eq!(
        store.delete_bucket(&b).await,
        Err(MetaError::BucketNotEmpty { bucket: b.clone() })
    );
    let u = UploadRef {
        bucket: b.clone(),
        key: key("u"),
        upload_id: upload.upload_id.clone(),
    };
    store.abort_upload(&u).await.unwrap();
    // A delete marker alone does not keep a bucket.
    store
        .commit(
            &b,
            &key("gone"),
            &delete_marker("dm"),
            &CommitCondition::Unconditional,
        )
        .await
        .unwrap();
    store.delete_bucket(&b).await.unwrap();
    assert_eq!(store.get_bucket(&b).await.unwrap(), None);
    assert_eq!(
        store.delete_bucket(&b).await,
        Err(MetaError::NoSuchBucket { bucket: b.clone() })
    );
    // The name is free again, and nothing of the old bucket shows through.
    store.create_bucket(&new_bucket("alpha")).await.unwrap();
    assert_eq!(store.get(&b, &key("gone")).await.unwrap(), None);
}

pub(crate) async fn manifests_are_replaced_only_where_version_and_manifest_still_match(
    store: Arc<dyn MetaStore>,
) {
    let b = with_bucket(&store, "repairs").await;
    commit(&store, &b, "k", "v1").await;
    let before = store.get(&b, &key("k")).await.unwrap().unwrap();
    let v1 = VersionId::new("v1").unwrap();
    let old = before.version.manifest.clone();
    // The wrong version or a stale manifest: nothing changes.
    for (id, expected) in [("v0", old.clone()), ("v1", b"stale".to_vec())] {
        let id = VersionId::new(id).unwrap();
        assert!(
            !store
                .replace_manifest(&b, &key("k"), &id, &expected, b"moved")
                .await
                .unwrap()
        );
    }
    assert_eq!(store.get(&b, &key("k")).await.unwrap().unwrap(), before);
    // The right one: only the manifest changes, and only once from the same starting point.
    assert!(
        store
            .replace_manifest(&b, &key("k"), &v1, &old, b"moved")
            .await
            .unwrap()
    );
    assert!(
        !store
            .replace_manifest(&b, &key("k"), &v1, &old, b"moved again")
            .await
            .unwrap()
    );
    let after = store.get(&b, &key("k")).await.unwrap().unwrap();
    assert_eq!(after.version.manifest, b"moved".to_vec());
    let mut same = after.clone();
    same.version.manifest = old;
    assert_eq!(same, before);
    // Missing keys, overwritten versions and delete markers are left alone.
    assert!(
        !store
            .replace_manifest(&b, &key("absent"), &v1, b"moved", b"x")
            .await
            .unwrap()
    );
    commit(&store, &b, "k", "v2").await;
    assert!(
        !store
            .replace_manifest(&b, &key("k"), &v1, b"moved", b"x")
            .await
            .unwrap()
    );
    store
        .commit(
            &b,
            &key("k"),
            &delete_marker("dm"),
            &CommitCondition::Unconditional,
        )
        .await
        .unwrap();
    let dm = store.get(&b, &key("k")).await.unwrap().unwrap();
    let dm_id = VersionId::new("dm").unwrap();
    assert!(
        !store
            .replace_manifest(&b, &key("k"), &dm_id, &dm.version.manifest, b"x")
            .await
            .unwrap()
    );
}

pub(crate) async fn commits_return_what_they_supersede(store: Arc<dyn MetaStore>) {
    let b = with_bucket(&store, "objects").await;
    assert_eq!(
        commit(&store, &b, "a/b.txt", "v1").await,
        Superseded::default()
    );
    let got = store.get(&b, &key("a/b.txt")).await.unwrap().unwrap();
    assert_eq!(
        got,
        ObjectVersion {
            bucket: b.clone(),
            key: key("a/b.txt"),
            version: version("v1")
        }
    );

    let replaced = commit(&store, &b, "a/b.txt", "v2").await;
    assert_eq!(
        replaced.previous.unwrap().version,
        version("v1"),
        "the old manifest comes back for GC"
    );
    assert_eq!(
        store
            .get(&b, &key("a/b.txt"))
            .await
            .unwrap()
            .unwrap()
            .version,
        version("v2")
    );

    let removed = store
        .delete(&b, &key("a/b.txt"), &DeleteCondition::Unconditional)
        .await
        .unwrap();
    assert_eq!(removed.previous.unwrap().version, version("v2"));
    assert_eq!(store.get(&b, &key("a/b.txt")).await.unwrap(), None);
    assert_eq!(
        store
            .delete(&b, &key("a/b.txt"), &DeleteCondition::Unconditional)
            .await
            .unwrap(),
        Superseded::default(),
        "idempotent"
    );

    // Large and odd values survive byte for byte.
    let mut big = version("big");
    big.manifest = (0..200_000u32).map(|i| (i * 7) as u8).collect();
    big.size = u64::MAX >> 1;
    big.user_metadata
        .insert("ünïcode".into(), "值\n\"quoted\"".into());
    store
        .commit(&b, &key("big"), &big, &CommitCondition::IfAbsent)
        .await
        .unwrap();
    assert_eq!(
        store.get(&b, &key("big")).await.unwrap().unwrap().version,
        big
    );
    let mut too_big = version("x");
    too_big.size = u64::MAX;
    assert!(matches!(
        store
            .commit(&b, &key("x"), &too_big, &CommitCondition::Unconditional)
            .await,
        Err(MetaError::InvalidArgument { .. })
    ));
}

pub(crate) async fn conditional_commits_name_what_they_found(store: Arc<dyn MetaStore>) {
    let b = with_bucket(&store, "cond").await;
    let k = key("k");
    store
        .commit(&b, &k, &version("v1"), &CommitCondition::IfAbsent)
        .await
        .unwrap();
    assert_eq!(
        store
            .commit(&b, &k, &version("v2"), &CommitCondition::IfAbsent)
            .await,
        Err(MetaError::AlreadyExists {
            bucket: b.clone(),
            key: k.clone(),
            current_etag: etag("\"v1\"")
        })
    );
    assert_eq!(
        store
            .commit(
                &b,
                &k,
                &version("v2"),
                &CommitCondition::IfMatch(etag("\"zz\""))
            )
            .await,
        Err(MetaError::EtagMismatch {
            bucket: b.clone(),
            key: k.clone(),
            expected: etag("\"zz\""),
            current: Some(etag("\"v1\""))
        })
    );
    let ok = store
        .commit(
            &b,
            &k,
            &version("v2"),
            &CommitCondition::IfMatch(etag("\"v1\"")),
        )
        .await
        .unwrap();
    assert_eq!(ok.previous.unwrap().version, version("v1"));
    assert_eq!(
        store
            .commit(
                &b,
                &key("absent"),
                &version("v3"),
                &CommitCondition::IfMatch(etag("\"v2\""))
            )
            .await,
        Err(MetaError::EtagMismatch {
            bucket: b.clone(),
            key: key("absent"),
            expected: etag("\"v2\""),
            current: None
        })
    );
    assert_eq!(
        store
            .delete(&b, &k, &DeleteCondition::IfMatch(etag("\"v1\"")))
            .await,
        Err(MetaError::EtagMismatch {
            bucket: b.clone(),
            key: k.clone(),
            expected: etag("\"v1\""),
            current: Some(etag("\"v2\""))
        })
    );
    assert_eq!(
        store.get(&b, &k).await.unwrap().unwrap().version,
        version("v2"),
        "losers change nothing"
    );
    assert!(
        store
            .delete(&b, &k, &DeleteCondition::IfMatch(etag("\"v2\"")))
            .await
            .unwrap()
            .previous
            .is_some()
    );
    let err = store
        .commit(
            &b,
            &k,
            &version("v9"),
            &CommitCondition::IfMatch(etag("\"v2\"")),
        )
        .await
        .unwrap_err();
    assert!(
        !err.is_retryable(),
        "a lost condition will not change by retrying: {err}"
    );
}

pub(crate) async fn delete_markers_hide_keys_but_count_as_absent(store: Arc<dyn MetaStore>) {
    let b = with_bucket(&store, "markers").await;
    commit(&store, &b, "k", "v1").await;
    let s = store
        .commit(
            &b,
            &key("k"),
            &delete_marker("dm1"),
            &CommitCondition::Unconditional,
        )
        .await
        .unwrap();
    assert_eq!(s.previous.unwrap().version, version("v1"));
    let got = store.get(&b, &key("k")).await.unwrap().unwrap();
    assert!(got.version.delete_marker);
    let page = store
        .list(
            &b,
            &ListQuery {
                max_keys: 10,
                ..ListQuery::default()
            },
        )
        .await
        .unwrap();
    assert!(
        page.objects.is_empty(),
        "delete markers are not listed: {page:?}"
    );
    assert!(matches!(
        store
            .commit(
                &b,
                &key("k"),
                &version("v2"),
                &CommitCondition::IfMatch(etag("\"dm1\""))
            )
            .await,
        Err(MetaError::EtagMismatch { current: None, .. })
    ));
    let s = store
        .commit(&b, &key("k"), &version("v2"), &CommitCondition::IfAbsent)
        .await
        .unwrap();
    assert!(
        s.previous.unwrap().version.delete_marker,
        "the marker it replaced is returned"
    );
}

pub(crate) async fn if_exists_commits_need_a_live_current_version(store: Arc<dyn MetaStore>) {
    let b = with_bucket(&store, "ifexists").await;
    let k = key("k");
    let if_exists = CommitCondition::IfExists;
    let no_live = |delete_marker| MetaError::NoLiveVersion {
        bucket: b.clone(),
        key: k.clone(),
        delete_marker,
    };
    // Absent: refused, and nothing is created.
    assert_eq!(
        store.commit(&b, &k, &version("v1"), &if_exists).await,
        Err(no_live(false))
    );
    assert_eq!(
        store.get(&b, &k).await.unwrap(),
        None,
        "a loser creates nothing"
    );
    // Present: replaces whatever etag is current and returns it.
    commit(&store, &b, "k", "v1").await;
    let s = store
        .commit(&b, &k, &version("v2"), &if_exists)
        .await
        .unwrap();
    assert_eq!(s.previous.unwrap().version, version("v1"));
    assert_eq!(
        store.get(&b, &k).await.unwrap().unwrap().version,
        version("v2")
    );
    // A delete marker is current: refused, saying so, and the marker stays.
    store
        .commit(
            &b,
            &k,
            &delete_marker("dm"),
            &CommitCondition::Unconditional,
        )
        .await
        .unwrap();
    let err = store
        .commit(&b, &k, &version("v3"), &if_exists)
        .await
        .unwrap_err();
    assert_eq!(err, no_live(true));
    assert!(!err.is_retryable(), "a lost condition is final: {err}");
    assert!(err.to_string().contains("delete marker"), "{err}");
    assert_eq!(
        store.get(&b, &k).await.unwrap().unwrap().version,
        delete_marker("dm")
    );
    // A multipart completion under `IfExists` is decided in its own transaction too: refused
    // over the marker, the upload and its parts stay; accepted once a version is live.
    let u = upload_ref(&b, "k", "up-ifexists");
    store
        .create_upload(&b, &new_upload("k", "up-ifexists"))
        .await
        .unwrap();
    store.put_part(&u, &part(1, "a")).await.unwrap();
    assert_eq!(
        store.complete_upload(&u, &version("mp"), &if_exists).await,
        Err(no_live(true))
    );
    assert!(store.get_upload(&u).await.unwrap().is_some());
    commit(&store, &b, "k", "v4").await;
    let done = store
        .complete_upload(&u, &version("mp"), &if_exists)
        .await
        .unwrap();
    assert_eq!(done.previous.unwrap().version, version("v4"));
    assert_eq!(done.parts, vec![part(1, "a")]);
    assert_eq!(
        store.get(&b, &k).await.unwrap().unwrap().version,
        version("mp")
    );
}

pub(crate) async fn conditional_deletes_are_decided_by_the_store(store: Arc<dyn MetaStore>) {
    let b = with_bucket(&store, "conddel").await;
    let k = key("k");
    let if_match = |e: &str| DeleteCondition::IfMatch(etag(e));
    // Absent key: both conditions fail (an unconditional delete is a no-op).
    assert_eq!(
        store.delete(&b, &k, &DeleteCondition::IfExists).await,
        Err(MetaError::NoLiveVersion {
            bucket: b.clone(),
            key: k.clone(),
            delete_marker: false
        })
    );
    assert_eq!(
        store.delete(&b, &k, &if_match("\"v1\"")).await,
        Err(MetaError::EtagMismatch {
            bucket: b.clone(),
            key: k.clone(),
            expected: etag("\"v1\""),
            current: None
        })
    );
    assert_eq!(
        store.delete(&b, &k, &DeleteCondition::Unconditional).await,
        Ok(Superseded::default())
    );
    // Wrong etag: refused, naming what is current; the object stays.
    commit(&store, &b, "k", "v1").await;
    assert_eq!(
        store.delete(&b, &k, &if_match("\"zz\"")).await,
        Err(MetaError::EtagMismatch {
            bucket: b.clone(),
            key: k.clone(),
            expected: etag("\"zz\""),
            current: Some(etag("\"v1\""))
        })
    );
    assert_eq!(
        store.get(&b, &k).await.unwrap().unwrap().version,
        version("v1")
    );
    // Right etag: removed and returned.
    let gone = store.delete(&b, &k, &if_match("\"v1\"")).await.unwrap();
    assert_eq!(gone.previous.unwrap().version, version("v1"));
    assert_eq!(store.get(&b, &k).await.unwrap(), None);
    // `IfExists` on a live version: removed and returned.
    commit(&store, &b, "k", "v2").await;
    let gone = store
        .delete(&b, &k, &DeleteCondition::IfExists)
        .await
        .unwrap();
    assert_eq!(gone.previous.unwrap().version, version("v2"));
    // A delete marker is no live version: both conditions fail and the marker stays.
    store
        .commit(
            &b,
            &k,
            &delete_marker("dm"),
            &CommitCondition::Unconditional,
        )
        .await
        .unwrap();
    assert_eq!(
        store.delete(&b, &k, &DeleteCondition::IfExists).await,
        Err(MetaError::NoLiveVersion {
            bucket: b.clone(),
            key: k.clone(),
            delete_marker: true
        })
    );
    assert!(matches!(
        store.delete(&b, &k, &if_match("\"dm\"")).await,
        Err(MetaError::EtagMismatch { current: None, .. })
    ));
    assert_eq!(
        store.get(&b, &k).await.unwrap().unwrap().version,
        delete_marker("dm")
    );
}

pub(crate) async fn object_calls_on_a_missing_bucket_fail(store: Arc<dyn MetaStore>) {
    let b = bucket_name("missing");
    let no = || MetaError::NoSuchBucket { bucket: b.clone() };
    assert_eq!(
        store
            .commit(
                &b,
                &key("k"),
                &version("v"),
                &CommitCondition::Unconditional
            )
            .await,
        Err(no())
    );
    assert_eq!(store.get(&b, &key("k")).await, Err(no()));
    assert_eq!(
        store
            .delete(&b, &key("k"), &DeleteCondition::Unconditional)
            .await,
        Err(no())
    );
    assert_eq!(
        store
            .list(
                &b,
                &ListQuery {
                    max_keys: 5,
                    ..ListQuery::default()
                }
            )
            .await,
        Err(no())
    );
    let upload = NewUpload {
        key: key("k"),
        upload_id: UploadId::new("u").unwrap(),
        initiated: UnixMillis(0),
        metadata: vec![],
    };
    assert_eq!(store.create_upload(&b, &upload).await, Err(no()));
    assert_eq!(
        store
            .list_uploads(
                &b,
                &UploadQuery {
                    max_uploads: 5,
                    ..UploadQuery::default()
                }
            )
            .await,
        Err(no())
    );
}

fn q(
    prefix: &str,
    delimiter: Option<&str>,
    start_after: Option<&str>,
    max_keys: usize,
) -> ListQuery {
    ListQuery {
        prefix: prefix.into(),
        delimiter: delimiter.map(Into::into),
        start_after: start_after.map(Into::into),
        max_keys,
    }
}

/// Keys and common prefixes of a page, prefixes marked with a trailing `*`.
fn names(page: &ObjectPage) -> Vec<String> {
    let mut out: Vec<String> = page.objects.iter().map(|o| o.key.to_string()).collect();
    out.extend(page.common_prefixes.iter().map(|p| format!("{p}*")));
    out.sort();
    out
}

pub(crate) async fn listing_follows_s3_order_with_any_delimiter(store: Arc<dyn MetaStore>) {
    let b = with_bucket(&store, "listing").await;
    let keys = [
        "a", "a/1", "a/2/x", "a/2/y", "a/3", "a-b", "a.b", "b", "b::c::d", "b::e", "é", "z/", "Z",
    ];
    for (i, k) in keys.iter().enumerate() {
        commit(&store, &b, k, &format!("v{i}")).await;
    }
    let all = store.list(&b, &q("", None, None, 1000)).await.unwrap();
    let order: Vec<&str> = all.objects.iter().map(|o| o.key.as_str()).collect();
    assert_eq!(
        order,
        [
            "Z", "a", "a-b", "a.b", "a/1", "a/2/x", "a/2/y", "a/3", "b", "b::c::d", "b::e", "z/",
            "é"
        ]
    );
    assert!(!all.is_truncated && all.next_start_after.is_none());
    assert_eq!(all.objects[0].etag, etag("\"v12\""));
    assert_eq!(all.objects[0].size, 3000);

    let root = store.list(&b, &q("", Some("/"), None, 1000)).await.unwrap();
    assert_eq!(
        names(&root),
        [
            "Z", "a", "a-b", "a.b", "a/*", "b", "b::c::d", "b::e", "z/*", "é"
        ]
    );
    let under_a = store
        .list(&b, &q("a/", Some("/"), None, 1000))
        .await
        .unwrap();
    assert_eq!(names(&under_a), ["a/1", "a/2/*", "a/3"]);
    let colons = store
        .list(&b, &q("b", Some("::"), None, 1000))
        .await
        .unwrap();
    assert_eq!(names(&colons), ["b", "b::*"]);
    let colons = store
        .list(&b, &q("b::", Some("::"), None, 1000))
        .await
        .unwrap();
    assert_eq!(names(&colons), ["b::c::*", "b::e"]);

    // Paging two entries at a time visits every entry once, prefixes included.
    let mut seen = Vec::new();
    let mut after = None;
    loop {
        let page = store
            .list(&b, &q("", Some("/"), after.as_deref(), 2))
            .await
            .unwrap();
        assert!(page.objects.len() + page.common_prefixes.len() <= 2);
        seen.extend(names(&page));
        if !page.is_truncated {
            assert!(page.next_start_after.is_none());
            break;
        }
        after = page.next_start_after.clone();
        assert!(after.is_some());
    }
    assert_eq!(seen, names(&root));

    // start-after inside a common prefix skips the prefix; outside the listed prefix, nothing.
    assert_eq!(
        names(
            &store
                .list(&b, &q("", Some("/"), Some("a/2/x"), 3))
                .await
                .unwrap()
        ),
        ["b", "b::c::d", "b::e"]
    );
    assert_eq!(
        names(
            &store
                .list(&b, &q("a/", None, Some("a/2/x"), 10))
                .await
                .unwrap()
        ),
        ["a/2/y", "a/3"]
    );
    assert!(names(&store.list(&b, &q("a/", None, Some("b"), 10)).await.unwrap()).is_empty());
    assert_eq!(
        names(&store.list(&b, &q("a/", None, Some("0"), 1)).await.unwrap()),
        ["a/1"]
    );
    let zero = store.list(&b, &q("", None, None, 0)).await.unwrap();
    assert_eq!(zero, ObjectPage::default());
    let none = store
        .list(&b, &q("nothing", Some("/"), None, 10))
        .await
        .unwrap();
    assert_eq!(none, ObjectPage::default());
}

pub(crate) async fn listing_pages_are_capped_at_1000(store: Arc<dyn MetaStore>) {
    let b = with_bucket(&store, "big").await;
    let mut tasks = tokio::task::JoinSet::new();
    for t in 0..16 {
        let store = store.clone();
        let b = b.clone();
        tasks.spawn(async move {
            for i in (t..1003).step_by(16) {
                store
                    .commit(
                        &b,
                        &key(&format!("k{i:05}")),
                        &version("v"),
                        &CommitCondition::Unconditional,
                    )
                    .await
                    .unwrap();
            }
        });
    }
    while let Some(r) = tasks.join_next().await {
        r.unwrap();
    }
    let page = store.list(&b, &q("", None, None, 5000)).await.unwrap();
    assert_eq!(page.objects.len(), MAX_PAGE);
    assert!(page.is_truncated);
    assert_eq!(page.next_start_after.as_deref(), Some("k00999"));
    let rest = store
        .list(&b, &q("", None, page.next_start_after.as_deref(), 5000))
        .await
        .unwrap();
    assert_eq!(names(&rest), ["k01000", "k01001", "k01002"]);
    assert!(!rest.is_truncated);
    assert_eq!(store.list_all(&b, "k00").await.unwrap().len(), 1000);
}

fn upload_ref(b: &BucketName, k: &str, id: &str) -> UploadRef {
    UploadRef {
        bucket: b.clone(),
        key: key(k),
        upload_id: UploadId::new(id).unwrap(),
    }
}

fn new_upload(k: &str, id: &str) -> NewUpload {
    NewUpload {
        key: key(k),
        upload_id: UploadId::new(id).unwrap(),
        initiated: UnixMillis(42),
        metadata: format!("meta {k}").into_bytes(),
    }
}

fn part(n: u32, tag: &str) -> Part {
    Part {
        part_number: n,
        manifest: format!("part {n} {tag}").into_bytes(),
        size: 5 << 20,
        etag: etag(&format!("\"{n}-{tag}\"")),
        last_modified: UnixMillis(100 + i64::from(n)),
    }
}

pub(crate) async fn multipart_uploads_complete_atomically(store: Arc<dyn MetaStore>) {
    let b = with_bucket(&store, "multipart").await;
    let u = upload_ref(&b, "big.bin", "up-1");
    store
        .create_upload(&b, &new_upload("big.bin", "up-1"))
        .await
        .unwrap();
    assert!(matches!(
        store
            .create_upload(&b, &new_upload("big.bin", "up-1"))
            .await,
        Err(MetaError::Duplicate { .. })
    ));
    assert_eq!(
        store.get_upload(&u).await.unwrap(),
        Some(Upload {
            bucket: b.clone(),
            upload: new_upload("big.bin", "up-1")
        })
    );
    for n in [3, 1, 2] {
        assert_eq!(store.put_part(&u, &part(n, "a")).await.unwrap(), None);
    }
    assert_eq!(
        store.put_part(&u, &part(2, "b")).await.unwrap(),
        Some(part(2, "a")),
        "the replaced part comes back"
    );
    assert!(matches!(
        store.put_part(&u, &part(0, "x")).await,
        Err(MetaError::InvalidArgument { .. })
    ));
    assert!(matches!(
        store.put_part(&u, &part(10_001, "x")).await,
        Err(MetaError::InvalidArgument { .. })
    ));

    let page = store
        .list_parts(
            &u,
            &PartQuery {
                after: None,
                max_parts: 2,
            },
        )
        .await
        .unwrap();
    assert_eq!(
        page,
        PartPage {
            parts: vec![part(1, "a"), part(2, "b")],
            is_truncated: true,
            next_after: Some(2)
        }
    );
    let page = store
        .list_parts(
            &u,
            &PartQuery {
                after: Some(2),
                max_parts: 2,
            },
        )
        .await
        .unwrap();
    assert_eq!(
        page,
        PartPage {
            parts: vec![part(3, "a")],
            is_truncated: false,
            next_after: None
        }
    );

    // A completion whose condition fails changes nothing: the upload stays.
    commit(&store, &b, "big.bin", "old").await;
    assert!(matches!(
        store
            .complete_upload(&u, &version("final"), &CommitCondition::IfAbsent)
            .await,
        Err(MetaError::AlreadyExists { .. })
    ));
    assert!(store.get_upload(&u).await.unwrap().is_some());

    let done = store
        .complete_upload(&u, &version("final"), &CommitCondition::Unconditional)
        .await
        .unwrap();
    assert_eq!(done.previous.unwrap().version, version("old"));
    assert_eq!(done.parts, vec![part(1, "a"), part(2, "b"), part(3, "a")]);
    assert_eq!(
        store
            .get(&b, &key("big.bin"))
            .await
            .unwrap()
            .unwrap()
            .version,
        version("final")
    );
    assert_eq!(store.get_upload(&u).await.unwrap(), None);
    let gone = MetaError::NoSuchUpload {
        bucket: b.clone(),
        key: key("big.bin"),
        upload_id: u.upload_id.clone(),
    };
    assert_eq!(
        store.put_part(&u, &part(4, "late")).await,
        Err(gone.clone())
    );
    assert_eq!(
        store
            .list_parts(
                &u,
                &PartQuery {
                    after: None,
                    max_parts: 10
                }
            )
            .await,
        Err(gone.clone())
    );
    assert_eq!(
        store
            .complete_upload(&u, &version("again"), &CommitCondition::Unconditional)
            .await,
        Err(gone.clone())
    );
    assert_eq!(store.abort_upload(&u).await, Err(gone));

    let u2 = upload_ref(&b, "other", "up-2");
    store
        .create_upload(&b, &new_upload("other", "up-2"))
        .await
        .unwrap();
    store.put_part(&u2, &part(7, "z")).await.unwrap();
    let aborted = store.abort_upload(&u2).await.unwrap();
    assert_eq!(
        aborted,
        Completed {
            previous: None,
            parts: vec![part(7, "z")]
        }
    );
    assert_eq!(store.get(&b, &key("other")).await.unwrap(), None);
}

pub(crate) async fn multipart_uploads_list_in_s3_order(store: Arc<dyn MetaStore>) {
    let b = with_bucket(&store, "uploads").await;
    for (k, id) in [
        ("a/x", "2"),
        ("a/x", "1"),
        ("a/y/z", "1"),
        ("b", "9"),
        ("b", "10"),
        ("c", "1"),
    ] {
        store.create_upload(&b, &new_upload(k, id)).await.unwrap();
    }
    let list = |query: UploadQuery| {
        let store = store.clone();
        let b = b.clone();
        async move {
            let page = store.list_uploads(&b, &query).await.unwrap();
            let mut out: Vec<String> = page
                .uploads
                .iter()
                .map(|u| format!("{}#{}", u.upload.key, u.upload.upload_id))
                .collect();
            out.extend(page.common_prefixes.iter().map(|p| format!("{p}*")));
            (
                out,
                page.is_truncated,
                page.next_key_marker,
                page.next_upload_id_marker,
            )
        }
    };
    let all = list(UploadQuery {
        max_uploads: 100,
        ..UploadQuery::default()
    })
    .await;
    assert_eq!(all.0, ["a/x#1", "a/x#2", "a/y/z#1", "b#10", "b#9", "c#1"]);
    let page = list(UploadQuery {
        max_uploads: 3,
        ..UploadQuery::default()
    })
    .await;
    assert_eq!(
        page,
        (
            vec!["a/x#1".into(), "a/x#2".into(), "a/y/z#1".into()],
            true,
            Some("a/y/z".into()),
            Some("1".into())
        )
    );
    let page = list(UploadQuery {
        key_marker: Some("a/x".into()),
        upload_id_marker: Some("1".into()),
        max_uploads: 2,
        ..UploadQuery::default()
    })
    .await;
    assert_eq!(
        page,
        (
            vec!["a/x#2".into(), "a/y/z#1".into()],
            true,
            Some("a/y/z".into()),
            Some("1".into())
        )
    );
    let page = list(UploadQuery {
        key_marker: Some("a/x".into()),
        max_uploads: 10,
        ..UploadQuery::default()
    })
    .await;
    assert_eq!(page.0, ["a/y/z#1", "b#10", "b#9", "c#1"]);
    let page = list(UploadQuery {
        delimiter: Some("/".into()),
        max_uploads: 2,
        ..UploadQuery::default()
    })
    .await;
    assert_eq!(
        page,
        (
            vec!["b#10".into(), "a/*".into()],
            true,
            Some("b".into()),
            Some("10".into())
        )
    );
    let page = list(UploadQuery {
        prefix: "a/".into(),
        delimiter: Some("/".into()),
        max_uploads: 10,
        ..UploadQuery::default()
    })
    .await;
    assert_eq!(page.0, ["a/x#1", "a/x#2", "a/y/*"]);
    let page = list(UploadQuery {
        delimiter: Some("/".into()),
        key_marker: Some("a/".into()),
        max_uploads: 10,
        ..UploadQuery::default()
    })
    .await;
    assert_eq!(page.0, ["b#10", "b#9", "c#1"]);
}

pub(crate) async fn access_keys_and_grants(store: Arc<dyn MetaStore>) {
    let b1 = with_bucket(&store, "granted").await;
    let b2 = with_bucket(&store, "also").await;
    let ak = |id: &str| AccessKey {
        id: AccessKeyId::new(id).unwrap(),
        sealed_secret: format!("sealed {id}").into_bytes(),
        owner: "alice".into(),
        created: UnixMillis(7),
        enabled: id != "AKOFF",
    };
    for id in ["AKZ", "AKA", "AKOFF"] {
        store.create_access_key(&ak(id)).await.unwrap();
    }
    assert!(matches!(
        store.create_access_key(&ak("AKA")).await,
        Err(MetaError::Duplicate { .. })
    ));
    assert_eq!(
        store.get_access_key(&ak("AKOFF").id).await.unwrap(),
        Some(ak("AKOFF"))
    );
    let ids: Vec<String> = store
        .list_access_keys()
        .await
        .unwrap()
        .into_iter()
        .map(|k| k.id.to_string())
        .collect();
    assert_eq!(ids, ["AKA", "AKOFF", "AKZ"]);

    let rw = Permissions {
        read: true,
        write: true,
        admin: false,
    };
    let ro = Permissions {
        read: true,
        ..Permissions::default()
    };
    store.set_grant(&ak("AKA").id, &b1, rw).await.unwrap();
    store.set_grant(&ak("AKA").id, &b2, ro).await.unwrap();
    store
        .set_grant(&ak("AKA").id, &b1, Permissions { admin: true, ..rw })
        .await
        .unwrap();
    assert_eq!(
        store.list_grants(&ak("AKA").id).await.unwrap(),
        vec![
            Grant {
                bucket: b2.clone(),
                permissions: ro
            },
            Grant {
                bucket: b1.clone(),
                permissions: Permissions { admin: true, ..rw }
            }
        ]
    );
    store
        .set_grant(&ak("AKA").id, &b2, Permissions::default())
        .await
        .unwrap();
    assert_eq!(store.list_grants(&ak("AKA").id).await.unwrap().len(), 1);
    assert!(matches!(
        store
            .set_grant(&AccessKeyId::new("AKNONE").unwrap(), &b1, ro)
            .await,
        Err(MetaError::NotFound {
            what: "access key",
            ..
        })
    ));
    assert!(matches!(
        store
            .set_grant(&ak("AKA").id, &bucket_name("nobucket"), ro)
            .await,
        Err(MetaError::NoSuchBucket { .. })
    ));

    // Deleting the bucket removes its grants; deleting the key removes the rest.
    store.set_grant(&ak("AKZ").id, &b2, ro).await.unwrap();
    store.delete_bucket(&b2).await.unwrap();
    assert!(store.list_grants(&ak("AKZ").id).await.unwrap().is_empty());
    assert!(store.delete_access_key(&ak("AKA").id).await.unwrap());
    assert!(!store.delete_access_key(&ak("AKA").id).await.unwrap());
    assert!(store.list_grants(&ak("AKA").id).await.unwrap().is_empty());
    assert_eq!(store.get_access_key(&ak("AKA").id).await.unwrap(), None);
}

pub(crate) async fn provider_registry(store: Arc<dyn MetaStore>) {
    let rec = |name: &str, state: ProviderState| {
        let generation = match state {
            ProviderState::Active => 1,
            ProviderState::Draining => 2,
            ProviderState::Retired => 3,
        };
        let mut labels = StringMap::new();
        labels.insert("jurisdiction".into(), "FR".into());
        labels.insert("operator".into(), format!("op-{name}"));
        ProviderRecord {
            name: ProviderName::new(name).unwrap(),
            labels,
            state,
            config: format!("cfg {name}").into_bytes(),
            generation,
        }
    };
    store
        .put_provider(&rec("p2", ProviderState::Active))
        .await
        .unwrap();
    store
        .put_provider(&rec("p1", ProviderState::Active))
        .await
        .unwrap();
    store
        .put_provider(&rec("p2", ProviderState::Draining))
        .await
        .unwrap();
    assert_eq!(
        store
            .get_provider(&rec("p2", ProviderState::Active).name)
            .await
            .unwrap(),
        Some(rec("p2", ProviderState::Draining))
    );
    assert_eq!(
        store.list_providers().await.unwrap(),
        vec![
            rec("p1", ProviderState::Active),
            rec("p2", ProviderState::Draining)
        ]
    );
    store
        .put_provider(&rec("p1", ProviderState::Retired))
        .await
        .unwrap();
    assert_eq!(
        store
            .get_provider(&rec("p1", ProviderState::Active).name)
            .await
            .unwrap()
            .unwrap()
            .state,
        ProviderState::Retired
    );
    assert!(
        store
            .delete_provider(&rec("p1", ProviderState::Active).name)
            .await
            .unwrap()
    );
    assert!(
        !store
            .delete_provider(&rec("p1", ProviderState::Active).name)
            .await
            .unwrap()
    );
    assert_eq!(store.list_providers().await.unwrap().len(), 1);
}

pub(crate) async fn gc_queue_pages_oldest_first(store: Arc<dyn MetaStore>) {
    let blob = |p: &str, b: &str| GcBlob {
        provider: ProviderName::new(p).unwrap(),
        blob: b.into(),
    };
    store
        .enqueue_gc(&[blob("p2", "b"), blob("p1", "z")], UnixMillis(20))
        .await
        .unwrap();
    store
        .enqueue_gc(&[blob("p1", "a"), blob("p2", "b")], UnixMillis(10))
        .await
        .unwrap();
    store
        .enqueue_gc(&[blob("p1", "c")], UnixMillis(30))
        .await
        .unwrap();
    let first = store.peek_gc(None, 2).await.unwrap();
    assert_eq!(
        first,
        vec![
            GcEntry {
                blob: blob("p1", "a"),
                enqueued: UnixMillis(10)
            },
            GcEntry {
                blob: blob("p1", "z"),
                enqueued: UnixMillis(20)
            },
        ]
    );
    let next = store.peek_gc(first.last(), 10).await.unwrap();
    assert_eq!(
        next.iter().map(|e| e.blob.clone()).collect::<Vec<_>>(),
        vec![blob("p2", "b"), blob("p1", "c")],
        "re-enqueueing keeps the first time"
    );
    assert_eq!(
        store
            .remove_gc(&[blob("p1", "a"), blob("p9", "none")])
            .await
            .unwrap(),
        1
    );
    assert_eq!(store.peek_gc(None, 10).await.unwrap().len(), 3);
}

fn repair_item(p: &str, b: &str, k: &str, reason: &str) -> RepairItem {
    RepairItem {
        blob: GcBlob {
            provider: ProviderName::new(p).unwrap(),
            blob: b.into(),
        },
        bucket: bucket_name("repairs"),
        key: key(k),
        version_id: VersionId::new(format!("v-{k}")).unwrap(),
        reason: reason.into(),
    }
}

fn repair_blob(p: &str, b: &str) -> GcBlob {
    GcBlob {
        provider: ProviderName::new(p).unwrap(),
        blob: b.into(),
    }
}

fn repair_blobs(entries: &[RepairEntry]) -> Vec<GcBlob> {
    entries.iter().map(|e| e.item.blob.clone()).collect()
}

pub(crate) async fn repair_queue_pages_oldest_first(store: Arc<dyn MetaStore>) {
    assert_eq!(store.count_repair().await.unwrap(), 0);
    assert_eq!(store.peek_repair(None, 10).await.unwrap(), Vec::new());
    store.enqueue_repair(&[], UnixMillis(1)).await.unwrap();
    store
        .enqueue_repair(
            &[
                repair_item("p2", "b", "k/b", "missing"),
                repair_item("p1", "z", "k/z", "unwritten"),
            ],
            UnixMillis(20),
        )
        .await
        .unwrap();
    // (p2, b) again, later, with another reason and object: the first record stands. Within
    // one call, the first of two items for one blob wins.
    store
        .enqueue_repair(
            &[
                repair_item("p1", "é", "k/é", "corrupt"),
                repair_item("p2", "b", "other", "corrupt"),
                repair_item("p1", "a", "k/a", "missing"),
                repair_item("p1", "a", "k/a2", "corrupt"),
            ],
            UnixMillis(10),
        )
        .await
        .unwrap();
    store
        .enqueue_repair(&[repair_item("p1", "c", "k/c", "corrupt")], UnixMillis(30))
        .await
        .unwrap();
    assert_eq!(store.count_repair().await.unwrap(), 5);

    let all = store.peek_repair(None, 100).await.unwrap();
    assert_eq!(
        all,
        vec![
            RepairEntry {
                item: repair_item("p1", "a", "k/a", "missing"),
                enqueued: UnixMillis(10),
            },
            // Blob names sort by UTF-8 bytes: "é" (0xC3 0xA9) after any ASCII name.
            RepairEntry {
                item: repair_item("p1", "é", "k/é", "corrupt"),
                enqueued: UnixMillis(10),
            },
            RepairEntry {
                item: repair_item("p1", "z", "k/z", "unwritten"),
                enqueued: UnixMillis(20),
            },
            RepairEntry {
                item: repair_item("p2", "b", "k/b", "missing"),
                enqueued: UnixMillis(20),
            },
            RepairEntry {
                item: repair_item("p1", "c", "k/c", "corrupt"),
                enqueued: UnixMillis(30),
            },
        ],
        "oldest first, ties by provider then blob; re-enqueueing keeps the first time and reason"
    );

    // Paging with `after`, two at a time, visits every entry once, in order.
    let mut paged = Vec::new();
    let mut after: Option<RepairEntry> = None;
    loop {
        let page = store.peek_repair(after.as_ref(), 2).await.unwrap();
        assert!(page.len() <= 2);
        if page.is_empty() {
            break;
        }
        after = page.last().cloned();
        paged.extend(page);
    }
    assert_eq!(paged, all);
    assert_eq!(store.peek_repair(None, 0).await.unwrap(), Vec::new());
    // `after` need not be queued any more: it is only a position.
    let mut gone = all[1].clone();
    gone.item.blob.blob = "m".into();
    assert_eq!(
        repair_blobs(&store.peek_repair(Some(&gone), 10).await.unwrap()),
        repair_blobs(&all[1..])
    );

    // A reason with NUL is refused, and nothing of the call is queued.
    let err = store
        .enqueue_repair(
            &[
                repair_item("p3", "ok", "k/ok", "missing"),
                repair_item("p3", "bad", "k/bad", "bad\0reason"),
            ],
            UnixMillis(40),
        )
        .await
        .unwrap_err();
    assert!(matches!(err, MetaError::InvalidArgument { .. }), "{err:?}");
    assert_eq!(store.count_repair().await.unwrap(), 5);

    assert_eq!(
        store
            .remove_repair(&[
                repair_blob("p1", "a"),
                repair_blob("p1", "a"),
                repair_blob("p9", "none"),
                repair_blob("p2", "b"),
            ])
            .await
            .unwrap(),
        2
    );
    assert_eq!(store.remove_repair(&[]).await.unwrap(), 0);
    assert_eq!(store.count_repair().await.unwrap(), 3);
    assert_eq!(
        repair_blobs(&store.peek_repair(None, 10).await.unwrap()),
        vec![
            repair_blob("p1", "é"),
            repair_blob("p1", "z"),
            repair_blob("p1", "c")
        ]
    );
    // Removed entries can be queued again, with a new time and reason.
    store
        .enqueue_repair(&[repair_item("p1", "a", "k/a", "corrupt")], UnixMillis(50))
        .await
        .unwrap();
    assert_eq!(
        store.peek_repair(None, 10).await.unwrap().last(),
        Some(&RepairEntry {
            item: repair_item("p1", "a", "k/a", "corrupt"),
            enqueued: UnixMillis(50),
        })
    );
    // The repair queue and the GC queue are separate.
    assert_eq!(store.peek_gc(None, 10).await.unwrap(), Vec::new());
    assert_eq!(store.remove_gc(&[repair_blob("p1", "a")]).await.unwrap(), 0);
    assert_eq!(store.count_repair().await.unwrap(), 4);
}

pub(crate) async fn repair_entries_do_not_hold_buckets(store: Arc<dyn MetaStore>) {
    let b = with_bucket(&store, "repairs").await;
    commit(&store, &b, "k/a", "v-k/a").await;
    store
        .enqueue_repair(&[repair_item("p1", "a", "k/a", "missing")], UnixMillis(10))
        .await
        .unwrap();
    assert!(matches!(
        store.delete_bucket(&b).await,
        Err(MetaError::BucketNotEmpty { .. })
    ));
    store
        .delete(&b, &key("k/a"), &DeleteCondition::Unconditional)
        .await
        .unwrap();
    // Only objects and uploads keep a bucket: its repair entries do not, and stay queued.
    store.delete_bucket(&b).await.unwrap();
    assert_eq!(store.get_bucket(&b).await.unwrap(), None);
    assert_eq!(
        store.peek_repair(None, 10).await.unwrap(),
        vec![RepairEntry {
            item: repair_item("p1", "a", "k/a", "missing"),
            enqueued: UnixMillis(10),
        }]
    );
}

/// The embedded store keeps its repair queue across a close and reopen.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn embedded_repair_queue_survives_reopening() {
    let dir = tempfile::tempdir().unwrap();
    let open = || SqlMetaStore::open_embedded(EmbeddedOptions::new(dir.path()));
    let store = open().await.unwrap();
    store
        .enqueue_repair(
            &[
                repair_item("p1", "a", "k/a", "missing"),
                repair_item("p2", "b", "k/b", "corrupt"),
            ],
            UnixMillis(10),
        )
        .await
        .unwrap();
    let before = store.peek_repair(None, 10).await.unwrap();
    store.close().await;
    drop(store);

    let store = open().await.unwrap();
    store.check_integrity().await.unwrap();
    assert_eq!(store.count_repair().await.unwrap(), 2);
    assert_eq!(store.peek_repair(None, 10).await.unwrap(), before);
    assert_eq!(
        store
            .remove_repair(&[repair_blob("p1", "a")])
            .await
            .unwrap(),
        1
    );
    store.close().await;
    drop(store);

    let store = open().await.unwrap();
    assert_eq!(
        repair_blobs(&store.peek_repair(None, 10).await.unwrap()),
        vec![repair_blob("p2", "b")]
    );
    store.close().await;
}

/// Rewinds a database to schema version 1 (as written by a build before the repair queue and
/// provider generations), keeping its data.
async fn rewind_to_v1(conn: &mut sqlx::AnyConnection) {
    use sqlx::Executor;
    for sql in [
        "DROP TABLE repair_queue",
        "ALTER TABLE providers DROP COLUMN generation",
        "DROP TABLE leases",
        "ALTER TABLE buckets DROP COLUMN settings",
        "DELETE FROM archipel_schema WHERE version > 1",
    ] {
        conn.execute(sql).await.unwrap();
    }
}

async fn check_upgraded(store: &SqlMetaStore) {
    store.check_integrity().await.unwrap();
    let b = bucket_name("upgraded");
    assert_eq!(
        store
            .get(&b, &key("k"))
            .await
            .unwrap()
            .map(|o| o.version.version_id),
        Some(VersionId::new("v1").unwrap()),
        "data written before the upgrade is kept"
    );
    store
        .enqueue_repair(&[repair_item("p1", "a", "k/a", "missing")], UnixMillis(10))
        .await
        .unwrap();
    assert_eq!(store.count_repair().await.unwrap(), 1);
    let p = ProviderRecord {
        name: ProviderName::new("p9").unwrap(),
        labels: StringMap::new(),
        state: ProviderState::Active,
        config: Vec::new(),
        generation: 7,
    };
    store.put_provider(&p).await.unwrap();
    assert_eq!(store.get_provider(&p.name).await.unwrap(), Some(p));
}

/// Writes a bucket and an object, for [`check_upgraded`].
async fn before_upgrade(store: &Arc<SqlMetaStore>) {
    let dyn_store: Arc<dyn MetaStore> = store.clone();
    let b = with_bucket(&dyn_store, "upgraded").await;
    commit(&dyn_store, &b, "k", "v1").await;
}

/// A version-1 embedded database is migrated to the repair queue's schema at open.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn embedded_v1_database_gains_the_repair_queue() {
    use sqlx::Connection;
    let dir = tempfile::tempdir().unwrap();
    let open = || SqlMetaStore::open_embedded(EmbeddedOptions::new(dir.path()));
    let store = Arc::new(open().await.unwrap());
    before_upgrade(&store).await;
    store.close().await;
    drop(store);

    sqlx::any::install_default_drivers();
    let url = format!("sqlite://{}", dir.path().join("meta.sqlite3").display());
    let mut conn = sqlx::AnyConnection::connect(&url).await.unwrap();
    rewind_to_v1(&mut conn).await;
    conn.close().await.unwrap();

    let store = open().await.unwrap();
    check_upgraded(&store).await;
    store.close().await;
}

/// A version-1 PostgreSQL schema is migrated to the repair queue's schema at connect.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_v1_database_gains_the_repair_queue() {
    use sqlx::{Connection, Executor};
    let Some(url) = crate::pg_url() else { return };
    let schema = crate::fresh_schema("up");
    let store = Arc::new(crate::postgres_in(&url, &schema).await);
    before_upgrade(&store).await;
    store.close().await;
    drop(store);

    let mut conn = sqlx::AnyConnection::connect(&url).await.unwrap();
    conn.execute(sqlx::AssertSqlSafe(format!(
        "SET search_path TO \"{schema}\""
    )))
    .await
    .unwrap();
    rewind_to_v1(&mut conn).await;
    conn.close().await.unwrap();

    let store = crate::postgres_in(&url, &schema).await;
    check_upgraded(&store).await;
    store.close().await;
    crate::drop_schema(&url, &schema).await;
}

pub(crate) async fn checkpoints_are_replaced_and_deleted(store: Arc<dyn MetaStore>) {
    let name = CheckpointName::new("drain:p1").unwrap();
    assert_eq!(store.get_checkpoint(&name).await.unwrap(), None);
    store.put_checkpoint(&name, b"cursor=1").await.unwrap();
    store.put_checkpoint(&name, b"cursor=2").await.unwrap();
    assert_eq!(
        store.get_checkpoint(&name).await.unwrap().as_deref(),
        Some(&b"cursor=2"[..])
    );
    store.put_checkpoint(&name, b"").await.unwrap();
    assert_eq!(store.get_checkpoint(&name).await.unwrap(), Some(Vec::new()));
    assert!(store.delete_checkpoint(&name).await.unwrap());
    assert!(!store.delete_checkpoint(&name).await.unwrap());
}

pub(crate) async fn checkpoints_list_by_prefix_in_pages(store: Arc<dyn MetaStore>) {
    for n in ["job:b", "job:a", "job:c", "jobs", "drain:p1", "job"] {
        store
            .put_checkpoint(&CheckpointName::new(n).unwrap(), n.as_bytes())
            .await
            .unwrap();
    }
    let names = |v: &[(CheckpointName, Vec<u8>)]| {
        v.iter()
            .map(|(n, d)| {
                assert_eq!(n.as_str().as_bytes(), d.as_slice());
                n.as_str().to_string()
            })
            .collect::<Vec<_>>()
    };
    let all = store.list_checkpoints("job:", None, 100).await.unwrap();
    assert_eq!(names(&all), ["job:a", "job:b", "job:c"]);
    let first = store.list_checkpoints("job:", None, 2).await.unwrap();
    assert_eq!(names(&first), ["job:a", "job:b"]);
    let rest = store
        .list_checkpoints("job:", Some(&first[1].0), 2)
        .await
        .unwrap();
    assert_eq!(names(&rest), ["job:c"]);
    assert!(
        store
            .list_checkpoints("nothing:", None, 10)
            .await
            .unwrap()
            .is_empty()
    );
}

pub(crate) async fn leases_have_one_holder_until_they_end(store: Arc<dyn MetaStore>) {
    let l = CheckpointName::new("job:j1").unwrap();
    assert!(
        store
            .take_lease(&l, "a", UnixMillis(100), UnixMillis(200))
            .await
            .unwrap()
    );
    // Held by a: b is refused until it ends; a renews.
    assert!(
        !store
            .take_lease(&l, "b", UnixMillis(150), UnixMillis(250))
            .await
            .unwrap()
    );
    assert!(
        store
            .take_lease(&l, "a", UnixMillis(150), UnixMillis(300))
            .await
            .unwrap()
    );
    assert!(
        !store
            .take_lease(&l, "b", UnixMillis(250), UnixMillis(400))
            .await
            .unwrap()
    );
    // Ended: b takes it over, and a cannot release or renew it any more.
    assert!(
        store
            .take_lease(&l, "b", UnixMillis(301), UnixMillis(500))
            .await
            .unwrap()
    );
    assert!(!store.release_lease(&l, "a").await.unwrap());
    assert!(
        !store
            .take_lease(&l, "a", UnixMillis(310), UnixMillis(600))
            .await
            .unwrap()
    );
    assert!(store.release_lease(&l, "b").await.unwrap());
    assert!(
        store
            .take_lease(&l, "a", UnixMillis(320), UnixMillis(600))
            .await
            .unwrap()
    );
}

pub(crate) async fn bucket_settings_are_kept_with_the_bucket(store: Arc<dyn MetaStore>) {
    let b = with_bucket(&store, "settings").await;
    assert!(
        store
            .get_bucket(&b)
            .await
            .unwrap()
            .unwrap()
            .settings
            .is_empty()
    );
    store.set_bucket_settings(&b, b"{\"v\":1}").await.unwrap();
    let got = store.get_bucket(&b).await.unwrap().unwrap();
    assert_eq!(got.settings, b"{\"v\":1}");
    assert_eq!(
        got.policy,
        new_bucket("settings").policy,
        "the policy is untouched"
    );
    assert_eq!(
        store.list_buckets().await.unwrap()[0].settings,
        b"{\"v\":1}"
    );
    assert!(matches!(
        store
            .set_bucket_settings(&bucket_name("nope"), b"x")
            .await
            .unwrap_err(),
        MetaError::NoSuchBucket { .. }
    ));
}

/// A walk over the index with `list_versions` sees every current version once, in byte order
/// of the keys, with its manifest — delete markers included, deleted keys not — in pages.
pub(crate) async fn version_walks_see_every_current_version_in_key_order(
    store: Arc<dyn MetaStore>,
) {
    let b = with_bucket(&store, "walk").await;
    let keys = ["a", "a/b", "b", "é", "z", "\u{10348}", "m", "m0", "m/"];
    for (i, k) in keys.iter().enumerate() {
        commit(&store, &b, k, &format!("v{i}")).await;
    }
    store
        .commit(
            &b,
            &key("m"),
            &delete_marker("dm"),
            &CommitCondition::Unconditional,
        )
        .await
        .unwrap();
    store
        .delete(&b, &key("z"), &DeleteCondition::Unconditional)
        .await
        .unwrap();
    let mut seen = Vec::new();
    let mut after: Option<ObjectKey> = None;
    loop {
        let page = store.list_versions(&b, after.as_ref(), 3).await.unwrap();
        assert!(page.len() <= 3);
        let Some(last) = page.last() else { break };
        after = Some(last.key.clone());
        seen.extend(page);
    }
    let mut expected: Vec<(String, NewVersion)> = keys
        .iter()
        .enumerate()
        .filter(|(_, k)| **k != "z")
        .map(|(i, k)| {
            let v = if *k == "m" {
                delete_marker("dm")
            } else {
                version(&format!("v{i}"))
            };
            (k.to_string(), v)
        })
        .collect();
    expected.sort_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
    let got: Vec<(String, NewVersion)> = seen
        .into_iter()
        .map(|v| {
            assert_eq!(v.bucket, b);
            (v.key.as_str().to_string(), v.version)
        })
        .collect();
    assert_eq!(got, expected);
    assert!(matches!(
        store
            .list_versions(&bucket_name("no-such-walk"), None, 10)
            .await,
        Err(MetaError::NoSuchBucket { .. })
    ));
}
