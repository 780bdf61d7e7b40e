//! Layers: providers that wrap another provider and implement every method, so any stack of
//! them is itself a provider and runs the same conformance suite.
//!
//! * [`Retry`]: retries retryable errors with exponential backoff and full jitter.
//! * [`Timeout`]: bounds every request, and the gaps between chunks of a read.
//! * [`Limit`]: caps concurrent requests (a read holds its slot until its stream is dropped).
//! * [`Metrics`]: counts requests, errors, bytes and latency per operation.
//! * [`FaultLayer`]: injects failures for tests (a share of calls fail, latency, hangs, corrupt
//!   reads, failures mid-stream, going dark and coming back).

mod fault;
mod limit;
mod metrics;
mod retry;
mod timeout;

pub use fault::{Fault, FaultLayer};
pub use limit::Limit;
pub use metrics::{LATENCY_BUCKETS, Metrics, MetricsSnapshot, OpStats, bucket_upper_us};
pub use retry::{Retry, RetryPolicy};
pub use timeout::Timeout;
