//! Shares of the vault master key (Shamir's secret sharing over GF(2^8), by the `blahaj`
//! crate): any `threshold` of `n` shares give the key back, fewer give nothing about it.
//!
//! A share is a line a person can write down and type back:
//!
//! ```text
//! archipel-share-1 3/2 4D0Q-7YKX-…-9C2M
//! ```
//!
//! `3/2` is the threshold and the share's index (its x coordinate, 1–255); the groups are
//! Crockford base32 (digits and capitals without I, L, O, U; read back case-insensitively,
//! with O as 0 and I, L as 1; dashes and spaces ignored) of 44 bytes: the split's id (4
//! random bytes, so shares of different splits are not mixed), the first 4 bytes of the key's
//! id (public: it is in the vault header; it names the vault a share belongs to), the share's
//! 32 bytes, and a checksum — the first 4 bytes of SHA-256 over the label, threshold, index and
//! the 40 bytes before it — so a mistyped share is named as such instead of giving a wrong key.
//! [`combine`] checks that the shares agree (split, key, threshold, distinct indices, enough of
//! them) and that the key they give has the key id they name.
//!
//! Splitting needs randomness; the codec takes none, so [`KeyShare::from_point`] builds a share
//! from a point the caller's dealer drew.

use data_encoding::{Encoding, Specification};
use zeroize::{Zeroize, Zeroizing};

use crate::error::{CodecError, Format, Result};
use crate::keys::MasterKey;

/// What every share starts with.
pub const LABEL: &str = "archipel-share-1";
/// Bytes a share's base32 part stands for.
const BODY_LEN: usize = 4 + 4 + 32 + 4;

/// One share of a master key. Its secret part is zeroed on drop.
#[derive(Clone, PartialEq, Eq)]
pub struct KeyShare {
    /// Shares needed to give the key back.
    pub threshold: u8,
    /// This share's index (x coordinate), 1–255.
    pub index: u8,
    /// The split it belongs to.
    pub split_id: [u8; 4],
    /// The first 4 bytes of the key's id.
    pub key_id_prefix: [u8; 4],
    value: Zeroizing<[u8; 32]>,
}

impl std::fmt::Debug for KeyShare {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyShare")
            .field("threshold", &self.threshold)
            .field("index", &self.index)
            .field("split_id", &self.split_id)
            .finish_non_exhaustive()
    }
}

fn base32() -> Result<Encoding> {
    let mut spec = Specification::new();
    spec.symbols.push_str("0123456789ABCDEFGHJKMNPQRSTVWXYZ");
    spec.translate.from.push_str("abcdefghjkmnpqrstvwxyzoOiIlL");
    spec.translate.to.push_str("ABCDEFGHJKMNPQRSTVWXYZ001111");
    spec.ignore.push_str("- \t");
    spec.check_trailing_bits = false;
    spec.encoding()
        .map_err(|e| CodecError::InvalidInput(format!("share alphabet: {e}")))
}

fn checksum(threshold: u8, index: u8, body: &[u8]) -> [u8; 4] {
    let mut ctx = aws_lc_rs::digest::Context::new(&aws_lc_rs::digest::SHA256);
    ctx.update(LABEL.as_bytes());
    ctx.update(&[threshold, index]);
    ctx.update(body);
    let d = ctx.finish();
    let mut out = [0u8; 4];
    out.copy_from_slice(&d.as_ref()[..4]);
    out
}

fn malformed(reason: impl Into<String>) -> CodecError {
    CodecError::malformed(Format::KeyShare, reason)
}

impl KeyShare {
    /// The share at `(index, value)` of a split of `key` into shares needing `threshold`.
    pub fn from_point(
        key: &MasterKey,
        threshold: u8,
        split_id: [u8; 4],
        index: u8,
        value: [u8; 32],
    ) -> Result<Self> {
        if index == 0 {
            return Err(CodecError::InvalidInput(
                "share index 0 is the secret itself".into(),
            ));
        }
        if threshold < 2 {
            return Err(CodecError::InvalidInput(
                "a threshold below 2 is a copy of the key, not a share".into(),
            ));
        }
        let mut key_id_prefix = [0u8; 4];
        key_id_prefix.copy_from_slice(&key.key_id().as_bytes()[..4]);
        Ok(KeyShare {
            threshold,
            index,
            split_id,
            key_id_prefix,
            value: Zeroizing::new(value),
        })
    }

