//! The records the store holds and the names that identify them. Names are validated newtypes
//! so that a malformed one is refused at the edge, never half-way through a transaction.

use std::collections::BTreeMap;
use std::fmt;

use crate::error::{MetaError, Result};

macro_rules! name_type {
    ($(#[$doc:meta])* $name:ident, $what:literal, $max:expr) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub struct $name(String);

        impl $name {
            /// Validates and wraps a name: non-empty, at most
            #[doc = concat!(stringify!($max), " bytes, no NUL.")]
            pub fn new(name: impl Into<String>) -> Result<Self> {
                let name = name.into();
                if name.is_empty() || name.len() > $max || name.contains('\0') {
                    return Err(MetaError::invalid(
                        $what,
                        format!("{name:?}: must be 1..={} bytes without NUL", $max),
                    ));
                }
                Ok(Self(name))
            }

            /// The name as a string.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }
    };
}

name_type!(
    /// An S3 bucket name (validated by [`BucketName::new`] to S3's rules: 3–63 bytes of
    /// lowercase letters, digits, `.` and `-`, starting and ending with a letter or digit).
    BucketName, "bucket name", 63
);
name_type!(
    /// An object key: any UTF-8 string of 1–1024 bytes. Keys sort by their UTF-8 bytes.
    ObjectKey, "object key", 1024
);
name_type!(
    /// An object version id, chosen by the caller (the engine draws random ids).
    VersionId, "version id", 128
);
name_type!(
    /// A multipart upload id, chosen by the caller. Uploads of one key list in upload id
    /// byte order, so time-ordered ids list in initiation order.
    UploadId, "upload id", 128
);
name_type!(
    /// An entity tag, stored and compared as an opaque string (quotes included if the caller
    /// includes them).
    ETag, "etag", 256
);
name_type!(
    /// A provider's name in the registry.
    ProviderName, "provider name", 255
);
name_type!(
    /// An access key id.
    AccessKeyId, "access key id", 128
);
name_type!(
    /// The name of a background job's checkpoint.
    CheckpointName, "checkpoint name", 255
);

impl BucketName {
    /// Validates a bucket name against S3's naming rules.
    pub fn s3(name: impl Into<String>) -> Result<Self> {
        let name = Self::new(name)?;
        let b = name.0.as_bytes();
        let ok_char =
            |c: &u8| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'.' || *c == b'-';
        let edge = |c: &u8| c.is_ascii_lowercase() || c.is_ascii_digit();
        let valid = (3..=63).contains(&b.len())
            && b.iter().all(ok_char)
            && b.first().is_some_and(edge)
            && b.last().is_some_and(edge);
        if valid {
            Ok(name)
        } else {
            Err(MetaError::invalid(
                "bucket name",
                format!("{name:?}: S3 bucket names are 3-63 bytes of a-z, 0-9, '.', '-'"),
            ))
        }
    }
}

/// Milliseconds since the Unix epoch. Timestamps are passed in by the caller, never read from
/// a clock inside the store, so tests are deterministic.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct UnixMillis(pub i64);

impl UnixMillis {
    /// The current wall-clock time.
    pub fn now() -> Self {
        let ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX));
        UnixMillis(ms)
    }
}

/// A bucket.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bucket {
    /// Its name.
    pub name: BucketName,
    /// The owning account (an access key id or account name; opaque to the store).
    pub owner: String,
    /// The bucket policy (k, m, quorum, placement), encoded by the engine; opaque here.
    pub policy: Vec<u8>,
    /// When it was created.
    pub created: UnixMillis,
    /// The bucket's settings (CORS, public access, …), encoded by the engine; opaque here
    /// (empty: none set).
    pub settings: Vec<u8>,
}

/// User metadata (`x-amz-meta-*`) and provider labels: a sorted string map.
pub type StringMap = BTreeMap<String, String>;

