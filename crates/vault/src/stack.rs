//! The standard provider layer stack, built for the gateway and the tests alike, and the
//! start-up probe. Builds the configured providers as the engine uses them — Retry ∘ Timeout ∘ Limit ∘
//! Metrics ∘ provider — and checks each at start (put, read back, delete a small probe blob),
//! so a wrong credential or an unreachable endpoint fails `archipel serve` at once, naming
//! the provider, rather than at the first PUT.

use std::sync::Arc;
use std::time::{Duration, Instant};

use archipel_engine::ProviderSlot;
use archipel_provider::{
    BlobName, ErrorKind, Fault, FaultLayer, Limit, LocalDir, Metrics, Provider, ProviderError,
    ProviderExt, Remote, Retry, RetryPolicy, Timeout,
};

use crate::error::{Result, VaultError};
use crate::spec::{ProviderBackend, ProviderSpec};

/// A provider ready for the engine, with its counters.
#[derive(Debug, Clone)]
pub struct Built {
    /// What the engine gets.
    pub slot: ProviderSlot,
    /// Its counters (for `/metrics` and `status`).
    pub metrics: Arc<Metrics>,
    /// How it was configured.
    pub spec: ProviderSpec,
    /// The start-up probe's round trip (put, get, delete), when it ran.
    pub probe: Option<Duration>,
    /// The provider with its deadlines only (no retries, no concurrency limit), for
    /// `provider test` beside the running engine.
    pub bare: Arc<dyn Provider>,
    /// The registry generation it was built from.
    pub generation: u64,
}

/// Opens one provider, bare (no network traffic for remote ones).
async fn open_raw(s: &ProviderSpec) -> Result<Arc<dyn Provider>, ProviderError> {
    let name = s.info.name.as_str();
    Ok(match &s.backend {
        ProviderBackend::Dir(path) => Arc::new(LocalDir::open(name, path).await?),
        ProviderBackend::S3(cfg) => Arc::new(Remote::s3(name, cfg)?),
        ProviderBackend::WebDav(cfg) => Arc::new(Remote::webdav(name, cfg)?),
    })
}

/// Opens one provider with its deadlines only — no retries, no concurrency limit — so that
/// `provider test` sees every failure and measures the provider itself.
pub async fn open_for_test(s: &ProviderSpec) -> Result<Arc<dyn Provider>, ProviderError> {
    let raw = open_raw(s).await?;
    Ok(Arc::new(Timeout::new(
        raw,
        s.request_timeout,
        s.put_timeout,
    )))
}

/// Opens one provider and wraps it in the layers.
pub async fn build_one(s: &ProviderSpec) -> Result<Built, ProviderError> {
    Ok(layer(s, open_raw(s).await?))
}

/// Wraps `raw` in the standard layers for `s`.
fn layer(s: &ProviderSpec, raw: Arc<dyn Provider>) -> Built {
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
    let bare: Arc<dyn Provider> =
        Arc::new(Timeout::new(raw.clone(), s.request_timeout, s.put_timeout));
    let metrics = Arc::new(Metrics::new(raw));
    let p: Arc<dyn Provider> = metrics.clone();
    let p: Arc<dyn Provider> = Arc::new(Limit::new(p, s.concurrency));
    let p: Arc<dyn Provider> = Arc::new(Timeout::new(p, s.request_timeout, s.put_timeout));
    let p: Arc<dyn Provider> = Arc::new(Retry::new(p, RetryPolicy::default()));
    Built {
        slot: ProviderSlot {
            info: s.info.clone(),
            provider: p,
        },
        metrics,
        spec: s.clone(),
        probe: None,
        bare,
        generation: 0,
    }
}

/// What stands in for a provider that could not even be opened at start (its directory
/// missing, its endpoint unresolvable): every request fails as `Unavailable`, so the engine
/// treats its shards as missing and places new ones elsewhere until it is back.
#[derive(Debug)]
struct Unopened {
    name: String,
    reason: String,
}

impl Unopened {
    fn err(&self, op: &'static str, blob: Option<&BlobName>) -> ProviderError {
        ProviderError::new(
            ErrorKind::Unavailable,
            &self.name,
            op,
            blob.map(BlobName::as_str),
            format!("not opened at start: {}", self.reason),
        )
    }
}

