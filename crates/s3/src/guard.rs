//! What every S3 request must pass before `s3s` parses, buffers or verifies anything.
//!
//! `s3s` checks signatures, but some of its defaults are not ours (docs/security.md):
//!
//! * **The signing scheme** is read as `s3s` reads it (decoded query names, its order of
//!   precedence, one `Authorization` header), so no check here can be skipped by spelling a
//!   request differently.
//! * **SigV2** (`Authorization: AWS key:sig`, `?Signature=…&AWSAccessKeyId=…`, a POST form
//!   with `signature`) is refused unless the configuration allows it; when allowed, the
//!   request's `Date` must be within 15 minutes of ours and a presigned v2 URL may live at most
//!   7 days, and its signature is then checked in constant time by `crate::sigv2`.
//! * **Presigned SigV4 URLs** live at most 7 days (`X-Amz-Expires` ≤ 604800), as in S3.
//! * **Unsigned `x-amz-*` headers** are refused: a header an attacker could add to a signed
//!   request (`x-amz-meta-*`, `x-amz-copy-source`, …) must be covered by its signature.
//! * **Browser-form POSTs** are read only as far as the form fields before the file, at most
//!   [`MAX_POST_PRE_DATA`] bytes; a form without a signature field is refused there, before a
//!   byte of the file is read (`s3s` would buffer the whole file before its access check).
//! * **Sizes**: a single PUT declares at most [`GatewayConfig::max_object_bytes`].

use bytes::Bytes;
use futures::StreamExt;
use http::StatusCode;
use http_body_util::BodyExt;

use crate::GatewayConfig;

/// Form fields before the file part of a browser POST, at most (S3 answers
/// `MaxPostPreDataLengthExceededError` beyond its own limit).
pub(crate) const MAX_POST_PRE_DATA: usize = 64 * 1024;

/// Longest lifetime of a presigned URL (7 days, S3's limit).
pub(crate) const MAX_PRESIGNED_SECS: u64 = 604_800;

/// Largest difference between a SigV2 request's `Date` and the gateway's clock.
const MAX_SKEW_SECS: u64 = 15 * 60;

/// A request refused before `s3s`: an S3 error code, status and message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Refusal {
    pub(crate) status: StatusCode,
    pub(crate) code: &'static str,
    pub(crate) message: String,
}

impl Refusal {
    pub(crate) fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Refusal {
            status,
            code,
            message: message.into(),
        }
    }

    /// Too many requests at once (`max`): S3's `SlowDown`, retried by clients.
    pub(crate) fn slow_down(max: usize) -> Self {
        Refusal::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "SlowDown",
            format!(
                "Please reduce your request rate: this gateway serves at most {max} requests at once."
            ),
        )
    }

    /// The S3 error document for this refusal.
    pub(crate) fn response(&self) -> http::Response<s3s::Body> {
        let xml = format!(
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Error><Code>{}</Code><Message>{}</Message></Error>",
            self.code,
            xml_escape(&self.message)
        );
        let mut resp = http::Response::new(s3s::Body::from(xml));
        *resp.status_mut() = self.status;
        resp.headers_mut().insert(
            http::header::CONTENT_TYPE,
            http::HeaderValue::from_static("application/xml"),
        );
        resp
    }
}

/// Why a request is answered before `s3s`: a [`Refusal`] of the guard's own, or an error of
/// the secret lookup, answered as `s3s` would have answered it.
#[derive(Debug)]
pub(crate) enum Refused {
    Guard(Refusal),
    S3(s3s::S3Error),
}

impl From<Refusal> for Refused {
    fn from(r: Refusal) -> Self {
        Refused::Guard(r)
    }
}

impl Refused {
    /// The S3 error code.
    pub(crate) fn code(&self) -> &str {
        match self {
            Refused::Guard(r) => r.code,
            Refused::S3(e) => e.code().as_str(),
        }
    }

    /// The S3 error document.
    pub(crate) fn response(self) -> http::Response<s3s::Body> {
        match self {
            Refused::Guard(r) => r.response(),
            Refused::S3(e) => e.to_http_response().unwrap_or_else(|_| {
                Refusal::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "InternalError",
                    "We encountered an internal error. Please try again.",
                )
                .response()
            }),
        }
    }
}

