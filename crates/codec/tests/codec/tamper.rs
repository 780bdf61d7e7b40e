//! Tamper evidence: every flipped bit, swapped chunk, truncation or wrong key is detected and
//! never returned as data.

use super::{Case, bytes};
use archipel_codec::{
    CodecError, DataKey, KdfParams, Manifest, ManifestSegment, MasterKey, SegmentDecoder,
    SegmentLayout, ShardHeader, ShardIdx, ShardPlacement, ShardTrailer, VaultHeader, WrappedKey,
};

/// Reads one shard the way recovery and scrub do: header, every chunk, trailer. Ok only if
/// every byte verified.
fn verify_shard(case: &Case, shard: &[u8], len: u64) -> Result<(), CodecError> {
    let header = ShardHeader::parse(shard)?;
    let key = header.wrapped_key.unwrap(&case.master, &header.segment)?;
    let identity = header.open(&key)?;
    let tail = shard
        .len()
        .checked_sub(ShardTrailer::LEN)
        .ok_or_else(|| CodecError::InvalidInput("short".into()))?;
    let trailer = ShardTrailer::open(&shard[tail..], &header, &key)?;
    if trailer.len != len {
        return Err(CodecError::InvalidInput("length changed".into()));
    }
    let mut dec = SegmentDecoder::new(
        header.spec(&identity),
        &key,
        trailer.len,
        header.len() as u64,
    )?;
    let layout: SegmentLayout = *dec.layout();
    if layout.shard_len() != shard.len() as u64 {
        return Err(CodecError::InvalidInput("shard length".into()));
    }
    for s in 0..layout.stripes() {
        let off = layout.chunk_offset(s) as usize;
        let chunk = &shard[off..off + layout.chunk_stored_len(s)];
        if !dec.verify_chunk(s, header.shard, chunk) {
            return Err(CodecError::Integrity {
                what: format!("chunk {s}"),
            });
        }
    }
    Ok(())
}

fn flip(bytes: &[u8], bit: usize) -> Vec<u8> {
    let mut b = bytes.to_vec();
    b[bit / 8] ^= 1 << (bit % 8);
    b
}

#[test]
fn every_single_bit_flip_in_a_shard_is_detected() {
    let case = Case::new(2, 1, 32, 21);
    let plain = bytes(3, 70); // one full stripe of 64 bytes, one of 6
    let enc = case.encode(&plain);
    for shard_idx in 0..3 {
        let original = &enc.shards[shard_idx];
        verify_shard(&case, original, 70).unwrap();
        let chunks = enc.header_len..original.len() - ShardTrailer::LEN;
        for bit in 0..original.len() * 8 {
            let bad = flip(original, bit);
            assert!(
                verify_shard(&case, &bad, 70).is_err(),
                "flip of bit {bit} in shard {shard_idx} went unnoticed"
            );
            if chunks.contains(&(bit / 8)) {
                // A GET over exactly k shards including the bad one fails with a typed error…
                let mut shards = enc.shards.clone();
                shards[shard_idx] = bad;
                let other = (shard_idx + 1) % 3;
                let tampered = archipel_codec::EncodedSegment {
                    shards,
                    ..enc.clone()
                };
                let err = case
                    .decode(&tampered, |i| i == shard_idx || i == other, 0..70)
                    .unwrap_err();
                assert!(
                    matches!(err, CodecError::NotEnoughChunks { ref corrupt, .. } if corrupt == &[ShardIdx(shard_idx as u8)]),
                    "{err:?}"
                );
                // …and with all shards returns the right bytes and names the bad chunk.
                let (out, reports) = case.decode(&tampered, |_| true, 0..70).unwrap();
                assert_eq!(out, plain);
                if shard_idx < 2 {
                    assert!(
                        reports
                            .iter()
                            .any(|r| r.corrupt == [ShardIdx(shard_idx as u8)])
                    );
                }
            }
        }
    }
}

