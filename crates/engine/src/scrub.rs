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
        let Ok(mut check) = ShardCheck::new(&self.inner.master, version, seg, p.shard) else {
            return (0, Err(RepairReason::Corrupt));
        };
        let mut stream = match provider.get(&blob, None).await {
            Ok(s) => s,
            Err(_) => return (0, Err(RepairReason::Missing)),
        };
        let mut read = 0u64;
        while let Some(piece) = stream.next().await {
            let Ok(b) = piece else {
                return (read, Err(RepairReason::Corrupt));
            };
            read += b.len() as u64;
            if let Err(e) = check.feed(&b) {
                return (read, Err(e));
            }
        }
        (read, check.finish())
    }
}

/// Checks a shard's bytes as they stream past, piece by piece in order: the header (its AEAD,
/// segment, index, parameters and identity), each stripe's chunk (its tag), the trailer
/// (sealed length and stripe count against the manifest), and that nothing follows. Holds at
/// most one piece (a chunk) at a time.
pub(crate) struct ShardCheck {
    dec: SegmentDecoder,
    key: archipel_codec::DataKey,
    version: VersionId,
    seg: ManifestSegment,
    shard: archipel_codec::ShardIdx,
    buf: BytesMut,
    /// 0 = header, 1..=stripes = chunk stage-1, stripes+1 = trailer, beyond = done.
    stage: u64,
    header: Option<ShardHeader>,
}

impl ShardCheck {
    pub(crate) fn new(
        master: &archipel_codec::MasterKey,
        version: VersionId,
        seg: &ManifestSegment,
        shard: archipel_codec::ShardIdx,
    ) -> std::result::Result<Self, RepairReason> {
        let key = seg
            .wrapped_key
            .unwrap(master, &seg.segment)
            .map_err(|_| RepairReason::Corrupt)?;
        let spec = SegmentSpec {
            version,
            segment: seg.segment,
            params: seg.params,
        };
        let dec = SegmentDecoder::new(spec, &key, seg.len, u64::from(seg.header_len))
            .map_err(|_| RepairReason::Corrupt)?;
        Ok(ShardCheck {
            dec,
            key,
            version,
            seg: seg.clone(),
            shard,
            buf: BytesMut::new(),
            stage: 0,
            header: None,
        })
    }

    fn need(&self) -> Option<usize> {
        let stripes = self.dec.layout().stripes();
        if self.stage == 0 {
            Some(self.seg.header_len as usize)
        } else if self.stage <= stripes {
            Some(self.dec.layout().chunk_stored_len(self.stage - 1))
        } else if self.stage == stripes + 1 {
            Some(ShardTrailer::LEN)
        } else {
            None
        }
    }

    /// Takes the next bytes of the shard.
    pub(crate) fn feed(&mut self, mut bytes: &[u8]) -> std::result::Result<(), RepairReason> {
        while !bytes.is_empty() {
            // Nothing may follow the trailer.
            let Some(need) = self.need() else {
                return Err(RepairReason::Corrupt);
            };
            let take = (need - self.buf.len()).min(bytes.len());
            self.buf.extend_from_slice(&bytes[..take]);
            bytes = &bytes[take..];
            if self.buf.len() == need {
                let piece = self.buf.split().freeze();
                self.check_piece(&piece)?;
                self.stage += 1;
            }
        }
        Ok(())
    }

    fn check_piece(&mut self, piece: &[u8]) -> std::result::Result<(), RepairReason> {
        let stripes = self.dec.layout().stripes();
        if self.stage == 0 {
            let h = ShardHeader::parse(piece)
                .ok()
                .filter(|h| {
                    h.segment == self.seg.segment
                        && h.shard == self.shard
                        && h.params == self.seg.params
                        && h.open(&self.key).is_ok_and(|id| id.version == self.version)
                })
                .ok_or(RepairReason::Corrupt)?;
            self.header = Some(h);
        } else if self.stage <= stripes {
            if !self.dec.verify_chunk(self.stage - 1, self.shard, piece) {
                return Err(RepairReason::Corrupt);
            }
        } else {
            let h = self.header.as_ref().ok_or(RepairReason::Corrupt)?;
            let ok = ShardTrailer::open(piece, h, &self.key)
                .is_ok_and(|t| t.len == self.seg.len && t.stripes == stripes);
            if !ok {
                return Err(RepairReason::Corrupt);
            }
        }
        Ok(())
    }

    /// The shard ended here: whether it was whole.
    pub(crate) fn finish(&self) -> std::result::Result<(), RepairReason> {
        if self.need().is_none() && self.buf.is_empty() {
            Ok(())
        } else {
            Err(RepairReason::Corrupt)
        }
    }
}
