//! SigV2 signatures checked by the gateway itself, in constant time, before `s3s` sees the
//! request.
//!
//! `s3s` verifies SigV2 too, but compares the signatures with `!=`, whose time depends on how
//! many leading bytes of a guess are right. When `[server] allow_sigv2` is on, [`Verifier`]
//! recomputes the signature of a SigV2 header (`Authorization: AWS key:signature`) or of a
//! presigned SigV2 URL (`?AWSAccessKeyId=…&Expires=…&Signature=…`) exactly as `s3s` 0.14 does
//! (its `sig_v2/methods.rs` ported line for line, over the same view of the request: headers
//! as its `OrderedHeaders`, the query as its `OrderedQs`, the bucket of a virtual host from the
//! same `MultiDomain`), with the secret from the same [`Auth`], and compares the two in
//! constant time. A mismatch is answered `403 SignatureDoesNotMatch` and an unknown key
//! `403 InvalidAccessKeyId` before `s3s` parses anything. A request accepted here is checked
//! again by `s3s`, whose `!=` then compares equal strings.
//!
//! **Browser forms** signed with SigV2 (`AWSAccessKeyId`, `policy`, `signature`: the base64 of
//! the HMAC-SHA1 of the policy field as sent, `s3s`'s `v2_check_post_signature`) are checked
//! alike, from the fields the guard reads before the file part (`crate::form`, read as `s3s`
//! reads them: names in any case, the last of a repeated name), before `s3s` sees the body.
//! SigV4 forms are left to `s3s`: it compares their `x-amz-signature` in constant time
//! (`subtle`).
//!
//! Nothing here logs a signature, a secret or a string to sign.

use aws_lc_rs::{constant_time, hmac};
use http::StatusCode;
use s3s::auth::S3Auth;
use s3s::host::S3Host;

use crate::GatewayConfig;
use crate::auth::Auth;
use crate::guard::{Refusal, Refused, decoded_query, unique};

/// The sub-resources `s3s` puts in the canonicalized resource, in this (sorted) order: its
/// `INCLUDED_QUERY`, unchanged.
const SUB_RESOURCES: &[&str] = &[
    "accelerate",
    "acl",
    "analytics",
    "cors",
    "defaultObjectAcl",
    "delete",
    "inventory",
    "lifecycle",
    "location",
    "logging",
    "metrics",
    "notification",
    "object-lock",
    "partNumber",
    "policy",
    "replication",
    "requestPayment",
    "response-cache-control",
    "response-content-disposition",
    "response-content-encoding",
    "response-content-language",
    "response-content-type",
    "response-expires",
    "restore",
    "select",
    "select-type",
    "storageClass",
    "tagging",
    "torrent",
    "uploadId",
    "uploads",
    "versionId",
    "versioning",
    "versions",
    "website",
];

/// Where the signature is: the `Authorization` header or the query.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Mode {
    Header,
    Presigned,
}

/// What a SigV2 request presents. No `Debug`: it holds the signature.
pub(crate) struct Presented {
    pub(crate) access_key: String,
    signature: String,
    string_to_sign: String,
}

/// The headers as `s3s`'s `OrderedHeaders` holds them: lowercase names, values that are not
/// UTF-8 left out, sorted by name, the values of a repeated header in the order received.
fn ordered_headers(map: &http::HeaderMap) -> Vec<(&str, &str)> {
    let mut v: Vec<(&str, &str)> = map
        .iter()
        .filter_map(|(n, v)| {
            std::str::from_utf8(v.as_bytes())
                .ok()
                .map(|v| (n.as_str(), v))
        })
        .collect();
    v.sort_by(|a, b| a.0.cmp(b.0));
    v
}

