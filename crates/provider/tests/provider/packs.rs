//! Small blobs in pack files: the index is rebuilt from the records at open, a torn tail is
//! cut, deletes and overwrites survive a restart, a blob moves between a pack and a file of
//! its own as its size changes, create-only puts see both forms, and half-dead packs are
//! compacted away — under sustained churn, after a burst, after a restart, interrupted, and
//! under concurrent reads — keeping the packs within about twice the live bytes.

use std::path::Path;
use std::time::{Duration, Instant};

use archipel_provider::{
    BlobName, ErrorKind, LocalDir, LocalOptions, Provider, ProviderExt, PutBody, PutMode,
};
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

/// Packs of 1 MiB, so a test fills many in a few MiB.
fn small_packs(compaction_rate: Option<u64>) -> LocalOptions {
    let mut o = LocalOptions::default();
    o.pack_size = 1024 * 1024;
    o.compaction_rate = compaction_rate;
    o
}

/// Bytes and number of the pack files.
fn pack_bytes(root: &Path) -> (u64, usize) {
    let packs = packs(root);
    let bytes = packs
        .iter()
        .map(|p| std::fs::metadata(p).map_or(0, |m| m.len()))
        .sum();
    (bytes, packs.len())
}

/// Waits up to `secs` for the packs to hold at most twice `live` bytes plus `slack`, and
/// returns what they hold then.
async fn settle(root: &Path, live: u64, slack: u64, secs: u64) -> (u64, usize) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        let (bytes, n) = pack_bytes(root);
        if bytes <= 2 * live + slack || Instant::now() > deadline {
            return (bytes, n);
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Round `round`'s bytes of blob `i`: 1 to 8 KiB.
fn churn_blob(i: usize, round: usize) -> Vec<u8> {
    let len = 1024 + (i * 7919 + round * 104_729) % 7000;
    bytes((i + round) as u8, len)
}

/// Twenty-five rounds of overwriting 300 blobs (and deleting a tenth of them) keep the packs within
/// twice the live bytes plus a few packs while they run, and within twice plus one pack once
/// the writes stop; every read sees the bytes last written, before and after a restart.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn overwrite_churn_keeps_the_packs_within_twice_the_live_bytes() {
    const N: usize = 300;
    const ROUNDS: usize = 25;
    let dir = tempfile::tempdir().unwrap();
    let p = std::sync::Arc::new(
        LocalDir::open_with("disk", dir.path(), small_packs(None))
            .await
            .unwrap(),
    );
    let mut worst = (0u64, 0usize, 0u64);
    let mut live = 0u64;
    for round in 0..ROUNDS {
        futures::stream::iter(0..N)
            .map(|i| {
                let p = p.clone();
                async move {
                    let n = name(&format!("c/{i:03}"));
                    p.put_bytes(&n, churn_blob(i, round)).await.unwrap();
                    assert_eq!(p.get_bytes(&n, None).await.unwrap(), churn_blob(i, round));
                    if (i + round).is_multiple_of(10) {
                        p.delete(&n).await.unwrap();
                    }
                }
            })
            .buffer_unordered(16)
            .collect::<Vec<()>>()
            .await;
        live = (0..N)
            .filter(|i| !(i + round).is_multiple_of(10))
            .map(|i| churn_blob(i, round).len() as u64)
            .sum();
        let (bytes, n) = pack_bytes(dir.path());
        if bytes > worst.0 {
            worst = (bytes, n, live);
        }
        assert!(
            bytes <= 2 * live + 4 * 1024 * 1024,
            "round {round}: {bytes} bytes in {n} packs for {live} live bytes"
        );
    }
    let (bytes, n) = settle(dir.path(), live, 1536 * 1024, 10).await;
    assert!(
        bytes <= 2 * live + 1536 * 1024,
        "after the writes stopped: {bytes} bytes in {n} packs for {live} live bytes (worst \
         while writing: {worst:?})"
    );
    let check = |p: std::sync::Arc<LocalDir>| async move {
        for i in 0..N {
            let n = name(&format!("c/{i:03}"));
            if (i + ROUNDS - 1).is_multiple_of(10) {
                assert_eq!(
                    p.get_bytes(&n, None).await.unwrap_err().kind(),
                    ErrorKind::NotFound
                );
            } else {
                assert_eq!(
                    p.get_bytes(&n, None).await.unwrap(),
                    churn_blob(i, ROUNDS - 1),
                    "{n}"
                );
            }
        }
    };
    check(p.clone()).await;
    drop(p);
    let p = std::sync::Arc::new(
        LocalDir::open_with("disk", dir.path(), small_packs(None))
            .await
            .unwrap(),
    );
    check(p).await;
}

