//! Manifest decoding: raw bytes (magic, version, key id, MAC checks) and, so the field parser
//! is reached, the same bytes re-signed with a valid MAC.
#![no_main]

use archipel_codec::{Manifest, MasterKey};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let key = MasterKey::from_bytes([7; 32]).manifest_key();
    let _ = Manifest::decode(data, &key);
    // Re-sign: fixed valid prefix with the key id, fuzz bytes as the body.
    let mut bytes = b"ARCM\x01\x00\x00\x00".to_vec();
    bytes.extend_from_slice(key.key_id().as_bytes());
    bytes.extend_from_slice(&(data.len() as u32).to_le_bytes());
    bytes.extend_from_slice(data);
    let mac = key.authenticate(&bytes);
    bytes.extend_from_slice(&mac);
    if let Ok(m) = Manifest::decode(&bytes, &key) {
        // Whatever decodes must re-encode and decode to the same value.
        let again = m.encode(&key).expect("a decoded manifest re-encodes");
        assert_eq!(Manifest::decode(&again, &key).expect("round trip"), m);
    }
});
