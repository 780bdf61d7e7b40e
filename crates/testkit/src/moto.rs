//! A real, independent S3 implementation for tests: `moto_server` (PyPI `moto[server]`),
//! started once per test process on a free 127.0.0.1 port, one fresh bucket per test.

use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::Duration;

use archipel_provider::S3Config;

/// A running moto server.
#[derive(Debug)]
pub struct Moto {
    /// `http://127.0.0.1:PORT`.
    pub endpoint: String,
    /// The watchdog shell; it ends moto when the test process ends.
    _watchdog: std::process::Child,
}

static MOTO: OnceLock<Option<Moto>> = OnceLock::new();

// The watchdog shell is meant to outlive this function (it lives as long as the test process).
#[allow(clippy::zombie_processes)]
fn start() -> Option<Moto> {
    let bin = crate::require_tool("moto_server", "the S3 provider tests against moto")?;
    let port = crate::free_port();
    // A watchdog shell: moto dies with the test process (no orphan servers).
    let script = format!(
        "{bin} -H 127.0.0.1 -p {port} >/dev/null 2>&1 & m=$!; while kill -0 {parent} 2>/dev/null; do sleep 0.5; done; kill $m",
        bin = bin.display(),
        parent = std::process::id()
    );
    let watchdog = Command::new("sh")
        .arg("-c")
        .arg(script)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn moto_server");
    assert!(
        crate::wait_listening(port, Duration::from_secs(60)),
        "moto_server did not listen on 127.0.0.1:{port} within 60 s"
    );
    Some(Moto {
        endpoint: format!("http://127.0.0.1:{port}"),
        _watchdog: watchdog,
    })
}

/// The shared moto server, started on first use; `None` when moto is not installed (and not
/// under CI).
pub fn moto() -> Option<&'static Moto> {
    MOTO.get_or_init(start).as_ref()
}

impl Moto {
    /// Creates a fresh bucket and returns a provider configuration for it.
    pub async fn bucket(&self, name: &str) -> S3Config {
        let url = format!("{}/{name}", self.endpoint);
        let resp = reqwest::Client::new()
            .put(&url)
            .send()
            .await
            .unwrap_or_else(|e| panic!("create bucket {url}: {e}"));
        assert!(
            resp.status().is_success(),
            "create bucket {url}: {}",
            resp.status()
        );
        S3Config {
            endpoint: self.endpoint.clone(),
            region: "us-east-1".into(),
            bucket: name.into(),
            access_key: "test".into(),
            secret_key: "test".into(),
            path_style: true,
            prefix: String::new(),
        }
    }
}
