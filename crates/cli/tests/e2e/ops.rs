//! `archipel provider list|test`, `bucket policy` and the progress bars of `put`/`get`, on
//! local-directory providers (and an S3 provider that does not answer).

use std::path::Path;

use crate::harness::{Server, archipel, op, op_ok, pattern, run};

fn json(text: &str) -> serde_json::Value {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"))
}

/// A zero-configuration vault in `dir/data`, created by serving once.
fn vault(dir: &Path) -> std::path::PathBuf {
    let data = dir.join("data");
    Server::start(&data).stop();
    data
}

#[test]
fn provider_test_measures_every_dir_provider_and_names_the_one_that_fails() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    // Not before the vault exists (the demo providers would be created for nothing).
    let (ok, _, err) = op(&data, &["provider", "list"]);
    assert!(!ok);
    assert!(err.contains("no vault in"), "{err}");
    Server::start(&data).stop();

    let list = json(&op_ok(&data, &["provider", "list", "--json"]));
    assert_eq!(list.as_array().unwrap().len(), 6, "{list}");
    assert_eq!(list[0]["name"], "p1");
    assert_eq!(list[0]["kind"], "dir");
    assert_eq!(list[0]["weight"], 1);
    assert_eq!(list[0]["state"], "active");
    assert!(
        list[5]["location"]
            .as_str()
            .unwrap()
            .ends_with("providers/p6"),
        "{list}"
    );

    let out = op_ok(
        &data,
        &[
            "provider", "test", "--json", "--rounds", "3", "--size", "2MiB",
        ],
    );
    let report = json(&out);
    assert_eq!(report.as_array().unwrap().len(), 6, "{report}");
    for p in report.as_array().unwrap() {
        assert_eq!(p["ok"], true, "{p}");
        for check in ["reachable", "write", "read", "delete"] {
            assert_eq!(p[check]["ok"], true, "{check}: {p}");
        }
        assert_eq!(p["latency"]["rounds"], 3, "{p}");
        assert!(p["latency"]["put_ms"].as_f64().unwrap() > 0.0, "{p}");
        assert_eq!(p["throughput"]["bytes"], 2 * 1024 * 1024, "{p}");
        assert!(p["throughput"]["read_mib_s"].as_f64().unwrap() > 0.0, "{p}");
    }
    // Probe blobs are all cleaned up; no shard namespace is touched.
    for i in 1..=6 {
        let dir = data.join(format!("providers/p{i}"));
        let probes = dir.join("probe");
        let left = std::fs::read_dir(&probes).map_or(0, |d| d.count());
        assert_eq!(left, 0, "probe blobs left in {}", probes.display());
        assert!(!dir.join("v1").exists());
    }

    // The human table, one provider.
    let out = op_ok(&data, &["provider", "test", "p2", "--size", "0"]);
    let lines: Vec<&str> = out.lines().collect();
    assert!(
        lines[0].starts_with("NAME  KIND  REACHABLE  WRITE  READ  DELETE  PUT p50"),
        "{out}"
    );
    assert!(
        lines[1].starts_with("p2    dir   ok         ok     ok    ok      "),
        "{out}"
    );
    assert!(
        lines[1].ends_with("-           -"),
        "no throughput with --size 0: {out}"
    );
    assert_eq!(lines[2], "latency: median of 5 round trips of 4.0 KiB");
    assert_eq!(lines[3], "1 provider passed");
    let (ok, _, err) = op(&data, &["provider", "test", "p9"]);
    assert!(!ok);
    assert!(
        err.contains("no provider named \"p9\" (configured: p1, p2, p3, p4, p5, p6)"),
        "{err}"
    );

    // A provider whose directory became a file: unreachable, named, the rest still pass.
    let p4 = data.join("providers/p4");
    std::fs::remove_dir_all(&p4).unwrap();
    std::fs::write(&p4, b"not a directory").unwrap();
    let (ok, out, err) = op(
        &data,
        &["provider", "test", "--json", "--rounds", "1", "--size", "0"],
    );
    assert!(!ok);
    assert!(err.contains("1 of 6 providers failed the test"), "{err}");
    let report = json(&out);
    assert_eq!(report[3]["name"], "p4");
    assert_eq!(report[3]["ok"], false);
    assert_eq!(report[3]["reachable"]["ok"], false);
    assert!(report[3]["write"].is_null(), "not attempted: {}", report[3]);
    assert!(
        report[3]["error"]
            .as_str()
            .unwrap()
            .starts_with("reachable failed:"),
        "{}",
        report[3]
    );
    assert_eq!(report[2]["ok"], true);
    let (ok, out, _) = op(&data, &["provider", "test", "--rounds", "1", "--size", "0"]);
    assert!(!ok);
    assert!(
        out.contains("\np4    dir   FAILED     -      -     -       -"),
        "{out}"
    );
    assert!(out.contains("p4 [dir at "), "{out}");
    assert!(!out.contains("providers passed"), "{out}");
}

