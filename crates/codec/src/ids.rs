//! Identifier newtypes used in public signatures.
//!
//! Ids are opaque random bytes chosen by the caller (the codec never generates randomness);
//! they display as lowercase hex.

use std::fmt;

macro_rules! id16 {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name(pub [u8; 16]);

        impl $name {
            /// The raw bytes.
            pub fn as_bytes(&self) -> &[u8; 16] {
                &self.0
            }
            /// Lowercase hex, 32 characters.
            pub fn to_hex(&self) -> String {
                hex(&self.0)
            }
            /// Parses 32 hex digits ([`Self::to_hex`]'s form); `None` for anything else.
            pub fn from_hex(text: &str) -> Option<Self> {
                if text.len() != 32 {
                    return None;
                }
                let mut id = [0u8; 16];
                for (i, b) in id.iter_mut().enumerate() {
                    *b = u8::from_str_radix(text.get(2 * i..2 * i + 2)?, 16).ok()?;
                }
                Some($name(id))
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.to_hex())
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}({})", stringify!($name), self.to_hex())
            }
        }
    };
}

id16!(
    /// Identifies a master key: derived from the key itself (HKDF), so it can be stored next to
    /// anything sealed under the key without revealing it.
    KeyId
);
id16!(
    /// Identifies one object version (random, chosen by the engine).
    VersionId
);
id16!(
    /// Identifies one segment: a run of plaintext encoded under one data key and one set of
    /// codec parameters (a whole object, or one uploaded part of a multipart object).
    SegmentId
);

/// Position of a shard (and of its chunk in every stripe) in `0..k+m`: `0..k` are data, `k..`
/// are parity.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Debug)]
pub struct ShardIdx(pub u8);

impl ShardIdx {
    /// As a `usize` index.
    pub fn get(self) -> usize {
        self.0 as usize
    }
}

impl fmt::Display for ShardIdx {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

pub(crate) fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(DIGITS[(b >> 4) as usize] as char);
        s.push(DIGITS[(b & 15) as usize] as char);
    }
    s
}

pub(crate) fn unhex(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) {
        return None;
    }
    let digit = |c: u8| -> Option<u8> {
        match c {
            b'0'..=b'9' => Some(c - b'0'),
            b'a'..=b'f' => Some(c - b'a' + 10),
            b'A'..=b'F' => Some(c - b'A' + 10),
            _ => None,
        }
    };
    s.as_bytes()
        .chunks(2)
        .map(|p| Some(digit(p[0])? << 4 | digit(p[1])?))
        .collect()
}
