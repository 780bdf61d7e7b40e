//! Small blobs in pack files: the index is rebuilt from the records at open, a torn tail is
//! cut, deletes and overwrites survive a restart, a blob moves between a pack and a file of
//! its own as its size changes, create-only puts see both forms, and half-dead packs are
//! compacted away.

use std::path::Path;
use std::time::{Duration, Instant};

use archipel_provider::{BlobName, ErrorKind, LocalDir, Provider, ProviderExt, PutBody, PutMode};
use bytes::Bytes;
use futures::StreamExt;

fn name(s: &str) -> BlobName {
    BlobName::new(s).unwrap()
}

fn bytes(seed: u8, n: usize) -> Vec<u8> {
    (0..n).map(|i| (i as u8).wrapping_mul(31) ^ seed).collect()
}

fn packs(root: &Path) -> Vec<std::path::PathBuf> {
    let mut v: Vec<_> = std::fs::read_dir(root.join(".packs"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "pack"))
        .collect();
    v.sort();
    v
}

async fn names(p: &LocalDir, prefix: &str) -> Vec<String> {
    p.list_all(prefix)
        .await
        .unwrap()
        .into_iter()
        .map(|b| b.name.as_str().to_string())
        .collect()
}

#[tokio::test]
async fn small_blobs_are_packed_and_the_index_is_rebuilt_at_open() {
    let dir = tempfile::tempdir().unwrap();
    let p = LocalDir::open("disk", dir.path()).await.unwrap();
    for i in 0..50u8 {
        p.put_bytes(
            &name(&format!("v1/{:02x}/b{i}", i % 4)),
            bytes(i, 1000 + usize::from(i)),
        )
        .await
        .unwrap();
    }
    // Small blobs are records in a pack, not files.
    assert!(!dir.path().join("v1").exists());
    let (file, range) = p.locate(&name("v1/01/b5")).unwrap();
    assert!(file.starts_with(dir.path().join(".packs")), "{file:?}");
    assert_eq!(range.end - range.start, 1005);
    // Overwrite some, delete some.
    for i in 0..10u8 {
        p.put_bytes(&name(&format!("v1/{:02x}/b{i}", i % 4)), bytes(200 + i, 77))
            .await
            .unwrap();
    }
    for i in 40..50u8 {
        p.delete(&name(&format!("v1/{:02x}/b{i}", i % 4)))
            .await
            .unwrap();
    }
    let before = names(&p, "").await;
    assert_eq!(before.len(), 40);
    drop(p);

    let p = LocalDir::open("disk", dir.path()).await.unwrap();
    assert_eq!(names(&p, "").await, before);
    for i in 0..50u8 {
        let n = name(&format!("v1/{:02x}/b{i}", i % 4));
        match i {
            0..10 => assert_eq!(p.get_bytes(&n, None).await.unwrap(), bytes(200 + i, 77)),
            10..40 => {
                assert_eq!(
                    p.get_bytes(&n, None).await.unwrap(),
                    bytes(i, 1000 + usize::from(i))
                );
                assert_eq!(p.head(&n).await.unwrap().size, 1000 + u64::from(i));
                assert_eq!(
                    p.get_bytes(&n, Some(10..20)).await.unwrap(),
                    bytes(i, 1000 + usize::from(i))[10..20]
                );
            }
            _ => assert_eq!(
                p.get_bytes(&n, None).await.unwrap_err().kind(),
                ErrorKind::NotFound
            ),
        }
    }
    // Listing with a prefix and pages.
    assert_eq!(names(&p, "v1/02/").await.len(), 10);
    let page = p.list("v1/", Some(&name("v1/00/b36")), 3).await.unwrap();
    assert_eq!(page.blobs.len(), 3);
    assert!(page.more);
    assert!(page.blobs[0].name.as_str() > "v1/00/b36");
}

#[tokio::test]
async fn a_torn_record_at_the_end_of_a_pack_is_cut_at_open() {
    let dir = tempfile::tempdir().unwrap();
    let p = LocalDir::open("disk", dir.path()).await.unwrap();
    for i in 0..5u8 {
        p.put_bytes(&name(&format!("a/{i}")), bytes(i, 3000))
            .await
            .unwrap();
    }
    drop(p);
    // A put that was never acknowledged: half a record, then junk.
    let pack = packs(dir.path()).pop().unwrap();
    let whole = std::fs::read(&pack).unwrap();
    let mut torn = whole.clone();
    torn.extend_from_slice(&whole[..100]);
    torn.extend_from_slice(&[0xAB; 57]);
    std::fs::write(&pack, &torn).unwrap();

    let p = LocalDir::open("disk", dir.path()).await.unwrap();
    assert_eq!(std::fs::metadata(&pack).unwrap().len(), whole.len() as u64);
    for i in 0..5u8 {
        assert_eq!(
            p.get_bytes(&name(&format!("a/{i}")), None).await.unwrap(),
            bytes(i, 3000)
        );
    }
    // New records follow the good ones and survive a restart.
    p.put_bytes(&name("a/new"), bytes(9, 10)).await.unwrap();
    drop(p);
    let p = LocalDir::open("disk", dir.path()).await.unwrap();
    assert_eq!(names(&p, "a/").await.len(), 6);
    assert_eq!(
        p.get_bytes(&name("a/new"), None).await.unwrap(),
        bytes(9, 10)
    );
}