/// An object version to commit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewVersion {
    /// The version's id (unique per key; chosen by the caller).
    pub version_id: VersionId,
    /// The codec manifest (what it takes to read the version); opaque to the store.
    pub manifest: Vec<u8>,
    /// Plaintext size in bytes.
    pub size: u64,
    /// Its etag.
    pub etag: ETag,
    /// Its last-modified time.
    pub last_modified: UnixMillis,
    /// User metadata.
    pub user_metadata: StringMap,
    /// A delete marker: the key reads as absent and is not listed, but the marker is a version
    /// (room for S3 versioning; promise 5 keeps deletes deleted).
    pub delete_marker: bool,
}

/// A committed object version, as read back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectVersion {
    /// The bucket.
    pub bucket: BucketName,
    /// The key.
    pub key: ObjectKey,
    /// Everything the commit carried.
    pub version: NewVersion,
}

/// When a commit may take effect. Exactly one of any set of concurrent conditional committers
/// on one key wins; the others get a typed error saying what they found.
///
/// Every condition is decided against the key's current version inside the commit's own
/// transaction (the row is locked), never by an earlier read. A delete marker counts as no
/// live version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CommitCondition {
    /// Always: replaces whatever is current.
    Unconditional,
    /// Only if no live version is current (`If-None-Match: *`); losers get
    /// [`MetaError::AlreadyExists`].
    IfAbsent,
    /// Only if a live (non-delete-marker) version is current, whatever its etag
    /// (`If-Match: *`); losers get [`MetaError::NoLiveVersion`].
    IfExists,
    /// Only if the current live version has this etag (`If-Match`); losers get
    /// [`MetaError::EtagMismatch`].
    IfMatch(ETag),
}

/// When a [`delete`](crate::MetaStore::delete) may take effect: decided against the key's
/// current version in the delete's own transaction, like a [`CommitCondition`]. A delete
/// marker counts as no live version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeleteCondition {
    /// Always: removes whatever is current (a delete marker included); `Ok` with nothing if
    /// there is nothing.
    Unconditional,
    /// Only if a live version is current (`If-Match: *`); otherwise
    /// [`MetaError::NoLiveVersion`].
    IfExists,
    /// Only if the current live version has this etag (`If-Match`); otherwise
    /// [`MetaError::EtagMismatch`] (with `current: None` if no live version is current).
    IfMatch(ETag),
}

impl DeleteCondition {
    /// The same test, as the commit condition it shares its decision with.
    pub(crate) fn as_commit_condition(&self) -> CommitCondition {
        match self {
            DeleteCondition::Unconditional => CommitCondition::Unconditional,
            DeleteCondition::IfExists => CommitCondition::IfExists,
            DeleteCondition::IfMatch(e) => CommitCondition::IfMatch(e.clone()),
        }
    }
}

/// The outcome of a successful commit or delete.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Superseded {
    /// The version that was current and is no longer, with its manifest, so the caller can
    /// garbage-collect its shards. `None` if the key had no current version.
    pub previous: Option<ObjectVersion>,
}

/// One object in a listing page (no manifest: listing never loads manifests).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectSummary {
    /// The key.
    pub key: ObjectKey,
    /// The current version's id.
    pub version_id: VersionId,
    /// Plaintext size.
    pub size: u64,
    /// Etag.
    pub etag: ETag,
    /// Last-modified time.
    pub last_modified: UnixMillis,
}

/// An S3 listing request (ListObjects v1 and v2 map onto it).
///
/// The listing is the sorted sequence of *entries*: each live key that starts with `prefix`
/// is an entry, unless `delimiter` occurs in the key after the prefix, in which case the
/// entry is the common prefix up to and including the first such delimiter (deduplicated).
/// A page holds the first `max_keys` entries that sort strictly after `start_after`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ListQuery {
    /// Only keys starting with this.
    pub prefix: String,
    /// Group keys by this string after the prefix (`None` or empty: no grouping).
    pub delimiter: Option<String>,
    /// Exclusive lower bound: `start-after`, `marker`, or a decoded continuation token.
    pub start_after: Option<String>,
    /// Maximum entries (keys plus common prefixes); capped at [`MAX_PAGE`]; 0 gives an empty,
    /// untruncated page.
    pub max_keys: usize,
}

