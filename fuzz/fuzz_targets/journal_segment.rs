//! Journal segment decoding (the plaintext of a segment read back by `archipel recover`,
//! after its AEAD tags verified — fuzzed anyway: a decoder of stored bytes never panics).
#![no_main]

use archipel_meta::journal::Segment;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // Whatever decodes re-encodes to bytes that decode to the same segment.
    if let Ok(s) = Segment::decode(data) {
        let again = Segment::decode(&s.encode()).expect("round trip");
        assert_eq!(again, s);
    }
});
