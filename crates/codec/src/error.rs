//! The codec's one error type.
//!
//! Every decoder of untrusted bytes returns [`CodecError`]; none of them panics. Variants carry
//! enough context (which format, which stripe, which chunk) for the engine to decide what to do:
//! a [`CodecError::NotEnoughChunks`] is a degraded read that ran out of shards, an
//! [`CodecError::Integrity`] is tampering or bit rot, a [`CodecError::WrongKey`] is an operator
//! error.

use crate::ids::{KeyId, ShardIdx};

/// The byte formats the codec owns; named in errors so a message says what was being read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Format {
    /// The vault header (`ARCV`).
    VaultHeader,
    /// A wrapped data key.
    WrappedKey,
    /// The header at the start of every shard (`ARCS`).
    ShardHeader,
    /// The trailer at the end of every shard (`ARCT`).
    ShardTrailer,
    /// An object version's manifest (`ARCM`).
    Manifest,
    /// A key file.
    KeyFile,
    /// A share of a master key (`archipel-share-1 …`).
    KeyShare,
}

impl std::fmt::Display for Format {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Format::VaultHeader => "vault header",
            Format::WrappedKey => "wrapped key",
            Format::ShardHeader => "shard header",
            Format::ShardTrailer => "shard trailer",
            Format::Manifest => "manifest",
            Format::KeyFile => "key file",
            Format::KeyShare => "key share",
        })
    }
}

/// Everything that can go wrong while encoding or decoding.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CodecError {
    /// The bytes are not a well-formed instance of the format (truncated, bad magic, a length
    /// that points outside the input, an out-of-range value, …).
    #[error("malformed {format}: {reason}")]
    Malformed {
        /// What was being decoded.
        format: Format,
        /// What was wrong, for humans.
        reason: String,
    },
    /// The bytes were written by a newer, incompatible major version of Archipel.
    #[error(
        "{format} has format version {found_major}.{found_minor}; this build reads major version {supported_major} (upgrade Archipel)"
    )]
    UnsupportedVersion {
        /// What was being decoded.
        format: Format,
        /// Major version found in the bytes.
        found_major: u8,
        /// Minor version found in the bytes.
        found_minor: u8,
        /// The only major version this build understands.
        supported_major: u8,
    },
    /// An authentication tag or checksum did not verify: the bytes were tampered with, rotted,
    /// or belong somewhere else (another stripe, chunk, segment or key).
    #[error("integrity check failed on {what}")]
    Integrity {
        /// What failed to verify.
        what: String,
    },
    /// The key is not the one these bytes were sealed under.
    #[error("wrong key: the data was sealed under key {expected}, but key {found} was supplied")]
    KeyMismatch {
        /// The key id recorded in the bytes.
        expected: KeyId,
        /// The key id of the key supplied.
        found: KeyId,
    },
    /// The passphrase or key file does not open this vault.
    #[error("wrong passphrase or key file for this vault")]
    WrongKey,
    /// Fewer than `k` chunks of a stripe were present and intact.
    #[error(
        "stripe {stripe}: only {usable} of the {needed} chunks needed are usable (missing: {}; corrupt: {})",
        list(.missing),
        list(.corrupt)
    )]
    NotEnoughChunks {
        /// Stripe index within the segment.
        stripe: u64,
        /// Chunks that verified.
        usable: usize,
        /// Chunks needed (`k`).
        needed: usize,
        /// Chunk indices that were not supplied.
        missing: Vec<ShardIdx>,
        /// Chunk indices whose tag did not verify.
        corrupt: Vec<ShardIdx>,
    },
    /// Codec parameters out of range (k, m, chunk length, stripe size).
    #[error("invalid codec parameters: {0}")]
    InvalidParams(String),
    /// The caller broke an API precondition (wrong buffer count, stripe index out of range, …).
    #[error("invalid input: {0}")]
    InvalidInput(String),
    /// A field is too large for its encoding (an object key longer than 65,535 bytes, …).
    #[error("{field} is too large ({len} bytes, at most {max})")]
    TooLarge {
        /// Which field.
        field: &'static str,
        /// Its length.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// The key-derivation function failed (bad parameters).
    #[error("key derivation failed: {0}")]
    Kdf(String),
    /// The cryptographic library reported an unexpected failure.
    #[error("cryptographic failure: {0}")]
    Crypto(&'static str),
}

impl CodecError {
    pub(crate) fn malformed(format: Format, reason: impl Into<String>) -> Self {
        CodecError::Malformed {
            format,
            reason: reason.into(),
        }
    }

    pub(crate) fn integrity(what: impl Into<String>) -> Self {
        CodecError::Integrity { what: what.into() }
    }

    /// True for errors that mean "these bytes are bad" (tampering, rot, truncation) rather than
    /// "the caller is wrong": the engine answers them by reading another shard and repairing.
    pub fn is_corruption(&self) -> bool {
        matches!(
            self,
            CodecError::Malformed { .. } | CodecError::Integrity { .. }
        )
    }
}

fn list(idx: &[ShardIdx]) -> String {
    if idx.is_empty() {
        return "none".into();
    }
    idx.iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

/// Shorthand for results in this crate.
pub type Result<T, E = CodecError> = std::result::Result<T, E>;