#[test]
fn provider_commands_show_no_secrets_and_name_an_unreachable_s3_provider() {
    let tmp = tempfile::tempdir().unwrap();
    let closed = archipel_testkit::free_port();
    let config = format!(
        "[[provider]]\nname = \"disk-a\"\nkind = \"dir\"\npath = \"a\"\noperator = \"me\"\n\
         jurisdiction = \"FR\"\nweight = 2\n\n\
         [[provider]]\nname = \"cloud\"\nkind = \"s3\"\nendpoint = \"http://127.0.0.1:{closed}\"\n\
         bucket = \"shards\"\naccess_key = \"AKCONFIGKEY\"\nsecret_key = \"very-secret-value\"\n\
         operator = \"cloudco\"\njurisdiction = \"DE\"\n"
    );
    std::fs::write(tmp.path().join("archipel.toml"), config).unwrap();
    let cmd = |args: &[&str]| {
        run(archipel()
            .current_dir(tmp.path())
            .args(args)
            .args(["--config", "archipel.toml"]))
    };
    // Works from the configuration alone, before any `archipel serve`.
    let (ok, out, err) = cmd(&["provider", "list"]);
    assert!(ok, "{err}");
    assert!(
        !out.contains("very-secret-value") && !out.contains("AKCONFIGKEY"),
        "{out}"
    );
    assert!(
        out.contains(&format!("http://127.0.0.1:{closed}/shards")),
        "{out}"
    );
    let (ok, out, err) = cmd(&["provider", "test", "--json", "--size", "0", "--rounds", "1"]);
    assert!(!ok);
    assert!(err.contains("1 of 2 providers failed the test"), "{err}");
    assert!(!out.contains("very-secret-value") && !err.contains("very-secret-value"));
    let report = json(&out);
    assert_eq!(report[0]["ok"], true, "{report}");
    assert_eq!(report[1]["name"], "cloud");
    assert_eq!(report[1]["reachable"]["ok"], false, "{report}");
    assert!(
        report[1]["error"]
            .as_str()
            .unwrap()
            .contains("is the endpoint right and reachable from here?"),
        "{report}"
    );
}

#[test]
fn bucket_policy_shows_and_changes_a_policy_the_providers_can_hold() {
    let tmp = tempfile::tempdir().unwrap();
    let data = vault(tmp.path());
    op_ok(&data, &["bucket", "create", "photos"]);
    assert_eq!(
        op_ok(&data, &["bucket", "policy", "photos"]),
        "photos: 4+2 (quorum 5)\n"
    );
    assert_eq!(
        op_ok(
            &data,
            &["bucket", "policy", "photos", "--data", "3", "--parity", "3"]
        ),
        "photos: 3+3 (quorum 4) (was 4+2 (quorum 5)); new writes follow it, objects already stored keep their shards\n"
    );
    let out = json(&op_ok(
        &data,
        &[
            "bucket",
            "policy",
            "photos",
            "--write-quorum",
            "5",
            "--max-per-operator",
            "6",
            "--json",
        ],
    ));
    assert_eq!(out["policy"]["data"], 3);
    assert_eq!(out["policy"]["write_quorum"], 5);
    assert_eq!(out["policy"]["max_per_operator"], 6);
    assert_eq!(out["previous"]["write_quorum"], 4);
    assert_eq!(
        op_ok(&data, &["bucket", "policy", "photos", "--clear-rules"]),
        "photos: 3+3 (quorum 5) (was 3+3 (quorum 5), ≤6/operator); new writes follow it, objects already stored keep their shards\n"
    );
    // Impossible with six providers, and unknown buckets: refused, nothing changed.
    let (ok, _, err) = op(
        &data,
        &["bucket", "policy", "photos", "--data", "6", "--parity", "3"],
    );
    assert!(!ok);
    assert!(err.contains("9 shards need 9 eligible providers"), "{err}");
    let (ok, _, err) = op(&data, &["bucket", "policy", "photos", "--data", "4"]);
    assert!(!ok);
    assert!(err.contains("--parity"), "{err}");
    let (ok, _, err) = op(&data, &["bucket", "policy", "nope"]);
    assert!(!ok);
    assert!(err.contains("nope"), "{err}");
    let list = json(&op_ok(&data, &["bucket", "list", "--json"]));
    assert_eq!(list[0]["policy"]["data"], 3);
    assert_eq!(list[0]["policy"]["write_quorum"], 5);

    // New writes follow the new policy.
    let src = tmp.path().join("obj.bin");
    std::fs::write(&src, pattern(3, 100_000)).unwrap();
    op_ok(&data, &["put", src.to_str().unwrap(), "photos/obj.bin"]);
    let status = json(&op_ok(&data, &["status", "--json"]));
    let with_shards = status["providers"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p["shards"] == 1)
        .count();
    assert_eq!(
        with_shards, 6,
        "3+3 puts a shard on each of six providers: {status}"
    );
}

