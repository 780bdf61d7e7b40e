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

/// What an error answer says when nothing more specific was given (S3's own wording where
/// it has one): every error the gateway returns carries a `Message`.
fn default_message(code: &str, status: http::StatusCode) -> String {
    let m = match code {
        "AccessDenied" => "Access Denied",
        "AuthorizationHeaderMalformed" => "The authorization header you provided is invalid.",
        "BadDigest" => "The Content-MD5 or checksum you specified did not match what we received.",
        "EntityTooLarge" => "Your proposed upload exceeds the maximum allowed object size.",
        "IncompleteBody" => {
            "You did not provide the number of bytes specified by the Content-Length HTTP header."
        }
        "InternalError" => "We encountered an internal error. Please try again.",
        "InvalidAccessKeyId" => "The AWS access key Id you provided does not exist in our records.",
        "InvalidArgument" => "Invalid Argument",
        "InvalidBucketName" => {
            "The specified bucket is not valid: a bucket name has 3 to 63 characters (lowercase letters, digits, '.' and '-'), begins and ends with a letter or digit, and is not an IP address."
        }
        "InvalidDigest" => "The Content-MD5 or checksum you specified is not valid.",
        "InvalidPart" => "One or more of the specified parts could not be found.",
        "InvalidRange" => "The requested range is not satisfiable.",
        "InvalidRequest" => "The request is not valid.",
        "InvalidURI" => "Couldn't parse the specified URI.",
        "KeyTooLongError" => "Your key is too long (at most 1024 bytes).",
        "MalformedXML" => {
            "The XML you provided was not well-formed or did not validate against our published schema."
        }
        "MalformedPOSTRequest" => {
            "The body of your POST request is not well-formed multipart/form-data."
        }
        "MaxMessageLengthExceeded" => "Your request was too big.",
        "MethodNotAllowed" => "The specified method is not allowed against this resource.",
        "MissingContentLength" => "You must provide the Content-Length HTTP header.",
        "NoSuchBucket" => "The specified bucket does not exist.",
        "NoSuchKey" => "The specified key does not exist.",
        "NoSuchUpload" => "The specified multipart upload does not exist.",
        "NotImplemented" => {
            "A header or operation you provided implies functionality that is not implemented."
        }
        "PreconditionFailed" => "At least one of the preconditions you specified did not hold.",
        "RequestTimeTooSkewed" => {
            "The difference between the request time and the server's time is too large."
        }
        "ServiceUnavailable" => "Too few storage providers answer right now; retry later.",
        "SignatureDoesNotMatch" => {
            "The request signature we calculated does not match the signature you provided. Check your key and signing method."
        }
        "XAmzContentSHA256Mismatch" => {
            "The provided 'x-amz-content-sha256' header does not match what was computed."
        }
        _ => return format!("{code} ({status})"),
    };
    m.to_string()
}

/// Adds a `Message` to an error answer that has none (s3s leaves it out for some of the
/// errors it raises itself, e.g. `InvalidBucketName`, and clients then show "Unknown").
pub(crate) fn ensure_message(resp: &mut http::Response<s3s::Body>) {
    let status = resp.status();
    if !(status.is_client_error() || status.is_server_error()) {
        return;
    }
    let Some(bytes) = resp.body().bytes() else {
        return;
    };
    let Ok(xml) = std::str::from_utf8(&bytes) else {
        return;
    };
    if xml.contains("<Message>") || !xml.contains("<Error>") {
        return;
    }
    let Some((code_start, code_end)) = xml
        .find("<Code>")
        .and_then(|a| Some((a + 6, a + 6 + xml[a + 6..].find("</Code>")?)))
    else {
        return;
    };
    let code = &xml[code_start..code_end];
    let message = crate::guard::xml_escape(&default_message(code, status));
    let fixed = format!(
        "{}</Code><Message>{message}</Message>{}",
        &xml[..code_end],
        &xml[code_end + "</Code>".len()..]
    );
    if let Ok(v) = http::HeaderValue::from_str(&fixed.len().to_string()) {
        resp.headers_mut().insert(http::header::CONTENT_LENGTH, v);
    }
    *resp.body_mut() = s3s::Body::from(fixed);
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
