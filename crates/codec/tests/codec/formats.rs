//! Format rules: newer minor versions are read, newer major versions are refused clearly, keys
//! round-trip through their files and headers.

use super::Case;
use super::tamper::sample_manifest;
use archipel_codec::{
    CodecError, Format, KdfParams, Manifest, MasterKey, ShardHeader, VaultHeader,
};

/// Rebuilds a manifest with `extra` appended to its body and `minor` as minor version, signed.
fn with_extra_field(bytes: &[u8], minor: u8, extra: &[u8], case: &Case) -> Vec<u8> {
    let key = case.master.manifest_key();
    let body_len = u32::from_le_bytes(bytes[24..28].try_into().unwrap()) as usize;
    let mut out = bytes[..28 + body_len].to_vec();
    out[5] = minor;
    out.extend_from_slice(extra);
    let new_len = (body_len + extra.len()) as u32;
    out[24..28].copy_from_slice(&new_len.to_le_bytes());
    let mac = key.authenticate(&out);
    out.extend_from_slice(&mac);
    out
}

#[test]
fn a_newer_minor_manifest_with_unknown_fields_is_read() {
    let case = Case::new(4, 2, 256, 31);
    let key = case.master.manifest_key();
    let bytes = sample_manifest(&case).encode(&key).unwrap();
    // Field tag 999, 5 bytes: unknown to this reader.
    let mut extra = vec![0xE7, 0x03, 5, 0, 0, 0];
    extra.extend_from_slice(b"hello");
    let newer = with_extra_field(&bytes, 7, &extra, &case);
    assert_eq!(
        Manifest::decode(&newer, &key).unwrap(),
        sample_manifest(&case)
    );
}

#[test]
fn a_newer_major_version_is_refused_with_a_clear_error() {
    let case = Case::new(4, 2, 256, 32);
    let key = case.master.manifest_key();
    let mut bytes = sample_manifest(&case).encode(&key).unwrap();
    bytes[4] = 2;
    let err = Manifest::decode(&bytes, &key).unwrap_err();
    assert!(matches!(
        err,
        CodecError::UnsupportedVersion {
            format: Format::Manifest,
            found_major: 2,
            supported_major: 1,
            ..
        }
    ));
    assert!(err.to_string().contains("upgrade Archipel"), "{err}");

    let enc = case.encode(b"abc");
    let mut shard = enc.shards[0].clone();
    shard[4] = 9;
    assert!(matches!(
        ShardHeader::parse(&shard),
        Err(CodecError::UnsupportedVersion { found_major: 9, .. })
    ));

    let mut vault = VaultHeader::create_with_key([0; 16], &case.master).encode();
    vault[4] = 2;
    assert!(matches!(
        VaultHeader::decode(&vault),
        Err(CodecError::UnsupportedVersion { .. })
    ));
}

#[test]
fn a_manifest_signed_under_another_key_names_both_keys() {
    let case = Case::new(4, 2, 256, 33);
    let bytes = sample_manifest(&case)
        .encode(&case.master.manifest_key())
        .unwrap();
    assert_eq!(Manifest::peek_key_id(&bytes).unwrap(), case.master.key_id());
    let other = MasterKey::from_bytes([0x77; 32]).manifest_key();
    assert!(matches!(
        Manifest::decode(&bytes, &other),
        Err(CodecError::KeyMismatch { .. })
    ));
}

#[test]
fn a_manifest_whose_size_disagrees_with_its_segments_is_refused() {
    let case = Case::new(4, 2, 256, 34);
    let mut m = sample_manifest(&case);
    m.size += 1;
    assert!(matches!(
        m.encode(&case.master.manifest_key()),
        Err(CodecError::InvalidInput(_))
    ));
}

#[test]
fn key_files_round_trip_and_reject_garbage() {
    let key = MasterKey::from_bytes([0xAB; 32]);
    let file = key.to_key_file();
    assert!(file.starts_with("# Archipel vault master key"));
    assert_eq!(
        MasterKey::from_key_file(&file).unwrap().key_id(),
        key.key_id()
    );
    for bad in ["", "# only a comment\n", "zz", "abcd", &"a".repeat(66)] {
        let err = MasterKey::from_key_file(bad).unwrap_err();
        assert!(
            matches!(
                err,
                CodecError::Malformed {
                    format: Format::KeyFile,
                    ..
                }
            ),
            "{bad:?}: {err}"
        );
    }
}

#[test]
fn a_passphrase_vault_reopens_with_the_same_key() {
    let params = KdfParams::INSECURE_FAST_FOR_TESTS;
    let (header, key) =
        VaultHeader::create_with_passphrase([5; 16], b"s3cret", [6; 16], params).unwrap();
    let decoded = VaultHeader::decode(&header.encode()).unwrap();
    assert_eq!(decoded, header);
    assert_eq!(
        decoded.open_with_passphrase(b"s3cret").unwrap().key_id(),
        key.key_id()
    );
}

#[test]
fn absurd_kdf_parameters_in_a_header_are_refused() {
    let key = MasterKey::from_bytes([1; 32]);
    let mut bytes = VaultHeader::create_with_key([0; 16], &key).encode();
    bytes[24] = 1; // claim a passphrase vault with m_cost 0
    let crc = crc32c(&bytes[..72]);
    bytes[72..].copy_from_slice(&crc.to_le_bytes());
    let err = VaultHeader::decode(&bytes).unwrap_err();
    assert!(matches!(err, CodecError::Kdf(_)), "{err}");
}

fn crc32c(data: &[u8]) -> u32 {
    // Bitwise CRC-32C (Castagnoli, reflected 0x82F63B78), independent of the crate under test.
    let mut crc = !0u32;
    for &b in data {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = if crc & 1 == 1 {
                (crc >> 1) ^ 0x82F6_3B78
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

#[test]
fn rotating_the_master_key_rewraps_without_touching_shards() {
    let case = Case::new(3, 1, 64, 35);
    let plain = super::bytes(8, 300);
    let enc = case.encode(&plain);
    let new_master = MasterKey::from_bytes([0x5A; 32]);
    let rewrapped = case
        .wrapped
        .rewrap(&case.master, &new_master, &case.spec.segment, [9; 12])
        .unwrap();
    assert_eq!(rewrapped.key_id(), new_master.key_id());
    assert!(matches!(
        rewrapped.unwrap(&case.master, &case.spec.segment),
        Err(CodecError::KeyMismatch { .. })
    ));
    // The same shards decode with the data key recovered through the new master key.
    let key = rewrapped.unwrap(&new_master, &case.spec.segment).unwrap();
    let shards: Vec<Option<&[u8]>> = enc.shards.iter().map(|s| Some(s.as_slice())).collect();
    let (out, _) = archipel_codec::decode_segment_range(
        case.spec,
        &key,
        enc.len,
        enc.header_len,
        &shards,
        0..300,
    )
    .unwrap();
    assert_eq!(out, plain);
}
