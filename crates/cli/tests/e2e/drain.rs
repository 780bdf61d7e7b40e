//! Leaving a provider live: `archipel provider drain` on a running gateway over eight
//! directory providers while boto3 clients keep writing, reading (checked byte for byte) and
//! deleting — no client request fails, every object is byte-identical afterwards, the drained
//! provider's own listing shows no Archipel blob and the drain report says so; a drain whose
//! gateway is SIGKILLed resumes from its checkpoint after the restart and finishes; a drain
//! that would break a bucket's policy is refused before anything moves, and `provider
//! replace` onto a provider added live moves every shard there.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use archipel_testkit::free_port;

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

fn cli_ok(dir: &Path, config: &Path, args: &[&str]) -> String {
    let (ok, out, err) = cli(dir, config, args);
    assert!(ok, "archipel {args:?} failed:\n{out}\n{err}");
    out
}

/// A vault of eight directory providers, a GC delay of one second, and a 4+2 bucket `data`
/// (so two providers can be left); its config, S3 port and the running gateway.
fn vault(dir: &Path) -> (PathBuf, u16, Server) {
    let (port, admin) = (free_port(), free_port());
    let mut args = vec![
        "init".to_string(),
        "--listen".into(),
        format!("127.0.0.1:{port}"),
        "--admin-listen".into(),
        format!("127.0.0.1:{admin}"),
    ];
    for i in 0..8 {
        args.push("--provider-dir".into());
        args.push(
            dir.join("disks")
                .join(format!("p{i}"))
                .display()
                .to_string(),
        );
    }
    let (ok, out, err) = run(archipel().current_dir(dir).args(&args));
    assert!(ok, "init failed:\n{out}\n{err}");
    let config = dir.join("archipel.toml");
    let text = std::fs::read_to_string(&config).unwrap();
    assert!(text.contains("# delay_s = 60"), "{text}");
    std::fs::write(&config, text.replace("# delay_s = 60", "delay_s = 1")).unwrap();
    let server = serve(dir, &config, port);
    cli_ok(
        dir,
        &config,
        &["bucket", "create", "data", "--data", "4", "--parity", "2"],
    );
    (config, port, server)
}

fn serve(dir: &Path, config: &Path, port: u16) -> Server {
    Server::start_with(
        &["--config".to_string(), config.display().to_string()],
        dir,
        port,
    )
}

/// Runs `drain_load.py MODE ARGS` to the end; its standard output.
fn python_run(python: &Path, server: &Server, args: &[&str]) -> String {
    let out = python_cmd(python, server, args).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        out.status.success(),
        "drain_load.py {args:?} failed:\n{text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    text
}

fn python_cmd(python: &Path, server: &Server, args: &[&str]) -> Command {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/e2e/drain_load.py");
    let mut c = Command::new(python);
    c.arg(script)
        .args([
            &server.endpoint,
            &server.access_key,
            &server.secret_key,
            "data",
        ])
        .args(args);
    c
}

fn tools() -> Option<PathBuf> {
    let python = archipel_testkit::require_tool("python3", "the drain test")?;
    let probe = Command::new(&python)
        .args(["-c", "import boto3"])
        .status()
        .unwrap();
    if !probe.success() {
        assert!(!archipel_testkit::in_ci(), "boto3 is not installed");
        eprintln!("SKIP: boto3 is not installed; the drain test did not run");
        return None;
    }
    Some(python)
}

/// Checks every key of the models (fill and load outputs) through the gateway.
fn check_all(python: &Path, server: &Server, dir: &Path, models: &[&Path]) {
    let out = dir.join("check.json");
    let mut args: Vec<&str> = vec!["check"];
    args.extend(models.iter().map(|m| m.to_str().unwrap()));
    args.push(out.to_str().unwrap());
    println!("{}", python_run(python, server, &args).trim());
    let r = json(&std::fs::read_to_string(&out).unwrap());
    assert_eq!(r["bad"].as_array().unwrap().len(), 0, "{r}");
}

/// The drain report of a finished drain job, checked complete: nothing indexed or listed on
/// the provider at the end, shards moved, a digest. (`moved` counts what the job recorded at
/// its checkpoints: moves of a run killed after its last checkpoint are done, not counted.)
fn complete_report(job: &serde_json::Value) -> &serde_json::Value {
    assert_eq!(job["state"], "done", "{job}");
    let d = &job["drain"];
    assert_eq!(d["phase"], "done", "{job}");
    assert_eq!(d["indexed_after"], 0, "{job}");
    assert_eq!(d["listed_after"]["shards"], 0, "{job}");
    assert!(d["indexed_before"]["shards"].as_u64().unwrap() > 0, "{job}");
    assert!(d["moved"]["shards"].as_u64().unwrap() > 0, "{job}");
    assert_eq!(d["digest"].as_str().map(str::len), Some(64), "{job}");
    d
}