#[test]
fn swapped_reordered_and_truncated_chunks_are_detected() {
    let case = Case::new(2, 1, 32, 22);
    let plain = bytes(4, 64 * 3 + 10);
    let enc = case.encode(&plain);
    let c = 32 + 16;
    let h = enc.header_len;
    // Swap stripes 0 and 1 inside shard 0.
    let mut shards = enc.shards.clone();
    let (a, b) = (
        shards[0][h..h + c].to_vec(),
        shards[0][h + c..h + 2 * c].to_vec(),
    );
    shards[0][h..h + c].copy_from_slice(&b);
    shards[0][h + c..h + 2 * c].copy_from_slice(&a);
    let swapped = archipel_codec::EncodedSegment {
        shards,
        ..enc.clone()
    };
    assert!(
        case.decode(&swapped, |i| i < 2, 0..plain.len() as u64)
            .is_err()
    );
    // Put shard 1 where shard 0 belongs.
    let mut shards = enc.shards.clone();
    shards.swap(0, 1);
    let moved = archipel_codec::EncodedSegment {
        shards,
        ..enc.clone()
    };
    assert!(
        case.decode(&moved, |i| i < 2, 0..plain.len() as u64)
            .is_err()
    );
    // Claim the segment ends one stripe early: the "last stripe" flag does not verify.
    let truncated = archipel_codec::EncodedSegment {
        len: 64 * 3,
        ..enc.clone()
    };
    assert!(case.decode(&truncated, |i| i < 2, 0..64 * 3).is_err());
    // A chunk from another segment (same key, same position) does not verify either.
    let other = Case::new(2, 1, 32, 22);
    let mut other_spec = other.spec;
    other_spec.segment.0[0] ^= 1;
    let foreign = archipel_codec::encode_segment(
        other_spec,
        &other.key,
        &other.wrapped,
        &other.identity,
        &plain,
    )
    .unwrap();
    let mut shards = enc.shards.clone();
    shards[0] = foreign.shards[0].clone();
    let mixed = archipel_codec::EncodedSegment {
        shards,
        ..enc.clone()
    };
    assert!(
        case.decode(&mixed, |i| i < 2, 0..plain.len() as u64)
            .is_err()
    );
}

#[test]
fn a_wrong_key_fails_cleanly_everywhere() {
    let case = Case::new(3, 2, 64, 23);
    let plain = bytes(5, 500);
    let enc = case.encode(&plain);
    // Wrong data key: every chunk is reported corrupt, no data comes back.
    let wrong = DataKey::from_bytes([0xEE; 32]);
    let shards: Vec<Option<&[u8]>> = enc.shards.iter().map(|s| Some(s.as_slice())).collect();
    let err = archipel_codec::decode_segment_range(
        case.spec,
        &wrong,
        enc.len,
        enc.header_len,
        &shards,
        0..500,
    )
    .unwrap_err();
    assert!(
        matches!(err, CodecError::NotEnoughChunks { usable: 0, ref corrupt, .. } if corrupt.len() == 5),
        "{err:?}"
    );
    // Wrong master key: the wrapped key names the key it needs.
    let other = MasterKey::from_bytes([0x42; 32]);
    let err = case.wrapped.unwrap(&other, &case.spec.segment).unwrap_err();
    assert!(
        matches!(err, CodecError::KeyMismatch { expected, found } if expected == case.master.key_id() && found == other.key_id())
    );
    // Wrong segment: the wrapped key is bound to its segment.
    let mut seg = case.spec.segment;
    seg.0[15] ^= 0x80;
    assert!(matches!(
        case.wrapped.unwrap(&case.master, &seg),
        Err(CodecError::Integrity { .. })
    ));
    // Wrong passphrase on a vault header.
    let (header, _) = VaultHeader::create_with_passphrase(
        [1; 16],
        b"correct horse",
        [2; 16],
        KdfParams::INSECURE_FAST_FOR_TESTS,
    )
    .unwrap();
    assert!(matches!(
        header.open_with_passphrase(b"battery staple"),
        Err(CodecError::WrongKey)
    ));
    assert!(header.open_with_passphrase(b"correct horse").is_ok());
}