/// Runs `archipel ARGS --data-dir DATA` on a pseudo-terminal (util-linux `script`): what the
/// terminal showed.
fn on_a_terminal(script: &Path, data: &Path, args: &str) -> String {
    let dir = data.parent().unwrap();
    let log = dir.join("typescript");
    let command = format!(
        "{} {args} --data-dir {}",
        env!("CARGO_BIN_EXE_archipel"),
        data.display()
    );
    let (ok, out, err) = run(std::process::Command::new(script)
        .current_dir(dir)
        .args(["-q", "-e", "-c", &command])
        .arg(&log)
        .env("RUST_LOG", "warn"));
    assert!(ok, "{command}:\n{out}\n{err}");
    String::from_utf8_lossy(&std::fs::read(&log).unwrap()).into_owned()
}

#[test]
fn large_transfers_show_a_progress_bar_on_a_terminal_only() {
    let Some(script) = archipel_testkit::require_tool("script", "the progress bar test") else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let data = vault(tmp.path());
    op_ok(&data, &["bucket", "create", "big"]);
    let body = pattern(5, 12 * 1024 * 1024);
    let src = tmp.path().join("big.bin");
    std::fs::write(&src, &body).unwrap();
    let small = tmp.path().join("small.bin");
    std::fs::write(&small, b"tiny").unwrap();

    // On a terminal: a bar for 12 MiB, none for 4 bytes or with --json.
    let shown = on_a_terminal(&script, &data, &format!("put {} big/a.bin", src.display()));
    assert!(shown.contains("put big/a.bin ["), "{shown}");
    assert!(shown.contains("12.00 MiB"), "{shown}");
    assert!(shown.contains("put big/a.bin: 12.0 MiB in"), "{shown}");
    let shown = on_a_terminal(&script, &data, "get big/a.bin back.bin");
    assert!(shown.contains("get big/a.bin ["), "{shown}");
    assert_eq!(std::fs::read(tmp.path().join("back.bin")).unwrap(), body);
    let shown = on_a_terminal(
        &script,
        &data,
        &format!("put {} big/s.bin", small.display()),
    );
    assert!(!shown.contains("big/s.bin ["), "{shown}");
    let shown = on_a_terminal(
        &script,
        &data,
        &format!("put {} big/j.bin --json", src.display()),
    );
    assert!(!shown.contains("big/j.bin ["), "{shown}");
    assert!(shown.contains("\"etag\""), "{shown}");

    // Not a terminal: no bar, no escape codes.
    let (ok, out, err) = op(&data, &["put", src.to_str().unwrap(), "big/b.bin"]);
    assert!(ok, "{err}");
    assert!(!err.contains('\u{1b}') && !out.contains('\u{1b}'), "{err}");
    assert!(!err.contains("big/b.bin ["), "{err}");
    let (ok, out, err) = op(&data, &["get", "big/b.bin", "b.back", "--json"]);
    assert!(ok, "{err}");
    assert!(!err.contains('\u{1b}'), "{err}");
    let summary = json(&out);
    assert_eq!(summary["size"], body.len() as u64);
}
