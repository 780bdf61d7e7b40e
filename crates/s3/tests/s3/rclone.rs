//! rclone (Debian), unmodified, with its generic S3 backend: `copy`, `check`, `sync`.

use crate::harness::{ACCESS_KEY, SECRET_KEY, ok, pattern, run, start};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rclone_copies_checks_and_syncs() {
    let Some(rclone) = archipel_testkit::require_tool("rclone", "the S3 gateway tests with rclone")
    else {
        return;
    };
    let srv = start().await;
    let work = tempfile::tempdir().unwrap();
    let w = work.path();
    let env = vec![
        ("RCLONE_CONFIG", "/dev/null".to_string()),
        ("RCLONE_CONFIG_ARCH_TYPE", "s3".to_string()),
        ("RCLONE_CONFIG_ARCH_PROVIDER", "Other".to_string()),
        ("RCLONE_CONFIG_ARCH_ENDPOINT", srv.endpoint.clone()),
        ("RCLONE_CONFIG_ARCH_ACCESS_KEY_ID", ACCESS_KEY.to_string()),
        (
            "RCLONE_CONFIG_ARCH_SECRET_ACCESS_KEY",
            SECRET_KEY.to_string(),
        ),
        ("RCLONE_CONFIG_ARCH_REGION", "us-east-1".to_string()),
        ("RCLONE_CONFIG_ARCH_FORCE_PATH_STYLE", "true".to_string()),
    ];
    let src = w.join("src");
    let files: Vec<(String, Vec<u8>)> = vec![
        ("a.txt".into(), b"alpha\n".to_vec()),
        ("empty".into(), Vec::new()),
        ("dir/b.bin".into(), pattern(1, 3 * 1024 * 1024 + 5)),
        ("dir/deep/c.bin".into(), pattern(2, 70_000)),
        ("big.bin".into(), pattern(3, 40 * 1024 * 1024)), // rclone's multipart above 200 MiB is off; 40 MiB is one PUT
    ];
    for (name, data) in &files {
        let p = src.join(name);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, data).unwrap();
    }
    let rc = |args: &[&str]| {
        let mut a = args.to_vec();
        a.push("--s3-upload-cutoff");
        a.push("8M"); // and multipart above 8 MiB
        a.push("--s3-chunk-size");
        a.push("5M");
        a.iter().map(|s| s.to_string()).collect::<Vec<String>>()
    };
    let go = |args: Vec<String>, what: &'static str| {
        let (rclone, env, w) = (rclone.clone(), env.clone(), w.to_path_buf());
        async move {
            let refs: Vec<&str> = args.iter().map(String::as_str).collect();
            let envs: Vec<(&str, String)> = env.iter().map(|(k, v)| (*k, v.clone())).collect();
            ok(&run(&rclone, &refs, &envs, &w).await, what)
        }
    };
    go(rc(&["mkdir", "arch:rc-bucket"]), "rclone mkdir").await;
    go(rc(&["copy", "src", "arch:rc-bucket/data"]), "rclone copy").await;
    let info = srv
        .engine
        .head_object("rc-bucket", "data/big.bin")
        .await
        .unwrap();
    assert!(info.parts > 1, "rclone uploaded big.bin in parts: {info:?}");
    go(rc(&["check", "src", "arch:rc-bucket/data"]), "rclone check").await;
    go(
        rc(&["check", "--download", "src", "arch:rc-bucket/data"]),
        "rclone check --download",
    )
    .await;
    // Change the source, sync, and the remote follows (deletions included).
    std::fs::remove_file(src.join("a.txt")).unwrap();
    std::fs::write(src.join("dir/new.txt"), b"new\n").unwrap();
    go(rc(&["sync", "src", "arch:rc-bucket/data"]), "rclone sync").await;
    go(
        rc(&["check", "src", "arch:rc-bucket/data"]),
        "rclone check after sync",
    )
    .await;
    let listing = go(rc(&["lsf", "-R", "arch:rc-bucket/data"]), "rclone lsf").await;
    assert!(
        !listing.contains("a.txt") && listing.contains("dir/new.txt"),
        "{listing}"
    );
    go(
        rc(&["copy", "arch:rc-bucket/data", "back"]),
        "rclone copy down",
    )
    .await;
    for (name, data) in files.iter().filter(|(n, _)| n != "a.txt") {
        assert!(
            std::fs::read(w.join("back").join(name)).unwrap() == *data,
            "{name}"
        );
    }
}
