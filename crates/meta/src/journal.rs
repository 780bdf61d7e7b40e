//! The journal: every mutation of durable metadata as a record, written to the providers so
//! that the key and the providers are enough to rebuild the store (promise 5; decision 0012).
//!
//! * [`Record`]: one mutation, stated as the resulting state (a bucket as it now is, the
//!   version that is now current, …), so applying a record twice is applying it once.
//! * [`Journaled`]: a [`MetaStore`] decorator. A mutation commits in the wrapped store first
//!   (which decides every condition), its record is queued while the key's stripe lock is held
//!   (so records of one key are queued in the order the store committed them), and the call
//!   returns only once a [`JournalSink`] has made the segment holding the record durable. One
//!   flusher batches whatever is queued while the previous segment is being written (group
//!   commit): under load one segment carries many records.
//! * [`Segment`]: the plaintext of one journal segment — run, number and records — encoded by
//!   [`Segment::encode`] and decoded (from authenticated bytes) by [`Segment::decode`].
//! * [`apply`]: replays one record into a store being rebuilt.
//!
//! Not journaled: the GC and repair queues (the orphan scan and the inventory rebuild them),
//! leases, job and service checkpoints, the vault header (it is on the providers by itself).

use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use tokio::sync::{mpsc, oneshot, watch};

use crate::error::{MetaError, Result};
use crate::store::MetaStore;
use crate::types::{
    AccessKey, AccessKeyId, Bucket, BucketName, CheckpointName, CommitCondition, Completed,
    DeleteCondition, ETag, GcBlob, GcEntry, Grant, ListQuery, NewUpload, NewVersion, ObjectKey,
    ObjectPage, ObjectVersion, Part, PartPage, PartQuery, Permissions, ProviderName,
    ProviderRecord, ProviderState, RepairEntry, RepairItem, Superseded, UnixMillis, Upload,
    UploadId, UploadPage, UploadQuery, UploadRef, VersionId,
};

/// Checkpoints that are not journaled (by name prefix): job and service state, leases'
/// neighbours, the journal's and recovery's own bookkeeping, the vault header, the audit's
/// daily ledger.
const UNJOURNALED_CHECKPOINTS: &[&str] = &[
    "job:",
    "service:",
    "journal:",
    "recover:",
    "vault-header",
    "audit-ledger:",
];

/// Whether the checkpoint `name` is journaled.
pub fn journals_checkpoint(name: &str) -> bool {
    !UNJOURNALED_CHECKPOINTS.iter().any(|p| name.starts_with(p)) && !name.ends_with(":anchor")
}

/// A segment is sealed once its records reach this many bytes (one record may exceed it).
pub const SEGMENT_TARGET: usize = 1 << 20;

/// How long a mutation waits for its record to become durable before it fails (the record
/// stays queued and is written once the providers answer).
pub const DURABLE_PATIENCE: Duration = Duration::from_secs(120);

/// One journaled mutation, stated as the state it leaves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Record {
    /// The bucket as it now is (created, or its policy or settings changed).
    BucketPut(Bucket),
    /// The bucket was deleted.
    BucketDelete(BucketName),
    /// `version` is now the current version of `key` (commit, multipart completion, a
    /// manifest replaced by repair or drain).
    ObjectPut {
        /// The bucket.
        bucket: BucketName,
        /// The key.
        key: ObjectKey,
        /// The version, manifest included.
        version: NewVersion,
    },
    /// The current version `version_id` of `key` was removed.
    ObjectDelete {
        /// The bucket.
        bucket: BucketName,
        /// The key.
        key: ObjectKey,
        /// The version removed.
        version_id: VersionId,
    },
    /// A multipart upload was started.
    UploadPut {
        /// The bucket.
        bucket: BucketName,
        /// The upload.
        upload: NewUpload,
    },
    /// A part was recorded.
    PartPut {
        /// The upload.
        upload: UploadRef,
        /// The part.
        part: Part,
    },
    /// The upload ended (completed or aborted).
    UploadDelete(UploadRef),
    /// The access key as it now is.
    KeyPut(AccessKey),
    /// The access key was deleted (and its grants).
    KeyDelete(AccessKeyId),
    /// The grant of `key` on `bucket` is now `permissions`.
    GrantSet {
        /// The access key.
        key: AccessKeyId,
        /// The bucket.
        bucket: BucketName,
        /// What it may do.
        permissions: Permissions,
    },
    /// The provider record as it now is.
    ProviderPut(ProviderRecord),
    /// The provider record was removed.
    ProviderDelete(ProviderName),
    /// The checkpoint as it now is.
    CheckpointPut(CheckpointName, Vec<u8>),
    /// The checkpoint was removed.
    CheckpointDelete(CheckpointName),
}

// ---- encoding ----

const SEGMENT_FORMAT: u8 = 1;

struct Out(Vec<u8>);

impl Out {
    fn u8(&mut self, v: u8) -> &mut Self {
        self.0.push(v);
        self
    }
    fn u32(&mut self, v: u32) -> &mut Self {
        self.0.extend_from_slice(&v.to_le_bytes());
        self
    }
    fn u64(&mut self, v: u64) -> &mut Self {
        self.0.extend_from_slice(&v.to_le_bytes());
        self
    }
    fn i64(&mut self, v: i64) -> &mut Self {
        self.0.extend_from_slice(&v.to_le_bytes());
        self
    }
    fn bytes(&mut self, v: &[u8]) -> &mut Self {
        self.u32(v.len() as u32);
        self.0.extend_from_slice(v);
        self
    }
    fn str(&mut self, v: &str) -> &mut Self {
        self.bytes(v.as_bytes())
    }
    fn map(&mut self, m: &crate::types::StringMap) -> &mut Self {
        self.u32(m.len() as u32);
        for (k, v) in m {
            self.str(k).str(v);
        }
        self
    }
}

struct In<'a> {
    rest: &'a [u8],
}

fn bad(why: impl Into<String>) -> MetaError {
    MetaError::corrupt("journal", why.into())
}

