//! A provider on a local directory (a disk, a mount of another machine's disk).
//!
//! Blob `a/b` is the file `ROOT/a/b`. A put writes `ROOT/.tmp/<random>.part` (in batches of up to
//! 1 MiB, one blocking-pool hop each), fsyncs it, then
//! renames it into place (or hard-links it, for an atomic create-only put) and fsyncs the
//! parent directory, so a crash never leaves a partial blob visible: at worst a `.part` file,
//! which the next open removes.

use std::io::ErrorKind as IoKind;
use std::ops::Range;
use std::path::{Path, PathBuf};

use async_trait::async_trait;
use bytes::Bytes;
use futures::StreamExt;
use std::io::Write;
use std::sync::Arc;

use crate::error::{ErrorKind, ProviderError, Result};
use crate::name::BlobName;
use crate::provider::{
    BlobMeta, ByteStream, Capabilities, ListPage, Provider, PutBody, PutMode, check_range,
};

const TMP_DIR: &str = ".tmp";
const READ_CHUNK: usize = 1024 * 1024;

/// A directory on a local file system.
#[derive(Debug)]
pub struct LocalDir {
    name: String,
    root: PathBuf,
}

fn io_kind(e: &std::io::Error) -> ErrorKind {
    match e.kind() {
        IoKind::NotFound => ErrorKind::NotFound,
        IoKind::AlreadyExists => ErrorKind::AlreadyExists,
        IoKind::PermissionDenied | IoKind::ReadOnlyFilesystem => ErrorKind::PermissionDenied,
        IoKind::TimedOut => ErrorKind::Timeout,
        IoKind::Interrupted | IoKind::WouldBlock => ErrorKind::Unavailable,
        _ => ErrorKind::Other,
    }
}

impl LocalDir {
    /// Opens (creating if needed) a directory provider, removes leftovers of interrupted puts,
    /// and checks the directory is writable.
    pub async fn open(name: &str, root: impl AsRef<Path>) -> Result<Self> {
        let root = root.as_ref().to_path_buf();
        let p = LocalDir {
            name: name.to_string(),
            root,
        };
        let tmp = p.root.join(TMP_DIR);
        tokio::fs::create_dir_all(&tmp)
            .await
            .map_err(|e| p.io_err("open", None, &e, &format!("creating {}", tmp.display())))?;
        let mut entries = tokio::fs::read_dir(&tmp)
            .await
            .map_err(|e| p.io_err("open", None, &e, "reading the temp directory"))?;
        while let Ok(Some(entry)) = entries.next_entry().await {
            // Leftovers of puts interrupted by a crash: never visible as blobs, safe to drop.
            let _ = tokio::fs::remove_file(entry.path()).await;
        }
        let probe = tmp.join(format!("probe-{:016x}", fastrand::u64(..)));
        tokio::fs::write(&probe, b"archipel").await.map_err(|e| {
            p.io_err(
                "open",
                None,
                &e,
                &format!("{} is not writable", p.root.display()),
            )
        })?;
        let _ = tokio::fs::remove_file(&probe).await;
        Ok(p)
    }

