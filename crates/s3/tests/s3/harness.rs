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
    let config = archipel_s3::GatewayConfig::new(ACCESS_KEY, SECRET_KEY);
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
