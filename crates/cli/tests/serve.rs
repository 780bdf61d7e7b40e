//! `archipel serve` and `archipel init` as an operator meets them: the zero-configuration
//! first run and its restart, configuration errors that name the key and the line, a
//! provider that fails its start-up check (unreachable, or refusing its credentials), a
//! configuration written by `init` that serves, and providers added to it by `provider add`.
//! Everything talks to 127.0.0.1 only.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use archipel_testkit::{free_port, wait_listening};

const BIN: &str = env!("CARGO_BIN_EXE_archipel");

/// A command with a clean environment for Archipel's variables.
fn archipel() -> Command {
    let mut c = Command::new(BIN);
    for v in [
        "ARCHIPEL_ROOT_ACCESS_KEY",
        "ARCHIPEL_ROOT_SECRET_KEY",
        "ARCHIPEL_PASSPHRASE",
        "RUST_BACKTRACE",
    ] {
        c.env_remove(v);
    }
    c.env("RUST_LOG", "info");
    c
}

/// Runs to completion: (success, stdout, stderr).
fn run(cmd: &mut Command) -> (bool, String, String) {
    let out = cmd.output().expect("run archipel");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// A running `archipel serve`, killed if the test ends without stopping it.
struct Server {
    child: Option<Child>,
    banner: String,
    stderr_path: PathBuf,
    port: u16,
    admin_port: u16,
}

impl Server {
    /// Starts `archipel serve` with `args` (plus free ports) and waits for its banner.
    fn start(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Server {
        let port = free_port();
        let admin_port = free_port();
        let stderr_path = dir.join(format!("serve-{port}.stderr"));
        let mut cmd = archipel();
        cmd.arg("serve")
            .args(args)
            .arg("--listen")
            .arg(format!("127.0.0.1:{port}"))
            .arg("--admin-listen")
            .arg(format!("127.0.0.1:{admin_port}"))
            .current_dir(dir)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&stderr_path).unwrap());
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().expect("spawn archipel serve");
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let mut server = Server {
            child: Some(child),
            banner: String::new(),
            stderr_path,
            port,
            admin_port,
        };
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match rx.recv_timeout(left) {
                Ok(line) => {
                    server.banner.push_str(&line);
                    server.banner.push('\n');
                    if line.contains("aws --endpoint-url") {
                        break;
                    }
                }
                Err(_) => panic!(
                    "no banner from archipel serve; stdout so far:\n{}\nstderr:\n{}",
                    server.banner,
                    server.stderr()
                ),
            }
        }
        // The rest of the banner (the demo warning) arrives in the same write.
        while let Ok(line) = rx.recv_timeout(Duration::from_millis(300)) {
            server.banner.push_str(&line);
            server.banner.push('\n');
        }
        assert!(
            wait_listening(port, Duration::from_secs(10)),
            "S3 port not listening"
        );
        server
    }

    fn stderr(&self) -> String {
        std::fs::read_to_string(&self.stderr_path).unwrap_or_default()
    }

    /// The value after `label` on its banner line.
    fn banner_value(&self, label: &str) -> String {
        self.banner
            .lines()
            .find_map(|l| l.trim().strip_prefix(label))
            .unwrap_or_else(|| panic!("no {label:?} in the banner:\n{}", self.banner))
            .trim()
            .to_string()
    }

    /// Sends SIGTERM and waits for a clean exit.
    fn stop(mut self) -> String {
        let mut child = self.child.take().unwrap();
        // The shell's own `kill`: no dependency on a kill binary being installed.
        let ok = Command::new("sh")
            .arg("-c")
            .arg(format!("kill -TERM {}", child.id()))
            .status()
            .unwrap()
            .success();
        assert!(ok, "kill -TERM failed");
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(status) = child.try_wait().unwrap() {
                let stderr = self.stderr();
                assert!(
                    status.success(),
                    "archipel serve exited with {status}:\n{stderr}"
                );
                return stderr;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                panic!(
                    "archipel serve did not stop after SIGTERM:\n{}",
                    self.stderr()
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// A plain HTTP/1.1 GET on 127.0.0.1: (status code, body).
fn http_get(port: u16, path: &str) -> (u16, String) {
    http_req(port, "GET", path)
}

fn http_req(port: u16, method: &str, path: &str) -> (u16, String) {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut raw = String::new();
    s.read_to_string(&mut raw).unwrap();
    let status = raw
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or_else(|| panic!("not an HTTP answer: {raw:?}"));
    let body = raw
        .split_once("\r\n\r\n")
        .map_or("", |(_, b)| b)
        .to_string();
    (status, body)
}

#[cfg(unix)]
fn mode(p: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(p).unwrap().permissions().mode() & 0o777
}

#[test]
fn zero_config_serve_prints_credentials_answers_health_and_restarts_on_the_same_vault() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("vault-data");
    let data_arg = data.to_str().unwrap();

    let first = Server::start(tmp.path(), &["--data-dir", data_arg], &[]);
    let endpoint = format!("http://127.0.0.1:{}", first.port);
    assert!(
        first
            .banner
            .contains(&format!("Archipel S3 endpoint: {endpoint}")),
        "{}",
        first.banner
    );
    let access = first.banner_value("access key id:");
    let secret = first.banner_value("secret access key:");
    assert!(access.starts_with("AR") && access.len() == 20, "{access}");
    assert_eq!(secret.len(), 40, "{secret}");
    assert!(
        first.banner.contains(&format!(
            "AWS_ACCESS_KEY_ID={access} AWS_SECRET_ACCESS_KEY={secret} aws --endpoint-url {endpoint} s3 ls"
        )),
        "{}",
        first.banner
    );
    assert!(
        first.banner.contains("WARNING: demo setup"),
        "{}",
        first.banner
    );
    assert!(first.banner.contains("one disk"), "{}", first.banner);
    assert!(first.banner.contains("archipel init"), "{}", first.banner);
    assert!(first.banner.contains("--config"), "{}", first.banner);
    assert!(
        first.banner.contains("4 data + 2 parity shards"),
        "{}",
        first.banner
    );

    assert_eq!(http_get(first.admin_port, "/health"), (200, "ok\n".into()));
    assert_eq!(http_get(first.admin_port, "/ready").0, 200);
    let (code, metrics) = http_get(first.admin_port, "/metrics");
    assert_eq!(code, 200);
    for p in 1..=6 {
        assert!(
            metrics.contains(&format!("archipel_provider_up{{provider=\"p{p}\"}} 1")),
            "{metrics}"
        );
    }

    // The vault on disk: secrets private, six provider directories, embedded metadata.
    for f in ["key", "credentials", "vault"] {
        assert!(data.join(f).is_file(), "{f} missing");
    }
    #[cfg(unix)]
    {
        assert_eq!(mode(&data.join("key")), 0o600);
        assert_eq!(mode(&data.join("credentials")), 0o600);
    }
    for p in 1..=6 {
        assert!(data.join("providers").join(format!("p{p}")).is_dir());
    }
    assert!(data.join("meta").is_dir());
    let key = std::fs::read_to_string(data.join("key")).unwrap();

    // A second gateway on the same embedded vault is refused while the first runs.
    let (ok, _, err) = run(archipel()
        .args(["serve", "--data-dir", data_arg, "--admin-listen", "off"])
        .arg("--listen")
        .arg(format!("127.0.0.1:{}", free_port())));
    assert!(!ok);
    assert!(err.contains("in use by another archipel process"), "{err}");

    assert!(
        first.banner.contains("shown only this once"),
        "{}",
        first.banner
    );
    let log = first.stop();
    assert!(log.contains("stopped"), "{log}");

    // Restart: same key, same credentials, no new vault.
    let second = Server::start(tmp.path(), &["--data-dir", data_arg], &[]);
    assert_eq!(second.banner_value("access key id:"), access);
    // The secret was shown once, when generated; a restart names the file instead (banners
    // end up in journald and container logs).
    assert!(
        !second.banner.contains(&secret),
        "the secret is printed again:\n{}",
        second.banner
    );
    assert!(
        second
            .banner_value("secret access key:")
            .contains("shown only when generated"),
        "{}",
        second.banner
    );
    // The example still works: it reads the secret from the file with sed.
    let example = second
        .banner
        .lines()
        .map(str::trim)
        .find(|l| l.contains("aws --endpoint-url"))
        .unwrap()
        .to_string();
    let sh = std::process::Command::new("sh")
        .arg("-c")
        .arg(
            example
                .split(" aws --endpoint-url")
                .next()
                .unwrap()
                .to_string()
                + " sh -c 'printf %s \"$AWS_SECRET_ACCESS_KEY\"'",
        )
        .current_dir(tmp.path())
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&sh.stdout), secret, "{example}");
    assert!(!second.banner.contains("created now"), "{}", second.banner);
    assert_eq!(std::fs::read_to_string(data.join("key")).unwrap(), key);
    assert_eq!(http_get(second.admin_port, "/health").0, 200);
    second.stop();
}

