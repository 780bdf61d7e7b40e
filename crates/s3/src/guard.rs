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
//!   [`MAX_POST_PRE_DATA`] bytes, and read as `s3s` reads them (`crate::form`); a form without
//!   a signature field is refused there, before a byte of the file is read (`s3s` would buffer
//!   the whole file before its access check), and so is a SigV2 form unless allowed; when
//!   allowed, its signature is checked in constant time by `crate::sigv2` from those fields.
//! * **Sizes**: a single PUT declares at most [`GatewayConfig::max_object_bytes`].

use bytes::Bytes;
use futures::StreamExt;
use http::StatusCode;
use http_body_util::BodyExt;

use crate::GatewayConfig;
use crate::form;

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

/// True for a browser-form POST: a `POST` with a `Content-Type` starting with
/// `multipart/form-data` (any case). Every request `s3s` reads as a form is one (see
/// `form::boundary`); those it would not read as one are refused by [`form_post`].
pub(crate) fn is_form_post(parts: &http::request::Parts) -> bool {
    parts.method == http::Method::POST
        && parts
            .headers
            .get_all(http::header::CONTENT_TYPE)
            .iter()
            .any(|v| {
                v.as_bytes()
                    .trim_ascii_start()
                    .get(..19)
                    .is_some_and(|t| t.eq_ignore_ascii_case(b"multipart/form-data"))
            })
}

/// The limits `s3s` applies to form fields (set in `s3s_limits`).
fn form_limits() -> form::Limits {
    let c = crate::s3s_limits();
    form::Limits {
        max_field_size: c.form_max_field_size,
        max_fields_size: c.form_max_fields_size,
        max_parts: c.form_max_parts,
    }
}

fn malformed_form(why: impl std::fmt::Display) -> Refusal {
    Refusal::new(
        StatusCode::BAD_REQUEST,
        "MalformedPOSTRequest",
        format!("The body of your POST request is not well-formed multipart/form-data: {why}."),
    )
}

/// A browser-form POST that passed the guard: its body (what was read, then the rest,
/// streamed) and, for a SigV2 form, what its signature signs, for `sigv2::Verifier`.
pub(crate) struct FormPost {
    pub(crate) body: s3s::Body,
    pub(crate) sigv2: Option<crate::sigv2::FormPresented>,
}

/// What the fields before the file say: refused, or the SigV2 signature to check (SigV4
/// forms are checked by `s3s`, in constant time).
fn form_signature(
    fields: &form::Fields,
    config: &GatewayConfig,
) -> Result<Option<crate::sigv2::FormPresented>, Refusal> {
    // s3s: SigV4 when there is an x-amz-signature field, else SigV2 when there is a signature
    // field (names lowercased), else anonymous.
    let v4 = fields.has("x-amz-signature");
    let v2 = !v4 && fields.has("signature");
    if !v4 && !v2 {
        return Err(Refusal::new(
            StatusCode::FORBIDDEN,
            "AccessDenied",
            "anonymous uploads are not allowed: the form has no signature field",
        ));
    }
    if !config.allow_sigv2 && (fields.has("signature") || fields.has("awsaccesskeyid")) {
        return Err(sigv2_refused());
    }
    if v2 {
        return crate::sigv2::form_presented(fields).map(Some);
    }
    Ok(None)
}

