//! Frozen fixtures: bytes written by format version 1, committed under `tests/fixtures/v1/`.
//! These tests must pass forever: a future reader that cannot decode them has broken every
//! vault in existence. They also re-encode the same inputs and compare, so an accidental
//! format change fails here first. Regenerate only for a new format version, into a new
//! directory, with `cargo run -p archipel-codec --example write_fixtures -- <dir>`.

use std::path::PathBuf;

use archipel_codec::{
    Manifest, MasterKey, SegmentDecoder, ShardHeader, ShardTrailer, VaultHeader, WrappedKey,
};

#[path = "../../examples/write_fixtures/inputs.rs"]
mod fixture_inputs;

fn read(name: &str) -> Vec<u8> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/v1")
        .join(name);
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

#[test]
fn version_1_fixtures_decode_forever() {
    let inputs = fixture_inputs::inputs();
    let master =
        MasterKey::from_key_file(std::str::from_utf8(&read("master.key")).unwrap()).unwrap();

    let vault = VaultHeader::decode(&read("vault_header.bin")).unwrap();
    let master = vault.check_key(master).unwrap();
    let by_passphrase = VaultHeader::decode(&read("vault_header_passphrase.bin")).unwrap();
    by_passphrase
        .open_with_passphrase(b"fixture passphrase")
        .unwrap();

    let wrapped = WrappedKey::decode(&read("wrapped_key.bin")).unwrap();
    let data_key = wrapped.unwrap(&master, &inputs.spec.segment).unwrap();

    let manifest = Manifest::decode(&read("manifest.bin"), &master.manifest_key()).unwrap();
    assert_eq!(manifest, inputs.manifest);

    let seg = &manifest.segments[0];
    let mut shards = Vec::new();
    for i in 0..seg.params.n() {
        let shard = read(&format!("shard_{i}.bin"));
        let header = ShardHeader::parse(&shard).unwrap();
        assert_eq!(header.open(&data_key).unwrap(), inputs.identity);
        let trailer = ShardTrailer::open(
            &shard[shard.len() - ShardTrailer::LEN..],
            &header,
            &data_key,
        )
        .unwrap();
        assert_eq!(trailer.len, seg.len);
        shards.push(shard);
    }
    // Decode from the last k shards only (parity included).
    let mut dec =
        SegmentDecoder::new(inputs.spec, &data_key, seg.len, u64::from(seg.header_len)).unwrap();
    let layout = *dec.layout();
    let mut plain = Vec::new();
    for s in 0..layout.stripes() {
        let off = layout.chunk_offset(s) as usize;
        let end = off + layout.chunk_stored_len(s);
        let chunks: Vec<Option<&[u8]>> = shards
            .iter()
            .enumerate()
            .map(|(i, sh)| (i >= seg.params.m()).then(|| &sh[off..end]))
            .collect();
        dec.decode_stripe(s, &chunks, &mut plain).unwrap();
    }
    assert_eq!(plain, inputs.plaintext);
}

#[test]
fn version_1_encoding_is_unchanged() {
    let inputs = fixture_inputs::inputs();
    for (name, bytes) in fixture_inputs::encode_all(&inputs) {
        assert!(
            read(&name) == bytes,
            "{name} no longer encodes to the frozen bytes: the format changed"
        );
    }
}