impl<'a> In<'a> {
    fn take(&mut self, n: usize, what: &str) -> Result<&'a [u8]> {
        let (head, tail) = self
            .rest
            .split_at_checked(n)
            .ok_or_else(|| bad(format!("truncated {what}")))?;
        self.rest = tail;
        Ok(head)
    }
    fn u8(&mut self, what: &str) -> Result<u8> {
        Ok(self.take(1, what)?[0])
    }
    fn u32(&mut self, what: &str) -> Result<u32> {
        let mut b = [0u8; 4];
        b.copy_from_slice(self.take(4, what)?);
        Ok(u32::from_le_bytes(b))
    }
    fn u64(&mut self, what: &str) -> Result<u64> {
        let mut b = [0u8; 8];
        b.copy_from_slice(self.take(8, what)?);
        Ok(u64::from_le_bytes(b))
    }
    fn i64(&mut self, what: &str) -> Result<i64> {
        let mut b = [0u8; 8];
        b.copy_from_slice(self.take(8, what)?);
        Ok(i64::from_le_bytes(b))
    }
    fn bytes(&mut self, what: &str) -> Result<Vec<u8>> {
        let n = self.u32(what)? as usize;
        Ok(self.take(n, what)?.to_vec())
    }
    fn string(&mut self, what: &str) -> Result<String> {
        String::from_utf8(self.bytes(what)?).map_err(|_| bad(format!("{what} is not UTF-8")))
    }
    fn map(&mut self, what: &str) -> Result<crate::types::StringMap> {
        let n = self.u32(what)?;
        let mut m = crate::types::StringMap::new();
        for _ in 0..n {
            let k = self.string(what)?;
            let v = self.string(what)?;
            m.insert(k, v);
        }
        Ok(m)
    }
    fn end(&self, what: &str) -> Result<()> {
        if self.rest.is_empty() {
            Ok(())
        } else {
            Err(bad(format!("{} bytes after {what}", self.rest.len())))
        }
    }
}

fn put_version(o: &mut Out, v: &NewVersion) {
    o.str(v.version_id.as_str())
        .bytes(&v.manifest)
        .u64(v.size)
        .str(v.etag.as_str())
        .i64(v.last_modified.0)
        .map(&v.user_metadata)
        .u8(u8::from(v.delete_marker));
}

fn get_version(i: &mut In<'_>) -> Result<NewVersion> {
    Ok(NewVersion {
        version_id: VersionId::new(i.string("version id")?)?,
        manifest: i.bytes("manifest")?,
        size: i.u64("size")?,
        etag: ETag::new(i.string("etag")?)?,
        last_modified: UnixMillis(i.i64("last modified")?),
        user_metadata: i.map("user metadata")?,
        delete_marker: i.u8("delete marker")? != 0,
    })
}

fn put_upload_ref(o: &mut Out, u: &UploadRef) {
    o.str(u.bucket.as_str())
        .str(u.key.as_str())
        .str(u.upload_id.as_str());
}

fn get_upload_ref(i: &mut In<'_>) -> Result<UploadRef> {
    Ok(UploadRef {
        bucket: BucketName::new(i.string("bucket")?)?,
        key: ObjectKey::new(i.string("key")?)?,
        upload_id: UploadId::new(i.string("upload id")?)?,
    })
}

impl Record {
    fn tag(&self) -> u8 {
        match self {
            Record::BucketPut(_) => 1,
            Record::BucketDelete(_) => 2,
            Record::ObjectPut { .. } => 3,
            Record::ObjectDelete { .. } => 4,
            Record::UploadPut { .. } => 5,
            Record::PartPut { .. } => 6,
            Record::UploadDelete(_) => 7,
            Record::KeyPut(_) => 8,
            Record::KeyDelete(_) => 9,
            Record::GrantSet { .. } => 10,
            Record::ProviderPut(_) => 11,
            Record::ProviderDelete(_) => 12,
            Record::CheckpointPut(..) => 13,
            Record::CheckpointDelete(_) => 14,
        }
    }

    /// Appends `tag u8 ‖ len u32 ‖ body` to `out`.
    pub fn encode_into(&self, out: &mut Vec<u8>) {
        let mut o = Out(Vec::new());
        match self {
            Record::BucketPut(b) => {
                o.str(b.name.as_str())
                    .str(&b.owner)
                    .bytes(&b.policy)
                    .i64(b.created.0)
                    .bytes(&b.settings);
            }
            Record::BucketDelete(n) => {
                o.str(n.as_str());
            }
            Record::ObjectPut {
                bucket,
                key,
                version,
            } => {
                o.str(bucket.as_str()).str(key.as_str());
                put_version(&mut o, version);
            }
            Record::ObjectDelete {
                bucket,
                key,
                version_id,
            } => {
                o.str(bucket.as_str())
                    .str(key.as_str())
                    .str(version_id.as_str());
            }
            Record::UploadPut { bucket, upload } => {
                o.str(bucket.as_str())
                    .str(upload.key.as_str())
                    .str(upload.upload_id.as_str())
                    .i64(upload.initiated.0)
                    .bytes(&upload.metadata);
            }
            Record::PartPut { upload, part } => {
                put_upload_ref(&mut o, upload);
                o.u32(part.part_number)
                    .bytes(&part.manifest)
                    .u64(part.size)
                    .str(part.etag.as_str())
                    .i64(part.last_modified.0);
            }
            Record::UploadDelete(u) => put_upload_ref(&mut o, u),
            Record::KeyPut(k) => {
                o.str(k.id.as_str())
                    .bytes(&k.sealed_secret)
                    .str(&k.owner)
                    .i64(k.created.0)
                    .u8(u8::from(k.enabled));
            }
            Record::KeyDelete(id) => {
                o.str(id.as_str());
            }
            Record::GrantSet {
                key,
                bucket,
                permissions,
            } => {
                o.str(key.as_str())
                    .str(bucket.as_str())
                    .u8(permissions.to_bits() as u8);
            }
            Record::ProviderPut(p) => {
                o.str(p.name.as_str())
                    .map(&p.labels)
                    .str(p.state.as_str())
                    .bytes(&p.config)
                    .u64(p.generation);
            }
            Record::ProviderDelete(n) => {
                o.str(n.as_str());
            }
            Record::CheckpointPut(n, data) => {
                o.str(n.as_str()).bytes(data);
            }
            Record::CheckpointDelete(n) => {
                o.str(n.as_str());
            }
        }
        out.push(self.tag());
        out.extend_from_slice(&(o.0.len() as u32).to_le_bytes());
        out.extend_from_slice(&o.0);
    }

