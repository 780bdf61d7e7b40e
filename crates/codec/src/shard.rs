//! Shard header and trailer: what makes every shard self-describing, so the index can be
//! rebuilt from providers alone (promise 5), without revealing names or plaintext sizes.
//!
//! A shard is `header ‖ chunk(stripe 0) ‖ … ‖ chunk(last stripe) ‖ trailer`.
//!
//! Header (little-endian, see docs/format.md):
//!
//! ```text
//! 0    "ARCS"
//! 4    u8 major (1)  5 u8 minor (0)
//! 6    u16 reserved (0)
//! 8    u32 header length (whole header, including the sealed identity)
//! 12   [16] segment id
//! 28   u8 shard index  29 u8 k  30 u8 m  31 u8 flags (0)
//! 32   u32 chunk length
//! 36   [77] wrapped data key
//! 113  u32 sealed identity length
//! 117  sealed identity: AES-256-GCM under the data key, nonce domain 1 / shard index,
//!      AAD = bytes 0..117
//! ```
//!
//! Identity (plaintext, inside the seal): `u8 format (1) ‖ [16] version id ‖ u64 version
//! timestamp (ms since the Unix epoch) ‖ u32 part number (0 = not multipart) ‖ u16+bytes
//! bucket ‖ u16+bytes key`.
//!
//! Trailer (36 bytes): `sealed(u64 plaintext length ‖ u64 stripe count) (32) ‖ "ARCT"`, sealed
//! under the data key with nonce domain 2 / shard index and AAD `"ARCT" ‖ segment id ‖ shard
//! index ‖ k ‖ m ‖ chunk length`. A shard without a valid trailer is incomplete (a crashed
//! write).

use crate::aead::{Aead, Domain, TAG_LEN, nonce};
use crate::error::{CodecError, Format, Result};
use crate::ids::{SegmentId, ShardIdx, VersionId};
use crate::keys::DataKey;
use crate::params::{CodecParams, MAX_CHUNK_LEN, SegmentLayout};
use crate::stripe::{SegmentCipher, SegmentEncoder, SegmentSpec};
use crate::wire::{Reader, Writer};
use crate::wrap::WrappedKey;

const MAGIC: &[u8; 4] = b"ARCS";
const TRAILER_MAGIC: &[u8; 4] = b"ARCT";
const MAJOR: u8 = 1;
const MINOR: u8 = 0;
const FIXED_LEN: usize = 117;
/// Largest header accepted when parsing (bounds what a forged length can make us read).
pub const MAX_HEADER_LEN: usize = 64 * 1024;

/// Who a segment belongs to. Stored only inside the sealed part of every shard header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShardIdentity {
    /// The object version.
    pub version: VersionId,
    /// When the version was created, in milliseconds since the Unix epoch.
    pub timestamp_ms: u64,
    /// Multipart part number, or 0 for a segment that is a whole object.
    pub part_number: u32,
    /// Bucket name.
    pub bucket: String,
    /// Object key.
    pub key: String,
}

impl ShardIdentity {
    fn encode(&self) -> Result<Vec<u8>> {
        let mut w = Writer::with_capacity(32 + self.bucket.len() + self.key.len());
        w.u8(1)
            .bytes(self.version.as_bytes())
            .u64(self.timestamp_ms)
            .u32(self.part_number);
        w.bytes16("bucket name", self.bucket.as_bytes())?;
        w.bytes16("object key", self.key.as_bytes())?;
        Ok(w.buf)
    }

    fn decode(bytes: &[u8]) -> Result<Self> {
        let mut r = Reader::new(bytes, Format::ShardHeader);
        let format = r.u8("identity format")?;
        if format != 1 {
            return Err(r.err(format!("unknown identity format {format}")));
        }
        let id = ShardIdentity {
            version: VersionId(r.array("version id")?),
            timestamp_ms: r.u64("timestamp")?,
            part_number: r.u32("part number")?,
            bucket: r.string16("bucket name")?,
            key: r.string16("object key")?,
        };
        r.expect_end()?;
        Ok(id)
    }
}

/// A parsed shard header. Parsing checks structure only; [`ShardHeader::open`] checks
/// integrity (any altered bit fails there).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShardHeader {
    /// The segment this shard belongs to.
    pub segment: SegmentId,
    /// Which shard of the segment this is.
    pub shard: ShardIdx,
    /// The segment's codec parameters.
    pub params: CodecParams,
    /// The segment's data key, wrapped under the master key.
    pub wrapped_key: WrappedKey,
    raw_fixed: Vec<u8>,
    sealed_identity: Vec<u8>,
}

fn params_aad(segment: &SegmentId, shard: ShardIdx, params: &CodecParams) -> [u8; 27] {
    let mut a = [0u8; 27];
    a[..4].copy_from_slice(TRAILER_MAGIC);
    a[4..20].copy_from_slice(segment.as_bytes());
    a[20] = shard.0;
    a[21] = params.k() as u8;
    a[22] = params.m() as u8;
    a[23..27].copy_from_slice(&(params.chunk_len() as u32).to_le_bytes());
    a
}

