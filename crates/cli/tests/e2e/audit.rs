//! Audits against real servers: six `rclone serve webdav` providers behind a running gateway;
//! a tenth of one provider's shard files are deleted behind Archipel's back. An audit with a
//! budget of a fraction of what the provider holds detects it without reading past the
//! budget, queues the missing shards for repair and lists the provider to find every one it
//! lost; the repair service puts them back; a second audit — with no budget given, so what
//! is left of the day's `[audit] max_mib_per_day` — checks every shard and passes; the
//! evidence is kept, dated and digested, newest first.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::harness::{Server, archipel, run};

fn json(text: &str) -> serde_json::Value {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"))
}

fn cli(dir: &Path, config: &Path, args: &[&str]) -> (bool, String, String) {
    run(archipel()
        .current_dir(dir)
        .args(args)
        .arg("--config")
        .arg(config))
}

/// Every shard file a WebDAV server holds (under `archipel/v1/`), sorted.
fn shard_files(root: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![root.join("archipel").join("v1")];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in entries.flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.push(p);
            }
        }
    }
    out.sort();
    out
}

const OBJECTS: usize = 300;
const OBJECT_SIZE: usize = 4096;
/// Each sample reads one chunk: 4096 / 4 bytes and a 16-byte tag.
const CHUNK: u64 = (OBJECT_SIZE / 4 + 16) as u64;

