//! The manifest: everything needed to read one object version — identity, sizes, etag, content
//! type and headers, user metadata, and per segment its codec parameters, wrapped data key and
//! which provider holds which shard.
//!
//! Encoding (little-endian; see docs/format.md):
//!
//! ```text
//! "ARCM" ‖ u8 major (1) ‖ u8 minor (0) ‖ u16 reserved ‖ [16] key id ‖ u32 body length ‖ body
//!        ‖ [32] HMAC-SHA256(manifest key, every preceding byte)
//! ```
//!
//! The body is a sequence of fields `u16 tag ‖ u32 length ‖ value`. A reader skips tags it does
//! not know, so a minor version may add fields and older readers still read it; a change that
//! older readers must not misread bumps the major version, which they refuse with
//! [`CodecError::UnsupportedVersion`]. The HMAC makes every flipped bit detectable, and the key
//! id says which master key signed it (key rotation).

use aws_lc_rs::hmac;

use crate::error::{CodecError, Format, Result};
use crate::ids::{KeyId, SegmentId, ShardIdx, VersionId};
use crate::keys::ManifestKey;
use crate::params::CodecParams;
use crate::wire::{Reader, Writer};
use crate::wrap::WrappedKey;

const MAGIC: &[u8; 4] = b"ARCM";
const MAJOR: u8 = 1;
const MINOR: u8 = 0;
const PREFIX_LEN: usize = 4 + 1 + 1 + 2 + 16 + 4;
const MAC_LEN: usize = 32;
/// Largest number of segments (S3 allows 10,000 parts).
pub const MAX_SEGMENTS: usize = 10_000;

mod tag {
    pub(super) const VERSION: u16 = 1;
    pub(super) const TIMESTAMP: u16 = 2;
    pub(super) const BUCKET: u16 = 3;
    pub(super) const KEY: u16 = 4;
    pub(super) const SIZE: u16 = 5;
    pub(super) const ETAG: u16 = 6;
    pub(super) const CONTENT_TYPE: u16 = 7;
    pub(super) const HEADER: u16 = 8;
    pub(super) const USER_META: u16 = 9;
    pub(super) const SEGMENT: u16 = 10;

    pub(super) const SEG_ID: u16 = 1;
    pub(super) const SEG_PART: u16 = 2;
    pub(super) const SEG_PARAMS: u16 = 3;
    pub(super) const SEG_LEN: u16 = 4;
    pub(super) const SEG_HEADER_LEN: u16 = 5;
    pub(super) const SEG_WRAPPED_KEY: u16 = 6;
    pub(super) const SEG_ETAG: u16 = 7;
    pub(super) const SEG_PLACEMENT: u16 = 8;
}

/// Where one shard of a segment lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShardPlacement {
    /// Which shard.
    pub shard: ShardIdx,
    /// The provider's name.
    pub provider: String,
    /// The blob's name on that provider (a random id).
    pub blob: String,
}

/// One segment of an object version: the whole object, or one multipart part.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ManifestSegment {
    /// The segment id.
    pub segment: SegmentId,
    /// Multipart part number, 0 for a whole object.
    pub part_number: u32,
    /// Codec parameters.
    pub params: CodecParams,
    /// Plaintext length.
    pub len: u64,
    /// Length of each shard's header.
    pub header_len: u32,
    /// The data key, wrapped under the master key.
    pub wrapped_key: WrappedKey,
    /// The part's etag (multipart), empty otherwise.
    pub etag: String,
    /// Shard locations; a degraded segment lists fewer than `k + m`.
    pub placement: Vec<ShardPlacement>,
}

/// An object version's manifest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Manifest {
    /// The object version.
    pub version: VersionId,
    /// Creation time, ms since the Unix epoch.
    pub timestamp_ms: u64,
    /// Bucket name.
    pub bucket: String,
    /// Object key.
    pub key: String,
    /// Plaintext size: the sum of the segments' lengths.
    pub size: u64,
    /// The S3 etag.
    pub etag: String,
    /// Content type, if given.
    pub content_type: Option<String>,
    /// Other stored HTTP headers and checksums (name, value), in order.
    pub headers: Vec<(String, String)>,
    /// User metadata (`x-amz-meta-*` without the prefix), in order.
    pub user_metadata: Vec<(String, String)>,
    /// The segments, in plaintext order.
    pub segments: Vec<ManifestSegment>,
}

