//! Key share parsing (lines typed back by people) and combining what parses.
#![no_main]

use archipel_codec::{KeyShare, keyshare};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    // Up to three shares, one per line: each parses or errors; what parses round-trips and
    // combines (or errors) without panicking.
    let shares: Vec<KeyShare> = text
        .lines()
        .take(3)
        .filter_map(|l| KeyShare::parse(l).ok())
        .collect();
    for s in &shares {
        let again = KeyShare::parse(&s.to_text().expect("encodes")).expect("round trip");
        assert_eq!(&again, s);
    }
    let _ = keyshare::combine(&shares);
});
