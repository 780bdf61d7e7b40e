//! Who may call, and what they may do.
//!
//! * [`Auth`]: SigV4 secrets — the root key from the configuration, or an access key from the
//!   metadata store (secret unsealed with the master key). Unknown or disabled keys get
//!   `InvalidAccessKeyId`.
//! * [`Access`]: authorization before any operation runs. Anonymous requests are refused,
//!   except reads (GET, HEAD, list) of a bucket made public-read. The root key may do
//!   everything. Another key needs a grant on the bucket: `read` for GET,
//!   HEAD and listings; `write` for PUT, POST and DELETE of objects and uploads; `admin` for
//!   changing or deleting the bucket itself. Only the root key creates buckets. A copy also
//!   needs `read` on its source bucket. `ListBuckets` shows a key only the buckets it has a
//!   grant on.

use archipel_engine::{Engine, Permissions};
use s3s::access::{S3Access, S3AccessContext};
use s3s::auth::{S3Auth, SecretKey};
use s3s::dto::{CopyObjectInput, CopySource, UploadPartCopyInput};
use s3s::path::S3Path;
use s3s::{S3Request, S3Result, s3_error};

use crate::GatewayConfig;
use crate::errors::to_s3;

/// The gateway's [`S3Auth`].
pub(crate) struct Auth {
    engine: Engine,
    config: GatewayConfig,
}

impl Auth {
    pub(crate) fn new(engine: Engine, config: GatewayConfig) -> Self {
        Auth { engine, config }
    }
}

#[async_trait::async_trait]
impl S3Auth for Auth {
    async fn get_secret_key(&self, access_key: &str) -> S3Result<SecretKey> {
        if access_key == self.config.root_access_key {
            return Ok(SecretKey::from(self.config.root_secret_key.as_str()));
        }
        match self
            .engine
            .access_key_secret(access_key)
            .await
            .map_err(to_s3)?
        {
            Some(secret) => Ok(SecretKey::from(secret.as_str())),
            None => Err(s3_error!(
                InvalidAccessKeyId,
                "The AWS access key Id you provided does not exist in our records."
            )),
        }
    }
}

/// What an operation needs on its bucket.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Need {
    Read,
    Write,
    Admin,
    Root,
}

fn need(op: &str, method: &http::Method, path: &S3Path) -> Need {
    if op == "CreateBucket" {
        return Need::Root;
    }
    let bucket_level = matches!(path, S3Path::Bucket { .. });
    let changes_bucket = op == "DeleteBucket"
        || (bucket_level && (op.starts_with("PutBucket") || op.starts_with("DeleteBucket")));
    if changes_bucket {
        return Need::Admin;
    }
    if *method == http::Method::GET || *method == http::Method::HEAD {
        Need::Read
    } else {
        Need::Write
    }
}

fn allowed(p: Permissions, n: Need) -> bool {
    match n {
        Need::Read => p.read || p.admin,
        Need::Write => p.write || p.admin,
        Need::Admin => p.admin,
        Need::Root => false,
    }
}

/// The gateway's [`S3Access`].
pub(crate) struct Access {
    engine: Engine,
    config: GatewayConfig,
}

impl Access {
    pub(crate) fn new(engine: Engine, config: GatewayConfig) -> Self {
        Access { engine, config }
    }

    fn is_root(&self, key: &str) -> bool {
        key == self.config.root_access_key
    }

    async fn require(&self, key: &str, bucket: &str, n: Need) -> S3Result<()> {
        if self.is_root(key) {
            return Ok(());
        }
        let p = self.engine.permissions(key, bucket).await.map_err(to_s3)?;
        if allowed(p, n) {
            Ok(())
        } else {
            Err(s3_error!(
                AccessDenied,
                "access key {key} may not do this in bucket {bucket}"
            ))
        }
    }

    async fn require_source(&self, key: Option<&str>, src: &CopySource) -> S3Result<()> {
        let Some(key) = key else {
            return Err(s3_error!(AccessDenied));
        };
        if let CopySource::Bucket { bucket, .. } = src {
            self.require(key, bucket, Need::Read).await?;
        }
        Ok(())
    }
}

#[async_trait::async_trait]
impl S3Access for Access {
    async fn check(&self, cx: &mut S3AccessContext<'_>) -> S3Result<()> {
        let Some(cred) = cx.credentials() else {
            // Anonymous: only reads of a bucket made public-read.
            let reads = matches!(
                cx.s3_op().name(),
                "GetObject" | "HeadObject" | "ListObjects" | "ListObjectsV2" | "HeadBucket"
            );
            if let S3Path::Bucket { bucket } | S3Path::Object { bucket, .. } = cx.s3_path()
                && reads
                && crate::cors::is_public(&self.engine, bucket).await
            {
                return Ok(());
            }
            return Err(s3_error!(
                AccessDenied,
                "anonymous requests are not allowed"
            ));
        };
        let key = cred.access_key.clone();
        let n = need(cx.s3_op().name(), cx.method(), cx.s3_path());
        match cx.s3_path() {
            // ListBuckets: any key; the answer is filtered by its grants.
            S3Path::Root => Ok(()),
            S3Path::Bucket { bucket } | S3Path::Object { bucket, .. } => {
                if n == Need::Root && !self.is_root(&key) {
                    return Err(s3_error!(AccessDenied, "only the root key creates buckets"));
                }
                let bucket = bucket.to_string();
                self.require(&key, &bucket, n).await
            }
        }
    }

    async fn copy_object(&self, req: &mut S3Request<CopyObjectInput>) -> S3Result<()> {
        let key = req.credentials.as_ref().map(|c| c.access_key.clone());
        self.require_source(key.as_deref(), &req.input.copy_source)
            .await
    }

    async fn upload_part_copy(&self, req: &mut S3Request<UploadPartCopyInput>) -> S3Result<()> {
        let key = req.credentials.as_ref().map(|c| c.access_key.clone());
        self.require_source(key.as_deref(), &req.input.copy_source)
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn operations_need_what_they_touch() {
        let obj = S3Path::Object {
            bucket: "b".into(),
            key: "k".into(),
        };
        let bucket = S3Path::Bucket { bucket: "b".into() };
        use http::Method as M;
        assert_eq!(need("GetObject", &M::GET, &obj), Need::Read);
        assert_eq!(need("HeadObject", &M::HEAD, &obj), Need::Read);
        assert_eq!(need("ListObjectsV2", &M::GET, &bucket), Need::Read);
        assert_eq!(need("PutObject", &M::PUT, &obj), Need::Write);
        assert_eq!(need("DeleteObject", &M::DELETE, &obj), Need::Write);
        assert_eq!(need("DeleteObjects", &M::POST, &bucket), Need::Write);
        assert_eq!(need("CompleteMultipartUpload", &M::POST, &obj), Need::Write);
        assert_eq!(need("DeleteBucket", &M::DELETE, &bucket), Need::Admin);
        assert_eq!(need("PutBucketCors", &M::PUT, &bucket), Need::Admin);
        assert_eq!(need("CreateBucket", &M::PUT, &bucket), Need::Root);
        let rw = Permissions {
            read: true,
            write: true,
            admin: false,
        };
        assert!(allowed(rw, Need::Write) && !allowed(rw, Need::Admin));
        assert!(!allowed(Permissions::default(), Need::Read));
    }
}
