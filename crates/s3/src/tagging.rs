//! Object tags: at most 10 `key=value` pairs, stored with the object version as the
//! `x-amz-tagging` header in its S3 wire form (URL-encoded), validated as S3 does.

use s3s::dto::{Tag, TagSet};
use s3s::{S3Error, S3Result, s3_error};

/// The stored header holding an object's tags.
pub(crate) const HEADER: &str = "x-amz-tagging";

fn decode(s: &str) -> S3Result<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' => {
                let hex = s.get(i + 1..i + 3).ok_or_else(bad_encoding)?;
                out.push(u8::from_str_radix(hex, 16).map_err(|_| bad_encoding())?);
                i += 2;
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8(out).map_err(|_| bad_encoding())
}

fn encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn bad_encoding() -> S3Error {
    s3_error!(InvalidTag, "the tag set is not valid URL encoding")
}

/// Checks a tag set against S3's limits.
fn validate(tags: &[(String, String)]) -> S3Result<()> {
    if tags.len() > 10 {
        return Err(s3_error!(
            InvalidTag,
            "Object tags cannot be greater than 10"
        ));
    }
    for (i, (k, v)) in tags.iter().enumerate() {
        if k.is_empty() || k.chars().count() > 128 {
            return Err(s3_error!(InvalidTag, "tag keys are 1 to 128 characters"));
        }
        if v.chars().count() > 256 {
            return Err(s3_error!(
                InvalidTag,
                "tag values are at most 256 characters"
            ));
        }
        if tags[..i].iter().any(|(o, _)| o == k) {
            return Err(s3_error!(
                InvalidTag,
                "Cannot provide multiple Tags with the same key"
            ));
        }
    }
    Ok(())
}

/// Parses the `x-amz-tagging` form (`a=1&b=2`).
pub(crate) fn parse(header: &str) -> S3Result<Vec<(String, String)>> {
    let mut tags = Vec::new();
    for pair in header.split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        tags.push((decode(k)?, decode(v)?));
    }
    validate(&tags)?;
    Ok(tags)
}

/// The stored form of a tag set.
pub(crate) fn render(tags: &[(String, String)]) -> String {
    tags.iter()
        .map(|(k, v)| format!("{}={}", encode(k), encode(v)))
        .collect::<Vec<_>>()
        .join("&")
}

/// A tag set from the XML body of `PutObjectTagging`.
pub(crate) fn from_set(set: &TagSet) -> S3Result<Vec<(String, String)>> {
    let tags: Vec<(String, String)> = set
        .iter()
        .map(|t| {
            (
                t.key.clone().unwrap_or_default(),
                t.value.clone().unwrap_or_default(),
            )
        })
        .collect();
    validate(&tags)?;
    Ok(tags)
}

/// The XML tag set of stored tags.
pub(crate) fn to_set(tags: &[(String, String)]) -> TagSet {
    tags.iter()
        .map(|(k, v)| Tag {
            key: Some(k.clone()),
            value: Some(v.clone()),
        })
        .collect()
}

/// The tags stored among an object's headers.
pub(crate) fn stored(headers: &[(String, String)]) -> Vec<(String, String)> {
    headers
        .iter()
        .find(|(n, _)| n == HEADER)
        .and_then(|(_, v)| parse(v).ok())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tags_round_trip_and_are_validated() {
        let t = parse("project=archipel&note=a%20b%2Bc&empty=").unwrap_or_default();
        assert_eq!(
            t,
            vec![
                ("project".to_string(), "archipel".to_string()),
                ("note".to_string(), "a b+c".to_string()),
                ("empty".to_string(), String::new()),
            ]
        );
        assert_eq!(parse(&render(&t)).unwrap_or_default(), t);
        assert!(parse("a=1&a=2").is_err());
        assert!(
            parse(
                &(0..11)
                    .map(|i| format!("k{i}=v"))
                    .collect::<Vec<_>>()
                    .join("&")
            )
            .is_err()
        );
        assert!(parse(&format!("{}=v", "k".repeat(129))).is_err());
        assert!(parse("k=%zz").is_err());
    }
}