#[test]
fn root_credentials_come_from_the_environment_when_set() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("d");
    let server = Server::start(
        tmp.path(),
        &["--data-dir", data.to_str().unwrap()],
        &[
            ("ARCHIPEL_ROOT_ACCESS_KEY", "ENVKEY123"),
            ("ARCHIPEL_ROOT_SECRET_KEY", "env-secret-value-42"),
        ],
    );
    assert_eq!(server.banner_value("access key id:"), "ENVKEY123");
    // The secret is the operator's own: it is not echoed.
    assert!(
        !server.banner.contains("env-secret-value-42"),
        "{}",
        server.banner
    );
    assert!(
        server
            .banner
            .contains("AWS_SECRET_ACCESS_KEY=\"$ARCHIPEL_ROOT_SECRET_KEY\""),
        "{}",
        server.banner
    );
    assert!(!data.join("credentials").exists());
    server.stop();
}

#[test]
fn a_taken_port_is_a_clear_error() {
    let tmp = tempfile::tempdir().unwrap();
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    let (ok, _, err) = run(archipel()
        .current_dir(tmp.path())
        .args(["serve", "--admin-listen", "off", "--listen"])
        .arg(format!("127.0.0.1:{port}")));
    assert!(!ok);
    assert!(
        err.contains(&format!("cannot listen on 127.0.0.1:{port}")) && err.contains("--listen"),
        "{err}"
    );
}

/// Writes `text` as `archipel.toml` in `dir` and runs `archipel serve --config` on it.
fn serve_config(dir: &Path, text: &str, env: &[(&str, &str)]) -> (bool, String, String) {
    let path = dir.join("archipel.toml");
    std::fs::write(&path, text).unwrap();
    let mut cmd = archipel();
    cmd.current_dir(dir)
        .args(["serve", "--config"])
        .arg(&path)
        .args(["--admin-listen", "off", "--listen"])
        .arg(format!("127.0.0.1:{}", free_port()));
    for (k, v) in env {
        cmd.env(k, v);
    }
    run(&mut cmd)
}

const DIR_PROVIDER: &str = "[[provider]]\nname = \"disk-a\"\nkind = \"dir\"\npath = \"a\"\n";

#[test]
fn a_typo_in_a_key_names_the_key_and_the_line() {
    let tmp = tempfile::tempdir().unwrap();
    let text =
        format!("[server]\nlisten = \"127.0.0.1:9000\"\nadmin_lisen = \"off\"\n\n{DIR_PROVIDER}");
    let (ok, _, err) = serve_config(tmp.path(), &text, &[]);
    assert!(!ok);
    assert!(err.contains("archipel.toml line 3"), "{err}");
    assert!(err.contains("unknown key `server.admin_lisen`"), "{err}");
    assert!(
        err.contains("expected one of `listen`, `admin_listen`"),
        "{err}"
    );

    let text = format!("{DIR_PROVIDER}jurisdicton = \"FR\"\n");
    let (ok, _, err) = serve_config(tmp.path(), &text, &[]);
    assert!(!ok);
    assert!(
        err.contains("line 5") && err.contains("jurisdicton"),
        "{err}"
    );

    let (ok, _, err) = serve_config(
        tmp.path(),
        &format!("[polcy]\ndata = 1\n{DIR_PROVIDER}"),
        &[],
    );
    assert!(!ok);
    assert!(err.contains("line 1") && err.contains("polcy"), "{err}");
}

