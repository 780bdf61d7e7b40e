//! The provider conformance suite. Every implementation and every layer stack runs every case
//! through [`provider_conformance!`](crate::provider_conformance); each case checks one clause of
//! the `Provider` contract and panics with a message naming it.

use std::sync::Arc;

use archipel_provider::{BlobName, ErrorKind, Provider, ProviderExt, PutBody, PutMode};
use bytes::Bytes;
use futures::StreamExt;

/// A provider under test and whatever keeps it alive (temp dir, server).
pub type Subject = (Arc<dyn Provider>, Box<dyn std::any::Any + Send>);

/// Deterministic test bytes.
pub fn pattern(seed: u64, n: usize) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut out = Vec::with_capacity(n);
    while out.len() < n {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        out.extend_from_slice(&x.to_le_bytes());
    }
    out.truncate(n);
    out
}

fn name(s: &str) -> BlobName {
    BlobName::new(s).unwrap_or_else(|e| panic!("test name {s:?}: {e}"))
}

/// Puts `data` as a stream of `chunk`-byte pieces.
pub async fn put_streamed(p: &dyn Provider, blob: &BlobName, data: &[u8], chunk: usize) {
    let pieces: Vec<_> = data
        .chunks(chunk.max(1))
        .map(|c| Ok(Bytes::copy_from_slice(c)))
        .collect();
    let body = PutBody::Stream(futures::stream::iter(pieces).boxed());
    let meta = p
        .put(blob, body, PutMode::Overwrite)
        .await
        .unwrap_or_else(|e| panic!("streamed put of {} bytes: {e}", data.len()));
    assert_eq!(meta.size, data.len() as u64, "put reports the size");
}

/// Blobs of 0 B, 1 B, 5 MiB + 1 and 64 MiB round-trip byte for byte, streamed both ways.
pub async fn round_trips(p: Arc<dyn Provider>) {
    for (i, size) in [0usize, 1, 5 * 1024 * 1024 + 1, 64 * 1024 * 1024]
        .into_iter()
        .enumerate()
    {
        let blob = name(&format!("rt/blob-{i}"));
        let data = pattern(i as u64, size);
        put_streamed(&*p, &blob, &data, 1024 * 1024).await;
        assert_eq!(
            p.head(&blob).await.expect("head").size,
            size as u64,
            "head size of {size} B"
        );
        let back = p.get_bytes(&blob, None).await.expect("get");
        assert!(back == data, "round trip of {size} B differs");
    }
}

/// Ranged reads return exactly the bytes asked; a range past the end is `InvalidRange`.
pub async fn ranged_reads(p: Arc<dyn Provider>) {
    let blob = name("range/blob");
    let data = pattern(7, 100_000);
    p.put_bytes(&blob, data.clone()).await.expect("put");
    for r in [
        0..1,
        99_999..100_000,
        4_000..60_000,
        0..100_000,
        100_000..100_000,
        500..500,
    ] {
        let got = p
            .get_bytes(&blob, Some(r.clone()))
            .await
            .unwrap_or_else(|e| panic!("range {r:?}: {e}"));
        assert!(
            got == data[r.start as usize..r.end as usize],
            "range {r:?} returned wrong bytes"
        );
    }
    for r in [99_999..100_001, 100_000..100_010, 200_000..200_001] {
        let err = p
            .get_bytes(&blob, Some(r.clone()))
            .await
            .expect_err("range past the end must fail");
        assert_eq!(err.kind(), ErrorKind::InvalidRange, "range {r:?}: {err}");
    }
}

/// A put over an existing blob replaces it whole.
pub async fn overwrite(p: Arc<dyn Provider>) {
    let blob = name("ow/blob");
    p.put_bytes(&blob, pattern(1, 10_000)).await.expect("put 1");
    p.put_bytes(&blob, pattern(2, 300)).await.expect("put 2");
    assert_eq!(
        p.get_bytes(&blob, None).await.expect("get"),
        pattern(2, 300)
    );
    assert_eq!(p.head(&blob).await.expect("head").size, 300);
}

/// Deleting is idempotent; a deleted or missing blob is `NotFound`, naming provider and blob.
pub async fn idempotent_delete(p: Arc<dyn Provider>) {
    let blob = name("del/blob");
    p.delete(&blob)
        .await
        .expect("delete of a missing blob succeeds");
    p.put_bytes(&blob, pattern(3, 10)).await.expect("put");
    p.delete(&blob).await.expect("delete");
    p.delete(&blob).await.expect("second delete");
    let err = p.head(&blob).await.expect_err("head after delete");
    assert_eq!(err.kind(), ErrorKind::NotFound, "{err}");
    let err = p.get(&blob, None).await.err().expect("get after delete");
    assert_eq!(err.kind(), ErrorKind::NotFound, "{err}");
    // A ranged read of a missing blob is NotFound too (services answer it differently).
    let err = match p.get(&blob, Some(2..8)).await {
        Err(e) => e,
        Ok(mut s) => loop {
            match s.next().await {
                Some(Err(e)) => break e,
                Some(Ok(_)) => {}
                None => panic!("a ranged get of a deleted blob returned no error"),
            }
        },
    };
    assert_eq!(
        err.kind(),
        ErrorKind::NotFound,
        "ranged get after delete: {err}"
    );
    assert_eq!(err.provider, p.name(), "error names the provider");
    assert_eq!(
        err.blob.as_deref(),
        Some("del/blob"),
        "error names the blob"
    );
}

