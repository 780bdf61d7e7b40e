//! The fields of a browser-form POST, read from the bytes before its file exactly as `s3s`
//! 0.14 reads them, so that the guard checks the very fields `s3s` will act on.
//!
//! `s3s` decides what a form says in three steps, each ported here line for line:
//!
//! * **Is it a form, and what is its boundary** ([`boundary`]): the one UTF-8 `Content-Type`
//!   header (`OrderedHeaders::get_unique`), parsed by the `mime` 0.3 crate (type and subtype
//!   compared without case, the subtype ending at a `+suffix`; parameter names without case,
//!   the first `boundary` parameter; quoted values without escapes).
//! * **Where each part's headers end** (`part_headers`): `httparse` 1.10 `parse_headers` with
//!   its default configuration and room for two headers (a third is an error), lines ending in
//!   CRLF or LF, values trimmed at the end.
//! * **The parts** ([`fields`]): `s3s` `http/multipart.rs` `try_parse` and its `CrlfLines`
//!   (lines end only at CRLF; an unterminated rest is a line), `Content-Disposition` exactly
//!   `form-data; name="…"` with an optional `; filename="…"` (the `nom` grammar, case
//!   sensitive), field names lowercased and stably sorted, a repeated name read as its last
//!   occurrence (`find_field_value`), the first part named `file` (any case) ending the fields.
//!
//! `s3s` reparses its buffer from the start whenever a chunk arrives; the guard hands it
//! everything up to the end of the file part's headers as its first chunk, so the one parse
//! that decides is of exactly the bytes read here. Where `s3s` would wait for more bytes or
//! fail, this module says so ([`Parse::Incomplete`], [`FormError`]). It departs from `s3s` in
//! two places, neither letting through a form `s3s` reads otherwise: it waits on an
//! unterminated first line where `s3s` fails at once (what `s3s` answers then depends only on
//! how the body was cut into chunks; it is handed the whole line), and it fails at once on a
//! part without `Content-Disposition`, where `s3s` waits for more bytes and fails at the end.
//!
//! Nothing here logs a field value.

use std::mem;

/// A form `s3s` could not read (its `MultipartError::InvalidFormat` and limits), or a part it
/// would wait on forever (one without `Content-Disposition`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum FormError {
    /// The body does not start with the boundary line.
    #[error("the body does not start with the form's boundary")]
    NoBoundaryLine,
    /// A part's headers are not HTTP headers, or there are more than two.
    #[error("a part's headers are not well-formed (at most Content-Disposition and Content-Type)")]
    Headers,
    /// A part without `Content-Disposition`.
    #[error("a part has no Content-Disposition header")]
    NoDisposition,
    /// `Content-Disposition` other than `form-data; name="…"[; filename="…"]`.
    #[error("a part's Content-Disposition is not form-data; name=\"…\"")]
    Disposition,
    /// A field or the file's `Content-Type` that is not UTF-8.
    #[error("a form field is not UTF-8 text")]
    NotText,
    /// A field larger than the limit.
    #[error("a form field is larger than {0} bytes")]
    FieldTooLarge(usize),
    /// Fields larger than the limit together.
    #[error("the form fields are larger than {0} bytes")]
    FieldsTooLarge(usize),
    /// More parts than the limit.
    #[error("the form has more than {0} parts")]
    TooManyParts(usize),
}

/// The limits `s3s` applies to form fields (its `MultipartLimits`).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Limits {
    pub(crate) max_field_size: usize,
    pub(crate) max_fields_size: usize,
    pub(crate) max_parts: usize,
}

/// The fields before the file, as `s3s`'s `Multipart` holds them. No `Debug`: values include
/// signatures.
pub(crate) struct Fields {
    /// Lowercased names, stably sorted by name.
    fields: Vec<(String, String)>,
    /// Where the file part's headers end (its data starts) in the bytes read.
    pub(crate) end: usize,
}

impl Fields {
    /// The value of a field (`name` lowercase) as `s3s`'s `find_field_value` finds it: the
    /// last of the fields with that name.
    pub(crate) fn get(&self, name: &str) -> Option<&str> {
        let upper = self.fields.partition_point(|x| x.0.as_str() <= name);
        let (n, v) = self.fields.get(upper.checked_sub(1)?)?;
        (n == name).then_some(v.as_str())
    }