#[tokio::test]
async fn a_blob_moves_between_a_pack_and_its_own_file_as_it_grows_and_shrinks() {
    let dir = tempfile::tempdir().unwrap();
    let p = LocalDir::open("disk", dir.path()).await.unwrap();
    let n = name("x/blob");
    let (small, large) = (bytes(1, 500), bytes(2, 300_000));
    p.put_bytes(&n, small.clone()).await.unwrap();
    p.put_bytes(&n, large.clone()).await.unwrap();
    assert_eq!(p.get_bytes(&n, None).await.unwrap(), large);
    assert_eq!(p.locate(&n).unwrap().0, dir.path().join("x/blob"));
    assert_eq!(names(&p, "").await, ["x/blob"]);
    drop(p);
    let p = LocalDir::open("disk", dir.path()).await.unwrap();
    assert_eq!(p.get_bytes(&n, None).await.unwrap(), large);
    p.put_bytes(&n, small.clone()).await.unwrap();
    assert!(!dir.path().join("x/blob").exists());
    assert_eq!(p.head(&n).await.unwrap().size, 500);
    drop(p);
    let p = LocalDir::open("disk", dir.path()).await.unwrap();
    assert_eq!(p.get_bytes(&n, None).await.unwrap(), small);
    assert_eq!(names(&p, "").await, ["x/blob"]);
    p.delete(&n).await.unwrap();
    drop(p);
    let p = LocalDir::open("disk", dir.path()).await.unwrap();
    assert!(names(&p, "").await.is_empty());
}

