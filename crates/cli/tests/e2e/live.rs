//! The control plane beside a running gateway: with `archipel serve --config C` up on the
//! embedded store (which it holds exclusively), the operator commands go through its admin API
//! — keys made and deleted take effect on the next S3 request, `status` and `provider test`
//! work, and a provider added with `provider add` receives shards of new objects without a
//! restart. The admin API refuses anonymous and wrongly authenticated requests. A job killed
//! with its gateway (SIGKILL) resumes from its checkpoint after the restart.

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

/// `archipel init` with free ports in `dir`; the configuration and the two ports.
fn init(dir: &Path) -> (std::path::PathBuf, u16, u16) {
    let (s3_port, admin_port) = (free_port(), free_port());
    let (ok, out, err) = run(archipel().current_dir(dir).args([
        "init",
        "--listen",
        &format!("127.0.0.1:{s3_port}"),
        "--admin-listen",
        &format!("127.0.0.1:{admin_port}"),
    ]));
    assert!(ok, "init failed:\n{out}\n{err}");
    (dir.join("archipel.toml"), s3_port, admin_port)
}

fn serve(dir: &Path, config: &Path, port: u16) -> Server {
    Server::start_with(
        &["--config".to_string(), config.display().to_string()],
        dir,
        port,
    )
}

