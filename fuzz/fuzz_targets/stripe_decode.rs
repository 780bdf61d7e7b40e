//! Chunk framing and stripe decoding against an oracle: a known object is encoded, the fuzzer
//! drops shards and flips, truncates or extends bytes, and any successful decode must return
//! exactly the original bytes.
#![no_main]

use archipel_codec::{
    CodecParams, DataKey, MasterKey, SegmentId, SegmentSpec, ShardIdentity, VersionId, WrappedKey,
    decode_segment_range, encode_segment,
};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let spec = SegmentSpec {
        version: VersionId([1; 16]),
        segment: SegmentId([2; 16]),
        params: CodecParams::new(3, 2, 16).expect("params"),
    };
    let key = DataKey::from_bytes([3; 32]);
    let master = MasterKey::from_bytes([4; 32]);
    let wrapped = WrappedKey::wrap(&master, &spec.segment, &key, [5; 12]).expect("wrap");
    let identity = ShardIdentity {
        version: spec.version,
        timestamp_ms: 0,
        part_number: 0,
        bucket: "b".into(),
        key: "k".into(),
    };
    let plain: Vec<u8> = (0..131u8).collect();
    let enc = encode_segment(spec, &key, &wrapped, &identity, &plain).expect("encode");
    let mut shards = enc.shards.clone();
    let (present, edits) = match data.split_first() {
        Some((p, rest)) => (*p, rest),
        None => (0xff, &[][..]),
    };
    for e in edits.chunks(4) {
        if e.len() < 4 {
            break;
        }
        let s = e[0] as usize % shards.len();
        let pos = u16::from_le_bytes([e[1], e[2]]) as usize;
        match e[3] {
            0 => {
                let len = shards[s].len();
                shards[s].truncate(pos % (len + 1));
            }
            1 => shards[s].push(e[1]),
            x => {
                let len = shards[s].len();
                if len > 0 {
                    shards[s][pos % len] ^= x;
                }
            }
        }
    }
    let views: Vec<Option<&[u8]>> = shards
        .iter()
        .enumerate()
        .map(|(i, s)| (present >> i & 1 == 1).then_some(s.as_slice()))
        .collect();
    let lo = u64::from(present) % 131;
    if let Ok((out, _)) = decode_segment_range(spec, &key, enc.len, enc.header_len, &views, lo..131)
    {
        assert_eq!(
            out,
            &plain[lo as usize..],
            "decoded bytes differ from the original"
        );
    }
});