    /// Decodes one record body of `tag`; `Ok(None)` for a tag this build does not know
    /// (skipped, as the manifest's unknown fields are).
    fn decode(tag: u8, body: &[u8]) -> Result<Option<Record>> {
        let mut i = In { rest: body };
        let r = match tag {
            1 => Record::BucketPut(Bucket {
                name: BucketName::new(i.string("bucket")?)?,
                owner: i.string("owner")?,
                policy: i.bytes("policy")?,
                created: UnixMillis(i.i64("created")?),
                settings: i.bytes("settings")?,
            }),
            2 => Record::BucketDelete(BucketName::new(i.string("bucket")?)?),
            3 => Record::ObjectPut {
                bucket: BucketName::new(i.string("bucket")?)?,
                key: ObjectKey::new(i.string("key")?)?,
                version: get_version(&mut i)?,
            },
            4 => Record::ObjectDelete {
                bucket: BucketName::new(i.string("bucket")?)?,
                key: ObjectKey::new(i.string("key")?)?,
                version_id: VersionId::new(i.string("version id")?)?,
            },
            5 => Record::UploadPut {
                bucket: BucketName::new(i.string("bucket")?)?,
                upload: NewUpload {
                    key: ObjectKey::new(i.string("key")?)?,
                    upload_id: UploadId::new(i.string("upload id")?)?,
                    initiated: UnixMillis(i.i64("initiated")?),
                    metadata: i.bytes("upload metadata")?,
                },
            },
            6 => Record::PartPut {
                upload: get_upload_ref(&mut i)?,
                part: Part {
                    part_number: i.u32("part number")?,
                    manifest: i.bytes("part manifest")?,
                    size: i.u64("part size")?,
                    etag: ETag::new(i.string("part etag")?)?,
                    last_modified: UnixMillis(i.i64("part time")?),
                },
            },
            7 => Record::UploadDelete(get_upload_ref(&mut i)?),
            8 => Record::KeyPut(AccessKey {
                id: AccessKeyId::new(i.string("access key id")?)?,
                sealed_secret: i.bytes("sealed secret")?,
                owner: i.string("owner")?,
                created: UnixMillis(i.i64("created")?),
                enabled: i.u8("enabled")? != 0,
            }),
            9 => Record::KeyDelete(AccessKeyId::new(i.string("access key id")?)?),
            10 => Record::GrantSet {
                key: AccessKeyId::new(i.string("access key id")?)?,
                bucket: BucketName::new(i.string("bucket")?)?,
                permissions: Permissions::from_bits(i64::from(i.u8("permissions")?)),
            },
            11 => Record::ProviderPut(ProviderRecord {
                name: ProviderName::new(i.string("provider")?)?,
                labels: i.map("labels")?,
                state: ProviderState::parse(&i.string("state")?)?,
                config: i.bytes("provider config")?,
                generation: i.u64("generation")?,
            }),
            12 => Record::ProviderDelete(ProviderName::new(i.string("provider")?)?),
            13 => Record::CheckpointPut(
                CheckpointName::new(i.string("checkpoint")?)?,
                i.bytes("checkpoint data")?,
            ),
            14 => Record::CheckpointDelete(CheckpointName::new(i.string("checkpoint")?)?),
            _ => return Ok(None),
        };
        i.end("record")?;
        Ok(Some(r))
    }
}

/// The plaintext of one journal segment: which run of which writer wrote it, its number in
/// that run, and its records in the order they were queued.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Segment {
    /// The writer's run (raised at every open of the vault: runs never overlap).
    pub run: u64,
    /// The segment's number within the run, from 0.
    pub number: u64,
    /// The records.
    pub records: Vec<Record>,
}

impl Segment {
    /// `format u8 ‖ run u64 ‖ number u64 ‖ count u32 ‖ records`.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::new();
        encode_header(&mut out, self.run, self.number, self.records.len() as u32);
        for r in &self.records {
            r.encode_into(&mut out);
        }
        out
    }

    /// Decodes [`Segment::encode`]'s bytes; every malformation is an error, never a panic.
    pub fn decode(bytes: &[u8]) -> Result<Segment> {
        let mut i = In { rest: bytes };
        let format = i.u8("segment format")?;
        if format != SEGMENT_FORMAT {
            return Err(bad(format!("unknown segment format {format}")));
        }
        let run = i.u64("run")?;
        let number = i.u64("segment number")?;
        let count = i.u32("record count")?;
        let mut records = Vec::new();
        for _ in 0..count {
            let tag = i.u8("record tag")?;
            let len = i.u32("record length")? as usize;
            let body = i.take(len, "record")?;
            if let Some(r) = Record::decode(tag, body)? {
                records.push(r);
            }
        }
        i.end("segment")?;
        Ok(Segment {
            run,
            number,
            records,
        })
    }
}

fn encode_header(out: &mut Vec<u8>, run: u64, number: u64, count: u32) {
    out.push(SEGMENT_FORMAT);
    out.extend_from_slice(&run.to_le_bytes());
    out.extend_from_slice(&number.to_le_bytes());
    out.extend_from_slice(&count.to_le_bytes());
}

const SEAL_FORMAT: u8 = 1;

/// The seal of a snapshot (its part 0, written once every other part is durable): the
/// journal position it was taken at and what it holds. A snapshot's other parts are
/// [`Segment`]s whose run and number are the position's.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SnapshotSeal {
    /// The run of the position.
    pub run: u64,
    /// The segment number of the position: the snapshot holds the state of every record of
    /// the segments before (`run`, `number`).
    pub number: u64,
    /// Its parts, numbered from 1.
    pub parts: u32,
    /// The records in them.
    pub records: u64,
    /// When it was taken, Unix milliseconds.
    pub taken_ms: i64,
}

impl SnapshotSeal {
    /// `format u8 ‖ run u64 ‖ number u64 ‖ parts u32 ‖ records u64 ‖ taken_ms i64`.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Out(Vec::with_capacity(37));
        out.u8(SEAL_FORMAT)
            .u64(self.run)
            .u64(self.number)
            .u32(self.parts)
            .u64(self.records)
            .i64(self.taken_ms);
        out.0
    }

    /// Decodes [`SnapshotSeal::encode`]'s bytes; every malformation is an error.
    pub fn decode(bytes: &[u8]) -> Result<SnapshotSeal> {
        let mut i = In { rest: bytes };
        let format = i.u8("seal format")?;
        if format != SEAL_FORMAT {
            return Err(bad(format!("unknown snapshot seal format {format}")));
        }
        let seal = SnapshotSeal {
            run: i.u64("run")?,
            number: i.u64("number")?,
            parts: i.u32("parts")?,
            records: i.u64("records")?,
            taken_ms: i.i64("taken")?,
        };
        i.end("seal")?;
        Ok(seal)
    }
}

// ---- the sink and the decorator ----

/// Where journal segments go: the engine writes each one to the providers, erasure-coded and
/// encrypted like an object segment.
#[async_trait]
pub trait JournalSink: Send + Sync {
    /// Makes the encoded segment `payload` (run `run`, number `number`) durable, or says why
    /// it could not.
    async fn write(
        &self,
        run: u64,
        number: u64,
        payload: Vec<u8>,
    ) -> std::result::Result<(), String>;

