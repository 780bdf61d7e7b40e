//! Little-endian byte writer and bounds-checked reader shared by every format.
//!
//! The reader never panics and never allocates more than the input it was given: every length
//! is checked against the bytes that remain before anything is copied.

use crate::error::{CodecError, Format, Result};

/// Appends little-endian fields to a `Vec<u8>`.
#[derive(Debug, Default)]
pub(crate) struct Writer {
    pub(crate) buf: Vec<u8>,
}

impl Writer {
    pub(crate) fn with_capacity(cap: usize) -> Self {
        Writer {
            buf: Vec::with_capacity(cap),
        }
    }
    pub(crate) fn u8(&mut self, v: u8) -> &mut Self {
        self.buf.push(v);
        self
    }
    pub(crate) fn u16(&mut self, v: u16) -> &mut Self {
        self.buf.extend_from_slice(&v.to_le_bytes());
        self
    }
    pub(crate) fn u32(&mut self, v: u32) -> &mut Self {
        self.buf.extend_from_slice(&v.to_le_bytes());
        self
    }
    pub(crate) fn u64(&mut self, v: u64) -> &mut Self {
        self.buf.extend_from_slice(&v.to_le_bytes());
        self
    }
    pub(crate) fn bytes(&mut self, v: &[u8]) -> &mut Self {
        self.buf.extend_from_slice(v);
        self
    }
    /// A string or byte field prefixed by its length as `u16`.
    pub(crate) fn bytes16(&mut self, field: &'static str, v: &[u8]) -> Result<&mut Self> {
        let len = u16::try_from(v.len()).map_err(|_| CodecError::TooLarge {
            field,
            len: v.len(),
            max: u16::MAX as usize,
        })?;
        self.u16(len);
        Ok(self.bytes(v))
    }
    /// A string or byte field prefixed by its length as `u32`.
    pub(crate) fn bytes32(&mut self, field: &'static str, v: &[u8]) -> Result<&mut Self> {
        let len = u32::try_from(v.len()).map_err(|_| CodecError::TooLarge {
            field,
            len: v.len(),
            max: u32::MAX as usize,
        })?;
        self.u32(len);
        Ok(self.bytes(v))
    }
    pub(crate) fn len(&self) -> usize {
        self.buf.len()
    }
}

/// Reads little-endian fields from a byte slice; every read is bounds-checked.
#[derive(Debug, Clone)]
pub(crate) struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
    format: Format,
}

impl<'a> Reader<'a> {
    pub(crate) fn new(buf: &'a [u8], format: Format) -> Self {
        Reader {
            buf,
            pos: 0,
            format,
        }
    }
    pub(crate) fn err(&self, reason: impl Into<String>) -> CodecError {
        CodecError::malformed(self.format, reason)
    }
    pub(crate) fn remaining(&self) -> usize {
        self.buf.len() - self.pos
    }
    pub(crate) fn is_empty(&self) -> bool {
        self.remaining() == 0
    }
    pub(crate) fn take(&mut self, n: usize, what: &str) -> Result<&'a [u8]> {
        if n > self.remaining() {
            return Err(self.err(format!(
                "truncated: {what} needs {n} bytes at offset {}, {} remain",
                self.pos,
                self.remaining()
            )));
        }
        let out = &self.buf[self.pos..self.pos + n];
        self.pos += n;
        Ok(out)
    }
    pub(crate) fn array<const N: usize>(&mut self, what: &str) -> Result<[u8; N]> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.take(N, what)?);
        Ok(out)
    }
    pub(crate) fn u8(&mut self, what: &str) -> Result<u8> {
        Ok(self.array::<1>(what)?[0])
    }
    pub(crate) fn u16(&mut self, what: &str) -> Result<u16> {
        Ok(u16::from_le_bytes(self.array(what)?))
    }
    pub(crate) fn u32(&mut self, what: &str) -> Result<u32> {
        Ok(u32::from_le_bytes(self.array(what)?))
    }
    pub(crate) fn u64(&mut self, what: &str) -> Result<u64> {
        Ok(u64::from_le_bytes(self.array(what)?))
    }
    pub(crate) fn bytes16(&mut self, what: &str) -> Result<&'a [u8]> {
        let n = self.u16(what)? as usize;
        self.take(n, what)
    }
    pub(crate) fn bytes32(&mut self, what: &str) -> Result<&'a [u8]> {
        let n = self.u32(what)? as usize;
        self.take(n, what)
    }
    pub(crate) fn string16(&mut self, what: &str) -> Result<String> {
        let b = self.bytes16(what)?;
        String::from_utf8(b.to_vec()).map_err(|_| self.err(format!("{what} is not UTF-8")))
    }
    pub(crate) fn string32(&mut self, what: &str) -> Result<String> {
        let b = self.bytes32(what)?;
        String::from_utf8(b.to_vec()).map_err(|_| self.err(format!("{what} is not UTF-8")))
    }
    pub(crate) fn expect_end(&self) -> Result<()> {
        if self.is_empty() {
            Ok(())
        } else {
            Err(self.err(format!("{} unexpected trailing bytes", self.remaining())))
        }
    }
}
