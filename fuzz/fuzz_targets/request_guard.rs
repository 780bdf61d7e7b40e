//! The checks every S3 request passes before s3s sees it (`crates/s3/src/guard.rs`): the
//! signing scheme and presigned lifetime from the head, the SigV2 string to sign
//! (`crates/s3/src/sigv2.rs`), unsigned `x-amz-*` headers, and the
//! form fields of a browser POST up to its file part. Input: `METHOD URI`, header lines, a NUL
//! byte, the form body.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    archipel_s3::fuzz_guard(data);
});
