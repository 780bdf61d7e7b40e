//! Archipel's codec: pure, sans-IO transformations between plaintext objects and the opaque
//! bytes that providers store.
//!
//! * [`keys`]: the vault master key (Argon2id passphrase or key file), keys derived from it,
//!   per-segment data keys; [`WrappedKey`] seals a data key under the master key.
//! * [`SegmentEncoder`] / [`SegmentDecoder`]: stripes of plaintext → Reed–Solomon `k + m`
//!   chunks → AES-256-GCM, and back from any `k` chunks, reporting missing and corrupt ones.
//! * [`keyshare`]: shares of the master key (Shamir over GF(2^8)), as lines to write down.
//! * Formats: [`VaultHeader`], [`ShardHeader`], [`ShardTrailer`], [`Manifest`], each versioned
//!   and specified byte by byte in `docs/format.md`.
//!
//! # Architecture invariants
//!
//! * No I/O, no async, no clocks, no randomness: ids, keys, nonces and timestamps are passed
//!   in, so every output is a deterministic function of the inputs.
//! * Every decoder of untrusted bytes returns an error rather than panicking, and nothing is
//!   returned as data before its AEAD tag or MAC has verified.
//! * Providers only ever see ciphertext, tags, random ids and codec parameters: never keys,
//!   names, metadata or plaintext lengths (beyond what shard sizes imply).

pub mod aead;
mod erasure;
pub mod error;
pub mod ids;
pub mod keys;
pub mod keyshare;
pub mod manifest;
pub mod names;
pub mod params;
pub mod shard;
pub mod stripe;
pub mod vault;
pub mod whole;
mod wire;
pub mod wrap;

pub use error::{CodecError, Format, Result};
pub use ids::{KeyId, SegmentId, ShardIdx, VersionId};
pub use keys::{DataKey, KdfParams, ManifestKey, MasterKey};
pub use keyshare::KeyShare;
pub use manifest::{Manifest, ManifestSegment, ShardPlacement};
pub use names::{MetaBlob, MetaNamer};
pub use params::{CodecParams, DEFAULT_STRIPE_SIZE, SegmentLayout};
pub use shard::{ShardHeader, ShardIdentity, ShardTrailer};
pub use stripe::{
    EncodedStripe, SegmentDecoder, SegmentEncoder, SegmentSpec, SegmentSummary, StripeReport,
};
pub use vault::{KeySource, VaultHeader};
pub use whole::{EncodedSegment, decode_segment_range, encode_segment};
pub use wrap::WrappedKey;
