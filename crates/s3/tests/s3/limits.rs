//! The gateway's explicit limits: requests beyond `max_requests` get `503 SlowDown` at once
//! (with `Retry-After`), and serving resumes when slots free up.

use std::process::Stdio;
use std::time::Duration;

use crate::harness::{ACCESS_KEY, SECRET_KEY, start_with};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_beyond_the_limit_get_slow_down() {
    let Some(curl) = archipel_testkit::require_tool("curl", "the request-limit test") else {
        return;
    };
    let srv = start_with(|c| c.max_requests = 2).await;
    srv.engine
        .create_bucket("limits", "root", None)
        .await
        .unwrap();
    let work = tempfile::tempdir().unwrap();
    let body = work.path().join("body");
    std::fs::write(&body, vec![7u8; 200_000]).unwrap();
    let user = format!("{ACCESS_KEY}:{SECRET_KEY}");
    let curl_cmd = |extra: &[&str], url: String| {
        let mut c = tokio::process::Command::new(&curl);
        c.args(["-s", "-o", "/dev/null", "-w", "%{http_code}"])
            .args(["--aws-sigv4", "aws:amz:us-east-1:s3", "--user", &user])
            .args(["-H", "x-amz-content-sha256: UNSIGNED-PAYLOAD"])
            .args(extra)
            .arg(url)
            .stdout(Stdio::piped())
            .kill_on_drop(true);
        c
    };
    // Two slow uploads (1 KB/s) hold both slots.
    let body_arg = format!("@{}", body.display());
    let slow: Vec<_> = (0..2)
        .map(|i| {
            curl_cmd(
                &[
                    "-X",
                    "PUT",
                    "--limit-rate",
                    "1k",
                    "--data-binary",
                    &body_arg,
                ],
                format!("{}/limits/slow{i}", srv.endpoint),
            )
            .spawn()
            .unwrap()
        })
        .collect();
    tokio::time::sleep(Duration::from_secs(2)).await;
    // A third request is told to slow down, at once.
    let out = tokio::process::Command::new(&curl)
        .args([
            "-s",
            "-i",
            "--aws-sigv4",
            "aws:amz:us-east-1:s3",
            "--user",
            &user,
        ])
        .args(["-H", "x-amz-content-sha256: UNSIGNED-PAYLOAD"])
        .arg(format!("{}/limits", srv.endpoint))
        .output()
        .await
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(text.starts_with("HTTP/1.1 503"), "{text}");
    assert!(text.contains("<Code>SlowDown</Code>"), "{text}");
    assert!(
        text.to_ascii_lowercase().contains("retry-after: 1"),
        "{text}"
    );
    assert!(text.contains("at most 2 requests"), "{text}");
    assert!(archipel_s3::slow_downs() >= 1);
    // The slow uploads end (killed): their slots free up and requests are served again.
    drop(slow);
    tokio::time::sleep(Duration::from_millis(500)).await;
    let out = curl_cmd(&[], format!("{}/limits", srv.endpoint))
        .output()
        .await
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout), "200");
}
