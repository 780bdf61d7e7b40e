//! Chaos, bounded: `archipel serve` over six `rclone serve webdav` processes (4 + 2, write
//! quorum 5), under a mixed boto3 load (PUT, multipart, GET, DELETE, LIST; `chaos_load.py`),
//! while providers are paused (SIGSTOP), resumed, killed (SIGKILL) and restarted — at most two
//! impaired at a time — one data shard of a static object is corrupted on disk, and the
//! gateway itself is SIGKILLed and restarted. Afterwards, with every provider back and the
//! repair queue drained: every acknowledged object is byte-identical, acknowledged deletes are
//! absent, and no GET ever returned wrong bytes. Failures by cause and the chaos actions are
//! printed for the record.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use crate::harness::{Server, archipel, run};

fn sh(cmd: &str) {
    let _ = Command::new("sh").arg("-c").arg(cmd).status();
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum State {
    Up,
    Paused,
    Dead,
}

fn status_json(dir: &Path, config: &Path) -> Option<serde_json::Value> {
    let (ok, out, _) = run(archipel()
        .current_dir(dir)
        .args(["status", "--json", "--config"])
        .arg(config));
    ok.then(|| serde_json::from_str(&out).ok()).flatten()
}

/// Every file under `root` (recursively).
fn files(root: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![root.to_path_buf()];
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
    out
}

#[test]
fn chaos_under_a_mixed_load_loses_nothing_and_never_returns_wrong_bytes() {
    let Some(aws) = archipel_testkit::require_tool("aws", "the chaos test") else {
        return;
    };
    let Some(python) = archipel_testkit::require_tool("python3", "the chaos test") else {
        return;
    };
    let probe = Command::new(&python)
        .args(["-c", "import boto3"])
        .status()
        .unwrap();
    if !probe.success() {
        assert!(!archipel_testkit::in_ci(), "boto3 is not installed");
        eprintln!("SKIP: boto3 is not installed; the chaos test did not run");
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let Some((mut davs, config_path, port)) = crate::harness::six_webdav_vault(
        dir,
        "[repair]\ninterval_s = 2\ninventory_interval_s = 20\n",
    ) else {
        return;
    };
    let work = dir.join("work");
    std::fs::create_dir(&work).unwrap();
    let args = vec!["--config".to_string(), config_path.display().to_string()];
    let mut server = Server::start_with(&args, dir, port);
    let s3 = server.aws_root(&aws, &work);
    s3.ok(&["s3", "mb", "s3://chaos"]);
    // Static objects, never touched by the load: one of their data shards gets corrupted.
    let statics: Vec<Vec<u8>> = (0..3u32)
        .map(|i| {
            (0..(600_000 + i * 100_000))
                .map(|j| (j.wrapping_mul(31).wrapping_add(i) % 251) as u8)
                .collect()
        })
        .collect();
    for (i, d) in statics.iter().enumerate() {
        std::fs::write(work.join(format!("static{i}")), d).unwrap();
        s3.ok(&[
            "s3",
            "cp",
            &format!("static{i}"),
            &format!("s3://chaos/static/{i}"),
        ]);
    }
    // A data shard (index < k = 4) of a static object: every shard file there now is one.
    let victim = files(&davs[1].dir().join("archipel").join("v1"))
        .into_iter()
        .find(|p| {
            p.extension()
                .and_then(|e| e.to_str())
                .and_then(|e| e.parse::<u8>().ok())
                .is_some_and(|s| s < 4)
        })
        .expect("a data shard of a static object on dav1");

    let out_path = dir.join("load.json");
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/e2e/chaos_load.py");
    let load_secs = 75;
    let load = Command::new(&python)
        .args([
            script,
            &server.endpoint,
            &server.access_key,
            &server.secret_key,
            "chaos",
            &load_secs.to_string(),
            out_path.to_str().unwrap(),
        ])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();

    // The chaos: an action every 2–4 s, at most two providers impaired at once.
    let mut rng = fastrand::Rng::with_seed(15);
    let mut states = [State::Up; 6];
    let mut actions: Vec<String> = Vec::new();
    let started = Instant::now();
    let mut corrupted = false;
    let mut gateway_killed = false;
    while started.elapsed() < Duration::from_secs(load_secs - 8) {
        std::thread::sleep(Duration::from_millis(2000 + rng.u64(..2000)));
        let t = started.elapsed().as_secs();
        if !corrupted && t >= 15 {
            use std::os::unix::fs::FileExt;
            let f = std::fs::OpenOptions::new()
                .read(true)
                .write(true)
                .open(&victim)
                .unwrap();
            let len = f.metadata().unwrap().len();
            let at = len / 2;
            let mut b = [0u8];
            f.read_exact_at(&mut b, at).unwrap();
            b[0] ^= 0x10;
            f.write_all_at(&b, at).unwrap();
            corrupted = true;
            actions.push(format!("{t}s corrupt a data shard on dav1"));
            continue;
        }
        if !gateway_killed && t >= 35 {
            let _ = server.kill();
            server = Server::start_with(&args, dir, port);
            gateway_killed = true;
            actions.push(format!(
                "{t}s SIGKILL the gateway, restarted in {} s",
                started.elapsed().as_secs() - t
            ));
            continue;
        }
        let impaired = states.iter().filter(|s| **s != State::Up).count();
        let i = rng.usize(..6);
        match states[i] {
            State::Up if impaired < 2 => {
                if rng.bool() {
                    sh(&format!("kill -STOP {}", davs[i].pid()));
                    states[i] = State::Paused;
                    actions.push(format!("{t}s SIGSTOP dav{i}"));
                } else {
                    davs[i].kill();
                    states[i] = State::Dead;
                    actions.push(format!("{t}s SIGKILL dav{i}"));
                }
            }
            State::Up => {}
            State::Paused => {
                sh(&format!("kill -CONT {}", davs[i].pid()));
                states[i] = State::Up;
                actions.push(format!("{t}s SIGCONT dav{i}"));
            }
            State::Dead => {
                davs[i].restart();
                states[i] = State::Up;
                actions.push(format!("{t}s restart dav{i}"));
            }
        }
    }
    // Everyone back.
    for (i, s) in states.iter_mut().enumerate() {
        match *s {
            State::Paused => sh(&format!("kill -CONT {}", davs[i].pid())),
            State::Dead => davs[i].restart(),
            State::Up => {}
        }
        *s = State::Up;
    }
    actions.push(format!(
        "{}s all providers back",
        started.elapsed().as_secs()
    ));
    let load_out = load.wait_with_output().unwrap();
    let load_text = String::from_utf8_lossy(&load_out.stdout).into_owned();
    assert!(
        load_out.status.success(),
        "the load failed:\n{load_text}\n{}",
        String::from_utf8_lossy(&load_out.stderr)
    );
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&out_path).unwrap()).unwrap();
    eprintln!("chaos actions: {actions:#?}");
    eprintln!("load: {load_text}");

    // Repair catches up with everything the chaos left degraded.
    let deadline = Instant::now() + Duration::from_secs(120);
    let status = loop {
        if let Some(s) = status_json(dir, &config_path)
            && s["repair"]["queued"] == 0
            && s["redundancy"]["degraded"] == 0
            && s["outages"].as_array().is_some_and(Vec::is_empty)
        {
            break s;
        }
        assert!(
            Instant::now() < deadline,
            "not repaired 120 s after the chaos: {:?}\n{}",
            status_json(dir, &config_path),
            server.stderr()
        );
        std::thread::sleep(Duration::from_secs(1));
    };
    eprintln!("repair after the chaos: {}", status["repair"]);

    // Nothing wrong was ever returned, and everything acknowledged is there.
    let wrong = report["wrong"].as_array().unwrap();
    assert!(
        wrong.is_empty(),
        "wrong answers during the chaos: {wrong:#?}"
    );
    let final_out = Command::new(&python)
        .args([
            script,
            &server.endpoint,
            &server.access_key,
            &server.secret_key,
            "chaos",
            "0",
            out_path.to_str().unwrap(),
            "final",
        ])
        .output()
        .unwrap();
    let final_report: serde_json::Value =
        serde_json::from_slice(&final_out.stdout).unwrap_or_else(|e| {
            panic!(
                "final check ({e}): {}\n{}",
                String::from_utf8_lossy(&final_out.stdout),
                String::from_utf8_lossy(&final_out.stderr)
            )
        });
    let bad = final_report["bad"].as_array().unwrap();
    assert!(bad.is_empty(), "after the chaos: {bad:#?}");
    assert!(
        final_report["checked"].as_u64().unwrap() > 20,
        "{final_report}"
    );
    let s3 = server.aws_root(&aws, &work);
    for (i, d) in statics.iter().enumerate() {
        let back = work.join("back");
        let _ = std::fs::remove_file(&back);
        s3.ok(&["s3", "cp", &format!("s3://chaos/static/{i}"), "back"]);
        assert!(std::fs::read(&back).unwrap() == *d, "static object {i}");
    }
    // The corrupted data shard: found (by a read or this scrub) and rewritten.
    // (`job start --wait` fails when the scrub found bad shards: the first one may.)
    let scrub = |what: &str, must_pass: bool| -> serde_json::Value {
        let (ok, out, err) = run(archipel().current_dir(dir).args([
            "job",
            "start",
            "scrub",
            "--bucket",
            "chaos",
            "--wait",
            "--json",
            "--config",
            config_path.to_str().unwrap(),
        ]));
        assert!(ok || !must_pass, "{what} scrub: {out}\n{err}");
        serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}"))
    };
    let first = scrub("first", false);
    assert!(
        server.stderr().contains("is corrupt; queued for repair"),
        "the corrupted shard was never noticed:\n{}",
        server.stderr()
    );
    let deadline = Instant::now() + Duration::from_secs(60);
    while status_json(dir, &config_path).is_none_or(|s| s["repair"]["queued"] != 0) {
        assert!(
            Instant::now() < deadline,
            "the corrupt shard was not repaired"
        );
        std::thread::sleep(Duration::from_secs(1));
    }
    eprintln!("first scrub after the chaos: {}", first["result"]);
    let again = scrub("second", true);
    assert_eq!(again["result"]["bad_shards"], 0, "{again}");
    let counts = &report["counts"];
    assert!(
        counts["put"].as_u64().unwrap_or(0) > 50 && counts["get"].as_u64().unwrap_or(0) > 50,
        "too little load to mean anything: {counts}"
    );
    eprintln!(
        "chaos: {} actions; requests {counts}; failures by cause {}; final check of {} keys",
        actions.len(),
        report["failures"],
        final_report["checked"]
    );
    server.stop();
}