#[async_trait::async_trait]
impl Provider for Unopened {
    fn name(&self) -> &str {
        &self.name
    }
    fn capabilities(&self) -> archipel_provider::Capabilities {
        archipel_provider::Capabilities {
            conditional_create: false,
            max_blob_size: None,
            max_list_page: 1000,
        }
    }
    async fn put(
        &self,
        blob: &BlobName,
        _body: archipel_provider::PutBody,
        _mode: archipel_provider::PutMode,
    ) -> Result<archipel_provider::BlobMeta, ProviderError> {
        Err(self.err("put", Some(blob)))
    }
    async fn get(
        &self,
        blob: &BlobName,
        _range: Option<std::ops::Range<u64>>,
    ) -> Result<archipel_provider::ByteStream, ProviderError> {
        Err(self.err("get", Some(blob)))
    }
    async fn head(&self, blob: &BlobName) -> Result<archipel_provider::BlobMeta, ProviderError> {
        Err(self.err("head", Some(blob)))
    }
    async fn delete(&self, blob: &BlobName) -> Result<(), ProviderError> {
        Err(self.err("delete", Some(blob)))
    }
    async fn list(
        &self,
        _prefix: &str,
        _start_after: Option<&BlobName>,
        _limit: usize,
    ) -> Result<archipel_provider::ListPage, ProviderError> {
        Err(self.err("list", None))
    }
}

/// A provider that did not pass its start-up check because it is unreachable (not because it
/// is misconfigured): the vault serves without it and keeps probing it.
#[derive(Debug, Clone)]
pub struct Outage {
    /// Which provider.
    pub name: String,
    /// What the check found, for operators.
    pub reason: String,
    /// Whether it could not even be opened (a stand-in takes its place until it is).
    pub unopened: bool,
}

/// Whether a failure is a misconfiguration (refuse to start) rather than an outage (start
/// without the provider): refused credentials or permissions, whatever kind the provider
/// crate gave them (a WebDAV 401 can arrive as "unexpected"), and bad settings.
fn is_misconfiguration(e: &ProviderError) -> bool {
    matches!(e.kind, ErrorKind::PermissionDenied | ErrorKind::Config)
        || matches!(http_status(&e.message), Some(401 | 403))
}

/// Probes `b`; the round trip, or what failed and whether it is a misconfiguration.
async fn check_one(s: &ProviderSpec, b: &Built) -> Result<Duration, (String, bool)> {
    match tokio::time::timeout(PROBE_DEADLINE, probe(&b.slot.provider)).await {
        Ok(Ok(r)) => Ok(r.round_trip),
        Ok(Err(e)) => Err((describe_failure(s, &e), is_misconfiguration(&e))),
        Err(_) => Err((
            format!(
                "{} [{} at {}]: no answer within {PROBE_DEADLINE:?}{}",
                s.describe(),
                s.backend.kind(),
                s.backend.location(),
                hint(ErrorKind::Timeout, &s.backend)
            ),
            false,
        )),
    }
}

/// Builds and probes every provider, tolerating outages: a provider that is unreachable (or
/// cannot be opened) is kept — behind a stand-in if need be — and reported as an [`Outage`];
/// a misconfigured one (credentials refused, bad settings) fails the whole start, naming
/// every such provider.
pub async fn build_all_degraded(specs: &[ProviderSpec]) -> Result<(Vec<Built>, Vec<Outage>)> {
    let results = futures::future::join_all(specs.iter().map(|s| async move {
        match build_one(s).await {
            Ok(mut b) => match check_one(s, &b).await {
                Ok(rt) => {
                    b.probe = Some(rt);
                    Ok((b, None))
                }
                Err((text, true)) => Err(text),
                Err((text, false)) => Ok((
                    b,
                    Some(Outage {
                        name: s.info.name.clone(),
                        reason: text,
                        unopened: false,
                    }),
                )),
            },
            Err(e) if is_misconfiguration(&e) => Err(describe_failure(s, &e)),
            Err(e) => {
                let reason = describe_failure(s, &e);
                let stand_in = Arc::new(Unopened {
                    name: s.info.name.clone(),
                    reason: e.message.clone(),
                });
                Ok((
                    layer(s, stand_in),
                    Some(Outage {
                        name: s.info.name.clone(),
                        reason,
                        unopened: true,
                    }),
                ))
            }
        }
    }))
    .await;
    let (mut built, mut outages, mut fatal) = (Vec::new(), Vec::new(), Vec::new());
    for r in results {
        match r {
            Ok((b, o)) => {
                built.push(b);
                outages.extend(o);
            }
            Err(text) => fatal.push(text),
        }
    }
    if !fatal.is_empty() {
        return Err(VaultError::Providers(format!(
            "{} of {} provider{} failed the start-up check (misconfigured, not unreachable):\n  {}",
            fatal.len(),
            specs.len(),
            if specs.len() == 1 { "" } else { "s" },
            fatal.join("\n  ")
        )));
    }
    Ok((built, outages))
}