/// Reads a browser-form POST only up to its file part, its fields read as `s3s` reads them
/// (`crate::form`): refuses a form with no signature field (anonymous uploads are never
/// allowed), a SigV2 form unless allowed, a form `s3s` would refuse or read otherwise, or
/// more than [`MAX_POST_PRE_DATA`] bytes of fields; otherwise gives back a body that replays
/// what was read (the fields as one chunk, the first chunk `s3s` parses) and then streams.
pub(crate) async fn form_post(
    parts: &http::request::Parts,
    mut body: hyper::body::Incoming,
    config: &GatewayConfig,
) -> Result<FormPost, Refusal> {
    let boundary = match form::boundary(&parts.headers) {
        Some(Some(b)) => b,
        Some(None) => return Err(malformed_form("no boundary")),
        None => {
            return Err(malformed_form(
                "it needs one Content-Type header, multipart/form-data with a boundary",
            ));
        }
    };
    let limits = form_limits();
    let too_large = || {
        Refusal::new(
            StatusCode::BAD_REQUEST,
            "MaxPostPreDataLengthExceededError",
            format!(
                "Your POST request fields preceding the upload file were too large (more than {MAX_POST_PRE_DATA} bytes)."
            ),
        )
    };
    let mut buf = Vec::new();
    let mut ended = false;
    // The form is parsed again from its start as it grows (as s3s does). The file part's
    // headers end in a line feed, so a frame without one cannot complete them; after
    // `FORM_PARSES` parses, only a doubled form, its end or the limit are parsed again: a body
    // sent a byte at a time costs linear time, not quadratic.
    const FORM_PARSES: usize = 64;
    let (mut parsed, mut parses, mut newline) = (0, 0, false);
    let (end, sigv2) = loop {
        let due = ended
            || buf.len() > MAX_POST_PRE_DATA
            || (newline && (parses < FORM_PARSES || buf.len() >= 2 * parsed));
        if due {
            (parsed, parses, newline) = (buf.len(), parses + 1, false);
            match form::fields(&buf, &boundary, limits) {
                Err(e) => return Err(malformed_form(e)),
                Ok(form::Parse::Complete(fields)) => {
                    if fields.end > MAX_POST_PRE_DATA {
                        return Err(too_large());
                    }
                    break (fields.end, form_signature(&fields, config)?);
                }
                Ok(form::Parse::Incomplete) => {}
            }
        }
        if ended {
            return Err(malformed_form("it ends before its file part"));
        }
        if buf.len() > MAX_POST_PRE_DATA {
            return Err(too_large());
        }
        match body.frame().await {
            Some(Ok(frame)) => {
                if let Ok(data) = frame.into_data() {
                    newline |= data.contains(&b'\n');
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
    };
    // The fields exactly as read (s3s's first parse), then the file's first bytes, then the
    // rest of the body as it arrives.
    let mut head = Bytes::from(buf);
    let tail = head.split_off(end);
    let read = futures::stream::iter(
        [head, tail]
            .into_iter()
            .filter(|b| !b.is_empty())
            .map(Ok::<_, hyper::Error>),
    );
    let rest = body.into_data_stream();
    let stream = read.chain(rest).map(|r| r.map(hyper::body::Frame::data));
    Ok(FormPost {
        body: s3s::Body::http_body(http_body_util::StreamBody::new(stream)),
        sigv2,
    })
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
    // The form's fields, as s3s reads them, and their SigV2 signature.
    let boundary = form::boundary(&parts.headers).flatten();
    for b in [boundary.as_deref(), Some("XyZ")].into_iter().flatten() {
        if let Ok(form::Parse::Complete(fields)) = form::fields(body, b, form_limits()) {
            for allow in [false, true] {
                let mut c = GatewayConfig::new("AK", "SK");
                c.allow_sigv2 = allow;
                if let Ok(Some(p)) = form_signature(&fields, &c) {
                    let _ = crate::sigv2::check_form(&p, "SK");
                }
            }
        }
    }
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
        let body = b"--XyZ\r\nContent-Disposition: form-data; name=\"key\"\r\n\r\nk\r\n--XyZ\r\nContent-Disposition: form-data; name=\"X-Amz-Signature\"\r\n\r\nab\r\n--XyZ\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a\"\r\nContent-Type: application/octet-stream\r\n\r\nDATA\r\n--XyZ\r\nContent-Disposition: form-data; name=\"after\"\r\n\r\nx\r\n--XyZ--\r\n";
        let Ok(form::Parse::Complete(f)) = form::fields(body, "XyZ", form_limits()) else {
            panic!("a complete form");
        };
        assert_eq!(f.names(), ["key", "x-amz-signature"]);
        assert_eq!(&body[f.end..f.end + 4], b"DATA");
        assert!(matches!(
            form::fields(&body[..90], "XyZ", form_limits()),
            Ok(form::Parse::Incomplete)
        ));
    }

    /// An `s3s` service over an S3 that accepts every upload, with the one key `AK`/`SK`.
    fn s3s_alone() -> s3s::service::S3Service {
        struct Accept;
        #[async_trait::async_trait]
        impl s3s::S3 for Accept {
            async fn put_object(
                &self,
                _req: s3s::S3Request<s3s::dto::PutObjectInput>,
            ) -> s3s::S3Result<s3s::S3Response<s3s::dto::PutObjectOutput>> {
                Ok(s3s::S3Response::new(s3s::dto::PutObjectOutput::default()))
            }
        }
        let mut b = s3s::service::S3ServiceBuilder::new(Accept);
        b.set_auth(s3s::auth::SimpleAuth::from_single("AK", "SK"));
        b.set_config(std::sync::Arc::new(s3s::config::StaticConfigProvider::new(
            std::sync::Arc::new(crate::s3s_limits()),
        )));
        b.build()
    }

    /// A SigV2 form's policy (base64) and its signature with `SK`.
    fn signed_policy(expiration: &str) -> (String, String) {
        let json = format!(
            r#"{{"expiration":"{expiration}","conditions":[{{"bucket":"bkt"}},["starts-with","$key",""]]}}"#
        );
        let policy = crate::sigv2::base64(json.as_bytes());
        let sig = crate::sigv2::signature("SK", &policy);
        (policy, sig)
    }

    /// What the guard says of a form (its fields read, its SigV2 signature checked with `SK`),
    /// and the chunks it hands on.
    fn guard_says(content_type: &str, body: &[u8]) -> (Result<(), String>, Vec<Vec<u8>>) {
        let mut h = http::HeaderMap::new();
        h.insert(http::header::CONTENT_TYPE, content_type.parse().unwrap());
        let refused = |code: &str| (Err(code.to_string()), vec![body.to_vec()]);
        let Some(Some(boundary)) = form::boundary(&h) else {
            return refused("MalformedPOSTRequest");
        };
        let Ok(form::Parse::Complete(f)) = form::fields(body, &boundary, form_limits()) else {
            return refused("MalformedPOSTRequest");
        };
        let chunks = vec![body[..f.end].to_vec(), body[f.end..].to_vec()];
        let verdict = match form_signature(&f, &cfg(true)) {
            Err(r) => Err(r.code.to_string()),
            Ok(None) => Ok(()),
            // The secret lookup (the Verifier's, as s3s's): one key.
            Ok(Some(p)) if p.access_key() != "AK" => Err("InvalidAccessKeyId".to_string()),
            Ok(Some(p)) => crate::sigv2::check_form(&p, "SK").map_err(|r| r.code.to_string()),
        };
        (verdict, chunks)
    }

    /// What `s3s` alone says of the same form, sent as the guard hands it on.
    async fn s3s_says(
        svc: &s3s::service::S3Service,
        content_type: &str,
        chunks: Vec<Vec<u8>>,
    ) -> Result<(), String> {
        let frames = chunks
            .into_iter()
            .filter(|c| !c.is_empty())
            .map(|c| Ok::<_, std::convert::Infallible>(hyper::body::Frame::data(Bytes::from(c))));
        let body = s3s::Body::http_body(http_body_util::StreamBody::new(futures::stream::iter(
            frames.collect::<Vec<_>>(),
        )));
        let req = http::Request::builder()
            .method("POST")
            .uri("/bkt")
            .header("host", "127.0.0.1:9000")
            .header("content-type", content_type)
            .body(body)
            .unwrap();
        let resp = svc.call(req).await.unwrap();
        if resp.status().is_success() {
            return Ok(());
        }
        let body = resp.into_body().store_all_limited(1 << 20).await.unwrap();
        let text = String::from_utf8_lossy(&body);
        let code = text
            .split_once("<Code>")
            .and_then(|(_, r)| r.split_once("</Code>"))
            .map_or("?", |(c, _)| c);
        Err(code.to_string())
    }

    /// Differential: forms laid out to be read one way by a careless parser and another by
    /// s3s (names in other cases, repeated fields, fields after the file, bare-LF headers,
    /// quoted boundaries) are accepted by the guard exactly when s3s accepts them, and its
    /// SigV2 verdict is s3s's.
    #[tokio::test]
    async fn forms_are_read_and_verified_as_s3s_reads_and_verifies_them() {
        let svc = s3s_alone();
        let (policy, sig) = signed_policy("2099-01-01T00:00:00.000Z");
        let (other_policy, _) = signed_policy("2098-01-01T00:00:00.000Z");
        let mut wrong = sig.clone();
        wrong.replace_range(..1, if sig.starts_with('A') { "B" } else { "A" });
        let part = |name: &str, value: &str| {
            format!("--B\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\r\n{value}\r\n")
        };
        let file = "--B\r\nContent-Disposition: form-data; name=\"file\"; filename=\"f\"\r\nContent-Type: text/plain\r\n\r\nhello\r\n--B--\r\n";
        let form = |fields: &[(&str, &str)], tail: &str| {
            let mut s: String = fields.iter().map(|(n, v)| part(n, v)).collect();
            s.push_str(tail);
            s
        };
        let base = |sig: &str, policy: &str| {
            vec![
                ("key", "k".to_string()),
                ("AWSAccessKeyId", "AK".to_string()),
                ("policy", policy.to_string()),
                ("signature", sig.to_string()),
            ]
        };
        let with = |fields: Vec<(&'static str, String)>, tail: &str| {
            let f: Vec<(&str, &str)> = fields.iter().map(|(n, v)| (*n, v.as_str())).collect();
            form(&f, tail)
        };
        let ct = "multipart/form-data; boundary=B";
        let cases: Vec<(&str, &str, String, Result<(), &str>)> = vec![
            ("signed", ct, with(base(&sig, &policy), file), Ok(())),
            (
                "a wrong signature of the same length",
                ct,
                with(base(&wrong, &policy), file),
                Err("SignatureDoesNotMatch"),
            ),
            (
                "the policy changed after signing",
                ct,
                with(base(&sig, &other_policy), file),
                Err("SignatureDoesNotMatch"),
            ),
            (
                "names in other cases",
                "Multipart/Form-Data; BOUNDARY=B",
                form(
                    &[
                        ("Key", "k"),
                        ("awsaccesskeyid", "AK"),
                        ("POLICY", &policy),
                        ("Signature", &sig),
                    ],
                    &file.replace("name=\"file\"", "name=\"FiLe\""),
                ),
                Ok(()),
            ),
            (
                "the right signature, then a wrong one (the last counts)",
                ct,
                form(
                    &[
                        ("key", "k"),
                        ("AWSAccessKeyId", "AK"),
                        ("policy", &policy),
                        ("Signature", &sig),
                        ("signature", &wrong),
                    ],
                    file,
                ),
                Err("SignatureDoesNotMatch"),
            ),
            (
                "a wrong signature, then the right one",
                ct,
                form(
                    &[
                        ("key", "k"),
                        ("AWSAccessKeyId", "AK"),
                        ("signature", &wrong),
                        ("policy", &policy),
                        ("SIGNATURE", &sig),
                    ],
                    file,
                ),
                Ok(()),
            ),
            (
                "a signed policy after another one",
                ct,
                form(
                    &[
                        ("key", "k"),
                        ("AWSAccessKeyId", "AK"),
                        ("Policy", &other_policy),
                        ("policy", &policy),
                        ("signature", &sig),
                    ],
                    file,
                ),
                Ok(()),
            ),
            (
                "the right signature after the file",
                ct,
                form(
                    &[
                        ("key", "k"),
                        ("AWSAccessKeyId", "AK"),
                        ("policy", &policy),
                        ("signature", &wrong),
                    ],
                    &file.replace("--B--\r\n", &part("signature", &sig)),
                ),
                Err("SignatureDoesNotMatch"),
            ),
            (
                "bare-LF part headers and a Content-Type on a field",
                ct,
                with(base(&sig, &policy), file)
                    .replace("\"\r\n\r\n", "\"\n\n")
                    .replacen(
                        "name=\"key\"\n",
                        "name=\"key\"\r\nContent-Type: text/plain\r\n",
                        1,
                    ),
                Ok(()),
            ),
            (
                "a quoted boundary with a semicolon",
                "multipart/form-data; boundary=\"B;x\"",
                with(base(&sig, &policy), file).replace("--B", "--B;x"),
                Ok(()),
            ),
            (
                "a boundary parameter ending in a semicolon",
                "multipart/form-data; boundary=B;",
                with(base(&sig, &policy), file),
                Ok(()),
            ),
            (
                "the first of two boundary parameters",
                "multipart/form-data; boundary=B; boundary=C",
                with(base(&sig, &policy), file),
                Ok(()),
            ),
            (
                "the second of two boundary parameters",
                "multipart/form-data; boundary=C; boundary=B",
                with(base(&sig, &policy), file),
                Err("MalformedPOSTRequest"),
            ),
            (
                "an unknown key",
                ct,
                with(base(&sig, &policy), file).replacen("\r\n\r\nAK\r\n", "\r\n\r\nAX\r\n", 1),
                Err("InvalidAccessKeyId"),
            ),
        ];
        for (what, content_type, body, want) in cases {
            let (guard, chunks) = guard_says(content_type, body.as_bytes());
            let alone = s3s_says(&svc, content_type, chunks).await;
            // s3s's own lookup says NotSignedUp (SimpleAuth); the gateway's says InvalidAccessKeyId.
            let alone = alone.map_err(|c| {
                if c == "NotSignedUp" {
                    "InvalidAccessKeyId".to_string()
                } else {
                    c
                }
            });
            assert_eq!(
                guard.as_ref().map_err(String::as_str).copied(),
                want,
                "guard: {what}"
            );
            assert_eq!(alone, guard, "s3s alone and the guard disagree: {what}");
        }
    }

    /// A form is SigV4, SigV2 or anonymous as s3s decides (field names in any case); SigV2
    /// is refused unless allowed, and then handed on to be verified.
    #[test]
    fn a_form_is_signed_as_s3s_reads_it() {
        let form = |names: &[&str]| {
            let mut body = String::new();
            for n in names {
                body.push_str(&format!(
                    "--B\r\nContent-Disposition: form-data; name=\"{n}\"\r\n\r\ncG9saWN5\r\n"
                ));
            }
            body.push_str("--B\r\nContent-Disposition: form-data; name=\"file\"\r\n\r\n");
            match form::fields(body.as_bytes(), "B", form_limits()) {
                Ok(form::Parse::Complete(f)) => f,
                _ => panic!("a complete form"),
            }
        };
        let code =
            |names: &[&str], v2: bool| form_signature(&form(names), &cfg(v2)).map(|p| p.is_some());
        let v2 = ["key", "AWSAccessKeyId", "policy", "Signature"];
        assert_eq!(code(&v2, false).unwrap_err().code, "InvalidRequest");
        assert_eq!(code(&v2, true), Ok(true));
        assert_eq!(
            code(&["awsaccesskeyid", "POLICY", "SIGNATURE"], true),
            Ok(true)
        );
        assert_eq!(
            code(&["Signature", "policy"], true).unwrap_err().code,
            "InvalidRequest"
        );
        let v4 = ["key", "policy", "X-Amz-Signature"];
        assert_eq!(code(&v4, false), Ok(false));
        // With an x-amz-signature field s3s checks SigV4 only.
        assert_eq!(code(&["X-Amz-Signature", "signature"], true), Ok(false));
        assert_eq!(
            code(&["X-Amz-Signature", "signature"], false)
                .unwrap_err()
                .code,
            "InvalidRequest"
        );
        for anonymous in [&["key"][..], &["AWSAccessKeyId", "policy"], &["signaturex"]] {
            assert_eq!(
                code(anonymous, true).unwrap_err().code,
                "AccessDenied",
                "{anonymous:?}"
            );
        }
    }
}
