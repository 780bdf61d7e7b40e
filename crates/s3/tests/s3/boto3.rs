//! boto3 (the AWS SDK for Python) over every operation family, S3's error codes, and
//! presigned GET and PUT URLs fetched with curl: `clients/boto3_suite.py`.

use futures::StreamExt;

use crate::harness::{ok, run, start};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn boto3_suite_passes() {
    let Some(python) = archipel_testkit::require_tool("python3", "the boto3 gateway tests") else {
        return;
    };
    if archipel_testkit::require_tool("curl", "presigned URL tests").is_none() {
        return;
    }
    let probe = run(
        &python,
        &["-c", "import boto3"],
        &[],
        std::path::Path::new("."),
    )
    .await;
    if !probe.status.success() {
        assert!(
            !archipel_testkit::in_ci(),
            "boto3 is not installed (pip install boto3)"
        );
        println!("SKIP: boto3 is not installed; the boto3 gateway tests did not run");
        return;
    }
    let srv = start().await;
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/s3/clients/boto3_suite.py"
    );
    let out = run(
        &python,
        &[script],
        &[("ENDPOINT", srv.endpoint.clone())],
        std::path::Path::new("."),
    )
    .await;
    let stdout = ok(&out, "boto3 suite");
    assert!(stdout.contains("checks passed"), "{stdout}");
    println!("{stdout}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_and_hostile_requests_get_s3_errors_and_store_nothing() {
    let Some(python) = archipel_testkit::require_tool("python3", "the bad-input gateway tests")
    else {
        return;
    };
    let probe = run(
        &python,
        &["-c", "import boto3"],
        &[],
        std::path::Path::new("."),
    )
    .await;
    if !probe.status.success() {
        assert!(
            !archipel_testkit::in_ci(),
            "boto3 is not installed (pip install boto3)"
        );
        println!("SKIP: boto3 is not installed; the bad-input gateway tests did not run");
        return;
    }
    let srv = start().await;
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/s3/clients/bad_input.py");
    let out = run(
        &python,
        &[script],
        &[("ENDPOINT", srv.endpoint.clone())],
        std::path::Path::new("."),
    )
    .await;
    let stdout = ok(&out, "bad input suite");
    assert!(stdout.contains("checks passed"), "{stdout}");
    println!("{stdout}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn access_keys_do_what_their_grants_allow() {
    let Some(python) = archipel_testkit::require_tool("python3", "the access-key gateway tests")
    else {
        return;
    };
    let probe = run(
        &python,
        &["-c", "import boto3"],
        &[],
        std::path::Path::new("."),
    )
    .await;
    if !probe.status.success() {
        assert!(
            !archipel_testkit::in_ci(),
            "boto3 is not installed (pip install boto3)"
        );
        println!("SKIP: boto3 is not installed; the access-key gateway tests did not run");
        return;
    }
    let srv = start().await;
    let e = &srv.engine;
    for b in ["shared", "private"] {
        e.create_bucket(b, "root", None).await.unwrap();
    }
    let put = |b: &'static str, k: &'static str, data: &'static [u8]| {
        let e = e.clone();
        async move {
            let body = futures::stream::iter(vec![Ok(bytes::Bytes::from_static(data))]).boxed();
            e.put_object(b, k, body, archipel_engine::PutOptions::default())
                .await
                .unwrap();
        }
    };
    put("shared", "doc", b"shared doc").await;
    put("private", "secret", b"private").await;
    let reader = e.create_access_key("reader").await.unwrap();
    let writer = e.create_access_key("writer").await.unwrap();
    let read = archipel_engine::Permissions {
        read: true,
        ..Default::default()
    };
    let rw = archipel_engine::Permissions {
        read: true,
        write: true,
        admin: false,
    };
    e.grant(&reader.id, "shared", read).await.unwrap();
    e.grant(&writer.id, "shared", rw).await.unwrap();
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/s3/clients/access.py");
    let out = run(
        &python,
        &[script],
        &[
            ("ENDPOINT", srv.endpoint.clone()),
            ("READER_ID", reader.id.clone()),
            ("READER_SECRET", reader.secret.clone()),
            ("WRITER_ID", writer.id.clone()),
            ("WRITER_SECRET", writer.secret.clone()),
        ],
        std::path::Path::new("."),
    )
    .await;
    let stdout = ok(&out, "access suite");
    assert!(stdout.contains("checks passed"), "{stdout}");
}
