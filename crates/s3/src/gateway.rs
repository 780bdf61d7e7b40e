//! The S3 operations over the engine: buckets, objects (streaming both ways, ranges,
//! conditionals, metadata round trips), listings (v1, v2, versions, uploads, parts), multipart
//! uploads, copies, and the read-only ACL and versioning answers unversioned buckets give.

use std::pin::Pin;
use std::sync::Mutex;
use std::task::{Context, Poll};
use std::time::{Duration, SystemTime};

use archipel_engine::{
    Body as EngineBody, BodyCheck, ByteRange, Engine, EngineError, ObjectInfo, PutOptions,
};
use archipel_meta::{
    BucketName, CommitCondition, DeleteCondition, ETag as MetaETag, ListQuery, MetaStore,
    ObjectKey, PartQuery, UnixMillis, UploadId, UploadQuery, UploadRef,
};
use bytes::Bytes;
use futures::{Stream, StreamExt};
use s3s::dto::*;
use s3s::{S3, S3Error, S3ErrorCode, S3Request, S3Response, S3Result, s3_error};

use crate::GatewayConfig;
use crate::checksum;
use crate::cors;
use crate::errors::to_s3;
use crate::tagging;

/// The S3 implementation.
pub(crate) struct Gateway {
    engine: Engine,
    config: GatewayConfig,
}

impl Gateway {
    pub(crate) fn new(engine: Engine, config: GatewayConfig) -> Self {
        Gateway { engine, config }
    }

    fn meta(&self) -> &dyn MetaStore {
        self.engine.meta().as_ref()
    }

    fn owner(&self) -> Owner {
        Owner {
            display_name: Some(self.config.owner_id.clone()),
            id: Some(self.config.owner_id.clone()),
        }
    }
}

type EResult<T> = Result<T, EngineError>;

fn ok<T>(output: T) -> S3Result<S3Response<T>> {
    Ok(S3Response::new(output))
}

fn bucket_name(name: &str) -> S3Result<BucketName> {
    BucketName::s3(name)
        .map_err(|e| S3Error::with_message(S3ErrorCode::InvalidBucketName, e.to_string()))
}

fn object_key(key: &str) -> S3Result<ObjectKey> {
    ObjectKey::new(key)
        .map_err(|e| S3Error::with_message(S3ErrorCode::KeyTooLongError, e.to_string()))
}

fn timestamp(ms: UnixMillis) -> Timestamp {
    Timestamp::from(SystemTime::UNIX_EPOCH + Duration::from_millis(ms.0.max(0) as u64))
}

fn to_ms(t: &Timestamp) -> i64 {
    let odt: time::OffsetDateTime = t.clone().into();
    (odt.unix_timestamp_nanos() / 1_000_000) as i64
}

fn etag(s: &str) -> ETag {
    ETag::Strong(s.trim_matches('"').to_string())
}

fn etag_str(e: &ETag) -> &str {
    e.value()
}

/// S3 compares `If-*-Since` at one-second precision.
fn modified_after(last_modified: UnixMillis, since: &Timestamp) -> bool {
    last_modified.0 / 1000 > to_ms(since) / 1000
}

/// The stored headers an object round-trips, by S3 field.
const CONTENT_ENCODING: &str = "content-encoding";
const CONTENT_DISPOSITION: &str = "content-disposition";
const CONTENT_LANGUAGE: &str = "content-language";
const CACHE_CONTROL: &str = "cache-control";
const EXPIRES: &str = "expires";
const WEBSITE_REDIRECT: &str = "x-amz-website-redirect-location";

struct StoredHeaders {
    content_encoding: Option<String>,
    content_disposition: Option<String>,
    content_language: Option<String>,
    cache_control: Option<String>,
    expires: Option<Timestamp>,
}

fn header_list(
    content_encoding: Option<String>,
    content_disposition: Option<String>,
    content_language: Option<String>,
    cache_control: Option<String>,
    expires: Option<&Timestamp>,
    redirect: Option<String>,
) -> Vec<(String, String)> {
    let mut h = Vec::new();
    let mut push = |k: &str, v: Option<String>| {
        if let Some(v) = v {
            h.push((k.to_string(), v));
        }
    };
    push(CONTENT_ENCODING, content_encoding);
    push(CONTENT_DISPOSITION, content_disposition);
    push(CONTENT_LANGUAGE, content_language);
    push(CACHE_CONTROL, cache_control);
    push(
        EXPIRES,
        expires.and_then(|t| {
            let mut buf = Vec::new();
            t.format(TimestampFormat::HttpDate, &mut buf).ok()?;
            String::from_utf8(buf).ok()
        }),
    );
    push(WEBSITE_REDIRECT, redirect);
    h
}

fn stored_headers(info: &ObjectInfo) -> StoredHeaders {
    let get = |k: &str| {
        info.headers
            .iter()
            .find(|(n, _)| n == k)
            .map(|(_, v)| v.clone())
    };
    StoredHeaders {
        content_encoding: get(CONTENT_ENCODING),
        content_disposition: get(CONTENT_DISPOSITION),
        content_language: get(CONTENT_LANGUAGE),
        cache_control: get(CACHE_CONTROL),
        expires: get(EXPIRES).and_then(|v| Timestamp::parse(TimestampFormat::HttpDate, &v).ok()),
    }
}

fn metadata_map(info: &ObjectInfo) -> Option<Metadata> {
    if info.user_metadata.is_empty() {
        None
    } else {
        Some(
            info.user_metadata
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
        )
    }
}

/// An etag from a request, as meta stores it.
fn meta_etag(e: &ETag) -> S3Result<MetaETag> {
    MetaETag::new(etag_str(e)).map_err(|e| s3_error!(InvalidArgument, "{e}"))
}

/// `If-Match` / `If-None-Match` of a write, as the condition meta decides in the commit's own
/// transaction (no HEAD first: another gateway could write or delete in between).
/// `If-None-Match: *` → [`CommitCondition::IfAbsent`], `If-Match: *` →
/// [`CommitCondition::IfExists`], `If-Match: <etag>` → [`CommitCondition::IfMatch`]; a lost
/// condition answers 412 `PreconditionFailed`.
fn write_condition(
    if_match: Option<&ETagCondition>,
    if_none_match: Option<&ETagCondition>,
) -> S3Result<Option<CommitCondition>> {
    if let Some(c) = if_none_match {
        if c.is_any() {
            return Ok(Some(CommitCondition::IfAbsent));
        }
        return Err(s3_error!(
            NotImplemented,
            "If-None-Match on writes supports only *"
        ));
    }
    match if_match {
        None => Ok(None),
        Some(c) => match c.as_etag() {
            Some(e) => Ok(Some(CommitCondition::IfMatch(meta_etag(e)?))),
            None => Ok(Some(CommitCondition::IfExists)),
        },
    }
}

