//! A real WebDAV server for tests: `rclone serve webdav` (Debian's rclone) over a temporary
//! directory on a free 127.0.0.1 port, one server per test, stopped when dropped.

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use archipel_provider::WebDavConfig;

/// A running `rclone serve webdav`.
#[derive(Debug)]
pub struct RcloneWebDav {
    child: Child,
    _dir: tempfile::TempDir,
    /// Configuration reaching it.
    pub config: WebDavConfig,
}

impl Drop for RcloneWebDav {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts a server; `None` when rclone is not installed (and not under CI).
pub fn start() -> Option<RcloneWebDav> {
    let bin = crate::require_tool(
        "rclone",
        "the WebDAV provider tests against rclone serve webdav",
    )?;
    let dir = tempfile::tempdir().expect("temp dir");
    let port = crate::free_port();
    let mut child = Command::new(bin)
        .args(["serve", "webdav", "--addr", &format!("127.0.0.1:{port}")])
        .arg(dir.path())
        .args(["--config", "/dev/null", "-q"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn rclone serve webdav");
    if !crate::wait_listening(port, Duration::from_secs(30)) {
        let _ = child.kill();
        let _ = child.wait();
        panic!("rclone serve webdav did not listen on 127.0.0.1:{port} within 30 s");
    }
    Some(RcloneWebDav {
        child,
        _dir: dir,
        config: WebDavConfig {
            endpoint: format!("http://127.0.0.1:{port}"),
            username: String::new(),
            password: String::new(),
            root: "archipel".into(),
        },
    })
}
