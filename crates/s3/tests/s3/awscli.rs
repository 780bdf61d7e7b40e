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

/// Two threads spinning until dropped: the machine loaded while a client test runs.
struct CpuHog {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    threads: Vec<std::thread::JoinHandle<()>>,
}

impl CpuHog {
    fn start(n: usize) -> Self {
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let threads = (0..n)
            .map(|_| {
                let stop = stop.clone();
                std::thread::spawn(move || {
                    let mut x = 0u64;
                    while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                        for i in 0..100_000u64 {
                            x = std::hint::black_box(x.wrapping_mul(6364136223846793005) ^ i);
                        }
                    }
                })
            })
            .collect();
        CpuHog { stop, threads }
    }
}

impl Drop for CpuHog {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

/// Issue 14: `aws s3 cp big` then `aws s3 sync` of a tree with empty files failed with
/// `'ETag'` — botocore's `Expect: 100-continue` on an empty PUT, answered without
/// `100 Continue`, poisoned the pooled connection for the next UploadPart. Ten rounds in a row
/// with both cores busy, with the aws cli on PATH and (under CI) the newest one from PyPI
/// (`ARCHIPEL_TEST_AWS_LATEST`, installed by `.ci/run`); every response must parse (`--debug`
/// shows urllib3's `Failed to parse headers` otherwise, even when the upload survives).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn aws_cli_cp_then_sync_with_empty_files_passes_ten_rounds_under_cpu_load() {
    let Some(aws) = archipel_testkit::require_tool("aws", "the S3 gateway tests with the aws cli")
    else {
        return;
    };
    let mut clis = vec![aws];
    match std::env::var_os("ARCHIPEL_TEST_AWS_LATEST") {
        Some(p) => clis.push(p.into()),
        None => {
            assert!(
                !archipel_testkit::in_ci(),
                "ARCHIPEL_TEST_AWS_LATEST (the newest aws cli from PyPI) must be set under CI"
            );
            eprintln!(
                "SKIP: ARCHIPEL_TEST_AWS_LATEST is not set; the 100-continue rounds run with the aws cli on PATH only"
            );
        }
    }
    let srv = start().await;
    let work = tempfile::tempdir().unwrap();
    let w = work.path();
    // One file in 3 parts (the cli splits above 8 MiB), 40 of 0 B–600 KiB, 5 of them empty.
    let big = pattern(7, 17 * 1024 * 1024 + 5);
    std::fs::write(w.join("big.bin"), &big).unwrap();
    let tree = w.join("tree");
    std::fs::create_dir_all(&tree).unwrap();
    std::fs::write(tree.join("big.bin"), &big).unwrap();
    for i in 0..40usize {
        let len = if i % 8 == 3 {
            0
        } else {
            (i * 79_113) % (600 * 1024)
        };
        std::fs::write(tree.join(format!("f{i:02}")), pattern(i as u64, len)).unwrap();
    }
    let ep = srv.endpoint.clone();
    let aws_run = |cli: std::path::PathBuf, args: Vec<String>| {
        let ep = ep.clone();
        let w = w.to_path_buf();
        async move {
            let mut a = vec!["--debug".to_string(), "--endpoint-url".to_string(), ep];
            a.extend(args);
            let refs: Vec<&str> = a.iter().map(String::as_str).collect();
            run(&cli, &refs, &[], &w).await
        }
    };
    let check = |out: &std::process::Output, what: &str| {
        let stderr = String::from_utf8_lossy(&out.stderr);
        let defects: Vec<&str> = stderr
            .lines()
            .filter(|l| l.contains("Failed to parse headers") || l.contains("upload failed"))
            .take(3)
            .collect();
        assert!(
            out.status.success() && defects.is_empty(),
            "{what} ({}): {defects:#?}\nstdout: {}",
            out.status,
            String::from_utf8_lossy(&out.stdout)
        );
    };
    let out = aws_run(
        clis[0].clone(),
        vec!["s3".into(), "mb".into(), "s3://expect-rounds".into()],
    )
    .await;
    check(&out, "s3 mb");
    let _hog = CpuHog::start(2);
    for (c, cli) in clis.iter().enumerate() {
        for round in 0..10 {
            let prefix = format!("s3://expect-rounds/c{c}-r{round}");
            let out = aws_run(
                cli.clone(),
                vec![
                    "s3".into(),
                    "cp".into(),
                    "big.bin".into(),
                    format!("{prefix}/big.bin"),
                ],
            )
            .await;
            check(
                &out,
                &format!("{} round {round}: s3 cp big.bin", cli.display()),
            );
            let out = aws_run(
                cli.clone(),
                vec![
                    "s3".into(),
                    "sync".into(),
                    "tree".into(),
                    format!("{prefix}/sync/"),
                ],
            )
            .await;
            check(&out, &format!("{} round {round}: s3 sync", cli.display()));
            for i in 0..40usize {
                let key = format!("c{c}-r{round}/sync/f{i:02}");
                let want = if i % 8 == 3 {
                    0
                } else {
                    (i * 79_113) % (600 * 1024)
                };
                let info = srv.engine.head_object("expect-rounds", &key).await.unwrap();
                assert_eq!(info.size, want as u64, "round {round}: {key}");
            }
        }
    }
    let info = srv
        .engine
        .head_object("expect-rounds", "c0-r9/sync/big.bin")
        .await
        .unwrap();
    assert_eq!(info.size, big.len() as u64);
    assert!(info.parts > 1, "{info:?}");
}