pub(crate) fn xml_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '&' => out.push_str("&amp;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            c => out.push(c),
        }
    }
    out
}

/// How a request says who sent it, decided the way `s3s` 0.14 decides it (`ops/signature.rs`:
/// a presigned SigV2 query first, then a SigV2 header, then SigV4 presigned, then SigV4
/// header), over the same view of the request: query names and values percent-decoded, the
/// one `Authorization` header. A request whose scheme the guard read differently from `s3s`
/// could skip a check here and still be authenticated there.
#[derive(Debug, PartialEq, Eq)]
enum Signing<'a> {
    Anonymous,
    V4Header {
        signed: Vec<&'a str>,
    },
    V4Presigned {
        signed: Vec<String>,
        expires: Option<String>,
    },
    V2Header,
    V2Presigned {
        expires: Option<String>,
    },
}

fn query_pairs(q: &str) -> impl Iterator<Item = (&str, &str)> {
    q.split('&')
        .filter(|p| !p.is_empty())
        .map(|p| p.split_once('=').unwrap_or((p, "")))
}

/// A query as `s3s` reads it (`OrderedQs`: form-urlencoded, names and values decoded, sorted
/// by name, repeated names kept in order).
pub(crate) fn decoded_query(q: &str) -> Vec<(String, String)> {
    let mut v: Vec<(String, String)> = query_pairs(q)
        .map(|(k, v)| (percent_decode(k), percent_decode(v)))
        .collect();
    v.sort_by(|a, b| a.0.cmp(&b.0));
    v
}

/// The value of `name` if it occurs exactly once (`s3s`'s `get_unique`).
pub(crate) fn unique<'a, K: AsRef<str>, V: AsRef<str>>(
    pairs: &'a [(K, V)],
    name: &str,
) -> Option<&'a str> {
    let mut found = pairs.iter().filter(|(k, _)| k.as_ref() == name);
    match (found.next(), found.next()) {
        (Some((_, v)), None) => Some(v.as_ref()),
        _ => None,
    }
}

/// The request's `Authorization` header: none, or one in ASCII. Two of them, or one that is
/// not text, could be read one way here and another by `s3s`: refused.
pub(crate) fn authorization(headers: &http::HeaderMap) -> Result<Option<&str>, Refusal> {
    let mut all = headers.get_all(http::header::AUTHORIZATION).iter();
    match (all.next(), all.next()) {
        (None, _) => Ok(None),
        (Some(v), None) => v.to_str().map(Some).map_err(|_| {
            Refusal::new(
                StatusCode::BAD_REQUEST,
                "InvalidArgument",
                "The Authorization header must be ASCII text.",
            )
        }),
        (Some(_), Some(_)) => Err(Refusal::new(
            StatusCode::BAD_REQUEST,
            "InvalidArgument",
            "A request carries at most one Authorization header.",
        )),
    }
}

fn signing<'a>(auth: Option<&'a str>, query: &str) -> Signing<'a> {
    let qs = decoded_query(query);
    let has = |name: &str| qs.iter().any(|(k, _)| k == name);
    if has("Signature") {
        return Signing::V2Presigned {
            expires: unique(&qs, "Expires").map(str::to_string),
        };
    }
    if let Some(auth) = auth
        && auth.starts_with("AWS ")
    {
        return Signing::V2Header;
    }
    if has("X-Amz-Signature")
        || (auth.is_none() && (has("X-Amz-Algorithm") || has("X-Amz-SignedHeaders")))
    {
        let signed = unique(&qs, "X-Amz-SignedHeaders")
            .map(|s| s.split(';').map(str::to_string).collect())
            .unwrap_or_default();
        return Signing::V4Presigned {
            signed,
            expires: unique(&qs, "X-Amz-Expires").map(str::to_string),
        };
    }
    if let Some(rest) = auth.and_then(|a| a.strip_prefix("AWS4-")) {
        let signed = rest
            .split(',')
            .filter_map(|p| p.trim().strip_prefix("SignedHeaders="))
            .flat_map(|s| s.split(';'))
            .collect();
        return Signing::V4Header { signed };
    }
    if has("AWSAccessKeyId") {
        return Signing::V2Presigned {
            expires: unique(&qs, "Expires").map(str::to_string),
        };
    }
    Signing::Anonymous
}

