//! The harness: `archipel` commands with a clean environment, a running `archipel serve`
//! whose banner is parsed for the endpoint and the credentials it prints, and the aws cli
//! driven with exactly those (nothing from the machine's own AWS setup).

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use archipel_testkit::{free_port, wait_listening};

const BIN: &str = env!("CARGO_BIN_EXE_archipel");

/// An `archipel` command with a clean environment for Archipel's variables.
pub(crate) fn archipel() -> Command {
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
pub(crate) fn run(cmd: &mut Command) -> (bool, String, String) {
    let out = cmd.output().expect("run a command");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Runs an operator command on the zero-configuration vault in `data`.
pub(crate) fn op(data: &Path, args: &[&str]) -> (bool, String, String) {
    run(archipel()
        .current_dir(data.parent().unwrap())
        .args(args)
        .arg("--data-dir")
        .arg(data))
}

/// Like [`op`], and it must succeed: its standard output.
pub(crate) fn op_ok(data: &Path, args: &[&str]) -> String {
    let (ok, out, err) = op(data, args);
    assert!(ok, "archipel {args:?} failed:\n{out}\n{err}");
    out
}

/// Deterministic test bytes.
pub(crate) fn pattern(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

/// A running `archipel serve`, killed if the test ends without stopping it.
pub(crate) struct Server {
    child: Option<Child>,
    /// Everything it printed on standard output at start.
    pub(crate) banner: String,
    stderr_path: PathBuf,
    /// The endpoint, as printed.
    pub(crate) endpoint: String,
    /// The root credentials, as printed.
    pub(crate) access_key: String,
    pub(crate) secret_key: String,
    /// The one-line aws cli example, as printed.
    pub(crate) example: String,
}

/// The value after `label` on its banner line.
fn banner_value(banner: &str, label: &str) -> String {
    banner
        .lines()
        .find_map(|l| l.trim().strip_prefix(label))
        .unwrap_or_else(|| panic!("no {label:?} in the banner:\n{banner}"))
        .trim()
        .to_string()
}

/// The root secret: printed when generated, else read from the credentials file the banner
/// names (the secret is shown once only).
fn secret_from_banner(banner: &str, cwd: &Path) -> String {
    let shown = banner_value(banner, "secret access key:");
    let Some(rest) = shown.strip_prefix("(in ") else {
        return shown;
    };
    let path = rest.split(';').next().unwrap();
    let path = if Path::new(path).is_absolute() {
        PathBuf::from(path)
    } else {
        cwd.join(path)
    };
    let text = std::fs::read_to_string(&path).unwrap();
    text.lines()
        .find_map(|l| l.strip_prefix("secret_access_key = "))
        .unwrap()
        .trim_matches('"')
        .to_string()
}

impl Server {
    /// Starts `archipel serve --data-dir DATA --listen 127.0.0.1:<free> --admin-listen off` (the
    /// README's run command, on a free port), and waits for its banner.
    pub(crate) fn start(data: &Path) -> Server {
        let port = free_port();
        let dir = data.parent().unwrap();
        let args = [
            "--data-dir".to_string(),
            data.display().to_string(),
            "--listen".into(),
            format!("127.0.0.1:{port}"),
            "--admin-listen".into(),
            "off".into(),
        ];
        Server::start_with(&args, dir, port)
    }

    /// Starts `archipel serve ARGS` in `dir`, whose S3 listener is on `port`, and waits for
    /// its banner.
    pub(crate) fn start_with(args: &[String], dir: &Path, port: u16) -> Server {
        let stderr_path = dir.join(format!("serve-{port}.stderr"));
        let mut cmd = archipel();
        cmd.arg("serve")
            .args(args)
            .current_dir(dir)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&stderr_path).unwrap());
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
            endpoint: String::new(),
            access_key: String::new(),
            secret_key: String::new(),
            example: String::new(),
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
        while let Ok(line) = rx.recv_timeout(Duration::from_millis(200)) {
            server.banner.push_str(&line);
            server.banner.push('\n');
        }
        let b = server.banner.clone();
        server.endpoint = banner_value(&b, "Archipel S3 endpoint:")
            .split_whitespace()
            .next()
            .unwrap()
            .to_string();
        server.access_key = banner_value(&b, "access key id:");
        server.secret_key = secret_from_banner(&b, dir);
        server.example = b
            .lines()
            .map(str::trim)
            .find(|l| l.contains("aws --endpoint-url"))
            .unwrap()
            .to_string();
        assert_eq!(server.endpoint, format!("http://127.0.0.1:{port}"), "{b}");
        assert!(
            wait_listening(port, Duration::from_secs(10)),
            "S3 port not listening"
        );
        server
    }

    /// What it logged so far.
    pub(crate) fn stderr(&self) -> String {
        std::fs::read_to_string(&self.stderr_path).unwrap_or_default()
    }

    /// The aws cli with the root credentials it printed.
    pub(crate) fn aws_root(&self, aws: &Path, cwd: &Path) -> Aws {
        Aws {
            bin: aws.to_path_buf(),
            endpoint: self.endpoint.clone(),
            access_key: self.access_key.clone(),
            secret_key: self.secret_key.clone(),
            cwd: cwd.to_path_buf(),
        }
    }

    /// Kills it with SIGKILL (no shutdown at all) and waits for it; its log.
    pub(crate) fn kill(mut self) -> String {
        let mut child = self.child.take().unwrap();
        child.kill().unwrap();
        child.wait().unwrap();
        self.stderr()
    }

    /// Sends SIGTERM and checks that it exits 0; its log.
    pub(crate) fn stop(mut self) -> String {
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
                    "archipel serve exited with {status} after SIGTERM:\n{stderr}"
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

/// Makes `cmd` see none of the machine's AWS settings: no `AWS_*` variable (a CA bundle breaks
/// plain-HTTP endpoints, a session token or profile would be sent along), no config or
/// credentials file, no instance metadata lookups.
pub(crate) fn isolate_aws(cmd: &mut Command) {
    for (k, _) in std::env::vars_os() {
        if k.to_string_lossy().starts_with("AWS_") {
            cmd.env_remove(k);
        }
    }
    cmd.env("AWS_CONFIG_FILE", "/dev/null")
        .env("AWS_SHARED_CREDENTIALS_FILE", "/dev/null")
        .env("AWS_EC2_METADATA_DISABLED", "true");
}

/// The aws cli against one endpoint with one access key.
#[derive(Clone)]
pub(crate) struct Aws {
    bin: PathBuf,
    endpoint: String,
    access_key: String,
    secret_key: String,
    cwd: PathBuf,
}

impl Aws {
    /// The same, with another access key.
    pub(crate) fn with_key(&self, access_key: &str, secret_key: &str) -> Aws {
        Aws {
            access_key: access_key.to_string(),
            secret_key: secret_key.to_string(),
            ..self.clone()
        }
    }

    /// Runs `aws --endpoint-url E ARGS…`: (success, stdout, stderr).
    pub(crate) fn run(&self, args: &[&str]) -> (bool, String, String) {
        let mut cmd = Command::new(&self.bin);
        isolate_aws(&mut cmd);
        cmd.current_dir(&self.cwd)
            .env("AWS_ACCESS_KEY_ID", &self.access_key)
            .env("AWS_SECRET_ACCESS_KEY", &self.secret_key)
            .arg("--endpoint-url")
            .arg(&self.endpoint)
            .args(args)
            .stdin(Stdio::null());
        run(&mut cmd)
    }

    /// Like [`Aws::run`], and it must succeed: its standard output.
    pub(crate) fn ok(&self, args: &[&str]) -> String {
        let (ok, out, err) = self.run(args);
        assert!(ok, "aws {args:?} failed:\n{out}\n{err}");
        out
    }

    /// Like [`Aws::run`], and it must fail: its standard error.
    pub(crate) fn fails(&self, args: &[&str]) -> String {
        let (ok, out, err) = self.run(args);
        assert!(!ok, "aws {args:?} should have failed:\n{out}\n{err}");
        err
    }
}

/// Six `rclone serve webdav` providers and a configuration over them (4 + 2, free loopback
/// ports, `extra` TOML added before the providers) written to `dir/archipel.toml`: the
/// servers, the configuration's path and the S3 port; `None` when rclone is missing (outside
/// CI).
pub(crate) fn six_webdav_vault(
    dir: &Path,
    extra: &str,
) -> Option<(Vec<archipel_testkit::webdav::RcloneWebDav>, PathBuf, u16)> {
    let mut davs = Vec::new();
    for _ in 0..6 {
        davs.push(archipel_testkit::webdav::start()?);
    }
    let (port, admin) = (archipel_testkit::free_port(), archipel_testkit::free_port());
    let mut config = format!(
        "[server]\nlisten = \"127.0.0.1:{port}\"\nadmin_listen = \"127.0.0.1:{admin}\"\n\
         data_dir = \"data\"\n\n{extra}\n[policy]\ndata = 4\nparity = 2\n"
    );
    for (i, d) in davs.iter().enumerate() {
        config.push_str(&format!(
            "\n[[provider]]\nname = \"dav{i}\"\nkind = \"webdav\"\nurl = \"{}\"\nroot = \"archipel\"\n",
            d.config.endpoint
        ));
    }
    let path = dir.join("archipel.toml");
    std::fs::write(&path, config).unwrap();
    Some((davs, path, port))
}
