//! Audits: cheap, continuous evidence that a provider still holds what it was given.
//!
//! A scrub reads every byte; an audit reads a uniform random sample. [`Engine::audit_sample`]
//! walks the index once and draws, by reservoir sampling, up to `max` of the shards that the
//! current object versions place on one provider, each with one of its stripes chosen at
//! random. [`Engine::audit_check`] reads exactly that stripe's chunk with a ranged read and
//! verifies its AEAD tag (which binds the chunk to its segment, shard and stripe, so a
//! provider cannot answer with another chunk, and only the holder of the bytes can answer at
//! all). A missing or corrupt chunk is queued for repair — unless the object changed since the
//! sample was drawn (overwritten, deleted, moved by a drain), in which case the sample is
//! dropped as obsolete rather than counted.
//!
//! What the samples prove is stated as a bound: after `n` verified samples with `x` failures,
//! the fraction of shards present is at least [`present_lower_bound`]`(n, x, c)` with
//! confidence `c` (a one-sided Clopper–Pearson bound on the binomial; sampling is without
//! replacement, which only tightens it). With no failure, `n` ≥ ln(1 − c) / ln(p) samples show
//! "≥ p present with confidence c": 4,603 for 99.9 % with 99 % ([`samples_needed`]).

use std::collections::HashSet;
use std::ops::Range;

use archipel_codec::{ManifestSegment, SegmentDecoder, SegmentLayout, SegmentSpec, VersionId};
use archipel_meta::{BucketName, ListQuery, ObjectKey};
use archipel_provider::{BlobName, ErrorKind};
use futures::StreamExt;

use crate::engine::Engine;
use crate::error::Result;
use crate::read::{RepairNote, RepairReason};

/// One shard chosen for an audit, with the stripe whose chunk will be read.
#[derive(Debug, Clone)]
pub struct AuditPick {
    bucket: BucketName,
    key: ObjectKey,
    version_id: archipel_meta::VersionId,
    version: VersionId,
    seg: ManifestSegment,
    place: usize,
    stripe: u64,
    range: Range<u64>,
}

impl AuditPick {
    /// Bytes the check reads (one chunk with its tag).
    pub fn bytes(&self) -> u64 {
        self.range.end - self.range.start
    }

    /// `bucket/key shard i (blob), stripe s`, for reports.
    pub fn describe(&self) -> String {
        let p = &self.seg.placement[self.place];
        format!(
            "{}/{} shard {} ({}), stripe {}",
            self.bucket,
            self.key.as_str(),
            p.shard.get(),
            p.blob,
            self.stripe
        )
    }
}

/// The shards of one provider and a random sample of them.
#[derive(Debug, Clone, Default)]
pub struct AuditSampling {
    /// Shards the index places on the provider.
    pub population: u64,
    /// Their bytes.
    pub population_bytes: u64,
    /// The sample, in random order (any prefix is itself a uniform sample).
    pub picks: Vec<AuditPick>,
}

/// What checking one pick found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuditOutcome {
    /// The chunk was there and its tag verified.
    Verified,
    /// The shard was not there (queued for repair).
    Missing,
    /// The chunk was there but failed its check, or was short (queued for repair).
    Corrupt,
    /// The object changed since the sample was drawn: not evidence either way.
    Obsolete,
    /// The provider did not answer (timeout, unavailable): not evidence either way.
    Unreachable(String),
    /// Asked again ([`Engine::audit_recheck`]), the provider still did not produce the chunk
    /// while it answered for others: counted as lost (queued for repair).
    Unreadable(String),
}

/// What [`Engine::audit_check`] read and found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditVerdict {
    /// Bytes read from the provider.
    pub bytes: u64,
    /// What was found.
    pub outcome: AuditOutcome,
}

