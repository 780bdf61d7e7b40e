//! The data path: plaintext stripes in, sealed chunks out, and back.
//!
//! Encoding one stripe: split the plaintext into `k` data chunks (the last stripe's chunks are
//! shortened and zero-padded), compute `m` Reed–Solomon parity chunks over the plaintext
//! chunks, then seal each of the `k + m` chunks with AES-256-GCM under the segment's data key.
//! Coding before sealing means every chunk carries its own tag, so a corrupt chunk is found by
//! its tag alone, without trial decoding (docs/decisions/0001-codec-crates-and-order.md).
//!
//! Each chunk's associated data binds it to its place:
//!
//! ```text
//! "ARCC" ‖ version id (16) ‖ segment id (16) ‖ stripe index (u64) ‖ chunk index (u8)
//!        ‖ k (u8) ‖ m (u8) ‖ flags (u8, bit 0 = last stripe) ‖ chunk_len (u32) ‖ stripe plaintext length (u32)
//! ```
//!
//! so chunks cannot be swapped between positions, stripes, segments or objects, reordered, or
//! truncated away (the last stripe is marked, and its length is authenticated).

use crate::aead::{Aead, Domain, TAG_LEN, nonce};
use crate::erasure::Erasure;
use crate::error::{CodecError, Result};
use crate::ids::{SegmentId, ShardIdx, VersionId};
use crate::keys::DataKey;
use crate::params::{CodecParams, SegmentLayout};

/// What identifies a segment cryptographically: the object version it belongs to, its own id,
/// and its parameters. All three are bound into every chunk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SegmentSpec {
    /// The object version this segment belongs to.
    pub version: VersionId,
    /// The segment's own random id.
    pub segment: SegmentId,
    /// Erasure and framing parameters.
    pub params: CodecParams,
}

/// A segment's data key, ready to seal and open.
pub(crate) struct SegmentCipher {
    pub(crate) spec: SegmentSpec,
    pub(crate) aead: Aead,
}

const CHUNK_AAD_LEN: usize = 56;

impl SegmentCipher {
    pub(crate) fn new(spec: SegmentSpec, key: &DataKey) -> Result<Self> {
        Ok(SegmentCipher {
            spec,
            aead: Aead::new(&key.0)?,
        })
    }

    fn chunk_aad(
        &self,
        stripe: u64,
        chunk: usize,
        last: bool,
        plain_len: usize,
    ) -> [u8; CHUNK_AAD_LEN] {
        let p = &self.spec.params;
        let mut a = [0u8; CHUNK_AAD_LEN];
        a[..4].copy_from_slice(b"ARCC");
        a[4..20].copy_from_slice(self.spec.version.as_bytes());
        a[20..36].copy_from_slice(self.spec.segment.as_bytes());
        a[36..44].copy_from_slice(&stripe.to_le_bytes());
        a[44] = chunk as u8;
        a[45] = p.k() as u8;
        a[46] = p.m() as u8;
        a[47] = u8::from(last);
        a[48..52].copy_from_slice(&(p.chunk_len() as u32).to_le_bytes());
        a[52..56].copy_from_slice(&(plain_len as u32).to_le_bytes());
        a
    }
}

/// The `k + m` sealed chunks of one stripe, in shard order. Reused across stripes so a
/// streaming encode allocates once.
#[derive(Debug, Default)]
pub struct EncodedStripe {
    index: u64,
    last: bool,
    plain_len: usize,
    chunks: Vec<Vec<u8>>,
}

impl EncodedStripe {
    /// An empty buffer; [`SegmentEncoder`] fills it.
    pub fn new() -> Self {
        Self::default()
    }
    /// Stripe index within the segment.
    pub fn index(&self) -> u64 {
        self.index
    }
    /// Whether this is the segment's last stripe.
    pub fn is_last(&self) -> bool {
        self.last
    }
    /// Plaintext bytes in this stripe.
    pub fn plain_len(&self) -> usize {
        self.plain_len
    }
    /// The sealed chunk for shard `shard` (ciphertext ‖ tag), to append to that shard.
    pub fn chunk(&self, shard: ShardIdx) -> &[u8] {
        self.chunks.get(shard.get()).map_or(&[], Vec::as_slice)
    }
    /// All sealed chunks, in shard order.
    pub fn chunks(&self) -> &[Vec<u8>] {
        &self.chunks
    }
    /// Takes the sealed chunks out (in shard order) without copying, e.g. to hand them to
    /// writers; the next stripe sealed into this buffer allocates fresh ones.
    pub fn take_chunks(&mut self) -> Vec<Vec<u8>> {
        std::mem::take(&mut self.chunks)
    }
}