    /// Makes part `part` of the snapshot taken at journal position `at` durable: a
    /// [`Segment`] of state records (parts from 1), or the [`SnapshotSeal`] (part 0, last).
    async fn write_snapshot_part(
        &self,
        at: (u64, u64),
        part: u32,
        payload: Vec<u8>,
    ) -> std::result::Result<(), String> {
        let _ = (at, part, payload);
        Err("this journal sink takes no snapshots".into())
    }
}

struct Pending {
    record: Vec<u8>,
    done: oneshot::Sender<()>,
}

struct Shared {
    /// The last error of the sink, while it fails.
    failing: Mutex<Option<String>>,
    /// Segments written so far.
    written: std::sync::atomic::AtomicU64,
    /// The number of the first segment not yet durable (the one being written, or the next).
    next: std::sync::atomic::AtomicU64,
}

/// A [`MetaStore`] whose every durable mutation is also journaled through a [`JournalSink`]
/// before it returns (see the module docs).
pub struct Journaled {
    inner: Arc<dyn MetaStore>,
    tx: Mutex<Option<mpsc::UnboundedSender<Pending>>>,
    sink: watch::Sender<Option<Arc<dyn JournalSink>>>,
    stripes: Vec<tokio::sync::Mutex<()>>,
    shared: Arc<Shared>,
    flusher: Mutex<Option<tokio::task::JoinHandle<()>>>,
    run: u64,
}

impl std::fmt::Debug for Journaled {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Journaled")
            .field("run", &self.run)
            .finish_non_exhaustive()
    }
}

const STRIPES: usize = 256;

fn stripe_of(parts: &[&str]) -> usize {
    let mut h = DefaultHasher::new();
    parts.hash(&mut h);
    (h.finish() % STRIPES as u64) as usize
}

impl Journaled {
    /// Wraps `inner`; records are written as run `run` once [`set_sink`](Self::set_sink) gave
    /// the sink (mutations wait until then). Must be called within a Tokio runtime.
    pub fn new(inner: Arc<dyn MetaStore>, run: u64) -> Journaled {
        let (tx, rx) = mpsc::unbounded_channel();
        let (sink, sink_rx) = watch::channel(None);
        let shared = Arc::new(Shared {
            failing: Mutex::new(None),
            written: std::sync::atomic::AtomicU64::new(0),
            next: std::sync::atomic::AtomicU64::new(0),
        });
        let flusher = tokio::spawn(flush(rx, sink_rx, shared.clone(), run));
        Journaled {
            inner,
            tx: Mutex::new(Some(tx)),
            sink,
            stripes: (0..STRIPES).map(|_| tokio::sync::Mutex::new(())).collect(),
            shared,
            flusher: Mutex::new(Some(flusher)),
            run,
        }
    }

    /// Gives the sink; queued records are written from now on.
    pub fn set_sink(&self, sink: Arc<dyn JournalSink>) {
        self.sink.send_replace(Some(sink));
    }

    /// This writer's run.
    pub fn run(&self) -> u64 {
        self.run
    }

    /// How many segments were written.
    pub fn segments_written(&self) -> u64 {
        self.shared
            .written
            .load(std::sync::atomic::Ordering::Relaxed)
    }

    /// The journal position now: this run and the number of the first segment not yet
    /// durable. Every segment before it holds only records of mutations the store committed
    /// before this call.
    pub fn position(&self) -> (u64, u64) {
        (
            self.run,
            self.shared.next.load(std::sync::atomic::Ordering::SeqCst),
        )
    }

    /// Takes a snapshot: the state the store holds (as [`Journaled::journal_state`] with
    /// objects would journal it) written through the sink as parts of at most about
    /// [`SEGMENT_TARGET`] bytes, then sealed. It is taken at [`Journaled::position`] as of
    /// its start: replaying the segments from there over it gives what replaying the whole
    /// journal gives, mutations made while it is taken included (records are state, and
    /// each key's last record is replayed last). What it supersedes may be removed once
    /// this returns.
    pub async fn snapshot(&self) -> Result<SnapshotSeal> {
        let at = self.position();
        let sink = self
            .sink
            .borrow()
            .clone()
            .ok_or_else(|| MetaError::Unavailable {
                op: "snapshot",
                code: None,
                message: "no journal sink yet".into(),
            })?;
        let mut w = SnapshotWriter {
            sink,
            at,
            part: 0,
            records: 0,
            buf: Vec::new(),
            count: 0,
        };
        // The buckets walked are the ones the snapshot records (one created meanwhile is in
        // the journal after it, with its objects).
        let small = self.small_state().await?;
        let buckets: Vec<BucketName> = small
            .iter()
            .filter_map(|r| match r {
                Record::BucketPut(b) => Some(b.name.clone()),
                _ => None,
            })
            .collect();
        for r in &small {
            w.push(r).await?;
        }
        for b in &buckets {
            let mut after: Option<ObjectKey> = None;
            loop {
                let page = match self
                    .inner
                    .list_versions(b, after.as_ref(), crate::MAX_PAGE)
                    .await
                {
                    Err(MetaError::NoSuchBucket { .. }) => break,
                    r => r?,
                };
                let Some(last) = page.last().map(|v| v.key.clone()) else {
                    break;
                };
                for v in page {
                    w.push(&Record::ObjectPut {
                        bucket: v.bucket,
                        key: v.key,
                        version: v.version,
                    })
                    .await?;
                }
                after = Some(last);
            }
            let mut query = UploadQuery {
                max_uploads: crate::MAX_PAGE,
                ..UploadQuery::default()
            };
            loop {
                let page = match self.inner.list_uploads(b, &query).await {
                    Err(MetaError::NoSuchBucket { .. }) => break,
                    r => r?,
                };
                for u in &page.uploads {
                    for r in self.upload_records(b, &u.upload).await? {
                        w.push(&r).await?;
                    }
                }
                if !page.is_truncated {
                    break;
                }
                query.key_marker = page.next_key_marker;
                query.upload_id_marker = page.next_upload_id_marker;
            }
        }
        w.finish().await
    }

    /// The store this one journals.
    pub fn inner(&self) -> &Arc<dyn MetaStore> {
        &self.inner
    }

    /// Writes what is queued and stops the flusher; later mutations fail with
    /// [`MetaError::Closed`].
    pub async fn close(&self) {
        let tx = self
            .tx
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take();
        drop(tx);
        let handle = self
            .flusher
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take();
        if let Some(h) = handle
            && tokio::time::timeout(Duration::from_secs(30), h)
                .await
                .is_err()
        {
            // The providers did not take the last segment: what it held was never
            // acknowledged.
        }
    }

