//! Races: many tasks (and, on PostgreSQL, two processes) committing to the same key at once.
//! Exactly one wins; every loser is told what won.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use archipel_meta::*;

use crate::{bucket_name, key, new_bucket, version};

/// Races `tasks` only-if-absent commits on `k`; returns the winner's etag, asserting that
/// every loser got `AlreadyExists` naming it.
async fn race_if_absent(
    store: &Arc<dyn MetaStore>,
    b: &BucketName,
    k: &str,
    tag: &str,
    tasks: usize,
) -> Option<ETag> {
    let barrier = Arc::new(tokio::sync::Barrier::new(tasks));
    let mut set = tokio::task::JoinSet::new();
    for t in 0..tasks {
        let (store, b, barrier) = (store.clone(), b.clone(), barrier.clone());
        let id = format!("{tag}-{t}");
        let k = key(k);
        set.spawn(async move {
            barrier.wait().await;
            (
                version(&id).etag,
                store
                    .commit(&b, &k, &version(&id), &CommitCondition::IfAbsent)
                    .await,
            )
        });
    }
    let mut winner = None;
    let mut losers = Vec::new();
    while let Some(joined) = set.join_next().await {
        match joined.unwrap() {
            (e, Ok(s)) => {
                assert_eq!(s, Superseded::default(), "nothing to supersede");
                assert!(winner.replace(e).is_none(), "two winners on {k}");
            }
            (_, Err(MetaError::AlreadyExists { current_etag, .. })) => losers.push(current_etag),
            (_, Err(other)) => panic!("a loser must be told AlreadyExists, got {other}"),
        }
    }
    if let Some(w) = &winner {
        assert!(losers.iter().all(|l| l == w), "losers must name the winner");
    }
    winner
}

pub(crate) async fn only_if_absent_race_has_exactly_one_winner(store: Arc<dyn MetaStore>) {
    store.create_bucket(&new_bucket("race")).await.unwrap();
    let b = bucket_name("race");
    for k in ["k0", "k1", "k2", "k3", "k4"] {
        let winner = race_if_absent(&store, &b, k, k, 16)
            .await
            .expect("someone wins an empty key");
        assert_eq!(
            store.get(&b, &key(k)).await.unwrap().unwrap().version.etag,
            winner
        );
    }
}

pub(crate) async fn if_match_race_has_exactly_one_winner(store: Arc<dyn MetaStore>) {
    store.create_bucket(&new_bucket("race")).await.unwrap();
    let b = bucket_name("race");
    let k = key("counter");
    store
        .commit(&b, &k, &version("base"), &CommitCondition::Unconditional)
        .await
        .unwrap();
    let base = version("base").etag;
    let barrier = Arc::new(tokio::sync::Barrier::new(RACERS));
    let mut set = tokio::task::JoinSet::new();
    for t in 0..RACERS {
        let (store, b, k, base) = (store.clone(), b.clone(), k.clone(), base.clone());
        let barrier = barrier.clone();
        set.spawn(async move {
            barrier.wait().await;
            let v = version(&format!("next-{t}"));
            (
                v.etag.clone(),
                store
                    .commit(&b, &k, &v, &CommitCondition::IfMatch(base))
                    .await,
            )
        });
    }
    let mut winners = Vec::new();
    let mut losers = Vec::new();
    while let Some(joined) = set.join_next().await {
        match joined.unwrap() {
            (e, Ok(s)) => {
                assert_eq!(s.previous.unwrap().version, version("base"));
                winners.push(e);
            }
            (
                _,
                Err(MetaError::EtagMismatch {
                    current, expected, ..
                }),
            ) => {
                assert_eq!(expected, base);
                losers.push(current);
            }
            (_, Err(other)) => panic!("unexpected {other}"),
        }
    }
    assert_eq!(winners.len(), 1, "exactly one if-match winner");
    assert_eq!(losers.len(), RACERS - 1);
    assert!(losers.iter().all(|c| c.as_ref() == Some(&winners[0])));
    assert_eq!(
        store.get(&b, &k).await.unwrap().unwrap().version.etag,
        winners[0]
    );
}

/// Concurrent callers in the conditional-write races.
const RACERS: usize = 20;

