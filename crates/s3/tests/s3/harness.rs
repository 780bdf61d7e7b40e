//! A gateway for tests: a fresh vault (six local-directory providers, 4+2, embedded metadata)
//! served on a free 127.0.0.1 port by [`archipel_s3::serve`], stopped when dropped.

use std::path::{Path, PathBuf};
use std::process::Output;
use std::sync::Arc;
use std::time::Duration;

use archipel_codec::MasterKey;
use archipel_engine::{Engine, EngineOptions, ProviderInfo, ProviderSlot, ProviderState};
use archipel_meta::{EmbeddedOptions, MetaStore, SqlMetaStore};
use archipel_provider::{LocalDir, Provider};
use tokio::sync::oneshot;

pub(crate) const ACCESS_KEY: &str = "AKIAARCHIPELTEST0001";
pub(crate) const SECRET_KEY: &str = "archipel-test-secret-key-0000000000000000";

pub(crate) struct Server {
    pub(crate) endpoint: String,
    pub(crate) port: u16,
    pub(crate) engine: Engine,
    pub(crate) dir: PathBuf,
    stop: Option<oneshot::Sender<()>>,
    _tmp: tempfile::TempDir,
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
    }
}

/// Starts a gateway over a fresh vault.
pub(crate) async fn start() -> Server {
    start_with(|_| {}).await
}

/// Starts a gateway over a fresh vault, its configuration changed by `tweak`.
pub(crate) async fn start_with(tweak: impl FnOnce(&mut archipel_s3::GatewayConfig)) -> Server {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().to_path_buf();
    let meta = Arc::new(
        SqlMetaStore::open_embedded(EmbeddedOptions::new(root.join("meta")))
            .await
            .unwrap(),
    );
    let mut slots = Vec::new();
    for i in 1..=6 {
        let name = format!("p{i}");
        let p: Arc<dyn Provider> = Arc::new(LocalDir::open(&name, root.join(&name)).await.unwrap());
        slots.push(ProviderSlot {
            info: ProviderInfo {
                name,
                operator: "self".into(),
                jurisdiction: "FR".into(),
                weight: 1,
                state: ProviderState::Active,
            },
            provider: p,
        });
    }
    let opts = EngineOptions {
        gc_delay: Duration::ZERO,
        ..EngineOptions::default()
    };
    let engine = Engine::new(
        MasterKey::from_bytes([3; 32]),
        meta as Arc<dyn MetaStore>,
        slots,
        opts,
    )
    .unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let (stop, stopped) = oneshot::channel::<()>();
    let mut config = archipel_s3::GatewayConfig::new(ACCESS_KEY, SECRET_KEY);
    tweak(&mut config);
    let e = engine.clone();
    tokio::spawn(async move {
        archipel_s3::serve(e, config, listener, async move {
            let _ = stopped.await;
        })
        .await
        .unwrap();
    });
    Server {
        endpoint: format!("http://127.0.0.1:{port}"),
        port,
        engine,
        dir: root,
        stop: Some(stop),
        _tmp: tmp,
    }
}

/// Runs a client command with the test credentials in its environment; returns its output.
pub(crate) async fn run(cmd: &Path, args: &[&str], envs: &[(&str, String)], cwd: &Path) -> Output {
    let mut c = tokio::process::Command::new(cmd);
    c.args(args)
        .current_dir(cwd)
        .env("AWS_ACCESS_KEY_ID", ACCESS_KEY)
        .env("AWS_SECRET_ACCESS_KEY", SECRET_KEY)
        .env("AWS_DEFAULT_REGION", "us-east-1")
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env_remove("AWS_PROFILE")
        // The endpoint is plain HTTP on 127.0.0.1: a CA bundle from the environment only
        // gets in the way (rclone refuses to start with one).
        .env_remove("AWS_CA_BUNDLE")
        .env("AWS_CONFIG_FILE", "/dev/null")
        .env("AWS_SHARED_CREDENTIALS_FILE", "/dev/null");
    for (k, v) in envs {
        c.env(k, v);
    }
    tokio::time::timeout(Duration::from_secs(600), c.output())
        .await
        .unwrap_or_else(|_| {
            panic!(
                "{} {args:?} did not finish within 10 minutes",
                cmd.display()
            )
        })
        .unwrap()
}

/// Asserts success and returns stdout.
pub(crate) fn ok(out: &Output, what: &str) -> String {
    assert!(
        out.status.success(),
        "{what} failed ({}):\nstdout: {}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Deterministic test bytes.
pub(crate) fn pattern(seed: u64, n: usize) -> Vec<u8> {
    archipel_testkit::conformance::pattern(seed, n)
}

/// An HTTP answer: status, headers (lowercased names) and body.
pub(crate) struct Answer {
    pub(crate) status: u16,
    pub(crate) headers: Vec<(String, String)>,
    pub(crate) body: String,
}

impl Answer {
    /// The first header of that (lowercase) name.
    pub(crate) fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// Sends one request signed by curl's own SigV4 implementation (`--aws-sigv4`) with the test
/// credentials; `path` is `/bucket/key?query`. The body (small: curl sends no
/// `Expect: 100-continue` below 1 MiB) is sent as is, with an unsigned payload hash.
pub(crate) async fn signed_curl(
    curl: &Path,
    srv: &Server,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: Option<&str>,
) -> Answer {
    let url = format!("{}{path}", srv.endpoint);
    let user = format!("{ACCESS_KEY}:{SECRET_KEY}");
    let mut args: Vec<String> = [
        "-s",
        "-i",
        "-X",
        method,
        "--aws-sigv4",
        "aws:amz:us-east-1:s3",
        "--user",
        user.as_str(),
        "-H",
        "x-amz-content-sha256: UNSIGNED-PAYLOAD",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    for (name, value) in headers {
        args.push("-H".into());
        args.push(format!("{name}: {value}"));
    }
    if let Some(body) = body {
        args.push("-H".into());
        args.push("Content-Type: application/octet-stream".into());
        args.push("--data-binary".into());
        args.push(body.to_string());
    }
    args.push(url);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = run(curl, &args, &[], Path::new(".")).await;
    let text = ok(&out, &format!("curl {method} {path}"));
    let (head, body) = text
        .split_once("\r\n\r\n")
        .unwrap_or_else(|| panic!("no HTTP answer to {method} {path}: {text}"));
    let mut lines = head.lines();
    let status = lines
        .next()
        .and_then(|l| l.split(' ').nth(1))
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no status line in {head}"));
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    Answer {
        status,
        headers,
        body: body.to_string(),
    }
}
