//! Vault header decoding (Argon2id is not run: its costs are bounded by the decoder, but even
//! bounded costs are too slow for fuzzing).
#![no_main]

use archipel_codec::{MasterKey, VaultHeader};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(h) = VaultHeader::decode(data) {
        assert_eq!(VaultHeader::decode(&h.encode()).expect("round trip"), h);
        let _ = h.check_key(MasterKey::from_bytes([7; 32]));
    }
});
