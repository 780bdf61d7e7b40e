//! Whole-segment helpers over in-memory shards: encode a plaintext into complete shard blobs
//! (header, chunks, trailer) and decode any byte range back from whichever shards are at hand.
//!
//! The engine streams stripe by stripe with [`SegmentEncoder`] and [`SegmentDecoder`]; these
//! helpers are the same pipeline for tests, fixtures, benchmarks and the CLI's round-trip demo.
//! They hold whole shards in memory, so they are for small data.

use std::ops::Range;

use crate::error::{CodecError, Result};
use crate::ids::ShardIdx;
use crate::keys::DataKey;
use crate::params::SegmentLayout;
use crate::shard::{ShardHeader, ShardIdentity, ShardTrailer};
use crate::stripe::{EncodedStripe, SegmentDecoder, SegmentEncoder, SegmentSpec, StripeReport};
use crate::wrap::WrappedKey;

/// A segment encoded into complete shard blobs.
#[derive(Debug, Clone)]
pub struct EncodedSegment {
    /// Shard `i`'s full contents, for `i` in `0..k+m`.
    pub shards: Vec<Vec<u8>>,
    /// Length of every shard's header.
    pub header_len: usize,
    /// Plaintext length.
    pub len: u64,
}

/// Encodes `plaintext` as one segment: `k + m` shard blobs, each `header ‖ chunks ‖ trailer`.
pub fn encode_segment(
    spec: SegmentSpec,
    key: &DataKey,
    wrapped_key: &WrappedKey,
    identity: &ShardIdentity,
    plaintext: &[u8],
) -> Result<EncodedSegment> {
    let mut enc = SegmentEncoder::new(spec, key)?;
    let n = spec.params.n();
    let mut shards = Vec::with_capacity(n);
    let mut header_len = 0;
    for i in 0..n {
        let h = ShardHeader::seal(&enc, ShardIdx(i as u8), wrapped_key, identity)?;
        header_len = h.len();
        let total =
            SegmentLayout::new(spec.params, plaintext.len() as u64, header_len as u64).shard_len();
        let mut shard = Vec::with_capacity(usize::try_from(total).unwrap_or(0));
        shard.extend_from_slice(&h);
        shards.push(shard);
    }
    let mut stripe = EncodedStripe::new();
    let mut input = plaintext;
    let append = |stripe: &EncodedStripe, shards: &mut Vec<Vec<u8>>| {
        for (shard, chunk) in shards.iter_mut().zip(stripe.chunks()) {
            shard.extend_from_slice(chunk);
        }
    };
    while !input.is_empty() {
        if enc.push(&mut input, &mut stripe)? {
            append(&stripe, &mut shards);
        }
    }
    let summary = enc.finish(&mut stripe)?;
    append(&stripe, &mut shards);
    let trailer = ShardTrailer {
        len: summary.len,
        stripes: summary.stripes,
    };
    for (i, shard) in shards.iter_mut().enumerate() {
        shard.extend_from_slice(&ShardTrailer::seal(&enc, ShardIdx(i as u8), trailer)?);
    }
    Ok(EncodedSegment {
        shards,
        header_len,
        len: summary.len,
    })
}

/// Decodes plaintext bytes `range` of a segment from whichever whole shards are present
/// (`shards[i]` is shard `i`, or `None`). Only the stripes the range touches are decoded.
/// Returns the bytes and one report per decoded stripe.
pub fn decode_segment_range(
    spec: SegmentSpec,
    key: &DataKey,
    len: u64,
    header_len: usize,
    shards: &[Option<&[u8]>],
    range: Range<u64>,
) -> Result<(Vec<u8>, Vec<StripeReport>)> {
    let mut dec = SegmentDecoder::new(spec, key, len, header_len as u64)?;
    let layout: SegmentLayout = *dec.layout();
    if range.start > range.end || range.end > len {
        return Err(CodecError::InvalidInput(format!(
            "range {}..{} outside segment of {len} bytes",
            range.start, range.end
        )));
    }
    let stripes = if len == 0 {
        0..1
    } else {
        layout.stripes_for(range.clone())
    };
    let mut out = Vec::with_capacity((range.end - range.start) as usize);
    let mut reports = Vec::new();
    let mut buf = Vec::new();
    for s in stripes {
        let off = layout.chunk_offset(s) as usize;
        let end = off + layout.chunk_stored_len(s);
        let chunks: Vec<Option<&[u8]>> = shards
            .iter()
            .map(|sh| sh.and_then(|b| b.get(off..end)))
            .collect();
        buf.clear();
        reports.push(dec.decode_stripe(s, &chunks, &mut buf)?);
        let start = layout.stripe_start(s);
        let lo = range.start.saturating_sub(start) as usize;
        let hi = ((range.end - start) as usize).min(buf.len());
        if lo < hi {
            out.extend_from_slice(&buf[lo..hi]);
        }
    }
    Ok((out, reports))
}