#[test]
fn a_scrub_killed_with_its_gateway_resumes_from_its_checkpoint() {
    let Some(aws) = archipel_testkit::require_tool("aws", "the job resume test") else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let (config, port, _) = init(dir);
    let server = serve(dir, &config, port);
    let work = dir.join("work");
    let files = work.join("files");
    std::fs::create_dir_all(&files).unwrap();
    for i in 0..40u8 {
        std::fs::write(files.join(format!("f{i:02}")), vec![i; 256 * 1024]).unwrap();
    }
    let root = server.aws_root(&aws, &work);
    root.ok(&["s3", "mb", "s3://scrubbed"]);
    root.ok(&["s3", "cp", "--recursive", "files", "s3://scrubbed/"]);

    // 40 objects of 256 KiB at 1 MiB/s: about 10 s of work.
    let job = json(&cli_ok(
        dir,
        &config,
        &["job", "start", "scrub", "--rate", "1MiB", "--json"],
    ));
    let id = job["id"].as_str().unwrap().to_string();
    let show = || json(&cli_ok(dir, &config, &["job", "show", &id, "--json"]));
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    loop {
        let j = show();
        if j["progress"]["items_done"].as_u64().unwrap() >= 8 {
            assert_eq!(j["state"], "running", "{j}");
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the scrub did not progress: {j}"
        );
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    server.kill();

    // Restarted, the gateway takes the job over once the dead run's lease ends.
    let server = serve(dir, &config, port);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
    let done = loop {
        let j = show();
        if j["state"] == "done" {
            break j;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the scrub did not finish after the restart: {j}\n{}",
            server.stderr()
        );
        std::thread::sleep(std::time::Duration::from_millis(300));
    };
    let runs = done["runs"].as_array().unwrap();
    assert_eq!(runs.len(), 2, "{done}");
    let from = runs[1]["from_items"].as_u64().unwrap();
    assert!(
        (8..40).contains(&from),
        "the second run starts at the checkpoint, not at 0: {done}"
    );
    assert_eq!(done["progress"]["items_done"], 40, "{done}");
    assert_eq!(done["progress"]["items_total"], 40, "{done}");
    assert_eq!(done["result"]["objects"], 40, "{done}");
    assert_eq!(done["result"]["bad_shards"], 0, "{done}");
    assert!(
        done["result"]["shards_checked"].as_u64().unwrap() >= 40 * 6,
        "{done}"
    );
    let listed = cli_ok(dir, &config, &["job", "list"]);
    assert!(listed.contains(&id) && listed.contains("done"), "{listed}");
    // The periodic services ran on this gateway, and say so.
    assert!(
        listed.contains("services") && listed.contains("gc "),
        "{listed}"
    );
    server.stop();
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
    let (config, s3_port, admin_port) = init(dir);
    let server = serve(dir, &config, s3_port);
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

    // Buckets too: made, listed and given a policy through the gateway.
    let made = json(&cli_ok(
        dir,
        &config,
        &["bucket", "create", "viaapi", "--json"],
    ));
    assert_eq!(made["policy"]["data"], 4, "{made}");
    let buckets = json(&cli_ok(dir, &config, &["bucket", "list", "--json"]));
    let names: Vec<&str> = buckets
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["live", "viaapi"], "{buckets}");
    let changed = json(&cli_ok(
        dir,
        &config,
        &[
            "bucket",
            "policy",
            "viaapi",
            "--write-quorum",
            "6",
            "--json",
        ],
    ));
    assert_eq!(changed["policy"]["write_quorum"], 6, "{changed}");

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
    // 900 KiB objects: 225 KiB shards, each its own file under v1/ (and under 1 MiB, so the
    // aws cli sends no `Expect: 100-continue`).
    for i in 0..20 {
        std::fs::write(work.join("b.bin"), vec![i as u8; 900 * 1024]).unwrap();
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

#[test]
fn serve_starts_with_two_of_six_providers_unreachable_and_uses_them_again_when_back() {
    let Some(aws) = archipel_testkit::require_tool("aws", "the degraded start test") else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let (config, port, _) = init(dir);
    let work = dir.join("work");
    std::fs::create_dir(&work).unwrap();
    // Under 1 MiB: the aws cli sends no `Expect: 100-continue` (a known gateway defect under
    // CPU load, issue 14, is not what this test is about).
    let big: Vec<u8> = (0..900 * 1024u32).map(|i| (i * 7 % 251) as u8).collect();
    std::fs::write(work.join("big.bin"), &big).unwrap();
    std::fs::write(work.join("small.txt"), b"written with every provider up\n").unwrap();

    let server = serve(dir, &config, port);
    let root = server.aws_root(&aws, &work);
    root.ok(&["s3", "mb", "s3://before"]);
    root.ok(&["s3", "cp", "big.bin", "s3://before/big.bin"]);
    root.ok(&["s3", "cp", "small.txt", "s3://before/small.txt"]);
    cli_ok(
        dir,
        &config,
        &[
            "bucket",
            "create",
            "quorum4",
            "--data",
            "3",
            "--parity",
            "2",
            "--write-quorum",
            "4",
        ],
    );
    server.stop();

    // Two providers gone: their directories replaced by files, so they cannot even be opened.
    let providers = dir.join("archipel-data").join("providers");
    for p in ["p5", "p6"] {
        std::fs::rename(providers.join(p), providers.join(format!("{p}.away"))).unwrap();
        std::fs::write(providers.join(p), b"not a directory").unwrap();
    }
    let server = serve(dir, &config, port);
    for p in ["p5", "p6"] {
        assert!(
            server
                .banner
                .contains(&format!("WARNING: serving without provider `{p}`")),
            "{}",
            server.banner
        );
    }
    let root = server.aws_root(&aws, &work);
    // Every read is served from the four that answer.
    root.ok(&["s3", "cp", "s3://before/big.bin", "big.back"]);
    assert_eq!(std::fs::read(work.join("big.back")).unwrap(), big);
    root.ok(&["s3", "cp", "s3://before/small.txt", "small.back"]);
    assert_eq!(
        std::fs::read(work.join("small.back")).unwrap(),
        b"written with every provider up\n"
    );
    // Writes are accepted where the write quorum (4) can be met — also once the two are
    // past their down period (5 s), when writes probe them: one at a time, and only a
    // write that can lose the probed shard.
    root.ok(&["s3", "cp", "big.bin", "s3://quorum4/during.bin"]);
    std::thread::sleep(std::time::Duration::from_millis(5500));
    root.ok(&["s3", "cp", "big.bin", "s3://quorum4/during.bin"]);
    root.ok(&["s3", "cp", "s3://quorum4/during.bin", "during.back"]);
    assert_eq!(std::fs::read(work.join("during.back")).unwrap(), big);
    let status = json(&cli_ok(dir, &config, &["status", "--json"]));
    assert_eq!(status["outages"].as_array().unwrap().len(), 2, "{status}");

    // p5 comes back: it is probed and used again, without a restart.
    std::fs::remove_file(providers.join("p5")).unwrap();
    std::fs::rename(providers.join("p5.away"), providers.join("p5")).unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let status = json(&cli_ok(dir, &config, &["status", "--json"]));
        let outages = status["outages"].as_array().unwrap();
        if outages.len() == 1 {
            assert!(outages[0].as_str().unwrap().contains("p6"), "{status}");
            let p5 = status["providers"]
                .as_array()
                .unwrap()
                .iter()
                .find(|p| p["name"] == "p5")
                .unwrap()
                .clone();
            assert!(p5["reachable"].as_bool().unwrap(), "{p5}");
            assert!(p5["shards"].as_u64().unwrap() > 0, "{p5}");
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "p5 was not used again: {status}\n{}",
            server.stderr()
        );
        std::thread::sleep(std::time::Duration::from_millis(500));
    }
    server.stop();
}

/// Makes provider `p` of the zero-config layout unreachable (its directory replaced by a file)
/// or brings it back.
fn take_away(providers: &Path, p: &str) {
    std::fs::rename(providers.join(p), providers.join(format!("{p}.away"))).unwrap();
    std::fs::write(providers.join(p), b"not a directory").unwrap();
}

fn bring_back(providers: &Path, p: &str) {
    std::fs::remove_file(providers.join(p)).unwrap();
    std::fs::rename(providers.join(format!("{p}.away")), providers.join(p)).unwrap();
}

/// Polls `status --json` until `done` holds (or panics after `secs`); the last status.
fn wait_status(
    dir: &Path,
    config: &Path,
    secs: u64,
    what: &str,
    server: &Server,
    done: impl Fn(&serde_json::Value) -> bool,
) -> serde_json::Value {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(secs);
    loop {
        let status = json(&cli_ok(dir, config, &["status", "--json"]));
        if done(&status) {
            return status;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{what} within {secs} s: {status}\n{}",
            server.stderr()
        );
        std::thread::sleep(std::time::Duration::from_millis(250));
    }
}

#[test]
fn lost_redundancy_heals_by_itself_when_a_provider_comes_back_or_was_wiped() {
    let Some(aws) = archipel_testkit::require_tool("aws", "the self-healing test") else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let (config, port, _) = init(dir);
    // Repair every second, an inventory every two.
    let text = std::fs::read_to_string(&config).unwrap();
    let text = text
        .replace("# interval_s = 30 ", "interval_s = 1 ")
        .replace("# inventory_interval_s = 3600", "inventory_interval_s = 2");
    assert!(text.contains("\ninterval_s = 1 ") && text.contains("\ninventory_interval_s = 2"));
    std::fs::write(&config, text).unwrap();
    let work = dir.join("work");
    std::fs::create_dir(&work).unwrap();
    let data: Vec<u8> = (0..900 * 1024u32).map(|i| (i * 13 % 251) as u8).collect();
    std::fs::write(work.join("obj.bin"), &data).unwrap();
    std::fs::write(work.join("small.txt"), b"a small object, in packs\n").unwrap();
    let providers = dir.join("archipel-data").join("providers");

    let server = serve(dir, &config, port);
    server.aws_root(&aws, &work).ok(&["s3", "mb", "s3://heal"]);
    server.stop();

    // Written while p5 is away: its shards are queued.
    take_away(&providers, "p5");
    let server = serve(dir, &config, port);
    let root = server.aws_root(&aws, &work);
    root.ok(&["s3", "cp", "obj.bin", "s3://heal/obj.bin"]);
    root.ok(&["s3", "cp", "small.txt", "s3://heal/small.txt"]);
    let status = json(&cli_ok(dir, &config, &["status", "--json"]));
    assert_eq!(status["repair"]["queued"], 2, "{status}");
    assert_eq!(status["redundancy"]["degraded"], 2, "{status}");

    // p5 comes back: the gateway sees it again and repair gives it its shards, unasked.
    bring_back(&providers, "p5");
    wait_status(dir, &config, 60, "p5 used again", &server, |s| {
        s["outages"].as_array().is_some_and(Vec::is_empty)
    });
    let back = std::time::Instant::now();
    let status = wait_status(dir, &config, 30, "the shards repaired", &server, |s| {
        s["repair"]["queued"] == 0 && s["redundancy"]["degraded"] == 0
    });
    let healed = back.elapsed();
    assert_eq!(status["repair"]["rebuilt"], 2, "{status}");
    assert!(
        healed < std::time::Duration::from_secs(5),
        "repair runs every second; healing took {healed:?}"
    );
    server.stop();

    // Any two other providers can go now.
    let check_without = |gone: [&str; 2]| {
        for p in gone {
            take_away(&providers, p);
        }
        let server = serve(dir, &config, port);
        let root = server.aws_root(&aws, &work);
        for f in ["obj.bin", "small.txt"] {
            let _ = std::fs::remove_file(work.join("back"));
            root.ok(&["s3", "cp", &format!("s3://heal/{f}"), "back"]);
            assert_eq!(
                std::fs::read(work.join("back")).unwrap(),
                std::fs::read(work.join(f)).unwrap(),
                "{f} without {gone:?}"
            );
        }
        server.stop();
        for p in gone {
            bring_back(&providers, p);
        }
    };
    check_without(["p1", "p3"]);

    // p2's directory is gone entirely (a replaced disk, mounted empty): the inventory notices,
    // repair refills it.
    std::fs::remove_dir_all(providers.join("p2")).unwrap();
    let server = serve(dir, &config, port);
    let status = wait_status(dir, &config, 30, "p2 refilled", &server, |s| {
        s["repair"]["missing_found"].as_u64().unwrap_or(0) >= 2
            && s["repair"]["queued"] == 0
            && s["redundancy"]["degraded"] == 0
    });
    assert!(
        status["repair"]["rebuilt"].as_u64().unwrap() >= 2,
        "{status}"
    );
    server.stop();
    check_without(["p4", "p6"]);
}
