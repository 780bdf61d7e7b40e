//! A bounded churn driver for the directory provider's packs.
//!
//! Several tasks put, overwrite, read and delete small blobs (1 KiB to 128 KiB, so every one
//! is a packed record) on one `LocalDir` for a fixed time, and every interval the driver
//! prints the bytes of `.packs/` on disk against the live bytes, the number of pack files,
//! the process's RSS and its open file descriptors. At the end it reopens the directory and
//! checks every blob is there with the right bytes, and no deleted one came back.
//!
//! ```text
//! cargo run --release -p archipel-provider --example pack_churn -- \
//!     [--secs 60] [--tasks 32] [--slots 4000] [--every 5] [--mode fresh|overwrite] \
//!     [--providers 1] [--delete-delay 0] [--dir D]
//! ```
//!
//! `fresh` (the default) is what the engine does: a new version of an object is a blob of a
//! new name, and the old one is deleted once the new one is stored. `overwrite` puts the new
//! version under the same name. `--delete-delay S` deletes superseded and deleted blobs only
//! `S` seconds later, as the engine's GC does (they count as live for the provider until
//! then: reported as `pend_MiB`). With `--providers N` every operation goes to `N`
//! directories at once, as an object's shards do; figures are per provider.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use archipel_provider::{BlobName, ErrorKind, LocalDir, Provider, ProviderExt};
use bytes::Bytes;

struct Args {
    secs: u64,
    tasks: usize,
    slots: usize,
    every: u64,
    fresh: bool,
    providers: usize,
    delete_delay: u64,
    dir: Option<PathBuf>,
}

fn args() -> Args {
    let mut a = Args {
        secs: 60,
        tasks: 32,
        slots: 4000,
        every: 5,
        fresh: true,
        providers: 1,
        delete_delay: 0,
        dir: None,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().expect("a value after the flag");
        match flag.as_str() {
            "--secs" => a.secs = value().parse().expect("--secs N"),
            "--tasks" => a.tasks = value().parse().expect("--tasks N"),
            "--slots" => a.slots = value().parse().expect("--slots N"),
            "--every" => a.every = value().parse().expect("--every N"),
            "--mode" => a.fresh = value() == "fresh",
            "--providers" => a.providers = value().parse().expect("--providers N"),
            "--delete-delay" => a.delete_delay = value().parse().expect("--delete-delay S"),
            "--dir" => a.dir = Some(PathBuf::from(value())),
            other => panic!("unknown flag {other}"),
        }
    }
    a
}

/// Bytes of the pack files (apparent and allocated) and their number.
fn packs_on_disk(root: &Path) -> (u64, u64, usize) {
    use std::os::unix::fs::MetadataExt;
    let (mut len, mut alloc, mut n) = (0, 0, 0);
    if let Ok(entries) = std::fs::read_dir(root.join(".packs")) {
        for e in entries.flatten() {
            if e.path().extension().is_some_and(|x| x == "pack")
                && let Ok(m) = e.metadata()
            {
                len += m.len();
                alloc += m.blocks() * 512;
                n += 1;
            }
        }
    }
    (len, alloc, n)
}

fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1).and_then(|v| v.parse().ok()))
        })
        .unwrap_or(0)
}

fn open_fds() -> usize {
    std::fs::read_dir("/proc/self/fd").map_or(0, |d| d.count())
}

/// The blob of a slot's version: a 16-byte header (slot, version), then bytes of `pool`.
fn body(pool: &Bytes, slot: usize, version: u64, len: usize) -> Bytes {
    let mut v = Vec::with_capacity(len);
    v.extend_from_slice(&(slot as u64).to_le_bytes());
    v.extend_from_slice(&version.to_le_bytes());
    let at = (version as usize * 4099) % (pool.len() - len);
    v.extend_from_slice(&pool[at..at + len - 16]);
    Bytes::from(v)
}

fn blob_name(slot: usize, version: u64, fresh: bool) -> BlobName {
    let s = if fresh {
        format!("v1/{:02x}/s{slot:06}.{version}", slot % 256)
    } else {
        format!("v1/{:02x}/s{slot:06}", slot % 256)
    };
    BlobName::new(s).expect("a valid name")
}

/// 1 KiB to 128 KiB, log-uniform.
fn size(rng: &mut fastrand::Rng) -> usize {
    let exp = rng.f64() * 7.0; // 2^0 .. 2^7 KiB
    ((1024.0 * 2f64.powf(exp)) as usize).clamp(1024, 128 * 1024)
}

#[derive(Clone, Copy)]
struct Live {
    version: u64,
    len: usize,
}