/// The SigV2 string to sign (`s3s` `create_string_to_sign`): `headers` as
/// [`ordered_headers`], `qs` as [`decoded_query`], `uri_path` as received (not decoded).
pub(crate) fn string_to_sign(
    mode: Mode,
    method: &str,
    uri_path: &str,
    qs: Option<&[(String, String)]>,
    headers: &[(&str, &str)],
    virtual_host_bucket: Option<&str>,
) -> String {
    let mut s = String::with_capacity(256);
    s.push_str(method);
    s.push('\n');
    s.push_str(unique(headers, "content-md5").unwrap_or_default());
    s.push('\n');
    s.push_str(unique(headers, "content-type").unwrap_or_default());
    s.push('\n');
    match mode {
        // "If you include the x-amz-date header, use the empty string for the Date".
        Mode::Header => {
            if unique(headers, "x-amz-date").is_none() {
                s.push_str(unique(headers, "date").unwrap_or_default());
            }
        }
        Mode::Presigned => {
            s.push_str(qs.and_then(|q| unique(q, "Expires")).unwrap_or_default());
        }
    }
    s.push('\n');
    // CanonicalizedAmzHeaders: sorted by name, repeated ones joined by commas, values trimmed.
    for group in headers.chunk_by(|a, b| a.0 == b.0) {
        let Some((name, _)) = group.first() else {
            continue;
        };
        if !name.starts_with("x-amz-") {
            continue;
        }
        s.push_str(name);
        s.push(':');
        for (i, (_, value)) in group.iter().enumerate() {
            if i > 0 {
                s.push(',');
            }
            s.push_str(value.trim());
        }
        s.push('\n');
    }
    // CanonicalizedResource.
    if let Some(bucket) = virtual_host_bucket {
        s.push('/');
        s.push_str(bucket);
    }
    s.push_str(uri_path);
    if let Some(qs) = qs {
        let mut first = true;
        for name in SUB_RESOURCES {
            if let Some(v) = unique(qs, name) {
                s.push(if first { '?' } else { '&' });
                first = false;
                s.push_str(name);
                if !v.is_empty() {
                    s.push('=');
                    s.push_str(v);
                }
            }
        }
    }
    s
}

/// `base64(HMAC-SHA1(secret, string_to_sign))`.
pub(crate) fn signature(secret: &str, string_to_sign: &str) -> String {
    let key = hmac::Key::new(hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY, secret.as_bytes());
    base64(hmac::sign(&key, string_to_sign.as_bytes()).as_ref())
}

