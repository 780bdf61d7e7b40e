//! The engine's error type: one enum the gateway and the CLI map to S3 error codes and
//! messages, saying what was asked for and what went wrong.

use archipel_codec::CodecError;
use archipel_meta::MetaError;
use archipel_provider::ProviderError;

use crate::placement::PlacementError;

/// Result alias for engine operations.
pub type Result<T, E = EngineError> = std::result::Result<T, E>;

/// An error from an engine operation.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum EngineError {
    /// The bucket does not exist.
    #[error("bucket {bucket}: no such bucket")]
    NoSuchBucket {
        /// The bucket.
        bucket: String,
    },
    /// The key has no current version.
    #[error("{bucket}/{key}: no such key")]
    NoSuchKey {
        /// The bucket.
        bucket: String,
        /// The key.
        key: String,
    },
    /// The multipart upload does not exist (never created, completed or aborted).
    #[error("{bucket}/{key}: no such upload {upload_id}")]
    NoSuchUpload {
        /// The bucket.
        bucket: String,
        /// The key.
        key: String,
        /// The upload id.
        upload_id: String,
    },
    /// A conditional write, delete or read did not hold (`If-Match`, `If-None-Match`), as
    /// decided by the metadata store in the same transaction as the change.
    #[error("precondition failed: {0}")]
    PreconditionFailed(String),
    /// A byte range outside the object.
    #[error("range not satisfiable: {range} of an object of {size} bytes")]
    InvalidRange {
        /// The range as asked.
        range: String,
        /// The object's size.
        size: u64,
    },
    /// A part listed at completion is missing or its etag differs.
    #[error("invalid part: {0}")]
    InvalidPart(String),
    /// Completion listed parts out of order.
    #[error("invalid part order: {0}")]
    InvalidPartOrder(String),
    /// A part other than the last is smaller than the minimum part size.
    #[error("part {part} is {size} bytes, below the minimum of {min} for all but the last part")]
    EntityTooSmall {
        /// The part number.
        part: u32,
        /// Its size.
        size: u64,
        /// The minimum.
        min: u64,
    },
    /// The body was shorter or longer than announced, or its stream failed.
    #[error("request body: {0}")]
    Body(String),
    /// The body's MD5 differs from the announced `Content-MD5`.
    #[error("body digest {actual} differs from the announced Content-MD5 {expected}")]
    BadDigest {
        /// Announced (hex).
        expected: String,
        /// Received (hex).
        actual: String,
    },
    /// Too few providers are reachable to read or write: no data is returned or acknowledged.
    /// Retrying later may succeed.
    #[error("{what}: unavailable: {usable} of the {needed} shards needed are reachable ({detail})")]
    Unavailable {
        /// What was being read or written (`bucket/key`).
        what: String,
        /// Shards needed (k to read, the write quorum to write).
        needed: usize,
        /// Shards that could be used.
        usable: usize,
        /// What failed, per provider.
        detail: String,
    },
    /// A bucket name that S3 does not allow.
    #[error("invalid bucket name: {0}")]
    InvalidBucketName(String),
    /// Invalid arguments (bad policy, bad part number, unknown provider, …).
    #[error("invalid request: {0}")]
    Invalid(String),
    /// The bucket's policy cannot be satisfied by the vault's providers.
    #[error(transparent)]
    Placement(#[from] PlacementError),
    /// A metadata-store failure.
    #[error(transparent)]
    Meta(MetaError),
    /// A codec failure that is not a provider's fault (e.g. a manifest under another key).
    #[error(transparent)]
    Codec(#[from] CodecError),
    /// A provider failure that could not be worked around.
    #[error(transparent)]
    Provider(#[from] ProviderError),
    /// An internal task failed (panicked or was cancelled).
    #[error("internal: {0}")]
    Internal(String),
}

impl EngineError {
    /// Whether retrying the same request later may succeed.
    pub fn is_retryable(&self) -> bool {
        match self {
            EngineError::Unavailable { .. } => true,
            EngineError::Meta(e) => e.is_retryable(),
            EngineError::Provider(e) => e.is_retryable(),
            _ => false,
        }
    }
}

impl From<MetaError> for EngineError {
    fn from(e: MetaError) -> Self {
        match e {
            MetaError::NoSuchBucket { bucket } => EngineError::NoSuchBucket {
                bucket: bucket.to_string(),
            },
            MetaError::AlreadyExists { .. }
            | MetaError::EtagMismatch { .. }
            | MetaError::NoLiveVersion { .. } => EngineError::PreconditionFailed(e.to_string()),
            MetaError::NoSuchUpload {
                bucket,
                key,
                upload_id,
            } => EngineError::NoSuchUpload {
                bucket: bucket.to_string(),
                key: key.to_string(),
                upload_id: upload_id.to_string(),
            },
            other => EngineError::Meta(other),
        }
    }
}