#[test]
fn a_bad_value_names_the_field_and_the_line() {
    let tmp = tempfile::tempdir().unwrap();
    let (ok, _, err) = serve_config(
        tmp.path(),
        &format!("{DIR_PROVIDER}weight = \"heavy\"\n"),
        &[],
    );
    assert!(!ok);
    assert!(err.contains("line 5") && err.contains("weight"), "{err}");

    let (ok, _, err) = serve_config(
        tmp.path(),
        &format!("[server]\nlisten = \"localhost\"\n{DIR_PROVIDER}"),
        &[],
    );
    assert!(!ok);
    assert!(
        err.contains("line 2") && err.contains("server.listen"),
        "{err}"
    );
    assert!(
        err.contains("not a valid socket address") || err.contains("localhost"),
        "{err}"
    );

    let (ok, _, err) = serve_config(tmp.path(), &DIR_PROVIDER.replace("\"dir\"", "\"ftp\""), &[]);
    assert!(!ok);
    assert!(
        err.contains("line 3") && err.contains("kind") && err.contains("ftp"),
        "{err}"
    );

    let (ok, _, err) = serve_config(tmp.path(), &DIR_PROVIDER.replace("path = \"a\"\n", ""), &[]);
    assert!(!ok);
    assert!(
        err.contains("provider `disk-a`") && err.contains("needs `path`"),
        "{err}"
    );

    let (ok, _, err) = serve_config(
        tmp.path(),
        &format!("{DIR_PROVIDER}\n[policy]\ndata = 4\nparity = 2\n"),
        &[],
    );
    assert!(!ok);
    assert!(err.contains("line 6: [policy]"), "{err}");
}

#[test]
fn a_missing_environment_variable_is_named() {
    let tmp = tempfile::tempdir().unwrap();
    let text = "[[provider]]\nname = \"cloud\"\nkind = \"s3\"\nendpoint = \"http://127.0.0.1:1\"\n\
                bucket = \"b\"\naccess_key = \"${ARCHIPEL_TEST_UNSET_KEY}\"\nsecret_key = \"x\"\n";
    let (ok, _, err) = serve_config(tmp.path(), text, &[]);
    assert!(!ok);
    assert!(err.contains("ARCHIPEL_TEST_UNSET_KEY"), "{err}");
    assert!(
        err.contains("line 6") && err.contains("access_key"),
        "{err}"
    );

    // Set, it is substituted (and the file then fails later, on the unreachable provider).
    let (ok, _, err) = serve_config(
        tmp.path(),
        text,
        &[("ARCHIPEL_TEST_UNSET_KEY", "from-the-environment")],
    );
    assert!(!ok);
    assert!(!err.contains("ARCHIPEL_TEST_UNSET_KEY"), "{err}");
    assert!(err.contains("provider `cloud`"), "{err}");
}

#[test]
fn an_unreachable_provider_is_served_without_and_named() {
    let tmp = tempfile::tempdir().unwrap();
    // A port that nothing listens on.
    let closed = free_port();
    let text = format!(
        "[server]\ndata_dir = \"data\"\n\n{DIR_PROVIDER}\n[[provider]]\nname = \"eu-cloud\"\nkind = \"s3\"\n\
         endpoint = \"http://127.0.0.1:{closed}\"\nbucket = \"shards\"\naccess_key = \"AK\"\n\
         secret_key = \"wrong-secret\"\njurisdiction = \"FR\"\noperator = \"cloud\"\n"
    );
    std::fs::write(tmp.path().join("archipel.toml"), &text).unwrap();
    let started = Instant::now();
    // 1+1 over two providers: one answering is enough to read everything.
    let server = Server::start(tmp.path(), &["--config", "archipel.toml"], &[]);
    let out = server.banner.clone();
    assert!(
        out.contains("WARNING: serving without provider `eu-cloud`")
            && out.contains("archipel.toml line 10")
            && out.contains(&format!("127.0.0.1:{closed}")),
        "{out}"
    );
    assert!(
        !out.contains("without provider `disk-a`"),
        "the healthy provider is not blamed: {out}"
    );
    assert!(
        !out.contains("wrong-secret"),
        "secrets are never printed: {out}"
    );
    assert!(started.elapsed() < Duration::from_secs(60));
    let err = server.stop();
    assert!(
        !err.contains("wrong-secret"),
        "secrets are never logged: {err}"
    );
}

#[test]
fn too_few_answering_providers_fail_the_start_naming_them() {
    let tmp = tempfile::tempdir().unwrap();
    let (c1, c2) = (free_port(), free_port());
    let remote = |name: &str, port: u16| {
        format!(
            "[[provider]]\nname = \"{name}\"\nkind = \"s3\"\nendpoint = \"http://127.0.0.1:{port}\"\n\
             bucket = \"shards\"\naccess_key = \"AK\"\nsecret_key = \"wrong-secret\"\n\
             jurisdiction = \"FR\"\noperator = \"cloud\"\n"
        )
    };
    // 2+1: with one provider of three answering, nothing could be read.
    let text = format!(
        "[server]\ndata_dir = \"data\"\n\n{DIR_PROVIDER}\n{}\n{}\n[policy]\ndata = 2\nparity = 1\n",
        remote("eu-one", c1),
        remote("eu-two", c2)
    );
    let (ok, out, err) = serve_config(tmp.path(), &text, &[]);
    assert!(!ok, "{out}");
    assert!(
        !out.contains("aws --endpoint-url"),
        "it must not serve:\n{out}"
    );
    assert!(
        err.contains("only 1 of 3 providers answer") && err.contains("at least 2"),
        "{err}"
    );
    assert!(
        err.contains("provider `eu-one` (") && err.contains("provider `eu-two` ("),
        "{err}"
    );
    assert!(
        !err.contains("wrong-secret"),
        "secrets are never printed: {err}"
    );
}

