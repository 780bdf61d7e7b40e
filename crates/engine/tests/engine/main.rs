//! Engine integration tests: real directory providers (wrapped in fault layers) and S3
//! providers on moto_server, the embedded metadata store, and the engine's promises — every
//! object readable with any `m` providers gone, corruption detected and routed around,
//! interrupted writes invisible and reclaimed, slow providers hedged.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod harness;

mod access;

mod crash;
mod drain;
mod durability;
mod gc;
mod hedging;
mod integrity;
mod multipart;
mod objects;
mod repair;
mod s3;