    /// True if a field of that (lowercase) name is present.
    pub(crate) fn has(&self, name: &str) -> bool {
        self.get(name).is_some()
    }

    /// The (lowercased) names, sorted.
    #[cfg(test)]
    pub(crate) fn names(&self) -> Vec<&str> {
        self.fields.iter().map(|(n, _)| n.as_str()).collect()
    }
}

/// What the bytes read so far say.
pub(crate) enum Parse {
    /// The file part has started: the fields before it.
    Complete(Fields),
    /// More bytes are needed.
    Incomplete,
}

/// The boundary of a browser form, when `s3s` would read the request as one (`POST` is checked
/// by the caller): `None` when it would not (no single UTF-8 `Content-Type`, one `mime` does
/// not parse, or another type), `Some(None)` for a form without a boundary (which `s3s`
/// refuses).
pub(crate) fn boundary(headers: &http::HeaderMap) -> Option<Option<String>> {
    let mut utf8 = headers
        .get_all(http::header::CONTENT_TYPE)
        .iter()
        .filter_map(|v| std::str::from_utf8(v.as_bytes()).ok());
    let ct = match (utf8.next(), utf8.next()) {
        (Some(ct), None) if !ct.is_empty() => ct,
        _ => return None,
    };
    let mime = Mime::parse(ct)?;
    (mime.type_.eq_ignore_ascii_case("multipart") && mime.subtype.eq_ignore_ascii_case("form-data"))
        .then(|| {
            mime.params
                .into_iter()
                .find(|(n, _)| n.eq_ignore_ascii_case("boundary"))
                .map(|(_, v)| v.to_string())
        })
}

/// A media type as the `mime` 0.3 crate parses it (`parse.rs`): what `s3s` reads.
struct Mime<'a> {
    type_: &'a str,
    /// Up to the last `+` (a structured-syntax suffix), else to the parameters.
    subtype: &'a str,
    /// In order; values without their quotes.
    params: Vec<(&'a str, &'a str)>,
}

/// `mime`'s token characters (RFC 7230 `tchar`).
fn is_token(c: u8) -> bool {
    c.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&c)
}

impl<'a> Mime<'a> {
    fn parse(s: &'a str) -> Option<Mime<'a>> {
        let b = s.as_bytes();
        let mut it = b.iter().copied().enumerate();
        // Top level: a token up to '/'.
        let slash = loop {
            match it.next()? {
                (i, b'/') if i > 0 => break i,
                (_, c) if is_token(c) => {}
                _ => return None,
            }
        };
        let mut start = slash + 1;
        let mut plus = None;
        // Sub level: a token up to ';' or the end; '+' marks a suffix.
        let semicolon = loop {
            match it.next() {
                Some((i, b'+')) if i > start => plus = Some(i),
                Some((i, b';')) if i > start => break Some(i),
                Some((_, c)) if is_token(c) => {}
                None => break None,
                Some(_) => return None,
            }
        };
        let end = plus.or(semicolon).unwrap_or(b.len());
        let mime = |params| {
            Some(Mime {
                type_: s.get(..slash)?,
                subtype: s.get(slash + 1..end)?,
                params,
            })
        };
        let Some(semicolon) = semicolon else {
            return mime(Vec::new());
        };
        start = semicolon + 1;
        let mut params = Vec::new();
        'params: while start < b.len() {
            // Name: spaces before it skipped, then a token up to '='.
            let name = loop {
                match it.next() {
                    Some((i, b' ')) if i == start => {
                        start = i + 1;
                        continue 'params;
                    }
                    Some((_, c)) if is_token(c) => {}
                    Some((i, b'=')) if i > start => {
                        let name = s.get(start..i)?;
                        start = i + 1;
                        break name;
                    }
                    _ => return None,
                }
            };
            // Value: a token up to ';' or the end, or quoted (no escapes).
            let mut quoted = false;
            let value = loop {
                if quoted {
                    match it.next()? {
                        (i, b'"') if i > start => break s.get(start..i)?,
                        (_, c) if c > 31 && c != 127 => {}
                        _ => return None,
                    }
                } else {
                    match it.next() {
                        Some((i, b'"')) if i == start => {
                            quoted = true;
                            start = i + 1;
                        }
                        Some((_, c)) if is_token(c) => {}
                        Some((i, b';')) if i > start => {
                            let v = s.get(start..i)?;
                            start = i + 1;
                            break v;
                        }
                        None => {
                            let v = s.get(start..)?;
                            start = b.len();
                            break v;
                        }
                        Some(_) => return None,
                    }
                }
            };
            if quoted {
                loop {
                    match it.next() {
                        Some((i, b';')) => {
                            start = i + 1;
                            break;
                        }
                        Some((_, b' ')) => {}
                        None => {
                            start = b.len();
                            break;
                        }
                        Some(_) => return None,
                    }
                }
            }
            params.push((name, value));
        }
        mime(params)
    }
}