    /// The line to write down (see the module docs).
    pub fn to_text(&self) -> Result<Zeroizing<String>> {
        let mut body = Zeroizing::new([0u8; BODY_LEN]);
        body[..4].copy_from_slice(&self.split_id);
        body[4..8].copy_from_slice(&self.key_id_prefix);
        body[8..40].copy_from_slice(&self.value[..]);
        let sum = checksum(self.threshold, self.index, &body[..40]);
        body[40..].copy_from_slice(&sum);
        let b32 = Zeroizing::new(base32()?.encode(&body[..]));
        let groups: Vec<&str> = b32
            .as_bytes()
            .chunks(4)
            .map(|c| std::str::from_utf8(c).unwrap_or(""))
            .collect();
        Ok(Zeroizing::new(format!(
            "{LABEL} {}/{} {}",
            self.threshold,
            self.index,
            groups.join("-")
        )))
    }

    /// Reads a share written by [`KeyShare::to_text`]; an error says what is wrong (a
    /// checksum that does not match: a mistyped share).
    pub fn parse(text: &str) -> Result<Self> {
        let mut words = text.split_whitespace();
        if words.next() != Some(LABEL) {
            return Err(malformed(format!("a share starts with `{LABEL}`")));
        }
        let ti = words
            .next()
            .ok_or_else(|| malformed("missing `threshold/index` after the label"))?;
        let (t, i) = ti
            .split_once('/')
            .ok_or_else(|| malformed(format!("`{ti}` is not `threshold/index`")))?;
        let threshold: u8 = t
            .parse()
            .map_err(|_| malformed(format!("threshold `{t}` is not a number from 2 to 255")))?;
        let index: u8 = i
            .parse()
            .map_err(|_| malformed(format!("index `{i}` is not a number from 1 to 255")))?;
        if threshold < 2 || index == 0 {
            return Err(malformed(format!(
                "threshold {threshold} and index {index}: a threshold is at least 2, an index at least 1"
            )));
        }
        let rest: String = words.collect::<Vec<_>>().concat();
        let body = Zeroizing::new(base32()?.decode(rest.as_bytes()).map_err(|e| {
            malformed(format!(
                "the groups are not base32 (digits and letters except I, L, O, U): {e}"
            ))
        })?);
        if body.len() != BODY_LEN {
            return Err(malformed(format!(
                "the groups hold {} bytes, a share {BODY_LEN}: characters are missing or extra",
                body.len()
            )));
        }
        if checksum(threshold, index, &body[..40]) != body[40..] {
            return Err(CodecError::Integrity {
                what: format!("key share {index}: its checksum does not match (mistyped?)"),
            });
        }
        let mut split_id = [0u8; 4];
        split_id.copy_from_slice(&body[..4]);
        let mut key_id_prefix = [0u8; 4];
        key_id_prefix.copy_from_slice(&body[4..8]);
        let mut value = [0u8; 32];
        value.copy_from_slice(&body[8..40]);
        let share = KeyShare {
            threshold,
            index,
            split_id,
            key_id_prefix,
            value: Zeroizing::new(value),
        };
        value.zeroize();
        Ok(share)
    }

    /// The key id prefix as hex (what `archipel` shows of the vault a share belongs to).
    pub fn key_id_hex(&self) -> String {
        self.key_id_prefix
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    }
}

