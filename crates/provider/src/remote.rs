//! Providers on remote services through Apache OpenDAL: any S3-compatible service (SigV4,
//! multipart uploads for large blobs, path-style or virtual-host addressing) and WebDAV.
//! One [`Remote`] type implements the `Provider` contract over an OpenDAL operator; each
//! service only contributes its configuration.

use std::ops::Range;

use async_trait::async_trait;
use futures::{StreamExt, TryStreamExt};
use opendal::{ErrorKind as OdKind, Operator};

use crate::error::{ErrorKind, ProviderError, Result};
use crate::name::BlobName;
use crate::provider::{BlobMeta, ByteStream, Capabilities, ListPage, Provider, PutBody, PutMode};

/// Parts of a multipart upload (S3 requires ≥ 5 MiB except the last).
const PART_SIZE: usize = 8 * 1024 * 1024;

/// Where and how to reach an S3-compatible bucket.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct S3Config {
    /// Endpoint URL, e.g. `https://s3.eu-central-1.example.com` or `http://127.0.0.1:9000`.
    pub endpoint: String,
    /// Region (services that ignore it accept any value, e.g. `us-east-1`).
    pub region: String,
    /// Bucket name.
    pub bucket: String,
    /// Access key id.
    pub access_key: String,
    /// Secret access key.
    pub secret_key: String,
    /// Path-style addressing (`endpoint/bucket/key`) instead of virtual-host (`bucket.endpoint/key`).
    pub path_style: bool,
    /// Optional key prefix inside the bucket, so several vaults can share a bucket.
    pub prefix: String,
}

/// Where and how to reach a WebDAV folder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebDavConfig {
    /// Endpoint URL, e.g. `https://dav.example.org/remote.php/dav/files/alice`.
    pub endpoint: String,
    /// User name (empty for none).
    pub username: String,
    /// Password (empty for none).
    pub password: String,
    /// Folder under the endpoint that holds the blobs.
    pub root: String,
}

/// A provider on a remote service (S3-compatible or WebDAV).
#[derive(Debug)]
pub struct Remote {
    name: String,
    kind: &'static str,
    op: Operator,
    dav: Option<DavPut>,
}

/// Streaming WebDAV puts. OpenDAL's WebDAV writer sends one request body from memory, so large
/// blobs would be buffered whole; instead a put streams the body (chunked transfer encoding)
/// to a temporary name and `MOVE`s it into place, which is atomic on the server, and with
/// `Overwrite: F` makes create-only puts atomic too.
#[derive(Debug)]
struct DavPut {
    client: reqwest::Client,
    /// `endpoint/root`, without a trailing slash.
    base: String,
    auth: Option<(String, String)>,
    /// Collections known to exist (saves a MKCOL per put).
    dirs: std::sync::Mutex<std::collections::HashSet<String>>,
}

impl DavPut {
    fn req(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        let r = self.client.request(method, format!("{}/{path}", self.base));
        match &self.auth {
            Some((u, p)) => r.basic_auth(u, Some(p)),
            None => r,
        }
    }
}

fn http_kind(status: reqwest::StatusCode) -> ErrorKind {
    match status.as_u16() {
        401 | 403 => ErrorKind::PermissionDenied,
        404 | 409 => ErrorKind::NotFound,
        412 => ErrorKind::PreconditionFailed,
        408 | 423 | 429 | 500..=599 => ErrorKind::Unavailable,
        _ => ErrorKind::Other,
    }
}

/// Kept for readability at call sites: an S3-compatible bucket is a [`Remote`].
pub type S3 = Remote;

fn od_kind(e: &opendal::Error) -> ErrorKind {
    match e.kind() {
        OdKind::NotFound => ErrorKind::NotFound,
        OdKind::AlreadyExists => ErrorKind::AlreadyExists,
        OdKind::ConditionNotMatch => ErrorKind::PreconditionFailed,
        OdKind::PermissionDenied => ErrorKind::PermissionDenied,
        OdKind::RangeNotSatisfied => ErrorKind::InvalidRange,
        OdKind::ConfigInvalid => ErrorKind::Config,
        OdKind::RateLimited => ErrorKind::Unavailable,
        // Services without a dedicated mapping (WebDAV) report 416 as unexpected.
        OdKind::Unexpected if e.to_string().contains("status: 416") => ErrorKind::InvalidRange,
        _ if e.is_temporary() => ErrorKind::Unavailable,
        _ => ErrorKind::Other,
    }
}

