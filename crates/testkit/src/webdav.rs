//! A real WebDAV server for tests: `rclone serve webdav` (Debian's rclone) over a temporary
//! directory on a free 127.0.0.1 port, one server per test, stopped when dropped: open
//! ([`start`]) or requiring a user and password ([`start_with_auth`]).

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use archipel_provider::WebDavConfig;

/// A running `rclone serve webdav`.
#[derive(Debug)]
pub struct RcloneWebDav {
    child: Child,
    /// For [`start_with_auth`]: a shell that ends the server when the test process ends.
    watchdog: Option<Child>,
    _dir: tempfile::TempDir,
    /// Configuration reaching it.
    pub config: WebDavConfig,
}

impl RcloneWebDav {
    /// The server's process id (to pause it with SIGSTOP in a test, say).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The directory it serves (`<dir>/archipel/…` holds what a provider rooted at
    /// `archipel` stores).
    pub fn dir(&self) -> &std::path::Path {
        self._dir.path()
    }

    /// Kills it with SIGKILL (a crash: nothing flushed, connections reset) and waits for it.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Starts it again on the same port over the same directory (after [`kill`](Self::kill)).
    /// Only for servers made by [`start`].
    pub fn restart(&mut self) {
        self.kill();
        let port: u16 = self
            .config
            .endpoint
            .rsplit(':')
            .next()
            .and_then(|p| p.parse().ok())
            .expect("the endpoint ends in a port");
        self.child = spawn(port, self._dir.path());
        assert!(
            crate::wait_listening(port, Duration::from_secs(30)),
            "rclone serve webdav did not listen again on 127.0.0.1:{port} within 30 s"
        );
    }
}

fn spawn(port: u16, dir: &std::path::Path) -> Child {
    Command::new("rclone")
        .args(["serve", "webdav", "--addr", &format!("127.0.0.1:{port}")])
        .arg(dir)
        .args(["--config", "/dev/null", "-q"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn rclone serve webdav")
}

impl Drop for RcloneWebDav {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if let Some(w) = &mut self.watchdog {
            let _ = w.kill();
            let _ = w.wait();
        }
    }
}

/// Starts a server; `None` when rclone is not installed (and not under CI).
pub fn start() -> Option<RcloneWebDav> {
    crate::require_tool(
        "rclone",
        "the WebDAV provider tests against rclone serve webdav",
    )?;
    let dir = tempfile::tempdir().expect("temp dir");
    let port = crate::free_port();
    let mut child = spawn(port, dir.path());
    if !crate::wait_listening(port, Duration::from_secs(30)) {
        let _ = child.kill();
        let _ = child.wait();
        panic!("rclone serve webdav did not listen on 127.0.0.1:{port} within 30 s");
    }
    Some(RcloneWebDav {
        child,
        watchdog: None,
        _dir: dir,
        config: WebDavConfig {
            endpoint: format!("http://127.0.0.1:{port}"),
            username: String::new(),
            password: String::new(),
            root: "archipel".into(),
        },
    })
}

/// Starts a server that accepts only `user` / `pass` (HTTP basic authentication: anything else
/// gets 401), with a watchdog that ends it when the test process ends, even if the process is
/// killed before `Drop` runs; `None` when rclone is not installed (and not under CI).
pub fn start_with_auth(user: &str, pass: &str) -> Option<RcloneWebDav> {
    let bin = crate::require_tool(
        "rclone",
        "the authenticated WebDAV tests against rclone serve webdav",
    )?;
    let dir = tempfile::tempdir().expect("temp dir");
    let port = crate::free_port();
    let mut child = Command::new(bin)
        .args(["serve", "webdav", "--addr", &format!("127.0.0.1:{port}")])
        .arg(dir.path())
        .args(["--user", user, "--pass", pass])
        .args(["--config", "/dev/null", "-q"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn rclone serve webdav");
    // The watchdog shell ends the server when the test process ends, and itself when the
    // server ends.
    let script = format!(
        "while kill -0 {parent} 2>/dev/null && kill -0 {server} 2>/dev/null; do sleep 0.5; done; \
         kill {server} 2>/dev/null",
        parent = std::process::id(),
        server = child.id()
    );
    let watchdog = match Command::new("sh")
        .arg("-c")
        .arg(script)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
    {
        Ok(w) => w,
        Err(e) => {
            let _ = child.kill();
            let _ = child.wait();
            panic!("spawn the watchdog shell: {e}");
        }
    };
    // From here a failure drops `server`, which stops rclone and the watchdog.
    let server = RcloneWebDav {
        child,
        watchdog: Some(watchdog),
        _dir: dir,
        config: WebDavConfig {
            endpoint: format!("http://127.0.0.1:{port}"),
            username: user.to_string(),
            password: pass.to_string(),
            root: "archipel".into(),
        },
    };
    assert!(
        crate::wait_listening(port, Duration::from_secs(30)),
        "rclone serve webdav did not listen on 127.0.0.1:{port} within 30 s"
    );
    Some(server)
}
