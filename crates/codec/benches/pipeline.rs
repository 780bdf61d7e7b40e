//! Whole encode and decode pipelines, single-threaded (per core), with a memcpy of the same
//! bytes as the in-run baseline.
//!
//! `cargo bench -p archipel-codec --bench pipeline` (add a filter such as `6+3` to narrow).
//! Throughput is plaintext bytes per second.
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

use std::hint::black_box;
use std::time::Duration;

use archipel_codec::{
    CodecParams, DEFAULT_STRIPE_SIZE, DataKey, EncodedStripe, MasterKey, SegmentDecoder,
    SegmentEncoder, SegmentId, SegmentSpec, ShardIdentity, VersionId, WrappedKey, encode_segment,
};
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};

const OBJECT: usize = 32 * 1024 * 1024;

fn plaintext() -> Vec<u8> {
    let mut x = 0x2545_F491_4F6C_DD1Du64;
    (0..OBJECT)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 32) as u8
        })
        .collect()
}

fn spec(k: usize, m: usize, stripe: usize) -> SegmentSpec {
    SegmentSpec {
        version: VersionId([1; 16]),
        segment: SegmentId([2; 16]),
        params: CodecParams::with_stripe_size(k, m, stripe).unwrap(),
    }
}

fn encode_all(spec: SegmentSpec, key: &DataKey, data: &[u8]) -> u64 {
    let mut enc = SegmentEncoder::new(spec, key).unwrap();
    let mut stripe = EncodedStripe::new();
    let mut input = data;
    let mut sum = 0u64;
    while !input.is_empty() {
        if enc.push(&mut input, &mut stripe).unwrap() {
            sum += stripe.chunks()[0][0] as u64;
        }
    }
    enc.finish(&mut stripe).unwrap();
    sum
}

const SHAPES: &[(usize, usize)] = &[(4, 2), (6, 3), (8, 4), (16, 4)];
const STRIPES: &[usize] = &[
    128 * 1024,
    256 * 1024,
    512 * 1024,
    1024 * 1024,
    4 * 1024 * 1024,
];

fn bench(c: &mut Criterion) {
    let data = plaintext();
    let key = DataKey::from_bytes([3; 32]);

    let mut g = c.benchmark_group("baseline");
    g.throughput(Throughput::Bytes(OBJECT as u64));
    g.bench_function("memcpy", |b| {
        let mut dst = vec![0u8; OBJECT];
        b.iter(|| {
            dst.copy_from_slice(black_box(&data));
            black_box(dst[OBJECT - 1])
        })
    });
    g.finish();

    let mut g = c.benchmark_group("encode");
    g.throughput(Throughput::Bytes(OBJECT as u64));
    for &(k, m) in SHAPES {
        for &stripe in STRIPES {
            if stripe != DEFAULT_STRIPE_SIZE && (k, m) != (6, 3) {
                continue; // stripe sizes compared at 6+3 only
            }
            let id = format!("{k}+{m}/{}KiB", stripe / 1024);
            g.bench_function(BenchmarkId::from_parameter(id), |b| {
                b.iter(|| black_box(encode_all(spec(k, m, stripe), &key, &data)))
            });
        }
    }
    g.finish();

    let mut g = c.benchmark_group("decode");
    g.throughput(Throughput::Bytes(OBJECT as u64));
    let master = MasterKey::from_bytes([4; 32]);
    for &(k, m) in SHAPES {
        for &stripe in STRIPES {
            if stripe != DEFAULT_STRIPE_SIZE && (k, m) != (6, 3) {
                continue;
            }
            let sp = spec(k, m, stripe);
            let wrapped = WrappedKey::wrap(&master, &sp.segment, &key, [5; 12]).unwrap();
            let identity = ShardIdentity {
                version: sp.version,
                timestamp_ms: 0,
                part_number: 0,
                bucket: "b".into(),
                key: "k".into(),
            };
            let enc = encode_segment(sp, &key, &wrapped, &identity, &data).unwrap();
            for (label, lost) in [("healthy", 0), ("m-data-lost", m)] {
                let id = format!("{k}+{m}/{}KiB/{label}", stripe / 1024);
                g.bench_function(BenchmarkId::from_parameter(id), |b| {
                    let mut dec =
                        SegmentDecoder::new(sp, &key, enc.len, enc.header_len as u64).unwrap();
                    let layout = *dec.layout();
                    let mut out = Vec::with_capacity(sp.params.stripe_len());
                    b.iter(|| {
                        let mut sum = 0u64;
                        for s in 0..layout.stripes() {
                            let off = layout.chunk_offset(s) as usize;
                            let end = off + layout.chunk_stored_len(s);
                            let chunks: Vec<Option<&[u8]>> = enc
                                .shards
                                .iter()
                                .enumerate()
                                .map(|(i, sh)| (i >= lost).then(|| &sh[off..end]))
                                .collect();
                            out.clear();
                            dec.decode_stripe(s, &chunks, &mut out).unwrap();
                            sum += out[0] as u64;
                        }
                        black_box(sum)
                    })
                });
            }
        }
    }
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3));
    targets = bench
}
criterion_main!(benches);