/// The same operation on every directory at once (an object's shards).
struct Set(Vec<LocalDir>);

impl Set {
    async fn put(&self, name: &BlobName, body: Bytes) {
        let puts = self.0.iter().map(|p| p.put_bytes(name, body.clone()));
        for r in futures::future::join_all(puts).await {
            r.unwrap();
        }
    }
    async fn delete(&self, name: &BlobName) {
        let dels = self.0.iter().map(|p| p.delete(name));
        for r in futures::future::join_all(dels).await {
            r.unwrap();
        }
    }
    async fn get(&self, name: &BlobName) -> Vec<u8> {
        let gets = self.0.iter().map(|p| p.get_bytes(name, None));
        let mut got = futures::future::join_all(gets).await.into_iter();
        let first = got.next().expect("a provider").unwrap();
        for other in got {
            assert_eq!(other.unwrap(), first);
        }
        first
    }
}

/// What the driver counts, in bytes per provider.
#[derive(Default)]
struct Counts {
    live: AtomicU64,
    /// Superseded or deleted, not yet deleted from the providers (`--delete-delay`).
    pending: AtomicU64,
    ops: AtomicU64,
}

#[tokio::main(flavor = "multi_thread")]
async fn main() {
    let a = args();
    let tmp = tempfile::tempdir_in(a.dir.clone().unwrap_or_else(std::env::temp_dir)).unwrap();
    let roots: Vec<PathBuf> = (0..a.providers)
        .map(|i| tmp.path().join(format!("p{i}")))
        .collect();
    let mut dirs = Vec::new();
    for (i, r) in roots.iter().enumerate() {
        dirs.push(LocalDir::open(&format!("churn{i}"), r).await.unwrap());
    }
    let set = Arc::new(Set(dirs));
    let mut pool = vec![0u8; 4 * 1024 * 1024];
    fastrand::Rng::with_seed(7).fill(&mut pool);
    let pool = Bytes::from(pool);
    let counts = Arc::new(Counts::default());
    let stop = Arc::new(AtomicBool::new(false));
    println!(
        "pack_churn: {} tasks, {} slots, {} s, mode {}, {} provider(s), delete delay {} s, in {}",
        a.tasks,
        a.slots,
        a.secs,
        if a.fresh { "fresh" } else { "overwrite" },
        a.providers,
        a.delete_delay,
        tmp.path().display()
    );
    let delay = Duration::from_secs(a.delete_delay);
    let mut handles = Vec::new();
    for t in 0..a.tasks {
        let (set, pool, counts, stop) = (set.clone(), pool.clone(), counts.clone(), stop.clone());
        let (tasks, slots, fresh) = (a.tasks, a.slots, a.fresh);
        handles.push(tokio::spawn(async move {
            let mut rng = fastrand::Rng::with_seed(t as u64 + 1);
            let mine: Vec<usize> = (t..slots).step_by(tasks).collect();
            let mut state: Vec<Option<Live>> = vec![None; mine.len()];
            // Blobs to delete later: (due, name, len).
            let mut later: std::collections::VecDeque<(Instant, BlobName, usize)> =
                Default::default();
            let mut next_version = 1u64;
            let retire = |later: &mut std::collections::VecDeque<_>, name: BlobName, len| {
                later.push_back((Instant::now() + delay, name, len));
                counts.pending.fetch_add(len as u64, Ordering::Relaxed);
            };
            while !stop.load(Ordering::Relaxed) {
                while later
                    .front()
                    .is_some_and(|(due, _, _)| *due <= Instant::now())
                {
                    let (_, name, len) = later.pop_front().expect("a blob due");
                    set.delete(&name).await;
                    counts.pending.fetch_sub(len as u64, Ordering::Relaxed);
                }
                let i = rng.usize(..mine.len());
                let slot = mine[i];
                let roll = rng.u8(..100);
                match (roll, state[i]) {
                    // Put (a new object, or a new version of one).
                    (0..50, old) => {
                        let version = next_version;
                        next_version += 1;
                        let len = size(&mut rng);
                        set.put(
                            &blob_name(slot, version, fresh),
                            body(&pool, slot, version, len),
                        )
                        .await;
                        counts.live.fetch_add(len as u64, Ordering::Relaxed);
                        if let Some(old) = old {
                            counts.live.fetch_sub(old.len as u64, Ordering::Relaxed);
                            if fresh {
                                retire(&mut later, blob_name(slot, old.version, true), old.len);
                            }
                        }
                        state[i] = Some(Live { version, len });
                    }
                    (50..80, Some(cur)) => {
                        let got = set.get(&blob_name(slot, cur.version, fresh)).await;
                        assert_eq!(got.len(), cur.len, "slot {slot}");
                        assert_eq!(got[..16], body(&pool, slot, cur.version, 16 + 1)[..16]);
                    }
                    (80.., Some(cur)) => {
                        counts.live.fetch_sub(cur.len as u64, Ordering::Relaxed);
                        if fresh {
                            retire(&mut later, blob_name(slot, cur.version, true), cur.len);
                        } else {
                            set.delete(&blob_name(slot, cur.version, false)).await;
                        }
                        state[i] = None;
                    }
                    _ => {}
                }
                counts.ops.fetch_add(1, Ordering::Relaxed);
            }
            for (_, name, len) in later {
                set.delete(&name).await;
                counts.pending.fetch_sub(len as u64, Ordering::Relaxed);
            }
            (mine, state)
        }));
    }
    let start = Instant::now();
    let mut last_ops = 0;
    println!(
        "{:>5} {:>9} {:>9} {:>9} {:>9} {:>6} {:>6} {:>8} {:>5} {:>8}",
        "t_s",
        "live_MiB",
        "pend_MiB",
        "packs_MiB",
        "alloc_MiB",
        "ratio",
        "packs",
        "rss_MiB",
        "fds",
        "ops/s"
    );
    let mut worst: f64 = 0.0;
    let mut rss_first = 0;
    let per = |x: u64| x as f64 / a.providers as f64 / 1048576.0;
    let on_disk = || {
        roots
            .iter()
            .map(|r| packs_on_disk(r))
            .fold((0, 0, 0), |s, x| (s.0 + x.0, s.1 + x.1, s.2 + x.2))
    };
    while start.elapsed() < Duration::from_secs(a.secs) {
        tokio::time::sleep(Duration::from_secs(a.every)).await;
        let (len, alloc, n) = on_disk();
        let l = counts.live.load(Ordering::Relaxed) * a.providers as u64;
        let pend = counts.pending.load(Ordering::Relaxed) * a.providers as u64;
        let o = counts.ops.load(Ordering::Relaxed);
        // On disk against what the providers hold (live and not yet deleted).
        let ratio = len as f64 / (l + pend).max(1) as f64;
        worst = worst.max(ratio);
        let rss = rss_kib();
        if rss_first == 0 {
            rss_first = rss;
        }
        println!(
            "{:>5} {:>9.1} {:>9.1} {:>9.1} {:>9.1} {:>6.2} {:>6.1} {:>8.1} {:>5} {:>8.0}",
            start.elapsed().as_secs(),
            per(l),
            per(pend),
            per(len),
            per(alloc),
            ratio,
            n as f64 / a.providers as f64,
            rss as f64 / 1024.0,
            open_fds(),
            (o - last_ops) as f64 / a.every as f64
        );
        last_ops = o;
    }
    stop.store(true, Ordering::Relaxed);
    let mut expect = Vec::new();
    for h in handles {
        let (mine, state) = h.await.unwrap();
        expect.extend(mine.into_iter().zip(state));
    }
    // Let a running compaction finish, then settle.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let (len, _, n) = on_disk();
    let l = counts.live.load(Ordering::Relaxed) * a.providers as u64;
    println!(
        "settled: live {:.1} MiB, packs {:.1} MiB in {:.1} files (ratio {:.2}) per provider, worst ratio {worst:.2}, rss {:.1} -> {:.1} MiB",
        per(l),
        per(len),
        n as f64 / a.providers as f64,
        len as f64 / l.max(1) as f64,
        rss_first as f64 / 1024.0,
        rss_kib() as f64 / 1024.0
    );
    drop(set);
    let opened = Instant::now();
    let p = LocalDir::open("churn0", &roots[0]).await.unwrap();
    let reopen = opened.elapsed();
    let mut checked = 0;
    for (slot, st) in expect {
        match st {
            Some(cur) => {
                let got = p
                    .get_bytes(&blob_name(slot, cur.version, a.fresh), None)
                    .await
                    .unwrap();
                assert_eq!(got, body(&pool, slot, cur.version, cur.len), "slot {slot}");
                checked += 1;
            }
            None if !a.fresh => {
                let err = p
                    .get_bytes(&blob_name(slot, 0, false), None)
                    .await
                    .unwrap_err();
                assert_eq!(err.kind(), ErrorKind::NotFound, "slot {slot} came back");
            }
            None => {}
        }
    }
    let listed = p.list_all("").await.unwrap().len();
    assert_eq!(listed, checked, "blobs listed after reopen vs live");
    println!("reopen in {reopen:?}: {checked} live blobs verified, {listed} listed");
}
