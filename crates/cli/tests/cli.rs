//! End-to-end tests of the `archipel` binary, plus the tidy checks that keep the workspace
//! honest (every module documented).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::process::Command;

fn archipel(args: &[&str]) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_archipel"))
        .args(args)
        .output()
        .expect("run archipel");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn demo_survives_lost_providers_and_detects_corruption() {
    let (ok, out, err) = archipel(&["demo", "--size", "3MiB", "--data", "4", "--parity", "2"]);
    assert!(ok, "demo failed: {err}");
    assert!(out.contains("4 data + 2 parity shards"), "{out}");
    assert!(
        out.contains("decode without shards [0, 1] (2 providers gone): byte-identical"),
        "{out}"
    );
    assert!(
        out.contains("flip one bit in shard 2: detected, nothing returned"),
        "{out}"
    );
    assert!(out.trim_end().ends_with("ok"), "{out}");
}

#[test]
fn demo_handles_an_empty_object() {
    let (ok, out, err) = archipel(&["demo", "--size", "0"]);
    assert!(ok, "demo failed: {err}");
    assert!(out.contains("byte-identical"), "{out}");
}

#[test]
fn bad_arguments_get_a_clear_error() {
    let (ok, _, err) = archipel(&["demo", "--size", "12 parsecs"]);
    assert!(!ok);
    assert!(err.contains("unknown unit"), "{err}");
    let (ok, _, err) = archipel(&["demo", "--data", "0"]);
    assert!(!ok);
    assert!(err.contains("k (data shards) must be at least 1"), "{err}");
    let (ok, _, err) = archipel(&["demo", "--data", "200", "--parity", "100"]);
    assert!(!ok);
    assert!(err.contains("exceeds 255"), "{err}");
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            if !path.ends_with("target") {
                rust_files(&path, out);
            }
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

#[test]
fn tidy_every_module_starts_with_module_docs() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let mut files = Vec::new();
    for dir in ["crates", "fuzz/fuzz_targets"] {
        rust_files(&root.join(dir), &mut files);
    }
    assert!(files.len() > 10, "found only {} files", files.len());
    let undocumented: Vec<_> = files
        .iter()
        .filter(|f| {
            let text = std::fs::read_to_string(f).unwrap();
            !text.trim_start().starts_with("//!")
        })
        .collect();
    assert!(
        undocumented.is_empty(),
        "modules without //! docs: {undocumented:?}"
    );
}

#[test]
fn tidy_no_mod_rs_files() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let mut files = Vec::new();
    rust_files(&root.join("crates"), &mut files);
    let mod_rs: Vec<_> = files.iter().filter(|f| f.ends_with("mod.rs")).collect();
    assert!(
        mod_rs.is_empty(),
        "use foo.rs + foo/ instead of foo/mod.rs: {mod_rs:?}"
    );
}