    async fn lock(&self, parts: &[&str]) -> tokio::sync::MutexGuard<'_, ()> {
        self.stripes[stripe_of(parts)].lock().await
    }

    /// Queues `records` (in order, as one unit) and returns what to await for durability.
    fn queue(&self, records: &[Record]) -> Result<Vec<oneshot::Receiver<()>>> {
        let guard = self
            .tx
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let tx = guard.as_ref().ok_or(MetaError::Closed)?;
        let mut waits = Vec::with_capacity(records.len());
        for r in records {
            let mut bytes = Vec::new();
            r.encode_into(&mut bytes);
            let (done, wait) = oneshot::channel();
            tx.send(Pending {
                record: bytes,
                done,
            })
            .map_err(|_| MetaError::Closed)?;
            waits.push(wait);
        }
        Ok(waits)
    }

    async fn durable(&self, waits: Vec<oneshot::Receiver<()>>) -> Result<()> {
        for w in waits {
            match tokio::time::timeout(DURABLE_PATIENCE, w).await {
                Ok(Ok(())) => {}
                Ok(Err(_)) => return Err(MetaError::Closed),
                Err(_) => {
                    let why = self
                        .shared
                        .failing
                        .lock()
                        .unwrap_or_else(std::sync::PoisonError::into_inner)
                        .clone()
                        .unwrap_or_else(|| "no journal sink".into());
                    return Err(MetaError::Unavailable {
                        op: "journal",
                        code: None,
                        message: format!(
                            "the change was made but its journal record is not yet on the \
                             providers after {} s: {why}",
                            DURABLE_PATIENCE.as_secs()
                        ),
                    });
                }
            }
        }
        Ok(())
    }

    /// Journals `records` for a change already made (the stripe guard still held) and waits
    /// until they are durable.
    async fn journal(
        &self,
        guard: tokio::sync::MutexGuard<'_, ()>,
        records: &[Record],
    ) -> Result<()> {
        let waits = self.queue(records)?;
        drop(guard);
        self.durable(waits).await
    }

    /// Journals `name` as the store now holds it (after a change of its policy or settings).
    async fn journal_bucket(
        &self,
        guard: tokio::sync::MutexGuard<'_, ()>,
        name: &BucketName,
    ) -> Result<()> {
        let records: Vec<Record> = self
            .inner
            .get_bucket(name)
            .await?
            .map(Record::BucketPut)
            .into_iter()
            .collect();
        self.journal(guard, &records).await
    }

    /// Journals the state the store holds now (providers, buckets, access keys and grants,
    /// journaled checkpoints and, with `objects`, every current object version and every
    /// upload in progress with its parts): what a vault written before its journal existed
    /// needs once, and what every open journals of the small state. Records are state, so
    /// journaling state that is journaled already changes nothing a replay rebuilds.
    pub async fn journal_state(&self, objects: bool) -> Result<u64> {
        let mut n = 0u64;
        let small = self.small_state().await?;
        let buckets = self.inner.list_buckets().await?;
        n += small.len() as u64;
        let waits = self.queue(&small)?;
        self.durable(waits).await?;
        if !objects {
            return Ok(n);
        }
        for b in &buckets {
            let mut query = ListQuery {
                max_keys: crate::MAX_PAGE,
                ..ListQuery::default()
            };
            loop {
                let page = match self.inner.list(&b.name, &query).await {
                    Err(MetaError::NoSuchBucket { .. }) => break,
                    r => r?,
                };
                let mut waits = Vec::new();
                for o in &page.objects {
                    let guard = self.lock(&[b.name.as_str(), o.key.as_str()]).await;
                    if let Some(v) = self.inner.get(&b.name, &o.key).await? {
                        waits.extend(self.queue(&[Record::ObjectPut {
                            bucket: v.bucket,
                            key: v.key,
                            version: v.version,
                        }])?);
                        n += 1;
                    }
                    drop(guard);
                }
                self.durable(waits).await?;
                match page.next_start_after {
                    Some(next) if page.is_truncated => query.start_after = Some(next),
                    _ => break,
                }
            }
            n += self.journal_uploads(&b.name).await?;
        }
        Ok(n)
    }

    /// The records of the small state: providers, buckets, access keys with their grants,
    /// journaled checkpoints.
    async fn small_state(&self) -> Result<Vec<Record>> {
        let mut small = Vec::new();
        for p in self.inner.list_providers().await? {
            small.push(Record::ProviderPut(p));
        }
        for b in self.inner.list_buckets().await? {
            small.push(Record::BucketPut(b));
        }
        for k in self.inner.list_access_keys().await? {
            let grants = self.inner.list_grants(&k.id).await?;
            let id = k.id.clone();
            small.push(Record::KeyPut(k));
            for g in grants {
                small.push(Record::GrantSet {
                    key: id.clone(),
                    bucket: g.bucket,
                    permissions: g.permissions,
                });
            }
        }
        let mut after: Option<CheckpointName> = None;
        loop {
            let page = self
                .inner
                .list_checkpoints("", after.as_ref(), crate::MAX_PAGE)
                .await?;
            let Some(last) = page.last().map(|(n, _)| n.clone()) else {
                break;
            };
            for (name, data) in page {
                if journals_checkpoint(name.as_str()) {
                    small.push(Record::CheckpointPut(name, data));
                }
            }
            after = Some(last);
        }
        Ok(small)
    }

    /// The records of one upload in progress: the upload and its parts (none once it is
    /// gone).
    async fn upload_records(&self, bucket: &BucketName, upload: &NewUpload) -> Result<Vec<Record>> {
        let r = UploadRef {
            bucket: bucket.clone(),
            key: upload.key.clone(),
            upload_id: upload.upload_id.clone(),
        };
        let mut records = vec![Record::UploadPut {
            bucket: bucket.clone(),
            upload: upload.clone(),
        }];
        let mut pq = PartQuery {
            after: None,
            max_parts: crate::MAX_PAGE,
        };
        loop {
            let parts = match self.inner.list_parts(&r, &pq).await {
                Err(MetaError::NoSuchUpload { .. }) => return Ok(Vec::new()),
                p => p?,
            };
            for p in parts.parts {
                records.push(Record::PartPut {
                    upload: r.clone(),
                    part: p,
                });
            }
            match parts.next_after {
                Some(a) if parts.is_truncated => pq.after = Some(a),
                _ => return Ok(records),
            }
        }
    }

    async fn journal_uploads(&self, bucket: &BucketName) -> Result<u64> {
        let mut n = 0;
        let mut query = UploadQuery {
            max_uploads: crate::MAX_PAGE,
            ..UploadQuery::default()
        };
        loop {
            let page = match self.inner.list_uploads(bucket, &query).await {
                Err(MetaError::NoSuchBucket { .. }) => return Ok(n),
                r => r?,
            };
            for u in &page.uploads {
                let r = UploadRef {
                    bucket: bucket.clone(),
                    key: u.upload.key.clone(),
                    upload_id: u.upload.upload_id.clone(),
                };
                let guard = self.lock(&[bucket.as_str(), r.key.as_str()]).await;
                let records = self.upload_records(bucket, &u.upload).await?;
                n += records.len() as u64;
                self.journal(guard, &records).await?;
            }
            if !page.is_truncated {
                return Ok(n);
            }
            query.key_marker = page.next_key_marker;
            query.upload_id_marker = page.next_upload_id_marker;
        }
    }
}

