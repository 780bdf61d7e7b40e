//! Wrapped key decoding and unwrapping.
#![no_main]

use archipel_codec::{MasterKey, SegmentId, WrappedKey};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(w) = WrappedKey::decode(data) {
        assert_eq!(w.encode(), data);
        let _ = w.unwrap(&MasterKey::from_bytes([7; 32]), &SegmentId([1; 16]));
    }
});