/// Classifies an error in the middle of a read stream.
fn stream_err_kind(e: &std::io::Error, ranged: bool) -> ErrorKind {
    match e
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<opendal::Error>())
    {
        // OpenDAL checks the bytes received against the range asked for; S3 returns a range
        // that ends past the blob short rather than failing, so a short ranged read means the
        // range was invalid.
        Some(od)
            if ranged
                && od.kind() == OdKind::Unexpected
                && od.to_string().contains("unexpected data size") =>
        {
            ErrorKind::InvalidRange
        }
        Some(od) => od_kind(od),
        None if e.kind() == std::io::ErrorKind::NotFound => ErrorKind::NotFound,
        None => ErrorKind::Unavailable,
    }
}

impl Remote {
    /// An S3-compatible bucket (no network traffic yet; see [`Remote::check`]).
    pub fn s3(name: &str, cfg: &S3Config) -> Result<Self> {
        // Installs OpenDAL's reqwest transport process-wide (idempotent).
        opendal::install_default();
        let mut b = opendal::services::S3::default()
            .endpoint(&cfg.endpoint)
            .region(&cfg.region)
            .bucket(&cfg.bucket)
            .access_key_id(&cfg.access_key)
            .secret_access_key(&cfg.secret_key)
            .root(&format!("/{}", cfg.prefix.trim_matches('/')))
            .disable_config_load()
            .disable_ec2_metadata();
        if !cfg.path_style {
            b = b.enable_virtual_host_style();
        }
        let op = Operator::new(b).map_err(|e| {
            ProviderError::new(ErrorKind::Config, name, "open", None, e.to_string())
        })?;
        Ok(Remote {
            name: name.to_string(),
            kind: "s3",
            op,
            dav: None,
        })
    }

    /// A WebDAV folder (no network traffic yet; see [`Remote::check`]).
    pub fn webdav(name: &str, cfg: &WebDavConfig) -> Result<Self> {
        opendal::install_default();
        let mut b = opendal::services::Webdav::default()
            .endpoint(&cfg.endpoint)
            .root(&format!("/{}", cfg.root.trim_matches('/')));
        if !cfg.username.is_empty() {
            b = b.username(&cfg.username);
        }
        if !cfg.password.is_empty() {
            b = b.password(&cfg.password);
        }
        let op = Operator::new(b).map_err(|e| {
            ProviderError::new(ErrorKind::Config, name, "open", None, e.to_string())
        })?;
        let auth = (!cfg.username.is_empty()).then(|| (cfg.username.clone(), cfg.password.clone()));
        let dav = DavPut {
            client: reqwest::Client::new(),
            base: format!(
                "{}/{}",
                cfg.endpoint.trim_end_matches('/'),
                cfg.root.trim_matches('/')
            )
            .trim_end_matches('/')
            .to_string(),
            auth,
            dirs: std::sync::Mutex::new(std::collections::HashSet::new()),
        };
        Ok(Remote {
            name: name.to_string(),
            kind: "webdav",
            op,
            dav: Some(dav),
        })
    }

    async fn dav_put(
        &self,
        dav: &DavPut,
        blob: &BlobName,
        body: PutBody,
        mode: PutMode,
    ) -> Result<BlobMeta> {
        let fail = |kind: ErrorKind, msg: String| {
            ProviderError::new(kind, &self.name, "put", Some(blob.as_str()), msg)
        };
        let parent = blob.as_str().rsplit_once('/').map(|(p, _)| p);
        for dir in [Some(".tmp"), parent].into_iter().flatten() {
            let known = |d: &str| dav.dirs.lock().map(|s| s.contains(d)).unwrap_or(false);
            if known(dir) {
                continue;
            }
            let mut attempt = 0;
            loop {
                match self.op.create_dir(&format!("{dir}/")).await {
                    Ok(()) => break,
                    // Concurrent MKCOLs of one collection answer 423 Locked: transient.
                    Err(e) if e.is_temporary() && attempt < 20 => {
                        attempt += 1;
                        tokio::time::sleep(std::time::Duration::from_millis(
                            5 + fastrand::u64(..20),
                        ))
                        .await;
                    }
                    Err(e) => return Err(self.err("put", Some(blob), &e)),
                }
            }
            if let Ok(mut s) = dav.dirs.lock() {
                s.insert(dir.to_string());
            }
        }
        let tmp = format!(".tmp/{:016x}{:016x}", fastrand::u64(..), fastrand::u64(..));
        let size = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
        let counted = {
            let size = size.clone();
            body.into_stream().map(move |item| {
                if let Ok(b) = &item {
                    size.fetch_add(b.len() as u64, std::sync::atomic::Ordering::Relaxed);
                }
                item
            })
        };
        let put = dav
            .req(reqwest::Method::PUT, &tmp)
            .body(reqwest::Body::wrap_stream(counted))
            .send()
            .await;
        let cleanup = || async {
            let _ = dav.req(reqwest::Method::DELETE, &tmp).send().await;
        };
        match put {
            Ok(r) if r.status().is_success() => {}
            Ok(r) => {
                cleanup().await;
                return Err(fail(
                    http_kind(r.status()),
                    format!("PUT returned {}", r.status()),
                ));
            }
            Err(e) => {
                cleanup().await;
                return Err(fail(ErrorKind::Unavailable, format!("PUT failed: {e}")));
            }
        }
        let method = reqwest::Method::from_bytes(b"MOVE")
            .map_err(|e| fail(ErrorKind::Other, e.to_string()))?;
        let overwrite = if mode == PutMode::Create { "F" } else { "T" };
        let mut attempt = 0;
        let moved = loop {
            let r = dav
                .req(method.clone(), &tmp)
                .header("Destination", format!("{}/{}", dav.base, blob.as_str()))
                .header("Overwrite", overwrite)
                .send()
                .await;
            // 423 Locked: another MOVE onto the same name is in progress; wait for it to end so
            // a create-only put learns whether it lost.
            match r {
                Ok(resp) if resp.status().as_u16() == 423 && attempt < 50 => {
                    attempt += 1;
                    tokio::time::sleep(std::time::Duration::from_millis(5 + fastrand::u64(..20)))
                        .await;
                }
                other => break other,
            }
        };
        match moved {
            Ok(r) if r.status().is_success() => Ok(BlobMeta {
                name: blob.clone(),
                size: size.load(std::sync::atomic::Ordering::Relaxed),
                modified: Some(std::time::SystemTime::now()),
            }),
            Ok(r) => {
                cleanup().await;
                let kind = match http_kind(r.status()) {
                    ErrorKind::PreconditionFailed if mode == PutMode::Create => {
                        ErrorKind::AlreadyExists
                    }
                    k => k,
                };
                Err(fail(
                    kind,
                    format!("MOVE into place returned {}", r.status()),
                ))
            }
            Err(e) => {
                cleanup().await;
                Err(fail(ErrorKind::Unavailable, format!("MOVE failed: {e}")))
            }
        }
    }