pub(crate) async fn if_match_delete_race_has_exactly_one_winner(store: Arc<dyn MetaStore>) {
    store.create_bucket(&new_bucket("race")).await.unwrap();
    let b = bucket_name("race");
    let k = key("doomed");
    store
        .commit(&b, &k, &version("base"), &CommitCondition::Unconditional)
        .await
        .unwrap();
    let base = version("base").etag;
    let barrier = Arc::new(tokio::sync::Barrier::new(RACERS));
    let mut set = tokio::task::JoinSet::new();
    for t in 0..RACERS {
        let (store, b, k, base) = (store.clone(), b.clone(), k.clone(), base.clone());
        let barrier = barrier.clone();
        set.spawn(async move {
            barrier.wait().await;
            // Half delete only that etag, half whatever is live: all want the same version.
            let cond = if t % 2 == 0 {
                DeleteCondition::IfMatch(base)
            } else {
                DeleteCondition::IfExists
            };
            store.delete(&b, &k, &cond).await
        });
    }
    let mut winners = 0;
    while let Some(joined) = set.join_next().await {
        match joined.unwrap() {
            Ok(s) => {
                assert_eq!(s.previous.unwrap().version, version("base"));
                winners += 1;
            }
            Err(MetaError::EtagMismatch { current: None, .. })
            | Err(MetaError::NoLiveVersion {
                delete_marker: false,
                ..
            }) => {}
            Err(other) => panic!("a loser must be told the key is gone, got {other}"),
        }
    }
    assert_eq!(
        winners, 1,
        "exactly one conditional delete removes the version"
    );
    assert_eq!(store.get(&b, &k).await.unwrap(), None);
}

/// `IfExists` commits racing one delete: each commit is decided on the version current in its
/// own transaction, so none lands on the absent key after the delete (a check-then-commit
/// would resurrect it), and the winners form one chain of replacements.
pub(crate) async fn if_exists_commits_racing_a_delete_never_resurrect_the_key(
    store: Arc<dyn MetaStore>,
) {
    store.create_bucket(&new_bucket("race")).await.unwrap();
    let b = bucket_name("race");
    let k = key("contended");
    store
        .commit(&b, &k, &version("base"), &CommitCondition::Unconditional)
        .await
        .unwrap();
    let barrier = Arc::new(tokio::sync::Barrier::new(RACERS + 1));
    let mut commits = tokio::task::JoinSet::new();
    for t in 0..RACERS {
        let (store, b, k, barrier) = (store.clone(), b.clone(), k.clone(), barrier.clone());
        commits.spawn(async move {
            barrier.wait().await;
            let v = version(&format!("next-{t}"));
            let got = store.commit(&b, &k, &v, &CommitCondition::IfExists).await;
            (v.etag, got)
        });
    }
    let deleter = {
        let (store, b, k) = (store.clone(), b.clone(), k.clone());
        tokio::spawn(async move {
            barrier.wait().await;
            // Let some commits go first, so the delete lands in the middle of the race.
            tokio::task::yield_now().await;
            store.delete(&b, &k, &DeleteCondition::Unconditional).await
        })
    };
    // Each winner's superseded etag; every version is superseded at most once.
    let mut superseded = std::collections::BTreeSet::new();
    let mut won = std::collections::BTreeSet::new();
    while let Some(joined) = commits.join_next().await {
        match joined.unwrap() {
            (etag, Ok(s)) => {
                let prev = s.previous.expect("IfExists never commits over nothing");
                assert!(!prev.version.delete_marker);
                assert!(
                    superseded.insert(prev.version.etag),
                    "a version was replaced twice"
                );
                won.insert(etag);
            }
            (
                _,
                Err(MetaError::NoLiveVersion {
                    delete_marker: false,
                    ..
                }),
            ) => {}
            (_, Err(other)) => panic!("a loser must be told no version is live, got {other}"),
        }
    }
    let deleted = deleter
        .await
        .unwrap()
        .unwrap()
        .previous
        .expect("the delete removed the latest version")
        .version
        .etag;
    assert!(
        deleted == version("base").etag || won.contains(&deleted),
        "the delete removed a committed version"
    );
    assert!(
        !superseded.contains(&deleted),
        "a commit replaced the version after it was deleted"
    );
    // Every superseded version is base or a winner; the deleted one ends the chain.
    for e in &superseded {
        assert!(*e == version("base").etag || won.contains(e), "{e}");
    }
    assert_eq!(superseded.len(), won.len(), "one replacement per winner");
    assert_eq!(
        store.get(&b, &k).await.unwrap(),
        None,
        "no commit resurrected the deleted key"
    );
}

const CHILD_ENV: &str = "ARCHIPEL_META_RACE_SCHEMA";
const KEYS: usize = 10;
const TASKS: usize = 8;