#[tokio::test]
async fn create_only_puts_see_packed_blobs_and_files() {
    let dir = tempfile::tempdir().unwrap();
    let p = LocalDir::open("disk", dir.path()).await.unwrap();
    let create = |b: Vec<u8>| PutBody::Bytes(Bytes::from(b));
    p.put(&name("c/small"), create(bytes(1, 10)), PutMode::Create)
        .await
        .unwrap();
    p.put(&name("c/large"), create(bytes(2, 200_000)), PutMode::Create)
        .await
        .unwrap();
    for (n, size) in [
        ("c/small", 200_000),
        ("c/small", 10),
        ("c/large", 10),
        ("c/large", 200_000),
    ] {
        let err = p
            .put(&name(n), create(bytes(3, size)), PutMode::Create)
            .await
            .unwrap_err();
        assert_eq!(
            err.kind(),
            ErrorKind::AlreadyExists,
            "{n} with {size} bytes"
        );
    }
    assert_eq!(
        p.get_bytes(&name("c/small"), None).await.unwrap(),
        bytes(1, 10)
    );
    assert_eq!(
        p.get_bytes(&name("c/large"), None).await.unwrap(),
        bytes(2, 200_000)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_puts_share_syncs_and_half_dead_packs_are_compacted() {
    let dir = tempfile::tempdir().unwrap();
    let p = std::sync::Arc::new(LocalDir::open("disk", dir.path()).await.unwrap());
    // 600 blobs of 120 KiB: more than one 64 MiB pack.
    let blob = |i: usize| bytes(i as u8, 120 * 1024);
    futures::stream::iter(0..600)
        .map(|i| {
            let p = p.clone();
            async move { p.put_bytes(&name(&format!("k/{i:04}")), blob(i)).await }
        })
        .buffer_unordered(32)
        .collect::<Vec<_>>()
        .await
        .into_iter()
        .collect::<Result<Vec<_>, _>>()
        .unwrap();
    let first = packs(dir.path());
    assert!(first.len() >= 2, "{first:?}");
    // Compaction must also work on packs this process only scanned at open.
    drop(p);
    let p = std::sync::Arc::new(LocalDir::open("disk", dir.path()).await.unwrap());
    // Delete every blob of the first pack but one, and one blob elsewhere.
    let mut in_first = Vec::new();
    for i in 0..600 {
        if p.locate(&name(&format!("k/{i:04}"))).unwrap().0 == first[0] {
            in_first.push(i);
        }
    }
    let keep = in_first[in_first.len() / 2];
    for &i in &in_first {
        if i != keep {
            p.delete(&name(&format!("k/{i:04}"))).await.unwrap();
        }
    }
    // The compaction runs in the background: the first pack goes away.
    let deadline = Instant::now() + Duration::from_secs(20);
    while first[0].exists() {
        assert!(
            Instant::now() < deadline,
            "the first pack was not compacted"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let live: Vec<usize> = (0..600)
        .filter(|i| *i == keep || !in_first.contains(i))
        .collect();
    let check = |p: std::sync::Arc<LocalDir>| {
        let live = live.clone();
        async move {
            assert_eq!(names(&p, "k/").await.len(), live.len());
            for &i in &live {
                assert_eq!(
                    p.get_bytes(&name(&format!("k/{i:04}")), None)
                        .await
                        .unwrap(),
                    blob(i),
                    "blob {i}"
                );
            }
        }
    };
    check(p.clone()).await;
    drop(p);
    // After a restart: the kept blob (moved), the others, and no resurrected deletes.
    let p = std::sync::Arc::new(LocalDir::open("disk", dir.path()).await.unwrap());
    check(p.clone()).await;
}

#[tokio::test]
async fn a_directory_is_owned_by_one_provider_at_a_time() {
    let dir = tempfile::tempdir().unwrap();
    let p = LocalDir::open("disk", dir.path()).await.unwrap();
    p.put_bytes(&name("o/a"), bytes(1, 10)).await.unwrap();
    // A second owner would append over the first one's records: refused, and named.
    let err = LocalDir::open("disk-again", dir.path()).await.unwrap_err();
    assert!(err.to_string().contains("in use by another"), "{err}");
    drop(p);
    let p = LocalDir::open("disk", dir.path()).await.unwrap();
    assert_eq!(p.get_bytes(&name("o/a"), None).await.unwrap(), bytes(1, 10));
}

#[tokio::test]
async fn packs_removed_behind_the_providers_back_are_lost_not_served() {
    let dir = tempfile::tempdir().unwrap();
    let p = LocalDir::open("disk", dir.path()).await.unwrap();
    p.put_bytes(&name("g/a"), bytes(1, 100)).await.unwrap();
    // The disk's contents are lost while the provider runs.
    std::fs::remove_dir_all(dir.path().join(".packs")).unwrap();
    assert_eq!(
        p.get_bytes(&name("g/a"), None).await.unwrap_err().kind(),
        ErrorKind::NotFound
    );
    assert_eq!(
        p.head(&name("g/a")).await.unwrap_err().kind(),
        ErrorKind::NotFound
    );
    assert!(names(&p, "").await.is_empty());
    // A put cannot land in a removed pack: it fails rather than vanish.
    assert!(p.put_bytes(&name("g/b"), bytes(2, 100)).await.is_err());
}

#[tokio::test]
async fn a_damaged_record_costs_only_itself() {
    let dir = tempfile::tempdir().unwrap();
    let p = LocalDir::open("disk", dir.path()).await.unwrap();
    for i in 0..5u8 {
        p.put_bytes(&name(&format!("d/{i}")), bytes(i, 2000))
            .await
            .unwrap();
    }
    let (pack, range) = p.locate(&name("d/2")).unwrap();
    drop(p);
    // Flip a byte in the middle of the third blob's data: its CRC fails.
    let mut raw = std::fs::read(&pack).unwrap();
    raw[(range.start + 1000) as usize] ^= 0x40;
    std::fs::write(&pack, &raw).unwrap();

    let p = LocalDir::open("disk", dir.path()).await.unwrap();
    for i in [0u8, 1, 3, 4] {
        assert_eq!(
            p.get_bytes(&name(&format!("d/{i}")), None).await.unwrap(),
            bytes(i, 2000),
            "blob {i} after the damaged one"
        );
    }
    assert_eq!(
        p.get_bytes(&name("d/2"), None).await.unwrap_err().kind(),
        ErrorKind::NotFound
    );
    // Nothing valid was cut, and the pack takes new records that survive a restart.
    assert_eq!(std::fs::metadata(&pack).unwrap().len(), raw.len() as u64);
    p.put_bytes(&name("d/5"), bytes(5, 10)).await.unwrap();
    drop(p);
    let p = LocalDir::open("disk", dir.path()).await.unwrap();
    assert_eq!(names(&p, "d/").await.len(), 5);
}

/// The open-time scan reads packs through a window of a few MiB: records that straddle its
/// edges, and a damaged record beyond the first window, are read as in a small pack.
#[tokio::test]
async fn packs_larger_than_the_scan_window_are_read_whole() {
    let dir = tempfile::tempdir().unwrap();
    let p = LocalDir::open("disk", dir.path()).await.unwrap();
    // 120 blobs of 100,003 bytes: about 12 MB in one pack, three windows and more.
    for i in 0..120u8 {
        p.put_bytes(&name(&format!("w/{i:03}")), bytes(i, 100_003))
            .await
            .unwrap();
    }
    let (pack, range) = p.locate(&name("w/090")).unwrap();
    assert!(range.start > 8 * 1024 * 1024, "{range:?}");
    drop(p);
    let mut raw = std::fs::read(&pack).unwrap();
    raw[(range.start + 50_000) as usize] ^= 0x01;
    std::fs::write(&pack, &raw).unwrap();

    let p = LocalDir::open("disk", dir.path()).await.unwrap();
    assert_eq!(names(&p, "w/").await.len(), 119);
    for i in (0..120u8).filter(|i| *i != 90) {
        assert_eq!(
            p.get_bytes(&name(&format!("w/{i:03}")), None)
                .await
                .unwrap(),
            bytes(i, 100_003),
            "blob {i}"
        );
    }
    assert_eq!(
        p.get_bytes(&name("w/090"), None).await.unwrap_err().kind(),
        ErrorKind::NotFound
    );
}
