//! SigV2 with `[server] allow_sigv2`: signatures verified by the gateway itself in constant
//! time before s3s (`crates/s3/src/sigv2.rs`), from botocore's SigV2 signer
//! (`clients/sigv2.py`) and s3cmd `--signature-v2`, unmodified; altered requests refused with
//! the gateway's `SignatureDoesNotMatch` (its message names SigV2; s3s's has none of its own).
//! Browser forms signed with SigV2 (`clients/forms.py`, real multipart bodies) likewise.

use futures::StreamExt;

use crate::harness::{ACCESS_KEY, SECRET_KEY, ok, run, start, start_with};

const GUARD: &str = "The SigV2 signature we calculated";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigv2_signatures_are_verified_by_the_gateway_before_s3s() {
    let Some(python) = archipel_testkit::require_tool("python3", "the SigV2 gateway tests") else {
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
        println!("SKIP: boto3 is not installed; the SigV2 gateway tests did not run");
        return;
    }
    let srv = start_with(|c| c.allow_sigv2 = true).await;
    let v4 = start().await;
    let e = &srv.engine;
    e.create_bucket("sig-v2", "root", None).await.unwrap();
    let key = e.create_access_key("sigv2").await.unwrap();
    let rw = archipel_engine::Permissions {
        read: true,
        write: true,
        admin: false,
    };
    e.grant(&key.id, "sig-v2", rw).await.unwrap();
    v4.engine
        .create_bucket("v4only", "root", None)
        .await
        .unwrap();
    let body = futures::stream::iter(vec![Ok(bytes::Bytes::from_static(b"v4 only"))]).boxed();
    v4.engine
        .put_object("v4only", "k", body, archipel_engine::PutOptions::default())
        .await
        .unwrap();
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/s3/clients/sigv2.py");
    let out = run(
        &python,
        &[script],
        &[
            ("ENDPOINT", srv.endpoint.clone()),
            ("ENDPOINT_V4", v4.endpoint.clone()),
            ("KEY_ID", key.id.clone()),
            ("KEY_SECRET", key.secret.clone()),
        ],
        std::path::Path::new("."),
    )
    .await;
    let stdout = ok(&out, "SigV2 suite");
    assert!(stdout.contains("checks passed"), "{stdout}");
    println!("{stdout}");
}

/// Browser-form POSTs, real multipart bodies (`clients/forms.py`): SigV2 forms built by hand,
/// verified by the gateway before s3s from the fields it reads before the file; SigV4 forms
/// from boto3's `generate_presigned_post`; a SigV2 form refused without `allow_sigv2`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn browser_form_signatures_are_verified_by_the_gateway_before_s3s() {
    let Some(python) = archipel_testkit::require_tool("python3", "the browser-form tests") else {
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
        println!("SKIP: boto3 is not installed; the browser-form tests did not run");
        return;
    }
    let srv = start_with(|c| c.allow_sigv2 = true).await;
    let v4 = start().await;
    let e = &srv.engine;
    e.create_bucket("sig-v2", "root", None).await.unwrap();
    let key = e.create_access_key("forms").await.unwrap();
    let rw = archipel_engine::Permissions {
        read: true,
        write: true,
        admin: false,
    };
    e.grant(&key.id, "sig-v2", rw).await.unwrap();
    v4.engine
        .create_bucket("v4only", "root", None)
        .await
        .unwrap();
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/s3/clients/forms.py");
    let out = run(
        &python,
        &[script],
        &[
            ("ENDPOINT", srv.endpoint.clone()),
            ("ENDPOINT_V4", v4.endpoint.clone()),
            ("KEY_ID", key.id.clone()),
            ("KEY_SECRET", key.secret.clone()),
        ],
        std::path::Path::new("."),
    )
    .await;
    let stdout = ok(&out, "browser-form suite");
    assert!(stdout.contains("checks passed"), "{stdout}");
    println!("{stdout}");
}