impl ManifestKey {
    /// HMAC-SHA256 of `bytes` under this key: the last 32 bytes of every manifest.
    pub fn authenticate(&self, bytes: &[u8]) -> [u8; MAC_LEN] {
        let tag = hmac::sign(&hmac::Key::new(hmac::HMAC_SHA256, &self.key.0), bytes);
        let mut out = [0u8; MAC_LEN];
        out.copy_from_slice(tag.as_ref());
        out
    }
}

fn field(w: &mut Writer, tag: u16, value: &[u8]) -> Result<()> {
    w.u16(tag);
    w.bytes32("manifest field", value)?;
    Ok(())
}

fn pair(name: &str, value: &str) -> Result<Vec<u8>> {
    let mut w = Writer::default();
    w.bytes16("header name", name.as_bytes())?;
    w.bytes32("header value", value.as_bytes())?;
    Ok(w.buf)
}

impl ManifestSegment {
    fn encode(&self) -> Result<Vec<u8>> {
        let mut w = Writer::default();
        field(&mut w, tag::SEG_ID, self.segment.as_bytes())?;
        field(&mut w, tag::SEG_PART, &self.part_number.to_le_bytes())?;
        let mut p = Writer::default();
        p.u8(self.params.k() as u8)
            .u8(self.params.m() as u8)
            .u32(self.params.chunk_len() as u32);
        field(&mut w, tag::SEG_PARAMS, &p.buf)?;
        field(&mut w, tag::SEG_LEN, &self.len.to_le_bytes())?;
        field(&mut w, tag::SEG_HEADER_LEN, &self.header_len.to_le_bytes())?;
        field(&mut w, tag::SEG_WRAPPED_KEY, &self.wrapped_key.encode())?;
        if !self.etag.is_empty() {
            field(&mut w, tag::SEG_ETAG, self.etag.as_bytes())?;
        }
        for pl in &self.placement {
            let mut v = Writer::default();
            v.u8(pl.shard.0);
            v.bytes16("provider name", pl.provider.as_bytes())?;
            v.bytes16("blob name", pl.blob.as_bytes())?;
            field(&mut w, tag::SEG_PLACEMENT, &v.buf)?;
        }
        Ok(w.buf)
    }

    fn decode(bytes: &[u8]) -> Result<Self> {
        let mut segment = None;
        let mut part_number = None;
        let mut params = None;
        let mut len = None;
        let mut header_len = None;
        let mut wrapped_key = None;
        let mut etag = None;
        let mut placement: Vec<ShardPlacement> = Vec::new();
        for_each_field(bytes, |tag, v| {
            let mut r = Reader::new(v, Format::Manifest);
            match tag {
                tag::SEG_ID => set(
                    &mut segment,
                    SegmentId(r.array("segment id")?),
                    "segment id",
                )?,
                tag::SEG_PART => set(&mut part_number, r.u32("part number")?, "part number")?,
                tag::SEG_PARAMS => {
                    let k = r.u8("k")? as usize;
                    let m = r.u8("m")? as usize;
                    let c = r.u32("chunk length")? as usize;
                    let p = CodecParams::new(k, m, c).map_err(|e| r.err(e.to_string()))?;
                    set(&mut params, p, "params")?
                }
                tag::SEG_LEN => set(&mut len, r.u64("segment length")?, "segment length")?,
                tag::SEG_HEADER_LEN => {
                    set(&mut header_len, r.u32("header length")?, "header length")?
                }
                tag::SEG_WRAPPED_KEY => {
                    set(&mut wrapped_key, WrappedKey::read(&mut r)?, "wrapped key")?
                }
                tag::SEG_ETAG => set(&mut etag, utf8(r.take(v.len(), "etag")?)?, "part etag")?,
                tag::SEG_PLACEMENT => {
                    let shard = ShardIdx(r.u8("shard index")?);
                    let provider = r.string16("provider name")?;
                    let blob = r.string16("blob name")?;
                    placement.push(ShardPlacement {
                        shard,
                        provider,
                        blob,
                    });
                }
                _ => {
                    r.take(v.len(), "unknown field")?;
                }
            }
            r.expect_end()
        })?;
        let need =
            |what: &str| CodecError::malformed(Format::Manifest, format!("segment lacks {what}"));
        let params: CodecParams = params.ok_or_else(|| need("params"))?;
        let mut seen = vec![false; params.n()];
        for pl in &placement {
            match seen.get_mut(pl.shard.get()) {
                Some(s) if !*s => *s = true,
                Some(_) => {
                    return Err(CodecError::malformed(
                        Format::Manifest,
                        format!("shard {} placed twice", pl.shard),
                    ));
                }
                None => {
                    return Err(CodecError::malformed(
                        Format::Manifest,
                        format!("shard {} ≥ k + m = {}", pl.shard, params.n()),
                    ));
                }
            }
        }
        Ok(ManifestSegment {
            segment: segment.ok_or_else(|| need("segment id"))?,
            part_number: part_number.ok_or_else(|| need("part number"))?,
            params,
            len: len.ok_or_else(|| need("length"))?,
            header_len: header_len.ok_or_else(|| need("header length"))?,
            wrapped_key: wrapped_key.ok_or_else(|| need("wrapped key"))?,
            etag: etag.unwrap_or_default(),
            placement,
        })
    }
}