    /// The service kind: `s3` or `webdav`.
    pub fn kind(&self) -> &'static str {
        self.kind
    }

    /// Checks reachability and credentials with one listing request.
    pub async fn check(&self) -> Result<()> {
        self.list("", None, 1).await.map(|_| ())
    }

    fn err(&self, op: &'static str, blob: Option<&BlobName>, e: &opendal::Error) -> ProviderError {
        ProviderError::new(
            od_kind(e),
            &self.name,
            op,
            blob.map(BlobName::as_str),
            e.to_string(),
        )
    }
}

#[async_trait]
impl Provider for Remote {
    fn name(&self) -> &str {
        &self.name
    }

    fn capabilities(&self) -> Capabilities {
        let c = self.op.info().capability();
        Capabilities {
            conditional_create: c.write_with_if_not_exists || self.dav.is_some(),
            max_blob_size: (self.kind == "s3").then_some(5 * 1024 * 1024 * 1024 * 1024),
            max_list_page: 1000,
        }
    }

    async fn put(&self, blob: &BlobName, body: PutBody, mode: PutMode) -> Result<BlobMeta> {
        if let Some(dav) = &self.dav {
            return self.dav_put(dav, blob, body, mode).await;
        }
        let conditional = mode == PutMode::Create;
        if conditional && !self.capabilities().conditional_create {
            // Best effort only; the capability tells callers not to rely on it.
            match self.head(blob).await {
                Ok(_) => {
                    return Err(ProviderError::new(
                        ErrorKind::AlreadyExists,
                        &self.name,
                        "put",
                        Some(blob.as_str()),
                        "blob exists",
                    ));
                }
                Err(e) if e.kind == ErrorKind::NotFound => {}
                Err(e) => return Err(e),
            }
        }
        let mut w = self
            .op
            .writer_with(blob.as_str())
            .chunk(PART_SIZE)
            .if_not_exists(conditional && self.capabilities().conditional_create)
            .await
            .map_err(|e| self.err("put", Some(blob), &e))?;
        let mut stream = body.into_stream();
        let mut size = 0u64;
        while let Some(chunk) = stream.next().await {
            let chunk = match chunk {
                Ok(c) => c,
                Err(e) => {
                    let _ = w.abort().await;
                    return Err(e);
                }
            };
            size += chunk.len() as u64;
            if let Err(e) = w.write(chunk).await {
                let _ = w.abort().await;
                return Err(self.err("put", Some(blob), &e));
            }
        }
        w.close().await.map_err(|e| {
            let mut err = self.err("put", Some(blob), &e);
            if conditional && err.kind == ErrorKind::PreconditionFailed {
                // S3 answers a create-only put (If-None-Match: *) on an existing key with 412.
                err.kind = ErrorKind::AlreadyExists;
            }
            err
        })?;
        Ok(BlobMeta {
            name: blob.clone(),
            size,
            modified: Some(std::time::SystemTime::now()),
        })
    }