/// Writes a snapshot's parts as records come (see [`Journaled::snapshot`]).
struct SnapshotWriter {
    sink: Arc<dyn JournalSink>,
    at: (u64, u64),
    /// The last part written.
    part: u32,
    records: u64,
    /// The encoded records of the part being filled, and how many.
    buf: Vec<u8>,
    count: u32,
}

impl SnapshotWriter {
    async fn push(&mut self, r: &Record) -> Result<()> {
        r.encode_into(&mut self.buf);
        self.count += 1;
        self.records += 1;
        if self.buf.len() >= SEGMENT_TARGET {
            self.write_part().await?;
        }
        Ok(())
    }

    async fn write_part(&mut self) -> Result<()> {
        let mut payload = Vec::with_capacity(self.buf.len() + 32);
        encode_header(&mut payload, self.at.0, self.at.1, self.count);
        payload.append(&mut self.buf);
        self.count = 0;
        self.part += 1;
        self.put(self.part, payload).await
    }

    async fn put(&self, part: u32, payload: Vec<u8>) -> Result<()> {
        self.sink
            .write_snapshot_part(self.at, part, payload)
            .await
            .map_err(|e| MetaError::Unavailable {
                op: "snapshot",
                code: None,
                message: format!(
                    "snapshot {}/{} part {part} was not written: {e}",
                    self.at.0, self.at.1
                ),
            })
    }

    async fn finish(mut self) -> Result<SnapshotSeal> {
        if self.count > 0 {
            self.write_part().await?;
        }
        let seal = SnapshotSeal {
            run: self.at.0,
            number: self.at.1,
            parts: self.part,
            records: self.records,
            taken_ms: UnixMillis::now().0,
        };
        self.put(0, seal.encode()).await?;
        Ok(seal)
    }
}

/// The flusher: batches queued records into segments and writes them, one at a time, in
/// order; a segment that fails is retried until the sink takes it.
async fn flush(
    mut rx: mpsc::UnboundedReceiver<Pending>,
    mut sink: watch::Receiver<Option<Arc<dyn JournalSink>>>,
    shared: Arc<Shared>,
    run: u64,
) {
    let mut number = 0u64;
    while let Some(first) = rx.recv().await {
        let mut batch = vec![first];
        let mut size = batch[0].record.len();
        while size < SEGMENT_TARGET {
            match rx.try_recv() {
                Ok(p) => {
                    size += p.record.len();
                    batch.push(p);
                }
                Err(_) => break,
            }
        }
        let mut payload = Vec::with_capacity(size + 32);
        encode_header(&mut payload, run, number, batch.len() as u32);
        for p in &batch {
            payload.extend_from_slice(&p.record);
        }
        let s = loop {
            if let Some(s) = sink.borrow_and_update().clone() {
                break s;
            }
            if sink.changed().await.is_err() {
                return;
            }
        };
        let mut backoff = Duration::from_millis(50);
        loop {
            match s.write(run, number, payload.clone()).await {
                Ok(()) => break,
                Err(e) => {
                    *shared
                        .failing
                        .lock()
                        .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(e);
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(5));
                }
            }
        }
        *shared
            .failing
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = None;
        shared
            .written
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        number += 1;
        shared
            .next
            .store(number, std::sync::atomic::Ordering::SeqCst);
        for p in batch {
            let _ = p.done.send(());
        }
    }
}

#[async_trait]
impl MetaStore for Journaled {
    async fn create_bucket(&self, bucket: &Bucket) -> Result<()> {
        let g = self.lock(&[bucket.name.as_str()]).await;
        self.inner.create_bucket(bucket).await?;
        self.journal(g, &[Record::BucketPut(bucket.clone())]).await
    }
    async fn get_bucket(&self, name: &BucketName) -> Result<Option<Bucket>> {
        self.inner.get_bucket(name).await
    }
    async fn list_buckets(&self) -> Result<Vec<Bucket>> {
        self.inner.list_buckets().await
    }
    async fn set_bucket_policy(&self, name: &BucketName, policy: &[u8]) -> Result<()> {
        let g = self.lock(&[name.as_str()]).await;
        self.inner.set_bucket_policy(name, policy).await?;
        self.journal_bucket(g, name).await
    }
    async fn set_bucket_settings(&self, name: &BucketName, settings: &[u8]) -> Result<()> {
        let g = self.lock(&[name.as_str()]).await;
        self.inner.set_bucket_settings(name, settings).await?;
        self.journal_bucket(g, name).await
    }
    async fn delete_bucket(&self, name: &BucketName) -> Result<()> {
        let g = self.lock(&[name.as_str()]).await;
        self.inner.delete_bucket(name).await?;
        self.journal(g, &[Record::BucketDelete(name.clone())]).await
    }

    async fn commit(
        &self,
        bucket: &BucketName,
        key: &ObjectKey,
        version: &NewVersion,
        condition: &CommitCondition,
    ) -> Result<Superseded> {
        let g = self.lock(&[bucket.as_str(), key.as_str()]).await;
        let s = self.inner.commit(bucket, key, version, condition).await?;
        let r = Record::ObjectPut {
            bucket: bucket.clone(),
            key: key.clone(),
            version: version.clone(),
        };
        self.journal(g, &[r]).await?;
        Ok(s)
    }
    async fn get(&self, bucket: &BucketName, key: &ObjectKey) -> Result<Option<ObjectVersion>> {
        self.inner.get(bucket, key).await
    }
    async fn list_versions(
        &self,
        bucket: &BucketName,
        after: Option<&ObjectKey>,
        limit: usize,
    ) -> Result<Vec<ObjectVersion>> {
        self.inner.list_versions(bucket, after, limit).await
    }
    async fn delete(
        &self,
        bucket: &BucketName,
        key: &ObjectKey,
        condition: &DeleteCondition,
    ) -> Result<Superseded> {
        let g = self.lock(&[bucket.as_str(), key.as_str()]).await;
        let s = self.inner.delete(bucket, key, condition).await?;
        if let Some(prev) = &s.previous {
            let r = Record::ObjectDelete {
                bucket: bucket.clone(),
                key: key.clone(),
                version_id: prev.version.version_id.clone(),
            };
            self.journal(g, &[r]).await?;
        }
        Ok(s)
    }
    async fn replace_manifest(
        &self,
        bucket: &BucketName,
        key: &ObjectKey,
        version_id: &VersionId,
        expected: &[u8],
        manifest: &[u8],
    ) -> Result<bool> {
        let g = self.lock(&[bucket.as_str(), key.as_str()]).await;
        let done = self
            .inner
            .replace_manifest(bucket, key, version_id, expected, manifest)
            .await?;
        if done && let Some(v) = self.inner.get(bucket, key).await? {
            let r = Record::ObjectPut {
                bucket: v.bucket,
                key: v.key,
                version: v.version,
            };
            self.journal(g, &[r]).await?;
        }
        Ok(done)
    }
    async fn list(&self, bucket: &BucketName, query: &ListQuery) -> Result<ObjectPage> {
        self.inner.list(bucket, query).await
    }

