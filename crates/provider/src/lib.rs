//! Storage providers for Archipel: one small [`Provider`] trait (blobs in, blobs out; see its
//! `# Contract`), the implementations — a local directory ([`LocalDir`]), and any
//! S3-compatible or WebDAV service ([`Remote`]) — and [`layers`] that wrap any provider: retry with backoff and jitter,
//! timeouts, a concurrency limit, metrics, and fault injection for tests.
//!
//! # Architecture invariant
//!
//! Providers know nothing of objects, buckets, keys, shards or each other: they move opaque
//! blobs with random names. Everything a provider sees was produced by the codec.

pub mod error;
pub mod layers;
pub mod local;
pub mod name;
pub mod provider;
pub mod remote;

pub use error::{ErrorKind, ProviderError, Result};
pub use layers::{Fault, FaultLayer, Limit, Metrics, MetricsSnapshot, Retry, RetryPolicy, Timeout};
pub use local::{LocalDir, LocalOptions};
pub use name::BlobName;
pub use provider::{
    BlobMeta, ByteStream, Capabilities, ListPage, Provider, ProviderExt, PutBody, PutMode,
};
pub use remote::{Remote, S3, S3Config, WebDavConfig};
