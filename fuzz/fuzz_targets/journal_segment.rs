//! Journal segment and snapshot seal decoding (the plaintext of a segment, snapshot part or
//! seal read back by `archipel recover`, after its AEAD tags verified — fuzzed anyway: a
//! decoder of stored bytes never panics).
#![no_main]

use archipel_meta::SnapshotSeal;
use archipel_meta::journal::Segment;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // Whatever decodes re-encodes to bytes that decode to the same segment (or seal).
    if let Ok(s) = Segment::decode(data) {
        let again = Segment::decode(&s.encode()).expect("round trip");
        assert_eq!(again, s);
    }
    if let Ok(s) = SnapshotSeal::decode(data) {
        assert_eq!(SnapshotSeal::decode(&s.encode()).expect("round trip"), s);
        assert_eq!(s.encode(), data);
    }
});