/// The racer run by each child process: waits for the parent's "go" checkpoint, then races
/// every key and prints `WON <key> <etag>` for each it won. Without the child environment it
/// races against itself on an embedded store, so it is an ordinary test too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn racer_process() {
    let (store, tag, harness) = match std::env::var(CHILD_ENV) {
        Ok(schema) => {
            let url = std::env::var(crate::PG_ENV).unwrap();
            let store: Arc<dyn MetaStore> = Arc::new(crate::postgres_in(&url, &schema).await);
            println!("READY");
            let go = CheckpointName::new("go").unwrap();
            while store.get_checkpoint(&go).await.unwrap().is_none() {
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
            (store, format!("p{}", std::process::id()), None)
        }
        Err(_) => {
            let h = crate::embedded().await;
            h.store.create_bucket(&new_bucket("race")).await.unwrap();
            (h.dyn_store(), "solo".to_string(), Some(h))
        }
    };
    let b = bucket_name("race");
    for i in 0..KEYS {
        let k = format!("key-{i}");
        if let Some(e) = race_if_absent(&store, &b, &k, &format!("{tag}-{i}"), TASKS).await {
            println!("WON {k} {e}");
        }
    }
    if let Some(h) = harness {
        // Alone, this process wins every key.
        for i in 0..KEYS {
            assert!(
                h.store
                    .get(&b, &key(&format!("key-{i}")))
                    .await
                    .unwrap()
                    .is_some()
            );
        }
        h.finish().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_two_processes_race_with_exactly_one_winner_per_key() {
    let Some(url) = crate::pg_url() else { return };
    let schema = crate::fresh_schema("race");
    let store = crate::postgres_in(&url, &schema).await;
    store.create_bucket(&new_bucket("race")).await.unwrap();
    let exe = std::env::current_exe().unwrap();
    let mut children: Vec<_> = (0..2)
        .map(|_| {
            Command::new(&exe)
                .args([
                    "--exact",
                    "race::racer_process",
                    "--nocapture",
                    "--test-threads=1",
                ])
                .env(CHILD_ENV, &schema)
                .env(crate::PG_ENV, &url)
                .stdout(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    // Read each child's output on a thread; tell the parent when both are ready.
    let (ready_tx, ready_rx) = std::sync::mpsc::channel();
    let readers: Vec<_> = children
        .iter_mut()
        .map(|c| {
            let out = BufReader::new(c.stdout.take().unwrap());
            let ready_tx = ready_tx.clone();
            std::thread::spawn(move || {
                let mut won = Vec::new();
                for line in out.lines() {
                    let line = line.unwrap();
                    // libtest prints "test race::racer_process ... " before the first line.
                    if line.ends_with("READY") {
                        ready_tx.send(()).unwrap();
                    } else if let Some((_, rest)) = line.split_once("WON ") {
                        won.push(rest.to_string());
                    }
                }
                won
            })
        })
        .collect();
    for _ in 0..2 {
        ready_rx
            .recv_timeout(Duration::from_secs(120))
            .expect("child ready");
    }
    store
        .put_checkpoint(&CheckpointName::new("go").unwrap(), b"go")
        .await
        .unwrap();
    for c in &mut children {
        assert!(c.wait().unwrap().success(), "a racer process failed");
    }
    let won: Vec<Vec<String>> = readers.into_iter().map(|r| r.join().unwrap()).collect();
    let b = bucket_name("race");
    for i in 0..KEYS {
        let k = format!("key-{i}");
        let claims: Vec<&String> = won
            .iter()
            .flatten()
            .filter(|w| w.split(' ').next() == Some(k.as_str()))
            .collect();
        assert_eq!(
            claims.len(),
            1,
            "{k}: exactly one winner across both processes, got {claims:?}"
        );
        let current = store.get(&b, &key(&k)).await.unwrap().unwrap().version.etag;
        assert_eq!(
            claims[0],
            &format!("{k} {current}"),
            "the store holds the winner's version"
        );
    }
    // Both processes really competed (each won at least once is likely, not certain, so only
    // the totals are asserted) and the schema is dropped.
    assert_eq!(won.iter().map(Vec::len).sum::<usize>(), KEYS);
    store.close().await;
    crate::drop_schema(&url, &schema).await;
}

/// Of concurrent takers of a free lease, exactly one holds it.
pub(crate) async fn lease_race_has_exactly_one_holder(store: Arc<dyn MetaStore>) {
    let l = CheckpointName::new("job:race").unwrap();
    let barrier = Arc::new(tokio::sync::Barrier::new(20));
    let tasks: Vec<_> = (0..20)
        .map(|i| {
            let (store, l, barrier) = (store.clone(), l.clone(), barrier.clone());
            tokio::spawn(async move {
                barrier.wait().await;
                store
                    .take_lease(
                        &l,
                        &format!("owner-{i}"),
                        UnixMillis(1_000),
                        UnixMillis(9_000),
                    )
                    .await
                    .unwrap()
            })
        })
        .collect();
    let mut won = 0;
    for t in tasks {
        won += usize::from(t.await.unwrap());
    }
    assert_eq!(won, 1);
}