/// The master key from `shares`: at least their threshold, all of one split, distinct indices;
/// the key they give must have the key id they name.
pub fn combine(shares: &[KeyShare]) -> Result<MasterKey> {
    let Some(first) = shares.first() else {
        return Err(CodecError::InvalidInput("no key share given".into()));
    };
    for s in shares {
        if (s.split_id, s.key_id_prefix, s.threshold)
            != (first.split_id, first.key_id_prefix, first.threshold)
        {
            return Err(CodecError::InvalidInput(format!(
                "key share {} belongs to another split than share {} (key {} vs {}, threshold {} vs {})",
                s.index,
                first.index,
                s.key_id_hex(),
                first.key_id_hex(),
                s.threshold,
                first.threshold
            )));
        }
    }
    let mut indices: Vec<u8> = shares.iter().map(|s| s.index).collect();
    indices.sort_unstable();
    if let Some(w) = indices.windows(2).find(|w| w[0] == w[1]) {
        return Err(CodecError::InvalidInput(format!(
            "key share {} is given twice",
            w[0]
        )));
    }
    if shares.len() < usize::from(first.threshold) {
        return Err(CodecError::InvalidInput(format!(
            "{} key shares given; this split needs {}",
            shares.len(),
            first.threshold
        )));
    }
    let points: Vec<blahaj::Share> = shares
        .iter()
        .filter_map(|s| {
            let mut raw = Zeroizing::new(Vec::with_capacity(33));
            raw.push(s.index);
            raw.extend_from_slice(&s.value[..]);
            blahaj::Share::try_from(&raw[..]).ok()
        })
        .collect();
    let secret = Zeroizing::new(
        blahaj::Sharks(first.threshold)
            .recover(&points)
            .map_err(|e| CodecError::InvalidInput(format!("key shares: {e}")))?,
    );
    let bytes: [u8; 32] = secret[..]
        .try_into()
        .map_err(|_| CodecError::InvalidInput("key shares of a key that is not 32 bytes".into()))?;
    let key = MasterKey::from_bytes(bytes);
    if key.key_id().as_bytes()[..4] != first.key_id_prefix {
        return Err(CodecError::Integrity {
            what:
                "key shares: together they do not give the key they were split from (one is wrong)"
                    .into(),
        });
    }
    Ok(key)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    /// A 3-of-5 split of `key` (the dealer, which draws the coefficients, is the caller's).
    fn split(key: &MasterKey) -> Vec<KeyShare> {
        blahaj::Sharks(3)
            .dealer(key.expose())
            .take(5)
            .map(|s| {
                let raw = Vec::from(&s);
                let value: [u8; 32] = raw[1..].try_into().unwrap();
                KeyShare::from_point(key, 3, [1, 2, 3, 4], raw[0], value).unwrap()
            })
            .collect()
    }

    #[test]
    fn any_three_of_five_give_the_key_and_two_do_not() {
        let key = MasterKey::from_bytes([0x5a; 32]);
        let shares = split(&key);
        for a in 0..5 {
            for b in a + 1..5 {
                for c in b + 1..5 {
                    let got = combine(&[shares[a].clone(), shares[b].clone(), shares[c].clone()])
                        .unwrap();
                    assert_eq!(got.key_id(), key.key_id());
                }
                let e = combine(&[shares[a].clone(), shares[b].clone()]).unwrap_err();
                assert!(e.to_string().contains("needs 3"), "{e}");
            }
        }
    }

    #[test]
    fn shares_round_trip_as_text_and_a_typo_is_named() {
        let key = MasterKey::from_bytes([0x11; 32]);
        for s in split(&key) {
            let text = s.to_text().unwrap();
            assert!(text.starts_with("archipel-share-1 3/"), "{}", *text);
            assert_eq!(KeyShare::parse(&text).unwrap(), s);
            // Lower case, O for 0, extra spaces: the same share.
            let (head, groups) = text.split_at(text.rfind(' ').unwrap());
            let sloppy = format!(
                "{head}  {}",
                groups.replace('0', "o").to_lowercase().replace('-', " - ")
            );
            assert_eq!(KeyShare::parse(&sloppy).unwrap(), s, "{sloppy}");
            // One character changed in the groups: named as mistyped.
            let groups_at = text.rfind(' ').unwrap() + 1;
            let mut bad = text.as_bytes().to_vec();
            let pos = groups_at + 5;
            bad[pos] = if bad[pos] == b'A' { b'B' } else { b'A' };
            let e = KeyShare::parse(std::str::from_utf8(&bad).unwrap()).unwrap_err();
            assert!(
                e.to_string().contains(&format!("key share {}", s.index))
                    && e.to_string().contains("mistyped"),
                "{e}"
            );
        }
        // A share with a group left out, and one of another split.
        let s = split(&key);
        let text = s[0].to_text().unwrap();
        let short = &text[..text.len() - 5];
        assert!(KeyShare::parse(short).is_err());
        let mut other = s[1].clone();
        other.split_id = [9, 9, 9, 9];
        let e = combine(&[s[0].clone(), other, s[2].clone()]).unwrap_err();
        assert!(e.to_string().contains("another split"), "{e}");
    }
}