fn set<T>(slot: &mut Option<T>, v: T, what: &str) -> Result<()> {
    if slot.is_some() {
        return Err(CodecError::malformed(
            Format::Manifest,
            format!("{what} given twice"),
        ));
    }
    *slot = Some(v);
    Ok(())
}

fn utf8(b: &[u8]) -> Result<String> {
    String::from_utf8(b.to_vec())
        .map_err(|_| CodecError::malformed(Format::Manifest, "string is not UTF-8"))
}

fn for_each_field(bytes: &[u8], mut f: impl FnMut(u16, &[u8]) -> Result<()>) -> Result<()> {
    let mut r = Reader::new(bytes, Format::Manifest);
    while !r.is_empty() {
        let tag = r.u16("field tag")?;
        let value = r.bytes32("field value")?;
        f(tag, value)?;
    }
    Ok(())
}

fn read_pair(v: &[u8]) -> Result<(String, String)> {
    let mut r = Reader::new(v, Format::Manifest);
    let name = r.string16("header name")?;
    let value = r.string32("header value")?;
    r.expect_end()?;
    Ok((name, value))
}

impl Manifest {
    /// Encodes and signs the manifest under `key`.
    pub fn encode(&self, key: &ManifestKey) -> Result<Vec<u8>> {
        if self.segments.len() > MAX_SEGMENTS {
            return Err(CodecError::TooLarge {
                field: "segments",
                len: self.segments.len(),
                max: MAX_SEGMENTS,
            });
        }
        let total: u64 = self.segments.iter().map(|s| s.len).sum();
        if total != self.size {
            return Err(CodecError::InvalidInput(format!(
                "manifest size {} differs from the sum of its segments {total}",
                self.size
            )));
        }
        let mut b = Writer::default();
        field(&mut b, tag::VERSION, self.version.as_bytes())?;
        field(&mut b, tag::TIMESTAMP, &self.timestamp_ms.to_le_bytes())?;
        field(&mut b, tag::BUCKET, self.bucket.as_bytes())?;
        field(&mut b, tag::KEY, self.key.as_bytes())?;
        field(&mut b, tag::SIZE, &self.size.to_le_bytes())?;
        field(&mut b, tag::ETAG, self.etag.as_bytes())?;
        if let Some(ct) = &self.content_type {
            field(&mut b, tag::CONTENT_TYPE, ct.as_bytes())?;
        }
        for (n, v) in &self.headers {
            field(&mut b, tag::HEADER, &pair(n, v)?)?;
        }
        for (n, v) in &self.user_metadata {
            field(&mut b, tag::USER_META, &pair(n, v)?)?;
        }
        for s in &self.segments {
            field(&mut b, tag::SEGMENT, &s.encode()?)?;
        }
        let mut w = Writer::with_capacity(PREFIX_LEN + b.len() + MAC_LEN);
        w.bytes(MAGIC)
            .u8(MAJOR)
            .u8(MINOR)
            .u16(0)
            .bytes(key.key_id().as_bytes());
        w.bytes32("manifest body", &b.buf)?;
        let mac = key.authenticate(&w.buf);
        w.bytes(&mac);
        Ok(w.buf)
    }

