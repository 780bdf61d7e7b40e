//! Any k of n shards reconstruct any range, for random parameters and the edge sizes.

use proptest::prelude::*;

use super::{Case, bytes};
use archipel_codec::{CodecError, SegmentLayout, ShardHeader, ShardTrailer};

/// Sizes that matter for a stripe length `s`: empty, one byte, stripe ± 1, several stripes.
fn sizes(s: usize) -> Vec<usize> {
    vec![0, 1, s - 1, s, s + 1, 2 * s, 3 * s + s / 2 + 7]
}

/// The shard subset selected by `mask` bits, topped up or trimmed to exactly `k` shards.
fn choose_k(n: usize, k: usize, mask: u64) -> Vec<bool> {
    let mut keep: Vec<bool> = (0..n).map(|i| mask >> (i % 64) & 1 == 1).collect();
    let mut count = keep.iter().filter(|&&b| b).count();
    for b in keep.iter_mut() {
        if count < k && !*b {
            *b = true;
            count += 1;
        } else if count > k && *b {
            *b = false;
            count -= 1;
        }
    }
    keep
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn any_k_of_n_shards_reconstruct_every_size(
        k in 1usize..=12,
        m in 0usize..=8,
        chunk_len in 1usize..=200,
        mask in any::<u64>(),
        seed in any::<u64>(),
    ) {
        let case = Case::new(k, m, chunk_len, seed as u8);
        for size in sizes(case.stripe_len()) {
            let plain = bytes(seed ^ size as u64, size);
            let enc = case.encode(&plain);
            let keep = choose_k(k + m, k, mask);
            let (out, reports) = case.decode(&enc, |i| keep[i], 0..size as u64).unwrap();
            prop_assert_eq!(&out, &plain, "k={} m={} size={}", k, m, size);
            prop_assert!(reports.iter().all(|r| r.corrupt.is_empty()));
            let layout = SegmentLayout::new(case.spec.params, size as u64, enc.header_len as u64);
            for s in &enc.shards {
                prop_assert_eq!(s.len() as u64, layout.shard_len());
            }
        }
    }

    #[test]
    fn range_decode_equals_the_plaintext_slice(
        k in 1usize..=8,
        m in 0usize..=4,
        chunk_len in 1usize..=64,
        size in 0usize..3000,
        a in any::<u32>(),
        b in any::<u32>(),
        mask in any::<u64>(),
    ) {
        let case = Case::new(k, m, chunk_len, 7);
        let plain = bytes(size as u64, size);
        let enc = case.encode(&plain);
        let (mut lo, mut hi) = (a as usize % (size + 1), b as usize % (size + 1));
        if lo > hi { std::mem::swap(&mut lo, &mut hi); }
        let keep = choose_k(k + m, k, mask);
        let (out, reports) = case.decode(&enc, |i| keep[i], lo as u64..hi as u64).unwrap();
        prop_assert_eq!(&out[..], &plain[lo..hi]);
        let layout = SegmentLayout::new(case.spec.params, size as u64, 0);
        if size > 0 {
            prop_assert_eq!(reports.len() as u64, layout.stripes_for(lo as u64..hi as u64).count() as u64);
        }
    }
}

#[test]
fn twenty_shards_survive_losing_any_parity_count() {
    for (k, m) in [(16, 4), (10, 10), (4, 16), (17, 3)] {
        let case = Case::new(k, m, 128, 3);
        let plain = bytes(9, case.stripe_len() * 2 + 5);
        let enc = case.encode(&plain);
        // Lose the first m shards (all data when m ≤ k), then the last m.
        let (out, reports) = case
            .decode(&enc, |i| i >= m, 0..plain.len() as u64)
            .unwrap();
        assert_eq!(out, plain, "k={k} m={m} first m lost");
        assert!(reports.iter().all(|r| r.reconstructed));
        let (out, _) = case.decode(&enc, |i| i < k, 0..plain.len() as u64).unwrap();
        assert_eq!(out, plain, "k={k} m={m} parity lost");
    }
}

#[test]
fn fewer_than_k_shards_is_a_typed_error() {
    let case = Case::new(4, 2, 64, 5);
    let plain = bytes(1, 1000);
    let enc = case.encode(&plain);
    let err = case.decode(&enc, |i| i >= 3, 0..1000).unwrap_err();
    match err {
        CodecError::NotEnoughChunks {
            usable,
            needed,
            missing,
            ..
        } => {
            assert_eq!((usable, needed), (3, 4));
            assert_eq!(missing.len(), 3);
        }
        other => panic!("expected NotEnoughChunks, got {other:?}"),
    }
}

#[test]
fn a_one_byte_object_costs_one_byte_per_chunk() {
    let case = Case::new(4, 2, 1 << 16, 1);
    let enc = case.encode(b"x");
    let layout = SegmentLayout::new(case.spec.params, 1, enc.header_len as u64);
    assert_eq!(layout.stripes(), 1);
    assert_eq!(layout.chunk_stored_len(0), 1 + 16);
    assert_eq!(enc.shards[0].len(), enc.header_len + 17 + ShardTrailer::LEN);
}

#[test]
fn shards_are_self_describing() {
    let case = Case::new(3, 2, 100, 11);
    let plain = bytes(2, 1234);
    let enc = case.encode(&plain);
    for (i, shard) in enc.shards.iter().enumerate() {
        let header = ShardHeader::parse(shard).unwrap();
        assert_eq!(header.shard.get(), i);
        assert_eq!(header.len(), enc.header_len);
        // Recovery path: master key → data key → identity → trailer → decode.
        let key = header
            .wrapped_key
            .unwrap(&case.master, &header.segment)
            .unwrap();
        let identity = header.open(&key).unwrap();
        assert_eq!(identity, case.identity);
        let trailer =
            ShardTrailer::open(&shard[shard.len() - ShardTrailer::LEN..], &header, &key).unwrap();
        assert_eq!(trailer.len, 1234);
        assert_eq!(header.spec(&identity), case.spec);
    }
}

#[test]
fn ciphertext_never_contains_the_plaintext_or_names() {
    let case = Case::new(2, 1, 4096, 12);
    let plain = b"the quarterly accounts of a small firm, repeated. ".repeat(100);
    let enc = case.encode(&plain);
    for shard in &enc.shards {
        for needle in [&plain[..32], b"photos".as_slice(), b"beach.jpg".as_slice()] {
            assert!(
                !shard.windows(needle.len()).any(|w| w == needle),
                "shard leaks {:?}",
                String::from_utf8_lossy(needle)
            );
        }
    }
}
