//! The README's promise, end to end: `archipel serve` on a fresh data directory prints an
//! endpoint and credentials, and the unmodified aws cli, given exactly those, creates a bucket,
//! uploads (one file large enough to go multipart), lists, downloads byte-identical and
//! deletes; then SIGTERM stops the server cleanly.

use std::process::Command;

use crate::harness::{Server, isolate_aws, pattern, run};

#[test]
fn readme_run_command_gives_an_endpoint_the_aws_cli_uses_with_the_printed_credentials() {
    let Some(aws) = archipel_testkit::require_tool("aws", "the end-to-end README test") else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let work = tmp.path().join("work");
    std::fs::create_dir(&work).unwrap();
    let data = tmp.path().join("archipel-data");
    let server = Server::start(&data);

    // The printed one-liner works as printed (a shell, the aws cli on PATH, nothing else).
    let mut example = Command::new("sh");
    isolate_aws(&mut example);
    let (ok, out, err) = run(example.current_dir(&work).arg("-c").arg(&server.example));
    assert!(
        ok,
        "the printed example failed: {}\n{out}\n{err}",
        server.example
    );
    assert_eq!(out, "", "a fresh vault has no buckets");

    let cli = server.aws_root(&aws, &work);
    cli.ok(&["s3", "mb", "s3://readme-e2e"]);
    let small = b"hello archipel\n".to_vec();
    // 20 MiB and a bit: the aws cli uploads it in 8 MiB parts.
    let big = pattern(7, 20 * 1024 * 1024 + 13);
    std::fs::write(work.join("small.txt"), &small).unwrap();
    std::fs::write(work.join("big.bin"), &big).unwrap();
    let up = cli.ok(&["s3", "cp", "small.txt", "s3://readme-e2e/docs/small.txt"]);
    assert!(up.contains("upload:"), "{up}");
    let up = cli.ok(&["s3", "cp", "big.bin", "s3://readme-e2e/big.bin"]);
    assert!(up.contains("upload:"), "{up}");

    // Multipart: the etag of a multipart object is `<md5 of md5s>-<parts>`.
    let head = cli.ok(&[
        "s3api",
        "head-object",
        "--bucket",
        "readme-e2e",
        "--key",
        "big.bin",
    ]);
    let head: serde_json::Value = serde_json::from_str(&head).unwrap();
    assert_eq!(head["ContentLength"], big.len() as u64, "{head}");
    assert!(
        head["ETag"].as_str().unwrap().ends_with("-3\""),
        "20 MiB in 8 MiB parts: {head}"
    );

    let buckets = cli.ok(&["s3", "ls"]);
    assert!(buckets.contains("readme-e2e"), "{buckets}");
    let listing = cli.ok(&["s3", "ls", "--recursive", "s3://readme-e2e/"]);
    assert!(
        listing.contains(&format!("{} big.bin", big.len())),
        "{listing}"
    );
    assert!(
        listing.contains(&format!("{} docs/small.txt", small.len())),
        "{listing}"
    );

    cli.ok(&["s3", "cp", "s3://readme-e2e/big.bin", "big.back"]);
    cli.ok(&["s3", "cp", "s3://readme-e2e/docs/small.txt", "small.back"]);
    assert!(
        std::fs::read(work.join("big.back")).unwrap() == big,
        "big.bin came back different"
    );
    assert_eq!(std::fs::read(work.join("small.back")).unwrap(), small);

    let rm = cli.ok(&["s3", "rm", "s3://readme-e2e/big.bin"]);
    assert!(rm.contains("delete: s3://readme-e2e/big.bin"), "{rm}");
    cli.ok(&["s3", "rm", "s3://readme-e2e/docs/small.txt"]);
    let listing = cli.ok(&["s3", "ls", "--recursive", "s3://readme-e2e/"]);
    assert_eq!(listing, "", "everything deleted");
    cli.ok(&["s3", "rb", "s3://readme-e2e"]);

    // Wrong credentials are refused, not ignored.
    let err = cli
        .with_key(&server.access_key, "not-the-secret-key")
        .fails(&["s3", "ls"]);
    assert!(err.contains("SignatureDoesNotMatch"), "{err}");

    let log = server.stop();
    assert!(log.contains("stopped"), "{log}");
}