/// A configuration with one dir provider and one WebDAV provider at `url` with `password`.
fn webdav_config(url: &str, password: &str) -> String {
    format!(
        "[server]\ndata_dir = \"data\"\n\n{DIR_PROVIDER}\n[[provider]]\nname = \"dav-home\"\nkind = \"webdav\"\n\
         url = \"{url}\"\nuser = \"alice\"\npassword = \"{password}\"\nroot = \"archipel\"\n\
         jurisdiction = \"DE\"\noperator = \"alice\"\n\n[policy]\ndata = 1\nparity = 1\n"
    )
}

#[test]
fn a_wrong_provider_password_fails_the_start_naming_the_provider() {
    let Some(dav) = archipel_testkit::webdav::start_with_auth("alice", "right-password-1") else {
        return;
    };
    let url = dav.config.endpoint.clone();
    let tmp = tempfile::tempdir().unwrap();

    // The right URL, the wrong password: refused at start, naming the provider and its line.
    let started = Instant::now();
    let (ok, out, err) = serve_config(tmp.path(), &webdav_config(&url, "wrong-password-2"), &[]);
    assert!(!ok, "{out}");
    assert!(
        !out.contains("aws --endpoint-url"),
        "it must not start serving:\n{out}"
    );
    assert!(
        err.contains("1 of 2 providers failed the start-up check"),
        "{err}"
    );
    assert!(
        err.contains("provider `dav-home` (") && err.contains("archipel.toml line 10"),
        "{err}"
    );
    assert!(err.contains(&format!("webdav at {url}/archipel")), "{err}");
    assert!(
        err.contains("credentials refused") && err.contains("check user and password"),
        "{err}"
    );
    assert!(
        !err.contains("disk-a"),
        "the healthy provider is not blamed: {err}"
    );
    for secret in ["wrong-password-2", "right-password-1"] {
        assert!(!err.contains(secret), "secrets are never printed: {err}");
    }
    // Refused is not retried for a minute: it fails at once.
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "took {:?}",
        started.elapsed()
    );

    // The same configuration with the right password starts.
    std::fs::write(
        tmp.path().join("archipel.toml"),
        webdav_config(&url, "${DAV_PASSWORD}"),
    )
    .unwrap();
    let server = Server::start(
        tmp.path(),
        &["--config", "archipel.toml"],
        &[("DAV_PASSWORD", "right-password-1")],
    );
    assert!(
        server.banner.contains("providers: 2 (disk-a, dav-home)"),
        "{}",
        server.banner
    );
    server.stop();
}

#[test]
fn init_writes_a_commented_config_that_serves() {
    let tmp = tempfile::tempdir().unwrap();
    let (ok, out, err) = run(archipel().current_dir(tmp.path()).args([
        "init",
        "--provider-dir",
        "disks/one",
        "--provider-dir",
        "disks/two",
        "--provider-dir",
        "disks/three",
    ]));
    assert!(ok, "{err}");
    assert!(out.contains("wrote archipel.toml"), "{out}");
    let text = std::fs::read_to_string(tmp.path().join("archipel.toml")).unwrap();
    assert!(text.starts_with("# Archipel configuration"), "{text}");
    for needle in [
        "[server]",
        "[meta]",
        "[key]",
        "name = \"one\"",
        "path = \"disks/three\"",
        "# kind = \"s3\"",
        "# kind = \"webdav\"",
        "data = 2",
        "parity = 1",
        "ARCHIPEL_PASSPHRASE",
    ] {
        assert!(text.contains(needle), "{needle:?} missing:\n{text}");
    }

    // It refuses to overwrite without --force.
    let (ok, _, err) = run(archipel().current_dir(tmp.path()).arg("init"));
    assert!(!ok);
    assert!(err.contains("--force"), "{err}");

    // And it serves.
    let server = Server::start(tmp.path(), &["--config", "archipel.toml"], &[]);
    assert!(
        !server.banner.contains("WARNING: demo"),
        "{}",
        server.banner
    );
    assert!(
        server.banner.contains("providers: 3 (one, two, three)"),
        "{}",
        server.banner
    );
    assert!(
        server.banner.contains("2 data + 1 parity shards"),
        "{}",
        server.banner
    );
    assert_eq!(http_get(server.admin_port, "/health").0, 200);
    server.stop();
    assert!(tmp.path().join("disks/two").is_dir());
    assert!(tmp.path().join("archipel-data/key").is_file());
}

/// Temporary files `provider add` may have left beside the configuration.
fn leftovers(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".tmp"))
        .collect()
}

