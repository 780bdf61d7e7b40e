//! Archipel's metadata store: the index of buckets, object versions and multipart uploads,
//! access keys and grants, the provider registry, the garbage-collection and repair queues and
//! background jobs' checkpoints — and the one place where concurrent writers are decided.
//!
//! * [`MetaStore`]: the trait, with its `# Contract`; [`MetaStoreExt`]: conveniences.
//! * [`SqlMetaStore`]: the implementation, embedded SQLite in the data directory
//!   ([`SqlMetaStore::open_embedded`], the default) or PostgreSQL shared by many gateways
//!   ([`SqlMetaStore::connect_postgres`]), through one code path and one schema
//!   (docs/decisions/0004-metadata-engine.md).
//! * [`MetaError`]: every failure, with [`MetaError::is_retryable`].
//! * [`journal`]: every durable mutation as a record, written to the providers through a
//!   [`JournalSink`] by the [`Journaled`] decorator, and replayed by [`journal::apply`].
//!
//! # Architecture invariants
//!
//! * The store never interprets manifests, policies, sealed secrets or provider configs: they
//!   are opaque bytes owned by the engine and the codec.
//! * The store reads no clock for what it records: timestamps are passed in.
//! * Every call that replaces or removes a version or a part returns it, so no shard is
//!   forgotten without the caller knowing.

mod encode;
pub mod error;
pub mod journal;
mod list;
mod sql;
pub mod store;
pub mod types;

pub use error::{MetaError, Result};
pub use journal::{JournalSink, Journaled, SnapshotSeal};
pub use sql::{EmbeddedOptions, PostgresOptions, SqlMetaStore};
pub use store::{MetaStore, MetaStoreExt};
pub use types::*;