    /// The directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    fn io_err(
        &self,
        op: &'static str,
        blob: Option<&BlobName>,
        e: &std::io::Error,
        what: &str,
    ) -> ProviderError {
        ProviderError::new(
            io_kind(e),
            &self.name,
            op,
            blob.map(BlobName::as_str),
            format!("{what}: {e}"),
        )
    }

    fn path(&self, blob: &BlobName) -> PathBuf {
        self.root.join(blob.as_str())
    }

    /// Streams `body` into a temp file and makes it the blob, durably. Pieces are gathered
    /// into batches of up to [`WRITE_BATCH`] bytes, one blocking-pool hop per batch; the last
    /// batch, the fsync, the rename (or link) and the directory fsync share one hop, so a small
    /// blob costs a single hop.
    async fn write_blob(&self, blob: &BlobName, body: PutBody, mode: PutMode) -> Result<u64> {
        let tmp = self.root.join(TMP_DIR).join(format!(
            "{:016x}{:016x}.part",
            fastrand::u64(..),
            fastrand::u64(..)
        ));
        let dest = self.path(blob);
        let parent = dest.parent().unwrap_or(&self.root).to_path_buf();
        let mut file: Option<Arc<std::fs::File>> = None;
        let res = async {
            let mut size = 0u64;
            let mut batch: Vec<Bytes> = Vec::new();
            let mut batch_len = 0;
            let mut stream = body.into_stream();
            while let Some(chunk) = stream.next().await {
                let chunk = chunk?;
                size += chunk.len() as u64;
                batch_len += chunk.len();
                batch.push(chunk);
                if batch_len >= WRITE_BATCH {
                    let (f, b, t) = (file.take(), std::mem::take(&mut batch), tmp.clone());
                    batch_len = 0;
                    let f =
                        blocking_steps(move || write_batch(f, &t, &b).map_err(|e| ("writing", e)))
                            .await
                            .map_err(|(what, e)| self.io_err("put", Some(blob), &e, what))?;
                    file = Some(f);
                }
            }
            let (f, t) = (file.take(), tmp.clone());
            blocking_steps(move || {
                let f = write_batch(f, &t, &batch).map_err(|e| ("writing", e))?;
                f.sync_all().map_err(|e| ("fsync", e))?;
                drop(f);
                std::fs::create_dir_all(&parent).map_err(|e| ("creating parent directory", e))?;
                match mode {
                    PutMode::Overwrite => {
                        std::fs::rename(&t, &dest).map_err(|e| ("renaming into place", e))?
                    }
                    PutMode::Create => {
                        // link(2) fails with EEXIST if the name exists: an atomic create-only put.
                        let linked = std::fs::hard_link(&t, &dest);
                        let _ = std::fs::remove_file(&t);
                        linked.map_err(|e| ("creating", e))?
                    }
                }
                std::fs::File::open(&parent)
                    .and_then(|d| d.sync_all())
                    .map_err(|e| ("fsync of the directory", e))
            })
            .await
            .map_err(|(what, e)| self.io_err("put", Some(blob), &e, what))?;
            Ok(size)
        }
        .await;
        if res.is_err() {
            let _ = tokio::fs::remove_file(&tmp).await;
        }
        res
    }
}

/// Like [`blocking`], for a closure of several steps that names the one that failed.
async fn blocking_steps<T: Send + 'static>(
    f: impl FnOnce() -> std::result::Result<T, (&'static str, std::io::Error)> + Send + 'static,
) -> std::result::Result<T, (&'static str, std::io::Error)> {
    tokio::task::spawn_blocking(f)
        .await
        .unwrap_or_else(|e| Err(("blocking task", std::io::Error::other(e))))
}

/// Bytes gathered before one write to the temp file.
const WRITE_BATCH: usize = 1024 * 1024;

/// Writes `batch` to `file`, creating the temp file `tmp` first if needed.
fn write_batch(
    file: Option<Arc<std::fs::File>>,
    tmp: &Path,
    batch: &[Bytes],
) -> std::io::Result<Arc<std::fs::File>> {
    let f = match file {
        Some(f) => f,
        None => Arc::new(std::fs::File::create(tmp)?),
    };
    for piece in batch {
        (&*f).write_all(piece)?;
    }
    Ok(f)
}

/// Runs blocking file I/O on tokio's blocking pool; a task that panicked or was cancelled is
/// an I/O error like any other.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> std::io::Result<T> + Send + 'static,
) -> std::io::Result<T> {
    tokio::task::spawn_blocking(f)
        .await
        .unwrap_or_else(|e| Err(std::io::Error::other(e)))
}

#[async_trait]
impl Provider for LocalDir {
    fn name(&self) -> &str {
        &self.name
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities {
            conditional_create: true,
            max_blob_size: None,
            max_list_page: 1000,
        }
    }

    async fn put(&self, blob: &BlobName, body: PutBody, mode: PutMode) -> Result<BlobMeta> {
        let size = self.write_blob(blob, body, mode).await?;
        Ok(BlobMeta {
            name: blob.clone(),
            size,
            modified: Some(std::time::SystemTime::now()),
        })
    }

