//! The key hierarchy: a vault master key, keys derived from it, and per-segment data keys.
//!
//! ```text
//! passphrase ──Argon2id(salt, params from the vault header)──┐
//! key file (64 hex digits) ──────────────────────────────────┴─► master key (256 bit)
//!   master ──HKDF-SHA256──► key id        (public: names the key in wrapped keys and manifests)
//!          ──HKDF-SHA256──► key-wrap key  (wraps data keys, one derived sub-key per segment)
//!          ──HKDF-SHA256──► manifest key  (HMAC-SHA256 over every manifest)
//! data key (random, one per segment) ──► AES-256-GCM over every chunk, shard header and trailer
//! ```
//!
//! Rotating the master key means re-wrapping data keys and re-signing manifests; no shard on any
//! provider is rewritten. Key material is zeroed on drop.

use aws_lc_rs::hmac;
use zeroize::{Zeroize, ZeroizeOnDrop};

use crate::error::{CodecError, Format, Result};
use crate::ids::{KeyId, hex, unhex};

/// Argon2id cost parameters, stored in the vault header so the same passphrase always derives
/// the same key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KdfParams {
    /// Memory cost in KiB.
    pub m_cost_kib: u32,
    /// Number of passes.
    pub t_cost: u32,
    /// Lanes.
    pub p_cost: u32,
}

impl KdfParams {
    /// The default for new vaults: 64 MiB, 3 passes, 1 lane (RFC 9106's second recommended
    /// option, with one lane because derivation runs once per process start).
    pub const DEFAULT: KdfParams = KdfParams {
        m_cost_kib: 64 * 1024,
        t_cost: 3,
        p_cost: 1,
    };

    /// Cheap parameters for tests only (8 MiB, 1 pass): never use them for a real vault.
    pub const INSECURE_FAST_FOR_TESTS: KdfParams = KdfParams {
        m_cost_kib: 8 * 1024,
        t_cost: 1,
        p_cost: 1,
    };

    /// Upper bounds accepted when reading a vault header, so a forged header cannot make a
    /// gateway allocate unbounded memory or spin for hours.
    pub(crate) fn check(&self) -> Result<()> {
        let ok = (8..=4 * 1024 * 1024).contains(&self.m_cost_kib)
            && (1..=64).contains(&self.t_cost)
            && (1..=16).contains(&self.p_cost)
            && self.m_cost_kib >= 8 * self.p_cost;
        if ok {
            Ok(())
        } else {
            Err(CodecError::Kdf(format!(
                "Argon2id parameters out of range: m={} KiB, t={}, p={} (allowed: m 8 KiB..4 GiB, t 1..64, p 1..16)",
                self.m_cost_kib, self.t_cost, self.p_cost
            )))
        }
    }
}

/// The vault's 256-bit master key. Never leaves the gateway; zeroed on drop.
#[derive(Clone, Zeroize, ZeroizeOnDrop)]
pub struct MasterKey([u8; 32]);

impl std::fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "MasterKey(id {})", self.key_id())
    }
}

/// HKDF-SHA256 (RFC 5869) with the fixed salt `"archipel v1"`, for outputs of at most 32 bytes
/// (one expand block): `PRK = HMAC(salt, ikm)`, `OKM = HMAC(PRK, info ‖ 0x01)[..N]`.
pub(crate) fn hkdf<const N: usize>(ikm: &[u8], info: &[&[u8]]) -> [u8; N] {
    const { assert!(N <= 32) };
    let prk = hmac::sign(&hmac::Key::new(hmac::HMAC_SHA256, b"archipel v1"), ikm);
    let mut ctx = hmac::Context::with_key(&hmac::Key::new(hmac::HMAC_SHA256, prk.as_ref()));
    for part in info {
        ctx.update(part);
    }
    ctx.update(&[1]);
    let tag = ctx.sign();
    let mut out = [0u8; N];
    out.copy_from_slice(&tag.as_ref()[..N]);
    out
}

