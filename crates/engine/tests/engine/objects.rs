//! 4+2 over six providers: every object shape reads back byte-identical with any two
//! providers gone, and with three gone the read fails with a typed error, never wrong bytes.

use archipel_engine::{BodyCheck, ByteRange, EngineError, PutOptions};

use crate::harness::{Vault, body, pattern, read_all, read_range};

const S: usize = archipel_codec::DEFAULT_STRIPE_SIZE;
const MIB: usize = 1024 * 1024;

/// (key, bytes) of every shape the issue names; the multipart one is built separately.
fn shapes() -> Vec<(String, Vec<u8>)> {
    [0, 1, S - 1, S, S + 1, 100 * MIB]
        .iter()
        .enumerate()
        .map(|(i, &n)| (format!("obj/{n}"), pattern(i as u64, n)))
        .collect()
}

async fn put_all(v: &Vault) -> Vec<(String, Vec<u8>)> {
    v.engine.create_bucket("bkt", "owner", None).await.unwrap();
    let mut objects = shapes();
    for (key, data) in &objects {
        let out = v
            .engine
            .put_object("bkt", key, body(data, 100_000), PutOptions::default())
            .await
            .unwrap();
        assert_eq!(out.size, data.len() as u64);
        assert_eq!(out.unwritten_shards, 0);
    }
    // Multipart: three parts, the boundaries off the stripe grid.
    let parts = [
        pattern(10, MIB + 17),
        pattern(11, MIB + S / 3),
        pattern(12, 5),
    ];
    let id = v
        .engine
        .create_upload("bkt", "obj/multipart", &PutOptions::default())
        .await
        .unwrap();
    let mut listed = Vec::new();
    for (i, p) in parts.iter().enumerate() {
        let n = i as u32 + 1;
        let out = v
            .engine
            .upload_part(
                "bkt",
                "obj/multipart",
                &id,
                n,
                body(p, 65_536),
                BodyCheck {
                    expected_len: Some(p.len() as u64),
                    ..BodyCheck::default()
                },
            )
            .await
            .unwrap();
        listed.push((n, out.etag));
    }
    let done = v
        .engine
        .complete_upload("bkt", "obj/multipart", &id, &listed, None)
        .await
        .unwrap();
    assert!(done.etag.ends_with("-3"), "{}", done.etag);
    objects.push(("obj/multipart".into(), parts.concat()));
    objects
}

fn pairs(n: usize) -> Vec<Vec<usize>> {
    let mut out = Vec::new();
    for a in 0..n {
        for b in a + 1..n {
            out.push(vec![a, b]);
        }
    }
    out
}

