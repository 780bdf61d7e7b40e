//! Shard header and trailer parsing and opening from arbitrary bytes.
#![no_main]

use archipel_codec::{DataKey, MasterKey, ShardHeader, ShardTrailer};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let master = MasterKey::from_bytes([7; 32]);
    let _ = ShardHeader::peek_len(data);
    if let Ok(h) = ShardHeader::parse(data) {
        let key = h
            .wrapped_key
            .unwrap(&master, &h.segment)
            .unwrap_or_else(|_| DataKey::from_bytes([9; 32]));
        let _ = h.open(&key);
        if data.len() >= ShardTrailer::LEN {
            let _ = ShardTrailer::open(&data[data.len() - ShardTrailer::LEN..], &h, &key);
        }
    }
});
