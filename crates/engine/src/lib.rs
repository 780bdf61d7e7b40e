//! Archipel's engine: turns the codec, the providers and the metadata store into the five
//! promises — any `m` providers can vanish and every acknowledged object stays readable, no
//! provider sees plaintext or names, and a slow provider does not slow reads.
//!
//! * [`placement`]: per-bucket [`Policy`] (k, m, write quorum, label rules) and where shards go.
//! * [`Engine`]: buckets, streaming PUT (encode as the body arrives, shards to `k + m`
//!   providers in parallel, quorum, spares, commit), GET/HEAD (ranged, the `k` best
//!   providers, hedging past slow ones, every chunk verified, degraded decode), multipart
//!   uploads (each part encoded as it arrives, completion is a metadata operation), deletes,
//!   the garbage-collection queue, the orphan scan, and scrubbing (verify every shard).
//!   Writes never wait on a straggling provider past a bounded patience.
//! * repair: rebuilding shards queued for repair (never written, missing, corrupt) onto their
//!   provider or a spare, most endangered first, and the inventory that finds missing ones.
//! * audit: sampled ranged reads of one provider's chunks, each verified by its tag, and the
//!   confidence bound they give that the provider still holds its shards.
//! * drain: moving a provider's shards elsewhere (copied and verified, or rebuilt), under the
//!   bucket's rules, and the census of where every shard is (placement report, exit plan).
//! * [`health`]: recent latency and failures per provider, used to choose and hedge reads.
//! * [`bucket`]: typed bucket settings (CORS, public read) kept in the bucket record.
//! * [`access`]: S3 access keys (secrets sealed under the master key) and per-bucket grants.
//!
//! # Architecture invariants
//!
//! * An object version is visible iff its manifest is committed in the metadata store, and the
//!   commit happens only after its shards are durable on the write quorum. A failure at any
//!   point before leaves only orphans: blobs the GC queue or the orphan scan reclaims.
//! * Memory per request is bounded by the stripe size times the pipeline depth, never by the
//!   object size: bodies stream through bounded channels in both directions.
//! * No byte is returned as object data before its chunk's AEAD tag verified; with fewer than
//!   `k` usable shards a read fails with [`EngineError::Unavailable`], never with wrong data.
//! * Every shard, manifest and data key is produced by the codec; the engine supplies the
//!   randomness (ids, keys, nonces) and the clock.

pub mod access;
mod audit;
pub mod bucket;
mod drain;
mod engine;
pub mod error;
mod gc;
pub mod health;
mod journal;
mod multipart;
mod object;
pub mod placement;
mod read;
mod repair;
mod scrub;
mod write;

pub use access::{AccessKeyInfo, NewAccessKey};
pub use archipel_meta::Permissions;
pub use audit::{
    AuditOutcome, AuditPick, AuditSampling, AuditVerdict, present_lower_bound, samples_needed,
};
pub use bucket::{BucketSettings, CorsRule};
pub use drain::{BucketCensus, Census, Held, MoveReport, rules_text};
pub use engine::{Engine, EngineOptions, OpenObject, ProviderSlot};
pub use error::{EngineError, Result};
pub use gc::{GcReport, JobHandle, OrphanReport};
pub use journal::{
    CompactReport, JOURNAL_PREFIX, JournalRead, JournalSegmentRead, Readability, SNAPSHOT_PREFIX,
    ShardCensus, SnapshotFound, VAULT_HEADER_BLOB,
};
pub use multipart::{MAX_PART_NUMBER, PartOutcome};
pub use object::{
    Body, BodyCheck, ByteRange, GetOutput, LateHeaders, ObjectInfo, PutOptions, PutOutcome,
};
pub use placement::{
    Placement, PlacementError, PlacementRules, Policy, ProviderInfo, ProviderState,
};
pub use read::RepairReason;
pub use repair::{InventoryReport, RepairOptions, RepairReport, RepairStats};
pub use scrub::ScrubReport;