/// The query of a presigned URL with another `Signature` of the same decoded length.
fn tampered(url: &str) -> String {
    let (head, sig) = url.split_once("Signature=").expect("a SigV2 presigned URL");
    let (sig, tail) = sig.split_once('&').map_or((sig, ""), |(s, t)| (s, t));
    let other = if let Some(rest) = sig.strip_prefix('%') {
        format!("A{}", &rest[2..])
    } else if let Some(rest) = sig.strip_prefix('A') {
        format!("B{rest}")
    } else {
        format!("A{}", &sig[1..])
    };
    let tail = if tail.is_empty() {
        String::new()
    } else {
        format!("&{tail}")
    };
    format!("{head}Signature={other}{tail}")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s3cmd_with_signature_v2_is_verified_by_the_gateway() {
    let Some(s3cmd) = archipel_testkit::require_tool("s3cmd", "the SigV2 tests with s3cmd") else {
        return;
    };
    let Some(curl) = archipel_testkit::require_tool("curl", "the SigV2 presigned URL tests") else {
        return;
    };
    let srv = start_with(|c| c.allow_sigv2 = true).await;
    let work = tempfile::tempdir().unwrap();
    let w = work.path();
    let host = format!("127.0.0.1:{}", srv.port);
    let config = |secret: &str, name: &str| {
        let path = w.join(name);
        std::fs::write(
            &path,
            format!(
                "[default]\naccess_key = {ACCESS_KEY}\nsecret_key = {secret}\nhost_base = {host}\nhost_bucket = {host}\nuse_https = False\nsignature_v2 = True\nbucket_location = us-east-1\n"
            ),
        )
        .unwrap();
        path.display().to_string()
    };
    let good = config(SECRET_KEY, "s3cfg");
    let mut wrong_secret = SECRET_KEY.to_string();
    wrong_secret.pop();
    wrong_secret.push('x');
    assert_ne!(wrong_secret, SECRET_KEY);
    let wrong = config(&wrong_secret, "s3cfg-wrong");
    let s3 = |cfg: &str, args: &[&str]| {
        let mut a = vec![
            "-c".to_string(),
            cfg.to_string(),
            "--signature-v2".to_string(),
        ];
        a.extend(args.iter().map(|s| s.to_string()));
        let (s3cmd, w) = (s3cmd.clone(), w.to_path_buf());
        async move {
            let refs: Vec<&str> = a.iter().map(String::as_str).collect();
            run(&s3cmd, &refs, &[], &w).await
        }
    };
    std::fs::write(w.join("file.txt"), b"signed with SigV2 by s3cmd").unwrap();
    ok(&s3(&good, &["mb", "s3://v2cmd"]).await, "s3cmd v2 mb");
    ok(
        &s3(&good, &["put", "file.txt", "s3://v2cmd/dir/file.txt"]).await,
        "s3cmd v2 put",
    );
    let ls = ok(&s3(&good, &["ls", "-r", "s3://v2cmd"]).await, "s3cmd v2 ls");
    assert!(ls.contains("s3://v2cmd/dir/file.txt"), "{ls}");
    ok(
        &s3(&good, &["info", "s3://v2cmd/dir/file.txt"]).await,
        "s3cmd v2 info",
    );
    ok(
        &s3(&good, &["get", "s3://v2cmd/dir/file.txt", "back.txt"]).await,
        "s3cmd v2 get",
    );
    assert_eq!(
        std::fs::read(w.join("back.txt")).unwrap(),
        b"signed with SigV2 by s3cmd"
    );

    // A presigned SigV2 URL from s3cmd, fetched by curl; then with another signature.
    let url = ok(
        &s3(&good, &["signurl", "s3://v2cmd/dir/file.txt", "+300"]).await,
        "s3cmd signurl",
    );
    let url = url.trim().to_string();
    assert!(
        url.contains("Signature=") && url.contains("Expires="),
        "{url}"
    );
    let fetch = |url: String| {
        let curl = curl.clone();
        async move {
            let out = run(
                &curl,
                &["-s", "-w", "\n%{http_code}", &url],
                &[],
                std::path::Path::new("."),
            )
            .await;
            String::from_utf8_lossy(&ok(&out, "curl").into_bytes()).into_owned()
        }
    };
    let got = fetch(url.clone()).await;
    assert!(
        got.ends_with("\n200") && got.starts_with("signed with SigV2"),
        "{got}"
    );
    let bad = fetch(tampered(&url)).await;
    assert!(
        bad.ends_with("\n403") && bad.contains("SignatureDoesNotMatch") && bad.contains(GUARD),
        "{bad}"
    );

    // A wrong secret of the same length: refused by the guard.
    let out = s3(&wrong, &["ls", "s3://v2cmd"]).await;
    let all = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        !out.status.success() && all.contains("SignatureDoesNotMatch"),
        "{all}"
    );

    ok(
        &s3(&good, &["del", "s3://v2cmd/dir/file.txt"]).await,
        "s3cmd v2 del",
    );
    ok(&s3(&good, &["rb", "s3://v2cmd"]).await, "s3cmd v2 rb");
}