    async fn get(&self, blob: &BlobName, range: Option<Range<u64>>) -> Result<ByteStream> {
        let f = tokio::fs::File::open(self.path(blob))
            .await
            .map_err(|e| self.io_err("get", Some(blob), &e, "opening"))?;
        let size = f
            .metadata()
            .await
            .map_err(|e| self.io_err("get", Some(blob), &e, "stat"))?
            .len();
        let range = range.unwrap_or(0..size);
        check_range(&self.name, blob, &range, size)?;
        let provider = self.name.clone();
        let name = blob.as_str().to_string();
        let f = f.into_std().await;
        // Positioned reads (pread) of READ_CHUNK bytes, each in one blocking task.
        let stream = futures::stream::try_unfold((Arc::new(f), range.start), move |(f, pos)| {
            let provider = provider.clone();
            let name = name.clone();
            let end = range.end;
            async move {
                if pos >= end {
                    return Ok(None);
                }
                let want = (end - pos).min(READ_CHUNK as u64) as usize;
                let file = f.clone();
                let read = blocking(move || {
                    let mut buf = vec![0u8; want];
                    std::os::unix::fs::FileExt::read_exact_at(&*file, &mut buf, pos).map(|()| buf)
                })
                .await;
                match read {
                    Ok(buf) => Ok(Some((Bytes::from(buf), (f, pos + want as u64)))),
                    Err(e) if e.kind() == IoKind::UnexpectedEof => Err(ProviderError::new(
                        ErrorKind::InvalidRange,
                        &provider,
                        "get",
                        Some(&name),
                        "blob shrank while being read",
                    )),
                    Err(e) => Err(ProviderError::new(
                        io_kind(&e),
                        &provider,
                        "get",
                        Some(&name),
                        format!("reading: {e}"),
                    )),
                }
            }
        });
        Ok(stream.boxed())
    }

    async fn head(&self, blob: &BlobName) -> Result<BlobMeta> {
        let m = tokio::fs::metadata(self.path(blob))
            .await
            .map_err(|e| self.io_err("head", Some(blob), &e, "stat"))?;
        if !m.is_file() {
            return Err(ProviderError::new(
                ErrorKind::NotFound,
                &self.name,
                "head",
                Some(blob.as_str()),
                "not a blob",
            ));
        }
        Ok(BlobMeta {
            name: blob.clone(),
            size: m.len(),
            modified: m.modified().ok(),
        })
    }

    async fn delete(&self, blob: &BlobName) -> Result<()> {
        match tokio::fs::remove_file(self.path(blob)).await {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == IoKind::NotFound => Ok(()),
            Err(e) => Err(self.io_err("delete", Some(blob), &e, "removing")),
        }
    }

    async fn list(
        &self,
        prefix: &str,
        start_after: Option<&BlobName>,
        limit: usize,
    ) -> Result<ListPage> {
        let root = self.root.clone();
        let prefix = prefix.to_string();
        let after = start_after.map(|b| b.as_str().to_string());
        let limit = limit.clamp(1, 1000);
        let res =
            tokio::task::spawn_blocking(move || walk(&root, &prefix, after.as_deref(), limit))
                .await
                .map_err(|e| {
                    ProviderError::new(ErrorKind::Other, &self.name, "list", None, e.to_string())
                })?;
        res.map_err(|e| self.io_err("list", None, &e, "walking the directory"))
    }
}

/// Lists files under `root` whose relative names start with `prefix`, sorted, after `after`.
fn walk(root: &Path, prefix: &str, after: Option<&str>, limit: usize) -> std::io::Result<ListPage> {
    let mut found: Vec<BlobMeta> = Vec::new();
    let mut stack = vec![(root.to_path_buf(), String::new())];
    while let Some((dir, rel)) = stack.pop() {
        let entries = match std::fs::read_dir(&dir) {
            Ok(e) => e,
            Err(e) if e.kind() == IoKind::NotFound => continue,
            Err(e) => return Err(e),
        };
        for entry in entries {
            let entry = entry?;
            let file_name = entry.file_name();
            let Some(fname) = file_name.to_str() else {
                continue;
            };
            if fname.starts_with('.') {
                continue; // the temp directory and anything hidden
            }
            let name = if rel.is_empty() {
                fname.to_string()
            } else {
                format!("{rel}/{fname}")
            };
            let ft = entry.file_type()?;
            if ft.is_dir() {
                let as_dir = format!("{name}/");
                if as_dir.starts_with(prefix) || prefix.starts_with(&as_dir) {
                    stack.push((entry.path(), name));
                }
            } else if ft.is_file()
                && name.starts_with(prefix)
                && after.is_none_or(|a| name.as_str() > a)
            {
                let Ok(blob) = BlobName::new(name) else {
                    continue;
                };
                let m = entry.metadata()?;
                found.push(BlobMeta {
                    name: blob,
                    size: m.len(),
                    modified: m.modified().ok(),
                });
            }
        }
    }
    found.sort_by(|a, b| a.name.cmp(&b.name));
    let more = found.len() > limit;
    found.truncate(limit);
    Ok(ListPage { blobs: found, more })
}