impl ShardHeader {
    /// Length of this header in bytes (where stripe 0 starts).
    pub fn len(&self) -> usize {
        self.raw_fixed.len() + self.sealed_identity.len()
    }

    /// Never true: a header always has its fixed part.
    pub fn is_empty(&self) -> bool {
        false
    }

    /// Builds and seals the header of shard `shard` of the segment `enc` is encoding.
    pub fn seal(
        enc: &SegmentEncoder,
        shard: ShardIdx,
        wrapped_key: &WrappedKey,
        identity: &ShardIdentity,
    ) -> Result<Vec<u8>> {
        Self::seal_with(enc.cipher(), shard, wrapped_key, identity)
    }

    pub(crate) fn seal_with(
        cipher: &SegmentCipher,
        shard: ShardIdx,
        wrapped_key: &WrappedKey,
        identity: &ShardIdentity,
    ) -> Result<Vec<u8>> {
        let spec = &cipher.spec;
        if shard.get() >= spec.params.n() {
            return Err(CodecError::InvalidInput(format!(
                "shard {shard} out of range for k + m = {}",
                spec.params.n()
            )));
        }
        if identity.version != spec.version {
            return Err(CodecError::InvalidInput(
                "identity version differs from the segment's version".into(),
            ));
        }
        let mut sealed = identity.encode()?;
        let header_len = FIXED_LEN + sealed.len() + TAG_LEN;
        let mut w = Writer::with_capacity(header_len);
        w.bytes(MAGIC)
            .u8(MAJOR)
            .u8(MINOR)
            .u16(0)
            .u32(header_len as u32)
            .bytes(spec.segment.as_bytes())
            .u8(shard.0)
            .u8(spec.params.k() as u8)
            .u8(spec.params.m() as u8)
            .u8(0)
            .u32(spec.params.chunk_len() as u32);
        wrapped_key.write(&mut w);
        w.u32((sealed.len() + TAG_LEN) as u32);
        debug_assert_eq!(w.len(), FIXED_LEN);
        cipher
            .aead
            .seal_append(nonce(Domain::ShardHeader, shard.0, 0), &w.buf, &mut sealed)?;
        w.bytes(&sealed);
        Ok(w.buf)
    }

    /// Parses a header from the start of `bytes` (which may continue with the shard's chunks).
    /// Read [`ShardHeader::FIXED_LEN`] bytes first to learn the full length with
    /// [`ShardHeader::peek_len`] when reading from a provider.
    pub fn parse(bytes: &[u8]) -> Result<Self> {
        let len = Self::peek_len(bytes)?;
        if bytes.len() < len {
            return Err(CodecError::malformed(
                Format::ShardHeader,
                format!("truncated: header is {len} bytes, {} given", bytes.len()),
            ));
        }
        let mut r = Reader::new(&bytes[..len], Format::ShardHeader);
        r.take(12, "preamble")?;
        let segment = SegmentId(r.array("segment id")?);
        let shard = r.u8("shard index")?;
        let k = r.u8("k")? as usize;
        let m = r.u8("m")? as usize;
        let flags = r.u8("flags")?;
        if flags != 0 {
            return Err(r.err(format!("unknown flags {flags:#x}")));
        }
        let chunk_len = r.u32("chunk length")?;
        if chunk_len > MAX_CHUNK_LEN {
            return Err(r.err(format!("chunk length {chunk_len} too large")));
        }
        let params = CodecParams::new(k, m, chunk_len as usize)
            .map_err(|e| r.err(format!("bad parameters: {e}")))?;
        if shard as usize >= params.n() {
            return Err(r.err(format!("shard index {shard} ≥ k + m = {}", params.n())));
        }
        let wrapped_key = WrappedKey::read(&mut r)?;
        let sealed_len = r.u32("identity length")? as usize;
        if FIXED_LEN + sealed_len != len || sealed_len < TAG_LEN {
            return Err(r.err(format!(
                "identity length {sealed_len} inconsistent with header length {len}"
            )));
        }
        let raw_fixed = bytes[..FIXED_LEN].to_vec();
        let sealed_identity = r.take(sealed_len, "sealed identity")?.to_vec();
        Ok(ShardHeader {
            segment,
            shard: ShardIdx(shard),
            params,
            wrapped_key,
            raw_fixed,
            sealed_identity,
        })
    }

    /// Bytes of the fixed part of a header; reading this many tells the full length.
    pub const FIXED_LEN: usize = FIXED_LEN;

