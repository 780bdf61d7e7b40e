//! restic (Debian), unmodified, backing up to the gateway: `init`, `backup`,
//! `check --read-data`, `restore`; the restored files equal the originals.

use crate::harness::{ok, pattern, run, start};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restic_backs_up_checks_and_restores() {
    let Some(restic) = archipel_testkit::require_tool("restic", "the S3 gateway tests with restic")
    else {
        return;
    };
    let srv = start().await;
    srv.engine
        .create_bucket("restic", "root", None)
        .await
        .unwrap();
    let work = tempfile::tempdir().unwrap();
    let w = work.path();
    let env = vec![
        (
            "RESTIC_REPOSITORY",
            format!("s3:{}/restic/repo", srv.endpoint),
        ),
        (
            "RESTIC_PASSWORD",
            "correct horse battery staple".to_string(),
        ),
        ("RESTIC_CACHE_DIR", w.join("cache").display().to_string()),
    ];
    let data = w.join("data");
    let files: Vec<(String, Vec<u8>)> = vec![
        ("notes.txt".into(), b"restic over archipel\n".to_vec()),
        ("photos/1.raw".into(), pattern(1, 6 * 1024 * 1024)),
        ("photos/2.raw".into(), pattern(2, 9 * 1024 * 1024 + 1)),
        ("empty.txt".into(), Vec::new()),
    ];
    for (name, bytes) in &files {
        let p = data.join(name);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, bytes).unwrap();
    }
    let go = |args: Vec<&'static str>, what: &'static str| {
        let (restic, env, w) = (restic.clone(), env.clone(), w.to_path_buf());
        async move {
            let envs: Vec<(&str, String)> = env.iter().map(|(k, v)| (*k, v.clone())).collect();
            ok(&run(&restic, &args, &envs, &w).await, what)
        }
    };
    go(vec!["init"], "restic init").await;
    go(vec!["backup", "data"], "restic backup").await;
    // A second snapshot after a change.
    std::fs::write(data.join("notes.txt"), b"changed\n").unwrap();
    go(vec!["backup", "data"], "restic backup 2").await;
    let check = go(vec!["check", "--read-data"], "restic check --read-data").await;
    assert!(check.contains("no errors were found"), "{check}");
    go(
        vec!["restore", "latest", "--target", "restored"],
        "restic restore",
    )
    .await;
    for (name, bytes) in &files {
        let want: &[u8] = if name == "notes.txt" {
            b"changed\n"
        } else {
            bytes
        };
        let got = std::fs::read(w.join("restored/data").join(name)).unwrap();
        assert!(got == want, "{name} restored differently");
    }
    let snaps = go(vec!["snapshots"], "restic snapshots").await;
    assert!(snaps.contains("2 snapshots"), "{snaps}");
}