/// The largest page any listing returns.
pub const MAX_PAGE: usize = 1000;

/// A page of objects.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ObjectPage {
    /// Objects, in key order.
    pub objects: Vec<ObjectSummary>,
    /// Common prefixes, in order.
    pub common_prefixes: Vec<String>,
    /// Whether more entries follow.
    pub is_truncated: bool,
    /// When truncated: the last entry (key or common prefix) of this page, to pass as
    /// `start_after` for the next page.
    pub next_start_after: Option<String>,
}

/// A multipart upload to create.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewUpload {
    /// The key the upload will commit to.
    pub key: ObjectKey,
    /// Its id.
    pub upload_id: UploadId,
    /// When it was initiated.
    pub initiated: UnixMillis,
    /// What the engine needs at completion (content type, user metadata, …); opaque here.
    pub metadata: Vec<u8>,
}

/// A multipart upload in progress.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Upload {
    /// The bucket.
    pub bucket: BucketName,
    /// The upload.
    pub upload: NewUpload,
}

/// An uploaded part.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Part {
    /// 1..=10000.
    pub part_number: u32,
    /// The codec manifest of the part's segment; opaque here.
    pub manifest: Vec<u8>,
    /// Plaintext size.
    pub size: u64,
    /// Etag.
    pub etag: ETag,
    /// Upload time.
    pub last_modified: UnixMillis,
}

/// Identifies one multipart upload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UploadRef {
    /// The bucket.
    pub bucket: BucketName,
    /// The key.
    pub key: ObjectKey,
    /// The upload id.
    pub upload_id: UploadId,
}

/// A ListParts request.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PartQuery {
    /// Only parts with a larger number (`part-number-marker`).
    pub after: Option<u32>,
    /// Maximum parts, capped at [`MAX_PAGE`].
    pub max_parts: usize,
}

/// A page of parts.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PartPage {
    /// Parts in number order.
    pub parts: Vec<Part>,
    /// Whether more parts follow.
    pub is_truncated: bool,
    /// When truncated: the last part number of this page.
    pub next_after: Option<u32>,
}

/// A ListMultipartUploads request: entries as in [`ListQuery`], ordered by key then upload id.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct UploadQuery {
    /// Only keys starting with this.
    pub prefix: String,
    /// Group keys by this string after the prefix.
    pub delimiter: Option<String>,
    /// `key-marker`: with no `upload_id_marker`, only entries whose key sorts after it.
    pub key_marker: Option<String>,
    /// `upload-id-marker`: also uploads of `key_marker` itself with a larger upload id.
    pub upload_id_marker: Option<String>,
    /// Maximum entries, capped at [`MAX_PAGE`].
    pub max_uploads: usize,
}

/// A page of multipart uploads.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct UploadPage {
    /// Uploads in (key, upload id) order.
    pub uploads: Vec<Upload>,
    /// Common prefixes.
    pub common_prefixes: Vec<String>,
    /// Whether more entries follow.
    pub is_truncated: bool,
    /// When truncated: the last entry's key or common prefix.
    pub next_key_marker: Option<String>,
    /// When truncated and the last entry is an upload: its id.
    pub next_upload_id_marker: Option<String>,
}

/// The outcome of completing or aborting an upload.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Completed {
    /// The version the completion superseded (see [`Superseded`]); always `None` for an abort.
    pub previous: Option<ObjectVersion>,
    /// Every part the upload held, removed from the store: the caller garbage-collects those
    /// the final manifest does not reference (all of them on abort).
    pub parts: Vec<Part>,
}

