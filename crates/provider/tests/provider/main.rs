//! Provider tests: the conformance suite on every implementation and layer stack, against
//! real directories and a real S3 server (moto) on 127.0.0.1, and the fault-injection tests.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod conformance;
mod faults;
mod packs;
mod temp;
