//! AES-256-GCM (aws-lc-rs) and the nonce scheme.
//!
//! Every AES-GCM key in Archipel is used with nonces from exactly one of these sources:
//!
//! * a data key: deterministic nonces `domain ‖ index ‖ 0x0000 ‖ stripe (u64 LE)`, where the
//!   domain separates chunks (0), shard headers (1) and shard trailers (2). Each (domain, index,
//!   stripe) is sealed once per segment, and every sealed value is a pure function of the
//!   segment, so a nonce never meets two different plaintexts under one key;
//! * a per-segment key-wrap key (derived from the master key and the segment id): a random
//!   nonce from the caller, used once.

use aws_lc_rs::aead::{AES_256_GCM, Aad, LessSafeKey, Nonce, UnboundKey};

use crate::error::{CodecError, Result};

/// Length of an AES-GCM tag.
pub const TAG_LEN: usize = 16;
/// Length of an AES-GCM nonce.
pub const NONCE_LEN: usize = 12;

/// Nonce domains under a data key.
#[derive(Clone, Copy)]
#[repr(u8)]
pub(crate) enum Domain {
    Chunk = 0,
    ShardHeader = 1,
    ShardTrailer = 2,
}

pub(crate) fn nonce(domain: Domain, index: u8, stripe: u64) -> [u8; NONCE_LEN] {
    let mut n = [0u8; NONCE_LEN];
    n[0] = domain as u8;
    n[1] = index;
    n[4..].copy_from_slice(&stripe.to_le_bytes());
    n
}

/// An AES-256-GCM key ready for sealing and opening.
pub(crate) struct Aead(LessSafeKey);

impl Aead {
    pub(crate) fn new(key: &[u8; 32]) -> Result<Self> {
        let k = UnboundKey::new(&AES_256_GCM, key).map_err(|_| CodecError::Crypto("AES key"))?;
        Ok(Aead(LessSafeKey::new(k)))
    }

    /// Encrypts `buf` in place and appends the tag.
    pub(crate) fn seal_append(
        &self,
        nonce: [u8; NONCE_LEN],
        aad: &[u8],
        buf: &mut Vec<u8>,
    ) -> Result<()> {
        self.0
            .seal_in_place_append_tag(Nonce::assume_unique_for_key(nonce), Aad::from(aad), buf)
            .map_err(|_| CodecError::Crypto("AES-GCM seal"))
    }

    /// Verifies `chunk` (ciphertext ‖ tag) and decrypts it into `out`, which must be exactly
    /// the ciphertext's length. Returns false if the tag does not verify (then `out` holds
    /// garbage and must not be used).
    pub(crate) fn open_into(
        &self,
        nonce: [u8; NONCE_LEN],
        aad: &[u8],
        chunk: &[u8],
        out: &mut [u8],
    ) -> bool {
        let Some(ct_len) = chunk.len().checked_sub(TAG_LEN) else {
            return false;
        };
        if out.len() != ct_len {
            return false;
        }
        let (ct, tag) = chunk.split_at(ct_len);
        self.0
            .open_separate_gather(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(aad),
                ct,
                tag,
                out,
            )
            .is_ok()
    }

    /// Verifies and decrypts `buf` (ciphertext ‖ tag) in place; returns the plaintext length.
    /// On failure `buf` holds garbage and must not be used.
    pub(crate) fn open(&self, nonce: [u8; NONCE_LEN], aad: &[u8], buf: &mut [u8]) -> Option<usize> {
        if buf.len() < TAG_LEN {
            return None;
        }
        self.0
            .open_in_place(Nonce::assume_unique_for_key(nonce), Aad::from(aad), buf)
            .ok()
            .map(|p| p.len())
    }
}