#[test]
fn an_audit_finds_shards_deleted_behind_archipels_back_within_its_budget_and_feeds_repair() {
    let Some(aws) = archipel_testkit::require_tool("aws", "the audit test") else {
        return;
    };
    let Some(curl) = archipel_testkit::require_tool("curl", "the audit test") else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    // Repair rounds every second; the inventory service (which would find the loss by
    // itself) not before the test ends; a daily audit budget of 1 MiB.
    let Some((davs, config, port)) = crate::harness::six_webdav_vault(
        dir,
        "[repair]\ninterval_s = 1\ninventory_interval_s = 86400\n\n[audit]\nmax_mib_per_day = 1\n",
    ) else {
        return;
    };
    let work = dir.join("work");
    let files = work.join("files");
    std::fs::create_dir_all(&files).unwrap();
    for i in 0..OBJECTS {
        std::fs::write(
            files.join(format!("f{i:03}")),
            crate::harness::pattern(i as u64, OBJECT_SIZE),
        )
        .unwrap();
    }
    let server = Server::start_with(
        &["--config".to_string(), config.display().to_string()],
        dir,
        port,
    );
    let s3 = server.aws_root(&aws, &work);
    s3.ok(&["s3", "mb", "s3://audit"]);
    s3.ok(&["s3", "sync", "files", "s3://audit/"]);

    // A tenth of dav2's shards vanish behind Archipel's back: another WebDAV client deletes
    // them (through the server, which caches what its directory holds).
    let held = shard_files(davs[2].dir());
    assert_eq!(held.len(), OBJECTS, "one shard of each object on dav2");
    let lost: Vec<&PathBuf> = held.iter().step_by(10).collect();
    for f in &lost {
        let rel = f.strip_prefix(davs[2].dir()).unwrap();
        let url = format!("{}/{}", davs[2].config.endpoint, rel.display());
        let (ok, out, err) = run(std::process::Command::new(&curl).args([
            "-sS",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code}",
            "-X",
            "DELETE",
            &url,
        ]));
        assert!(ok && out.trim() == "204", "DELETE {url}: {out} {err}");
        assert!(!f.exists(), "{} deleted", f.display());
    }

    // An audit with a budget of about 126 chunks (of 300): P(missing a 10 % loss) = 0.9^126.
    let budget = 128 * 1024u64;
    let (ok, out, err) = cli(
        dir,
        &config,
        &[
            "provider", "audit", "dav2", "--budget", "128KiB", "--wait", "--json",
        ],
    );
    assert!(
        !ok,
        "an audit that finds missing shards fails:\n{out}\n{err}"
    );
    assert!(err.contains("missing or corrupt on dav2"), "{err}");
    let job = json(&out);
    assert_eq!(job["state"], "done", "{job}");
    let a = &job["audit"][0];
    assert_eq!(a["provider"], "dav2", "{job}");
    assert_eq!(a["verdict"], "fail", "{job}");
    assert_eq!(a["population"], OBJECTS as u64, "{job}");
    let read = a["bytes_read"].as_u64().unwrap();
    assert!(
        read <= budget,
        "read {read} bytes of a {budget}-byte budget"
    );
    assert_eq!(a["samples"].as_u64().unwrap(), budget / CHUNK, "{job}");
    let missing = a["missing"].as_u64().unwrap();
    assert!(missing >= 1, "{job}");
    assert_eq!(a["corrupt"], 0, "{job}");
    assert_eq!(a["repairs_queued"], missing, "{job}");
    assert_eq!(a["exhaustive"], false, "{job}");
    let bound = a["present_at_least"].as_f64().unwrap();
    assert!(bound < 0.99, "{job}");
    assert_eq!(
        a["failed"].as_array().unwrap().len() as u64,
        missing,
        "{job}"
    );
    // The failure listed the provider: every lost shard was found, not only those sampled
    // (less those of the sampled ones the repair service, every second, rebuilt already).
    let inventory = a["inventory"].as_str().unwrap();
    let found: u64 = inventory
        .strip_prefix("listed dav2: ")
        .and_then(|r| r.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("{inventory}"));
    let lost_n = lost.len() as u64;
    assert!(
        found >= lost_n - missing && found <= lost_n,
        "{found} found by the listing, {missing} by the samples, of {lost_n}: {inventory}"
    );
    assert_eq!(a["digest"].as_str().map(str::len), Some(64), "{job}");
    println!(
        "audit 1: {} samples, {read} of {budget} bytes, {missing} missing, ≥ {:.2} % present; {inventory}",
        a["samples"],
        bound * 100.0
    );

    // Repair puts every lost shard back, with nobody asking.
    let deadline = Instant::now() + Duration::from_secs(120);
    while shard_files(davs[2].dir()).len() < OBJECTS {
        assert!(
            Instant::now() < deadline,
            "dav2 holds {} of {OBJECTS} shards 120 s after the audit\n{}",
            shard_files(davs[2].dir()).len(),
            server.stderr()
        );
        std::thread::sleep(Duration::from_millis(500));
    }
    for f in &lost {
        assert!(f.exists(), "{} was rebuilt", f.display());
    }

    // Without a budget: what is left of the day's 1 MiB — enough for every shard.
    let (ok, out, err) = cli(
        dir,
        &config,
        &["provider", "audit", "dav2", "--wait", "--json"],
    );
    assert!(ok, "{out}\n{err}");
    let job = json(&out);
    let b = &job["audit"][0];
    assert_eq!(b["verdict"], "pass", "{job}");
    assert_eq!(b["budget_bytes"], 1024 * 1024 - read, "{job}");
    assert_eq!(b["exhaustive"], true, "{job}");
    assert_eq!(b["samples"], OBJECTS as u64, "{job}");
    assert_eq!(b["verified"], OBJECTS as u64, "{job}");
    assert_eq!(b["bytes_read"], OBJECTS as u64 * CHUNK, "{job}");
    assert_eq!(b["present_at_least"], 1.0, "{job}");

    // The evidence: both records, newest first, as JSON and for people.
    let (ok, out, err) = cli(dir, &config, &["provider", "audits", "dav2", "--json"]);
    assert!(ok, "{out}\n{err}");
    let list = json(&out);
    let list = list.as_array().unwrap();
    assert_eq!(list.len(), 2, "{list:?}");
    assert_eq!(list[0]["verdict"], "pass");
    assert_eq!(list[1]["verdict"], "fail");
    assert!(list[0]["finished_ms"].as_i64() >= list[1]["finished_ms"].as_i64());
    let (ok, out, err) = cli(dir, &config, &["provider", "audits", "dav2"]);
    assert!(ok, "{out}\n{err}");
    println!("{out}");
    assert!(out.contains("audit of dav2"), "{out}");
    assert!(
        out.contains("every shard checked: 100.000 % present"),
        "{out}"
    );
    assert!(out.contains("shards queued for repair"), "{out}");

    // Every object reads back intact.
    s3.ok(&["s3", "sync", "s3://audit/", "back"]);
    for i in (0..OBJECTS).step_by(7) {
        assert_eq!(
            std::fs::read(work.join("back").join(format!("f{i:03}"))).unwrap(),
            crate::harness::pattern(i as u64, OBJECT_SIZE)
        );
    }
    server.stop();
}
