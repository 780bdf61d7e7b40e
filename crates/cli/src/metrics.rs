//! Prometheus text exposition of the provider counters (`/metrics` on the admin listener).

use std::fmt::Write;
use std::sync::Arc;

use archipel_engine::Engine;
use archipel_provider::layers::{LATENCY_BUCKETS, bucket_upper_us};
use archipel_provider::{Metrics, MetricsSnapshot};

/// Escapes a label value.
fn esc(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// Renders the counters of `snapshots` (and whether the engine considers each provider down)
/// in the Prometheus text format 0.0.4.
pub(crate) fn render(snapshots: &[MetricsSnapshot], down: impl Fn(&str) -> bool) -> String {
    let mut out = String::new();
    let family = |out: &mut String, name: &str, kind: &str, help: &str| {
        let _ = writeln!(out, "# HELP {name} {help}");
        let _ = writeln!(out, "# TYPE {name} {kind}");
    };
    family(
        &mut out,
        "archipel_provider_up",
        "gauge",
        "1 unless the engine saw the provider fail recently.",
    );
    for s in snapshots {
        let up = u8::from(!down(&s.provider));
        let _ = writeln!(
            out,
            "archipel_provider_up{{provider=\"{}\"}} {up}",
            esc(&s.provider)
        );
    }
    family(
        &mut out,
        "archipel_provider_requests_total",
        "counter",
        "Requests sent to a provider, by operation.",
    );
    for s in snapshots {
        for op in &s.ops {
            let _ = writeln!(
                out,
                "archipel_provider_requests_total{{provider=\"{}\",op=\"{}\"}} {}",
                esc(&s.provider),
                op.op,
                op.requests
            );
        }
    }
    family(
        &mut out,
        "archipel_provider_errors_total",
        "counter",
        "Requests to a provider that failed, by operation.",
    );
    for s in snapshots {
        for op in &s.ops {
            let _ = writeln!(
                out,
                "archipel_provider_errors_total{{provider=\"{}\",op=\"{}\"}} {}",
                esc(&s.provider),
                op.op,
                op.errors
            );
        }
    }
    family(
        &mut out,
        "archipel_provider_bytes_written_total",
        "counter",
        "Bytes accepted by successful puts.",
    );
    for s in snapshots {
        let _ = writeln!(
            out,
            "archipel_provider_bytes_written_total{{provider=\"{}\"}} {}",
            esc(&s.provider),
            s.bytes_written
        );
    }
    family(
        &mut out,
        "archipel_provider_bytes_read_total",
        "counter",
        "Bytes delivered by reads.",
    );
    for s in snapshots {
        let _ = writeln!(
            out,
            "archipel_provider_bytes_read_total{{provider=\"{}\"}} {}",
            esc(&s.provider),
            s.bytes_read
        );
    }
    family(
        &mut out,
        "archipel_provider_latency_seconds",
        "histogram",
        "Latency of provider requests (for reads, to the start of the stream), by operation.",
    );
    for s in snapshots {
        for op in &s.ops {
            let labels = format!("provider=\"{}\",op=\"{}\"", esc(&s.provider), op.op);
            let mut cumulative = 0;
            for (i, c) in op.latency_buckets.iter().enumerate() {
                cumulative += c;
                if i + 1 < LATENCY_BUCKETS {
                    let le = bucket_upper_us(i) as f64 / 1e6;
                    let _ = writeln!(
                        out,
                        "archipel_provider_latency_seconds_bucket{{{labels},le=\"{le}\"}} {cumulative}"
                    );
                }
            }
            let _ = writeln!(
                out,
                "archipel_provider_latency_seconds_bucket{{{labels},le=\"+Inf\"}} {cumulative}"
            );
            let _ = writeln!(
                out,
                "archipel_provider_latency_seconds_sum{{{labels}}} {}",
                op.latency_us_sum as f64 / 1e6
            );
            let _ = writeln!(
                out,
                "archipel_provider_latency_seconds_count{{{labels}}} {cumulative}"
            );
        }
    }
    out
}

/// The `/metrics` renderer for the admin listener.
pub(crate) fn renderer(
    engine: Engine,
    metrics: Vec<Arc<Metrics>>,
) -> Arc<dyn Fn() -> String + Send + Sync> {
    Arc::new(move || {
        let snaps: Vec<MetricsSnapshot> = metrics.iter().map(|m| m.snapshot()).collect();
        let mut out = render(&snaps, |p| engine.health().is_down(p));
        let _ = writeln!(
            out,
            "# HELP archipel_s3_slow_down_total Requests answered 503 SlowDown: the gateway was serving max_requests already.\n# TYPE archipel_s3_slow_down_total counter\narchipel_s3_slow_down_total {}",
            archipel_s3::slow_downs()
        );
        let r = engine.repair_stats();
        for (name, help, kind, value) in [
            (
                "archipel_repair_queued_shards",
                "Shards queued for repair, as of the last repair round.",
                "gauge",
                r.queued,
            ),
            (
                "archipel_repair_rebuilt_shards_total",
                "Shards rebuilt by repair (on their provider or a spare).",
                "counter",
                r.rebuilt,
            ),
            (
                "archipel_repair_moved_shards_total",
                "Shards repair rebuilt on a spare provider.",
                "counter",
                r.moved,
            ),
            (
                "archipel_repair_intact_shards_total",
                "Queued shards repair found intact.",
                "counter",
                r.found_intact,
            ),
            (
                "archipel_repair_failed_total",
                "Rebuilds that failed (their shards stay queued).",
                "counter",
                r.failed,
            ),
            (
                "archipel_repair_written_bytes_total",
                "Bytes written by repair.",
                "counter",
                r.bytes_written,
            ),
            (
                "archipel_repair_missing_found_total",
                "Shards the inventory found missing from their providers.",
                "counter",
                r.missing_found,
            ),
        ] {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {value}"
            );
        }
        out
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use archipel_provider::{LocalDir, Provider, ProviderExt};

    #[tokio::test]
    async fn renders_counters_and_a_histogram() {
        let dir = tempfile::tempdir().unwrap();
        let p: Arc<dyn Provider> = Arc::new(LocalDir::open("p\"1", dir.path()).await.unwrap());
        let m = Metrics::new(p);
        let blob = archipel_provider::BlobName::new("a/b").unwrap();
        m.put_bytes(&blob, b"hello".to_vec()).await.unwrap();
        let text = render(&[m.snapshot()], |_| false);
        assert!(
            text.contains("archipel_provider_up{provider=\"p\\\"1\"} 1"),
            "{text}"
        );
        assert!(
            text.contains("archipel_provider_requests_total{provider=\"p\\\"1\",op=\"put\"} 1"),
            "{text}"
        );
        assert!(text.contains("archipel_provider_bytes_written_total{provider=\"p\\\"1\"} 5"));
        assert!(text.contains(
            "archipel_provider_latency_seconds_bucket{provider=\"p\\\"1\",op=\"put\",le=\"+Inf\"} 1"
        ));
        assert!(
            text.contains(
                "archipel_provider_latency_seconds_count{provider=\"p\\\"1\",op=\"put\"} 1"
            )
        );
    }
}