/// `s3s`'s `CrlfLines`: lines end at CRLF only; what is left without one is a last line.
struct Lines<'a> {
    slice: &'a [u8],
}

impl<'a> Lines<'a> {
    /// The next line, and whether it ended with CRLF (else it is the unterminated rest).
    fn next_line(&mut self) -> Option<(&'a [u8], bool)> {
        for (idx, _) in self.slice.iter().enumerate().filter(|(_, c)| **c == b'\n') {
            if idx == 0 {
                continue;
            }
            if self.slice.get(idx - 1) == Some(&b'\r') {
                let left = self.slice.get(..idx - 1)?;
                self.slice = self.slice.get(idx + 1..)?;
                return Some((left, true));
            }
        }
        if self.slice.is_empty() {
            None
        } else {
            Some((mem::take(&mut self.slice), false))
        }
    }

    /// `split_to`: the bytes before the line equal to `pat` (the line consumed too).
    fn split_to(&mut self, pat: &[u8]) -> Option<&'a [u8]> {
        let mut len: usize = 0;
        let mut lines = Lines { slice: self.slice };
        loop {
            let (line, _) = lines.next_line()?;
            if line == pat {
                let ans = self.slice.get(..len.min(self.slice.len()))?;
                self.slice = lines.slice;
                return Some(ans);
            }
            len = len.wrapping_add(line.len()).saturating_add(2);
        }
    }
}

/// `httparse`'s header value characters.
fn is_value_char(c: u8) -> bool {
    c == b'\t' || (b' '..=0x7e).contains(&c) || c >= 0x80
}

/// A part's headers as `httparse::parse_headers` reads them into two slots: `Ok(None)` when
/// more bytes are needed, else where they end and the (name, value) pairs.
#[allow(clippy::type_complexity)]
fn part_headers(src: &[u8]) -> Result<Option<(usize, Vec<(&[u8], &[u8])>)>, FormError> {
    let mut headers = Vec::with_capacity(2);
    let mut i = 0;
    // The next byte, or "more needed".
    macro_rules! next {
        () => {{
            let Some(&b) = src.get(i) else {
                return Ok(None);
            };
            i += 1;
            b
        }};
    }
    // A CR must be followed by LF.
    macro_rules! lf {
        () => {{
            if next!() != b'\n' {
                return Err(FormError::Headers);
            }
        }};
    }
    loop {
        let b = next!();
        if b == b'\r' {
            lf!();
            return Ok(Some((i, headers)));
        }
        if b == b'\n' {
            return Ok(Some((i, headers)));
        }
        if !is_token(b) {
            return Err(FormError::Headers);
        }
        let name_start = i - 1;
        let name = loop {
            let b = next!();
            if b == b':' {
                break src.get(name_start..i - 1).ok_or(FormError::Headers)?;
            }
            if !is_token(b) {
                return Err(FormError::Headers);
            }
        };
        let value = 'value: {
            let start = loop {
                let b = next!();
                if b == b' ' || b == b'\t' {
                    continue;
                }
                if is_value_char(b) {
                    break i - 1;
                }
                if b == b'\r' {
                    lf!();
                } else if b != b'\n' {
                    return Err(FormError::Headers);
                }
                break 'value &src[..0];
            };
            loop {
                let b = next!();
                if is_value_char(b) {
                    continue;
                }
                let end = i - 1;
                if b == b'\r' {
                    lf!();
                } else if b != b'\n' {
                    return Err(FormError::Headers);
                }
                break 'value src.get(start..end).ok_or(FormError::Headers)?;
            }
        };
        // Two slots: a third header is `TooManyHeaders`.
        if headers.len() == 2 {
            return Err(FormError::Headers);
        }
        let trimmed = value
            .iter()
            .rposition(|b| !matches!(b, b' ' | b'\t' | b'\r' | b'\n'))
            .map_or(value, |last| &value[..=last]);
        headers.push((name, trimmed));
    }
}