    async fn create_upload(&self, bucket: &BucketName, upload: &NewUpload) -> Result<()> {
        let g = self.lock(&[bucket.as_str(), upload.key.as_str()]).await;
        self.inner.create_upload(bucket, upload).await?;
        let r = Record::UploadPut {
            bucket: bucket.clone(),
            upload: upload.clone(),
        };
        self.journal(g, &[r]).await
    }
    async fn get_upload(&self, upload: &UploadRef) -> Result<Option<Upload>> {
        self.inner.get_upload(upload).await
    }
    async fn put_part(&self, upload: &UploadRef, part: &Part) -> Result<Option<Part>> {
        let g = self
            .lock(&[upload.bucket.as_str(), upload.key.as_str()])
            .await;
        let old = self.inner.put_part(upload, part).await?;
        let r = Record::PartPut {
            upload: upload.clone(),
            part: part.clone(),
        };
        self.journal(g, &[r]).await?;
        Ok(old)
    }
    async fn list_parts(&self, upload: &UploadRef, query: &PartQuery) -> Result<PartPage> {
        self.inner.list_parts(upload, query).await
    }
    async fn list_uploads(&self, bucket: &BucketName, query: &UploadQuery) -> Result<UploadPage> {
        self.inner.list_uploads(bucket, query).await
    }
    async fn complete_upload(
        &self,
        upload: &UploadRef,
        version: &NewVersion,
        condition: &CommitCondition,
    ) -> Result<Completed> {
        let g = self
            .lock(&[upload.bucket.as_str(), upload.key.as_str()])
            .await;
        let c = self
            .inner
            .complete_upload(upload, version, condition)
            .await?;
        let records = [
            Record::ObjectPut {
                bucket: upload.bucket.clone(),
                key: upload.key.clone(),
                version: version.clone(),
            },
            Record::UploadDelete(upload.clone()),
        ];
        self.journal(g, &records).await?;
        Ok(c)
    }
    async fn abort_upload(&self, upload: &UploadRef) -> Result<Completed> {
        let g = self
            .lock(&[upload.bucket.as_str(), upload.key.as_str()])
            .await;
        let c = self.inner.abort_upload(upload).await?;
        self.journal(g, &[Record::UploadDelete(upload.clone())])
            .await?;
        Ok(c)
    }

    async fn create_access_key(&self, key: &AccessKey) -> Result<()> {
        let g = self.lock(&["\0key", key.id.as_str()]).await;
        self.inner.create_access_key(key).await?;
        self.journal(g, &[Record::KeyPut(key.clone())]).await
    }
    async fn get_access_key(&self, id: &AccessKeyId) -> Result<Option<AccessKey>> {
        self.inner.get_access_key(id).await
    }
    async fn list_access_keys(&self) -> Result<Vec<AccessKey>> {
        self.inner.list_access_keys().await
    }
    async fn delete_access_key(&self, id: &AccessKeyId) -> Result<bool> {
        let g = self.lock(&["\0key", id.as_str()]).await;
        let existed = self.inner.delete_access_key(id).await?;
        if existed {
            self.journal(g, &[Record::KeyDelete(id.clone())]).await?;
        }
        Ok(existed)
    }
    async fn set_grant(
        &self,
        key: &AccessKeyId,
        bucket: &BucketName,
        permissions: Permissions,
    ) -> Result<()> {
        let g = self.lock(&["\0key", key.as_str()]).await;
        self.inner.set_grant(key, bucket, permissions).await?;
        let r = Record::GrantSet {
            key: key.clone(),
            bucket: bucket.clone(),
            permissions,
        };
        self.journal(g, &[r]).await
    }
    async fn list_grants(&self, key: &AccessKeyId) -> Result<Vec<Grant>> {
        self.inner.list_grants(key).await
    }

    async fn put_provider(&self, provider: &ProviderRecord) -> Result<()> {
        let g = self.lock(&["\0provider", provider.name.as_str()]).await;
        self.inner.put_provider(provider).await?;
        self.journal(g, &[Record::ProviderPut(provider.clone())])
            .await
    }
    async fn get_provider(&self, name: &ProviderName) -> Result<Option<ProviderRecord>> {
        self.inner.get_provider(name).await
    }
    async fn list_providers(&self) -> Result<Vec<ProviderRecord>> {
        self.inner.list_providers().await
    }
    async fn delete_provider(&self, name: &ProviderName) -> Result<bool> {
        let g = self.lock(&["\0provider", name.as_str()]).await;
        let existed = self.inner.delete_provider(name).await?;
        if existed {
            self.journal(g, &[Record::ProviderDelete(name.clone())])
                .await?;
        }
        Ok(existed)
    }

    async fn enqueue_gc(&self, blobs: &[GcBlob], now: UnixMillis) -> Result<()> {
        self.inner.enqueue_gc(blobs, now).await
    }
    async fn peek_gc(&self, after: Option<&GcEntry>, limit: usize) -> Result<Vec<GcEntry>> {
        self.inner.peek_gc(after, limit).await
    }
    async fn remove_gc(&self, blobs: &[GcBlob]) -> Result<u64> {
        self.inner.remove_gc(blobs).await
    }
    async fn enqueue_repair(&self, items: &[RepairItem], now: UnixMillis) -> Result<()> {
        self.inner.enqueue_repair(items, now).await
    }
    async fn peek_repair(
        &self,
        after: Option<&RepairEntry>,
        limit: usize,
    ) -> Result<Vec<RepairEntry>> {
        self.inner.peek_repair(after, limit).await
    }
    async fn remove_repair(&self, blobs: &[GcBlob]) -> Result<u64> {
        self.inner.remove_repair(blobs).await
    }
    async fn count_repair(&self) -> Result<u64> {
        self.inner.count_repair().await
    }