#[test]
fn provider_add_appends_a_checked_provider_that_lists_and_serves() {
    let tmp = tempfile::tempdir().unwrap();
    let (ok, _, err) = run(archipel().current_dir(tmp.path()).arg("init"));
    assert!(ok, "{err}");
    let config = tmp.path().join("archipel.toml");
    let original = std::fs::read_to_string(&config).unwrap();
    let add = |args: &[&str]| {
        run(archipel()
            .current_dir(tmp.path())
            .args(["provider", "add", "--config", "archipel.toml"])
            .args(args))
    };

    let (ok, out, err) = add(&[
        "--name",
        "nas",
        "--kind",
        "dir",
        "--path",
        "disks/nas",
        "--operator",
        "me",
        "--jurisdiction",
        "FR",
    ]);
    assert!(ok, "{err}");
    assert!(
        out.starts_with("added provider `nas` [dir at disks/nas] to archipel.toml line "),
        "{out}"
    );
    assert!(out.contains("  kind = \"dir\"\n"), "{out}");
    assert!(out.contains("probe passed"), "{out}");
    assert!(out.contains("existing objects are not moved"), "{out}");
    // The file's text is kept as it was; the section is appended.
    let text = std::fs::read_to_string(&config).unwrap();
    assert_eq!(
        text.strip_prefix(original.as_str()),
        Some(
            "\n# Added by `archipel provider add`.\n[[provider]]\nname = \"nas\"\nkind = \"dir\"\n\
             path = \"disks/nas\"\noperator = \"me\"\njurisdiction = \"FR\"\n"
        ),
        "{text}"
    );
    assert!(tmp.path().join("disks/nas").is_dir());
    assert!(leftovers(tmp.path()).is_empty());

    let (ok, out, err) = run(archipel().current_dir(tmp.path()).args([
        "provider",
        "list",
        "--config",
        "archipel.toml",
    ]));
    assert!(ok, "{err}");
    assert!(
        out.lines().any(|l| l.split_whitespace().collect::<Vec<_>>()
            == ["nas", "dir", "me", "FR", "1", "active", "disks/nas"]),
        "{out}"
    );

    // A taken name is refused, naming it and where it is declared; the file is untouched.
    let (ok, _, err) = add(&["--name", "p3", "--kind", "dir", "--path", "elsewhere"]);
    assert!(!ok);
    assert!(
        err.contains("provider `p3` (archipel.toml line ") && err.contains("already exists"),
        "{err}"
    );
    // A typo'd kind is refused, with the kinds there are.
    let (ok, _, err) = add(&["--name", "x", "--kind", "webdaw", "--url", "http://h"]);
    assert!(!ok);
    assert!(
        err.contains("'webdaw'") && err.contains("[possible values: dir, s3, webdav]"),
        "{err}"
    );
    // Flags of another kind, or missing ones, are named.
    let (ok, _, err) = add(&[
        "--name", "x", "--kind", "dir", "--path", "p", "--bucket", "b",
    ]);
    assert!(!ok);
    assert!(
        err.contains("--bucket does not apply to --kind dir"),
        "{err}"
    );
    let (ok, _, err) = add(&["--name", "x", "--kind", "s3", "--endpoint", "http://h"]);
    assert!(!ok);
    assert!(
        err.contains("--kind s3 needs --bucket, --access-key, --secret-key"),
        "{err}"
    );
    assert_eq!(std::fs::read_to_string(&config).unwrap(), text);
    assert!(leftovers(tmp.path()).is_empty());

    // And it serves, with seven providers.
    let server = Server::start(tmp.path(), &["--config", "archipel.toml"], &[]);
    assert!(
        server
            .banner
            .contains("providers: 7 (p1, p2, p3, p4, p5, p6, nas)"),
        "{}",
        server.banner
    );
    server.stop();
}

#[test]
fn provider_add_probes_the_new_provider_like_serve_does() {
    let Some(dav) = archipel_testkit::webdav::start_with_auth("alice", "right-password-3") else {
        return;
    };
    let url = dav.config.endpoint.clone();
    let tmp = tempfile::tempdir().unwrap();
    let config = tmp.path().join("archipel.toml");
    let original = format!("[server]\ndata_dir = \"data\"\n\n{DIR_PROVIDER}");
    std::fs::write(&config, &original).unwrap();
    let add = |password: &str, env: &[(&str, &str)]| {
        let mut cmd = archipel();
        cmd.current_dir(tmp.path())
            .args(["provider", "add", "-c", "archipel.toml", "--name", "dav"])
            .args(["--kind", "webdav", "--url", &url, "--user", "alice"])
            .args(["--password", password, "--root", "shards"])
            .args(["--operator", "alice", "--jurisdiction", "DE"]);
        for (k, v) in env {
            cmd.env(k, v);
        }
        run(&mut cmd)
    };

    // A wrong password fails the probe: nothing is written.
    let (ok, out, err) = add("wrong-password-4", &[]);
    assert!(!ok, "{out}");
    assert!(
        err.contains(&format!("provider `dav` [webdav at {url}/shards]"))
            && err.contains("credentials refused (HTTP 401 Unauthorized)"),
        "{err}"
    );
    assert!(err.contains("archipel.toml is unchanged"), "{err}");
    assert!(!err.contains("wrong-password-4"), "{err}");
    assert_eq!(std::fs::read_to_string(&config).unwrap(), original);

    // The right one, as an environment reference: written as the reference.
    let env = [("DAV_PASSWORD", "right-password-3")];
    let (ok, out, err) = add("${DAV_PASSWORD}", &env);
    assert!(ok, "{err}");
    assert!(out.contains("  password = \"${DAV_PASSWORD}\"\n"), "{out}");
    assert!(!err.contains("note:"), "{err}");
    let text = std::fs::read_to_string(&config).unwrap();
    assert!(text.starts_with(&original), "{text}");
    assert!(text.contains("password = \"${DAV_PASSWORD}\"\n"), "{text}");
    assert!(!text.contains("right-password-3"), "{text}");
    assert!(leftovers(tmp.path()).is_empty());

    let server = Server::start(tmp.path(), &["--config", "archipel.toml"], &env);
    assert!(
        server.banner.contains("providers: 2 (disk-a, dav)"),
        "{}",
        server.banner
    );
    server.stop();
}

#[test]
fn a_passphrase_vault_reopens_only_with_its_passphrase() {
    let tmp = tempfile::tempdir().unwrap();
    let text = format!(
        "[server]\ndata_dir = \"data\"\n\n[key]\npassphrase = \"${{ARCHIPEL_PASSPHRASE}}\"\n\n{DIR_PROVIDER}"
    );
    std::fs::write(tmp.path().join("archipel.toml"), &text).unwrap();
    let good = [("ARCHIPEL_PASSPHRASE", "correct horse battery staple")];
    let server = Server::start(tmp.path(), &["--config", "archipel.toml"], &good);
    assert!(
        server.banner.contains("(passphrase, created now)"),
        "{}",
        server.banner
    );
    assert!(!tmp.path().join("data/key").exists());
    server.stop();

    let (ok, _, err) = serve_config(
        tmp.path(),
        &text,
        &[("ARCHIPEL_PASSPHRASE", "wrong horse battery staple")],
    );
    assert!(!ok);
    assert!(err.contains("the passphrase does not open vault"), "{err}");

    let server = Server::start(tmp.path(), &["--config", "archipel.toml"], &good);
    assert!(!server.banner.contains("created now"), "{}", server.banner);
    server.stop();
}

/// Runs an operator command on the zero-configuration vault in `data`.
fn op(dir: &Path, data: &Path, args: &[&str]) -> (bool, String, String) {
    run(archipel()
        .current_dir(dir)
        .args(args)
        .arg("--data-dir")
        .arg(data))
}