    /// The full header length announced by the first [`ShardHeader::FIXED_LEN`] bytes.
    pub fn peek_len(bytes: &[u8]) -> Result<usize> {
        let mut r = Reader::new(bytes, Format::ShardHeader);
        if r.take(4, "magic")? != MAGIC {
            return Err(r.err("bad magic (not an Archipel shard)"));
        }
        let major = r.u8("major version")?;
        let minor = r.u8("minor version")?;
        if major != MAJOR {
            return Err(CodecError::UnsupportedVersion {
                format: Format::ShardHeader,
                found_major: major,
                found_minor: minor,
                supported_major: MAJOR,
            });
        }
        r.u16("reserved")?;
        let len = r.u32("header length")? as usize;
        if !(FIXED_LEN + TAG_LEN..=MAX_HEADER_LEN).contains(&len) {
            return Err(r.err(format!("header length {len} out of range")));
        }
        Ok(len)
    }

    /// Verifies the whole header with the segment's data key and returns the identity.
    pub fn open(&self, key: &DataKey) -> Result<ShardIdentity> {
        let aead = Aead::new(&key.0)?;
        let mut buf = self.sealed_identity.clone();
        let n = aead
            .open(
                nonce(Domain::ShardHeader, self.shard.0, 0),
                &self.raw_fixed,
                &mut buf,
            )
            .ok_or_else(|| {
                CodecError::integrity(format!(
                    "shard header {} of segment {}",
                    self.shard, self.segment
                ))
            })?;
        ShardIdentity::decode(&buf[..n])
    }

    /// The segment spec, once the identity is known.
    pub fn spec(&self, identity: &ShardIdentity) -> SegmentSpec {
        SegmentSpec {
            version: identity.version,
            segment: self.segment,
            params: self.params,
        }
    }
}

/// The sealed end of a shard: the segment's plaintext length and stripe count.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ShardTrailer {
    /// Plaintext bytes in the segment.
    pub len: u64,
    /// Stripes in the segment.
    pub stripes: u64,
}

impl ShardTrailer {
    /// Encoded length.
    pub const LEN: usize = 16 + TAG_LEN + 4;

    /// Seals the trailer of shard `shard` after `enc` finished.
    pub fn seal(
        enc: &SegmentEncoder,
        shard: ShardIdx,
        trailer: ShardTrailer,
    ) -> Result<[u8; Self::LEN]> {
        let spec = enc.spec();
        if shard.get() >= spec.params.n() {
            return Err(CodecError::InvalidInput(format!(
                "shard {shard} out of range"
            )));
        }
        let mut buf = Vec::with_capacity(Self::LEN);
        buf.extend_from_slice(&trailer.len.to_le_bytes());
        buf.extend_from_slice(&trailer.stripes.to_le_bytes());
        enc.cipher().aead.seal_append(
            nonce(Domain::ShardTrailer, shard.0, 0),
            &params_aad(&spec.segment, shard, &spec.params),
            &mut buf,
        )?;
        buf.extend_from_slice(TRAILER_MAGIC);
        let mut out = [0u8; Self::LEN];
        out.copy_from_slice(&buf);
        Ok(out)
    }

    /// Verifies and decodes the last [`ShardTrailer::LEN`] bytes of shard `header.shard`.
    pub fn open(bytes: &[u8], header: &ShardHeader, key: &DataKey) -> Result<Self> {
        if bytes.len() != Self::LEN {
            return Err(CodecError::malformed(
                Format::ShardTrailer,
                format!("{} bytes, expected {}", bytes.len(), Self::LEN),
            ));
        }
        if &bytes[Self::LEN - 4..] != TRAILER_MAGIC {
            return Err(CodecError::malformed(
                Format::ShardTrailer,
                "bad magic (incomplete shard?)",
            ));
        }
        let mut buf = [0u8; Self::LEN - 4];
        buf.copy_from_slice(&bytes[..Self::LEN - 4]);
        let aead = Aead::new(&key.0)?;
        aead.open(
            nonce(Domain::ShardTrailer, header.shard.0, 0),
            &params_aad(&header.segment, header.shard, &header.params),
            &mut buf,
        )
        .ok_or_else(|| {
            CodecError::integrity(format!(
                "shard trailer {} of segment {}",
                header.shard, header.segment
            ))
        })?;
        let mut len = [0u8; 8];
        len.copy_from_slice(&buf[..8]);
        let mut stripes = [0u8; 8];
        stripes.copy_from_slice(&buf[8..16]);
        let t = ShardTrailer {
            len: u64::from_le_bytes(len),
            stripes: u64::from_le_bytes(stripes),
        };
        let layout = SegmentLayout::new(header.params, t.len, header.len() as u64);
        if layout.stripes() != t.stripes {
            return Err(CodecError::malformed(
                Format::ShardTrailer,
                format!(
                    "{} stripes recorded, {} implied by the length",
                    t.stripes,
                    layout.stripes()
                ),
            ));
        }
        Ok(t)
    }
}
