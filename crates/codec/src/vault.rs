//! The vault header: what it takes, with the passphrase or key file, to derive the master key
//! and recognise it. It is not secret; it is stored in the data directory and on providers.
//!
//! Layout (76 bytes, little-endian; see docs/format.md):
//!
//! ```text
//! 0   "ARCV"
//! 4   u8 major (1)   5 u8 minor (0)
//! 6   u16 length of the whole header (76)
//! 8   [16] vault id
//! 24  u8 key source (1 = Argon2id passphrase, 2 = key file)   25..28 reserved, zero
//! 28  u32 Argon2id m_cost (KiB)   32 u32 t_cost   36 u32 p_cost   (zero for a key file)
//! 40  [16] Argon2id salt (zero for a key file)
//! 56  [16] key id of the master key
//! 72  u32 CRC-32C of bytes 0..72
//! ```
//!
//! The CRC separates "this header is damaged" from "wrong passphrase": a damaged header fails
//! with [`CodecError::Integrity`], a wrong passphrase with [`CodecError::WrongKey`].

use crate::error::{CodecError, Format, Result};
use crate::ids::KeyId;
use crate::keys::{KdfParams, MasterKey};
use crate::wire::{Reader, Writer};

const MAGIC: &[u8; 4] = b"ARCV";
const MAJOR: u8 = 1;
const MINOR: u8 = 0;

/// Where the master key comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeySource {
    /// Argon2id over a passphrase.
    Passphrase {
        /// Cost parameters.
        params: KdfParams,
        /// Random salt.
        salt: [u8; 16],
    },
    /// A key file holding the raw key.
    KeyFile,
}

/// The decoded vault header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VaultHeader {
    /// Random id of the vault.
    pub vault_id: [u8; 16],
    /// How to get the master key.
    pub source: KeySource,
    /// Id of the master key, to check a derived key against.
    pub key_id: KeyId,
}

impl VaultHeader {
    /// Encoded length.
    pub const LEN: usize = 76;

    /// Creates the header for a new vault whose master key is derived from `passphrase`;
    /// returns the header and the derived key. `vault_id` and `salt` must be random.
    pub fn create_with_passphrase(
        vault_id: [u8; 16],
        passphrase: &[u8],
        salt: [u8; 16],
        params: KdfParams,
    ) -> Result<(Self, MasterKey)> {
        let key = MasterKey::from_passphrase(passphrase, &salt, params)?;
        let header = VaultHeader {
            vault_id,
            source: KeySource::Passphrase { params, salt },
            key_id: key.key_id(),
        };
        Ok((header, key))
    }

    /// Creates the header for a vault whose master key lives in a key file.
    pub fn create_with_key(vault_id: [u8; 16], key: &MasterKey) -> Self {
        VaultHeader {
            vault_id,
            source: KeySource::KeyFile,
            key_id: key.key_id(),
        }
    }

    /// Derives the master key from a passphrase and checks it against the header.
    pub fn open_with_passphrase(&self, passphrase: &[u8]) -> Result<MasterKey> {
        match self.source {
            KeySource::Passphrase { params, salt } => {
                let key = MasterKey::from_passphrase(passphrase, &salt, params)?;
                self.check_key(key)
            }
            KeySource::KeyFile => Err(CodecError::InvalidInput(
                "this vault's master key is a key file, not a passphrase".into(),
            )),
        }
    }

    /// Checks that `key` is this vault's master key.
    pub fn check_key(&self, key: MasterKey) -> Result<MasterKey> {
        if key.key_id() == self.key_id {
            Ok(key)
        } else {
            Err(CodecError::WrongKey)
        }
    }

    /// Encodes to [`VaultHeader::LEN`] bytes.
    pub fn encode(&self) -> Vec<u8> {
        let mut w = Writer::with_capacity(Self::LEN);
        w.bytes(MAGIC)
            .u8(MAJOR)
            .u8(MINOR)
            .u16(Self::LEN as u16)
            .bytes(&self.vault_id);
        match self.source {
            KeySource::Passphrase { params, salt } => {
                w.u8(1)
                    .bytes(&[0; 3])
                    .u32(params.m_cost_kib)
                    .u32(params.t_cost)
                    .u32(params.p_cost)
                    .bytes(&salt);
            }
            KeySource::KeyFile => {
                w.u8(2).bytes(&[0; 3]).bytes(&[0; 12]).bytes(&[0; 16]);
            }
        }
        w.bytes(self.key_id.as_bytes());
        let crc = crc32c::crc32c(&w.buf);
        w.u32(crc);
        w.buf
    }

    /// Decodes and checks a header (magic, version, CRC, parameter bounds).
    pub fn decode(bytes: &[u8]) -> Result<Self> {
        let mut r = Reader::new(bytes, Format::VaultHeader);
        if r.take(4, "magic")? != MAGIC {
            return Err(r.err("bad magic (not an Archipel vault header)"));
        }
        let major = r.u8("major version")?;
        let minor = r.u8("minor version")?;
        if major != MAJOR {
            return Err(CodecError::UnsupportedVersion {
                format: Format::VaultHeader,
                found_major: major,
                found_minor: minor,
                supported_major: MAJOR,
            });
        }
        let len = r.u16("length")? as usize;
        if len < Self::LEN || len != bytes.len() {
            return Err(r.err(format!("length {len} out of range")));
        }
        // Minor versions may append fields before the CRC; the CRC is always the last 4 bytes.
        let body = &bytes[..len - 4];
        let stored = u32::from_le_bytes([
            bytes[len - 4],
            bytes[len - 3],
            bytes[len - 2],
            bytes[len - 1],
        ]);
        if crc32c::crc32c(body) != stored {
            return Err(CodecError::integrity("vault header checksum"));
        }
        let vault_id = r.array("vault id")?;
        let source_tag = r.u8("key source")?;
        r.take(3, "reserved")?;
        let m_cost_kib = r.u32("m_cost")?;
        let t_cost = r.u32("t_cost")?;
        let p_cost = r.u32("p_cost")?;
        let salt = r.array("salt")?;
        let source = match source_tag {
            1 => {
                let params = KdfParams {
                    m_cost_kib,
                    t_cost,
                    p_cost,
                };
                params.check()?;
                KeySource::Passphrase { params, salt }
            }
            2 => KeySource::KeyFile,
            other => return Err(r.err(format!("unknown key source {other}"))),
        };
        let key_id = KeyId(r.array("key id")?);
        Ok(VaultHeader {
            vault_id,
            source,
            key_id,
        })
    }
}
