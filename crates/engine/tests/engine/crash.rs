//! A process killed (SIGKILL) in the middle of writing: after a restart every acknowledged
//! object reads back, no other object is half-visible, and the orphan scan reclaims every
//! blob no committed object references.
//!
//! The writer is this test binary run again as a child (`crash_child_writer`, which only acts
//! when `ARCHIPEL_CRASH_CHILD` names a vault directory), killed at a random moment.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use archipel_engine::{EngineError, PutOptions};

use crate::harness::{Vault, body, pattern, read_all, test_options};

const CHILD_ENV: &str = "ARCHIPEL_CRASH_CHILD";
const START_ENV: &str = "ARCHIPEL_CRASH_START";

/// Writes objects forever, printing `committed <key> <len> <seed>` after each acknowledged put.
/// Only runs as the child of `killed_writer_leaves_only_whole_objects_and_reclaimable_orphans`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crash_child_writer() {
    let Ok(dir) = std::env::var(CHILD_ENV) else {
        return; // not the child
    };
    let v = Vault::open_at(std::path::Path::new(&dir), 6, test_options()).await;
    let _ = v.engine.create_bucket("bkt", "owner", None).await;
    let mut rng = fastrand::Rng::new();
    let start: u64 = std::env::var(START_ENV).unwrap().parse().unwrap();
    for i in start.. {
        let seed = rng.u64(..);
        let len = rng.usize(0..3 * 1024 * 1024);
        let key = format!("k{i}");
        v.engine
            .put_object(
                "bkt",
                &key,
                body(&pattern(seed, len), 64 * 1024),
                PutOptions::default(),
            )
            .await
            .unwrap();
        println!("committed {key} {len} {seed}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_writer_leaves_only_whole_objects_and_reclaimable_orphans() {
    let tmp = tempfile::tempdir().unwrap();
    let exe = std::env::current_exe().unwrap();
    let mut committed: Vec<(String, usize, u64)> = Vec::new();
    let mut rng = fastrand::Rng::with_seed(7);
    for round in 0..3 {
        let mut child = Command::new(&exe)
            .args([
                "--exact",
                "crash::crash_child_writer",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(CHILD_ENV, tmp.path())
            .env(START_ENV, (round * 1000).to_string())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    return;
                }
            }
        });
        // Let it commit a few objects, then kill it at a random moment of a write.
        let round_start = committed.len();
        let wanted = round_start + 3;
        let started = Instant::now();
        while committed.len() < wanted && started.elapsed() < Duration::from_secs(60) {
            if let Ok(line) = rx.recv_timeout(Duration::from_millis(100))
                && let Some(rest) = line.strip_prefix("committed ")
            {
                let f: Vec<&str> = rest.split(' ').collect();
                committed.push((
                    f[0].to_string(),
                    f[1].parse().unwrap(),
                    f[2].parse().unwrap(),
                ));
            }
        }
        std::thread::sleep(Duration::from_millis(rng.u64(0..150)));
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        for line in rx.iter() {
            if let Some(rest) = line.strip_prefix("committed ") {
                let f: Vec<&str> = rest.split(' ').collect();
                committed.push((
                    f[0].to_string(),
                    f[1].parse().unwrap(),
                    f[2].parse().unwrap(),
                ));
            }
        }
        assert!(
            committed.len() >= wanted,
            "round {round}: the child committed too little"
        );

        // Restart: acknowledged objects are whole; others are absent or whole.
        let v = Vault::open_at(tmp.path(), 6, test_options()).await;
        for (key, len, seed) in &committed {
            let got = read_all(&v.engine, "bkt", key).await.unwrap();
            assert!(
                got == pattern(*seed, *len),
                "{key} lost or damaged by the crash"
            );
        }
        let next = format!("k{}", round * 1000 + committed.len() - round_start);
        match v.engine.head_object("bkt", &next).await {
            Err(EngineError::NoSuchKey { .. }) => {}
            Ok(_) => {
                // Committed just before the kill, before it was printed: must be whole.
                read_all(&v.engine, "bkt", &next).await.unwrap();
            }
            Err(e) => panic!("{e}"),
        }
        // The interrupted write's shards are orphans; the scan removes exactly those.
        let r = v.engine.reclaim_orphans(Duration::ZERO).await.unwrap();
        assert!(r.errors.is_empty() && r.unrecognized == 0, "{r:?}");
        let live = archipel_meta::MetaStoreExt::list_all(
            v.engine.meta().as_ref(),
            &archipel_meta::BucketName::s3("bkt").unwrap(),
            "",
        )
        .await
        .unwrap();
        assert_eq!(
            v.total_blobs().await,
            live.len() * 6,
            "round {round}: {r:?}"
        );
        for (key, len, seed) in &committed {
            assert!(read_all(&v.engine, "bkt", key).await.unwrap() == pattern(*seed, *len));
        }
        drop(v);
    }
}
