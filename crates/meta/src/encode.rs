//! The byte encoding of string maps (user metadata, provider labels) in one column: a version
//! byte, then a count and length-prefixed UTF-8 strings, all lengths as little-endian `u32`.

use crate::error::{MetaError, Result};
use crate::types::StringMap;

const VERSION: u8 = 1;

/// Encodes a map.
pub(crate) fn encode_map(map: &StringMap) -> Vec<u8> {
    let mut out = vec![VERSION];
    let put = |out: &mut Vec<u8>, s: &str| {
        out.extend_from_slice(&(s.len() as u32).to_le_bytes());
        out.extend_from_slice(s.as_bytes());
    };
    out.extend_from_slice(&(map.len() as u32).to_le_bytes());
    for (k, v) in map {
        put(&mut out, k);
        put(&mut out, v);
    }
    out
}

/// Decodes a map written by [`encode_map`].
pub(crate) fn decode_map(table: &'static str, bytes: &[u8]) -> Result<StringMap> {
    let bad = |why: &str| MetaError::corrupt(table, format!("string map: {why}"));
    let (&version, mut rest) = bytes.split_first().ok_or_else(|| bad("empty"))?;
    if version != VERSION {
        return Err(bad(&format!("unknown version {version}")));
    }
    let take_u32 = |rest: &mut &[u8]| -> Result<usize> {
        let (head, tail) = rest.split_at_checked(4).ok_or_else(|| bad("truncated"))?;
        *rest = tail;
        let mut b = [0u8; 4];
        b.copy_from_slice(head);
        Ok(u32::from_le_bytes(b) as usize)
    };
    let count = take_u32(&mut rest)?;
    let mut map = StringMap::new();
    for _ in 0..count {
        let mut pair = [String::new(), String::new()];
        for s in &mut pair {
            let len = take_u32(&mut rest)?;
            let (head, tail) = rest.split_at_checked(len).ok_or_else(|| bad("truncated"))?;
            rest = tail;
            *s = String::from_utf8(head.to_vec()).map_err(|_| bad("not UTF-8"))?;
        }
        let [k, v] = pair;
        map.insert(k, v);
    }
    if !rest.is_empty() {
        return Err(bad("trailing bytes"));
    }
    Ok(map)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn maps_round_trip_and_damage_is_refused() {
        let mut map = StringMap::new();
        map.insert("content-type".into(), "text/plain".into());
        map.insert("é".into(), String::new());
        let bytes = encode_map(&map);
        assert_eq!(decode_map("t", &bytes), Ok(map));
        assert_eq!(
            decode_map("t", &encode_map(&StringMap::new())),
            Ok(StringMap::new())
        );
        for cut in 0..bytes.len() {
            assert!(decode_map("t", &bytes[..cut]).is_err(), "cut at {cut}");
        }
    }
}
