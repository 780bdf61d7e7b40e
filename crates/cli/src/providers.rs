//! Builds the configured providers as the engine uses them — Retry ∘ Timeout ∘ Limit ∘
//! Metrics ∘ provider — and checks each at start (put, read back, delete a small probe blob),
//! so a wrong credential or an unreachable endpoint fails `archipel serve` at once, naming
//! the provider, rather than at the first PUT.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::anyhow;
use archipel_engine::ProviderSlot;
use archipel_provider::{
    ErrorKind, Fault, FaultLayer, Limit, LocalDir, Metrics, Provider, ProviderError, ProviderExt,
    Remote, Retry, RetryPolicy, Timeout,
};

use crate::config::{ProviderBackend, ProviderSetting};

/// A provider ready for the engine, with its counters.
#[derive(Debug, Clone)]
pub(crate) struct Built {
    /// What the engine gets.
    pub(crate) slot: ProviderSlot,
    /// Its counters (for `/metrics` and `status`).
    pub(crate) metrics: Arc<Metrics>,
    /// How it was configured.
    pub(crate) setting: ProviderSetting,
}

/// Opens one provider, bare (no network traffic for remote ones).
async fn open_raw(s: &ProviderSetting) -> Result<Arc<dyn Provider>, ProviderError> {
    let name = s.info.name.as_str();
    Ok(match &s.backend {
        ProviderBackend::Dir(path) => Arc::new(LocalDir::open(name, path).await?),
        ProviderBackend::S3(cfg) => Arc::new(Remote::s3(name, cfg)?),
        ProviderBackend::WebDav(cfg) => Arc::new(Remote::webdav(name, cfg)?),
    })
}

/// Opens one provider with its deadlines only — no retries, no concurrency limit — so that
/// `provider test` sees every failure and measures the provider itself.
pub(crate) async fn open_for_test(s: &ProviderSetting) -> Result<Arc<dyn Provider>, ProviderError> {
    let raw = open_raw(s).await?;
    Ok(Arc::new(Timeout::new(
        raw,
        s.request_timeout,
        s.put_timeout,
    )))
}

/// Opens one provider and wraps it in the layers.
async fn build_one(s: &ProviderSetting) -> Result<Built, ProviderError> {
    let raw = open_raw(s).await?;
    // `inject_latency_ms` (tests and benchmarks): a provider slowed on purpose.
    let raw: Arc<dyn Provider> = if s.inject_latency.is_zero() {
        raw
    } else {
        tracing::warn!(
            "provider {}: every request delayed by {:?} (inject_latency_ms)",
            s.info.name,
            s.inject_latency
        );
        let f = FaultLayer::new(raw, 0);
        f.set(Fault {
            latency: s.inject_latency,
            ..Fault::default()
        });
        Arc::new(f)
    };
    let metrics = Arc::new(Metrics::new(raw));
    let p: Arc<dyn Provider> = metrics.clone();
    let p: Arc<dyn Provider> = Arc::new(Limit::new(p, s.concurrency));
    let p: Arc<dyn Provider> = Arc::new(Timeout::new(p, s.request_timeout, s.put_timeout));
    let p: Arc<dyn Provider> = Arc::new(Retry::new(p, RetryPolicy::default()));
    Ok(Built {
        slot: ProviderSlot {
            info: s.info.clone(),
            provider: p,
        },
        metrics,
        setting: s.clone(),
    })
}

