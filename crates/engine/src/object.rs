//! The shapes of object requests and answers: bodies, put options, byte ranges, object
//! information.

use std::collections::BTreeMap;
use std::ops::Range;

use archipel_codec::Manifest;
use archipel_meta::{CommitCondition, ObjectVersion, UnixMillis};
use bytes::Bytes;
use futures::stream::BoxStream;

use crate::error::{EngineError, Result};

/// A request body: a stream of byte pieces (any sizes), ending with `None`. An error aborts
/// the write, leaving nothing visible.
pub type Body = BoxStream<'static, std::io::Result<Bytes>>;

/// Options of a PUT (or of a multipart upload, given at its creation).
#[derive(Debug, Clone, Default)]
pub struct PutOptions {
    /// `Content-Type`.
    pub content_type: Option<String>,
    /// Other stored headers (`Content-Encoding`, `Cache-Control`, …), as given.
    pub headers: Vec<(String, String)>,
    /// User metadata (`x-amz-meta-*`, without the prefix).
    pub user_metadata: BTreeMap<String, String>,
    /// Only commit if this holds (`If-None-Match: *`, `If-Match`).
    pub condition: Option<CommitCondition>,
    /// The announced body length: a body of another length is refused and nothing is stored.
    pub expected_len: Option<u64>,
    /// The body's announced MD5 (`Content-MD5`): a body with another digest is refused
    /// ([`EngineError::BadDigest`]) and nothing is stored.
    pub content_md5: Option<[u8; 16]>,
    /// Headers only known once the body has been read (checksums computed on the way): read
    /// after the body ends and stored with the others.
    pub late_headers: Option<LateHeaders>,
}

/// Headers a body stream fills in as it ends (see [`PutOptions::late_headers`]).
pub type LateHeaders = std::sync::Arc<std::sync::Mutex<Vec<(String, String)>>>;

/// What a part's body must be: announced length and MD5, both optional.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BodyCheck {
    /// The announced length (`Content-Length`).
    pub expected_len: Option<u64>,
    /// The announced MD5 (`Content-MD5`).
    pub content_md5: Option<[u8; 16]>,
}

/// What a successful PUT (or multipart completion) committed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PutOutcome {
    /// The etag: hex MD5 of the body, or for a multipart upload the MD5 of the parts' MD5s
    /// followed by `-` and the part count.
    pub etag: String,
    /// The new version's id.
    pub version_id: String,
    /// Bytes stored.
    pub size: u64,
    /// Shards that could not be written anywhere (the object is readable and was queued for
    /// repair); empty when the write was complete.
    pub unwritten_shards: usize,
    /// Shards that went to a spare provider because their first provider failed.
    pub spared_shards: usize,
}

/// A byte range as HTTP `Range` expresses it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ByteRange {
    /// `bytes=first-last` (inclusive), or `bytes=first-` when `last` is `None`.
    FromTo {
        /// First byte.
        first: u64,
        /// Last byte, inclusive.
        last: Option<u64>,
    },
    /// `bytes=-n`: the last `n` bytes.
    Suffix(u64),
}

impl ByteRange {
    /// The byte range of an object of `size` bytes, or [`EngineError::InvalidRange`] when it
    /// selects nothing (as S3 answers `416`).
    pub fn resolve(self, size: u64) -> Result<Range<u64>> {
        let invalid = || EngineError::InvalidRange {
            range: self.to_string(),
            size,
        };
        match self {
            ByteRange::FromTo { first, last } => {
                if first >= size || last.is_some_and(|l| l < first) {
                    return Err(invalid());
                }
                let end = last.map_or(size, |l| l.saturating_add(1).min(size));
                Ok(first..end)
            }
            ByteRange::Suffix(n) => {
                if n == 0 || size == 0 {
                    return Err(invalid());
                }
                Ok(size.saturating_sub(n)..size)
            }
        }
    }
}

impl std::fmt::Display for ByteRange {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ByteRange::FromTo { first, last: None } => write!(f, "bytes={first}-"),
            ByteRange::FromTo {
                first,
                last: Some(l),
            } => write!(f, "bytes={first}-{l}"),
            ByteRange::Suffix(n) => write!(f, "bytes=-{n}"),
        }
    }
}

/// An object's description (what HEAD returns).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectInfo {
    /// The bucket.
    pub bucket: String,
    /// The key.
    pub key: String,
    /// The current version's id.
    pub version_id: String,
    /// Size in bytes.
    pub size: u64,
    /// The etag (without quotes).
    pub etag: String,
    /// When it was written.
    pub last_modified: UnixMillis,
    /// `Content-Type`.
    pub content_type: Option<String>,
    /// Other stored headers.
    pub headers: Vec<(String, String)>,
    /// User metadata.
    pub user_metadata: BTreeMap<String, String>,
    /// Number of parts for an object written by a multipart upload, else 0.
    pub parts: u32,
}

impl ObjectInfo {
    pub(crate) fn from_manifest(v: &ObjectVersion, m: &Manifest) -> Self {
        let multipart = m.segments.iter().any(|s| s.part_number > 0);
        ObjectInfo {
            bucket: v.bucket.to_string(),
            key: v.key.to_string(),
            version_id: v.version.version_id.to_string(),
            size: v.version.size,
            etag: v.version.etag.to_string(),
            last_modified: v.version.last_modified,
            content_type: m.content_type.clone(),
            headers: m.headers.clone(),
            user_metadata: m.user_metadata.iter().cloned().collect(),
            parts: if multipart {
                m.segments.len() as u32
            } else {
                0
            },
        }
    }
}

/// A GET's answer: the object, the byte range being sent, and the bytes. The first stripe has
/// already been read and verified when this is returned, so an unreadable object fails
/// before any byte is sent; a later failure ends the stream with an error.
pub struct GetOutput {
    /// The object.
    pub info: ObjectInfo,
    /// The bytes of the object in `body`.
    pub range: Range<u64>,
    /// The bytes, verified.
    pub body: BoxStream<'static, Result<Bytes>>,
}

impl std::fmt::Debug for GetOutput {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GetOutput")
            .field("info", &self.info)
            .field("range", &self.range)
            .finish_non_exhaustive()
    }
}
