//! Multipart uploads. The version id is drawn when the upload is created, so every part is
//! encoded once, as it arrives, into shards that already name their final version; completing
//! the upload is a metadata operation that commits a manifest listing the parts' segments.
//! Replaced parts, unlisted parts and aborted or expired uploads go to the GC queue.

use std::time::Duration;

use archipel_codec::{Manifest, ShardIdentity, VersionId};
use archipel_meta::{
    CommitCondition, ETag, NewUpload, Part, PartQuery, UnixMillis, UploadId, UploadQuery, UploadRef,
};
use md5::{Digest, Md5};

use crate::engine::{Engine, bucket_name, meta_name, now_ms, object_key, random};
use crate::error::{EngineError, Result};
use crate::object::{Body, BodyCheck, PutOptions, PutOutcome};
use crate::write::{hex, write_segment};

/// The largest part number S3 allows.
pub const MAX_PART_NUMBER: u32 = 10_000;

/// An uploaded part, as [`Engine::upload_part`] reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartOutcome {
    /// The part's etag (hex MD5 of its bytes).
    pub etag: String,
    /// Its size.
    pub size: u64,
}

impl Engine {
    fn upload_ref(&self, bucket: &str, key: &str, upload_id: &str) -> Result<UploadRef> {
        Ok(UploadRef {
            bucket: bucket_name(bucket)?,
            key: object_key(key)?,
            upload_id: meta_name(UploadId::new(upload_id))?,
        })
    }

    /// Starts a multipart upload; returns its id. `opts` gives the object's headers and
    /// metadata (its condition applies at completion).
    pub async fn create_upload(
        &self,
        bucket: &str,
        key: &str,
        opts: &PutOptions,
    ) -> Result<String> {
        let (bname, okey) = (bucket_name(bucket)?, object_key(key)?);
        self.inner.policy(&bname).await?; // the bucket exists
        let version = VersionId(random()?);
        let now = now_ms();
        // Time-ordered, so uploads of one key list in initiation order.
        let upload_id = format!("{now:016x}{}", hex(&random::<8>()?));
        let template = Manifest {
            version,
            timestamp_ms: now,
            bucket: bucket.to_string(),
            key: key.to_string(),
            size: 0,
            etag: String::new(),
            content_type: opts.content_type.clone(),
            headers: opts.headers.clone(),
            user_metadata: opts.user_metadata.clone().into_iter().collect(),
            segments: Vec::new(),
        };
        self.inner
            .meta
            .create_upload(
                &bname,
                &NewUpload {
                    key: okey,
                    upload_id: meta_name(UploadId::new(upload_id.clone()))?,
                    initiated: UnixMillis(now as i64),
                    metadata: template.encode(&self.inner.manifest_key)?,
                },
            )
            .await?;
        Ok(upload_id)
    }

    async fn upload_template(&self, r: &UploadRef) -> Result<Manifest> {
        let up = self
            .inner
            .meta
            .get_upload(r)
            .await?
            .ok_or_else(|| EngineError::NoSuchUpload {
                bucket: r.bucket.to_string(),
                key: r.key.to_string(),
                upload_id: r.upload_id.to_string(),
            })?;
        self.inner.decode_manifest(&up.upload.metadata)
    }

    /// Stores one part, encoding it as it streams in (refused, storing nothing, if it is not
    /// as long or with the MD5 `check` announces). A part uploaded again under the same
    /// number replaces the earlier one (whose shards go to the GC queue).
    pub async fn upload_part(
        &self,
        bucket: &str,
        key: &str,
        upload_id: &str,
        part_number: u32,
        body: Body,
        check: BodyCheck,
    ) -> Result<PartOutcome> {
        if !(1..=MAX_PART_NUMBER).contains(&part_number) {
            return Err(EngineError::Invalid(format!(
                "part number {part_number} is outside 1..={MAX_PART_NUMBER}"
            )));
        }
        let r = self.upload_ref(bucket, key, upload_id)?;
        let template = self.upload_template(&r).await?;
        let policy = self.inner.policy(&r.bucket).await?;
        let identity = ShardIdentity {
            version: template.version,
            timestamp_ms: template.timestamp_ms,
            part_number,
            bucket: bucket.to_string(),
            key: key.to_string(),
        };
        let written = write_segment(
            &self.inner,
            &policy,
            &identity,
            &format!("{bucket}/{key} part {part_number}"),
            body,
            check.expected_len,
            check.content_md5,
        )
        .await?;
        let seg = written.segment.clone();
        let part_manifest = Manifest {
            size: seg.len,
            etag: seg.etag.clone(),
            segments: vec![seg.clone()],
            ..template
        };
        let part = Part {
            part_number,
            manifest: part_manifest.encode(&self.inner.manifest_key)?,
            size: seg.len,
            etag: meta_name(ETag::new(seg.etag.clone()))?,
            last_modified: UnixMillis::now(),
        };
        match self.inner.meta.put_part(&r, &part).await {
            Ok(replaced) => {
                if let Some(old) = replaced {
                    self.inner.collect_manifest_bytes(&old.manifest).await?;
                }
                self.inner
                    .record_repairs(
                        &r.bucket,
                        &r.key,
                        &template.version.to_hex(),
                        &written.unwritten,
                    )
                    .await;
                Ok(PartOutcome {
                    etag: seg.etag,
                    size: seg.len,
                })
            }
            Err(e) => {
                // The upload was completed or aborted meanwhile: the part is an orphan.
                self.inner.collect_manifest(&part_manifest).await?;
                Err(e.into())
            }
        }
    }