/// Standard base64 with padding, without a table indexed by the (secret-derived) bytes.
pub(crate) fn base64(bytes: &[u8]) -> String {
    fn char_of(v: u32) -> char {
        // 'A'.. for 0..26, 'a'.. for 26..52, '0'.. for 52..62, '+' 62, '/' 63, branch-free.
        let v = v as i32;
        let mut c = v + 65;
        c += ((25 - v) >> 8) & 6;
        c -= ((51 - v) >> 8) & 75;
        c -= ((61 - v) >> 8) & 15;
        c += ((62 - v) >> 8) & 3;
        char::from(c as u8)
    }
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let byte = |i: usize| u32::from(chunk.get(i).copied().unwrap_or(0));
        let n = (byte(0) << 16) | (byte(1) << 8) | byte(2);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(char_of((n >> (18 - 6 * i)) & 63));
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// True when the two signatures are equal, in time independent of where they differ.
pub(crate) fn signatures_match(expected: &str, presented: &str) -> bool {
    constant_time::verify_slices_are_equal(expected.as_bytes(), presented.as_bytes()).is_ok()
}

/// `%XX` decoded, `+` kept (the `urlencoding::decode` `s3s` applies to a presigned
/// signature once more, after the query's own decoding); `None` if the result is not UTF-8.
fn percent_decode_again(s: &str) -> Option<String> {
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
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

fn invalid(message: &str) -> Refused {
    Refusal::new(StatusCode::BAD_REQUEST, "InvalidRequest", message).into()
}

/// The bucket of a virtual-hosted request, as `s3s` finds it (`ops::prepare`): none without a
/// configured domain or `Host`, or when the host is an IP address.
fn virtual_host_bucket(
    parts: &http::request::Parts,
    host: Option<&dyn S3Host>,
) -> Result<Option<String>, Refused> {
    let Some(s3_host) = host else {
        return Ok(None);
    };
    let header = match parts.headers.get(http::header::HOST) {
        Some(v) => Some(
            v.to_str()
                .map_err(|_| invalid("invalid header: Host"))?
                .to_string(),
        ),
        // HTTP/2 and 3 carry the host as the URI's authority.
        None if matches!(parts.version, http::Version::HTTP_2 | http::Version::HTTP_3) => {
            parts.uri.authority().map(|a| a.as_str().to_string())
        }
        None => None,
    };
    let Some(header) = header else {
        return Ok(None);
    };
    if header.parse::<std::net::SocketAddr>().is_ok() || header.parse::<std::net::IpAddr>().is_ok()
    {
        return Ok(None);
    }
    let vh = s3_host.parse_host_header(&header).map_err(Refused::S3)?;
    Ok(vh.bucket().map(str::to_string))
}

/// The SigV2 credentials of a request and what they sign, read as `s3s` reads them; `None`
/// when `s3s` would not check the request as SigV2 (a browser form's signature is in its
/// body: see the module doc). `now` in seconds since the epoch.
pub(crate) fn presented(
    parts: &http::request::Parts,
    host: Option<&dyn S3Host>,
    now: u64,
) -> Result<Option<Presented>, Refused> {
    let qs = parts.uri.query().map(decoded_query);
    let headers = ordered_headers(&parts.headers);
    let presigned = qs
        .as_deref()
        .filter(|q| q.iter().any(|(k, _)| k == "Signature"));
    let (mode, access_key, signature) = if let Some(q) = presigned {
        let (Some(key), Some(expires), Some(sig)) = (
            unique(q, "AWSAccessKeyId"),
            unique(q, "Expires"),
            unique(q, "Signature"),
        ) else {
            return Err(invalid(
                "a presigned SigV2 URL needs AWSAccessKeyId, Expires and Signature, once each",
            ));
        };
        let expires = expires
            .parse::<i64>()
            .ok()
            .filter(|t| time::OffsetDateTime::from_unix_timestamp(*t).is_ok())
            .and_then(|t| u64::try_from(t).ok())
            .ok_or_else(|| invalid("Expires must be a time in seconds since the epoch"))?;
        if now > expires {
            return Err(
                Refusal::new(StatusCode::FORBIDDEN, "AccessDenied", "Request has expired").into(),
            );
        }
        let sig = percent_decode_again(sig)
            .ok_or_else(|| invalid("the Signature of a presigned SigV2 URL is not text"))?;
        (Mode::Presigned, key.to_string(), sig)
    } else if let Some(auth) = unique(&headers, "authorization")
        && let Some(rest) = auth.strip_prefix("AWS ")
        && let Some((key, sig)) = rest.split_once(':')
    {
        if unique(&headers, "date").is_none() && unique(&headers, "x-amz-date").is_none() {
            return Err(invalid("missing date"));
        }
        (Mode::Header, key.to_string(), sig.to_string())
    } else {
        return Ok(None);
    };
    let bucket = virtual_host_bucket(parts, host)?;
    let string_to_sign = string_to_sign(
        mode,
        parts.method.as_str(),
        parts.uri.path(),
        qs.as_deref(),
        &headers,
        bucket.as_deref(),
    );
    Ok(Some(Presented {
        access_key,
        signature,
        string_to_sign,
    }))
}

/// Checks a presented signature against `secret`, in constant time.
pub(crate) fn check(p: &Presented, secret: &str) -> Result<(), Refusal> {
    if signatures_match(&signature(secret, &p.string_to_sign), &p.signature) {
        Ok(())
    } else {
        Err(Refusal::new(
            StatusCode::FORBIDDEN,
            "SignatureDoesNotMatch",
            "The SigV2 signature we calculated does not match the signature you provided. \
             Check your key and signing method.",
        ))
    }
}

/// What a SigV2 browser form presents (`s3s`'s `PostSignatureV2`). No `Debug`: it holds the
/// signature.
pub(crate) struct FormPresented {
    access_key: String,
    policy: String,
    signature: String,
}

impl FormPresented {
    /// The access key the form names.
    pub(crate) fn access_key(&self) -> &str {
        &self.access_key
    }
}

/// True for standard base64 with its padding (what `s3s` asks of a form's policy before it
/// looks its key up; whether the last character's spare bits are zero is left to `s3s`).
fn is_base64(s: &str) -> bool {
    let b = s.as_bytes();
    let pad = b.iter().rev().take_while(|c| **c == b'=').count();
    b.len().is_multiple_of(4)
        && pad <= 2
        && b[..b.len() - pad]
            .iter()
            .all(|c| c.is_ascii_alphanumeric() || *c == b'+' || *c == b'/')
}

/// The SigV2 signature of a browser form, from its fields (names lowercased) as `s3s` takes
/// them: `policy`, `awsaccesskeyid` and `signature` all needed, the policy base64.
pub(crate) fn form_presented(fields: &crate::form::Fields) -> Result<FormPresented, Refusal> {
    let (Some(policy), Some(access_key), Some(signature)) = (
        fields.get("policy"),
        fields.get("awsaccesskeyid"),
        fields.get("signature"),
    ) else {
        return Err(Refusal::new(
            StatusCode::BAD_REQUEST,
            "InvalidRequest",
            "a SigV2 form needs the fields AWSAccessKeyId, policy and signature",
        ));
    };
    if !is_base64(policy) {
        return Err(Refusal::new(
            StatusCode::BAD_REQUEST,
            "InvalidRequest",
            "invalid field: policy (not base64)",
        ));
    }
    Ok(FormPresented {
        access_key: access_key.to_string(),
        policy: policy.to_string(),
        signature: signature.to_string(),
    })
}

/// Checks a form's signature against `secret`, in constant time: the string to sign is the
/// policy field exactly as sent.
pub(crate) fn check_form(p: &FormPresented, secret: &str) -> Result<(), Refusal> {
    if signatures_match(&signature(secret, &p.policy), &p.signature) {
        Ok(())
    } else {
        Err(Refusal::new(
            StatusCode::FORBIDDEN,
            "SignatureDoesNotMatch",
            "The SigV2 signature we calculated from the form's policy does not match the \
             signature you provided. Check your key and signing method.",
        ))
    }
}

/// Verifies SigV2 signatures before `s3s` when the gateway allows SigV2.
pub(crate) struct Verifier {
    enabled: bool,
    auth: Auth,
    host: Option<s3s::host::MultiDomain>,
}

impl Verifier {
    pub(crate) fn new(engine: archipel_engine::Engine, config: &GatewayConfig) -> Self {
        Verifier {
            enabled: config.allow_sigv2,
            auth: Auth::new(engine, config.clone()),
            host: crate::virtual_host(config),
        }
    }

    /// Checks a SigV2 request's signature (nothing else passes through here unchecked by
    /// `s3s`: any other request is left to it). The secret comes from the same lookup as
    /// `s3s`'s (`Auth`), so an unknown key gets the same `InvalidAccessKeyId`.
    pub(crate) async fn verify(
        &self,
        parts: &http::request::Parts,
        now: u64,
    ) -> Result<(), Refused> {
        if !self.enabled {
            return Ok(());
        }
        let host = self.host.as_ref().map(|h| h as &dyn S3Host);
        let Some(p) = presented(parts, host, now)? else {
            return Ok(());
        };
        let secret = self
            .auth
            .get_secret_key(&p.access_key)
            .await
            .map_err(Refused::S3)?;
        check(&p, secret.expose()).map_err(Refused::from)
    }

    /// Checks a SigV2 browser form's signature (`None`: not a SigV2 form, left to `s3s`),
    /// the secret from the same lookup as `s3s`'s.
    pub(crate) async fn verify_form(&self, form: Option<&FormPresented>) -> Result<(), Refused> {
        let Some(p) = form else {
            return Ok(());
        };
        if !self.enabled {
            // The guard refuses SigV2 forms unless they are allowed.
            return Err(Refused::Guard(Refusal::new(
                StatusCode::BAD_REQUEST,
                "InvalidRequest",
                "SigV2 is disabled on this gateway: [server] allow_sigv2",
            )));
        }
        let secret = self
            .auth
            .get_secret_key(p.access_key())
            .await
            .map_err(Refused::S3)?;
        check_form(p, secret.expose()).map_err(Refused::from)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    const SECRET: &str = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY";

    fn parts(method: &str, uri: &str, headers: &[(&str, &str)]) -> http::request::Parts {
        let mut b = http::Request::builder().method(method).uri(uri);
        for (k, v) in headers {
            b = b.header(*k, *v);
        }
        b.body(()).unwrap().into_parts().0
    }

    /// What a request presents, its domain configured as `domain`.
    fn read(p: &http::request::Parts, domain: &str, now: u64) -> Presented {
        let host = s3s::host::MultiDomain::new([domain]).unwrap();
        presented(p, Some(&host), now)
            .unwrap()
            .expect("a SigV2 request")
    }

    /// The examples of the S3 developer guide, "Signing and authenticating REST requests"
    /// (SigV2): each request as sent, the string to sign it gives, and its signature. Where
    /// the guide's signature is not the HMAC of its own string to sign (Delete, Upload and
    /// the query-string example: known errata, also noted by s3s), the signature is the one
    /// computed from that string with Python's `hmac` (the guide's is in the comment).
    #[test]
    fn the_aws_developer_guide_examples_sign_as_documented() {
        let vh = "us-west-1.s3.amazonaws.com";
        let path_style = "s3.us-west-1.amazonaws.com";
        let cases: Vec<(&str, http::request::Parts, &str, &str, &str)> = vec![
            (
                "Object GET",
                parts(
                    "GET",
                    "/photos/puppy.jpg",
                    &[
                        ("host", "awsexamplebucket1.us-west-1.s3.amazonaws.com"),
                        ("date", "Tue, 27 Mar 2007 19:36:42 +0000"),
                        (
                            "authorization",
                            "AWS AKIAIOSFODNN7EXAMPLE:qgk2+6Sv9/oM7G3qLEjTH1a1l1g=",
                        ),
                    ],
                ),
                vh,
                "GET\n\n\nTue, 27 Mar 2007 19:36:42 +0000\n/awsexamplebucket1/photos/puppy.jpg",
                "qgk2+6Sv9/oM7G3qLEjTH1a1l1g=",
            ),
            (
                "Object PUT",
                parts(
                    "PUT",
                    "/photos/puppy.jpg",
                    &[
                        ("content-type", "image/jpeg"),
                        ("content-length", "94328"),
                        ("host", "awsexamplebucket1.us-west-1.s3.amazonaws.com"),
                        ("date", "Tue, 27 Mar 2007 21:15:45 +0000"),
                        (
                            "authorization",
                            "AWS AKIAIOSFODNN7EXAMPLE:iqRzw+ileNPu1fhspnRs8nOjjIA=",
                        ),
                    ],
                ),
                vh,
                "PUT\n\nimage/jpeg\nTue, 27 Mar 2007 21:15:45 +0000\n/awsexamplebucket1/photos/puppy.jpg",
                "iqRzw+ileNPu1fhspnRs8nOjjIA=",
            ),
            (
                "List",
                parts(
                    "GET",
                    "/?prefix=photos&max-keys=50&marker=puppy",
                    &[
                        ("user-agent", "Mozilla/5.0"),
                        ("host", "awsexamplebucket1.us-west-1.s3.amazonaws.com"),
                        ("date", "Tue, 27 Mar 2007 19:42:41 +0000"),
                        (
                            "authorization",
                            "AWS AKIAIOSFODNN7EXAMPLE:m0WP8eCtspQl5Ahe6L1SozdX9YA=",
                        ),
                    ],
                ),
                vh,
                "GET\n\n\nTue, 27 Mar 2007 19:42:41 +0000\n/awsexamplebucket1/",
                "m0WP8eCtspQl5Ahe6L1SozdX9YA=",
            ),
            (
                "Fetch (acl)",
                parts(
                    "GET",
                    "/?acl",
                    &[
                        ("host", "awsexamplebucket1.us-west-1.s3.amazonaws.com"),
                        ("date", "Tue, 27 Mar 2007 19:44:46 +0000"),
                        (
                            "authorization",
                            "AWS AKIAIOSFODNN7EXAMPLE:82ZHiFIjc+WbcwFKGUVEQspPn+0=",
                        ),
                    ],
                ),
                vh,
                "GET\n\n\nTue, 27 Mar 2007 19:44:46 +0000\n/awsexamplebucket1/?acl",
                "82ZHiFIjc+WbcwFKGUVEQspPn+0=",
            ),
            (
                "Delete (guide: XbyTlbQdu9Xw5o8P4iMwPktxQd8=)",
                parts(
                    "DELETE",
                    "/awsexamplebucket1/photos/puppy.jpg",
                    &[
                        ("user-agent", "dotnet"),
                        ("host", "s3.us-west-1.amazonaws.com"),
                        ("date", "Tue, 27 Mar 2007 21:20:27 +0000"),
                        ("x-amz-date", "Tue, 27 Mar 2007 21:20:26 +0000"),
                        (
                            "authorization",
                            "AWS AKIAIOSFODNN7EXAMPLE:Ri1hpB1zpS9pGqR7y8kuNFCl4sE=",
                        ),
                    ],
                ),
                path_style,
                "DELETE\n\n\n\nx-amz-date:Tue, 27 Mar 2007 21:20:26 +0000\n/awsexamplebucket1/photos/puppy.jpg",
                "Ri1hpB1zpS9pGqR7y8kuNFCl4sE=",
            ),
            (
                "Upload (guide: dKZcB+bz2EPXgSdXZp9ozGeOM4I=)",
                parts(
                    "PUT",
                    "/db-backup.dat.gz",
                    &[
                        ("user-agent", "curl/7.15.5"),
                        ("host", "static.example.com"),
                        ("date", "Tue, 27 Mar 2007 21:06:08 +0000"),
                        ("x-amz-acl", "public-read"),
                        ("content-type", "application/x-download"),
                        ("content-md5", "4gJE4saaMU4BqNR0kLY+lw=="),
                        ("x-amz-meta-reviewedby", "joe@example.com"),
                        ("x-amz-meta-reviewedby", "jane@example.com"),
                        ("x-amz-meta-filechecksum", "0x02661779"),
                        ("x-amz-meta-checksumalgorithm", "crc32"),
                        ("content-disposition", "attachment; filename=database.dat"),
                        ("content-encoding", "gzip"),
                        ("content-length", "5913339"),
                        (
                            "authorization",
                            "AWS AKIAIOSFODNN7EXAMPLE:jtBQa0Aq+DkULFI8qrpwIjGEx0E=",
                        ),
                    ],
                ),
                // A CNAME: the whole host is the bucket.
                path_style,
                "PUT\n4gJE4saaMU4BqNR0kLY+lw==\napplication/x-download\nTue, 27 Mar 2007 21:06:08 +0000\nx-amz-acl:public-read\nx-amz-meta-checksumalgorithm:crc32\nx-amz-meta-filechecksum:0x02661779\nx-amz-meta-reviewedby:joe@example.com,jane@example.com\n/static.example.com/db-backup.dat.gz",
                "jtBQa0Aq+DkULFI8qrpwIjGEx0E=",
            ),
            (
                "List all my buckets",
                parts(
                    "GET",
                    "/",
                    &[
                        ("host", "s3.us-west-1.amazonaws.com"),
                        ("date", "Wed, 28 Mar 2007 01:29:59 +0000"),
                        (
                            "authorization",
                            "AWS AKIAIOSFODNN7EXAMPLE:qGdzdERIC03wnaRNKh6OqZehG9s=",
                        ),
                    ],
                ),
                path_style,
                "GET\n\n\nWed, 28 Mar 2007 01:29:59 +0000\n/",
                "qGdzdERIC03wnaRNKh6OqZehG9s=",
            ),
            (
                "Unicode keys",
                parts(
                    "GET",
                    "/dictionary/fran%C3%A7ais/pr%c3%a9f%c3%a8re",
                    &[
                        ("host", "s3.us-west-1.amazonaws.com"),
                        ("date", "Wed, 28 Mar 2007 01:49:49 +0000"),
                        (
                            "authorization",
                            "AWS AKIAIOSFODNN7EXAMPLE:DNEZGsoieTZ92F3bUfSPQcbGmlM=",
                        ),
                    ],
                ),
                path_style,
                "GET\n\n\nWed, 28 Mar 2007 01:49:49 +0000\n/dictionary/fran%C3%A7ais/pr%c3%a9f%c3%a8re",
                "DNEZGsoieTZ92F3bUfSPQcbGmlM=",
            ),
            (
                "Query string authentication (guide: NpgCjnDzrM%2BWFzoENXmpNDUsSn8%3D)",
                parts(
                    "GET",
                    "/photos/puppy.jpg?AWSAccessKeyId=AKIAIOSFODNN7EXAMPLE&Signature=1No4mq5ETf02z8aet9voy6gui6E%3D&Expires=1175139620",
                    &[("host", "awsexamplebucket1.us-west-1.s3.amazonaws.com")],
                ),
                vh,
                "GET\n\n\n1175139620\n/awsexamplebucket1/photos/puppy.jpg",
                "1No4mq5ETf02z8aet9voy6gui6E=",
            ),
        ];
        for (what, p, domain, sts, sig) in cases {
            let got = read(&p, domain, 1_175_139_000);
            assert_eq!(got.access_key, "AKIAIOSFODNN7EXAMPLE", "{what}");
            assert_eq!(got.string_to_sign, sts, "{what}");
            assert_eq!(signature(SECRET, sts), sig, "{what}");
            assert_eq!(got.signature, sig, "{what}");
            check(&got, SECRET).unwrap_or_else(|e| panic!("{what}: {e:?}"));
        }
    }

    #[test]
    fn a_wrong_signature_of_the_same_length_is_refused() {
        let signed = |sig: &str| {
            parts(
                "GET",
                "/photos/puppy.jpg",
                &[
                    ("host", "awsexamplebucket1.us-west-1.s3.amazonaws.com"),
                    ("date", "Tue, 27 Mar 2007 19:36:42 +0000"),
                    ("authorization", &format!("AWS AKIAIOSFODNN7EXAMPLE:{sig}")),
                ],
            )
        };
        let domain = "us-west-1.s3.amazonaws.com";
        let good = "qgk2+6Sv9/oM7G3qLEjTH1a1l1g=";
        assert!(check(&read(&signed(good), domain, 0), SECRET).is_ok());
        // Last character, first character, and the right signature of another key.
        for bad in [
            "qgk2+6Sv9/oM7G3qLEjTH1a1l1h=",
            "Qgk2+6Sv9/oM7G3qLEjTH1a1l1g=",
            signature("another secret", "x").as_str(),
        ] {
            assert_eq!(bad.len(), good.len());
            let e = check(&read(&signed(bad), domain, 0), SECRET).unwrap_err();
            assert_eq!(
                (e.status, e.code),
                (StatusCode::FORBIDDEN, "SignatureDoesNotMatch"),
                "{bad}"
            );
            assert!(e.message.starts_with("The SigV2 signature we calculated"));
            assert!(!e.message.contains(good) && !e.message.contains(bad));
        }
        // Right signature, wrong secret.
        assert!(check(&read(&signed(good), domain, 0), "wJalrXUtnFEMI").is_err());
        assert!(!signatures_match(good, &good[..good.len() - 1]));
    }

    #[test]
    fn what_is_signed_cannot_be_changed() {
        let sign = |p: &http::request::Parts| {
            let host = s3s::host::MultiDomain::new(["example.com"]).unwrap();
            let sts = presented(p, Some(&host), 0)
                .unwrap()
                .unwrap()
                .string_to_sign;
            signature(SECRET, &sts)
        };
        let req = |meta: &str, uri: &str, sig: &str| {
            parts(
                "PUT",
                uri,
                &[
                    ("host", "example.com"),
                    ("date", "Tue, 27 Mar 2007 21:15:45 +0000"),
                    ("x-amz-meta-a", meta),
                    ("authorization", &format!("AWS AK:{sig}")),
                ],
            )
        };
        let sig = sign(&req("1", "/b/k?tagging", "x"));
        let ok = read(&req("1", "/b/k?tagging", &sig), "example.com", 0);
        assert_eq!(
            ok.string_to_sign,
            "PUT\n\n\nTue, 27 Mar 2007 21:15:45 +0000\nx-amz-meta-a:1\n/b/k?tagging"
        );
        assert!(check(&ok, SECRET).is_ok());
        for tampered in [
            req("2", "/b/k?tagging", &sig),
            req("1", "/b/other?tagging", &sig),
            req("1", "/b/k?acl", &sig),
        ] {
            let p = read(&tampered, "example.com", 0);
            assert_eq!(check(&p, SECRET).unwrap_err().code, "SignatureDoesNotMatch");
        }
        // Query parameters that are not sub-resources are not signed (as in S3).
        assert!(
            check(
                &read(&req("1", "/b/k?tagging&x=1", &sig), "example.com", 0),
                SECRET
            )
            .is_ok()
        );
    }

    #[test]
    fn presigned_urls_are_read_as_s3s_reads_them() {
        let url = "/b/k?AWSAccessKeyId=AK&Expires=1000&Signature=ab%2Bc%3D&versionId=v%201";
        let p = parts("GET", url, &[("host", "127.0.0.1:9000")]);
        let got = presented(&p, None, 999).unwrap().unwrap();
        assert_eq!(got.signature, "ab+c=");
        assert_eq!(got.string_to_sign, "GET\n\n\n1000\n/b/k?versionId=v 1");
        // An IP host is path style even with a domain.
        let host = s3s::host::MultiDomain::new(["example.com"]).unwrap();
        let again = presented(&p, Some(&host), 999).unwrap().unwrap();
        assert_eq!(again.string_to_sign, got.string_to_sign);
        let e = presented(&p, None, 1001).err().unwrap();
        assert_eq!(e.code(), "AccessDenied");
        let twice = parts(
            "GET",
            "/b/k?AWSAccessKeyId=AK&Expires=1000&Signature=a&Signature=b",
            &[],
        );
        assert_eq!(
            presented(&twice, None, 0).err().unwrap().code(),
            "InvalidRequest"
        );
        // Neither a header nor a query signature: left to s3s.
        assert!(
            presented(&parts("GET", "/b/k", &[]), None, 0)
                .unwrap()
                .is_none()
        );
        let v4 = parts(
            "GET",
            "/b/k",
            &[("authorization", "AWS4-HMAC-SHA256 Credential=x")],
        );
        assert!(presented(&v4, None, 0).unwrap().is_none());
        let no_date = parts("GET", "/b/k", &[("authorization", "AWS AK:x")]);
        assert_eq!(
            presented(&no_date, None, 0).err().unwrap().code(),
            "InvalidRequest"
        );
    }

    /// The fields of a SigV2 browser form (before its file part).
    fn form(fields: &[(&str, &str)]) -> crate::form::Fields {
        let mut body = String::new();
        for (n, v) in fields {
            body.push_str(&format!(
                "--B\r\nContent-Disposition: form-data; name=\"{n}\"\r\n\r\n{v}\r\n"
            ));
        }
        body.push_str("--B\r\nContent-Disposition: form-data; name=\"file\"\r\n\r\n");
        let limits = crate::form::Limits {
            max_field_size: 1 << 16,
            max_fields_size: 1 << 16,
            max_parts: 64,
        };
        match crate::form::fields(body.as_bytes(), "B", limits) {
            Ok(crate::form::Parse::Complete(f)) => f,
            _ => panic!("a complete form"),
        }
    }

    /// A browser form's SigV2 signature is base64(HMAC-SHA1(secret, policy field as sent)),
    /// checked in constant time: right passes; another of the same length, the right one of
    /// another policy, or a policy changed after signing are refused.
    #[test]
    fn a_form_signature_is_the_hmac_of_its_policy_as_sent() {
        let policy = base64(
            br#"{"expiration":"2099-01-01T00:00:00Z","conditions":[{"bucket":"b"},{"key":"k"}]}"#,
        );
        let other = base64(
            br#"{"expiration":"2099-01-01T00:00:00Z","conditions":[{"bucket":"b"},["starts-with","$key",""]]}"#,
        );
        let good = signature(SECRET, &policy);
        let signed = |policy: &str, sig: &str| {
            form_presented(&form(&[
                ("key", "k"),
                ("AWSAccessKeyId", "AKIAIOSFODNN7EXAMPLE"),
                ("policy", policy),
                ("signature", sig),
            ]))
            .unwrap()
        };
        let p = signed(&policy, &good);
        assert_eq!(p.access_key(), "AKIAIOSFODNN7EXAMPLE");
        assert!(check_form(&p, SECRET).is_ok());
        let mut last = good.clone();
        last.replace_range(26..27, if &good[26..27] == "A" { "B" } else { "A" });
        let mut first = good.clone();
        first.replace_range(..1, if good.starts_with('A') { "B" } else { "A" });
        for (what, p) in [
            ("its last character changed", signed(&policy, &last)),
            ("its first character changed", signed(&policy, &first)),
            (
                "another policy's signature",
                signed(&policy, &signature(SECRET, &other)),
            ),
            ("the policy changed after signing", signed(&other, &good)),
        ] {
            assert_eq!(p.signature.len(), good.len(), "{what}");
            let e = check_form(&p, SECRET).unwrap_err();
            assert_eq!(
                (e.status, e.code),
                (StatusCode::FORBIDDEN, "SignatureDoesNotMatch"),
                "{what}"
            );
            assert!(e.message.starts_with("The SigV2 signature we calculated"));
            assert!(!e.message.contains(&good) && !e.message.contains(&policy));
        }
        assert!(check_form(&signed(&policy, &good), "another secret").is_err());
        // What s3s refuses before it looks the key up.
        for fields in [
            &[("AWSAccessKeyId", "AK"), ("signature", "x")][..],
            &[("policy", policy.as_str()), ("signature", "x")],
            &[
                ("AWSAccessKeyId", "AK"),
                ("policy", "not base64!"),
                ("signature", "x"),
            ],
        ] {
            assert_eq!(
                form_presented(&form(fields)).err().map(|e| e.code),
                Some("InvalidRequest"),
                "{fields:?}"
            );
        }
        for (b64, ok) in [
            ("", true),
            ("Zg==", true),
            ("Zm8=", true),
            ("Zm9v", true),
            ("Zg=", false),
            ("Z===", false),
            ("Zm9v=", false),
            ("Zm 9", false),
        ] {
            assert_eq!(is_base64(b64), ok, "{b64}");
        }
    }

    #[test]
    fn base64_is_the_standard_alphabet_with_padding() {
        let all = [
            0x00, 0x10, 0x83, 0x10, 0x51, 0x87, 0x20, 0x92, 0x8b, 0x30, 0xd3, 0x8f, 0x41, 0x14,
            0x93, 0x51, 0x55, 0x97, 0x61, 0x96, 0x9b, 0x71, 0xd7, 0x9f, 0x82, 0x18, 0xa3, 0x92,
            0x59, 0xa7, 0xa2, 0x9a, 0xab, 0xb2, 0xdb, 0xaf, 0xc3, 0x1c, 0xb3, 0xd3, 0x5d, 0xb7,
            0xe3, 0x9e, 0xbb, 0xf3, 0xdf, 0xbf,
        ];
        assert_eq!(
            base64(&all),
            "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
        );
        for (input, want) in [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("fooba", "Zm9vYmE="),
            ("foobar", "Zm9vYmFy"),
        ] {
            assert_eq!(base64(input.as_bytes()), want);
        }
    }
}