/// Listing by prefix pages through more than 1,000 blobs in order, exactly once each.
pub async fn list_paginates(p: Arc<dyn Provider>) {
    const N: usize = 1_100;
    let names: Vec<BlobName> = (0..N)
        .map(|i| name(&format!("ls/a/{:05}", i * 7 % N)))
        .collect();
    futures::stream::iter(names.iter().cloned())
        .for_each_concurrent(16, |b| {
            let p = p.clone();
            async move {
                p.put_bytes(&b, Bytes::from_static(b"x"))
                    .await
                    .expect("put for listing");
            }
        })
        .await;
    p.put_bytes(&name("ls/b/other"), Bytes::from_static(b"y"))
        .await
        .expect("put");
    p.put_bytes(&name("lsx"), Bytes::from_static(b"z"))
        .await
        .expect("put");

    let first = p.list("ls/a/", None, 100).await.expect("list page");
    assert_eq!(first.blobs.len(), 100, "page size honoured");
    assert!(first.more, "more pages announced");
    let all = p.list_all("ls/a/").await.expect("list all");
    let got: Vec<&str> = all.iter().map(|b| b.name.as_str()).collect();
    let mut want: Vec<String> = (0..N).map(|i| format!("ls/a/{i:05}")).collect();
    want.sort();
    assert_eq!(
        got, want,
        "list returns every blob with the prefix, once, in order"
    );
    assert!(all.iter().all(|b| b.size == 1), "sizes listed");
    let after = p
        .list("ls/a/", Some(&name("ls/a/01090")), 1000)
        .await
        .expect("list after");
    let tail: Vec<&str> = after.blobs.iter().map(|b| b.name.as_str()).collect();
    assert_eq!(tail.len(), 9, "start_after is exclusive: {tail:?}");
    assert!(!after.more);
    let whole = p.list_all("ls").await.expect("list ls");
    assert_eq!(
        whole.len(),
        N + 2,
        "a prefix is a string prefix, not a directory"
    );
}

/// Concurrent writers: distinct blobs all land; racing writers on one blob leave one whole
/// version, never a mix.
pub async fn concurrent_writers(p: Arc<dyn Provider>) {
    let tasks = (0..16u64).map(|i| {
        let p = p.clone();
        tokio::spawn(async move {
            p.put_bytes(&name(&format!("cw/own-{i}")), pattern(i, 200_000))
                .await
                .expect("own put");
            p.put_bytes(&name("cw/shared"), pattern(100 + i, 300_000))
                .await
                .expect("shared put");
        })
    });
    for t in tasks {
        t.await.expect("task");
    }
    for i in 0..16u64 {
        let got = p
            .get_bytes(&name(&format!("cw/own-{i}")), None)
            .await
            .expect("get own");
        assert!(got == pattern(i, 200_000), "blob {i} intact");
    }
    let shared = p
        .get_bytes(&name("cw/shared"), None)
        .await
        .expect("get shared");
    assert!(
        (0..16u64).any(|i| shared == pattern(100 + i, 300_000)),
        "the shared blob is one writer's whole version"
    );
}

/// Every character the engine may use in a name round-trips and lists.
pub async fn names_with_every_allowed_character(p: Arc<dyn Provider>) {
    let n =
        "nm/ABCDEFGHIJKLMNOPQRSTUVWXYZ/abcdefghijklmnopqrstuvwxyz/0123456789/a-b_c.d/e..f--g__h";
    let blob = name(n);
    p.put_bytes(&blob, Bytes::from_static(b"every char"))
        .await
        .expect("put");
    assert_eq!(p.get_bytes(&blob, None).await.expect("get"), b"every char");
    let listed = p.list_all("nm/").await.expect("list");
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].name.as_str(), n);
}

/// Create-only puts: refused on an existing blob; among racing creators exactly one wins
/// (when the provider declares the capability).
pub async fn conditional_create(p: Arc<dyn Provider>) {
    let blob = name("cc/existing");
    p.put_bytes(&blob, Bytes::from_static(b"first"))
        .await
        .expect("put");
    let err = p
        .put(&blob, PutBody::from(b"second".to_vec()), PutMode::Create)
        .await
        .expect_err("create over an existing blob");
    assert_eq!(err.kind(), ErrorKind::AlreadyExists, "{err}");
    assert_eq!(p.get_bytes(&blob, None).await.expect("get"), b"first");
    if !p.capabilities().conditional_create {
        eprintln!(
            "provider {} lacks atomic conditional create: race not checked",
            p.name()
        );
        return;
    }
    let race = name("cc/race");
    let results = futures::future::join_all((0..8u64).map(|i| {
        let p = p.clone();
        let race = race.clone();
        async move {
            p.put(&race, PutBody::from(pattern(i, 1000)), PutMode::Create)
                .await
        }
    }))
    .await;
    let winners = results.iter().filter(|r| r.is_ok()).count();
    assert_eq!(winners, 1, "exactly one creator wins: {results:?}");
    for r in results.iter().filter_map(|r| r.as_ref().err()) {
        assert_eq!(
            r.kind(),
            ErrorKind::AlreadyExists,
            "losers are told why: {r}"
        );
    }
}

/// Generates one `#[tokio::test]` per conformance case for a provider factory: an `async`
/// expression yielding `Option<Subject>` (`None` = skipped, e.g. a server not installed).
#[macro_export]
macro_rules! provider_conformance {
    ($make:expr) => {
        $crate::provider_conformance!(@cases $make;
            round_trips, ranged_reads, overwrite, idempotent_delete, list_paginates,
            concurrent_writers, names_with_every_allowed_character, conditional_create);
    };
    (@cases $make:expr; $($case:ident),*) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $case() {
                let Some((provider, _keep)) = $make else { return };
                $crate::conformance::$case(provider).await;
            }
        )*
    };
}