/// An access key. The secret is sealed (encrypted under the vault key) by the caller; the
/// store never sees it in clear.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccessKey {
    /// The key id.
    pub id: AccessKeyId,
    /// The sealed secret.
    pub sealed_secret: Vec<u8>,
    /// The account the key acts for.
    pub owner: String,
    /// When it was created.
    pub created: UnixMillis,
    /// Whether it may authenticate.
    pub enabled: bool,
}

/// What an access key may do in one bucket.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Permissions {
    /// GET, HEAD, LIST.
    pub read: bool,
    /// PUT, DELETE, multipart.
    pub write: bool,
    /// Bucket policy and grants.
    pub admin: bool,
}

impl Permissions {
    pub(crate) fn to_bits(self) -> i64 {
        i64::from(self.read) | (i64::from(self.write) << 1) | (i64::from(self.admin) << 2)
    }

    pub(crate) fn from_bits(bits: i64) -> Self {
        Permissions {
            read: bits & 1 != 0,
            write: bits & 2 != 0,
            admin: bits & 4 != 0,
        }
    }
}

/// A grant of permissions on one bucket.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Grant {
    /// The bucket.
    pub bucket: BucketName,
    /// What is allowed.
    pub permissions: Permissions,
}

/// A provider's lifecycle state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ProviderState {
    /// Takes new shards.
    Active,
    /// Takes no new shards; its shards are being moved off.
    Draining,
    /// Holds nothing and takes nothing.
    Retired,
}

impl ProviderState {
    /// `active`, `draining` or `retired`.
    pub fn as_str(self) -> &'static str {
        match self {
            ProviderState::Active => "active",
            ProviderState::Draining => "draining",
            ProviderState::Retired => "retired",
        }
    }

    /// Parses [`as_str`](Self::as_str)'s words.
    pub fn parse(s: &str) -> Result<Self> {
        match s {
            "active" => Ok(ProviderState::Active),
            "draining" => Ok(ProviderState::Draining),
            "retired" => Ok(ProviderState::Retired),
            other => Err(MetaError::corrupt(
                "providers",
                format!("unknown state {other:?}"),
            )),
        }
    }
}

/// A provider in the registry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProviderRecord {
    /// Its name.
    pub name: ProviderName,
    /// Labels: `operator`, `jurisdiction`, `region`, `weight`, …
    pub labels: StringMap,
    /// Its state.
    pub state: ProviderState,
    /// Its connection settings, sealed by the caller; opaque here.
    pub config: Vec<u8>,
    /// Raised by the caller on every change of the record, so gateways that poll the
    /// registry see that it changed (stored as given; at most `i64::MAX`).
    pub generation: u64,
}

/// A blob to garbage-collect.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct GcBlob {
    /// The provider holding it.
    pub provider: ProviderName,
    /// The blob's name on that provider.
    pub blob: String,
}

/// A queued garbage-collection entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GcEntry {
    /// The blob.
    pub blob: GcBlob,
    /// When it was first enqueued.
    pub enqueued: UnixMillis,
}

/// A shard that needs repair: missing when its object was written, or found corrupt or
/// missing on read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RepairItem {
    /// The provider and blob name of the shard (where it was meant to be written, if it
    /// never was). Identifies the entry in the queue.
    pub blob: GcBlob,
    /// The bucket of the object version the shard belongs to.
    pub bucket: BucketName,
    /// The object's key.
    pub key: ObjectKey,
    /// The version the shard belongs to.
    pub version_id: VersionId,
    /// Why it needs repair: `"missing"`, `"corrupt"`, `"unwritten"`, …; opaque here (no NUL).
    pub reason: String,
}

/// A queued repair entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RepairEntry {
    /// The shard and what it belongs to, as first enqueued.
    pub item: RepairItem,
    /// When it was first enqueued.
    pub enqueued: UnixMillis,
}