/// What a finished segment encode produced.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SegmentSummary {
    /// Plaintext bytes encoded.
    pub len: u64,
    /// Stripes emitted.
    pub stripes: u64,
}

/// Streaming encoder for one segment. Memory: two stripes of chunk buffers, whatever the
/// segment's size.
///
/// ```text
/// while !input.is_empty() { if enc.push(&mut input, &mut stripe)? { send(&stripe) } }
/// let summary = enc.finish(&mut stripe)?; send(&stripe);
/// ```
pub struct SegmentEncoder {
    cipher: SegmentCipher,
    erasure: Erasure,
    cur: Vec<Vec<u8>>,
    filled: usize,
    next_index: u64,
    total: u64,
    finished: bool,
    scratch: Vec<u8>,
}

impl SegmentEncoder {
    /// Starts encoding a segment under `key`.
    pub fn new(spec: SegmentSpec, key: &DataKey) -> Result<Self> {
        let p = spec.params;
        let cur = (0..p.n())
            .map(|_| Vec::with_capacity(p.chunk_len() + TAG_LEN))
            .collect();
        Ok(SegmentEncoder {
            cipher: SegmentCipher::new(spec, key)?,
            erasure: Erasure::new(p.k(), p.m())?,
            cur,
            filled: 0,
            next_index: 0,
            total: 0,
            finished: false,
            scratch: Vec::new(),
        })
    }

    /// The segment being encoded.
    pub fn spec(&self) -> &SegmentSpec {
        &self.cipher.spec
    }

    pub(crate) fn cipher(&self) -> &SegmentCipher {
        &self.cipher
    }

    /// Consumes plaintext from the front of `input`. Returns `true` when a complete stripe was
    /// sealed into `out` (send it, then call again with the rest of `input`); `false` when all
    /// of `input` was buffered. A full stripe is held back until more input arrives, because
    /// only then is it known not to be the last.
    pub fn push(&mut self, input: &mut &[u8], out: &mut EncodedStripe) -> Result<bool> {
        if self.finished {
            return Err(CodecError::InvalidInput("push after finish".into()));
        }
        let c = self.cipher.spec.params.chunk_len();
        let stripe_len = self.cipher.spec.params.stripe_len();
        loop {
            if input.is_empty() {
                return Ok(false);
            }
            if self.filled == stripe_len {
                self.seal(false, out)?;
                return Ok(true);
            }
            let ci = self.filled / c;
            let room = c - self.filled % c;
            let n = room.min(input.len());
            self.cur[ci].extend_from_slice(&input[..n]);
            self.filled += n;
            self.total += n as u64;
            *input = &input[n..];
        }
    }

    /// Seals the last stripe (possibly empty) into `out`.
    pub fn finish(&mut self, out: &mut EncodedStripe) -> Result<SegmentSummary> {
        if self.finished {
            return Err(CodecError::InvalidInput("finish called twice".into()));
        }
        self.seal(true, out)?;
        self.finished = true;
        Ok(SegmentSummary {
            len: self.total,
            stripes: self.next_index,
        })
    }

