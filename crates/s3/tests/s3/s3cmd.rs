//! s3cmd (Debian), unmodified: `mb`, `put`, `ls`, `get`, `info`, `del`, `rb`.

use crate::harness::{ACCESS_KEY, SECRET_KEY, ok, pattern, run, start};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s3cmd_puts_lists_gets_and_deletes() {
    let Some(s3cmd) = archipel_testkit::require_tool("s3cmd", "the S3 gateway tests with s3cmd")
    else {
        return;
    };
    let srv = start().await;
    let work = tempfile::tempdir().unwrap();
    let w = work.path();
    let host = format!("127.0.0.1:{}", srv.port);
    let cfg = w.join("s3cfg");
    std::fs::write(
        &cfg,
        format!(
            "[default]\naccess_key = {ACCESS_KEY}\nsecret_key = {SECRET_KEY}\nhost_base = {host}\nhost_bucket = {host}\nuse_https = False\nsignature_v2 = False\nbucket_location = us-east-1\n"
        ),
    )
    .unwrap();
    let data = pattern(4, 20 * 1024 * 1024 + 9); // s3cmd splits above 15 MiB
    std::fs::write(w.join("file.bin"), &data).unwrap();
    let c = cfg.display().to_string();
    let go = |args: Vec<&str>, what: &'static str| {
        let mut a = vec!["-c", c.as_str()];
        a.extend(args);
        let a: Vec<String> = a.iter().map(|s| s.to_string()).collect();
        let (s3cmd, w) = (s3cmd.clone(), w.to_path_buf());
        async move {
            let refs: Vec<&str> = a.iter().map(String::as_str).collect();
            ok(&run(&s3cmd, &refs, &[], &w).await, what)
        }
    };
    go(vec!["mb", "s3://cmd-bucket"], "s3cmd mb").await;
    go(
        vec!["put", "file.bin", "s3://cmd-bucket/dir/file.bin"],
        "s3cmd put",
    )
    .await;
    let ls = go(vec!["ls", "-r", "s3://cmd-bucket"], "s3cmd ls").await;
    assert!(ls.contains("s3://cmd-bucket/dir/file.bin"), "{ls}");
    let info = go(vec!["info", "s3://cmd-bucket/dir/file.bin"], "s3cmd info").await;
    assert!(info.contains(&data.len().to_string()), "{info}");
    go(
        vec!["get", "s3://cmd-bucket/dir/file.bin", "back.bin"],
        "s3cmd get",
    )
    .await;
    assert!(std::fs::read(w.join("back.bin")).unwrap() == data);
    go(vec!["del", "s3://cmd-bucket/dir/file.bin"], "s3cmd del").await;
    go(vec!["rb", "s3://cmd-bucket"], "s3cmd rb").await;
}
