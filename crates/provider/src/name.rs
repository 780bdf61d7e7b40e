//! Blob names: what the engine may call a blob, checked once so every provider can map names
//! to paths and keys without escaping.

use std::fmt;

use crate::error::{ErrorKind, ProviderError};

/// Longest blob name accepted.
pub const MAX_NAME_LEN: usize = 512;

/// A valid blob name: 1..=512 bytes of ASCII letters, digits, `-`, `_`, `.` and `/`, where `/`
/// separates non-empty segments and no segment is `.` or `..` or starts with `.`. These map to
/// file paths, S3 keys and WebDAV paths unchanged.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct BlobName(String);

impl BlobName {
    /// Checks and wraps a name.
    pub fn new(name: impl Into<String>) -> Result<Self, ProviderError> {
        let name = name.into();
        let bad = |why: &str| {
            Err(ProviderError::new(
                ErrorKind::InvalidName,
                "-",
                "name",
                Some(&name),
                why.to_string(),
            ))
        };
        if name.is_empty() || name.len() > MAX_NAME_LEN {
            return bad("length must be 1..=512 bytes");
        }
        if !name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'/'))
        {
            return bad("only ASCII letters, digits, '-', '_', '.' and '/' are allowed");
        }
        if name
            .split('/')
            .any(|seg| seg.is_empty() || seg.starts_with('.'))
        {
            return bad("segments must be non-empty and must not start with '.'");
        }
        Ok(BlobName(name))
    }

    /// The name as a string.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for BlobName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for BlobName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "BlobName({})", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::BlobName;

    #[test]
    fn names_are_checked() {
        for ok in ["a", "ab/cd", "0f/0f1e2d3c.shard", "A-Z_a-z.0-9/x"] {
            assert!(BlobName::new(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "/a",
            "a/",
            "a//b",
            "../a",
            "a/./b",
            ".hidden",
            "a b",
            "é",
            &"x".repeat(513),
        ] {
            assert!(BlobName::new(bad).is_err(), "{bad:?}");
        }
    }
}