    async fn put_checkpoint(&self, name: &CheckpointName, data: &[u8]) -> Result<()> {
        if !journals_checkpoint(name.as_str()) {
            return self.inner.put_checkpoint(name, data).await;
        }
        let g = self.lock(&["\0checkpoint", name.as_str()]).await;
        self.inner.put_checkpoint(name, data).await?;
        self.journal(g, &[Record::CheckpointPut(name.clone(), data.to_vec())])
            .await
    }
    async fn get_checkpoint(&self, name: &CheckpointName) -> Result<Option<Vec<u8>>> {
        self.inner.get_checkpoint(name).await
    }
    async fn delete_checkpoint(&self, name: &CheckpointName) -> Result<bool> {
        if !journals_checkpoint(name.as_str()) {
            return self.inner.delete_checkpoint(name).await;
        }
        let g = self.lock(&["\0checkpoint", name.as_str()]).await;
        let existed = self.inner.delete_checkpoint(name).await?;
        if existed {
            self.journal(g, &[Record::CheckpointDelete(name.clone())])
                .await?;
        }
        Ok(existed)
    }
    async fn list_checkpoints(
        &self,
        prefix: &str,
        after: Option<&CheckpointName>,
        limit: usize,
    ) -> Result<Vec<(CheckpointName, Vec<u8>)>> {
        self.inner.list_checkpoints(prefix, after, limit).await
    }

    async fn take_lease(
        &self,
        name: &CheckpointName,
        owner: &str,
        now: UnixMillis,
        until: UnixMillis,
    ) -> Result<bool> {
        self.inner.take_lease(name, owner, now, until).await
    }
    async fn release_lease(&self, name: &CheckpointName, owner: &str) -> Result<bool> {
        self.inner.release_lease(name, owner).await
    }
}

// ---- replay ----

/// What applying a record did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Applied {
    /// The store changed (or already held the record's state).
    Done,
    /// The record refers to something the rebuilt store no longer has (an object of a bucket
    /// deleted later in the journal): nothing to do.
    Moot,
}

/// Applies `record` to `store` (a store being rebuilt, written by nobody else). Records are
/// state: applying one again is harmless, so a recovery killed half-way may replay a segment.
pub async fn apply(store: &dyn MetaStore, record: &Record) -> Result<Applied> {
    use Applied::{Done, Moot};
    let moot = |e: MetaError| match e {
        MetaError::NoSuchBucket { .. }
        | MetaError::NoSuchUpload { .. }
        | MetaError::NotFound { .. } => Ok(Moot),
        e => Err(e),
    };
    match record {
        Record::BucketPut(b) => match store.get_bucket(&b.name).await? {
            None => store.create_bucket(b).await.map(|()| Done),
            Some(_) => {
                store.set_bucket_policy(&b.name, &b.policy).await?;
                store.set_bucket_settings(&b.name, &b.settings).await?;
                Ok(Done)
            }
        },
        Record::BucketDelete(name) => {
            if store.get_bucket(name).await?.is_none() {
                return Ok(Moot);
            }
            // Records of one key are in commit order; records of different keys may not be:
            // the delete of the bucket's last object can follow the bucket's delete. What the
            // bucket still holds here was deleted before it.
            empty_bucket(store, name).await?;
            match store.delete_bucket(name).await {
                Ok(()) => Ok(Done),
                Err(e) => moot(e),
            }
        }
        Record::ObjectPut {
            bucket,
            key,
            version,
        } => match store
            .commit(bucket, key, version, &CommitCondition::Unconditional)
            .await
        {
            Ok(_) => Ok(Done),
            Err(e) => moot(e),
        },
        Record::ObjectDelete {
            bucket,
            key,
            version_id,
        } => match store.get(bucket, key).await {
            Ok(Some(v)) if &v.version.version_id == version_id => {
                store
                    .delete(bucket, key, &DeleteCondition::Unconditional)
                    .await?;
                Ok(Done)
            }
            Ok(_) => Ok(Moot),
            Err(e) => moot(e),
        },
        Record::UploadPut { bucket, upload } => match store.create_upload(bucket, upload).await {
            Ok(()) | Err(MetaError::Duplicate { .. }) => Ok(Done),
            Err(e) => moot(e),
        },
        Record::PartPut { upload, part } => match store.put_part(upload, part).await {
            Ok(_) => Ok(Done),
            Err(e) => moot(e),
        },
        Record::UploadDelete(upload) => match store.abort_upload(upload).await {
            Ok(_) => Ok(Done),
            Err(e) => moot(e),
        },
        Record::KeyPut(k) => {
            if store.get_access_key(&k.id).await?.is_some() {
                let grants = store.list_grants(&k.id).await?;
                store.delete_access_key(&k.id).await?;
                store.create_access_key(k).await?;
                for g in grants {
                    store.set_grant(&k.id, &g.bucket, g.permissions).await?;
                }
            } else {
                store.create_access_key(k).await?;
            }
            Ok(Done)
        }
        Record::KeyDelete(id) => {
            store.delete_access_key(id).await?;
            Ok(Done)
        }
        Record::GrantSet {
            key,
            bucket,
            permissions,
        } => match store.set_grant(key, bucket, *permissions).await {
            Ok(()) => Ok(Done),
            Err(e) => moot(e),
        },
        Record::ProviderPut(p) => store.put_provider(p).await.map(|()| Done),
        Record::ProviderDelete(n) => store.delete_provider(n).await.map(|_| Done),
        Record::CheckpointPut(n, data) => store.put_checkpoint(n, data).await.map(|()| Done),
        Record::CheckpointDelete(n) => store.delete_checkpoint(n).await.map(|_| Done),
    }
}

async fn empty_bucket(store: &dyn MetaStore, name: &BucketName) -> Result<()> {
    loop {
        let page = store
            .list(
                name,
                &ListQuery {
                    max_keys: crate::MAX_PAGE,
                    ..ListQuery::default()
                },
            )
            .await?;
        if page.objects.is_empty() {
            break;
        }
        for o in page.objects {
            store
                .delete(name, &o.key, &DeleteCondition::Unconditional)
                .await?;
        }
    }
    loop {
        let page = store
            .list_uploads(
                name,
                &UploadQuery {
                    max_uploads: crate::MAX_PAGE,
                    ..UploadQuery::default()
                },
            )
            .await?;
        if page.uploads.is_empty() {
            return Ok(());
        }
        for u in page.uploads {
            store
                .abort_upload(&UploadRef {
                    bucket: name.clone(),
                    key: u.upload.key,
                    upload_id: u.upload.upload_id,
                })
                .await?;
        }
    }
}