/// Replaces what changes from run to run (vault id, listing times) with placeholders.
fn normalize(text: &str, vault_id: &str) -> String {
    let mut out = String::new();
    for line in text.replace(vault_id, "<vault>").lines() {
        let line = match line.find("listed in ") {
            Some(i) => {
                let rest = &line[i + "listed in ".len()..];
                let digits = rest.chars().take_while(char::is_ascii_digit).count();
                format!("{}listed in <n>{}", &line[..i], &rest[digits..])
            }
            None => line.to_string(),
        };
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

#[test]
fn operator_commands_store_list_read_and_report_redundancy() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");

    // No vault yet: operator commands do not create one.
    let (ok, _, err) = op(tmp.path(), &data, &["bucket", "list"]);
    assert!(!ok);
    assert!(
        err.contains("no vault in") && err.contains("archipel serve"),
        "{err}"
    );
    assert!(!data.exists());

    // Create the vault by serving once.
    Server::start(tmp.path(), &["--data-dir", data.to_str().unwrap()], &[]).stop();

    let (ok, out, err) = op(tmp.path(), &data, &["bucket", "create", "photos"]);
    assert!(ok, "{err}");
    assert_eq!(out, "created bucket photos: 4+2 (quorum 5)\n");
    let (ok, out, err) = op(
        tmp.path(),
        &data,
        &["bucket", "create", "mirror", "--data", "1", "--parity", "1"],
    );
    assert!(ok, "{err}");
    assert_eq!(out, "created bucket mirror: 1+1 (quorum 2)\n");
    let (ok, _, err) = op(tmp.path(), &data, &["bucket", "create", "Bad_Name"]);
    assert!(!ok);
    assert!(err.contains("Bad_Name"), "{err}");
    let (ok, out, err) = op(tmp.path(), &data, &["bucket", "list", "--json"]);
    assert!(ok, "{err}");
    let list: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(list[0]["name"], "mirror");
    assert_eq!(list[1]["name"], "photos");
    assert_eq!(list[1]["policy"]["data"], 4);
    assert_eq!(list[1]["policy"]["parity"], 2);

    // put / ls / get / rm.
    let body: Vec<u8> = (0..300_000u32).map(|i| (i * 7 % 251) as u8).collect();
    let src = tmp.path().join("src.bin");
    std::fs::write(&src, &body).unwrap();
    let (ok, out, err) = op(
        tmp.path(),
        &data,
        &["put", src.to_str().unwrap(), "photos/2026/cat.bin"],
    );
    assert!(ok, "{err}");
    assert!(
        out.starts_with("put photos/2026/cat.bin: 293.0 KiB"),
        "{out}"
    );
    let (ok, _, err) = op(
        tmp.path(),
        &data,
        &["put", src.to_str().unwrap(), "photos/2026/dog.bin"],
    );
    assert!(ok, "{err}");
    let (ok, out, err) = op(tmp.path(), &data, &["ls", "photos/2026/c"]);
    assert!(ok, "{err}");
    assert!(out.contains("293.0 KiB  2026/cat.bin"), "{out}");
    assert!(out.ends_with("1 objects, 293.0 KiB\n"), "{out}");
    let back = tmp.path().join("back.bin");
    let (ok, _, err) = op(
        tmp.path(),
        &data,
        &["get", "photos/2026/cat.bin", back.to_str().unwrap()],
    );
    assert!(ok, "{err}");
    assert_eq!(std::fs::read(&back).unwrap(), body);
    let (ok, out, err) = op(tmp.path(), &data, &["rm", "photos/2026/dog.bin"]);
    assert!(ok, "{err}");
    assert_eq!(out, "deleted photos/2026/dog.bin\n");

    // Healthy: every object survives two more losses.
    let (ok, out, err) = op(tmp.path(), &data, &["status", "--json"]);
    assert!(ok, "{err}");
    let s: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(s["objects"], 1);
    assert_eq!(s["redundancy"]["min_tolerated_losses"], 2);
    assert_eq!(
        s["redundancy"]["summary"],
        "all objects readable, tolerate 2 more provider losses"
    );
    let vault_id = s["vault_id"].as_str().unwrap().to_string();

    // One provider directory vanishes: still readable, one more loss tolerated.
    std::fs::remove_dir_all(data.join("providers/p3")).unwrap();
    let (ok, out, err) = op(tmp.path(), &data, &["status", "--json"]);
    assert!(ok, "{err}");
    let s: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(s["redundancy"]["readable"], 1);
    assert_eq!(s["redundancy"]["unreadable"], 0);
    assert_eq!(s["redundancy"]["degraded"], 1);
    assert_eq!(s["redundancy"]["min_tolerated_losses"], 1);
    assert_eq!(
        s["redundancy"]["summary"],
        "all objects readable, tolerate 1 more provider loss (1 degraded: fewer shards than written)"
    );
    assert_eq!(s["providers"][2]["name"], "p3");
    assert_eq!(s["providers"][2]["shards"], 0);
    assert_eq!(s["shards_per_jurisdiction"]["local"], 5);

    // The human output, as a snapshot.
    let (ok, out, err) = op(tmp.path(), &data, &["status"]);
    assert!(ok, "{err}");
    let expected = format!(
        "vault <vault> ({dd})

providers:
  p1           dir         1 shards   73.5 KiB  self/local  ok, listed in <n> ms  [active]
                           1 more     73.5 KiB  unreferenced (awaiting GC, uploads in progress, orphans)
  p2           dir         1 shards   73.5 KiB  self/local  ok, listed in <n> ms  [active]
                           1 more     73.5 KiB  unreferenced (awaiting GC, uploads in progress, orphans)
  p3           dir         0 shards        0 B  self/local  ok, listed in <n> ms  [active]
  p4           dir         1 shards   73.5 KiB  self/local  ok, listed in <n> ms  [active]
                           1 more     73.5 KiB  unreferenced (awaiting GC, uploads in progress, orphans)
  p5           dir         1 shards   73.5 KiB  self/local  ok, listed in <n> ms  [active]
                           1 more     73.5 KiB  unreferenced (awaiting GC, uploads in progress, orphans)
  p6           dir         1 shards   73.5 KiB  self/local  ok, listed in <n> ms  [active]
                           1 more     73.5 KiB  unreferenced (awaiting GC, uploads in progress, orphans)

2 buckets, 1 objects, 293.0 KiB
redundancy: all objects readable, tolerate 1 more provider loss (1 degraded: fewer shards than written)
  1 objects survive 1 more provider loss
shards per jurisdiction: local 5
shards per operator: self 5
",
        dd = data.display()
    );
    assert_eq!(normalize(&out, &vault_id), expected);

    // The object still reads back whole.
    std::fs::remove_file(&back).unwrap();
    let (ok, _, err) = op(
        tmp.path(),
        &data,
        &["get", "photos/2026/cat.bin", back.to_str().unwrap()],
    );
    assert!(ok, "{err}");
    assert_eq!(std::fs::read(&back).unwrap(), body);

    // Three gone: reported unreadable, and a read fails rather than return wrong bytes.
    std::fs::remove_dir_all(data.join("providers/p4")).unwrap();
    std::fs::remove_dir_all(data.join("providers/p5")).unwrap();
    let (ok, out, err) = op(tmp.path(), &data, &["status", "--json"]);
    assert!(ok, "{err}");
    let s: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(s["redundancy"]["unreadable"], 1);
    assert_eq!(s["unreadable_objects"][0], "photos/2026/cat.bin");
    let (ok, _, err) = op(
        tmp.path(),
        &data,
        &[
            "get",
            "photos/2026/cat.bin",
            tmp.path().join("x").to_str().unwrap(),
        ],
    );
    assert!(!ok);
    assert!(err.contains("unavailable"), "{err}");
    assert!(!tmp.path().join("x").exists());
}

/// Issue 14: the index and everything else in the data directory are the owner's only, and an
/// existing data directory open to others is tightened (with a warning).
#[cfg(unix)]
#[test]
fn every_file_in_the_data_dir_is_owner_only_and_an_open_data_dir_is_tightened() {
    use std::os::unix::fs::PermissionsExt;
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("open-data");
    std::fs::create_dir(&data).unwrap();
    std::fs::set_permissions(&data, std::fs::Permissions::from_mode(0o755)).unwrap();
    let srv = Server::start(tmp.path(), &["--data-dir", data.to_str().unwrap()], &[]);
    // A bucket and an object: the index, its WAL, pack files in the demo providers.
    let aws_env = [
        ("AWS_ACCESS_KEY_ID", srv.banner_value("access key id:")),
        (
            "AWS_SECRET_ACCESS_KEY",
            srv.banner_value("secret access key:"),
        ),
    ];
    if let Some(curl) = archipel_testkit::require_tool("curl", "the data-dir permission test") {
        let user = format!("{}:{}", aws_env[0].1, aws_env[1].1);
        let url = format!("http://127.0.0.1:{}/perm-bucket", srv.port);
        for (method, u, data_arg) in [
            ("PUT", url.clone(), None),
            ("PUT", format!("{url}/obj"), Some("hello")),
        ] {
            let mut c = Command::new(&curl);
            c.args([
                "-sf",
                "-X",
                method,
                "--aws-sigv4",
                "aws:amz:us-east-1:s3",
                "--user",
                &user,
                "-H",
                "x-amz-content-sha256: UNSIGNED-PAYLOAD",
                &u,
            ]);
            if let Some(d) = data_arg {
                c.args(["--data-binary", d]);
            }
            let out = c.output().unwrap();
            assert!(
                out.status.success(),
                "{method} {u}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
    }
    let mut exposed = Vec::new();
    let mut stack = vec![data.clone()];
    let mut files = 0;
    while let Some(d) = stack.pop() {
        if mode(&d) & 0o077 != 0 {
            exposed.push(format!("{} {:o}", d.display(), mode(&d)));
        }
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else {
                files += 1;
                if mode(&p) & 0o077 != 0 {
                    exposed.push(format!("{} {:o}", p.display(), mode(&p)));
                }
            }
        }
    }
    assert!(files > 5, "the walk found the vault's files");
    assert!(data.join("meta").join("meta.sqlite3").is_file());
    assert!(exposed.is_empty(), "readable by others: {exposed:#?}");
    let log = srv.stop();
    assert!(
        log.contains("was accessible by other users (mode 755)"),
        "{log}"
    );
}

/// Issue 14: two gateways given different `--listen` ports get different admin ports (the S3
/// port + 1), printed in the banner; and the admin endpoints answer GET and HEAD only.
#[test]
fn a_listen_port_moves_the_admin_port_next_to_it_and_admin_endpoints_take_get_only() {
    let tmp = tempfile::tempdir().unwrap();
    // A free port whose successor is free too.
    let port = loop {
        let p = free_port();
        if p < u16::MAX && std::net::TcpListener::bind(("127.0.0.1", p + 1)).is_ok() {
            break p;
        }
    };
    let data = tmp.path().join("d");
    let mut child = archipel()
        .args(["serve", "--data-dir", data.to_str().unwrap(), "--listen"])
        .arg(format!("127.0.0.1:{port}"))
        .current_dir(tmp.path())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut banner = String::new();
    for line in BufReader::new(child.stdout.take().unwrap()).lines() {
        let line = line.unwrap();
        banner.push_str(&line);
        banner.push('\n');
        if line.contains("aws --endpoint-url") {
            break;
        }
    }
    let admin = port + 1;
    assert!(
        banner.contains(&format!("admin: http://127.0.0.1:{admin}")),
        "{banner}"
    );
    assert!(wait_listening(admin, Duration::from_secs(10)));
    assert_eq!(http_get(admin, "/health").0, 200);
    assert_eq!(http_req(admin, "HEAD", "/health").0, 200);
    for (method, path) in [
        ("POST", "/health"),
        ("DELETE", "/ready"),
        ("PUT", "/metrics"),
    ] {
        assert_eq!(http_req(admin, method, path).0, 405, "{method} {path}");
    }
    let _ = child.kill();
    let _ = child.wait();
}

/// Issue 14: with `RUST_LOG=trace`, the log of a signed request, a refused one and a
/// presigned URL contains no signature, secret, authorization header or presigned query.
#[test]
fn trace_logs_hold_no_signature_secret_or_presigned_query() {
    let Some(aws) = archipel_testkit::require_tool("aws", "the log-secrecy test") else {
        return;
    };
    let Some(curl) = archipel_testkit::require_tool("curl", "the log-secrecy test") else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("d");
    let srv = Server::start(
        tmp.path(),
        &["--data-dir", data.to_str().unwrap()],
        &[("RUST_LOG", "trace")],
    );
    let access = srv.banner_value("access key id:");
    let secret = srv.banner_value("secret access key:");
    let endpoint = format!("http://127.0.0.1:{}", srv.port);
    // aws cli v1 presigns with SigV2 unless told otherwise; the gateway takes SigV4 only.
    let aws_config = tmp.path().join("aws-config");
    std::fs::write(&aws_config, "[default]\ns3 =\n  signature_version = s3v4\n").unwrap();
    let aws_run = |secret: &str, args: &[&str]| {
        Command::new(&aws)
            .args(["--endpoint-url", &endpoint])
            .args(args)
            .env("AWS_ACCESS_KEY_ID", &access)
            .env("AWS_SECRET_ACCESS_KEY", secret)
            .env("AWS_DEFAULT_REGION", "us-east-1")
            .env("AWS_CONFIG_FILE", &aws_config)
            .env("AWS_SHARED_CREDENTIALS_FILE", "/dev/null")
            .env("AWS_EC2_METADATA_DISABLED", "true")
            .current_dir(tmp.path())
            .output()
            .unwrap()
    };
    assert!(
        aws_run(&secret, &["s3", "mb", "s3://logs"])
            .status
            .success()
    );
    std::fs::write(tmp.path().join("f"), b"log me not").unwrap();
    assert!(
        aws_run(&secret, &["s3", "cp", "f", "s3://logs/f"])
            .status
            .success()
    );
    // Refused: a wrong secret (s3s logs the expected signature at debug).
    assert!(
        !aws_run(
            "wrong-secret-0000000000000000000000000000",
            &["s3", "ls", "s3://logs"]
        )
        .status
        .success()
    );
    // A presigned URL, fetched.
    let url = aws_run(
        &secret,
        &["s3", "presign", "s3://logs/f", "--expires-in", "300"],
    );
    let url = String::from_utf8_lossy(&url.stdout).trim().to_string();
    let got = Command::new(&curl).args(["-s", &url]).output().unwrap();
    assert_eq!(got.stdout, b"log me not");
    let presigned_sig = url
        .split(['?', '&'])
        .find_map(|p| p.strip_prefix("X-Amz-Signature="))
        .unwrap()
        .to_string();
    let log = srv.stop();
    assert!(
        log.contains("TRACE") || log.contains("DEBUG"),
        "RUST_LOG=trace took effect"
    );
    for (what, needle) in [
        ("the root secret", secret.as_str()),
        ("a presigned signature", presigned_sig.as_str()),
        ("a presigned query", "X-Amz-Signature"),
        ("an authorization header", "AWS4-HMAC-SHA256 Credential"),
        ("s3s's signature mismatch report", "signature mismatch"),
    ] {
        assert!(!log.contains(needle), "the log holds {what}: {needle}");
    }
    assert!(
        !log.lines()
            .any(|l| l.contains(" s3s") && (l.contains("DEBUG") || l.contains("TRACE"))),
        "s3s debug output reached the log"
    );
}

/// The gateway's resident set, in MiB.
fn rss_mib(pid: u32) -> f64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse::<f64>().ok())
        })
        .map_or(0.0, |kib| kib / 1024.0)
}

