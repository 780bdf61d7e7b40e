//! The metadata store's error type: what failed, on which bucket, key or record, and whether
//! trying again may help ([`MetaError::is_retryable`]).

use crate::types::{BucketName, ETag, ObjectKey, UploadId};

/// Result alias for metadata operations.
pub type Result<T, E = MetaError> = std::result::Result<T, E>;

/// An error from a metadata operation.
///
/// Losers of a conditional commit or delete get [`MetaError::AlreadyExists`],
/// [`MetaError::NoLiveVersion`] or [`MetaError::EtagMismatch`], which say what the store found
/// instead.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum MetaError {
    /// The bucket does not exist.
    #[error("bucket {bucket}: no such bucket")]
    NoSuchBucket {
        /// The bucket asked for.
        bucket: BucketName,
    },
    /// A bucket of that name already exists.
    #[error("bucket {bucket}: already exists (owner {owner})")]
    BucketExists {
        /// The bucket asked for.
        bucket: BucketName,
        /// Its current owner.
        owner: String,
    },
    /// The bucket still holds objects or multipart uploads.
    #[error("bucket {bucket}: not empty")]
    BucketNotEmpty {
        /// The bucket asked for.
        bucket: BucketName,
    },
    /// An only-if-absent commit found a current version.
    #[error(
        "{bucket}/{key}: only-if-absent commit lost: a version with etag {current_etag} is current"
    )]
    AlreadyExists {
        /// The bucket.
        bucket: BucketName,
        /// The key.
        key: ObjectKey,
        /// The etag of the version that is current.
        current_etag: ETag,
    },
    /// An only-if-current-etag commit or delete found another etag, or no object at all.
    #[error("{bucket}/{key}: expected current etag {expected}, found {}", current.as_ref().map_or("no object", ETag::as_str))]
    EtagMismatch {
        /// The bucket.
        bucket: BucketName,
        /// The key.
        key: ObjectKey,
        /// The etag the caller required.
        expected: ETag,
        /// The etag that is current, if any version is.
        current: Option<ETag>,
    },
    /// An only-if-exists commit or delete (`If-Match: *`) found no live version: the key is
    /// absent, or its current version is a delete marker.
    #[error("{bucket}/{key}: only-if-exists condition failed: {}", if *delete_marker { "the current version is a delete marker" } else { "no version is current" })]
    NoLiveVersion {
        /// The bucket.
        bucket: BucketName,
        /// The key.
        key: ObjectKey,
        /// Whether a delete marker is current (rather than nothing at all).
        delete_marker: bool,
    },
    /// The multipart upload does not exist (never created, completed or aborted).
    #[error("{bucket}/{key}: no such upload {upload_id}")]
    NoSuchUpload {
        /// The bucket.
        bucket: BucketName,
        /// The key.
        key: ObjectKey,
        /// The upload asked for.
        upload_id: UploadId,
    },
    /// A record with this identity already exists (upload id, access key id).
    #[error("{what} {id}: already exists")]
    Duplicate {
        /// What kind of record (`upload`, `access key`).
        what: &'static str,
        /// Its identity.
        id: String,
    },
    /// A record that must exist does not (access key, provider).
    #[error("{what} {id}: not found")]
    NotFound {
        /// What kind of record.
        what: &'static str,
        /// Its identity.
        id: String,
    },
    /// An argument is out of its domain (a malformed name, a part number of 0, …).
    #[error("invalid {what}: {reason}")]
    InvalidArgument {
        /// Which argument.
        what: &'static str,
        /// Why it was refused.
        reason: String,
    },
    /// The database could not be reached, timed out, or reported a transient conflict
    /// (SQLSTATE 40001/40P01 after the store's own retries, SQLite busy). Retryable.
    #[error("metadata database unavailable during {op}{}: {message}", code.as_ref().map(|c| format!(" (code {c})")).unwrap_or_default())]
    Unavailable {
        /// The operation.
        op: &'static str,
        /// The database's error code, if it gave one.
        code: Option<String>,
        /// Details.
        message: String,
    },
    /// The embedded store's data directory is held by another process.
    #[error("metadata store {path} is locked by another process")]
    Locked {
        /// The lock file.
        path: String,
    },
    /// The database's schema is newer than this build understands.
    #[error(
        "metadata schema version {found} is newer than this build's {supported}: upgrade Archipel"
    )]
    SchemaTooNew {
        /// Version found in the database.
        found: i64,
        /// Newest version this build knows.
        supported: i64,
    },
    /// A stored value could not be decoded: the database was written by something else or is
    /// damaged.
    #[error("corrupt metadata in {table}: {reason}")]
    Corrupt {
        /// The table.
        table: &'static str,
        /// What was wrong.
        reason: String,
    },
    /// Any other database error.
    #[error("metadata database error during {op}{}: {message}", code.as_ref().map(|c| format!(" (code {c})")).unwrap_or_default())]
    Database {
        /// The operation.
        op: &'static str,
        /// The database's error code (SQLSTATE for PostgreSQL, extended result code for SQLite).
        code: Option<String>,
        /// Details.
        message: String,
    },
    /// The store was closed, or its writer task is gone.
    #[error("metadata store is closed")]
    Closed,
}