    /// Every part of an upload, in number order.
    async fn all_parts(&self, r: &UploadRef) -> Result<Vec<Part>> {
        let mut parts = Vec::new();
        let mut query = PartQuery {
            after: None,
            max_parts: archipel_meta::MAX_PAGE,
        };
        loop {
            let page = self.inner.meta.list_parts(r, &query).await?;
            parts.extend(page.parts);
            match page.next_after {
                Some(n) if page.is_truncated => query.after = Some(n),
                _ => return Ok(parts),
            }
        }
    }

    /// Completes an upload from the listed `(part number, etag)` pairs, in ascending order.
    /// The object's etag is S3's: MD5 of the parts' MD5s, `-`, the part count.
    pub async fn complete_upload(
        &self,
        bucket: &str,
        key: &str,
        upload_id: &str,
        parts: &[(u32, String)],
        condition: Option<CommitCondition>,
    ) -> Result<PutOutcome> {
        let r = self.upload_ref(bucket, key, upload_id)?;
        let template = self.upload_template(&r).await?;
        if parts.is_empty() {
            return Err(EngineError::InvalidPart(
                "a completion must list at least one part".into(),
            ));
        }
        for w in parts.windows(2) {
            if w[0].0 >= w[1].0 {
                return Err(EngineError::InvalidPartOrder(format!(
                    "part {} listed after part {}",
                    w[1].0, w[0].0
                )));
            }
        }
        let stored = self.all_parts(&r).await?;
        // Every listed part must exist with its etag; then sizes are checked.
        let mut chosen = Vec::with_capacity(parts.len());
        for (number, etag) in parts {
            let wanted = etag.trim_matches('"');
            let part = stored
                .iter()
                .find(|p| p.part_number == *number)
                .filter(|p| p.etag.as_str().trim_matches('"') == wanted)
                .ok_or_else(|| {
                    EngineError::InvalidPart(format!(
                        "part {number} with etag {wanted} was not uploaded"
                    ))
                })?;
            chosen.push(part);
        }
        let mut segments = Vec::with_capacity(parts.len());
        let mut md5s = Md5::new();
        let mut size = 0u64;
        for (i, part) in chosen.iter().enumerate() {
            let is_last = i + 1 == chosen.len();
            if !is_last && part.size < self.inner.opts.min_part_size {
                return Err(EngineError::EntityTooSmall {
                    part: part.part_number,
                    size: part.size,
                    min: self.inner.opts.min_part_size,
                });
            }
            let m = self.inner.decode_manifest(&part.manifest)?;
            for seg in m.segments {
                md5s.update(decode_hex(&seg.etag));
                size += seg.len;
                segments.push(seg);
            }
        }
        let etag = format!("{}-{}", hex(&md5s.finalize()), parts.len());
        let version = template.version;
        let manifest = Manifest {
            version,
            timestamp_ms: now_ms(),
            size,
            etag: etag.clone(),
            segments,
            ..template
        };
        let new = archipel_meta::NewVersion {
            version_id: meta_name(archipel_meta::VersionId::new(version.to_hex()))?,
            manifest: manifest.encode(&self.inner.manifest_key)?,
            size,
            etag: meta_name(ETag::new(etag.clone()))?,
            last_modified: UnixMillis(manifest.timestamp_ms as i64),
            user_metadata: manifest.user_metadata.iter().cloned().collect(),
            delete_marker: false,
        };
        let cond = condition.unwrap_or(CommitCondition::Unconditional);
        let done = self.inner.meta.complete_upload(&r, &new, &cond).await?;
        if let Some(prev) = done.previous {
            self.inner
                .collect_manifest_bytes(&prev.version.manifest)
                .await?;
        }
        let used: std::collections::HashSet<u32> = parts.iter().map(|(n, _)| *n).collect();
        for p in done.parts.iter().filter(|p| !used.contains(&p.part_number)) {
            self.inner.collect_manifest_bytes(&p.manifest).await?;
        }
        Ok(PutOutcome {
            etag,
            version_id: version.to_hex(),
            size,
            unwritten_shards: 0,
            spared_shards: 0,
        })
    }

    /// Aborts an upload; its parts' shards go to the GC queue.
    pub async fn abort_upload(&self, bucket: &str, key: &str, upload_id: &str) -> Result<()> {
        let r = self.upload_ref(bucket, key, upload_id)?;
        let done = self.inner.meta.abort_upload(&r).await?;
        for p in &done.parts {
            self.inner.collect_manifest_bytes(&p.manifest).await?;
        }
        Ok(())
    }

    /// Aborts every upload initiated more than `older_than` ago, in every bucket; how many.
    pub async fn expire_uploads(&self, older_than: Duration) -> Result<u64> {
        let cutoff = UnixMillis::now().0 - older_than.as_millis().min(i64::MAX as u128) as i64;
        let mut expired = 0;
        for b in self.inner.meta.list_buckets().await? {
            let mut query = UploadQuery {
                max_uploads: archipel_meta::MAX_PAGE,
                ..UploadQuery::default()
            };
            loop {
                let page = self.inner.meta.list_uploads(&b.name, &query).await?;
                for u in &page.uploads {
                    if u.upload.initiated.0 < cutoff {
                        self.abort_upload(
                            b.name.as_str(),
                            u.upload.key.as_str(),
                            u.upload.upload_id.as_str(),
                        )
                        .await
                        .or_else(|e| match e {
                            EngineError::NoSuchUpload { .. } => Ok(()),
                            e => Err(e),
                        })?;
                        expired += 1;
                    }
                }
                if !page.is_truncated {
                    break;
                }
                query.key_marker = page.next_key_marker;
                query.upload_id_marker = page.next_upload_id_marker;
            }
        }
        Ok(expired)
    }
}

fn decode_hex(s: &str) -> Vec<u8> {
    (0..s.len() / 2)
        .filter_map(|i| u8::from_str_radix(s.get(2 * i..2 * i + 2)?, 16).ok())
        .collect()
}