/// A burst of deletes makes several packs half dead at once; they are all compacted away
/// though nothing is written after it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_of_deletes_leaves_no_half_dead_pack_behind() {
    let dir = tempfile::tempdir().unwrap();
    let p = std::sync::Arc::new(
        LocalDir::open_with("disk", dir.path(), small_packs(None))
            .await
            .unwrap(),
    );
    let blob = |i: usize| bytes(i as u8, 4000 + i % 97);
    futures::stream::iter(0..1200)
        .map(|i| {
            let p = p.clone();
            async move { p.put_bytes(&name(&format!("b/{i:04}")), blob(i)).await }
        })
        .buffer_unordered(32)
        .collect::<Vec<_>>()
        .await
        .into_iter()
        .collect::<Result<Vec<_>, _>>()
        .unwrap();
    assert!(pack_bytes(dir.path()).1 >= 4);
    let kept = |i: usize| i.is_multiple_of(4);
    futures::stream::iter((0..1200).filter(|i| !kept(*i)))
        .map(|i| {
            let p = p.clone();
            async move { p.delete(&name(&format!("b/{i:04}"))).await }
        })
        .buffer_unordered(64)
        .collect::<Vec<_>>()
        .await
        .into_iter()
        .collect::<Result<Vec<_>, _>>()
        .unwrap();
    let live: u64 = (0..1200)
        .filter(|i| kept(*i))
        .map(|i| blob(i).len() as u64)
        .sum();
    let (bytes, n) = settle(dir.path(), live, 1024 * 1024, 10).await;
    assert!(
        bytes <= 2 * live + 1024 * 1024,
        "{bytes} bytes in {n} packs for {live} live bytes"
    );
    for i in (0..1200).filter(|i| kept(*i)) {
        assert_eq!(
            p.get_bytes(&name(&format!("b/{i:04}")), None)
                .await
                .unwrap(),
            blob(i)
        );
    }
}

/// A provider restarted with a mostly dead last pack compacts it without waiting for writes.
#[tokio::test]
async fn a_mostly_dead_pack_found_at_open_is_compacted() {
    let dir = tempfile::tempdir().unwrap();
    let p = LocalDir::open_with("disk", dir.path(), small_packs(None))
        .await
        .unwrap();
    let blob = |i: usize| bytes(i as u8, 6000);
    for i in 0..400 {
        p.put_bytes(&name(&format!("o/{i:03}")), blob(i))
            .await
            .unwrap();
    }
    let last = packs(dir.path()).pop().unwrap();
    let mut gone = Vec::new();
    for i in 0..400usize {
        let n = name(&format!("o/{i:03}"));
        if p.locate(&n).unwrap().0 == last && !i.is_multiple_of(4) {
            p.delete(&n).await.unwrap();
            gone.push(i);
        }
    }
    assert!(gone.len() > 20, "{gone:?}");
    drop(p);
    let p = LocalDir::open_with("disk", dir.path(), small_packs(None))
        .await
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while last.exists() {
        assert!(Instant::now() < deadline, "{last:?} was not compacted");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    for i in 0..400 {
        let got = p.get_bytes(&name(&format!("o/{i:03}")), None).await;
        if gone.contains(&i) {
            assert_eq!(got.unwrap_err().kind(), ErrorKind::NotFound, "{i}");
        } else {
            assert_eq!(got.unwrap(), blob(i), "{i}");
        }
    }
    drop(p);
    let p = LocalDir::open("disk", dir.path()).await.unwrap();
    assert_eq!(names(&p, "o/").await.len(), 400 - gone.len());
}

/// A compaction cut short (the provider closed in the middle of it, as by a crash) loses
/// nothing and resurrects nothing; the next open finishes it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_interrupted_compaction_loses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    // 256 KiB/s: compacting a pack takes seconds.
    let slow = small_packs(Some(256 * 1024));
    let p = LocalDir::open_with("disk", dir.path(), slow.clone())
        .await
        .unwrap();
    let blob = |i: usize| bytes(i as u8, 5000 + i % 13);
    for i in 0..800 {
        p.put_bytes(&name(&format!("i/{i:03}")), blob(i))
            .await
            .unwrap();
    }
    let kept = |i: usize| i.is_multiple_of(3);
    for i in (0..800).filter(|i| !kept(*i)) {
        p.delete(&name(&format!("i/{i:03}"))).await.unwrap();
    }
    let check = |p: LocalDir| async move {
        assert_eq!(
            names(&p, "i/").await.len(),
            (0..800).filter(|i| kept(*i)).count()
        );
        for i in 0..800 {
            let got = p.get_bytes(&name(&format!("i/{i:03}")), None).await;
            if kept(i) {
                assert_eq!(got.unwrap(), blob(i), "{i}");
            } else {
                assert_eq!(got.unwrap_err().kind(), ErrorKind::NotFound, "{i}");
            }
        }
        p
    };
    tokio::time::sleep(Duration::from_millis(700)).await;
    let before = pack_bytes(dir.path());
    drop(check(p).await);
    let p = check(LocalDir::open_with("disk", dir.path(), slow).await.unwrap()).await;
    drop(p);
    // At full speed the compaction completes.
    let p = LocalDir::open_with("disk", dir.path(), small_packs(None))
        .await
        .unwrap();
    let live: u64 = (0..800)
        .filter(|i| kept(*i))
        .map(|i| blob(i).len() as u64)
        .sum();
    let after = settle(dir.path(), live, 1024 * 1024, 10).await;
    assert!(after.0 <= 2 * live + 1024 * 1024, "{before:?} -> {after:?}");
    drop(check(p).await);
    drop(check(LocalDir::open("disk", dir.path()).await.unwrap()).await);
}