fn triples(n: usize) -> Vec<Vec<usize>> {
    let mut out = Vec::new();
    for a in 0..n {
        for b in a + 1..n {
            for c in b + 1..n {
                out.push(vec![a, b, c]);
            }
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_object_survives_every_two_providers_down() {
    let v = Vault::new(6).await;
    let objects = put_all(&v).await;
    let big = &objects
        .iter()
        .find(|(k, _)| k == "obj/104857600")
        .unwrap()
        .1;
    let multi = &objects
        .iter()
        .find(|(k, _)| k == "obj/multipart")
        .unwrap()
        .1;
    let mut rng = fastrand::Rng::with_seed(5);
    for down in pairs(6) {
        for &i in &down {
            v.faults[i].go_dark();
        }
        for (key, data) in &objects {
            let got = read_all(&v.engine, "bkt", key)
                .await
                .unwrap_or_else(|e| panic!("{key} with {down:?} down: {e}"));
            assert!(got == *data, "{key} with {down:?} down: wrong bytes");
        }
        // Ranged reads across stripes and part boundaries.
        for (key, data) in [("obj/104857600", big), ("obj/multipart", multi)] {
            for _ in 0..3 {
                let a = rng.u64(..data.len() as u64);
                let b = rng.u64(a..data.len() as u64);
                let got = read_range(
                    &v.engine,
                    "bkt",
                    key,
                    Some(ByteRange::FromTo {
                        first: a,
                        last: Some(b),
                    }),
                )
                .await
                .unwrap();
                assert!(
                    got == data[a as usize..=b as usize],
                    "{key} {a}..={b} with {down:?} down"
                );
            }
        }
        for &i in &down {
            v.faults[i].come_back();
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_providers_down_is_a_typed_error_never_wrong_bytes() {
    let v = Vault::new(6).await;
    let objects = put_all(&v).await;
    for down in triples(6) {
        for &i in &down {
            v.faults[i].go_dark();
        }
        for (key, data) in &objects {
            match read_all(&v.engine, "bkt", key).await {
                // An empty object needs no shard; anything returned must be right.
                Ok(got) => assert!(data.is_empty() && got.is_empty(), "{key} with {down:?}"),
                Err(EngineError::Unavailable { needed, usable, .. }) => {
                    assert_eq!(needed, 4);
                    assert!(usable < 4);
                }
                Err(e) => panic!("{key} with {down:?} down: unexpected error {e}"),
            }
        }
        for &i in &down {
            v.faults[i].come_back();
        }
    }
}

#[tokio::test]
async fn head_and_ranges_follow_s3_semantics() {
    let v = Vault::new(6).await;
    v.engine.create_bucket("bkt", "owner", None).await.unwrap();
    let data = pattern(1, 3 * S + 5);
    let mut opts = PutOptions {
        content_type: Some("text/plain".into()),
        ..PutOptions::default()
    };
    opts.user_metadata.insert("colour".into(), "blue".into());
    opts.headers
        .push(("cache-control".into(), "no-cache".into()));
    let put = v
        .engine
        .put_object("bkt", "k", body(&data, 4096), opts)
        .await
        .unwrap();
    let md5 = {
        use md5::{Digest, Md5};
        Md5::digest(&data)
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect::<String>()
    };
    assert_eq!(put.etag, md5, "a single PUT's etag is its MD5");
    let info = v.engine.head_object("bkt", "k").await.unwrap();
    assert_eq!(info.size, data.len() as u64);
    assert_eq!(info.etag, md5);
    assert_eq!(info.content_type.as_deref(), Some("text/plain"));
    assert_eq!(
        info.user_metadata.get("colour").map(String::as_str),
        Some("blue")
    );
    assert_eq!(
        info.headers,
        vec![("cache-control".to_string(), "no-cache".to_string())]
    );
    assert_eq!(info.parts, 0);

    let n = data.len() as u64;
    for (r, want) in [
        (
            ByteRange::FromTo {
                first: 0,
                last: Some(0),
            },
            0..1,
        ),
        (
            ByteRange::FromTo {
                first: 5,
                last: None,
            },
            5..n,
        ),
        (
            ByteRange::FromTo {
                first: n - 1,
                last: Some(n + 100),
            },
            n - 1..n,
        ),
        (ByteRange::Suffix(7), n - 7..n),
        (ByteRange::Suffix(n + 7), 0..n),
        (
            ByteRange::FromTo {
                first: S as u64 - 1,
                last: Some(2 * S as u64),
            },
            S as u64 - 1..2 * S as u64 + 1,
        ),
    ] {
        let got = read_range(&v.engine, "bkt", "k", Some(r)).await.unwrap();
        assert!(got == data[want.start as usize..want.end as usize], "{r}");
    }
    for r in [
        ByteRange::FromTo {
            first: n,
            last: None,
        },
        ByteRange::FromTo {
            first: 9,
            last: Some(3),
        },
        ByteRange::Suffix(0),
    ] {
        assert!(
            matches!(
                v.engine.get_object("bkt", "k", Some(r)).await,
                Err(EngineError::InvalidRange { .. })
            ),
            "{r}"
        );
    }
    // Missing things are typed.
    assert!(matches!(
        v.engine.head_object("bkt", "nope").await,
        Err(EngineError::NoSuchKey { .. })
    ));
    assert!(matches!(
        v.engine.get_object("nob", "k", None).await,
        Err(EngineError::NoSuchBucket { .. })
    ));
    assert!(matches!(
        v.engine
            .put_object("nob", "k", body(b"x", 1), PutOptions::default())
            .await,
        Err(EngineError::NoSuchBucket { .. })
    ));
}

#[tokio::test]
async fn conditional_puts_decide_one_winner_and_leave_nothing_behind() {
    let v = Vault::new(6).await;
    v.engine.create_bucket("bkt", "owner", None).await.unwrap();
    let if_absent = || PutOptions {
        condition: Some(archipel_meta::CommitCondition::IfAbsent),
        ..PutOptions::default()
    };
    let first = v
        .engine
        .put_object("bkt", "k", body(b"first", 2), if_absent())
        .await
        .unwrap();
    let second = v
        .engine
        .put_object("bkt", "k", body(b"second", 2), if_absent())
        .await;
    assert!(
        matches!(second, Err(EngineError::PreconditionFailed(_))),
        "{second:?}"
    );
    let if_match = |etag: &str| PutOptions {
        condition: Some(archipel_meta::CommitCondition::IfMatch(
            archipel_meta::ETag::new(etag).unwrap(),
        )),
        ..PutOptions::default()
    };
    let wrong = v
        .engine
        .put_object("bkt", "k", body(b"third", 2), if_match("0000"))
        .await;
    assert!(matches!(wrong, Err(EngineError::PreconditionFailed(_))));
    v.engine
        .put_object("bkt", "k", body(b"fourth", 2), if_match(&first.etag))
        .await
        .unwrap();
    assert_eq!(read_all(&v.engine, "bkt", "k").await.unwrap(), b"fourth");
    let r = v.engine.gc_once().await.unwrap();
    assert_eq!(r.failed, 0);
    // Only the current version's six shards remain: the losers' and the first version's went.
    assert_eq!(v.total_blobs().await, 6);
}

#[tokio::test]
async fn if_exists_puts_and_conditional_deletes_are_decided_by_meta() {
    use archipel_meta::{CommitCondition, DeleteCondition, ETag};
    let v = Vault::new(6).await;
    v.engine.create_bucket("bkt", "owner", None).await.unwrap();
    let if_exists = || PutOptions {
        condition: Some(CommitCondition::IfExists),
        ..PutOptions::default()
    };
    // `If-Match: *` on a missing key: refused, and its shards go to the GC.
    let refused = v
        .engine
        .put_object("bkt", "k", body(b"nothing to replace", 2), if_exists())
        .await;
    assert!(
        matches!(refused, Err(EngineError::PreconditionFailed(_))),
        "{refused:?}"
    );
    assert!(matches!(
        v.engine.head_object("bkt", "k").await,
        Err(EngineError::NoSuchKey { .. })
    ));
    let first = v
        .engine
        .put_object("bkt", "k", body(b"first", 2), PutOptions::default())
        .await
        .unwrap();
    v.engine
        .put_object("bkt", "k", body(b"second", 2), if_exists())
        .await
        .unwrap();
    assert_eq!(read_all(&v.engine, "bkt", "k").await.unwrap(), b"second");

    // A delete with a stale etag is refused and keeps the object; the current etag deletes.
    let stale = DeleteCondition::IfMatch(ETag::new(first.etag.as_str()).unwrap());
    assert!(matches!(
        v.engine.delete_object("bkt", "k", &stale).await,
        Err(EngineError::PreconditionFailed(_))
    ));
    let current = v.engine.head_object("bkt", "k").await.unwrap().etag;
    let deleted = v
        .engine
        .delete_object(
            "bkt",
            "k",
            &DeleteCondition::IfMatch(ETag::new(current.as_str()).unwrap()),
        )
        .await
        .unwrap();
    assert!(deleted.is_some());
    // Conditional deletes of a missing key are `NoSuchKey`; an unconditional one is a no-op.
    for cond in [stale, DeleteCondition::IfExists] {
        let got = v.engine.delete_object("bkt", "k", &cond).await;
        assert!(
            matches!(got, Err(EngineError::NoSuchKey { .. })),
            "{cond:?}: {got:?}"
        );
    }
    assert_eq!(
        v.engine
            .delete_object("bkt", "k", &DeleteCondition::Unconditional)
            .await
            .unwrap(),
        None
    );
    let r = v.engine.gc_once().await.unwrap();
    assert_eq!(r.failed, 0);
    assert_eq!(
        v.total_blobs().await,
        0,
        "every version's shards were collected"
    );
}

#[tokio::test]
async fn an_impossible_policy_is_refused_at_bucket_creation() {
    let v = Vault::new(6).await;
    let p = archipel_engine::Policy::new(5, 2).unwrap();
    let e = v
        .engine
        .create_bucket("bkt", "owner", Some(p))
        .await
        .unwrap_err();
    assert!(e.to_string().contains("7 eligible providers"), "{e}");
    let mut p = archipel_engine::Policy::new(4, 2).unwrap();
    p.rules.max_per_jurisdiction = Some(2); // every provider is in FR
    let e = v
        .engine
        .create_bucket("bkt", "owner", Some(p))
        .await
        .unwrap_err();
    assert!(e.to_string().contains("per jurisdiction"), "{e}");
    // The default for six providers is 4+2 with quorum 5, stored and read back.
    let p = v.engine.create_bucket("bkt", "owner", None).await.unwrap();
    assert_eq!((p.k, p.m, p.write_quorum), (4, 2, 5));
    assert_eq!(v.engine.bucket_policy("bkt").await.unwrap(), p);
}