    /// The id of the master key whose manifest key signed `bytes` (to pick the key during a
    /// rotation), after checking magic and version.
    pub fn peek_key_id(bytes: &[u8]) -> Result<KeyId> {
        let mut r = Reader::new(bytes, Format::Manifest);
        if r.take(4, "magic")? != MAGIC {
            return Err(r.err("bad magic (not an Archipel manifest)"));
        }
        let major = r.u8("major version")?;
        let minor = r.u8("minor version")?;
        if major != MAJOR {
            return Err(CodecError::UnsupportedVersion {
                format: Format::Manifest,
                found_major: major,
                found_minor: minor,
                supported_major: MAJOR,
            });
        }
        r.u16("reserved")?;
        Ok(KeyId(r.array("key id")?))
    }

    /// Verifies and decodes a manifest.
    pub fn decode(bytes: &[u8], key: &ManifestKey) -> Result<Self> {
        let key_id = Self::peek_key_id(bytes)?;
        if key_id != key.key_id() {
            return Err(CodecError::KeyMismatch {
                expected: key_id,
                found: key.key_id(),
            });
        }
        if bytes.len() < PREFIX_LEN + MAC_LEN {
            return Err(CodecError::malformed(Format::Manifest, "truncated"));
        }
        let (signed, mac) = bytes.split_at(bytes.len() - MAC_LEN);
        let hkey = hmac::Key::new(hmac::HMAC_SHA256, &key.key.0);
        hmac::verify(&hkey, signed, mac).map_err(|_| CodecError::integrity("manifest"))?;
        let mut r = Reader::new(signed, Format::Manifest);
        r.take(PREFIX_LEN - 4, "prefix")?;
        let body = r.bytes32("manifest body")?;
        r.expect_end()?;
        Self::decode_body(body)
    }

    fn decode_body(body: &[u8]) -> Result<Self> {
        let mut version = None;
        let mut timestamp = None;
        let mut bucket = None;
        let mut key = None;
        let mut size = None;
        let mut etag = None;
        let mut content_type = None;
        let mut headers = Vec::new();
        let mut user_metadata = Vec::new();
        let mut segments = Vec::new();
        for_each_field(body, |t, v| {
            let mut r = Reader::new(v, Format::Manifest);
            match t {
                tag::VERSION => set(
                    &mut version,
                    VersionId(r.array("version id")?),
                    "version id",
                )?,
                tag::TIMESTAMP => set(&mut timestamp, r.u64("timestamp")?, "timestamp")?,
                tag::BUCKET => set(&mut bucket, utf8(r.take(v.len(), "bucket")?)?, "bucket")?,
                tag::KEY => set(&mut key, utf8(r.take(v.len(), "key")?)?, "key")?,
                tag::SIZE => set(&mut size, r.u64("size")?, "size")?,
                tag::ETAG => set(&mut etag, utf8(r.take(v.len(), "etag")?)?, "etag")?,
                tag::CONTENT_TYPE => set(
                    &mut content_type,
                    utf8(r.take(v.len(), "content type")?)?,
                    "content type",
                )?,
                tag::HEADER => {
                    headers.push(read_pair(r.take(v.len(), "header")?)?);
                }
                tag::USER_META => {
                    user_metadata.push(read_pair(r.take(v.len(), "user metadata")?)?);
                }
                tag::SEGMENT => {
                    if segments.len() == MAX_SEGMENTS {
                        return Err(r.err(format!("more than {MAX_SEGMENTS} segments")));
                    }
                    segments.push(ManifestSegment::decode(r.take(v.len(), "segment")?)?);
                }
                _ => {
                    r.take(v.len(), "unknown field")?;
                }
            }
            r.expect_end()
        })?;
        let need = |what: &str| CodecError::malformed(Format::Manifest, format!("lacks {what}"));
        let m = Manifest {
            version: version.ok_or_else(|| need("version id"))?,
            timestamp_ms: timestamp.ok_or_else(|| need("timestamp"))?,
            bucket: bucket.ok_or_else(|| need("bucket"))?,
            key: key.ok_or_else(|| need("key"))?,
            size: size.ok_or_else(|| need("size"))?,
            etag: etag.ok_or_else(|| need("etag"))?,
            content_type,
            headers,
            user_metadata,
            segments,
        };
        let total = m
            .segments
            .iter()
            .try_fold(0u64, |acc, s| acc.checked_add(s.len))
            .ok_or_else(|| CodecError::malformed(Format::Manifest, "segment lengths overflow"))?;
        if total != m.size {
            return Err(CodecError::malformed(
                Format::Manifest,
                format!(
                    "size {} differs from the sum of segment lengths {total}",
                    m.size
                ),
            ));
        }
        Ok(m)
    }
}