/// Reads of blobs that compaction is moving, while other blobs are overwritten and deleted,
/// never fail and never return other bytes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reads_during_compaction_return_the_right_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let p = std::sync::Arc::new(
        LocalDir::open_with("disk", dir.path(), small_packs(Some(2 * 1024 * 1024)))
            .await
            .unwrap(),
    );
    let blob = |i: usize| bytes(i as u8, 3000 + i % 101);
    for i in 0..600 {
        p.put_bytes(&name(&format!("r/{i:03}")), blob(i))
            .await
            .unwrap();
    }
    let stable = |i: usize| i.is_multiple_of(5);
    let first = packs(dir.path()).remove(0);
    let until = Instant::now() + Duration::from_secs(2);
    let readers: Vec<_> = (0..4)
        .map(|r| {
            let p = p.clone();
            tokio::spawn(async move {
                let mut reads = 0;
                while Instant::now() < until {
                    for i in (r..600).step_by(4).filter(|i| stable(*i)) {
                        let n = name(&format!("r/{i:03}"));
                        assert_eq!(p.get_bytes(&n, None).await.unwrap(), blob(i), "{n}");
                        assert_eq!(p.head(&n).await.unwrap().size, blob(i).len() as u64);
                        reads += 1;
                    }
                }
                reads
            })
        })
        .collect();
    // Kill the rest, round after round: every pack of the first ones goes half dead.
    let mut round = 0usize;
    while Instant::now() < until {
        for i in (0..600).filter(|i| !stable(*i)) {
            let n = name(&format!("r/{i:03}"));
            if round.is_multiple_of(2) {
                p.delete(&n).await.unwrap();
            } else {
                p.put_bytes(&n, bytes(round as u8, 2000)).await.unwrap();
            }
        }
        round += 1;
    }
    let mut reads = 0;
    for r in readers {
        reads += r.await.unwrap();
    }
    assert!(reads > 100, "{reads} reads");
    // The stable blobs of the first pack were moved meanwhile, or are being moved.
    let deadline = Instant::now() + Duration::from_secs(10);
    while first.exists() {
        assert!(Instant::now() < deadline, "{first:?} was not compacted");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    for i in (0..600).filter(|i| stable(*i)) {
        let n = name(&format!("r/{i:03}"));
        assert_eq!(p.get_bytes(&n, None).await.unwrap(), blob(i), "{n}");
    }
}
