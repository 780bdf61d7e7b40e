//! End-to-end tests of the `archipel` binary as an operator and an S3 client meet it: the
//! README's run command driven by the aws cli, access keys made with `archipel key` and
//! enforced by the gateway, provider listing and testing, bucket policies, and snapshots of
//! the human output. Everything talks to 127.0.0.1 only.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod chaos;
mod harness;
mod keys;
mod live;
mod ops;
mod readme;
mod snapshots;
mod stragglers;
