//! The admin API's parsing of untrusted input: the route of `METHOD PATH` and the JSON body of
//! the operation it reaches (providers, keys, grants, jobs, bucket policies). Input: the
//! method, a newline, the path, a newline, the body.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut parts = data.splitn(3, |b| *b == b'\n');
    let (Some(method), Some(path), Some(body)) = (parts.next(), parts.next(), parts.next()) else {
        return;
    };
    let Ok(path) = std::str::from_utf8(path) else {
        return;
    };
    archipel_s3::admin_api::fuzz_request(method, path, body);
});