/// The files of a directory provider that hold vault data: shards (`v1/`), journal (`j1/`)
/// and snapshot (`s1/`) shards, the vault header.
fn vault_files(root: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
                continue;
            }
            let rel = p.strip_prefix(root).unwrap().display().to_string();
            if ["v1/", "j1/", "s1/"].iter().any(|x| rel.starts_with(x)) || rel == "archipel-vault" {
                out.push(rel);
            }
        }
    }
    out
}

/// What `status --json` lists for provider `name` (from the provider's own listing).
fn listed(dir: &Path, config: &Path, name: &str) -> serde_json::Value {
    let status = json(&cli_ok(dir, config, &["status", "--json"]));
    status["providers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == name)
        .cloned()
        .unwrap_or_else(|| panic!("{name} not in {status}"))
}

#[test]
fn a_provider_drained_under_load_ends_empty_and_no_client_request_fails() {
    let Some(python) = tools() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let (config, _port, server) = vault(dir);
    let fill = dir.join("fill.json");
    let n = 10_000;
    println!(
        "{}",
        python_run(
            &python,
            &server,
            &["fill", &n.to_string(), fill.to_str().unwrap()]
        )
        .trim()
    );

    // The exit plan first: nothing moves.
    let plan = json(&cli_ok(
        dir,
        &config,
        &["provider", "exit-plan", "p3", "--json"],
    ));
    assert!(plan["to_move"]["shards"].as_u64().unwrap() > 0, "{plan}");
    assert_eq!(plan["blockers"].as_array().unwrap().len(), 0, "{plan}");
    assert_eq!(
        plan["listed"]["shards"], plan["to_move"]["shards"],
        "{plan}"
    );

    let stop = dir.join("stop");
    let load_out = dir.join("load.json");
    let load = python_cmd(
        &python,
        &server,
        &[
            "load",
            stop.to_str().unwrap(),
            load_out.to_str().unwrap(),
            fill.to_str().unwrap(),
        ],
    )
    .stdout(Stdio::piped())
    .stderr(Stdio::piped())
    .spawn()
    .unwrap();
    std::thread::sleep(Duration::from_secs(2));
    let started = Instant::now();
    let out = cli_ok(
        dir,
        &config,
        &["provider", "drain", "p3", "--wait", "--json"],
    );
    let took = started.elapsed();
    std::fs::write(&stop, b"").unwrap();
    let load = load.wait_with_output().unwrap();
    assert!(
        load.status.success(),
        "{}",
        String::from_utf8_lossy(&load.stderr)
    );
    println!("{}", String::from_utf8_lossy(&load.stdout).trim());
    let l = json(&std::fs::read_to_string(&load_out).unwrap());
    assert_eq!(l["failures"].as_array().unwrap().len(), 0, "{l}");
    assert!(l["counts"]["put"].as_u64().unwrap() > 0, "{l}");

    let job = json(&out);
    let d = complete_report(&job);
    let moved = d["moved"]["shards"].as_u64().unwrap();
    let bytes = d["moved"]["bytes"].as_u64().unwrap();
    println!(
        "drain of p3: {moved} shards ({:.1} MB) of {n} objects in {:.1} s: {:.0} objects/s, \
         {:.1} MB/s; {} copied, {} rebuilt, {} passes, {} leftovers",
        bytes as f64 / 1e6,
        took.as_secs_f64(),
        n as f64 / took.as_secs_f64(),
        bytes as f64 / 1e6 / took.as_secs_f64(),
        d["copied"],
        d["rebuilt"],
        d["passes"],
        d["leftovers_deleted"]
    );
    // The provider's own listing, independently of the report.
    let p3 = listed(dir, &config, "p3");
    assert_eq!(
        (p3["shards"].as_u64(), p3["state"].as_str()),
        (Some(0), Some("draining")),
        "{p3}"
    );
    let placement = json(&cli_ok(dir, &config, &["status", "--placement", "--json"]));
    assert!(placement["per_provider"].get("p3").is_none(), "{placement}");

    check_all(&python, &server, dir, &[&fill, &load_out]);

    // The report reads; the provider retires; a second retire changes nothing.
    let shown = cli_ok(dir, &config, &["job", "show", job["id"].as_str().unwrap()]);
    assert!(
        shown.contains("provider's own listing shows 0 Archipel blobs"),
        "{shown}"
    );
    assert!(d["snapshot"].is_string(), "{job}");
    assert!(d["metadata_deleted"].as_u64().unwrap() > 0, "{job}");
    cli_ok(dir, &config, &["provider", "retire", "p3"]);
    // Nothing of the vault is left on its disk: no shard, no journal or snapshot, no header.
    let left = vault_files(&dir.join("disks").join("p3"));
    assert!(left.is_empty(), "left on p3: {left:?}");
    let list = cli_ok(dir, &config, &["provider", "list", "--json"]);
    assert!(
        !list.contains("\"p3\"") || list.contains("retired"),
        "{list}"
    );
    server.stop();
}

#[test]
fn a_drain_killed_with_its_gateway_resumes_a_drain_that_breaks_a_policy_is_refused_and_a_replace_moves_everything_onto_the_new_provider()
 {
    let Some(python) = tools() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let (config, port, server) = vault(dir);
    // 5+2 needs seven providers: with p5 drained, no other provider can be left.
    cli_ok(
        dir,
        &config,
        &["bucket", "create", "wide", "--data", "5", "--parity", "2"],
    );
    let fill = dir.join("fill.json");
    println!(
        "{}",
        python_run(&python, &server, &["fill", "1500", fill.to_str().unwrap()]).trim()
    );
    // Slowed down so the kill lands in the middle.
    let out = cli_ok(
        dir,
        &config,
        &["provider", "drain", "p5", "--rate", "2MiB", "--json"],
    );
    let id = json(&out)["id"].as_str().unwrap().to_string();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let j = json(&cli_ok(dir, &config, &["job", "show", &id, "--json"]));
        let done = j["progress"]["items_done"].as_u64().unwrap_or(0);
        if done >= 300 {
            assert_eq!(j["state"], "running", "{j}");
            break;
        }
        assert!(Instant::now() < deadline, "the drain did not progress: {j}");
        std::thread::sleep(Duration::from_millis(100));
    }
    server.kill();
    let server = serve(dir, &config, port);
    let deadline = Instant::now() + Duration::from_secs(180);
    let job = loop {
        let j = json(&cli_ok(dir, &config, &["job", "show", &id, "--json"]));
        if j["state"] != "running" && j["state"] != "queued" {
            break j;
        }
        assert!(Instant::now() < deadline, "the drain did not finish: {j}");
        std::thread::sleep(Duration::from_millis(250));
    };
    complete_report(&job);
    let runs = job["runs"].as_array().unwrap();
    assert!(runs.len() >= 2, "{job}");
    assert!(
        runs[1]["from_items"].as_u64().unwrap() >= 300,
        "resumed from its checkpoint: {job}"
    );
    assert_eq!(listed(dir, &config, "p5")["shards"], 0);
    check_all(&python, &server, dir, &[&fill]);

    // Seven providers are left for a 5+2 bucket: another drain is refused, nothing moves.
    let before = json(&cli_ok(dir, &config, &["status", "--placement", "--json"]));
    let (ok, _, err) = cli(dir, &config, &["provider", "drain", "p0"]);
    assert!(!ok);
    assert!(
        err.contains("bucket `wide`")
            && !err.contains("bucket `data`")
            && err.contains("cannot drain `p0`"),
        "{err}"
    );
    let after = json(&cli_ok(dir, &config, &["status", "--placement", "--json"]));
    assert_eq!(before, after);
    assert_eq!(listed(dir, &config, "p0")["state"], "active");

    // Replaced instead (a new provider added live, then `provider replace`): every shard of
    // p0 goes onto p8, and p0 ends empty.
    let (ok, _, err) = cli(dir, &config, &["provider", "replace", "p0", "p8"]);
    assert!(!ok && err.contains("add it first"), "{err}");
    let p8 = dir.join("disks").join("p8");
    cli_ok(
        dir,
        &config,
        &[
            "provider",
            "add",
            "--name",
            "p8",
            "--kind",
            "dir",
            "--path",
            p8.to_str().unwrap(),
        ],
    );
    let (ok, out, err) = cli(
        dir,
        &config,
        &["provider", "replace", "p0", "p8", "--wait", "--json"],
    );
    assert!(ok, "{out}\n{err}");
    let job = json(&out);
    assert_eq!(job["params"]["onto"], "p8", "{job}");
    let d = complete_report(&job);
    let to = d["to"].as_object().unwrap();
    assert_eq!(to.len(), 1, "every shard onto the replacement: {job}");
    assert_eq!(to["p8"], d["moved"]["shards"], "{job}");
    assert_eq!(listed(dir, &config, "p0")["shards"], 0);
    assert_eq!(listed(dir, &config, "p8")["shards"], d["moved"]["shards"]);
    cli_ok(dir, &config, &["provider", "retire", "p0"]);
    check_all(&python, &server, dir, &[&fill]);
    server.stop();
}