    fn seal(&mut self, last: bool, out: &mut EncodedStripe) -> Result<()> {
        let p = self.cipher.spec.params;
        let (k, c) = (p.k(), p.chunk_len());
        let plain_len = self.filled;
        let cl = if last { plain_len.div_ceil(k) } else { c };
        if cl != c {
            // Last, short stripe: re-split the plaintext into k chunks of `cl` bytes.
            self.scratch.clear();
            for ch in &self.cur[..k] {
                self.scratch.extend_from_slice(ch);
            }
            for (i, ch) in self.cur[..k].iter_mut().enumerate() {
                ch.clear();
                let start = (i * cl).min(plain_len);
                let end = ((i + 1) * cl).min(plain_len);
                ch.extend_from_slice(&self.scratch[start..end]);
            }
        }
        for ch in &mut self.cur {
            ch.resize(cl, 0);
        }
        {
            let (data, parity) = self.cur.split_at_mut(k);
            let data: Vec<&[u8]> = data.iter().map(Vec::as_slice).collect();
            let mut parity: Vec<&mut [u8]> = parity.iter_mut().map(Vec::as_mut_slice).collect();
            self.erasure.encode(&data, &mut parity)?;
        }
        let index = self.next_index;
        for (i, ch) in self.cur.iter_mut().enumerate() {
            let aad = self.cipher.chunk_aad(index, i, last, plain_len);
            self.cipher
                .aead
                .seal_append(nonce(Domain::Chunk, i as u8, index), &aad, ch)?;
        }
        if out.chunks.len() != self.cur.len() {
            out.chunks = (0..self.cur.len())
                .map(|_| Vec::with_capacity(c + TAG_LEN))
                .collect();
        }
        std::mem::swap(&mut out.chunks, &mut self.cur);
        for ch in &mut self.cur {
            ch.clear();
        }
        out.index = index;
        out.last = last;
        out.plain_len = plain_len;
        self.next_index += 1;
        self.filled = 0;
        Ok(())
    }
}

/// Which chunks of a decoded stripe were not supplied, and which failed verification (to be
/// repaired).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StripeReport {
    /// Chunks the caller did not supply.
    pub missing: Vec<ShardIdx>,
    /// Chunks whose tag did not verify, or whose length was wrong: corrupt on their provider.
    pub corrupt: Vec<ShardIdx>,
    /// True when Reed–Solomon reconstruction was needed (some data chunk was unusable).
    pub reconstructed: bool,
}

/// Decoder for one segment of known length.
pub struct SegmentDecoder {
    cipher: SegmentCipher,
    layout: SegmentLayout,
    erasure: Erasure,
    parity: Vec<Vec<u8>>,
    scratch: Vec<u8>,
}

impl SegmentDecoder {
    /// A decoder for `spec` under `key`; `len` is the segment's plaintext length (from the
    /// manifest or the shard trailer) and `header_len` its shard header length.
    pub fn new(spec: SegmentSpec, key: &DataKey, len: u64, header_len: u64) -> Result<Self> {
        Ok(SegmentDecoder {
            layout: SegmentLayout::new(spec.params, len, header_len),
            erasure: Erasure::new(spec.params.k(), spec.params.m())?,
            cipher: SegmentCipher::new(spec, key)?,
            parity: Vec::new(),
            scratch: Vec::new(),
        })
    }

    /// The segment's layout (which bytes of each shard hold which stripe).
    pub fn layout(&self) -> &SegmentLayout {
        &self.layout
    }

    /// Verifies chunk `shard` of stripe `stripe` and decrypts it into `out` (exactly the
    /// stripe's chunk length); false if it is corrupt, misplaced or of the wrong length.
    fn open_chunk(&self, stripe: u64, shard: usize, chunk: &[u8], out: &mut [u8]) -> bool {
        if chunk.len() != self.layout.chunk_stored_len(stripe) {
            return false;
        }
        let last = stripe + 1 == self.layout.stripes();
        let aad = self
            .cipher
            .chunk_aad(stripe, shard, last, self.layout.stripe_plain_len(stripe));
        self.cipher
            .aead
            .open_into(nonce(Domain::Chunk, shard as u8, stripe), &aad, chunk, out)
    }

