//! Codec parameters and the layout arithmetic of a segment: where each stripe's chunk sits in
//! a shard, how long the last stripe is, which bytes a range read needs.
//!
//! A segment of `len` plaintext bytes is cut into stripes of `k × chunk_len` bytes; the last
//! stripe holds the remainder (an empty segment has one empty stripe, so "the last stripe"
//! always exists and truncation is always detectable). Every chunk of a full stripe is
//! `chunk_len` bytes; every chunk of the last stripe is `ceil(last_len / k)` bytes, so a 1-byte
//! object costs `k + m` one-byte chunks, not `k + m` full ones. On a provider each chunk is
//! followed by its 16-byte tag.

use std::ops::Range;

use crate::aead::TAG_LEN;
use crate::error::{CodecError, Result};

/// Default plaintext bytes per stripe (see docs/decisions/0002-stripe-size.md).
pub const DEFAULT_STRIPE_SIZE: usize = 256 * 1024;
/// Largest supported `k + m`.
pub const MAX_SHARDS: usize = 255;
/// Largest chunk length (64 MiB): bounds the memory a forged header can ask for.
pub const MAX_CHUNK_LEN: u32 = 64 * 1024 * 1024;

/// Erasure and framing parameters of one segment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct CodecParams {
    k: u8,
    m: u8,
    chunk_len: u32,
}

impl CodecParams {
    /// `k` data + `m` parity shards, `chunk_len` plaintext bytes per chunk of a full stripe.
    pub fn new(k: usize, m: usize, chunk_len: usize) -> Result<Self> {
        if k == 0 {
            return Err(CodecError::InvalidParams(
                "k (data shards) must be at least 1".into(),
            ));
        }
        if k + m > MAX_SHARDS {
            return Err(CodecError::InvalidParams(format!(
                "k + m = {} exceeds {MAX_SHARDS}",
                k + m
            )));
        }
        if chunk_len == 0 || chunk_len > MAX_CHUNK_LEN as usize {
            return Err(CodecError::InvalidParams(format!(
                "chunk length {chunk_len} outside 1..={MAX_CHUNK_LEN}"
            )));
        }
        Ok(CodecParams {
            k: k as u8,
            m: m as u8,
            chunk_len: chunk_len as u32,
        })
    }

    /// `k` data + `m` parity shards with stripes of about `stripe_size` plaintext bytes: the
    /// chunk length is `stripe_size / k` rounded up to a multiple of 64 bytes.
    pub fn with_stripe_size(k: usize, m: usize, stripe_size: usize) -> Result<Self> {
        if k == 0 {
            return Err(CodecError::InvalidParams(
                "k (data shards) must be at least 1".into(),
            ));
        }
        let chunk = stripe_size.div_ceil(k).div_ceil(64).max(1) * 64;
        Self::new(k, m, chunk)
    }

    /// Data shards.
    pub fn k(&self) -> usize {
        self.k as usize
    }
    /// Parity shards.
    pub fn m(&self) -> usize {
        self.m as usize
    }
    /// Total shards, `k + m`.
    pub fn n(&self) -> usize {
        self.k() + self.m()
    }
    /// Plaintext bytes per chunk of a full stripe.
    pub fn chunk_len(&self) -> usize {
        self.chunk_len as usize
    }
    /// Plaintext bytes per full stripe, `k × chunk_len`.
    pub fn stripe_len(&self) -> usize {
        self.k() * self.chunk_len()
    }
}

/// The layout of one segment of known plaintext length.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SegmentLayout {
    params: CodecParams,
    len: u64,
    header_len: u64,
}

impl SegmentLayout {
    /// Layout of a segment of `len` plaintext bytes whose shards start with a `header_len`-byte
    /// shard header.
    pub fn new(params: CodecParams, len: u64, header_len: u64) -> Self {
        SegmentLayout {
            params,
            len,
            header_len,
        }
    }

    /// The codec parameters.
    pub fn params(&self) -> CodecParams {
        self.params
    }
    /// Plaintext length of the segment.
    pub fn len(&self) -> u64 {
        self.len
    }
    /// True for an empty segment.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Number of stripes (at least 1).
    pub fn stripes(&self) -> u64 {
        self.len.div_ceil(self.params.stripe_len() as u64).max(1)
    }

    /// Plaintext bytes in stripe `i`.
    pub fn stripe_plain_len(&self, i: u64) -> usize {
        let s = self.params.stripe_len() as u64;
        if i + 1 < self.stripes() {
            s as usize
        } else {
            (self.len - (self.stripes() - 1) * s) as usize
        }
    }

    /// Plaintext bytes of each chunk of stripe `i`.
    pub fn chunk_plain_len(&self, i: u64) -> usize {
        if i + 1 < self.stripes() {
            self.params.chunk_len()
        } else {
            self.stripe_plain_len(i).div_ceil(self.params.k())
        }
    }

    /// Bytes of each chunk of stripe `i` on a provider (ciphertext and tag).
    pub fn chunk_stored_len(&self, i: u64) -> usize {
        self.chunk_plain_len(i) + TAG_LEN
    }

    /// Offset of stripe `i`'s chunk within every shard.
    pub fn chunk_offset(&self, i: u64) -> u64 {
        self.header_len + i * (self.params.chunk_len() + TAG_LEN) as u64
    }

    /// Offset of the shard trailer within every shard.
    pub fn trailer_offset(&self) -> u64 {
        let last = self.stripes() - 1;
        self.chunk_offset(last) + self.chunk_stored_len(last) as u64
    }

    /// Total bytes of every shard: header, chunks, trailer.
    pub fn shard_len(&self) -> u64 {
        self.trailer_offset() + crate::shard::ShardTrailer::LEN as u64
    }

    /// The stripes that hold plaintext bytes `range` (clamped to the segment).
    pub fn stripes_for(&self, range: Range<u64>) -> Range<u64> {
        let end = range.end.min(self.len);
        let start = range.start.min(end);
        if start == end {
            return 0..0;
        }
        let s = self.params.stripe_len() as u64;
        start / s..end.div_ceil(s)
    }

    /// The byte range of every shard that holds the chunks of `stripes`.
    pub fn shard_range(&self, stripes: Range<u64>) -> Range<u64> {
        if stripes.is_empty() {
            return 0..0;
        }
        let last = stripes.end - 1;
        self.chunk_offset(stripes.start)
            ..self.chunk_offset(last) + self.chunk_stored_len(last) as u64
    }

    /// Plaintext offset of the first byte of stripe `i`.
    pub fn stripe_start(&self, i: u64) -> u64 {
        i * self.params.stripe_len() as u64
    }
}
