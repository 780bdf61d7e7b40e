//! Per-provider counters: requests, errors (by kind), bytes written and read, and latency per
//! operation. Cheap atomics; [`Metrics::snapshot`] reads them for `/metrics` and the engine's
//! health scoring.

use std::ops::Range;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Instant;

use async_trait::async_trait;
use futures::StreamExt;

use crate::error::Result;
use crate::name::BlobName;
use crate::provider::{BlobMeta, ByteStream, Capabilities, ListPage, Provider, PutBody, PutMode};

const OPS: [&str; 5] = ["put", "get", "head", "delete", "list"];

/// Latency histogram buckets: bucket `i` counts latencies below `2^(i + 6)` µs (64 µs … 2^29 µs
/// ≈ 9 min); the last bucket also takes everything slower.
pub const LATENCY_BUCKETS: usize = 24;

/// Upper bound (µs) of latency bucket `i`.
pub fn bucket_upper_us(i: usize) -> u64 {
    1u64 << (i.min(LATENCY_BUCKETS - 1) + 6)
}

fn bucket_of(us: u64) -> usize {
    // Smallest i with us < 2^(i+6).
    let bits = 64 - us.leading_zeros() as usize; // us < 2^bits
    bits.saturating_sub(6).min(LATENCY_BUCKETS - 1)
}

#[derive(Debug, Default)]
struct OpCounters {
    requests: AtomicU64,
    errors: AtomicU64,
    latency_us_sum: AtomicU64,
    latency_us_max: AtomicU64,
    buckets: [AtomicU64; LATENCY_BUCKETS],
}

#[derive(Debug, Default)]
struct Counters {
    ops: [OpCounters; 5],
    bytes_written: AtomicU64,
    bytes_read: AtomicU64,
}

/// Counters of one operation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpStats {
    /// `put`, `get`, `head`, `delete` or `list`.
    pub op: &'static str,
    /// Requests started.
    pub requests: u64,
    /// Requests that failed.
    pub errors: u64,
    /// Sum of latencies (to the answer; for reads, to the stream), microseconds.
    pub latency_us_sum: u64,
    /// Largest latency seen, microseconds.
    pub latency_us_max: u64,
    /// Latency histogram (see [`LATENCY_BUCKETS`]).
    pub latency_buckets: [u64; LATENCY_BUCKETS],
}

impl OpStats {
    /// An upper bound of the `q`-quantile latency (0 < q ≤ 1) in microseconds: the upper edge
    /// of the histogram bucket it falls in (so within 2× of the true value), or 0 without data.
    pub fn latency_quantile_us(&self, q: f64) -> u64 {
        let total: u64 = self.latency_buckets.iter().sum();
        if total == 0 {
            return 0;
        }
        let rank = ((q.clamp(0.0, 1.0) * total as f64).ceil() as u64).max(1);
        let mut seen = 0;
        for (i, &c) in self.latency_buckets.iter().enumerate() {
            seen += c;
            if seen >= rank {
                return bucket_upper_us(i);
            }
        }
        bucket_upper_us(LATENCY_BUCKETS - 1)
    }
}

/// A point-in-time copy of one provider's counters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MetricsSnapshot {
    /// The provider's name.
    pub provider: String,
    /// Per operation.
    pub ops: Vec<OpStats>,
    /// Bytes accepted by successful puts.
    pub bytes_written: u64,
    /// Bytes delivered by reads.
    pub bytes_read: u64,
}

/// Counts what passes through to the wrapped provider.
#[derive(Debug)]
pub struct Metrics {
    inner: Arc<dyn Provider>,
    c: Arc<Counters>,
}

impl Metrics {
    /// Wraps `inner`.
    pub fn new(inner: Arc<dyn Provider>) -> Self {
        Metrics {
            inner,
            c: Arc::new(Counters::default()),
        }
    }

    /// Reads the counters.
    pub fn snapshot(&self) -> MetricsSnapshot {
        MetricsSnapshot {
            provider: self.inner.name().to_string(),
            ops: OPS
                .iter()
                .zip(&self.c.ops)
                .map(|(op, c)| OpStats {
                    op,
                    requests: c.requests.load(Relaxed),
                    errors: c.errors.load(Relaxed),
                    latency_us_sum: c.latency_us_sum.load(Relaxed),
                    latency_us_max: c.latency_us_max.load(Relaxed),
                    latency_buckets: std::array::from_fn(|i| c.buckets[i].load(Relaxed)),
                })
                .collect(),
            bytes_written: self.c.bytes_written.load(Relaxed),
            bytes_read: self.c.bytes_read.load(Relaxed),
        }
    }