    async fn get(&self, blob: &BlobName, range: Option<Range<u64>>) -> Result<ByteStream> {
        let reader = self
            .op
            .reader_with(blob.as_str())
            .chunk(PART_SIZE)
            .await
            .map_err(|e| self.err("get", Some(blob), &e))?;
        if let Some(r) = &range {
            if r.start > r.end {
                return Err(ProviderError::new(
                    ErrorKind::InvalidRange,
                    &self.name,
                    "get",
                    Some(blob.as_str()),
                    format!("range {}..{} is reversed", r.start, r.end),
                ));
            }
            if r.is_empty() {
                // S3 cannot express an empty range; check the blob exists and the range fits.
                let meta = self.head(blob).await?;
                crate::provider::check_range(&self.name, blob, r, meta.size)?;
                return Ok(futures::stream::empty().boxed());
            }
        }
        let ranged = range.is_some();
        // OpenDAL checks the bytes received against the range asked for, so a range that ends
        // past the blob (which S3 answers short rather than failing) surfaces as an error in the
        // stream; `stream_err_kind` names it InvalidRange.
        let stream = match range {
            Some(r) => reader.into_bytes_stream(r).await,
            None => reader.into_bytes_stream(..).await,
        }
        .map_err(|e| self.err("get", Some(blob), &e))?;
        let provider = self.name.clone();
        let name = blob.as_str().to_string();
        Ok(stream
            .map_err(move |e| {
                ProviderError::new(
                    stream_err_kind(&e, ranged),
                    &provider,
                    "get",
                    Some(&name),
                    e.to_string(),
                )
            })
            .boxed())
    }

    async fn head(&self, blob: &BlobName) -> Result<BlobMeta> {
        let m = self
            .op
            .stat(blob.as_str())
            .await
            .map_err(|e| self.err("head", Some(blob), &e))?;
        Ok(BlobMeta {
            name: blob.clone(),
            size: m.content_length(),
            modified: m.last_modified().map(std::time::SystemTime::from),
        })
    }

    async fn delete(&self, blob: &BlobName) -> Result<()> {
        match self.op.delete(blob.as_str()).await {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == OdKind::NotFound => Ok(()),
            Err(e) => Err(self.err("delete", Some(blob), &e)),
        }
    }

    async fn list(
        &self,
        prefix: &str,
        start_after: Option<&BlobName>,
        limit: usize,
    ) -> Result<ListPage> {
        let limit = limit.clamp(1, 1000);
        let mut lw = self.op.lister_with(prefix).recursive(true);
        if let Some(a) = start_after {
            lw = lw.start_after(a.as_str());
        }
        let mut lister = lw.await.map_err(|e| self.err("list", None, &e))?;
        let mut blobs = Vec::new();
        let mut more = false;
        while let Some(entry) = lister.next().await {
            let entry = entry.map_err(|e| self.err("list", None, &e))?;
            let path = entry.path().trim_start_matches('/');
            if path.ends_with('/') || !path.starts_with(prefix) {
                continue;
            }
            if start_after.is_some_and(|a| path <= a.as_str()) {
                continue;
            }
            let Ok(name) = BlobName::new(path) else {
                continue;
            };
            if blobs.len() == limit {
                more = true;
                break;
            }
            let m = entry.metadata();
            blobs.push(BlobMeta {
                name,
                size: m.content_length(),
                modified: m.last_modified().map(std::time::SystemTime::from),
            });
        }
        Ok(ListPage { blobs, more })
    }

    /// WebDAV puts stream to `.tmp/<random>` first: those of puts that never got to their
    /// `MOVE` (a dropped request, a crash) are removed once older than `older_than`. S3 keeps
    /// no temporary objects.
    async fn sweep_temp(&self, older_than: std::time::Duration) -> Result<u64> {
        if self.dav.is_none() {
            return Ok(0);
        }
        let mut lister = match self.op.lister(".tmp/").await {
            Ok(l) => l,
            Err(e) if e.kind() == opendal::ErrorKind::NotFound => return Ok(0),
            Err(e) => return Err(self.err("sweep_temp", None, &e)),
        };
        let now = std::time::SystemTime::now();
        let mut removed = 0;
        while let Some(entry) = lister.next().await {
            let entry = entry.map_err(|e| self.err("sweep_temp", None, &e))?;
            let path = entry.path().trim_start_matches('/').to_string();
            if path.ends_with('/') {
                continue;
            }
            // A file whose age is unknown is left alone: it may be a put going on.
            let old = entry
                .metadata()
                .last_modified()
                .map(std::time::SystemTime::from)
                .and_then(|t| now.duration_since(t).ok())
                .is_some_and(|age| age >= older_than);
            if old && self.op.delete(&path).await.is_ok() {
                removed += 1;
            }
        }
        Ok(removed)
    }
}