/// `If-Match` of a delete (`DeleteObject`'s header, `DeleteObjects`' `<ETag>`), as the
/// condition meta decides in the delete's own transaction. What a lost condition answers is
/// documented at [`Engine::delete_object`].
fn delete_condition(if_match: Option<&ETagCondition>) -> S3Result<DeleteCondition> {
    Ok(match if_match {
        None => DeleteCondition::Unconditional,
        Some(c) => match c.as_etag() {
            Some(e) => DeleteCondition::IfMatch(meta_etag(e)?),
            None => DeleteCondition::IfExists,
        },
    })
}

/// Read preconditions (RFC 9110 order: If-Match, If-Unmodified-Since, If-None-Match,
/// If-Modified-Since).
fn check_read_conditions(
    info: &ObjectInfo,
    if_match: Option<&ETagCondition>,
    if_unmodified_since: Option<&Timestamp>,
    if_none_match: Option<&ETagCondition>,
    if_modified_since: Option<&Timestamp>,
) -> S3Result<()> {
    let matches =
        |c: &ETagCondition| c.is_any() || c.as_etag().is_some_and(|e| etag_str(e) == info.etag);
    if let Some(c) = if_match {
        if !matches(c) {
            return Err(s3_error!(
                PreconditionFailed,
                "If-Match: the object's etag is {}",
                info.etag
            ));
        }
    } else if let Some(t) = if_unmodified_since
        && modified_after(info.last_modified, t)
    {
        return Err(s3_error!(
            PreconditionFailed,
            "the object was modified after If-Unmodified-Since"
        ));
    }
    if let Some(c) = if_none_match {
        if matches(c) {
            return Err(not_modified());
        }
    } else if let Some(t) = if_modified_since
        && !modified_after(info.last_modified, t)
    {
        return Err(not_modified());
    }
    Ok(())
}

/// `x-amz-copy-source-if-*`: as for a GET, except that a copy answers every failed
/// condition with `PreconditionFailed`.
fn check_copy_conditions(
    info: &ObjectInfo,
    if_match: Option<&ETagCondition>,
    if_unmodified_since: Option<&Timestamp>,
    if_none_match: Option<&ETagCondition>,
    if_modified_since: Option<&Timestamp>,
) -> S3Result<()> {
    check_read_conditions(
        info,
        if_match,
        if_unmodified_since,
        if_none_match,
        if_modified_since,
    )
    .map_err(|e| {
        if *e.code() == S3ErrorCode::NotModified {
            s3_error!(PreconditionFailed, "copy source condition failed")
        } else {
            e
        }
    })
}

fn not_modified() -> S3Error {
    let mut e = S3Error::new(S3ErrorCode::NotModified);
    e.set_status_code(http::StatusCode::NOT_MODIFIED);
    e
}

/// An s3s body as an engine body.
fn engine_body(blob: Option<StreamingBlob>) -> EngineBody {
    match blob {
        Some(b) => b
            .map(|r| r.map_err(|e| std::io::Error::other(e.to_string())))
            .boxed(),
        None => futures::stream::empty().boxed(),
    }
}

/// Adds the stored tags header, when there are tags.
fn with_tags(
    mut headers: Vec<(String, String)>,
    tags: Option<&[(String, String)]>,
) -> Vec<(String, String)> {
    headers.retain(|(n, _)| n != tagging::HEADER);
    if let Some(t) = tags.filter(|t| !t.is_empty()) {
        headers.push((tagging::HEADER.to_string(), tagging::render(t)));
    }
    headers
}

/// The request body, checksummed on the way when the client announced checksums.
fn checked_body(
    blob: Option<StreamingBlob>,
    expected: checksum::Expected,
    trailers: Option<s3s::TrailingHeaders>,
) -> (EngineBody, Option<std::sync::Arc<checksum::Outcome>>) {
    let body = engine_body(blob);
    if expected.is_empty() {
        return (body, None);
    }
    let (v, outcome) = checksum::Verifying::new(body, expected, trailers);
    (v.boxed(), Some(outcome))
}

/// A body failed because of a checksum mismatch is `BadDigest`; anything else maps as usual.
fn checksum_error(e: EngineError, outcome: Option<&checksum::Outcome>) -> S3Error {
    match (&e, outcome) {
        (EngineError::Body(msg), Some(o)) if o.mismatched() => {
            S3Error::with_message(S3ErrorCode::BadDigest, msg.clone())
        }
        _ => to_s3(e),
    }
}

fn content_md5(v: Option<&String>) -> S3Result<Option<[u8; 16]>> {
    let Some(v) = v else {
        return Ok(None);
    };
    let bytes = base64_decode(v.trim())
        .ok_or_else(|| s3_error!(InvalidDigest, "Content-MD5 is not base64"))?;
    <[u8; 16]>::try_from(bytes.as_slice())
        .map(Some)
        .map_err(|_| s3_error!(InvalidDigest, "Content-MD5 is not 16 bytes"))
}

fn base64_decode(s: &str) -> Option<Vec<u8>> {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = Vec::with_capacity(s.len() * 3 / 4);
    let mut acc = 0u32;
    let mut bits = 0;
    for c in s.bytes() {
        if c == b'=' {
            break;
        }
        let v = ALPHABET.iter().position(|&a| a == c)? as u32;
        acc = (acc << 6) | v;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
        }
    }
    Some(out)
}

/// The engine's GET body behind the `Sync` bound s3s asks of response bodies.
struct SyncBody(Mutex<futures::stream::BoxStream<'static, EResult<Bytes>>>);

impl Stream for SyncBody {
    type Item = Result<Bytes, std::io::Error>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let inner = self
            .get_mut()
            .0
            .get_mut()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        inner
            .poll_next_unpin(cx)
            .map(|o| o.map(|r| r.map_err(|e| std::io::Error::other(e.to_string()))))
    }
}

/// A metadata-store failure as an S3 error.
fn meta_err(e: archipel_meta::MetaError) -> S3Error {
    to_s3(e.into())
}

/// How a listing writes keys and prefixes: as they are, or URL-encoded when asked.
fn key_encoder(encoding: Option<&EncodingType>) -> impl Fn(String) -> String + use<> {
    let url = encoding.is_some_and(|e| e.as_str() == EncodingType::URL);
    move |s: String| if url { url_encode(&s) } else { s }
}

/// One object of a listing.
fn object_entry(
    o: archipel_meta::ObjectSummary,
    owner: Option<Owner>,
    enc: &impl Fn(String) -> String,
) -> Object {
    Object {
        e_tag: Some(etag(o.etag.as_str())),
        key: Some(enc(o.key.to_string())),
        last_modified: Some(timestamp(o.last_modified)),
        owner,
        size: Some(o.size as i64),
        storage_class: Some(ObjectStorageClass::from_static(
            ObjectStorageClass::STANDARD,
        )),
        ..Object::default()
    }
}

/// A listing's common prefixes, encoded.
fn common_prefixes(prefixes: Vec<String>, enc: &impl Fn(String) -> String) -> CommonPrefixList {
    prefixes
        .into_iter()
        .map(|p| CommonPrefix {
            prefix: Some(enc(p)),
        })
        .collect()
}