    fn record<T>(&self, op: usize, start: Instant, r: &Result<T>) {
        let c = &self.c.ops[op];
        c.requests.fetch_add(1, Relaxed);
        if r.is_err() {
            c.errors.fetch_add(1, Relaxed);
        }
        let us = start.elapsed().as_micros() as u64;
        c.latency_us_sum.fetch_add(us, Relaxed);
        c.latency_us_max.fetch_max(us, Relaxed);
        c.buckets[bucket_of(us)].fetch_add(1, Relaxed);
    }
}

#[async_trait]
impl Provider for Metrics {
    fn name(&self) -> &str {
        self.inner.name()
    }
    fn capabilities(&self) -> Capabilities {
        self.inner.capabilities()
    }
    async fn put(&self, blob: &BlobName, body: PutBody, mode: PutMode) -> Result<BlobMeta> {
        let t = Instant::now();
        let r = self.inner.put(blob, body, mode).await;
        self.record(0, t, &r);
        if let Ok(m) = &r {
            self.c.bytes_written.fetch_add(m.size, Relaxed);
        }
        r
    }
    async fn get(&self, blob: &BlobName, range: Option<Range<u64>>) -> Result<ByteStream> {
        let t = Instant::now();
        let r = self.inner.get(blob, range).await;
        self.record(1, t, &r);
        let counters = self.c.clone();
        r.map(|s| {
            s.map(move |item| {
                match &item {
                    Ok(b) => {
                        counters.bytes_read.fetch_add(b.len() as u64, Relaxed);
                    }
                    Err(_) => {
                        counters.ops[1].errors.fetch_add(1, Relaxed);
                    }
                }
                item
            })
            .boxed()
        })
    }
    async fn head(&self, blob: &BlobName) -> Result<BlobMeta> {
        let t = Instant::now();
        let r = self.inner.head(blob).await;
        self.record(2, t, &r);
        r
    }
    async fn delete(&self, blob: &BlobName) -> Result<()> {
        let t = Instant::now();
        let r = self.inner.delete(blob).await;
        self.record(3, t, &r);
        r
    }
    async fn list(
        &self,
        prefix: &str,
        start_after: Option<&BlobName>,
        limit: usize,
    ) -> Result<ListPage> {
        let t = Instant::now();
        let r = self.inner.list(prefix, start_after, limit).await;
        self.record(4, t, &r);
        r
    }
    async fn sweep_temp(&self, older_than: std::time::Duration) -> Result<u64> {
        self.inner.sweep_temp(older_than).await
    }
}

#[cfg(test)]
mod tests {
    use super::{LATENCY_BUCKETS, OpStats, bucket_of, bucket_upper_us};

    #[test]
    fn latencies_land_in_power_of_two_buckets() {
        assert_eq!(bucket_of(0), 0);
        assert_eq!(bucket_of(63), 0);
        assert_eq!(bucket_of(64), 1);
        assert_eq!(bucket_of(1_000), 4); // < 1024
        assert_eq!(bucket_of(u64::MAX), LATENCY_BUCKETS - 1);
        for us in [1u64, 100, 5_000, 1_000_000] {
            assert!(us < bucket_upper_us(bucket_of(us)));
        }
    }

    #[test]
    fn quantiles_read_the_histogram() {
        let mut s = OpStats {
            op: "get",
            requests: 100,
            errors: 0,
            latency_us_sum: 0,
            latency_us_max: 0,
            latency_buckets: [0; LATENCY_BUCKETS],
        };
        assert_eq!(s.latency_quantile_us(0.95), 0);
        s.latency_buckets[bucket_of(1_000)] = 94; // 94 fast requests
        s.latency_buckets[bucket_of(500_000)] = 6; // 6 slow ones
        assert_eq!(s.latency_quantile_us(0.5), 1024);
        assert_eq!(
            s.latency_quantile_us(0.95),
            bucket_upper_us(bucket_of(500_000))
        );
    }
}