/// Probes a provider that was out: the rebuilt provider (when it was not opened) and the
/// round trip, once it answers.
pub async fn recheck(
    s: &ProviderSpec,
    current: &Built,
    unopened: bool,
) -> Option<(Built, Duration)> {
    let b = if unopened {
        build_one(s).await.ok()?
    } else {
        current.clone()
    };
    match check_one(s, &b).await {
        Ok(rt) => Some((b, rt)),
        Err(_) => None,
    }
}

/// A hint for a failed check, by kind of failure.
fn hint(kind: ErrorKind, backend: &ProviderBackend) -> &'static str {
    match (kind, backend) {
        (ErrorKind::PermissionDenied, ProviderBackend::Dir(_)) => {
            " (check the directory's owner and permissions)"
        }
        (ErrorKind::PermissionDenied, ProviderBackend::S3(_)) => {
            " (check access_key and secret_key, and that they may write the bucket)"
        }
        (ErrorKind::PermissionDenied, ProviderBackend::WebDav(_)) => {
            " (check user and password, and that they may write the folder)"
        }
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

/// The HTTP status a remote provider's error reports (`status: 401` in OpenDAL's context).
fn http_status(message: &str) -> Option<u16> {
    let at = message.find("status: ")? + "status: ".len();
    message[at..]
        .get(..3)
        .and_then(|d| d.parse().ok())
        .filter(|c| (100..600).contains(c))
}

/// The S3 error code in an error body (`<Code>SignatureDoesNotMatch</Code>`), if any.
fn s3_code(message: &str) -> Option<&str> {
    let start = message.find("<Code>")? + "<Code>".len();
    let len = message[start..].find("</Code>")?;
    Some(&message[start..start + len]).filter(|c| !c.is_empty() && c.len() < 64)
}

/// What went wrong, for an operator: a refused credential as such (whatever kind the provider
/// crate gave it: a WebDAV 401 met while creating a folder arrives as "unexpected"), else the
/// kind and the provider's message; then a hint for the kind.
pub fn explain(e: &ProviderError, backend: &ProviderBackend) -> String {
    let status = http_status(&e.message);
    let refused = match status {
        Some(401) => Some("credentials refused (HTTP 401 Unauthorized)".to_string()),
        Some(403) => Some(
            "access refused (HTTP 403 Forbidden): wrong credentials, or no permission here"
                .to_string(),
        ),
        _ if e.kind == ErrorKind::PermissionDenied => {
            Some(format!("permission denied: {}", e.message))
        }
        _ => None,
    };
    match refused {
        Some(mut text) => {
            if let Some(code) = s3_code(&e.message) {
                text.push_str(&format!(" [{code}]"));
            }
            format!("{text}{}", hint(ErrorKind::PermissionDenied, backend))
        }
        None => format!("{:?}: {}{}", e.kind, e.message, hint(e.kind, backend)),
    }
}

fn describe_failure(s: &ProviderSpec, e: &ProviderError) -> String {
    format!(
        "{} [{} at {}]: {} failed: {}",
        s.describe(),
        s.backend.kind(),
        s.backend.location(),
        e.op,
        explain(e, &s.backend)
    )
}

/// What a probe measured.
#[derive(Debug, Clone, Copy)]
pub struct ProbeReport {
    /// Time to put, read back and delete the probe blob.
    pub round_trip: Duration,
}

/// Puts, reads back and deletes a probe blob.
pub async fn probe(p: &Arc<dyn Provider>) -> Result<ProbeReport, ProviderError> {
    let started = Instant::now();
    let suffix = crate::secrets::random::<8>().map_err(|e| {
        ProviderError::new(ErrorKind::Other, p.name(), "probe", None, e.to_string())
    })?;
    let blob = archipel_provider::BlobName::new(format!("probe/{}", crate::secrets::hex(&suffix)))?;
    let body = format!("archipel probe {}", crate::secrets::hex(&suffix)).into_bytes();
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

/// Builds one provider and, with `check`, probes it: the probe's round trip, or the failure
/// described for an operator (naming the provider, and where it is declared when known).
pub async fn build_checked(
    s: &ProviderSpec,
    check: bool,
) -> Result<(Built, Option<Duration>), String> {
    let built = build_one(s).await.map_err(|e| describe_failure(s, &e))?;
    if !check {
        return Ok((built, None));
    }
    match tokio::time::timeout(PROBE_DEADLINE, probe(&built.slot.provider)).await {
        Ok(Ok(r)) => {
            tracing::debug!(
                "provider {} ok: probe round trip {:?}",
                s.info.name,
                r.round_trip
            );
            Ok((built, Some(r.round_trip)))
        }
        Ok(Err(e)) => Err(describe_failure(s, &e)),
        Err(_) => Err(format!(
            "{} [{} at {}]: no answer within {PROBE_DEADLINE:?}{}",
            s.describe(),
            s.backend.kind(),
            s.backend.location(),
            hint(ErrorKind::Timeout, &s.backend)
        )),
    }
}

/// Builds every provider and, with `check`, probes them all concurrently; an error lists every
/// provider that failed, by name and where it is declared.
pub async fn build_all(settings: &[ProviderSpec], check: bool) -> Result<Vec<Built>> {
    let results = futures::future::join_all(settings.iter().map(|s| async move {
        build_checked(s, check).await.map(|(mut b, probe)| {
            b.probe = probe;
            b
        })
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
        return Err(VaultError::Providers(format!(
            "{n} of {} provider{} failed the start-up check:\n  {}",
            settings.len(),
            if settings.len() == 1 { "" } else { "s" },
            failures.join("\n  ")
        )));
    }
    Ok(built)
}

#[cfg(test)]
mod tests {
    use super::*;
    use archipel_provider::WebDavConfig;

    fn dav() -> ProviderBackend {
        ProviderBackend::WebDav(WebDavConfig {
            endpoint: "http://127.0.0.1:1".into(),
            username: "u".into(),
            password: "p".into(),
            root: String::new(),
        })
    }

    #[test]
    fn a_refused_credential_is_called_so_whatever_its_kind() {
        let e = ProviderError::new(
            ErrorKind::Other,
            "dav",
            "put",
            None,
            "Unexpected (permanent) at create_dir, context: { response: Parts { status: 401, \
             version: HTTP/1.1 } } => Unauthorized",
        );
        assert_eq!(
            explain(&e, &dav()),
            "credentials refused (HTTP 401 Unauthorized) (check user and password, and that \
             they may write the folder)"
        );
        let e = ProviderError::new(
            ErrorKind::PermissionDenied,
            "s3",
            "put",
            None,
            "PermissionDenied at write, context: { status: 403 } => \
             <Error><Code>SignatureDoesNotMatch</Code></Error>",
        );
        let t = explain(&e, &dav());
        assert!(
            t.starts_with("access refused (HTTP 403 Forbidden)")
                && t.contains("[SignatureDoesNotMatch]"),
            "{t}"
        );
        let e = ProviderError::new(
            ErrorKind::Unavailable,
            "x",
            "put",
            None,
            "connection refused",
        );
        assert_eq!(
            explain(&e, &dav()),
            "Unavailable: connection refused (is the endpoint right and reachable from here?)"
        );
        assert_eq!(http_status("status: 4"), None);
        assert_eq!(s3_code("<Code></Code>"), None);
    }
}
