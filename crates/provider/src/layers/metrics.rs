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

#[derive(Debug, Default)]
struct OpCounters {
    requests: AtomicU64,
    errors: AtomicU64,
    latency_us_sum: AtomicU64,
    latency_us_max: AtomicU64,
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
}
