//! Archipel's test kit (not published): the provider conformance suite every implementation
//! and every layer stack runs, and harnesses that start real servers on 127.0.0.1.
//!
//! Tests that need an external tool call [`require_tool`]: when the tool is missing they print
//! a visible `SKIP` line and pass locally, but fail when `CI=true` — CI never skips silently.

// A test-only crate: its panics are test assertions.
#![allow(clippy::unwrap_used, clippy::expect_used)]

pub mod conformance;
pub mod moto;
pub mod webdav;

/// Whether we run under CI (`CI=true`), where missing tools are failures.
pub fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true" || v == "1")
}

/// Looks `tool` up on `PATH`. Missing: panics under CI, prints `SKIP` and returns `None`
/// otherwise.
pub fn require_tool(tool: &str, needed_for: &str) -> Option<std::path::PathBuf> {
    let found = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|dir| dir.join(tool))
            .find(|p| p.is_file())
    });
    if found.is_none() {
        assert!(
            !in_ci(),
            "{tool} is required for {needed_for} and CI=true: .ci/run must install it"
        );
        eprintln!(
            "SKIP: {tool} not found on PATH; skipping {needed_for} (install it, or run bash .ci/run)"
        );
    }
    found
}

/// A free TCP port on 127.0.0.1 (bound, read, released).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port on 127.0.0.1")
        .port()
}

/// Waits until something accepts connections on 127.0.0.1:`port`; false after `timeout`.
pub fn wait_listening(port: u16, timeout: std::time::Duration) -> bool {
    let deadline = std::time::Instant::now() + timeout;
    while std::time::Instant::now() < deadline {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return true;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    false
}