/// A hint for a failed check, by kind of failure.
pub(crate) fn hint(kind: ErrorKind, backend: &ProviderBackend) -> &'static str {
    match (kind, backend) {
        (ErrorKind::PermissionDenied, ProviderBackend::Dir(_)) => {
            " (check the directory's owner and permissions)"
        }
        (ErrorKind::PermissionDenied, ProviderBackend::S3(_)) => {
            " (check access_key and secret_key, and that they may write the bucket)"
        }
        (ErrorKind::PermissionDenied, ProviderBackend::WebDav(_)) => " (check user and password)",
        (ErrorKind::NotFound, ProviderBackend::S3(_)) => " (does the bucket exist?)",
        (ErrorKind::NotFound, _) => " (does the folder exist?)",
        (ErrorKind::Unavailable | ErrorKind::Timeout, ProviderBackend::Dir(_)) => "",
        (ErrorKind::Unavailable | ErrorKind::Timeout, _) => {
            " (is the endpoint right and reachable from here?)"
        }
        (ErrorKind::Config, _) => " (check its settings)",
        _ => "",
    }
}

fn describe_failure(s: &ProviderSetting, e: &ProviderError) -> String {
    format!(
        "{} [{} at {}]: {} failed: {:?}: {}{}",
        s.describe(),
        s.backend.kind(),
        s.backend.location(),
        e.op,
        e.kind,
        e.message,
        hint(e.kind, &s.backend)
    )
}

/// What a probe measured.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ProbeReport {
    /// Time to put, read back and delete the probe blob.
    pub(crate) round_trip: Duration,
}

/// Puts, reads back and deletes a probe blob.
pub(crate) async fn probe(p: &Arc<dyn Provider>) -> Result<ProbeReport, ProviderError> {
    let started = Instant::now();
    let suffix = crate::vault::random::<8>().map_err(|e| {
        ProviderError::new(ErrorKind::Other, p.name(), "probe", None, e.to_string())
    })?;
    let blob = archipel_provider::BlobName::new(format!("probe/{}", crate::vault::hex(&suffix)))?;
    let body = format!("archipel probe {}", crate::vault::hex(&suffix)).into_bytes();
    p.put_bytes(&blob, body.clone()).await?;
    let back = p.get_bytes(&blob, None).await;
    let deleted = p.delete(&blob).await;
    let back = back?;
    if back != body {
        return Err(ProviderError::new(
            ErrorKind::Integrity,
            p.name(),
            "get",
            Some(blob.as_str()),
            "the probe blob read back differs from what was written",
        ));
    }
    deleted?;
    Ok(ProbeReport {
        round_trip: started.elapsed(),
    })
}

/// How long a provider gets to pass its start-up probe.
const PROBE_DEADLINE: Duration = Duration::from_secs(30);

/// Builds every provider and, with `check`, probes them all concurrently; an error lists every
/// provider that failed, by name and where it is declared.
pub(crate) async fn build_all(
    settings: &[ProviderSetting],
    check: bool,
) -> anyhow::Result<Vec<Built>> {
    let results = futures::future::join_all(settings.iter().map(|s| async move {
        let built = build_one(s).await.map_err(|e| describe_failure(s, &e))?;
        if check {
            match tokio::time::timeout(PROBE_DEADLINE, probe(&built.slot.provider)).await {
                Ok(Ok(r)) => tracing::debug!(
                    "provider {} ok: probe round trip {:?}",
                    s.info.name,
                    r.round_trip
                ),
                Ok(Err(e)) => return Err(describe_failure(s, &e)),
                Err(_) => {
                    return Err(format!(
                        "{} [{} at {}]: no answer within {PROBE_DEADLINE:?}{}",
                        s.describe(),
                        s.backend.kind(),
                        s.backend.location(),
                        hint(ErrorKind::Timeout, &s.backend)
                    ));
                }
            }
        }
        Ok(built)
    }))
    .await;
    let mut built = Vec::new();
    let mut failures = Vec::new();
    for r in results {
        match r {
            Ok(b) => built.push(b),
            Err(e) => failures.push(e),
        }
    }
    if !failures.is_empty() {
        let n = failures.len();
        return Err(anyhow!(
            "{n} of {} provider{} failed the start-up check:\n  {}",
            settings.len(),
            if settings.len() == 1 { "" } else { "s" },
            failures.join("\n  ")
        ));
    }
    Ok(built)
}
