//! Gateway tests with real S3 clients — aws cli, boto3 (and curl for presigned URLs), rclone,
//! restic, s3cmd (also with SigV2), curl — against the gateway serving on 127.0.0.1 over six
//! local-directory providers.
//! A missing client prints `SKIP` locally and fails under `CI=true`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod harness;

mod awscli;
mod boto3;
mod conditional;
mod limits;
mod rclone;
mod restic;
mod s3cmd;
mod sigv2;
mod unavailable;
