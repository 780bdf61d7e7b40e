//! Leftovers of interrupted puts are swept by age: older than the limit removed, younger kept
//! (a put may still be writing them), blobs never touched — on a directory and over WebDAV
//! (`rclone serve webdav`).

use std::time::{Duration, SystemTime};

use archipel_provider::{BlobName, LocalDir, Provider, ProviderExt, Remote};

/// Creates `path` with its modification time `age` in the past.
fn leftover(path: &std::path::Path, age: Duration) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, b"half a shard").unwrap();
    let f = std::fs::File::options().write(true).open(path).unwrap();
    f.set_modified(SystemTime::now() - age).unwrap();
}

async fn check(p: &dyn Provider, tmp: &std::path::Path) {
    // (Made before the provider's first use: rclone caches directory listings.)
    leftover(&tmp.join("old-put"), Duration::from_secs(7200));
    leftover(&tmp.join("recent-put"), Duration::from_secs(60));
    let blob = BlobName::new("v1/ab/kept").unwrap();
    p.put_bytes(&blob, b"a blob".to_vec()).await.unwrap();
    assert_eq!(p.sweep_temp(Duration::from_secs(3600)).await.unwrap(), 1);
    assert!(!tmp.join("old-put").exists());
    assert!(
        tmp.join("recent-put").exists(),
        "a put may still be writing it"
    );
    assert_eq!(p.get_bytes(&blob, None).await.unwrap(), b"a blob");
    assert_eq!(p.sweep_temp(Duration::from_secs(3600)).await.unwrap(), 0);
}

#[tokio::test]
async fn a_directory_sweeps_old_temp_files_only() {
    let dir = tempfile::tempdir().unwrap();
    let p = LocalDir::open("d", dir.path()).await.unwrap();
    check(&p, &dir.path().join(".tmp")).await;
    drop(p);
    // At open, every leftover goes (the directory is this process's alone).
    leftover(
        &dir.path().join(".tmp").join("crashed-put"),
        Duration::from_secs(1),
    );
    let _p = LocalDir::open("d", dir.path()).await.unwrap();
    assert!(!dir.path().join(".tmp").join("crashed-put").exists());
}

#[tokio::test]
async fn webdav_sweeps_old_temp_files_only() {
    let Some(dav) = archipel_testkit::webdav::start() else {
        return;
    };
    let p = Remote::webdav("w", &dav.config).unwrap();
    check(&p, &dav.dir().join("archipel").join(".tmp")).await;
}