/// `s3s`'s `parse_content_disposition`: `form-data; name="…"`, then optionally
/// `; filename="…"`, nothing else (each quoted value non-empty, the name UTF-8).
fn content_disposition(v: &[u8]) -> Option<(&str, Option<&str>)> {
    fn quoted<'a>(v: &'a [u8], tag: &[u8]) -> Option<(&'a str, &'a [u8])> {
        let rest = v.strip_prefix(tag)?;
        let q = rest.iter().position(|c| *c == b'"')?;
        if q == 0 {
            return None;
        }
        let s = std::str::from_utf8(rest.get(..q)?).ok()?;
        Some((s, rest.get(q + 1..)?))
    }
    let rest = v.strip_prefix(b"form-data; ")?;
    let (name, rest) = quoted(rest, b"name=\"")?;
    let (filename, rest) = match rest
        .strip_prefix(b"; ")
        .and_then(|r| quoted(r, b"filename=\""))
    {
        Some((f, r)) => (Some(f), r),
        None => (None, rest),
    };
    rest.is_empty().then_some((name, filename))
}

/// The form fields in `buf` up to the file part, read as `s3s`'s `try_parse` reads them.
pub(crate) fn fields(buf: &[u8], boundary: &str, limits: Limits) -> Result<Parse, FormError> {
    let pat = format!("--{boundary}");
    let pat = pat.as_bytes();
    let mut lines = Lines { slice: buf };
    // The first line is the boundary, or empty and then the boundary.
    let first = match lines.next_line() {
        None => return Ok(Parse::Incomplete),
        Some((b"", true)) => match lines.next_line() {
            None => return Ok(Parse::Incomplete),
            Some(l) => l,
        },
        Some(l) => l,
    };
    match first {
        (l, _) if l == pat => {}
        // s3s fails here; with more bytes the line may yet be the boundary.
        (_, false) => return Ok(Parse::Incomplete),
        (_, true) => return Err(FormError::NoBoundaryLine),
    }
    let mut fields: Vec<(String, String)> = Vec::new();
    let mut total: usize = 0;
    let mut parts: usize = 0;
    loop {
        parts += 1;
        if parts > limits.max_parts {
            return Err(FormError::TooManyParts(limits.max_parts));
        }
        let Some((idx, headers)) = part_headers(lines.slice)? else {
            return Ok(Parse::Incomplete);
        };
        lines.slice = lines.slice.get(idx..).unwrap_or_default();
        let mut disposition = None;
        let mut content_type = None;
        for (name, value) in headers {
            if name.eq_ignore_ascii_case(b"Content-Disposition") {
                disposition = Some(value);
            } else if name.eq_ignore_ascii_case(b"Content-Type") {
                content_type = Some(value);
            }
        }
        // s3s waits for more bytes then, and fails when the body ends: it never completes.
        let disposition = disposition.ok_or(FormError::NoDisposition)?;
        let (name, _filename) = content_disposition(disposition).ok_or(FormError::Disposition)?;
        if name.eq_ignore_ascii_case("file") {
            if content_type.is_some_and(|ct| std::str::from_utf8(ct).is_err()) {
                return Err(FormError::NotText);
            }
            for f in &mut fields {
                f.0.make_ascii_lowercase();
            }
            fields.sort_by(|a, b| a.0.as_str().cmp(b.0.as_str()));
            return Ok(Parse::Complete(Fields {
                fields,
                end: buf.len() - lines.slice.len(),
            }));
        }
        let Some(value) = lines.split_to(pat) else {
            return Ok(Parse::Incomplete);
        };
        let value = value
            .get(..value.len().saturating_sub(2))
            .unwrap_or_default();
        if value.len() > limits.max_field_size {
            return Err(FormError::FieldTooLarge(limits.max_field_size));
        }
        total = total.saturating_add(value.len());
        if total > limits.max_fields_size {
            return Err(FormError::FieldsTooLarge(limits.max_fields_size));
        }
        let value = std::str::from_utf8(value).map_err(|_| FormError::NotText)?;
        fields.push((name.to_string(), value.to_string()));
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    const LIMITS: Limits = Limits {
        max_field_size: 64 * 1024,
        max_fields_size: 64 * 1024,
        max_parts: 64,
    };

    fn complete(buf: &[u8], boundary: &str) -> Fields {
        match fields(buf, boundary, LIMITS) {
            Ok(Parse::Complete(f)) => f,
            Ok(Parse::Incomplete) => panic!("incomplete"),
            Err(e) => panic!("{e}"),
        }
    }

    fn ct(v: &[u8]) -> Option<Option<String>> {
        let mut h = http::HeaderMap::new();
        h.insert(
            http::header::CONTENT_TYPE,
            http::HeaderValue::from_bytes(v).unwrap(),
        );
        boundary(&h)
    }

    #[test]
    fn the_boundary_is_read_as_mime_reads_it() {
        let some = |s: &str| Some(Some(s.to_string()));
        assert_eq!(ct(b"multipart/form-data; boundary=XyZ"), some("XyZ"));
        assert_eq!(ct(b"Multipart/Form-Data;BOUNDARY=XyZ"), some("XyZ"));
        assert_eq!(
            ct(b"multipart/form-data;  boundary=\"a;b c\""),
            some("a;b c")
        );
        assert_eq!(
            ct(b"multipart/form-data; a=1; boundary=x; boundary=y"),
            some("x")
        );
        assert_eq!(ct(b"multipart/form-data+json; boundary=x"), some("x"));
        // Quoted values take any visible byte, a backslash too (no escapes).
        assert_eq!(ct(b"multipart/form-data; boundary=\"a\\\"b"), None);
        assert_eq!(ct(b"multipart/form-data; boundary=\"a\\\""), some("a\\"));
        assert_eq!(
            ct("multipart/form-data; boundary=\"é\"".as_bytes()),
            some("é")
        );
        assert_eq!(
            ct(b"multipart/form-data; boundary=x; charset=utf-8"),
            some("x")
        );
        assert_eq!(ct(b"multipart/form-data; charset=utf-8"), Some(None));
        assert_eq!(ct(b"multipart/form-data"), Some(None));
        for not_a_form in [
            &b"multipart/form-datax; boundary=x"[..],
            b"multipart/mixed; boundary=x",
            b"multipart/form-data; boundary=a b",
            b"multipart/form-data;\tboundary=x",
            b"multipart/form-data; =x",
            b"multipart /form-data; boundary=x",
            b"multipart/form-data; boundary=\"x\" y",
            b"multipart/form-data; boundary=\"x",
        ] {
            assert_eq!(
                ct(not_a_form),
                None,
                "{}",
                String::from_utf8_lossy(not_a_form)
            );
        }
        // Two Content-Type headers: s3s reads none.
        let mut h = http::HeaderMap::new();
        for v in ["multipart/form-data; boundary=x", "text/plain"] {
            h.append(http::header::CONTENT_TYPE, v.parse().unwrap());
        }
        assert_eq!(boundary(&h), None);
    }

    #[test]
    fn names_are_lowercased_and_the_last_of_a_name_counts() {
        let body = b"--B\r\nContent-Disposition: form-data; name=\"Signature\"\r\n\r\none\r\n--B\r\nContent-Disposition: form-data; name=\"AWSAccessKeyId\"\r\n\r\nAK\r\n--B\r\ncontent-disposition: form-data; name=\"SIGNATURE\"\r\n\r\ntwo\r\n--B\r\nContent-Disposition: form-data; name=\"FILE\"; filename=\"f\"\r\nContent-Type: text/plain\r\n\r\nDATA\r\n--B--\r\n";
        let f = complete(body, "B");
        assert_eq!(f.names(), ["awsaccesskeyid", "signature", "signature"]);
        assert_eq!(f.get("signature"), Some("two"));
        assert_eq!(f.get("awsaccesskeyid"), Some("AK"));
        assert_eq!(f.get("Signature"), None);
        assert!(!f.has("policy"));
        assert_eq!(&body[f.end..f.end + 4], b"DATA");
    }

    #[test]
    fn values_end_at_a_boundary_line_and_headers_may_end_in_lf() {
        // A value holding CRLFs and the boundary within a line; bare-LF header lines.
        let body = b"\r\n--B\r\nContent-Disposition: form-data; name=\"policy\"   \n\nline one\r\nnot --B\r\n--B--x\r\n--B\r\nContent-Disposition: form-data; name=\"file\"\r\n\r\n";
        let f = complete(body, "B");
        assert_eq!(f.get("policy"), Some("line one\r\nnot --B\r\n--B--x"));
        assert_eq!(f.end, body.len());
        // The first line must be the boundary (with CRLF: "\r\n--B\n" above is one line).
        assert!(matches!(
            fields(
                b"\r\n--B\nContent-Disposition: form-data; name=\"a\"\r\n\r\n",
                "B",
                LIMITS
            ),
            Err(FormError::NoBoundaryLine)
        ));
    }

    #[test]
    fn a_form_is_incomplete_until_the_file_part_headers_end() {
        let body = b"--B\r\nContent-Disposition: form-data; name=\"key\"\r\n\r\nk\r\n--B\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a\"\r\nContent-Type: application/octet-stream\r\n\r\n";
        for cut in 0..body.len() {
            assert!(
                matches!(fields(&body[..cut], "B", LIMITS), Ok(Parse::Incomplete)),
                "{cut}"
            );
        }
        assert_eq!(complete(body, "B").get("key"), Some("k"));
    }

    #[test]
    fn what_s3s_refuses_is_refused() {
        let part = |head: &str| {
            format!(
                "--B\r\n{head}\r\n\r\nv\r\n--B\r\nContent-Disposition: form-data; name=\"file\"\r\n\r\n"
            )
        };
        for (head, want) in [
            (
                "Content-Disposition: form-data; name=\"\"",
                FormError::Disposition,
            ),
            (
                "Content-Disposition: form-data;name=\"a\"",
                FormError::Disposition,
            ),
            (
                "Content-Disposition: Form-Data; name=\"a\"",
                FormError::Disposition,
            ),
            (
                "Content-Disposition: form-data; name=\"a\"; x=\"1\"",
                FormError::Disposition,
            ),
            (
                "Content-Disposition: form-data; name=\"a\"; filename=\"\"",
                FormError::Disposition,
            ),
            (
                "Content-Disposition : form-data; name=\"a\"",
                FormError::Headers,
            ),
            (
                " Content-Disposition: form-data; name=\"a\"",
                FormError::Headers,
            ),
            (
                "Content-Disposition: form-data; name=\"a\"\r\nContent-Type: a\r\nX: 1",
                FormError::Headers,
            ),
            (
                "Content-Disposition: form-data; name=\"a\"\r\n folded",
                FormError::Headers,
            ),
            (
                "Content-Disposition: form-data; name=\"a\"\rX",
                FormError::Headers,
            ),
            ("Content-Type: text/plain", FormError::NoDisposition),
        ] {
            let body = part(head);
            assert_eq!(
                fields(body.as_bytes(), "B", LIMITS).err(),
                Some(want),
                "{head:?}"
            );
        }
        // Two headers, trailing spaces, an empty value, a filename: fine.
        let body = part("X-Any:\r\nContent-Disposition:\tform-data; name=\"a\"; filename=\"f\" \t");
        assert_eq!(complete(body.as_bytes(), "B").get("a"), Some("v"));
        let big = format!(
            "--B\r\nContent-Disposition: form-data; name=\"a\"\r\n\r\n{}\r\n--B\r\n",
            "x".repeat(11)
        );
        let small = Limits {
            max_field_size: 10,
            ..LIMITS
        };
        assert_eq!(
            fields(big.as_bytes(), "B", small).err(),
            Some(FormError::FieldTooLarge(10))
        );
        let many =
            "--B\r\nContent-Disposition: form-data; name=\"a\"\r\n\r\nv\r\n".repeat(3) + "--B\r\n";
        let few = Limits {
            max_parts: 2,
            ..LIMITS
        };
        assert_eq!(
            fields(many.as_bytes(), "B", few).err(),
            Some(FormError::TooManyParts(2))
        );
        let latin1 = b"--B\r\nContent-Disposition: form-data; name=\"a\"\r\n\r\n\xe9\r\n--B\r\n";
        assert_eq!(fields(latin1, "B", LIMITS).err(), Some(FormError::NotText));
    }
}
