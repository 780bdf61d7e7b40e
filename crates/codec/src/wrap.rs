//! Wrapped data keys: a segment's data key sealed under the master key.
//!
//! Layout (77 bytes, see docs/format.md):
//!
//! ```text
//! 0   u8      format (1 = AES-256-GCM under HKDF(key-wrap key, segment id))
//! 1   [16]    key id of the master key
//! 17  [12]    nonce (random, from the caller)
//! 29  [32]    encrypted data key
//! 61  [16]    tag;  AAD = "ARCW" ‖ format ‖ key id ‖ segment id
//! ```
//!
//! Binding the segment id means a wrapped key copied into another manifest or shard header does
//! not open. Re-wrapping under a new master key (rotation) touches nothing else.

use zeroize::Zeroize;

use crate::aead::{Aead, NONCE_LEN, TAG_LEN};
use crate::error::{CodecError, Format, Result};
use crate::ids::{KeyId, SegmentId};
use crate::keys::{DataKey, MasterKey, hkdf};
use crate::wire::{Reader, Writer};

const FORMAT: u8 = 1;

/// A data key sealed under a master key, bound to one segment.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct WrappedKey {
    key_id: KeyId,
    nonce: [u8; NONCE_LEN],
    sealed: [u8; 32 + TAG_LEN],
}

impl WrappedKey {
    /// Encoded length in bytes.
    pub const LEN: usize = 1 + 16 + NONCE_LEN + 32 + TAG_LEN;

    fn aead(master: &MasterKey, segment: &SegmentId) -> Result<Aead> {
        let mut k: [u8; 32] = hkdf(&master.wrap_key().0, &[b"wrap", segment.as_bytes()]);
        let a = Aead::new(&k);
        k.zeroize();
        a
    }

    fn aad(key_id: &KeyId, segment: &SegmentId) -> [u8; 37] {
        let mut aad = [0u8; 37];
        aad[..4].copy_from_slice(b"ARCW");
        aad[4] = FORMAT;
        aad[5..21].copy_from_slice(key_id.as_bytes());
        aad[21..].copy_from_slice(segment.as_bytes());
        aad
    }

    /// Seals `data_key` for `segment` under `master`. `nonce` must be fresh random bytes.
    pub fn wrap(
        master: &MasterKey,
        segment: &SegmentId,
        data_key: &DataKey,
        nonce: [u8; NONCE_LEN],
    ) -> Result<Self> {
        let key_id = master.key_id();
        let mut buf = Vec::with_capacity(32 + TAG_LEN);
        buf.extend_from_slice(&data_key.0);
        Self::aead(master, segment)?.seal_append(nonce, &Self::aad(&key_id, segment), &mut buf)?;
        let mut sealed = [0u8; 32 + TAG_LEN];
        sealed.copy_from_slice(&buf);
        buf.zeroize();
        Ok(WrappedKey {
            key_id,
            nonce,
            sealed,
        })
    }

    /// Opens the data key. Fails with [`CodecError::KeyMismatch`] when `master` is not the key
    /// it was wrapped under, and [`CodecError::Integrity`] when any bit was altered or the
    /// wrapped key belongs to another segment.
    pub fn unwrap(&self, master: &MasterKey, segment: &SegmentId) -> Result<DataKey> {
        let found = master.key_id();
        if found != self.key_id {
            return Err(CodecError::KeyMismatch {
                expected: self.key_id,
                found,
            });
        }
        let mut buf = self.sealed;
        let opened = Self::aead(master, segment)?.open(
            self.nonce,
            &Self::aad(&self.key_id, segment),
            &mut buf,
        );
        let out = match opened {
            Some(32) => {
                let mut k = [0u8; 32];
                k.copy_from_slice(&buf[..32]);
                Ok(DataKey(k))
            }
            _ => Err(CodecError::integrity(format!(
                "wrapped key of segment {segment}"
            ))),
        };
        buf.zeroize();
        out
    }

    /// Key rotation: opens the data key under `old` and wraps it under `new` with a fresh
    /// `nonce`. Shards are untouched; only the wrapped key (in manifests and, lazily, shard
    /// headers) changes.
    pub fn rewrap(
        &self,
        old: &MasterKey,
        new: &MasterKey,
        segment: &SegmentId,
        nonce: [u8; NONCE_LEN],
    ) -> Result<Self> {
        let data_key = self.unwrap(old, segment)?;
        Self::wrap(new, segment, &data_key, nonce)
    }

    /// The master key this is wrapped under.
    pub fn key_id(&self) -> KeyId {
        self.key_id
    }

    pub(crate) fn write(&self, w: &mut Writer) {
        w.u8(FORMAT)
            .bytes(self.key_id.as_bytes())
            .bytes(&self.nonce)
            .bytes(&self.sealed);
    }

    /// Encodes to [`WrappedKey::LEN`] bytes.
    pub fn encode(&self) -> Vec<u8> {
        let mut w = Writer::with_capacity(Self::LEN);
        self.write(&mut w);
        w.buf
    }

    pub(crate) fn read(r: &mut Reader<'_>) -> Result<Self> {
        let format = r.u8("wrapped key format")?;
        if format != FORMAT {
            return Err(CodecError::malformed(
                Format::WrappedKey,
                format!("unknown wrapped key format {format}"),
            ));
        }
        Ok(WrappedKey {
            key_id: KeyId(r.array("key id")?),
            nonce: r.array("nonce")?,
            sealed: r.array("sealed key")?,
        })
    }

    /// Decodes exactly [`WrappedKey::LEN`] bytes. This checks the structure only;
    /// [`WrappedKey::unwrap`] checks integrity.
    pub fn decode(bytes: &[u8]) -> Result<Self> {
        let mut r = Reader::new(bytes, Format::WrappedKey);
        let k = Self::read(&mut r)?;
        r.expect_end()?;
        Ok(k)
    }
}
