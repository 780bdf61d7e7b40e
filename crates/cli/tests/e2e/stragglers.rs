//! A hung provider holds no write: six `rclone serve webdav` processes as providers (4 + 2,
//! write quorum 5), one of them paused with SIGSTOP — not killed, so its TCP port still
//! accepts and then nothing answers — and PUTs of 1 KiB and 64 MiB through the aws cli still
//! complete within 2 s of what they take with every provider healthy. Once it is resumed,
//! repair gives it the shards it missed.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use crate::harness::{Server, archipel, run};

fn signal(pid: u32, sig: &str) {
    let ok = Command::new("sh")
        .arg("-c")
        .arg(format!("kill -{sig} {pid}"))
        .status()
        .unwrap()
        .success();
    assert!(ok, "kill -{sig} {pid}");
}

/// Resumes the paused provider however the test ends (a stopped rclone would otherwise only
/// be SIGKILLed by its drop).
struct Resume(u32);

impl Drop for Resume {
    fn drop(&mut self) {
        let _ = Command::new("sh")
            .arg("-c")
            .arg(format!("kill -CONT {}", self.0))
            .status();
    }
}

fn timed(aws: &crate::harness::Aws, args: &[&str]) -> Duration {
    let started = Instant::now();
    aws.ok(args);
    started.elapsed()
}

fn status_json(dir: &Path, config: &Path) -> serde_json::Value {
    let (ok, out, err) = run(archipel()
        .current_dir(dir)
        .args(["status", "--json", "--config"])
        .arg(config));
    assert!(ok, "status: {out}\n{err}");
    serde_json::from_str(&out).unwrap()
}

#[test]
fn puts_with_one_of_six_webdav_providers_paused_take_at_most_two_seconds_longer() {
    let Some(aws) = archipel_testkit::require_tool("aws", "the hung-provider test") else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let Some((davs, config_path, port)) =
        crate::harness::six_webdav_vault(dir, "[repair]\ninterval_s = 1\n")
    else {
        return;
    };
    let work = dir.join("work");
    std::fs::create_dir(&work).unwrap();
    std::fs::write(work.join("small.bin"), vec![7u8; 1024]).unwrap();
    let big: Vec<u8> = (0..64 * 1024 * 1024u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 24) as u8)
        .collect();
    std::fs::write(work.join("big.bin"), &big).unwrap();

    let test_started = Instant::now();
    let server = Server::start_with(
        &["--config".to_string(), config_path.display().to_string()],
        dir,
        port,
    );
    let s3 = server.aws_root(&aws, &work);
    s3.ok(&["s3", "mb", "s3://hung"]);
    // Healthy: the slowest of a few rounds.
    let mut small_ok = Duration::ZERO;
    let mut big_ok = Duration::ZERO;
    for i in 0..3 {
        small_ok = small_ok.max(timed(
            &s3,
            &["s3", "cp", "small.bin", &format!("s3://hung/warm{i}")],
        ));
    }
    for i in 0..2 {
        big_ok = big_ok.max(timed(
            &s3,
            &["s3", "cp", "big.bin", &format!("s3://hung/warm-big{i}")],
        ));
    }

    eprintln!("healthy rounds done after {:?}", test_started.elapsed());
    let paused = davs[3].pid();
    signal(paused, "STOP");
    let resume = Resume(paused);
    let limit = Duration::from_secs(2);
    let mut small_hung = Vec::new();
    for i in 0..5 {
        let t = timed(
            &s3,
            &["s3", "cp", "small.bin", &format!("s3://hung/small{i}")],
        );
        small_hung.push(t);
        assert!(
            t <= small_ok + limit,
            "1 KiB PUT {i} with a paused provider took {t:?} (healthy ≤ {small_ok:?})\n{}",
            server.stderr()
        );
    }
    let t = timed(&s3, &["s3", "cp", "big.bin", "s3://hung/big"]);
    assert!(
        t <= big_ok + limit,
        "64 MiB PUT with a paused provider took {t:?} (healthy ≤ {big_ok:?})\n{}",
        server.stderr()
    );
    eprintln!(
        "healthy: 1 KiB ≤ {small_ok:?}, 64 MiB ≤ {big_ok:?}; one provider paused: 1 KiB {small_hung:?}, 64 MiB {t:?}"
    );
    // Everything reads back while it is still paused.
    s3.ok(&["s3", "cp", "s3://hung/big", "big.back"]);
    assert!(std::fs::read(work.join("big.back")).unwrap() == big);
    s3.ok(&["s3", "cp", "s3://hung/small4", "small.back"]);
    assert_eq!(
        std::fs::read(work.join("small.back")).unwrap(),
        vec![7u8; 1024]
    );
    let status = status_json(dir, &config_path);
    assert!(
        status["repair"]["queued"].as_u64().unwrap() >= 1,
        "the shards the paused provider missed are queued: {status}"
    );

    // Resumed, it gets them back without anyone asking.
    drop(resume);
    let resumed = Instant::now();
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let status = status_json(dir, &config_path);
        if status["repair"]["queued"] == 0 && status["redundancy"]["degraded"] == 0 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "not repaired after the provider was resumed: {status}\n{}",
            server.stderr()
        );
        std::thread::sleep(Duration::from_millis(500));
    }
    eprintln!(
        "repaired {:?} after the provider was resumed",
        resumed.elapsed()
    );
    let stopping = Instant::now();
    server.stop();
    eprintln!("gateway stopped in {:?}", stopping.elapsed());
}