pub(crate) fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let hex = |c: u8| (c as char).to_digit(16);
        if b[i] == b'%'
            && let (Some(h), Some(l)) = (
                b.get(i + 1).copied().and_then(hex),
                b.get(i + 2).copied().and_then(hex),
            )
        {
            out.push((h * 16 + l) as u8);
            i += 3;
        } else {
            out.push(if b[i] == b'+' { b' ' } else { b[i] });
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn sigv2_refused() -> Refusal {
    Refusal::new(
        StatusCode::BAD_REQUEST,
        "InvalidRequest",
        "The authorization mechanism you have provided is not supported. Please use \
         AWS4-HMAC-SHA256 (SigV2 is disabled on this gateway: [server] allow_sigv2).",
    )
}

/// A SigV2 `Date` or `x-amz-date` in seconds since the epoch: an HTTP date (`… GMT`), or
/// RFC 1123 with a numeric zone (`Tue, 27 Mar 2007 19:36:42 +0000`, as s3cmd and the S3 guide
/// write it).
fn sigv2_date(date: &str) -> Option<u64> {
    let secs = |t: std::time::SystemTime| {
        t.duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs())
    };
    if let Ok(t) = httpdate::parse_http_date(date) {
        return Some(secs(t));
    }
    let (time, zone) = date.rsplit_once(' ')?;
    let (sign, hhmm) = match zone.as_bytes().first()? {
        b'+' => (1i64, &zone[1..]),
        b'-' => (-1i64, &zone[1..]),
        _ => return None,
    };
    if hhmm.len() != 4 || !hhmm.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let (h, m): (i64, i64) = (hhmm[..2].parse().ok()?, hhmm[2..].parse().ok()?);
    let local = secs(httpdate::parse_http_date(&format!("{time} GMT")).ok()?);
    // Local time = UTC + offset.
    u64::try_from(i64::try_from(local).ok()? - sign * (h * 3600 + m * 60)).ok()
}