    /// Verifies one chunk (scrub): true if it is intact and belongs at (`stripe`, `shard`).
    pub fn verify_chunk(&mut self, stripe: u64, shard: ShardIdx, chunk: &[u8]) -> bool {
        if stripe >= self.layout.stripes() || shard.get() >= self.cipher.spec.params.n() {
            return false;
        }
        let mut scratch = std::mem::take(&mut self.scratch);
        scratch.clear();
        scratch.resize(self.layout.chunk_plain_len(stripe), 0);
        let ok = self.open_chunk(stripe, shard.get(), chunk, &mut scratch);
        self.scratch = scratch;
        ok
    }

    /// Decodes stripe `stripe` from its chunks (`chunks[i]` is shard `i`'s chunk, ciphertext ‖
    /// tag, or `None` when not fetched) and appends its plaintext to `out`. Data chunks are
    /// opened straight into `out`; parity chunks are opened only as needed to reach `k`
    /// verified chunks. Supply any `k` chunks (more is fine: the extra are not read).
    pub fn decode_stripe(
        &mut self,
        stripe: u64,
        chunks: &[Option<&[u8]>],
        out: &mut Vec<u8>,
    ) -> Result<StripeReport> {
        let p = self.cipher.spec.params;
        let (k, n) = (p.k(), p.n());
        if chunks.len() != n {
            return Err(CodecError::InvalidInput(format!(
                "stripe {stripe}: {} chunk slots given, expected k + m = {n}",
                chunks.len()
            )));
        }
        if stripe >= self.layout.stripes() {
            return Err(CodecError::InvalidInput(format!(
                "stripe {stripe} out of range (segment has {})",
                self.layout.stripes()
            )));
        }
        let cl = self.layout.chunk_plain_len(stripe);
        let plain_len = self.layout.stripe_plain_len(stripe);
        let mut report = StripeReport::default();
        let mut usable = vec![false; n];
        let mut count = 0;

        let base = out.len();
        out.resize(base + k * cl, 0);
        for (i, chunk) in chunks.iter().enumerate().take(k) {
            match chunk {
                None => report.missing.push(ShardIdx(i as u8)),
                Some(c) => {
                    let dst = &mut out[base + i * cl..base + (i + 1) * cl];
                    if self.open_chunk(stripe, i, c, dst) {
                        usable[i] = true;
                        count += 1;
                    } else {
                        report.corrupt.push(ShardIdx(i as u8));
                    }
                }
            }
        }
        let mut parity = std::mem::take(&mut self.parity);
        parity.resize_with(n - k, Vec::new);
        for (i, chunk) in chunks.iter().enumerate().skip(k) {
            if count == k {
                break;
            }
            match chunk {
                None => report.missing.push(ShardIdx(i as u8)),
                Some(c) => {
                    let dst = &mut parity[i - k];
                    dst.clear();
                    dst.resize(cl, 0);
                    if self.open_chunk(stripe, i, c, dst) {
                        usable[i] = true;
                        count += 1;
                    } else {
                        report.corrupt.push(ShardIdx(i as u8));
                    }
                }
            }
        }
        if count < k {
            out.truncate(base);
            self.parity = parity;
            return Err(CodecError::NotEnoughChunks {
                stripe,
                usable: count,
                needed: k,
                missing: report.missing,
                corrupt: report.corrupt,
            });
        }
        let lost: Vec<usize> = (0..k).filter(|&i| !usable[i]).collect();
        if !lost.is_empty() && cl > 0 {
            report.reconstructed = true;
            let mut views: Vec<Option<&[u8]>> = Vec::with_capacity(n);
            let mut targets: Vec<&mut [u8]> = Vec::with_capacity(lost.len());
            for (i, slot) in out[base..].chunks_mut(cl).enumerate() {
                if usable[i] {
                    views.push(Some(slot));
                } else {
                    views.push(None);
                    targets.push(slot);
                }
            }
            for (j, buf) in parity.iter().enumerate() {
                views.push(usable[k + j].then_some(buf.as_slice()));
            }
            let res = self.erasure.recover(&views, &lost, &mut targets);
            if let Err(e) = res {
                self.parity = parity;
                out.truncate(base);
                return Err(e);
            }
        } else if !lost.is_empty() {
            report.reconstructed = true;
        }
        self.parity = parity;
        out.truncate(base + plain_len);
        Ok(report)
    }
}
