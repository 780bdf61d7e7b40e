//! Scrubbing: reading every shard of an object in full and verifying every byte — the shard
//! header (AEAD over its fixed part and identity), every chunk's tag, and the trailer (sealed
//! length and stripe count, checked against the manifest). A GET reads only `k` shards and
//! only the chunks it needs, so damage elsewhere is found here; bad shards are queued for
//! repair.

use archipel_codec::{
    ManifestSegment, SegmentDecoder, SegmentSpec, ShardHeader, ShardPlacement, ShardTrailer,
    VersionId,
};
use archipel_provider::BlobName;
use bytes::BytesMut;
use futures::StreamExt;

use crate::engine::{Engine, bucket_name, object_key};
use crate::error::Result;
use crate::read::{RepairNote, RepairReason};

/// What a scrub of one object found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ScrubReport {
    /// Shards read in full.
    pub shards_checked: usize,
    /// Bytes read.
    pub bytes_read: u64,
    /// Damaged or missing shards: `(shard index, provider, blob, reason)`; each was queued
    /// for repair.
    pub bad: Vec<(usize, String, String, String)>,
    /// Shards checked per provider.
    pub checked_per_provider: std::collections::BTreeMap<String, usize>,
}

impl Engine {
    /// Reads and verifies every shard of `bucket/key`; see the module docs.
    pub async fn scrub_object(&self, bucket: &str, key: &str) -> Result<ScrubReport> {
        let (bname, okey) = (bucket_name(bucket)?, object_key(key)?);
        let v = self
            .inner
            .meta
            .get(&bname, &okey)
            .await?
            .filter(|v| !v.version.delete_marker)
            .ok_or_else(|| crate::EngineError::NoSuchKey {
                bucket: bucket.to_string(),
                key: key.to_string(),
            })?;
        let manifest = self.inner.decode_manifest(&v.version.manifest)?;
        let mut report = ScrubReport::default();
        let mut notes = Vec::new();
        for seg in &manifest.segments {
            for p in &seg.placement {
                report.shards_checked += 1;
                *report
                    .checked_per_provider
                    .entry(p.provider.clone())
                    .or_default() += 1;
                let (bytes, verdict) = self.scrub_shard(manifest.version, seg, p).await;
                report.bytes_read += bytes;
                if let Err(reason) = verdict {
                    report.bad.push((
                        p.shard.get(),
                        p.provider.clone(),
                        p.blob.clone(),
                        reason.to_string(),
                    ));
                    notes.push(RepairNote {
                        shard: p.shard.get(),
                        provider: p.provider.clone(),
                        blob: p.blob.clone(),
                        reason,
                    });
                }
            }
        }
        self.inner
            .record_repairs(&bname, &okey, &manifest.version.to_hex(), &notes)
            .await;
        Ok(report)
    }

    /// Verifies one shard; returns the bytes read and what is wrong, if anything.
    pub(crate) async fn scrub_shard(
        &self,
        version: VersionId,
        seg: &ManifestSegment,
        p: &ShardPlacement,
    ) -> (u64, std::result::Result<(), RepairReason>) {
        let Some(provider) = self.inner.provider(&p.provider) else {
            return (0, Err(RepairReason::Missing));
        };
        let Ok(blob) = BlobName::new(p.blob.clone()) else {
            return (0, Err(RepairReason::Missing));
        };
        let Ok(key) = seg.wrapped_key.unwrap(&self.inner.master, &seg.segment) else {
            return (0, Err(RepairReason::Corrupt));
        };
        let spec = SegmentSpec {
            version,
            segment: seg.segment,
            params: seg.params,
        };
        let Ok(mut dec) = SegmentDecoder::new(spec, &key, seg.len, u64::from(seg.header_len))
        else {
            return (0, Err(RepairReason::Corrupt));
        };
        let layout = *dec.layout();
        let mut stream = match provider.get(&blob, None).await {
            Ok(s) => s,
            Err(_) => return (0, Err(RepairReason::Missing)),
        };
        let mut buf = BytesMut::new();
        let mut read = 0u64;
        // Pieces in order: the header, each stripe's chunk, the trailer.
        let header_len = seg.header_len as usize;
        let stripes = layout.stripes();
        let mut stage = 0u64; // 0 = header, 1..=stripes = chunk stage-1, stripes+1 = trailer
        let mut header: Option<ShardHeader> = None;
        loop {
            let need = if stage == 0 {
                header_len
            } else if stage <= stripes {
                layout.chunk_stored_len(stage - 1)
            } else {
                ShardTrailer::LEN
            };
            while buf.len() < need {
                match stream.next().await {
                    Some(Ok(b)) => {
                        read += b.len() as u64;
                        buf.extend_from_slice(&b);
                    }
                    Some(Err(_)) | None => return (read, Err(RepairReason::Corrupt)),
                }
            }
            let piece = buf.split_to(need);
            if stage == 0 {
                let ok = ShardHeader::parse(&piece).ok().filter(|h| {
                    h.segment == seg.segment
                        && h.shard == p.shard
                        && h.params == seg.params
                        && h.open(&key).is_ok_and(|id| id.version == version)
                });
                match ok {
                    Some(h) => header = Some(h),
                    None => return (read, Err(RepairReason::Corrupt)),
                }
            } else if stage <= stripes {
                if !dec.verify_chunk(stage - 1, p.shard, &piece) {
                    return (read, Err(RepairReason::Corrupt));
                }
            } else {
                let Some(h) = &header else {
                    return (read, Err(RepairReason::Corrupt));
                };
                let trailer_ok = ShardTrailer::open(&piece, h, &key)
                    .is_ok_and(|t| t.len == seg.len && t.stripes == stripes);
                // Nothing may follow the trailer.
                let extra = loop {
                    match stream.next().await {
                        Some(Ok(b)) if b.is_empty() => continue,
                        Some(_) => break true,
                        None => break !buf.is_empty(),
                    }
                };
                return (
                    read,
                    if trailer_ok && !extra {
                        Ok(())
                    } else {
                        Err(RepairReason::Corrupt)
                    },
                );
            }
            stage += 1;
        }
    }
}
