//! The aws cli (PyPI `awscli`), unmodified: `s3 mb/cp/sync/ls/rm`, a 100 MiB multipart upload
//! and download, and a conditional put through `s3api`.

use crate::harness::{ok, pattern, run, start};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn aws_cli_round_trips_files_syncs_and_uploads_multipart() {
    let Some(aws) = archipel_testkit::require_tool("aws", "the S3 gateway tests with the aws cli")
    else {
        return;
    };
    let srv = start().await;
    let work = tempfile::tempdir().unwrap();
    let w = work.path();
    let ep = srv.endpoint.clone();
    let aws_s3 = |args: Vec<String>| {
        let mut a = vec!["--endpoint-url".to_string(), ep.clone()];
        a.extend(args);
        a
    };
    let go = |args: Vec<String>, what: &'static str| {
        let aws = aws.clone();
        let w = w.to_path_buf();
        async move {
            let refs: Vec<&str> = args.iter().map(String::as_str).collect();
            ok(&run(&aws, &refs, &[], &w).await, what)
        }
    };
    let s = |v: &[&str]| aws_s3(v.iter().map(|x| x.to_string()).collect());

    go(s(&["s3", "mb", "s3://cli-bucket"]), "s3 mb").await;
    // Small file, and one of 100 MiB (multipart: the cli splits above 8 MiB).
    std::fs::write(w.join("small.txt"), b"hello archipel\n").unwrap();
    let big = pattern(1, 100 * 1024 * 1024 + 3);
    std::fs::write(w.join("big.bin"), &big).unwrap();
    go(
        s(&["s3", "cp", "small.txt", "s3://cli-bucket/docs/small.txt"]),
        "s3 cp small",
    )
    .await;
    go(
        s(&["s3", "cp", "big.bin", "s3://cli-bucket/big.bin"]),
        "s3 cp big (multipart)",
    )
    .await;
    let info = srv
        .engine
        .head_object("cli-bucket", "big.bin")
        .await
        .unwrap();
    assert!(
        info.parts > 1,
        "the cli uploaded big.bin in parts: {info:?}"
    );
    assert!(info.etag.ends_with(&format!("-{}", info.parts)));

    go(
        s(&["s3", "cp", "s3://cli-bucket/big.bin", "big.back"]),
        "s3 cp down big",
    )
    .await;
    assert!(std::fs::read(w.join("big.back")).unwrap() == big);
    go(
        s(&["s3", "cp", "s3://cli-bucket/docs/small.txt", "small.back"]),
        "s3 cp down small",
    )
    .await;
    assert_eq!(
        std::fs::read(w.join("small.back")).unwrap(),
        b"hello archipel\n"
    );

    // sync a tree, then list it.
    let tree = w.join("tree");
    for (i, name) in ["a.txt", "sub/b.txt", "sub/deeper/c.bin"]
        .iter()
        .enumerate()
    {
        let p = tree.join(name);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(&p, pattern(i as u64, 1000 * (i + 1))).unwrap();
    }
    go(
        s(&["s3", "sync", "tree", "s3://cli-bucket/tree/"]),
        "s3 sync up",
    )
    .await;
    let listing = go(
        s(&["s3", "ls", "--recursive", "s3://cli-bucket/tree/"]),
        "s3 ls",
    )
    .await;
    for name in ["tree/a.txt", "tree/sub/b.txt", "tree/sub/deeper/c.bin"] {
        assert!(listing.contains(name), "{name} missing from:\n{listing}");
    }
    let top = go(s(&["s3", "ls", "s3://cli-bucket/"]), "s3 ls top").await;
    assert!(
        top.contains("PRE docs/") && top.contains("PRE tree/") && top.contains("big.bin"),
        "{top}"
    );
    let buckets = go(s(&["s3", "ls"]), "s3 ls buckets").await;
    assert!(buckets.contains("cli-bucket"), "{buckets}");
    // A second sync uploads nothing (sizes and times match).
    let again = go(
        s(&["s3", "sync", "tree", "s3://cli-bucket/tree/"]),
        "s3 sync again",
    )
    .await;
    assert!(!again.contains("upload:"), "{again}");
    go(
        s(&["s3", "sync", "s3://cli-bucket/tree/", "tree.back"]),
        "s3 sync down",
    )
    .await;
    assert_eq!(
        std::fs::read(w.join("tree.back/sub/deeper/c.bin")).unwrap(),
        pattern(2, 3000)
    );

    // Conditional put: create-only succeeds once.
    let put = |key: &str| {
        s(&[
            "s3api",
            "put-object",
            "--bucket",
            "cli-bucket",
            "--key",
            key,
            "--body",
            "small.txt",
            "--if-none-match",
            "*",
        ])
    };
    go(put("once"), "conditional put").await;
    let refs: Vec<String> = put("once");
    let r: Vec<&str> = refs.iter().map(String::as_str).collect();
    let second = run(&aws, &r, &[], w).await;
    assert!(!second.status.success());
    let err = String::from_utf8_lossy(&second.stderr);
    assert!(err.contains("PreconditionFailed"), "{err}");

    // rm, recursive rm, and the bucket is empty.
    go(s(&["s3", "rm", "s3://cli-bucket/big.bin"]), "s3 rm").await;
    go(
        s(&["s3", "rm", "--recursive", "s3://cli-bucket/"]),
        "s3 rm --recursive",
    )
    .await;
    let left = go(
        s(&["s3", "ls", "--recursive", "s3://cli-bucket/"]),
        "s3 ls after rm",
    )
    .await;
    assert!(left.trim().is_empty(), "{left}");
    go(s(&["s3", "rb", "s3://cli-bucket"]), "s3 rb").await;
}
