//! Leaving a provider live (`e2e/drain.rs`), auditing one (`e2e/audit.rs`) and recovering a
//! vault from its providers (`e2e/recover.rs`), in a test
//! binary of its own: the drain's 10,000-object load would otherwise share the two cores with
//! the e2e tests that time puts.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[allow(dead_code)]
#[path = "e2e/harness.rs"]
mod harness;

#[path = "e2e/drain.rs"]
mod drain;

#[path = "e2e/audit.rs"]
mod audit;

#[path = "e2e/recover.rs"]
mod recover;
