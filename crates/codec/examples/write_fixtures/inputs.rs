//! The fixed inputs behind the frozen format fixtures, shared by the `write_fixtures` example
//! and the fixture tests. Changing anything here changes the fixtures: don't.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use archipel_codec::{
    CodecParams, DataKey, KdfParams, Manifest, ManifestSegment, MasterKey, SegmentId, SegmentSpec,
    ShardIdentity, ShardIdx, ShardPlacement, VaultHeader, VersionId, WrappedKey, encode_segment,
};

pub(crate) struct Inputs {
    pub(crate) master: MasterKey,
    pub(crate) data_key: DataKey,
    pub(crate) spec: SegmentSpec,
    pub(crate) identity: ShardIdentity,
    pub(crate) plaintext: Vec<u8>,
    pub(crate) wrapped: WrappedKey,
    pub(crate) manifest: Manifest,
}

pub(crate) fn inputs() -> Inputs {
    let master = MasterKey::from_bytes(*b"archipel fixture master key v1!!");
    let data_key = DataKey::from_bytes(*b"archipel fixture data key v1 !!!");
    let spec = SegmentSpec {
        version: VersionId(*b"version-0000001!"),
        segment: SegmentId(*b"segment-0000001!"),
        params: CodecParams::new(4, 2, 64).unwrap(),
    };
    let identity = ShardIdentity {
        version: spec.version,
        timestamp_ms: 1_795_000_000_000,
        part_number: 0,
        bucket: "fixtures".into(),
        key: "formats/v1/object.txt".into(),
    };
    let plaintext: Vec<u8> = (0..600u32).map(|i| (i * 7 % 251) as u8).collect();
    let wrapped = WrappedKey::wrap(&master, &spec.segment, &data_key, *b"wrap-nonce-1").unwrap();
    let enc = encode_segment(spec, &data_key, &wrapped, &identity, &plaintext).unwrap();
    let manifest = Manifest {
        version: spec.version,
        timestamp_ms: identity.timestamp_ms,
        bucket: identity.bucket.clone(),
        key: identity.key.clone(),
        size: plaintext.len() as u64,
        etag: "\"9b4e2d6f1c0a8e7d5b3a19f0c2e4d6b8\"".into(),
        content_type: Some("text/plain".into()),
        headers: vec![("content-encoding".into(), "identity".into())],
        user_metadata: vec![("origin".into(), "fixture".into())],
        segments: vec![ManifestSegment {
            segment: spec.segment,
            part_number: 0,
            params: spec.params,
            len: plaintext.len() as u64,
            header_len: enc.header_len as u32,
            wrapped_key: wrapped.clone(),
            etag: String::new(),
            placement: (0..6u8)
                .map(|i| ShardPlacement {
                    shard: ShardIdx(i),
                    provider: format!("disk-{i}"),
                    blob: format!("blob-{i:02}-0123456789abcdef"),
                })
                .collect(),
        }],
    };
    Inputs {
        master,
        data_key,
        spec,
        identity,
        plaintext,
        wrapped,
        manifest,
    }
}

/// Every fixture file: name and bytes.
pub(crate) fn encode_all(i: &Inputs) -> Vec<(String, Vec<u8>)> {
    let mut out = vec![
        (
            "master.key".to_string(),
            i.master.to_key_file().into_bytes(),
        ),
        (
            "vault_header.bin".to_string(),
            VaultHeader::create_with_key(*b"vault-fixture-01", &i.master).encode(),
        ),
        (
            "vault_header_passphrase.bin".to_string(),
            VaultHeader::create_with_passphrase(
                *b"vault-fixture-02",
                b"fixture passphrase",
                *b"fixture-salt-v1!",
                KdfParams::INSECURE_FAST_FOR_TESTS,
            )
            .unwrap()
            .0
            .encode(),
        ),
        ("wrapped_key.bin".to_string(), i.wrapped.encode()),
        (
            "manifest.bin".to_string(),
            i.manifest.encode(&i.master.manifest_key()).unwrap(),
        ),
    ];
    let enc = encode_segment(i.spec, &i.data_key, &i.wrapped, &i.identity, &i.plaintext).unwrap();
    for (n, shard) in enc.shards.into_iter().enumerate() {
        out.push((format!("shard_{n}.bin"), shard));
    }
    out
}
