//! The control plane beside a running gateway: with `archipel serve --config C` up on the
//! embedded store (which it holds exclusively), the operator commands go through its admin API
//! — keys made and deleted take effect on the next S3 request, `status` and `provider test`
//! work, and a provider added with `provider add` receives shards of new objects without a
//! restart. The admin API refuses anonymous and wrongly authenticated requests.

use std::path::Path;
use std::process::Command;

use archipel_testkit::free_port;

use crate::harness::{Server, archipel, run};

fn json(text: &str) -> serde_json::Value {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"))
}

/// `archipel ARGS --config C` in `dir`; must succeed: its standard output.
fn cli_ok(dir: &Path, config: &Path, args: &[&str]) -> String {
    let (ok, out, err) = run(archipel()
        .current_dir(dir)
        .args(args)
        .arg("--config")
        .arg(config));
    assert!(ok, "archipel {args:?} failed:\n{out}\n{err}");
    out
}

fn blob_files(dir: &Path) -> usize {
    // Shards above 128 KiB are files under v1/ (smaller ones would be records in .packs/).
    let mut n = 0;
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in entries.flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else if p.to_string_lossy().contains("/v1/") {
                n += 1;
            }
        }
    }
    n
}

fn curl_status(args: &[&str]) -> String {
    let out = Command::new("curl")
        .args(["-s", "-o", "/dev/null", "-w", "%{http_code}"])
        .args(args)
        .output()
        .expect("run curl");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn operator_commands_work_beside_a_running_gateway() {
    let Some(aws) = archipel_testkit::require_tool("aws", "the live control-plane test") else {
        return;
    };
    let Some(_curl) = archipel_testkit::require_tool("curl", "the admin API refusal checks") else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let (s3_port, admin_port) = (free_port(), free_port());
    let config = dir.join("archipel.toml");
    let (ok, out, err) = run(archipel().current_dir(dir).args([
        "init",
        "--listen",
        &format!("127.0.0.1:{s3_port}"),
        "--admin-listen",
        &format!("127.0.0.1:{admin_port}"),
    ]));
    assert!(ok, "init failed:\n{out}\n{err}");
    let server = Server::start_with(
        &["--config".to_string(), config.display().to_string()],
        dir,
        s3_port,
    );
    let work = dir.join("work");
    std::fs::create_dir(&work).unwrap();
    let root = server.aws_root(&aws, &work);
    root.ok(&["s3", "mb", "s3://live"]);

    // A key made while serving can PUT at once.
    let key = json(&cli_ok(
        dir,
        &config,
        &[
            "key", "create", "--bucket", "live", "--read", "--write", "--json",
        ],
    ));
    let (id, secret) = (
        key["id"].as_str().unwrap().to_string(),
        key["secret"].as_str().unwrap().to_string(),
    );
    let app = root.with_key(&id, &secret);
    std::fs::write(work.join("a.txt"), b"written by a key made live\n").unwrap();
    app.ok(&["s3", "cp", "a.txt", "s3://live/a.txt"]);
    let listed = json(&cli_ok(dir, &config, &["key", "list", "--json"]));
    assert!(
        listed
            .as_array()
            .unwrap()
            .iter()
            .any(|k| k["id"] == id.as_str()),
        "{listed}"
    );

    // status and provider test work beside the gateway.
    let status = json(&cli_ok(dir, &config, &["status", "--json"]));
    assert_eq!(status["objects"], 1, "{status}");
    assert_eq!(status["providers"].as_array().unwrap().len(), 6, "{status}");
    let tested = cli_ok(dir, &config, &["provider", "test", "--size", "64KiB"]);
    assert!(tested.contains("6 providers passed"), "{tested}");

    // A provider added live receives shards of objects written after it.
    let extra = dir.join("extra");
    std::fs::create_dir(&extra).unwrap();
    let added = json(&cli_ok(
        dir,
        &config,
        &[
            "provider",
            "add",
            "--name",
            "p7",
            "--kind",
            "dir",
            "--path",
            extra.to_str().unwrap(),
            "--json",
        ],
    ));
    assert_eq!(added["live"], true, "{added}");
    let list = cli_ok(dir, &config, &["provider", "list"]);
    assert!(
        list.lines()
            .any(|l| l.starts_with("p7") && l.contains("active")),
        "{list}"
    );
    // Placement is rendezvous hashing over 7 providers for 6 shards: each object skips one
    // provider, so a handful of objects reach p7 (chance of missing it 20 times: (1/7)^20).
    // 1 MiB objects: 256 KiB shards, each its own file under v1/.
    for i in 0..20 {
        std::fs::write(work.join("b.bin"), vec![i as u8; 1024 * 1024]).unwrap();
        root.ok(&["s3", "cp", "b.bin", &format!("s3://live/b{i}.bin")]);
    }
    let on_p7 = blob_files(&extra);
    assert!(
        (1..=20).contains(&on_p7),
        "{on_p7} shards on the provider added live"
    );

    // A key deleted while serving is refused on its next request.
    cli_ok(dir, &config, &["key", "delete", &id]);
    let err = app.fails(&["s3", "ls", "s3://live"]);
    assert!(err.contains("InvalidAccessKeyId"), "{err}");

    // The admin API refuses anonymous and wrongly authenticated requests.
    let base = format!("http://127.0.0.1:{admin_port}/admin/v1");
    assert_eq!(curl_status(&[&format!("{base}/keys")]), "401");
    assert_eq!(
        curl_status(&["-H", "Authorization: Bearer 0000", &format!("{base}/keys")]),
        "403"
    );
    assert_eq!(
        curl_status(&[
            "-X",
            "POST",
            "-H",
            "Authorization: Bearer 0000",
            "--data",
            "{}",
            &format!("{base}/keys"),
        ]),
        "403"
    );
    assert_eq!(curl_status(&[&format!("{base}/openapi.json")]), "200");
    server.stop();
}