impl MasterKey {
    /// Wraps raw key bytes (from a key file or a secrets manager).
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        MasterKey(bytes)
    }

    /// Derives the master key from a passphrase with Argon2id.
    pub fn from_passphrase(passphrase: &[u8], salt: &[u8; 16], params: KdfParams) -> Result<Self> {
        params.check()?;
        let p = argon2::Params::new(params.m_cost_kib, params.t_cost, params.p_cost, Some(32))
            .map_err(|e| CodecError::Kdf(e.to_string()))?;
        let argon = argon2::Argon2::new(argon2::Algorithm::Argon2id, argon2::Version::V0x13, p);
        let mut out = [0u8; 32];
        argon
            .hash_password_into(passphrase, salt, &mut out)
            .map_err(|e| CodecError::Kdf(e.to_string()))?;
        Ok(MasterKey(out))
    }

    /// Parses the contents of a key file: 64 hex digits on the first line that is neither empty
    /// nor a `#` comment.
    pub fn from_key_file(contents: &str) -> Result<Self> {
        let line = contents
            .lines()
            .map(str::trim)
            .find(|l| !l.is_empty() && !l.starts_with('#'))
            .ok_or_else(|| CodecError::malformed(Format::KeyFile, "no key line found"))?;
        let mut raw = unhex(line)
            .ok_or_else(|| CodecError::malformed(Format::KeyFile, "key line is not hexadecimal"))?;
        if raw.len() != 32 {
            let n = raw.len();
            raw.zeroize();
            return Err(CodecError::malformed(
                Format::KeyFile,
                format!("key is {n} bytes, expected 32 (64 hex digits)"),
            ));
        }
        let mut key = [0u8; 32];
        key.copy_from_slice(&raw);
        raw.zeroize();
        Ok(MasterKey(key))
    }

    /// The contents of a key file holding this key (parsed back by [`MasterKey::from_key_file`]).
    pub fn to_key_file(&self) -> String {
        format!(
            "# Archipel vault master key (id {}).\n# Anyone holding this file and the providers can read the vault; losing it loses the vault.\n{}\n",
            self.key_id(),
            hex(&self.0)
        )
    }

    pub(crate) fn derive<const N: usize>(&self, info: &[u8]) -> [u8; N] {
        hkdf(&self.0, &[info])
    }

    /// The key's 32 bytes — only for splitting it into shares (`crate::keyshare`); never
    /// log or store them.
    pub fn expose(&self) -> &[u8; 32] {
        &self.0
    }

    /// The public identifier of this key.
    pub fn key_id(&self) -> KeyId {
        KeyId(self.derive(b"key-id"))
    }

    /// The key that wraps data keys (see [`crate::WrappedKey`]).
    pub(crate) fn wrap_key(&self) -> SecretBytes {
        SecretBytes(self.derive(b"key-wrap"))
    }

    /// The key that authenticates manifests.
    pub fn manifest_key(&self) -> ManifestKey {
        ManifestKey {
            key_id: self.key_id(),
            key: SecretBytes(self.derive(b"manifest-mac")),
        }
    }

    /// Seals a credential secret (an S3 access key's secret) for the metadata store:
    /// `1 ‖ nonce ‖ AES-256-GCM(secret)` under a key derived for this purpose only, with the
    /// credential's id as associated data (a sealed secret moved to another id does not open).
    /// `nonce` must be fresh random bytes.
    pub fn seal_secret(
        &self,
        id: &str,
        secret: &[u8],
        nonce: [u8; crate::aead::NONCE_LEN],
    ) -> Result<Vec<u8>> {
        let key = SecretBytes(self.derive(b"credential-secrets"));
        let aead = crate::aead::Aead::new(&key.0)?;
        let mut out = Vec::with_capacity(1 + nonce.len() + secret.len() + crate::aead::TAG_LEN);
        out.push(SEALED_SECRET_FORMAT);
        out.extend_from_slice(&nonce);
        let mut body = secret.to_vec();
        aead.seal_append(nonce, id.as_bytes(), &mut body)?;
        out.extend_from_slice(&body);
        body.zeroize();
        Ok(out)
    }

    /// Opens what [`MasterKey::seal_secret`] sealed for `id`.
    pub fn open_secret(&self, id: &str, sealed: &[u8]) -> Result<Vec<u8>> {
        let n = crate::aead::NONCE_LEN;
        let bad = || CodecError::integrity(format!("sealed secret of {id:?}"));
        if sealed.len() < 1 + n + crate::aead::TAG_LEN || sealed[0] != SEALED_SECRET_FORMAT {
            return Err(bad());
        }
        let mut nonce = [0u8; crate::aead::NONCE_LEN];
        nonce.copy_from_slice(&sealed[1..1 + n]);
        let key = SecretBytes(self.derive(b"credential-secrets"));
        let aead = crate::aead::Aead::new(&key.0)?;
        let mut buf = sealed[1 + n..].to_vec();
        let len = aead.open(nonce, id.as_bytes(), &mut buf).ok_or_else(bad)?;
        buf.truncate(len);
        Ok(buf)
    }
}

/// Format byte of a sealed credential secret.
const SEALED_SECRET_FORMAT: u8 = 1;

/// 32 secret bytes, zeroed on drop.
#[derive(Clone, Zeroize, ZeroizeOnDrop)]
pub(crate) struct SecretBytes(pub(crate) [u8; 32]);

/// Authenticates manifests (HMAC-SHA256), derived from a master key.
#[derive(Clone)]
pub struct ManifestKey {
    pub(crate) key_id: KeyId,
    pub(crate) key: SecretBytes,
}

impl std::fmt::Debug for ManifestKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ManifestKey(id {})", self.key_id)
    }
}

impl ManifestKey {
    /// The id of the master key this was derived from.
    pub fn key_id(&self) -> KeyId {
        self.key_id
    }
}

/// A segment's random 256-bit data key. The engine draws it from a CSPRNG; the codec never
/// generates randomness itself. Zeroed on drop.
#[derive(Clone, Zeroize, ZeroizeOnDrop)]
pub struct DataKey(pub(crate) [u8; 32]);

impl DataKey {
    /// Wraps 32 random bytes.
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        DataKey(bytes)
    }
}

impl std::fmt::Debug for DataKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("DataKey(..)")
    }
}