/// Checks a request's head (method, URI, headers); `now` in seconds since the epoch.
pub(crate) fn check_head(
    parts: &http::request::Parts,
    config: &GatewayConfig,
    now: u64,
) -> Result<(), Refusal> {
    let query = parts.uri.query().unwrap_or("");
    let sig = signing(authorization(&parts.headers)?, query);
    match &sig {
        Signing::V2Header | Signing::V2Presigned { .. } if !config.allow_sigv2 => {
            return Err(sigv2_refused());
        }
        Signing::V2Header => {
            let date = parts
                .headers
                .get("x-amz-date")
                .or_else(|| parts.headers.get(http::header::DATE))
                .and_then(|v| v.to_str().ok())
                .ok_or_else(|| {
                    Refusal::new(
                        StatusCode::FORBIDDEN,
                        "AccessDenied",
                        "AWS authentication requires a valid Date or x-amz-date header",
                    )
                })?;
            let t = sigv2_date(date).ok_or_else(|| {
                Refusal::new(
                    StatusCode::FORBIDDEN,
                    "AccessDenied",
                    format!("AWS authentication requires a valid Date or x-amz-date header (got {date:?})"),
                )
            })?;
            if t.abs_diff(now) > MAX_SKEW_SECS {
                return Err(Refusal::new(
                    StatusCode::FORBIDDEN,
                    "RequestTimeTooSkewed",
                    format!(
                        "The difference between the request time and the server's time is too large (more than {MAX_SKEW_SECS} s)."
                    ),
                ));
            }
        }
        Signing::V2Presigned { expires } => {
            let at: u64 = expires
                .as_deref()
                .and_then(|e| e.parse().ok())
                .ok_or_else(|| {
                    Refusal::new(
                        StatusCode::FORBIDDEN,
                        "AccessDenied",
                        "a presigned SigV2 URL needs Expires (seconds since the epoch)",
                    )
                })?;
            if at > now + MAX_PRESIGNED_SECS {
                return Err(expires_too_long());
            }
        }
        Signing::V4Presigned { expires, .. } => {
            if let Some(e) = expires {
                let secs: u64 = e.parse().map_err(|_| {
                    Refusal::new(
                        StatusCode::BAD_REQUEST,
                        "AuthorizationQueryParametersError",
                        format!("X-Amz-Expires should be a number of seconds (got {e:?})"),
                    )
                })?;
                if secs > MAX_PRESIGNED_SECS {
                    return Err(expires_too_long());
                }
            }
        }
        Signing::Anonymous | Signing::V4Header { .. } => {}
    }
    unsigned_amz_headers(&parts.headers, &sig)?;
    let declared = parts
        .headers
        .get(http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    // Bodies s3s buffers whole (XML, JSON policies): refuse an oversized one before a byte is
    // read (s3s itself would read up to its limit and then answer 500).
    if !streams_its_body(parts)
        && !is_form_post(parts)
        && declared.is_some_and(|n| n > crate::MAX_XML_BODY as u64)
    {
        return Err(Refusal::new(
            StatusCode::BAD_REQUEST,
            "MaxMessageLengthExceeded",
            format!(
                "Your request was too big: this request's body is read whole and may have at most {} bytes.",
                crate::MAX_XML_BODY
            ),
        ));
    }
    if parts.method == http::Method::PUT
        && let Some(len) = parts
            .headers
            .get(http::header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok())
        && len > config.max_object_bytes
    {
        return Err(Refusal::new(
            StatusCode::BAD_REQUEST,
            "EntityTooLarge",
            format!(
                "Your proposed upload exceeds the maximum allowed size: a single PUT carries at most {} bytes; use a multipart upload",
                config.max_object_bytes
            ),
        ));
    }
    Ok(())
}

/// True for the requests whose body is object data, streamed (PutObject, UploadPart).
fn streams_its_body(parts: &http::request::Parts) -> bool {
    parts.method == http::Method::PUT
        && query_pairs(parts.uri.query().unwrap_or("")).all(|(k, _)| {
            matches!(k, "partNumber" | "uploadId" | "x-id") || k.starts_with("X-Amz-")
        })
}

fn expires_too_long() -> Refusal {
    Refusal::new(
        StatusCode::BAD_REQUEST,
        "AuthorizationQueryParametersError",
        format!("X-Amz-Expires must be less than a week (in seconds) that is {MAX_PRESIGNED_SECS}"),
    )
}

/// Every `x-amz-*` header of a signed request must be one it signed (S3: `HeadersNotSigned`).
/// SigV2 signs every `x-amz-*` header by construction; anonymous requests have no signature.
fn unsigned_amz_headers(headers: &http::HeaderMap, sig: &Signing<'_>) -> Result<(), Refusal> {
    let signed: Vec<&str> = match sig {
        Signing::V4Header { signed } => signed.clone(),
        Signing::V4Presigned { signed, .. } => signed.iter().map(String::as_str).collect(),
        _ => return Ok(()),
    };
    let presigned = matches!(sig, Signing::V4Presigned { .. });
    let mut missing: Vec<&str> = headers
        .keys()
        .map(http::HeaderName::as_str)
        .filter(|h| h.starts_with("x-amz-"))
        // A presigned URL says UNSIGNED-PAYLOAD in its signature; a client may still send
        // the payload hash header (S3 accepts it unsigned there).
        .filter(|h| !(presigned && *h == "x-amz-content-sha256"))
        .filter(|h| !signed.iter().any(|s| s.eq_ignore_ascii_case(h)))
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    missing.sort_unstable();
    missing.dedup();
    Err(Refusal::new(
        StatusCode::FORBIDDEN,
        "AccessDenied",
        format!(
            "There were headers present in the request which were not signed: {}",
            missing.join(", ")
        ),
    ))
}

/// True for a browser-form POST (`multipart/form-data` to a bucket).
pub(crate) fn is_form_post(parts: &http::request::Parts) -> bool {
    parts.method == http::Method::POST
        && parts
            .headers
            .get(http::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|ct| {
                ct.trim_start()
                    .to_ascii_lowercase()
                    .starts_with("multipart/form-data")
            })
}

fn boundary(parts: &http::request::Parts) -> Option<String> {
    let ct = parts
        .headers
        .get(http::header::CONTENT_TYPE)?
        .to_str()
        .ok()?;
    ct.split(';').find_map(|p| {
        let (k, v) = p.trim().split_once('=')?;
        k.eq_ignore_ascii_case("boundary")
            .then(|| v.trim().trim_matches('"').to_string())
    })
}

/// What the fields before the file say.
#[derive(Debug, PartialEq, Eq)]
enum Form {
    /// The file part starts; these are the names of the fields before it.
    Fields(Vec<String>),
    /// More bytes are needed.
    Incomplete,
}

/// Field names of the parts whose headers are complete in `buf`, up to the `file` part.
fn form_fields(buf: &[u8], boundary: &str) -> Form {
    let delim = format!("--{boundary}");
    let d = delim.as_bytes();
    let mut names = Vec::new();
    let mut at = 0;
    while let Some(pos) = find(&buf[at..], d) {
        let start = at + pos + d.len();
        let Some(head_len) = find(&buf[start..], b"\r\n\r\n") else {
            return Form::Incomplete;
        };
        let head = String::from_utf8_lossy(&buf[start..start + head_len]);
        let name = head
            .lines()
            .find(|l| {
                l.to_ascii_lowercase()
                    .trim_start()
                    .starts_with("content-disposition")
            })
            .and_then(|l| {
                l.split(';').find_map(|p| {
                    let (k, v) = p.trim().split_once('=')?;
                    k.eq_ignore_ascii_case("name")
                        .then(|| v.trim().trim_matches('"').to_string())
                })
            });
        if let Some(name) = name {
            if name.eq_ignore_ascii_case("file") {
                return Form::Fields(names);
            }
            names.push(name);
        }
        at = start + head_len + 4;
    }
    Form::Incomplete
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    if needle.is_empty() || hay.len() < needle.len() {
        return None;
    }
    hay.windows(needle.len()).position(|w| w == needle)
}

/// Reads a browser-form POST only up to its file part: refuses a form with no signature
/// field (anonymous uploads are never allowed) or with more than [`MAX_POST_PRE_DATA`] bytes
/// of fields, and otherwise gives back a body that replays what was read.
pub(crate) async fn form_post(
    parts: &http::request::Parts,
    mut body: hyper::body::Incoming,
    config: &GatewayConfig,
) -> Result<s3s::Body, Refusal> {
    let Some(boundary) = boundary(parts) else {
        return Err(Refusal::new(
            StatusCode::BAD_REQUEST,
            "MalformedPOSTRequest",
            "The body of your POST request is not well-formed multipart/form-data (no boundary).",
        ));
    };
    let mut buf = Vec::new();
    let mut ended = false;
    loop {
        if let Form::Fields(names) = form_fields(&buf, &boundary) {
            let signed = names.iter().any(|n| {
                n.eq_ignore_ascii_case("x-amz-signature") || n.eq_ignore_ascii_case("signature")
            });
            if !signed {
                return Err(Refusal::new(
                    StatusCode::FORBIDDEN,
                    "AccessDenied",
                    "anonymous uploads are not allowed: the form has no signature field",
                ));
            }
            let v2 = names
                .iter()
                .any(|n| n == "signature" || n == "AWSAccessKeyId");
            if v2 && !config.allow_sigv2 {
                return Err(sigv2_refused());
            }
            break;
        }
        if ended {
            // The form ended without a file part: s3s says what is wrong with it.
            break;
        }
        if buf.len() > MAX_POST_PRE_DATA {
            return Err(Refusal::new(
                StatusCode::BAD_REQUEST,
                "MaxPostPreDataLengthExceededError",
                format!(
                    "Your POST request fields preceding the upload file were too large (more than {MAX_POST_PRE_DATA} bytes)."
                ),
            ));
        }
        match body.frame().await {
            Some(Ok(frame)) => {
                if let Ok(data) = frame.into_data() {
                    buf.extend_from_slice(&data);
                }
            }
            Some(Err(e)) => {
                return Err(Refusal::new(
                    StatusCode::BAD_REQUEST,
                    "IncompleteBody",
                    format!("reading the form: {e}"),
                ));
            }
            None => ended = true,
        }
    }
    let head = futures::stream::once(async move { Ok::<_, hyper::Error>(Bytes::from(buf)) });
    let rest = body.into_data_stream();
    let stream = head.chain(rest).map(|r| r.map(hyper::body::Frame::data));
    Ok(s3s::Body::http_body(http_body_util::StreamBody::new(
        stream,
    )))
}

/// The guard over untrusted bytes, for the fuzz target: `data` is split into a request head
/// (`METHOD URI`, then `name: value` lines) and a form body; every check runs on them.
#[cfg(feature = "fuzzing")]
pub fn fuzz_guard(data: &[u8]) {
    let (head, body) = match data.iter().position(|b| *b == 0) {
        Some(i) => (&data[..i], &data[i + 1..]),
        None => (data, &[][..]),
    };
    let head = String::from_utf8_lossy(head);
    let mut lines = head.lines();
    let Some((method, uri)) = lines.next().and_then(|l| l.split_once(' ')) else {
        return;
    };
    let mut b = http::Request::builder().method(method).uri(uri);
    for l in lines {
        if let Some((k, v)) = l.split_once(':') {
            b = b.header(k.trim(), v.trim());
        }
    }
    let Ok(req) = b.body(()) else { return };
    let (parts, ()) = req.into_parts();
    for allow in [false, true] {
        let mut c = GatewayConfig::new("AK", "SK");
        c.allow_sigv2 = allow;
        let _ = check_head(&parts, &c, 1_800_000_000);
    }
    // The SigV2 reading and string to sign, path style and with a virtual-host domain.
    let domain = s3s::host::MultiDomain::new(["example.com"]).ok();
    for host in [None, domain.as_ref().map(|h| h as &dyn s3s::host::S3Host)] {
        if let Ok(Some(p)) = crate::sigv2::presented(&parts, host, 1_800_000_000) {
            let _ = crate::sigv2::check(&p, "SK");
        }
    }
    let _ = is_form_post(&parts);
    if let Some(boundary) = boundary(&parts) {
        let _ = form_fields(body, &boundary);
    }
    let _ = form_fields(body, "XyZ");
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    fn parts(method: &str, uri: &str, headers: &[(&str, &str)]) -> http::request::Parts {
        let mut b = http::Request::builder().method(method).uri(uri);
        for (k, v) in headers {
            b = b.header(*k, *v);
        }
        b.body(()).unwrap().into_parts().0
    }

    fn cfg(v2: bool) -> GatewayConfig {
        let mut c = GatewayConfig::new("AK", "SK");
        c.allow_sigv2 = v2;
        c
    }

    const NOW: u64 = 1_800_000_000;

    #[test]
    fn sigv2_is_refused_unless_allowed_and_then_needs_a_fresh_date() {
        let date =
            httpdate::fmt_http_date(std::time::UNIX_EPOCH + std::time::Duration::from_secs(NOW));
        let old = httpdate::fmt_http_date(
            std::time::UNIX_EPOCH + std::time::Duration::from_secs(NOW - 86_400),
        );
        let fresh = parts(
            "GET",
            "/b/k",
            &[("authorization", "AWS AK:c2ln"), ("date", &date)],
        );
        let stale = parts(
            "GET",
            "/b/k",
            &[("authorization", "AWS AK:c2ln"), ("date", &old)],
        );
        let junk = parts(
            "GET",
            "/b/k",
            &[
                ("authorization", "AWS AK:c2ln"),
                ("date", "not a date at all"),
            ],
        );
        assert_eq!(
            check_head(&fresh, &cfg(false), NOW).unwrap_err().code,
            "InvalidRequest"
        );
        assert!(check_head(&fresh, &cfg(true), NOW).is_ok());
        assert_eq!(
            check_head(&stale, &cfg(true), NOW).unwrap_err().code,
            "RequestTimeTooSkewed"
        );
        assert_eq!(
            check_head(&junk, &cfg(true), NOW).unwrap_err().code,
            "AccessDenied"
        );
        let presigned = parts(
            "GET",
            &format!(
                "/b/k?AWSAccessKeyId=AK&Expires={}&Signature=x",
                NOW + 700_000
            ),
            &[],
        );
        assert_eq!(
            check_head(&presigned, &cfg(false), NOW).unwrap_err().code,
            "InvalidRequest"
        );
        assert_eq!(
            check_head(&presigned, &cfg(true), NOW).unwrap_err().code,
            "AuthorizationQueryParametersError"
        );
    }

    /// The scheme is read as s3s reads it: decoded query names, a SigV2 query before any
    /// header, a SigV4 query before the header, one `Authorization` header.
    #[test]
    fn the_signing_scheme_is_read_as_s3s_reads_it() {
        let v4 = "AWS4-HMAC-SHA256 Credential=AK/20260101/us-east-1/s3/aws4_request, SignedHeaders=host;x-amz-date;x-amz-meta-evil, Signature=ab";
        for disguised in [
            parts("GET", "/b/k?AWSAccessKeyId=AK&Expires=1&Sig%6Eature=x", &[]),
            parts(
                "GET",
                "/b/k?Signature=x&AWSAccessKeyId=AK&Expires=1",
                &[("authorization", v4)],
            ),
        ] {
            assert_eq!(
                check_head(&disguised, &cfg(false), NOW).unwrap_err().code,
                "InvalidRequest"
            );
        }
        let twice = parts(
            "GET",
            "/b/k",
            &[("authorization", v4), ("authorization", "AWS AK:c2ln")],
        );
        assert_eq!(
            check_head(&twice, &cfg(true), NOW).unwrap_err().code,
            "InvalidArgument"
        );
        // s3s checks the query's signature, which signs only `host`: the header's list of
        // signed headers does not cover x-amz-meta-evil.
        let both = parts(
            "PUT",
            "/b/k?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Expires=60&X-Amz-SignedHeaders=host&X-Amz-Signature=ab",
            &[("authorization", v4), ("x-amz-meta-evil", "1")],
        );
        assert_eq!(
            check_head(&both, &cfg(false), NOW).unwrap_err().code,
            "AccessDenied"
        );
        let encoded = parts(
            "GET",
            "/b/k?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Expir%65s=604801&X-Amz-SignedHeaders=host&X-Amz-Sig%6Eature=ab",
            &[],
        );
        assert_eq!(
            check_head(&encoded, &cfg(false), NOW).unwrap_err().code,
            "AuthorizationQueryParametersError"
        );
    }

    #[test]
    fn sigv2_dates_may_carry_a_numeric_zone() {
        let gmt = sigv2_date("Tue, 27 Mar 2007 19:36:42 GMT").unwrap();
        assert_eq!(gmt, 1_175_024_202);
        assert_eq!(sigv2_date("Tue, 27 Mar 2007 19:36:42 +0000"), Some(gmt));
        assert_eq!(sigv2_date("Tue, 27 Mar 2007 21:36:42 +0200"), Some(gmt));
        assert_eq!(sigv2_date("Tue, 27 Mar 2007 14:06:42 -0530"), Some(gmt));
        for junk in [
            "Tue, 27 Mar 2007 19:36:42 +00",
            "Tue, 27 Mar 2007 19:36:42 EST",
            "+0000",
            "",
        ] {
            assert_eq!(sigv2_date(junk), None, "{junk}");
        }
        let s3cmd = parts(
            "GET",
            "/b/k",
            &[
                ("authorization", "AWS AK:c2ln"),
                ("x-amz-date", "Fri, 15 Jan 2027 08:00:00 +0000"),
            ],
        );
        assert!(check_head(&s3cmd, &cfg(true), 1_800_000_000).is_ok());
    }

    #[test]
    fn presigned_urls_live_at_most_a_week() {
        let url = |secs: u64| {
            parts(
                "GET",
                &format!(
                    "/b/k?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Expires={secs}&X-Amz-SignedHeaders=host&X-Amz-Signature=ab"
                ),
                &[],
            )
        };
        assert!(check_head(&url(604_800), &cfg(false), NOW).is_ok());
        let e = check_head(&url(604_801), &cfg(false), NOW).unwrap_err();
        assert_eq!(e.code, "AuthorizationQueryParametersError");
        assert!(e.message.contains("604800"), "{e:?}");
        let e = check_head(&url(4_294_967_295), &cfg(false), NOW).unwrap_err();
        assert_eq!(e.status, StatusCode::BAD_REQUEST);
    }

    #[test]
    fn unsigned_amz_headers_are_refused() {
        let auth = "AWS4-HMAC-SHA256 Credential=AK/20260101/us-east-1/s3/aws4_request, SignedHeaders=host;x-amz-content-sha256;x-amz-date, Signature=ab";
        let ok = parts(
            "PUT",
            "/b/k",
            &[
                ("authorization", auth),
                ("x-amz-date", "x"),
                ("x-amz-content-sha256", "y"),
            ],
        );
        assert!(check_head(&ok, &cfg(false), NOW).is_ok());
        let evil = parts(
            "PUT",
            "/b/k",
            &[
                ("authorization", auth),
                ("x-amz-date", "x"),
                ("x-amz-content-sha256", "y"),
                ("x-amz-meta-evil", "1"),
            ],
        );
        let e = check_head(&evil, &cfg(false), NOW).unwrap_err();
        assert_eq!((e.status, e.code), (StatusCode::FORBIDDEN, "AccessDenied"));
        assert!(e.message.contains("x-amz-meta-evil"), "{e:?}");
        // Presigned: the signed list is in the query; the payload hash may come unsigned.
        let pre = parts(
            "PUT",
            "/b/k?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Expires=60&X-Amz-SignedHeaders=host&X-Amz-Signature=ab",
            &[("x-amz-content-sha256", "UNSIGNED-PAYLOAD")],
        );
        assert!(check_head(&pre, &cfg(false), NOW).is_ok());
        let pre_evil = parts(
            "PUT",
            "/b/k?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Expires=60&X-Amz-SignedHeaders=host&X-Amz-Signature=ab",
            &[("x-amz-meta-evil", "1")],
        );
        assert_eq!(
            check_head(&pre_evil, &cfg(false), NOW).unwrap_err().code,
            "AccessDenied"
        );
        // Anonymous requests carry no signature to cover anything.
        let anon = parts("GET", "/b/k", &[("x-amz-request-payer", "requester")]);
        assert!(check_head(&anon, &cfg(false), NOW).is_ok());
    }

    #[test]
    fn a_single_put_declares_at_most_the_object_limit() {
        let mut c = cfg(false);
        c.max_object_bytes = 1000;
        let big = parts("PUT", "/b/k", &[("content-length", "1001")]);
        assert_eq!(
            check_head(&big, &c, NOW).unwrap_err().code,
            "EntityTooLarge"
        );
        let ok = parts("PUT", "/b/k", &[("content-length", "1000")]);
        assert!(check_head(&ok, &c, NOW).is_ok());
    }

    #[test]
    fn form_fields_stop_at_the_file_part() {
        let body = b"--XyZ\r\nContent-Disposition: form-data; name=\"key\"\r\n\r\nk\r\n--XyZ\r\nContent-Disposition: form-data; name=\"X-Amz-Signature\"\r\n\r\nab\r\n--XyZ\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a\"\r\nContent-Type: application/octet-stream\r\n\r\nDATA";
        assert_eq!(
            form_fields(body, "XyZ"),
            Form::Fields(vec!["key".into(), "X-Amz-Signature".into()])
        );
        assert_eq!(form_fields(&body[..90], "XyZ"), Form::Incomplete);
    }
}
