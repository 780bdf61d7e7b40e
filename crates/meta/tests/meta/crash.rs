//! Crash safety of the embedded store: a child process streams commits and reports each one
//! acknowledged; the parent kills it with SIGKILL mid-stream, reopens the directory, and checks
//! that the store is intact and holds every acknowledged commit.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use archipel_meta::*;

use crate::{bucket_name, key, manifest_of, new_bucket, version};

const CHILD_ENV: &str = "ARCHIPEL_META_CRASH_DIR";
const WRITERS: usize = 16;

/// Streams commits from `WRITERS` tasks, printing `ACK <key>` after each acknowledgement,
/// until `limit` commits per writer (or until killed).
async fn stream_commits(store: Arc<SqlMetaStore>, run: &str, limit: usize) {
    let b = bucket_name("crash");
    match store.create_bucket(&new_bucket("crash")).await {
        Ok(()) | Err(MetaError::BucketExists { .. }) => {}
        Err(e) => panic!("{e}"),
    }
    let mut set = tokio::task::JoinSet::new();
    for w in 0..WRITERS {
        let (store, b, run) = (store.clone(), b.clone(), run.to_string());
        set.spawn(async move {
            for i in 0..limit {
                let k = format!("{run}/w{w:02}/{i:06}");
                store
                    .commit(&b, &key(&k), &version(&k), &CommitCondition::Unconditional)
                    .await
                    .unwrap();
                println!("ACK {k}");
            }
        });
    }
    while let Some(r) = set.join_next().await {
        r.unwrap();
    }
}

/// Checks a reopened store: intact, every acknowledged key present with its own manifest, and
/// every listed key whole.
async fn check_reopened(dir: &Path, acked: &[String]) -> usize {
    let store = SqlMetaStore::open_embedded(EmbeddedOptions::new(dir))
        .await
        .unwrap();
    store.check_integrity().await.unwrap();
    let b = bucket_name("crash");
    for k in acked {
        let got = store.get(&b, &key(k)).await.unwrap();
        assert_eq!(
            got.map(|o| o.version),
            Some(version(k)),
            "acknowledged commit {k} lost"
        );
    }
    let listed = store.list_all(&b, "").await.unwrap();
    for o in &listed {
        let v = store.get(&b, &o.key).await.unwrap().unwrap().version;
        assert_eq!(
            v.manifest,
            manifest_of(o.key.as_str()),
            "{} is whole",
            o.key
        );
    }
    store.close().await;
    listed.len()
}

/// The child's entry point. Without the child environment it is a plain test: a short
/// stream, a clean close, a reopen with everything there.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn commit_stream() {
    if let Ok(dir) = std::env::var(CHILD_ENV) {
        let store = SqlMetaStore::open_embedded(EmbeddedOptions::new(&dir))
            .await
            .unwrap();
        stream_commits(
            Arc::new(store),
            &format!("p{}", std::process::id()),
            100_000,
        )
        .await;
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(
        SqlMetaStore::open_embedded(EmbeddedOptions::new(dir.path()))
            .await
            .unwrap(),
    );
    stream_commits(store.clone(), "local", 8).await;
    store.close().await;
    drop(store);
    let acked: Vec<String> = (0..WRITERS)
        .flat_map(|w| (0..8).map(move |i| format!("local/w{w:02}/{i:06}")))
        .collect();
    assert_eq!(check_reopened(dir.path(), &acked).await, acked.len());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn embedded_store_survives_sigkill_mid_commit_stream() {
    let dir = tempfile::tempdir().unwrap();
    let mut total_acked = Vec::new();
    // Two rounds: the second kill lands on a store that was itself recovered from a kill.
    for round in 0..2 {
        let mut child = Command::new(std::env::current_exe().unwrap())
            .args([
                "--exact",
                "crash::commit_stream",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(CHILD_ENV, dir.path())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let started = Instant::now();
        let mut acked = Vec::new();
        // `lines` stays open until after the kill, so the child never writes to a closed pipe.
        for line in lines.by_ref() {
            let Ok(line) = line else { break };
            // libtest prints "test crash::commit_stream ... " before the first line.
            if let Some((_, k)) = line.split_once("ACK ") {
                acked.push(k.to_string());
            }
            // Kill after a few hundred acknowledgements (a varying number per round), while
            // the writers are still committing.
            if acked.len() >= 300 + 137 * round || started.elapsed() > Duration::from_secs(120) {
                break;
            }
        }
        child.kill().unwrap(); // SIGKILL
        let status = child.wait().unwrap();
        drop(lines);
        assert!(!status.success(), "the child was killed, not finished");
        assert!(
            acked.len() >= 300,
            "the child acknowledged only {} commits",
            acked.len()
        );
        total_acked.extend(acked);
        let listed = check_reopened(dir.path(), &total_acked).await;
        assert!(
            listed >= total_acked.len(),
            "{listed} listed, {} acknowledged",
            total_acked.len()
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_open_of_the_same_directory_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqlMetaStore::open_embedded(EmbeddedOptions::new(dir.path()))
        .await
        .unwrap();
    assert!(matches!(
        SqlMetaStore::open_embedded(EmbeddedOptions::new(dir.path())).await,
        Err(MetaError::Locked { .. })
    ));
    store.close().await;
    drop(store);
    let again = SqlMetaStore::open_embedded(EmbeddedOptions::new(dir.path()))
        .await
        .unwrap();
    again.check_integrity().await.unwrap();
    again.close().await;
}
