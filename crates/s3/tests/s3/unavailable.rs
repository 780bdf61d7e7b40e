//! Too few providers: a GET answers `503 ServiceUnavailable` with `Retry-After` at once (no
//! hang, no wrong bytes), signed by curl's own SigV4 implementation.

use std::time::{Duration, Instant};

use archipel_engine::PutOptions;
use bytes::Bytes;
use futures::StreamExt;

use crate::harness::{ACCESS_KEY, SECRET_KEY, run, start};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn too_few_providers_is_503_with_retry_after() {
    let Some(curl) = archipel_testkit::require_tool("curl", "the gateway's 503 test") else {
        return;
    };
    let srv = start().await;
    srv.engine
        .create_bucket("gone", "root", None)
        .await
        .unwrap();
    let body = futures::stream::iter(vec![Ok(Bytes::from_static(b"precious bytes"))]).boxed();
    srv.engine
        .put_object("gone", "k", body, PutOptions::default())
        .await
        .unwrap();
    // Three of six providers lose everything: 4+2 cannot read.
    for i in 1..=3 {
        std::fs::remove_dir_all(srv.dir.join(format!("p{i}"))).unwrap();
    }
    let url = format!("{}/gone/k", srv.endpoint);
    let user = format!("{ACCESS_KEY}:{SECRET_KEY}");
    let t = Instant::now();
    let out = run(
        &curl,
        &[
            "-s",
            "-i",
            "--aws-sigv4",
            "aws:amz:us-east-1:s3",
            "--user",
            &user,
            // The hash of the empty body (curl does not add the header S3 requires).
            "-H",
            "x-amz-content-sha256: e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
            &url,
        ],
        &[],
        std::path::Path::new("."),
    )
    .await;
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        t.elapsed() < Duration::from_secs(10),
        "answered in {:?}",
        t.elapsed()
    );
    assert!(text.starts_with("HTTP/1.1 503"), "{text}");
    assert!(
        text.to_ascii_lowercase().contains("retry-after: 5"),
        "{text}"
    );
    assert!(text.contains("<Code>ServiceUnavailable</Code>"), "{text}");
    assert!(!text.contains("precious"), "{text}");
}
