//! Integration tests of the codec through its public API: round trips, degraded decodes,
//! tamper evidence, format compatibility and frozen fixtures. One test binary (modules below)
//! to keep link time down.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod fixtures;
mod formats;
mod roundtrip;
mod tamper;

use archipel_codec::{
    CodecParams, DataKey, EncodedSegment, MasterKey, SegmentId, SegmentSpec, ShardIdentity,
    StripeReport, VersionId, WrappedKey, decode_segment_range, encode_segment,
};

/// Deterministic pseudo-random bytes (xorshift), so failures reproduce.
pub(crate) fn bytes(seed: u64, n: usize) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

/// Everything needed to encode and decode one segment.
pub(crate) struct Case {
    pub(crate) master: MasterKey,
    pub(crate) spec: SegmentSpec,
    pub(crate) key: DataKey,
    pub(crate) wrapped: WrappedKey,
    pub(crate) identity: ShardIdentity,
}

impl Case {
    pub(crate) fn new(k: usize, m: usize, chunk_len: usize, seed: u8) -> Case {
        let master = MasterKey::from_bytes([seed; 32]);
        let spec = SegmentSpec {
            version: VersionId([seed ^ 1; 16]),
            segment: SegmentId([seed ^ 2; 16]),
            params: CodecParams::new(k, m, chunk_len).unwrap(),
        };
        let key = DataKey::from_bytes([seed ^ 3; 32]);
        let wrapped = WrappedKey::wrap(&master, &spec.segment, &key, [seed ^ 4; 12]).unwrap();
        let identity = ShardIdentity {
            version: spec.version,
            timestamp_ms: 1_790_000_000_000,
            part_number: 0,
            bucket: "photos".into(),
            key: "2026/holiday/beach.jpg".into(),
        };
        Case {
            master,
            spec,
            key,
            wrapped,
            identity,
        }
    }

    pub(crate) fn stripe_len(&self) -> usize {
        self.spec.params.stripe_len()
    }

    pub(crate) fn encode(&self, plaintext: &[u8]) -> EncodedSegment {
        encode_segment(
            self.spec,
            &self.key,
            &self.wrapped,
            &self.identity,
            plaintext,
        )
        .unwrap()
    }

    /// Decodes `range` from the shards kept by `keep`.
    pub(crate) fn decode(
        &self,
        enc: &EncodedSegment,
        keep: impl Fn(usize) -> bool,
        range: std::ops::Range<u64>,
    ) -> archipel_codec::Result<(Vec<u8>, Vec<StripeReport>)> {
        let shards: Vec<Option<&[u8]>> = enc
            .shards
            .iter()
            .enumerate()
            .map(|(i, s)| keep(i).then_some(s.as_slice()))
            .collect();
        decode_segment_range(
            self.spec,
            &self.key,
            enc.len,
            enc.header_len,
            &shards,
            range,
        )
    }
}