/// Issue 14: eight anonymous 512 MiB browser-form POSTs at once are refused at their form
/// fields; the gateway's RSS stays within 64 MiB of idle (s3s alone read each file whole).
#[test]
fn anonymous_form_posts_are_refused_before_their_files_are_read() {
    let Some(curl) = archipel_testkit::require_tool("curl", "the form POST memory test") else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("d");
    let srv = Server::start(tmp.path(), &["--data-dir", data.to_str().unwrap()], &[]);
    let pid = srv.child.as_ref().unwrap().id();
    let big = tmp.path().join("big.bin");
    std::fs::File::create(&big)
        .unwrap()
        .set_len(512 * 1024 * 1024)
        .unwrap();
    std::thread::sleep(Duration::from_millis(500));
    let idle = rss_mib(pid);
    let url = format!("http://127.0.0.1:{}/formbucket", srv.port);
    let file_arg = format!("file=@{}", big.display());
    let mut peak = idle;
    let mut codes = Vec::new();
    // Three rounds of eight: the answer must reach every client although it is still
    // sending (a reset would lose it: `linger.rs`).
    for round in 0..3 {
        let posts: Vec<_> = (0..8)
            .map(|i| {
                Command::new(&curl)
                    .args(["-s", "-o", "/dev/null", "-w", "%{http_code}", "-F"])
                    .arg(format!("key=anon{round}-{i}"))
                    .args(["-F", &file_arg, &url])
                    .stdout(Stdio::piped())
                    .spawn()
                    .unwrap()
            })
            .collect();
        let t = Instant::now();
        let mut posts: Vec<Option<Child>> = posts.into_iter().map(Some).collect();
        while posts.iter().any(Option::is_some) {
            peak = peak.max(rss_mib(pid));
            for p in posts.iter_mut() {
                if let Some(c) = p
                    && c.try_wait().unwrap().is_some()
                {
                    let out = p.take().unwrap().wait_with_output().unwrap();
                    codes.push(String::from_utf8_lossy(&out.stdout).to_string());
                }
            }
            assert!(
                t.elapsed() < Duration::from_secs(120),
                "the POSTs did not finish"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
    peak = peak.max(rss_mib(pid));
    assert_eq!(codes.len(), 24);
    assert!(codes.iter().all(|c| c == "403"), "{codes:?}");
    assert!(
        peak - idle <= 64.0,
        "gateway RSS rose from {idle:.0} to {peak:.0} MiB while refusing the POSTs"
    );
    println!("gateway RSS: idle {idle:.0} MiB, peak while refusing {peak:.0} MiB");
    srv.stop();
}