fn url_encode(s: &str) -> String {
    // S3's encoding-type=url, as AWS answers it: form encoding (space as '+'), '/' kept.
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~' | b'/') {
            out.push(b as char);
        } else if b == b' ' {
            out.push('+');
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn max_keys(v: Option<i32>) -> S3Result<usize> {
    match v {
        None => Ok(archipel_meta::MAX_PAGE),
        Some(n) if n < 0 => Err(s3_error!(InvalidArgument, "max-keys must not be negative")),
        Some(n) => Ok((n as usize).min(archipel_meta::MAX_PAGE)),
    }
}

fn token_encode(key: &str) -> String {
    key.bytes().map(|b| format!("{b:02x}")).collect()
}

fn token_decode(t: &str) -> S3Result<String> {
    let bad = || s3_error!(InvalidArgument, "the continuation token is not valid");
    if !t.len().is_multiple_of(2) {
        return Err(bad());
    }
    let bytes: Option<Vec<u8>> = (0..t.len() / 2)
        .map(|i| u8::from_str_radix(t.get(2 * i..2 * i + 2)?, 16).ok())
        .collect();
    String::from_utf8(bytes.ok_or_else(bad)?).map_err(|_| bad())
}

fn parse_copy_source(src: &CopySource) -> S3Result<(String, String)> {
    match src {
        CopySource::Bucket {
            bucket,
            key,
            version_id,
        } => {
            if version_id.as_deref().is_some_and(|v| v != "null") {
                return Err(s3_error!(
                    NoSuchVersion,
                    "this bucket keeps only current versions"
                ));
            }
            Ok((bucket.to_string(), key.to_string()))
        }
        _ => Err(s3_error!(
            NotImplemented,
            "access point and outpost copy sources are not supported"
        )),
    }
}

#[async_trait::async_trait]
impl S3 for Gateway {
    // ---- buckets ----

    async fn list_buckets(
        &self,
        req: S3Request<ListBucketsInput>,
    ) -> S3Result<S3Response<ListBucketsOutput>> {
        let mut buckets = self.meta().list_buckets().await.map_err(meta_err)?;
        // A key other than root sees the buckets it has a grant on.
        if let Some(c) = &req.credentials
            && c.access_key != self.config.root_access_key
        {
            let mine: Vec<String> = self
                .engine
                .list_access_keys()
                .await
                .map_err(to_s3)?
                .into_iter()
                .filter(|k| k.id == c.access_key)
                .flat_map(|k| k.grants.into_iter().map(|(b, _)| b))
                .collect();
            buckets.retain(|b| mine.iter().any(|m| m == b.name.as_str()));
        }
        ok(ListBucketsOutput {
            buckets: Some(
                buckets
                    .into_iter()
                    .map(|b| Bucket {
                        bucket_region: Some(self.config.region.clone()),
                        creation_date: Some(timestamp(b.created)),
                        name: Some(b.name.to_string()),
                    })
                    .collect(),
            ),
            owner: Some(self.owner()),
            ..ListBucketsOutput::default()
        })
    }

    async fn create_bucket(
        &self,
        req: S3Request<CreateBucketInput>,
    ) -> S3Result<S3Response<CreateBucketOutput>> {
        let public = req
            .input
            .acl
            .as_ref()
            .is_some_and(|a| a.as_str() == BucketCannedACL::PUBLIC_READ);
        let name = req.input.bucket;
        let owner = req
            .credentials
            .as_ref()
            .map_or("anonymous", |c| c.access_key.as_str())
            .to_string();
        match self.engine.create_bucket(&name, &owner, None).await {
            Ok(_) => {
                if public {
                    cors::set_public(&self.engine, &name, true)
                        .await
                        .map_err(to_s3)?;
                }
                ok(CreateBucketOutput {
                    location: Some(format!("/{name}")),
                })
            }
            Err(EngineError::Meta(archipel_meta::MetaError::BucketExists { owner: o, .. })) => {
                if o == owner {
                    Err(s3_error!(
                        BucketAlreadyOwnedByYou,
                        "you already own bucket {name}"
                    ))
                } else {
                    Err(s3_error!(BucketAlreadyExists, "bucket {name} exists"))
                }
            }
            Err(e) => Err(to_s3(e)),
        }
    }

    async fn head_bucket(
        &self,
        req: S3Request<HeadBucketInput>,
    ) -> S3Result<S3Response<HeadBucketOutput>> {
        let name = bucket_name(&req.input.bucket)?;
        match self.meta().get_bucket(&name).await.map_err(meta_err)? {
            Some(_) => ok(HeadBucketOutput {
                bucket_region: Some(self.config.region.clone()),
                ..HeadBucketOutput::default()
            }),
            None => Err(s3_error!(NoSuchBucket)),
        }
    }

    async fn delete_bucket(
        &self,
        req: S3Request<DeleteBucketInput>,
    ) -> S3Result<S3Response<DeleteBucketOutput>> {
        match self.engine.delete_bucket(&req.input.bucket).await {
            Ok(()) => {
                // Its settings go with its record.
                ok(DeleteBucketOutput::default())
            }
            Err(EngineError::Meta(archipel_meta::MetaError::BucketNotEmpty { .. })) => {
                Err(s3_error!(
                    BucketNotEmpty,
                    "The bucket you tried to delete is not empty: it holds objects"
                ))
            }
            Err(e) => Err(to_s3(e)),
        }
    }

    async fn get_bucket_location(
        &self,
        req: S3Request<GetBucketLocationInput>,
    ) -> S3Result<S3Response<GetBucketLocationOutput>> {
        self.head_bucket(req.map_input(|i| HeadBucketInput {
            bucket: i.bucket,
            expected_bucket_owner: None,
        }))
        .await?;
        // us-east-1 is reported as an empty constraint, as AWS does.
        let loc = (self.config.region != "us-east-1")
            .then(|| BucketLocationConstraint::from(self.config.region.clone()));
        ok(GetBucketLocationOutput {
            location_constraint: loc,
        })
    }

    async fn get_bucket_versioning(
        &self,
        req: S3Request<GetBucketVersioningInput>,
    ) -> S3Result<S3Response<GetBucketVersioningOutput>> {
        let name = bucket_name(&req.input.bucket)?;
        if self
            .meta()
            .get_bucket(&name)
            .await
            .map_err(meta_err)?
            .is_none()
        {
            return Err(s3_error!(NoSuchBucket));
        }
        // Versioning was never enabled: S3 answers with no status.
        ok(GetBucketVersioningOutput::default())
    }

    async fn put_bucket_acl(
        &self,
        req: S3Request<PutBucketAclInput>,
    ) -> S3Result<S3Response<PutBucketAclOutput>> {
        let i = req.input;
        self.require_bucket(&i.bucket).await?;
        let public = match i.acl.as_ref().map(|a| a.as_str()) {
            Some(BucketCannedACL::PUBLIC_READ) => true,
            Some(BucketCannedACL::PRIVATE) => false,
            _ => {
                return Err(s3_error!(
                    NotImplemented,
                    "only the canned ACLs private and public-read are supported"
                ));
            }
        };
        cors::set_public(&self.engine, &i.bucket, public)
            .await
            .map_err(to_s3)?;
        ok(PutBucketAclOutput::default())
    }

    async fn put_bucket_cors(
        &self,
        req: S3Request<PutBucketCorsInput>,
    ) -> S3Result<S3Response<PutBucketCorsOutput>> {
        let i = req.input;
        self.require_bucket(&i.bucket).await?;
        let rules: Vec<cors::Rule> = i
            .cors_configuration
            .cors_rules
            .iter()
            .map(cors::Rule::from_dto)
            .collect();
        if rules.is_empty() || rules.len() > 100 {
            return Err(s3_error!(
                MalformedXML,
                "a CORS configuration has 1 to 100 rules"
            ));
        }
        cors::set_rules(&self.engine, &i.bucket, Some(&rules))
            .await
            .map_err(to_s3)?;
        ok(PutBucketCorsOutput::default())
    }

    async fn get_bucket_cors(
        &self,
        req: S3Request<GetBucketCorsInput>,
    ) -> S3Result<S3Response<GetBucketCorsOutput>> {
        self.require_bucket(&req.input.bucket).await?;
        match cors::rules(&self.engine, &req.input.bucket).await {
            Some(rules) => ok(GetBucketCorsOutput {
                cors_rules: Some(rules.iter().map(cors::Rule::to_dto).collect()),
            }),
            None => Err(s3_error!(
                NoSuchCORSConfiguration,
                "The CORS configuration does not exist"
            )),
        }
    }

    async fn delete_bucket_cors(
        &self,
        req: S3Request<DeleteBucketCorsInput>,
    ) -> S3Result<S3Response<DeleteBucketCorsOutput>> {
        self.require_bucket(&req.input.bucket).await?;
        cors::set_rules(&self.engine, &req.input.bucket, None)
            .await
            .map_err(to_s3)?;
        ok(DeleteBucketCorsOutput::default())
    }

    async fn get_bucket_acl(
        &self,
        req: S3Request<GetBucketAclInput>,
    ) -> S3Result<S3Response<GetBucketAclOutput>> {
        let name = bucket_name(&req.input.bucket)?;
        if self
            .meta()
            .get_bucket(&name)
            .await
            .map_err(meta_err)?
            .is_none()
        {
            return Err(s3_error!(NoSuchBucket));
        }
        let mut grants = vec![self.full_control()];
        if cors::is_public(&self.engine, &req.input.bucket).await {
            grants.push(Grant {
                grantee: Some(Grantee {
                    display_name: None,
                    email_address: None,
                    id: None,
                    type_: Type::from_static(Type::GROUP),
                    uri: Some("http://acs.amazonaws.com/groups/global/AllUsers".into()),
                }),
                permission: Some(Permission::from_static(Permission::READ)),
            });
        }
        ok(GetBucketAclOutput {
            grants: Some(grants),
            owner: Some(self.owner()),
        })
    }

    async fn get_object_acl(
        &self,
        req: S3Request<GetObjectAclInput>,
    ) -> S3Result<S3Response<GetObjectAclOutput>> {
        self.engine
            .head_object(&req.input.bucket, &req.input.key)
            .await
            .map_err(to_s3)?;
        ok(GetObjectAclOutput {
            grants: Some(vec![self.full_control()]),
            owner: Some(self.owner()),
            ..GetObjectAclOutput::default()
        })
    }

    // ---- objects ----

    async fn put_object(
        &self,
        req: S3Request<PutObjectInput>,
    ) -> S3Result<S3Response<PutObjectOutput>> {
        let expected = checksum::Expected::new(
            &Checksum {
                checksum_crc32: req.input.checksum_crc32.clone(),
                checksum_crc32c: req.input.checksum_crc32c.clone(),
                checksum_crc64nvme: req.input.checksum_crc64nvme.clone(),
                checksum_sha1: req.input.checksum_sha1.clone(),
                checksum_sha256: req.input.checksum_sha256.clone(),
                ..Checksum::default()
            },
            &req.headers,
        );
        let trailers = req.trailing_headers.clone();
        let i = req.input;
        let condition = write_condition(i.if_match.as_ref(), i.if_none_match.as_ref())?;
        let tags = i.tagging.as_deref().map(tagging::parse).transpose()?;
        let opts = PutOptions {
            content_type: i.content_type.map(|c| c.to_string()),
            headers: with_tags(
                header_list(
                    i.content_encoding,
                    i.content_disposition,
                    i.content_language,
                    i.cache_control,
                    i.expires.as_ref(),
                    i.website_redirect_location,
                ),
                tags.as_deref(),
            ),
            user_metadata: i.metadata.unwrap_or_default().into_iter().collect(),
            condition,
            expected_len: i.content_length.and_then(|l| u64::try_from(l).ok()),
            content_md5: content_md5(i.content_md5.as_ref())?,
            late_headers: None,
        };
        let (body, outcome) = checked_body(i.body, expected, trailers);
        let opts = PutOptions {
            late_headers: outcome.as_ref().map(|o| o.computed.clone()),
            ..opts
        };
        let out = self
            .engine
            .put_object(&i.bucket, &i.key, body, opts)
            .await
            .map_err(|e| checksum_error(e, outcome.as_deref()))?;
        let sums = checksum::to_checksum(&outcome.map(|o| o.values()).unwrap_or_default());
        ok(PutObjectOutput {
            e_tag: Some(etag(&out.etag)),
            size: Some(out.size as i64),
            checksum_crc32: sums.checksum_crc32,
            checksum_crc32c: sums.checksum_crc32c,
            checksum_crc64nvme: sums.checksum_crc64nvme,
            checksum_sha1: sums.checksum_sha1,
            checksum_sha256: sums.checksum_sha256,
            ..PutObjectOutput::default()
        })
    }

    async fn get_object(
        &self,
        req: S3Request<GetObjectInput>,
    ) -> S3Result<S3Response<GetObjectOutput>> {
        let i = req.input;
        let checksum_mode = i
            .checksum_mode
            .as_ref()
            .is_some_and(|m| m.as_str() == ChecksumMode::ENABLED);
        if i.part_number.is_some() {
            return Err(s3_error!(
                NotImplemented,
                "GET by part number is not supported"
            ));
        }
        // Conditions are checked on the very version that is then read.
        let object = self
            .engine
            .open_object(&i.bucket, &i.key)
            .await
            .map_err(to_s3)?;
        check_read_conditions(
            object.info(),
            i.if_match.as_ref(),
            i.if_unmodified_since.as_ref(),
            i.if_none_match.as_ref(),
            i.if_modified_since.as_ref(),
        )?;
        let range = i.range.map(|r| match r {
            Range::Int { first, last } => ByteRange::FromTo { first, last },
            Range::Suffix { length } => ByteRange::Suffix(length),
        });
        let out = self
            .engine
            .read_object(object, range)
            .await
            .map_err(to_s3)?;
        let info = out.info;
        let len = out.range.end - out.range.start;
        let content_range = range.map(|_| {
            format!(
                "bytes {}-{}/{}",
                out.range.start,
                out.range.end.saturating_sub(1),
                info.size
            )
        });
        let h = stored_headers(&info);
        let output = GetObjectOutput {
            accept_ranges: Some("bytes".into()),
            body: Some(StreamingBlob::wrap(SyncBody(Mutex::new(out.body)))),
            cache_control: i.response_cache_control.or(h.cache_control),
            content_disposition: i.response_content_disposition.or(h.content_disposition),
            content_encoding: i.response_content_encoding.or(h.content_encoding),
            content_language: i.response_content_language.or(h.content_language),
            content_length: Some(len as i64),
            content_range,
            content_type: i.response_content_type.or(info.content_type.clone()),
            e_tag: Some(etag(&info.etag)),
            expires: i.response_expires.or(h.expires),
            last_modified: Some(timestamp(info.last_modified)),
            metadata: metadata_map(&info),
            parts_count: (info.parts > 0).then_some(info.parts as i32),
            tag_count: {
                let n = tagging::stored(&info.headers).len();
                (n > 0).then_some(n as i32)
            },
            ..GetObjectOutput::default()
        };
        let output = if checksum_mode && range.is_none() {
            let sums = checksum::to_checksum(&info.headers);
            GetObjectOutput {
                checksum_crc32: sums.checksum_crc32,
                checksum_crc32c: sums.checksum_crc32c,
                checksum_crc64nvme: sums.checksum_crc64nvme,
                checksum_sha1: sums.checksum_sha1,
                checksum_sha256: sums.checksum_sha256,
                ..output
            }
        } else {
            output
        };
        let mut resp = S3Response::new(output);
        if range.is_some() {
            resp.status = Some(http::StatusCode::PARTIAL_CONTENT);
        }
        Ok(resp)
    }

    async fn head_object(
        &self,
        req: S3Request<HeadObjectInput>,
    ) -> S3Result<S3Response<HeadObjectOutput>> {
        let i = req.input;
        let info = self
            .engine
            .head_object(&i.bucket, &i.key)
            .await
            .map_err(to_s3)?;
        check_read_conditions(
            &info,
            i.if_match.as_ref(),
            i.if_unmodified_since.as_ref(),
            i.if_none_match.as_ref(),
            i.if_modified_since.as_ref(),
        )?;
        let h = stored_headers(&info);
        let sums = if i
            .checksum_mode
            .as_ref()
            .is_some_and(|m| m.as_str() == ChecksumMode::ENABLED)
        {
            checksum::to_checksum(&info.headers)
        } else {
            Checksum::default()
        };
        let (len, content_range) = match i.range {
            None => (info.size, None),
            Some(r) => {
                let br = match r {
                    Range::Int { first, last } => ByteRange::FromTo { first, last },
                    Range::Suffix { length } => ByteRange::Suffix(length),
                };
                let rr = br.resolve(info.size).map_err(to_s3)?;
                (
                    rr.end - rr.start,
                    Some(format!(
                        "bytes {}-{}/{}",
                        rr.start,
                        rr.end.saturating_sub(1),
                        info.size
                    )),
                )
            }
        };
        ok(HeadObjectOutput {
            accept_ranges: Some("bytes".into()),
            cache_control: i.response_cache_control.or(h.cache_control),
            content_disposition: i.response_content_disposition.or(h.content_disposition),
            content_encoding: i.response_content_encoding.or(h.content_encoding),
            content_language: i.response_content_language.or(h.content_language),
            content_length: Some(len as i64),
            content_range,
            content_type: i.response_content_type.or(info.content_type.clone()),
            e_tag: Some(etag(&info.etag)),
            expires: i.response_expires.or(h.expires),
            last_modified: Some(timestamp(info.last_modified)),
            metadata: metadata_map(&info),
            parts_count: (info.parts > 0).then_some(info.parts as i32),
            checksum_crc32: sums.checksum_crc32,
            checksum_crc32c: sums.checksum_crc32c,
            checksum_crc64nvme: sums.checksum_crc64nvme,
            checksum_sha1: sums.checksum_sha1,
            checksum_sha256: sums.checksum_sha256,
            ..HeadObjectOutput::default()
        })
    }

    async fn delete_object(
        &self,
        req: S3Request<DeleteObjectInput>,
    ) -> S3Result<S3Response<DeleteObjectOutput>> {
        let i = req.input;
        let condition = delete_condition(i.if_match.as_ref())?;
        self.engine
            .delete_object(&i.bucket, &i.key, &condition)
            .await
            .map_err(to_s3)?;
        ok(DeleteObjectOutput::default())
    }

    async fn delete_objects(
        &self,
        req: S3Request<DeleteObjectsInput>,
    ) -> S3Result<S3Response<DeleteObjectsOutput>> {
        let i = req.input;
        if i.delete.objects.len() > 1000 {
            return Err(s3_error!(
                MalformedXML,
                "at most 1000 keys per DeleteObjects request"
            ));
        }
        bucket_name(&i.bucket)?;
        let quiet = i.delete.quiet.unwrap_or(false);
        let mut deleted = Vec::new();
        let mut errors = Vec::new();
        for o in i.delete.objects {
            // `<ETag>` makes this key's delete conditional, decided like `If-Match`.
            let condition = match &o.e_tag {
                None => DeleteCondition::Unconditional,
                Some(e) if e.value() == "*" => DeleteCondition::IfExists,
                Some(e) => match meta_etag(e) {
                    Ok(e) => DeleteCondition::IfMatch(e),
                    Err(s) => {
                        errors.push(Error {
                            code: Some(s.code().as_str().to_string()),
                            key: Some(o.key),
                            message: s.message().map(str::to_string),
                            version_id: None,
                        });
                        continue;
                    }
                },
            };
            match self
                .engine
                .delete_object(&i.bucket, &o.key, &condition)
                .await
            {
                Ok(_) => {
                    if !quiet {
                        deleted.push(DeletedObject {
                            key: Some(o.key),
                            ..DeletedObject::default()
                        });
                    }
                }
                Err(EngineError::NoSuchBucket { .. }) => return Err(s3_error!(NoSuchBucket)),
                Err(e) => {
                    let s = to_s3(e);
                    errors.push(Error {
                        code: Some(s.code().as_str().to_string()),
                        key: Some(o.key),
                        message: s.message().map(str::to_string),
                        version_id: None,
                    });
                }
            }
        }
        ok(DeleteObjectsOutput {
            deleted: Some(deleted),
            errors: (!errors.is_empty()).then_some(errors),
            ..DeleteObjectsOutput::default()
        })
    }

    async fn copy_object(
        &self,
        req: S3Request<CopyObjectInput>,
    ) -> S3Result<S3Response<CopyObjectOutput>> {
        let i = req.input;
        let (src_bucket, src_key) = parse_copy_source(&i.copy_source)?;
        let source = self
            .engine
            .open_object(&src_bucket, &src_key)
            .await
            .map_err(to_s3)?;
        let src = source.info().clone();
        check_copy_conditions(
            &src,
            i.copy_source_if_match.as_ref(),
            i.copy_source_if_unmodified_since.as_ref(),
            i.copy_source_if_none_match.as_ref(),
            i.copy_source_if_modified_since.as_ref(),
        )?;
        let replace = i
            .metadata_directive
            .as_ref()
            .is_some_and(|d| d.as_str() == MetadataDirective::REPLACE);
        if !replace && src_bucket == i.bucket && src_key == i.key {
            return Err(s3_error!(
                InvalidRequest,
                "This copy request is illegal because it is trying to copy an object to itself without changing the object's metadata, storage class, website redirect location or encryption attributes."
            ));
        }
        let opts = if replace {
            PutOptions {
                late_headers: None,
                content_type: i.content_type,
                headers: header_list(
                    i.content_encoding,
                    i.content_disposition,
                    i.content_language,
                    i.cache_control,
                    i.expires.as_ref(),
                    i.website_redirect_location,
                ),
                user_metadata: i.metadata.unwrap_or_default().into_iter().collect(),
                ..PutOptions::default()
            }
        } else {
            PutOptions {
                content_type: src.content_type.clone(),
                headers: src.headers.clone(),
                user_metadata: src.user_metadata.clone(),
                ..PutOptions::default()
            }
        };
        let replace_tags = i
            .tagging_directive
            .as_ref()
            .is_some_and(|d| d.as_str() == TaggingDirective::REPLACE);
        let tags = if replace_tags {
            i.tagging
                .as_deref()
                .map(tagging::parse)
                .transpose()?
                .unwrap_or_default()
        } else {
            tagging::stored(&src.headers)
        };
        let opts = PutOptions {
            headers: with_tags(opts.headers, Some(&tags)),
            ..opts
        };
        let got = self.engine.read_object(source, None).await.map_err(to_s3)?;
        let opts = PutOptions {
            expected_len: Some(got.info.size),
            ..opts
        };
        let body = got
            .body
            .map(|r| r.map_err(|e| std::io::Error::other(e.to_string())))
            .boxed();
        let out = self
            .engine
            .put_object(&i.bucket, &i.key, body, opts)
            .await
            .map_err(to_s3)?;
        let info = self.engine.head_object(&i.bucket, &i.key).await.ok();
        ok(CopyObjectOutput {
            copy_object_result: Some(CopyObjectResult {
                e_tag: Some(etag(&out.etag)),
                last_modified: info.map(|i| timestamp(i.last_modified)),
                ..CopyObjectResult::default()
            }),
            ..CopyObjectOutput::default()
        })
    }

    async fn get_object_tagging(
        &self,
        req: S3Request<GetObjectTaggingInput>,
    ) -> S3Result<S3Response<GetObjectTaggingOutput>> {
        let i = req.input;
        let info = self
            .engine
            .head_object(&i.bucket, &i.key)
            .await
            .map_err(to_s3)?;
        ok(GetObjectTaggingOutput {
            tag_set: tagging::to_set(&tagging::stored(&info.headers)),
            version_id: None,
        })
    }

    async fn put_object_tagging(
        &self,
        req: S3Request<PutObjectTaggingInput>,
    ) -> S3Result<S3Response<PutObjectTaggingOutput>> {
        let i = req.input;
        let tags = tagging::from_set(&i.tagging.tag_set)?;
        let value = (!tags.is_empty()).then(|| tagging::render(&tags));
        self.engine
            .set_object_headers(&i.bucket, &i.key, &[(tagging::HEADER.to_string(), value)])
            .await
            .map_err(to_s3)?;
        ok(PutObjectTaggingOutput::default())
    }

    async fn delete_object_tagging(
        &self,
        req: S3Request<DeleteObjectTaggingInput>,
    ) -> S3Result<S3Response<DeleteObjectTaggingOutput>> {
        let i = req.input;
        self.engine
            .set_object_headers(&i.bucket, &i.key, &[(tagging::HEADER.to_string(), None)])
            .await
            .map_err(to_s3)?;
        ok(DeleteObjectTaggingOutput::default())
    }

    // ---- listings ----

    async fn list_objects_v2(
        &self,
        req: S3Request<ListObjectsV2Input>,
    ) -> S3Result<S3Response<ListObjectsV2Output>> {
        let i = req.input;
        let bucket = bucket_name(&i.bucket)?;
        let start_after = match &i.continuation_token {
            Some(t) => Some(token_decode(t)?),
            None => i.start_after.clone(),
        };
        let query = ListQuery {
            prefix: i.prefix.clone().unwrap_or_default(),
            delimiter: i.delimiter.clone().filter(|d| !d.is_empty()),
            start_after,
            max_keys: max_keys(i.max_keys)?,
        };
        let page = self.meta().list(&bucket, &query).await.map_err(meta_err)?;
        let enc = key_encoder(i.encoding_type.as_ref());
        let owner = i.fetch_owner.unwrap_or(false).then(|| self.owner());
        let key_count = (page.objects.len() + page.common_prefixes.len()) as i32;
        ok(ListObjectsV2Output {
            name: Some(i.bucket),
            prefix: Some(enc(query.prefix.clone())),
            delimiter: i.delimiter.map(&enc),
            max_keys: Some(query.max_keys as i32),
            key_count: Some(key_count),
            continuation_token: i.continuation_token,
            start_after: i.start_after.map(&enc),
            is_truncated: Some(page.is_truncated),
            next_continuation_token: page
                .next_start_after
                .filter(|_| page.is_truncated)
                .map(|k| token_encode(&k)),
            contents: Some(
                page.objects
                    .into_iter()
                    .map(|o| object_entry(o, owner.clone(), &enc))
                    .collect(),
            ),
            common_prefixes: Some(common_prefixes(page.common_prefixes, &enc)),
            encoding_type: i.encoding_type,
            ..ListObjectsV2Output::default()
        })
    }

    async fn list_objects(
        &self,
        req: S3Request<ListObjectsInput>,
    ) -> S3Result<S3Response<ListObjectsOutput>> {
        let i = req.input;
        let bucket = bucket_name(&i.bucket)?;
        let query = ListQuery {
            prefix: i.prefix.clone().unwrap_or_default(),
            delimiter: i.delimiter.clone().filter(|d| !d.is_empty()),
            start_after: i.marker.clone().filter(|m| !m.is_empty()),
            max_keys: max_keys(i.max_keys)?,
        };
        let page = self.meta().list(&bucket, &query).await.map_err(meta_err)?;
        let enc = key_encoder(i.encoding_type.as_ref());
        let owner = self.owner();
        ok(ListObjectsOutput {
            name: Some(i.bucket),
            prefix: Some(enc(query.prefix.clone())),
            marker: Some(i.marker.map(&enc).unwrap_or_default()),
            delimiter: i.delimiter.map(&enc),
            max_keys: Some(query.max_keys as i32),
            is_truncated: Some(page.is_truncated),
            // Always given (not only with a delimiter): clients page with it either way.
            next_marker: page
                .next_start_after
                .filter(|_| page.is_truncated)
                .map(&enc),
            contents: Some(
                page.objects
                    .into_iter()
                    .map(|o| object_entry(o, Some(owner.clone()), &enc))
                    .collect(),
            ),
            common_prefixes: Some(common_prefixes(page.common_prefixes, &enc)),
            encoding_type: i.encoding_type,
            ..ListObjectsOutput::default()
        })
    }

    async fn list_object_versions(
        &self,
        req: S3Request<ListObjectVersionsInput>,
    ) -> S3Result<S3Response<ListObjectVersionsOutput>> {
        // Unversioned buckets: every current object is its only version, with id "null".
        let i = req.input;
        let bucket = bucket_name(&i.bucket)?;
        let query = ListQuery {
            prefix: i.prefix.clone().unwrap_or_default(),
            delimiter: i.delimiter.clone().filter(|d| !d.is_empty()),
            start_after: i.key_marker.clone().filter(|m| !m.is_empty()),
            max_keys: max_keys(i.max_keys)?,
        };
        let page = self.meta().list(&bucket, &query).await.map_err(meta_err)?;
        let enc = key_encoder(i.encoding_type.as_ref());
        let owner = self.owner();
        ok(ListObjectVersionsOutput {
            name: Some(i.bucket),
            prefix: Some(enc(query.prefix.clone())),
            delimiter: i.delimiter.map(&enc),
            key_marker: i.key_marker.map(&enc),
            version_id_marker: i.version_id_marker,
            max_keys: Some(query.max_keys as i32),
            is_truncated: Some(page.is_truncated),
            next_key_marker: page
                .next_start_after
                .filter(|_| page.is_truncated)
                .map(&enc),
            next_version_id_marker: page.is_truncated.then(|| "null".to_string()),
            versions: Some(
                page.objects
                    .into_iter()
                    .map(|o| ObjectVersion {
                        e_tag: Some(etag(o.etag.as_str())),
                        is_latest: Some(true),
                        key: Some(enc(o.key.to_string())),
                        last_modified: Some(timestamp(o.last_modified)),
                        owner: Some(owner.clone()),
                        size: Some(o.size as i64),
                        storage_class: Some(ObjectVersionStorageClass::from_static(
                            ObjectVersionStorageClass::STANDARD,
                        )),
                        version_id: Some("null".into()),
                        ..ObjectVersion::default()
                    })
                    .collect(),
            ),
            common_prefixes: Some(common_prefixes(page.common_prefixes, &enc)),
            encoding_type: i.encoding_type,
            ..ListObjectVersionsOutput::default()
        })
    }

    // ---- multipart ----

    async fn create_multipart_upload(
        &self,
        req: S3Request<CreateMultipartUploadInput>,
    ) -> S3Result<S3Response<CreateMultipartUploadOutput>> {
        let i = req.input;
        let tags = i.tagging.as_deref().map(tagging::parse).transpose()?;
        let opts = PutOptions {
            content_type: i.content_type,
            headers: with_tags(
                header_list(
                    i.content_encoding,
                    i.content_disposition,
                    i.content_language,
                    i.cache_control,
                    i.expires.as_ref(),
                    i.website_redirect_location,
                ),
                tags.as_deref(),
            ),
            user_metadata: i.metadata.unwrap_or_default().into_iter().collect(),
            ..PutOptions::default()
        };
        let id = self
            .engine
            .create_upload(&i.bucket, &i.key, &opts)
            .await
            .map_err(to_s3)?;
        ok(CreateMultipartUploadOutput {
            bucket: Some(i.bucket),
            key: Some(i.key),
            upload_id: Some(id),
            ..CreateMultipartUploadOutput::default()
        })
    }

    async fn upload_part(
        &self,
        req: S3Request<UploadPartInput>,
    ) -> S3Result<S3Response<UploadPartOutput>> {
        let expected = checksum::Expected::new(
            &Checksum {
                checksum_crc32: req.input.checksum_crc32.clone(),
                checksum_crc32c: req.input.checksum_crc32c.clone(),
                checksum_crc64nvme: req.input.checksum_crc64nvme.clone(),
                checksum_sha1: req.input.checksum_sha1.clone(),
                checksum_sha256: req.input.checksum_sha256.clone(),
                ..Checksum::default()
            },
            &req.headers,
        );
        let trailers = req.trailing_headers.clone();
        let i = req.input;
        let part = u32::try_from(i.part_number)
            .map_err(|_| s3_error!(InvalidArgument, "part number {} is invalid", i.part_number))?;
        let check = BodyCheck {
            expected_len: i.content_length.and_then(|l| u64::try_from(l).ok()),
            content_md5: content_md5(i.content_md5.as_ref())?,
        };
        let (body, outcome) = checked_body(i.body, expected, trailers);
        let out = self
            .engine
            .upload_part(&i.bucket, &i.key, &i.upload_id, part, body, check)
            .await
            .map_err(|e| checksum_error(e, outcome.as_deref()))?;
        let sums = checksum::to_checksum(&outcome.map(|o| o.values()).unwrap_or_default());
        ok(UploadPartOutput {
            e_tag: Some(etag(&out.etag)),
            checksum_crc32: sums.checksum_crc32,
            checksum_crc32c: sums.checksum_crc32c,
            checksum_crc64nvme: sums.checksum_crc64nvme,
            checksum_sha1: sums.checksum_sha1,
            checksum_sha256: sums.checksum_sha256,
            ..UploadPartOutput::default()
        })
    }

    async fn upload_part_copy(
        &self,
        req: S3Request<UploadPartCopyInput>,
    ) -> S3Result<S3Response<UploadPartCopyOutput>> {
        let i = req.input;
        let (src_bucket, src_key) = parse_copy_source(&i.copy_source)?;
        let source = self
            .engine
            .open_object(&src_bucket, &src_key)
            .await
            .map_err(to_s3)?;
        let src = source.info().clone();
        check_copy_conditions(
            &src,
            i.copy_source_if_match.as_ref(),
            i.copy_source_if_unmodified_since.as_ref(),
            i.copy_source_if_none_match.as_ref(),
            i.copy_source_if_modified_since.as_ref(),
        )?;
        let range = match &i.copy_source_range {
            None => None,
            Some(r) => {
                let r = r
                    .strip_prefix("bytes=")
                    .and_then(|r| r.split_once('-'))
                    .and_then(|(a, b)| Some((a.parse::<u64>().ok()?, b.parse::<u64>().ok()?)))
                    .ok_or_else(|| {
                        s3_error!(
                            InvalidArgument,
                            "x-amz-copy-source-range must be bytes=first-last"
                        )
                    })?;
                if r.1 >= src.size || r.0 > r.1 {
                    return Err(s3_error!(
                        InvalidRange,
                        "copy source range outside the object"
                    ));
                }
                Some(ByteRange::FromTo {
                    first: r.0,
                    last: Some(r.1),
                })
            }
        };
        let part = u32::try_from(i.part_number)
            .map_err(|_| s3_error!(InvalidArgument, "part number {} is invalid", i.part_number))?;
        let got = self
            .engine
            .read_object(source, range)
            .await
            .map_err(to_s3)?;
        let len = got.range.end - got.range.start;
        let body = got
            .body
            .map(|r| r.map_err(|e| std::io::Error::other(e.to_string())))
            .boxed();
        let out = self
            .engine
            .upload_part(
                &i.bucket,
                &i.key,
                &i.upload_id,
                part,
                body,
                BodyCheck {
                    expected_len: Some(len),
                    content_md5: None,
                },
            )
            .await
            .map_err(to_s3)?;
        ok(UploadPartCopyOutput {
            copy_part_result: Some(CopyPartResult {
                e_tag: Some(etag(&out.etag)),
                last_modified: Some(timestamp(UnixMillis::now())),
                ..CopyPartResult::default()
            }),
            ..UploadPartCopyOutput::default()
        })
    }

    async fn complete_multipart_upload(
        &self,
        req: S3Request<CompleteMultipartUploadInput>,
    ) -> S3Result<S3Response<CompleteMultipartUploadOutput>> {
        let i = req.input;
        let parts: Vec<(u32, String)> = i
            .multipart_upload
            .and_then(|m| m.parts)
            .unwrap_or_default()
            .into_iter()
            .map(|p| {
                let n = p
                    .part_number
                    .and_then(|n| u32::try_from(n).ok())
                    .ok_or_else(|| s3_error!(InvalidPart, "a part has no valid part number"))?;
                let e = p
                    .e_tag
                    .map(|e| etag_str(&e).to_string())
                    .unwrap_or_default();
                Ok((n, e))
            })
            .collect::<S3Result<_>>()?;
        let condition = write_condition(i.if_match.as_ref(), i.if_none_match.as_ref())?;
        let out = self
            .engine
            .complete_upload(&i.bucket, &i.key, &i.upload_id, &parts, condition)
            .await
            .map_err(to_s3)?;
        ok(CompleteMultipartUploadOutput {
            bucket: Some(i.bucket.clone()),
            key: Some(i.key.clone()),
            e_tag: Some(etag(&out.etag)),
            location: Some(format!("/{}/{}", i.bucket, i.key)),
            ..CompleteMultipartUploadOutput::default()
        })
    }

    async fn abort_multipart_upload(
        &self,
        req: S3Request<AbortMultipartUploadInput>,
    ) -> S3Result<S3Response<AbortMultipartUploadOutput>> {
        let i = req.input;
        self.engine
            .abort_upload(&i.bucket, &i.key, &i.upload_id)
            .await
            .map_err(to_s3)?;
        ok(AbortMultipartUploadOutput::default())
    }

    async fn list_parts(
        &self,
        req: S3Request<ListPartsInput>,
    ) -> S3Result<S3Response<ListPartsOutput>> {
        let i = req.input;
        let r = UploadRef {
            bucket: bucket_name(&i.bucket)?,
            key: object_key(&i.key)?,
            upload_id: UploadId::new(i.upload_id.clone())
                .map_err(|e| s3_error!(NoSuchUpload, "{e}"))?,
        };
        if self
            .meta()
            .get_upload(&r)
            .await
            .map_err(meta_err)?
            .is_none()
        {
            return Err(s3_error!(NoSuchUpload));
        }
        let query = PartQuery {
            after: i.part_number_marker.and_then(|n| u32::try_from(n).ok()),
            max_parts: max_keys(i.max_parts)?,
        };
        let page = self.meta().list_parts(&r, &query).await.map_err(meta_err)?;
        ok(ListPartsOutput {
            bucket: Some(i.bucket),
            key: Some(i.key),
            upload_id: Some(i.upload_id),
            max_parts: Some(query.max_parts as i32),
            part_number_marker: i.part_number_marker,
            is_truncated: Some(page.is_truncated),
            next_part_number_marker: page.next_after.map(|n| n as i32),
            owner: Some(self.owner()),
            initiator: Some(Initiator {
                display_name: Some(self.config.owner_id.clone()),
                id: Some(self.config.owner_id.clone()),
            }),
            storage_class: Some(StorageClass::from_static(StorageClass::STANDARD)),
            parts: Some(
                page.parts
                    .into_iter()
                    .map(|p| Part {
                        e_tag: Some(etag(p.etag.as_str())),
                        last_modified: Some(timestamp(p.last_modified)),
                        part_number: Some(p.part_number as i32),
                        size: Some(p.size as i64),
                        ..Part::default()
                    })
                    .collect(),
            ),
            ..ListPartsOutput::default()
        })
    }

    async fn list_multipart_uploads(
        &self,
        req: S3Request<ListMultipartUploadsInput>,
    ) -> S3Result<S3Response<ListMultipartUploadsOutput>> {
        let i = req.input;
        let bucket = bucket_name(&i.bucket)?;
        let query = UploadQuery {
            prefix: i.prefix.clone().unwrap_or_default(),
            delimiter: i.delimiter.clone().filter(|d| !d.is_empty()),
            key_marker: i.key_marker.clone().filter(|m| !m.is_empty()),
            upload_id_marker: i.upload_id_marker.clone().filter(|m| !m.is_empty()),
            max_uploads: max_keys(i.max_uploads)?,
        };
        let page = self
            .meta()
            .list_uploads(&bucket, &query)
            .await
            .map_err(meta_err)?;
        let enc = key_encoder(i.encoding_type.as_ref());
        let owner = self.owner();
        ok(ListMultipartUploadsOutput {
            bucket: Some(i.bucket),
            prefix: Some(enc(query.prefix.clone())),
            delimiter: i.delimiter.map(&enc),
            key_marker: i.key_marker.map(&enc),
            upload_id_marker: i.upload_id_marker,
            max_uploads: Some(query.max_uploads as i32),
            is_truncated: Some(page.is_truncated),
            next_key_marker: page.next_key_marker.map(&enc),
            next_upload_id_marker: page.next_upload_id_marker,
            uploads: Some(
                page.uploads
                    .into_iter()
                    .map(|u| MultipartUpload {
                        initiated: Some(timestamp(u.upload.initiated)),
                        initiator: Some(Initiator {
                            display_name: owner.display_name.clone(),
                            id: owner.id.clone(),
                        }),
                        key: Some(enc(u.upload.key.to_string())),
                        owner: Some(owner.clone()),
                        storage_class: Some(StorageClass::from_static(StorageClass::STANDARD)),
                        upload_id: Some(u.upload.upload_id.to_string()),
                        ..MultipartUpload::default()
                    })
                    .collect(),
            ),
            common_prefixes: Some(common_prefixes(page.common_prefixes, &enc)),
            encoding_type: i.encoding_type,
            ..ListMultipartUploadsOutput::default()
        })
    }
}

impl Gateway {
    async fn require_bucket(&self, name: &str) -> S3Result<()> {
        let b = bucket_name(name)?;
        match self.meta().get_bucket(&b).await.map_err(meta_err)? {
            Some(_) => Ok(()),
            None => Err(s3_error!(NoSuchBucket)),
        }
    }

    fn full_control(&self) -> Grant {
        Grant {
            grantee: Some(Grantee {
                display_name: Some(self.config.owner_id.clone()),
                email_address: None,
                id: Some(self.config.owner_id.clone()),
                type_: Type::from_static(Type::CANONICAL_USER),
                uri: None,
            }),
            permission: Some(Permission::from_static(Permission::FULL_CONTROL)),
        }
    }
}
