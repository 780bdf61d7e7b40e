//! Every engine error mapped to one S3 error code, in one place.

use archipel_engine::EngineError;
use s3s::{S3Error, S3ErrorCode};

/// The S3 error for an engine error.
pub(crate) fn to_s3(e: EngineError) -> S3Error {
    let (code, msg) = match &e {
        EngineError::NoSuchBucket { .. } => (S3ErrorCode::NoSuchBucket, e.to_string()),
        EngineError::NoSuchKey { .. } => (S3ErrorCode::NoSuchKey, e.to_string()),
        EngineError::NoSuchUpload { .. } => (S3ErrorCode::NoSuchUpload, e.to_string()),
        EngineError::PreconditionFailed(_) => (S3ErrorCode::PreconditionFailed, e.to_string()),
        EngineError::InvalidRange { .. } => (S3ErrorCode::InvalidRange, e.to_string()),
        EngineError::InvalidPart(_) => (S3ErrorCode::InvalidPart, e.to_string()),
        EngineError::InvalidPartOrder(_) => (S3ErrorCode::InvalidPartOrder, e.to_string()),
        EngineError::EntityTooSmall { .. } => (S3ErrorCode::EntityTooSmall, e.to_string()),
        EngineError::Body(_) => (S3ErrorCode::IncompleteBody, e.to_string()),
        EngineError::BadDigest { .. } => (S3ErrorCode::BadDigest, e.to_string()),
        EngineError::InvalidBucketName(_) => (S3ErrorCode::InvalidBucketName, e.to_string()),
        EngineError::Invalid(_) => (S3ErrorCode::InvalidArgument, e.to_string()),
        EngineError::Placement(_) => (S3ErrorCode::InvalidArgument, e.to_string()),
        EngineError::Unavailable { .. } => (S3ErrorCode::ServiceUnavailable, e.to_string()),
        EngineError::Meta(m) if m.is_retryable() => {
            (S3ErrorCode::ServiceUnavailable, e.to_string())
        }
        _ => {
            tracing::error!("internal error: {e}");
            (S3ErrorCode::InternalError, e.to_string())
        }
    };
    let unavailable = code == S3ErrorCode::ServiceUnavailable;
    let mut err = S3Error::with_message(code, msg);
    if unavailable {
        // Too few providers answer: tell clients to come back rather than hang or give up.
        let mut h = http::HeaderMap::new();
        h.insert(
            http::header::RETRY_AFTER,
            http::HeaderValue::from_static(RETRY_AFTER_SECS),
        );
        err.set_headers(h);
        err.set_status_code(http::StatusCode::SERVICE_UNAVAILABLE);
    }
    err
}

/// What `Retry-After` says when providers are unavailable.
const RETRY_AFTER_SECS: &str = "5";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_engine_error_has_its_s3_code() {
        let cases: Vec<(EngineError, &str)> = vec![
            (
                EngineError::NoSuchBucket { bucket: "b".into() },
                "NoSuchBucket",
            ),
            (
                EngineError::NoSuchKey {
                    bucket: "b".into(),
                    key: "k".into(),
                },
                "NoSuchKey",
            ),
            (
                EngineError::NoSuchUpload {
                    bucket: "b".into(),
                    key: "k".into(),
                    upload_id: "u".into(),
                },
                "NoSuchUpload",
            ),
            (
                EngineError::PreconditionFailed("x".into()),
                "PreconditionFailed",
            ),
            (
                EngineError::InvalidRange {
                    range: "bytes=9-".into(),
                    size: 3,
                },
                "InvalidRange",
            ),
            (EngineError::InvalidPart("x".into()), "InvalidPart"),
            (
                EngineError::InvalidPartOrder("x".into()),
                "InvalidPartOrder",
            ),
            (
                EngineError::EntityTooSmall {
                    part: 1,
                    size: 1,
                    min: 5,
                },
                "EntityTooSmall",
            ),
            (EngineError::Body("short".into()), "IncompleteBody"),
            (
                EngineError::BadDigest {
                    expected: "a".into(),
                    actual: "b".into(),
                },
                "BadDigest",
            ),
            (
                EngineError::InvalidBucketName("x".into()),
                "InvalidBucketName",
            ),
            (EngineError::Invalid("x".into()), "InvalidArgument"),
            (EngineError::Internal("x".into()), "InternalError"),
        ];
        for (e, code) in cases {
            assert_eq!(to_s3(e).code().as_str(), code);
        }
        let e = to_s3(EngineError::Unavailable {
            what: "b/k".into(),
            needed: 4,
            usable: 3,
            detail: "p1 down".into(),
        });
        assert_eq!(e.code().as_str(), "ServiceUnavailable");
        assert_eq!(e.status_code(), Some(http::StatusCode::SERVICE_UNAVAILABLE));
        assert_eq!(
            e.headers()
                .and_then(|h| h.get(http::header::RETRY_AFTER))
                .map(|v| v.as_bytes()),
            Some(&b"5"[..])
        );
    }
}
