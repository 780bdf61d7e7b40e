//! Key file parsing.
#![no_main]

use archipel_codec::MasterKey;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(s) = std::str::from_utf8(data) {
        if let Ok(k) = MasterKey::from_key_file(s) {
            let again = MasterKey::from_key_file(&k.to_key_file()).expect("round trip");
            assert_eq!(again.key_id(), k.key_id());
        }
    }
});
