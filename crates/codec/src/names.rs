//! The segment ids of the metadata blobs (journal segments and snapshot parts): a keyed
//! pseudorandom permutation of what the blob is — AES-256 of one 16-byte block under a key
//! derived from the master key for this purpose only. A provider sees 128 random-looking
//! bits; the vault reads every blob's kind, run and number back from the name alone, which is
//! what lets it compact the journal (delete what a snapshot supersedes) and skip superseded
//! segments during recovery without reading them.
//!
//! The block is `kind ‖ run (48 bits) ‖ number (48 bits) ‖ part (24 bits)`, big-endian, with
//! `kind` `J` (journal segment, part 0) or `S` (snapshot part). A name that does not decrypt to
//! that shape (a random id, e.g. of a journal written before names were derived) is no
//! metadata name: the chance that a random id passes is 2⁻³² for journal names and 2⁻⁸ ×
//! (the share of valid parts) for snapshot names, and what passes is still authenticated by
//! its shard headers before anything is applied.

use aws_lc_rs::cipher::{
    AES_256, DecryptingKey, DecryptionContext, EncryptingKey, UnboundCipherKey,
};

use crate::error::{CodecError, Result};
use crate::ids::SegmentId;
use crate::keys::MasterKey;

/// The largest run and number a name holds (48 bits).
pub const MAX_RUN: u64 = (1 << 48) - 1;
/// The largest snapshot part a name holds (24 bits).
pub const MAX_PART: u32 = (1 << 24) - 1;

/// What a metadata blob is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum MetaBlob {
    /// Segment `number` of journal run `run`.
    Journal {
        /// The writer's run.
        run: u64,
        /// The segment's number within the run.
        number: u64,
    },
    /// Part `part` of the snapshot taken at journal position (`run`, `number`): the
    /// snapshot holds the state of every record in the segments before that position.
    Snapshot {
        /// The run of the position.
        run: u64,
        /// The segment number of the position.
        number: u64,
        /// The part (0 is the seal, written last).
        part: u32,
    },
}

/// Names metadata blobs and reads names back (see the module docs).
pub struct MetaNamer {
    enc: EncryptingKey,
    dec: DecryptingKey,
}

impl std::fmt::Debug for MetaNamer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MetaNamer(..)")
    }
}

impl MasterKey {
    /// The namer of this vault's metadata blobs.
    pub fn meta_namer(&self) -> Result<MetaNamer> {
        let key = zeroize::Zeroizing::new(self.derive::<32>(b"metadata-blob-names"));
        let bad = |_| CodecError::Crypto("cannot make the metadata-name key");
        let unbound = || UnboundCipherKey::new(&AES_256, key.as_slice()).map_err(bad);
        Ok(MetaNamer {
            enc: EncryptingKey::ecb(unbound()?).map_err(bad)?,
            dec: DecryptingKey::ecb(unbound()?).map_err(bad)?,
        })
    }
}

impl MetaNamer {
    /// The segment id naming `blob`; runs and numbers above [`MAX_RUN`] and parts above
    /// [`MAX_PART`] have no name.
    pub fn name(&self, blob: MetaBlob) -> Result<SegmentId> {
        let (kind, run, number, part) = match blob {
            MetaBlob::Journal { run, number } => (b'J', run, number, 0),
            MetaBlob::Snapshot { run, number, part } => (b'S', run, number, part),
        };
        if run > MAX_RUN || number > MAX_RUN || part > MAX_PART {
            return Err(CodecError::InvalidInput(format!(
                "metadata name out of range: run {run}, number {number}, part {part}"
            )));
        }
        let mut block = [0u8; 16];
        block[0] = kind;
        block[1..7].copy_from_slice(&run.to_be_bytes()[2..]);
        block[7..13].copy_from_slice(&number.to_be_bytes()[2..]);
        block[13..16].copy_from_slice(&part.to_be_bytes()[1..]);
        self.enc
            .encrypt(&mut block)
            .map_err(|_| CodecError::Crypto("cannot encrypt a metadata name"))?;
        Ok(SegmentId(block))
    }

    /// What the segment id `id` names, if it is a metadata name of this vault.
    pub fn parse(&self, id: &SegmentId) -> Option<MetaBlob> {
        let mut block = id.0;
        self.dec.decrypt(&mut block, DecryptionContext::None).ok()?;
        let mut r = [0u8; 8];
        r[2..].copy_from_slice(&block[1..7]);
        let mut n = [0u8; 8];
        n[2..].copy_from_slice(&block[7..13]);
        let mut p = [0u8; 4];
        p[1..].copy_from_slice(&block[13..16]);
        let (run, number, part) = (
            u64::from_be_bytes(r),
            u64::from_be_bytes(n),
            u32::from_be_bytes(p),
        );
        match block[0] {
            b'J' if part == 0 => Some(MetaBlob::Journal { run, number }),
            b'S' => Some(MetaBlob::Snapshot { run, number, part }),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    //! Names read back under their key only, and look random.
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn names_read_back_and_reveal_nothing_without_the_key() {
        let key = MasterKey::from_bytes([7; 32]);
        let namer = key.meta_namer().unwrap();
        let blobs = [
            MetaBlob::Journal { run: 1, number: 0 },
            MetaBlob::Journal {
                run: MAX_RUN,
                number: MAX_RUN,
            },
            MetaBlob::Snapshot {
                run: 3,
                number: 17,
                part: 0,
            },
            MetaBlob::Snapshot {
                run: 3,
                number: 17,
                part: MAX_PART,
            },
        ];
        let mut seen = std::collections::HashSet::new();
        for b in blobs {
            let id = namer.name(b).unwrap();
            assert!(seen.insert(id), "two blobs share a name");
            assert_eq!(namer.parse(&id), Some(b));
            // Another vault's key reads nothing (or, rarely, something else) from it.
            let other = MasterKey::from_bytes([8; 32]).meta_namer().unwrap();
            assert_ne!(other.parse(&id), Some(b));
            // Nothing of the plaintext shows: neighbouring numbers differ in about half the bits.
        }
        let a = namer.name(MetaBlob::Journal { run: 1, number: 0 }).unwrap();
        let b = namer.name(MetaBlob::Journal { run: 1, number: 1 }).unwrap();
        let differing: u32 = a.0.iter().zip(b.0).map(|(x, y)| (x ^ y).count_ones()).sum();
        assert!(differing > 32, "{differing} of 128 bits differ");
        assert!(
            namer
                .name(MetaBlob::Journal {
                    run: MAX_RUN + 1,
                    number: 0
                })
                .is_err()
        );
        // Random ids are (almost always) not metadata names.
        let misses = (0u8..=255)
            .filter(|i| namer.parse(&SegmentId([*i; 16])).is_some())
            .count();
        assert!(misses < 8, "{misses} of 256 random ids parse");
    }
}