impl MetaError {
    /// Whether the same call may succeed if tried again later (transient database trouble).
    /// Conditional-commit losers and missing records are not retryable: the answer will not
    /// change by itself.
    pub fn is_retryable(&self) -> bool {
        matches!(self, MetaError::Unavailable { .. })
    }

    pub(crate) fn invalid(what: &'static str, reason: impl Into<String>) -> Self {
        MetaError::InvalidArgument {
            what,
            reason: reason.into(),
        }
    }

    pub(crate) fn corrupt(table: &'static str, reason: impl Into<String>) -> Self {
        MetaError::Corrupt {
            table,
            reason: reason.into(),
        }
    }

    /// Maps a sqlx error, classifying transient ones as [`MetaError::Unavailable`].
    pub(crate) fn from_sqlx(op: &'static str, err: sqlx::Error) -> Self {
        match &err {
            sqlx::Error::Database(db) => {
                let code = db.code().map(|c| c.into_owned());
                if code.as_deref().is_some_and(is_transient_code) {
                    MetaError::Unavailable {
                        op,
                        code,
                        message: db.message().to_string(),
                    }
                } else {
                    MetaError::Database {
                        op,
                        code,
                        message: db.message().to_string(),
                    }
                }
            }
            sqlx::Error::Io(_)
            | sqlx::Error::PoolTimedOut
            | sqlx::Error::PoolClosed
            | sqlx::Error::WorkerCrashed
            | sqlx::Error::Tls(_) => MetaError::Unavailable {
                op,
                code: None,
                message: err.to_string(),
            },
            sqlx::Error::ColumnDecode { .. } | sqlx::Error::Decode(_) => MetaError::Corrupt {
                table: op,
                reason: err.to_string(),
            },
            _ => MetaError::Database {
                op,
                code: None,
                message: err.to_string(),
            },
        }
    }

    /// Whether the store should retry the whole transaction itself (serialization failure or
    /// deadlock on PostgreSQL and PostgreSQL-compatible SQL, busy on SQLite).
    pub(crate) fn is_serialization_failure(&self) -> bool {
        matches!(self, MetaError::Unavailable { code: Some(code), .. }
            if matches!(code.as_str(), "40001" | "40P01" | "5" | "6" | "517"))
    }
}

/// SQLSTATE 40001 (serialization failure), 40P01 (deadlock), 55P03 (lock not available),
/// 57P01 (admin shutdown), 08xxx (connection exceptions); SQLite 5/6/517 (busy, locked,
/// busy snapshot).
fn is_transient_code(code: &str) -> bool {
    matches!(
        code,
        "40001" | "40P01" | "55P03" | "57P01" | "5" | "6" | "517"
    ) || code.starts_with("08")
}