/// Lower bound on the fraction of shards present after `samples` uniform samples of which
/// `failures` failed, holding with probability `confidence` (one-sided Clopper–Pearson).
/// 0 without samples.
pub fn present_lower_bound(samples: u64, failures: u64, confidence: f64) -> f64 {
    if samples == 0 || failures >= samples {
        return 0.0;
    }
    let alpha = (1.0 - confidence).clamp(f64::MIN_POSITIVE, 1.0);
    if failures == 0 {
        // P(no failure | missing fraction q) = (1 − q)^n = alpha.
        return alpha.powf(1.0 / samples as f64);
    }
    // The largest missing fraction q with P(X ≤ failures | n, q) ≥ alpha, by bisection (the
    // binomial CDF falls as q grows).
    let (n, x) = (samples as f64, failures);
    let cdf = |q: f64| -> f64 {
        let (lq, lr) = (q.ln(), (1.0 - q).ln());
        // log of C(n, i) q^i (1-q)^(n-i), term by term, summed with log-sum-exp.
        let mut log_term = n * lr;
        let mut max = log_term;
        let mut terms = vec![log_term];
        for i in 0..x {
            let i = i as f64;
            log_term += ((n - i) / (i + 1.0)).ln() + lq - lr;
            max = max.max(log_term);
            terms.push(log_term);
        }
        max.exp() * terms.iter().map(|t| (t - max).exp()).sum::<f64>()
    };
    let (mut lo, mut hi) = (failures as f64 / n, 1.0 - 1e-12);
    for _ in 0..80 {
        let mid = (lo + hi) / 2.0;
        if cdf(mid) >= alpha {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    1.0 - hi
}

/// Samples without failure needed to show "at least `present` of the shards are there" with
/// `confidence`: 4,603 for 0.999 with 0.99.
pub fn samples_needed(present: f64, confidence: f64) -> u64 {
    if !(0.0..1.0).contains(&present) {
        return u64::MAX;
    }
    ((1.0 - confidence).ln() / present.ln()).ceil() as u64
}

impl Engine {
    /// Walks the index and draws up to `max` of the shards the current object versions place
    /// on `provider` (uniformly, by reservoir sampling), each with a random stripe; see the
    /// module docs. `seed` drives every random choice.
    pub async fn audit_sample(
        &self,
        provider: &str,
        max: usize,
        seed: u64,
    ) -> Result<AuditSampling> {
        let inner = &self.inner;
        let mut rng = fastrand::Rng::with_seed(seed);
        let mut out = AuditSampling::default();
        for bucket in inner.meta.list_buckets().await? {
            let mut q = ListQuery {
                prefix: String::new(),
                delimiter: None,
                start_after: None,
                max_keys: archipel_meta::MAX_PAGE,
            };
            loop {
                let page = inner.meta.list(&bucket.name, &q).await?;
                for o in &page.objects {
                    let Some(v) = inner.meta.get(&bucket.name, &o.key).await? else {
                        continue;
                    };
                    if v.version.delete_marker {
                        continue;
                    }
                    let Ok(m) = inner.decode_manifest(&v.version.manifest) else {
                        continue;
                    };
                    for seg in &m.segments {
                        let layout =
                            SegmentLayout::new(seg.params, seg.len, u64::from(seg.header_len));
                        for (place, p) in seg.placement.iter().enumerate() {
                            if p.provider != provider {
                                continue;
                            }
                            out.population += 1;
                            out.population_bytes += layout.shard_len();
                            // Reservoir sampling (Algorithm R): the i-th shard replaces a
                            // random one of the `max` kept with probability max / i.
                            let slot = if out.picks.len() < max {
                                Some(out.picks.len())
                            } else {
                                let j = rng.u64(0..out.population) as usize;
                                (j < max).then_some(j)
                            };
                            let Some(slot) = slot else { continue };
                            let stripe = rng.u64(0..layout.stripes());
                            let start = layout.chunk_offset(stripe);
                            let pick = AuditPick {
                                bucket: bucket.name.clone(),
                                key: o.key.clone(),
                                version_id: v.version.version_id.clone(),
                                version: m.version,
                                seg: seg.clone(),
                                place,
                                stripe,
                                range: start..start + layout.chunk_stored_len(stripe) as u64,
                            };
                            if slot == out.picks.len() {
                                out.picks.push(pick);
                            } else {
                                out.picks[slot] = pick;
                            }
                        }
                    }
                }
                match page.next_start_after {
                    Some(next) if page.is_truncated => q.start_after = Some(next),
                    _ => break,
                }
            }
        }
        rng.shuffle(&mut out.picks);
        Ok(out)
    }

    /// Reads and verifies the chunk `pick` names; a missing or corrupt one is queued for
    /// repair unless the object changed meanwhile (then it is [`AuditOutcome::Obsolete`]).
    pub async fn audit_check(&self, pick: &AuditPick) -> AuditVerdict {
        self.check_pick(pick, false).await
    }

    /// Checks a pick again whose first read got no answer, for a provider that answered
    /// other reads: a second failure to produce the chunk is [`AuditOutcome::Unreadable`]
    /// and queued for repair like a missing shard (a server that lists a blob but cannot
    /// serve it has lost it as far as readers go).
    pub async fn audit_recheck(&self, pick: &AuditPick) -> AuditVerdict {
        self.check_pick(pick, true).await
    }

    async fn check_pick(&self, pick: &AuditPick, again: bool) -> AuditVerdict {
        let p = &pick.seg.placement[pick.place];
        let (bytes, outcome) = self.read_pick(pick).await;
        let (reason, outcome) = match outcome {
            AuditOutcome::Missing => (RepairReason::Missing, AuditOutcome::Missing),
            AuditOutcome::Corrupt => (RepairReason::Corrupt, AuditOutcome::Corrupt),
            AuditOutcome::Unreachable(e) if again => {
                (RepairReason::Missing, AuditOutcome::Unreadable(e))
            }
            other => {
                return AuditVerdict {
                    bytes,
                    outcome: other,
                };
            }
        };
        if !self.still_placed(pick).await {
            return AuditVerdict {
                bytes,
                outcome: AuditOutcome::Obsolete,
            };
        }
        self.inner
            .record_repairs(
                &pick.bucket,
                &pick.key,
                pick.version_id.as_str(),
                &[RepairNote {
                    shard: p.shard.get(),
                    provider: p.provider.clone(),
                    blob: p.blob.clone(),
                    reason,
                }],
            )
            .await;
        AuditVerdict { bytes, outcome }
    }

    async fn read_pick(&self, pick: &AuditPick) -> (u64, AuditOutcome) {
        let p = &pick.seg.placement[pick.place];
        let Some(provider) = self.inner.provider(&p.provider) else {
            return (
                0,
                AuditOutcome::Unreachable("not in the provider set".into()),
            );
        };
        let Ok(blob) = BlobName::new(p.blob.clone()) else {
            return (0, AuditOutcome::Corrupt);
        };
        let Ok(key) = pick
            .seg
            .wrapped_key
            .unwrap(&self.inner.master, &pick.seg.segment)
        else {
            return (0, AuditOutcome::Corrupt);
        };
        let spec = SegmentSpec {
            version: pick.version,
            segment: pick.seg.segment,
            params: pick.seg.params,
        };
        let Ok(mut dec) =
            SegmentDecoder::new(spec, &key, pick.seg.len, u64::from(pick.seg.header_len))
        else {
            return (0, AuditOutcome::Corrupt);
        };
        let classify = |kind: ErrorKind, e: String| match kind {
            ErrorKind::NotFound => AuditOutcome::Missing,
            ErrorKind::InvalidRange => AuditOutcome::Corrupt,
            _ => AuditOutcome::Unreachable(e),
        };
        let mut stream = match provider.get(&blob, Some(pick.range.clone())).await {
            Ok(s) => s,
            Err(e) => return (0, classify(e.kind(), e.to_string())),
        };
        let mut chunk = Vec::with_capacity(pick.bytes() as usize);
        while let Some(piece) = stream.next().await {
            match piece {
                Ok(b) => {
                    if chunk.len() + b.len() > pick.bytes() as usize {
                        return (chunk.len() as u64, AuditOutcome::Corrupt);
                    }
                    chunk.extend_from_slice(&b);
                }
                Err(e) => return (chunk.len() as u64, classify(e.kind(), e.to_string())),
            }
        }
        let read = chunk.len() as u64;
        if dec.verify_chunk(pick.stripe, p.shard, &chunk) {
            (read, AuditOutcome::Verified)
        } else {
            (read, AuditOutcome::Corrupt)
        }
    }

    /// Whether the object's current version still places the pick's shard where it was.
    async fn still_placed(&self, pick: &AuditPick) -> bool {
        let p = &pick.seg.placement[pick.place];
        let Ok(Some(v)) = self.inner.meta.get(&pick.bucket, &pick.key).await else {
            return false;
        };
        if v.version.version_id != pick.version_id || v.version.delete_marker {
            return false;
        }
        let Ok(m) = self.inner.decode_manifest(&v.version.manifest) else {
            return false;
        };
        let held: HashSet<(&str, &str)> = m
            .segments
            .iter()
            .flat_map(|s| s.placement.iter())
            .map(|q| (q.provider.as_str(), q.blob.as_str()))
            .collect();
        held.contains(&(p.provider.as_str(), p.blob.as_str()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_failure_bound_matches_the_closed_form() {
        assert_eq!(samples_needed(0.999, 0.99), 4603);
        let b = present_lower_bound(4603, 0, 0.99);
        assert!((0.999..0.99901).contains(&b), "{b}");
        assert!(present_lower_bound(4602, 0, 0.99) < 0.999);
        assert_eq!(present_lower_bound(0, 0, 0.99), 0.0);
        assert_eq!(present_lower_bound(10, 10, 0.99), 0.0);
    }

    #[test]
    fn failures_lower_the_bound_below_the_observed_fraction() {
        // 1,000 samples, 10 failures: observed 99 % present; the 99 % bound is lower.
        let b = present_lower_bound(1000, 10, 0.99);
        // Exact one-sided Clopper–Pearson values (computed independently with exact binomial
        // sums): 0.979957 for 10 of 1,000, 0.993380 for 1 of 1,000.
        assert!((b - 0.979957).abs() < 1e-5, "{b}");
        assert!((present_lower_bound(1000, 1, 0.99) - 0.993380).abs() < 1e-5);
        // More failures, lower bound; more samples at the same rate, tighter bound.
        assert!(present_lower_bound(1000, 20, 0.99) < b);
        assert!(present_lower_bound(10_000, 100, 0.99) > b);
        assert!(present_lower_bound(1000, 1, 0.99) < present_lower_bound(1000, 0, 0.99));
    }
}