pub(crate) fn sample_manifest(case: &Case) -> Manifest {
    Manifest {
        version: case.spec.version,
        timestamp_ms: 1_790_000_000_123,
        bucket: "photos".into(),
        key: "2026/holiday/beach.jpg".into(),
        size: 1234,
        etag: "\"0123456789abcdef0123456789abcdef\"".into(),
        content_type: Some("image/jpeg".into()),
        headers: vec![("cache-control".into(), "max-age=60".into())],
        user_metadata: vec![("camera".into(), "fieldcam 2".into())],
        segments: vec![ManifestSegment {
            segment: case.spec.segment,
            part_number: 0,
            params: case.spec.params,
            len: 1234,
            header_len: 171,
            wrapped_key: case.wrapped.clone(),
            etag: String::new(),
            placement: (0..case.spec.params.n() as u8)
                .map(|i| ShardPlacement {
                    shard: ShardIdx(i),
                    provider: format!("provider-{i}"),
                    blob: format!("{:032x}", u128::from(i) * 0x1234_5678_9abc_def1),
                })
                .collect(),
        }],
    }
}

#[test]
fn every_single_bit_flip_in_a_manifest_is_detected() {
    let case = Case::new(4, 2, 256, 24);
    let key = case.master.manifest_key();
    let bytes = sample_manifest(&case).encode(&key).unwrap();
    assert_eq!(
        Manifest::decode(&bytes, &key).unwrap(),
        sample_manifest(&case)
    );
    for bit in 0..bytes.len() * 8 {
        assert!(
            Manifest::decode(&flip(&bytes, bit), &key).is_err(),
            "bit {bit}"
        );
    }
    for cut in 0..bytes.len() {
        assert!(
            Manifest::decode(&bytes[..cut], &key).is_err(),
            "truncated to {cut}"
        );
    }
}

#[test]
fn every_single_bit_flip_in_a_wrapped_key_is_detected() {
    let case = Case::new(4, 2, 256, 25);
    let bytes = case.wrapped.encode();
    assert_eq!(bytes.len(), WrappedKey::LEN);
    for bit in 0..bytes.len() * 8 {
        let res = WrappedKey::decode(&flip(&bytes, bit))
            .and_then(|w| w.unwrap(&case.master, &case.spec.segment));
        assert!(res.is_err(), "bit {bit}");
    }
}

#[test]
fn every_single_bit_flip_in_a_vault_header_is_detected() {
    let key = MasterKey::from_bytes([9; 32]);
    let header = VaultHeader::create_with_key([3; 16], &key);
    let bytes = header.encode();
    assert_eq!(VaultHeader::decode(&bytes).unwrap(), header);
    for bit in 0..bytes.len() * 8 {
        let res = VaultHeader::decode(&flip(&bytes, bit)).and_then(|h| h.check_key(key.clone()));
        assert!(res.is_err(), "bit {bit}");
    }
}

#[test]
fn sealed_credential_secrets_open_only_for_their_id_and_key() {
    let master = archipel_codec::MasterKey::from_bytes([4; 32]);
    let sealed = master
        .seal_secret("AKIDEXAMPLE", b"wJalrXUtnFEMI/K7MDENG", [9; 12])
        .unwrap();
    assert_eq!(
        master.open_secret("AKIDEXAMPLE", &sealed).unwrap(),
        b"wJalrXUtnFEMI/K7MDENG"
    );
    assert!(
        !sealed.windows(5).any(|w| w == b"wJalr"),
        "the secret is not in clear"
    );
    assert!(master.open_secret("AKIDOTHER", &sealed).is_err());
    let other = archipel_codec::MasterKey::from_bytes([5; 32]);
    assert!(other.open_secret("AKIDEXAMPLE", &sealed).is_err());
    for i in 0..sealed.len() {
        for bit in 0..8 {
            let mut bad = sealed.clone();
            bad[i] ^= 1 << bit;
            assert!(
                master.open_secret("AKIDEXAMPLE", &bad).is_err(),
                "byte {i} bit {bit}"
            );
        }
    }
    assert!(master.open_secret("AKIDEXAMPLE", &sealed[..10]).is_err());
}
