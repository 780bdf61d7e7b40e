//! Archipel's S3 gateway: the only part of Archipel that knows HTTP, XML and SigV4.
//!
//! * [`serve`]: the S3 endpoint. Requests are parsed, authenticated (SigV4 headers and presigned
//!   URLs, aws-chunked bodies) and answered by [`s3s`]; the operations are implemented in
//!   `gateway` over the [`archipel_engine::Engine`]; every engine error maps to one S3 error
//!   code in `errors`.
//! * [`serve_admin`]: `/health`, `/ready` and Prometheus `/metrics` on a separate listener.
//!
//! # Architecture invariants
//!
//! * Every request is authenticated before it reaches the engine (`s3s` is not a security
//!   boundary by itself: see docs/decisions/0006-s3-gateway.md); anonymous requests are
//!   refused.
//! * Bodies stream both ways: the gateway never buffers an object.

mod admin;
pub mod admin_api;
mod auth;
mod checksum;
mod cors;
mod errors;
mod expect;
mod form;
mod gateway;
mod guard;
mod linger;
mod sigv2;
#[cfg(test)]
mod snapshots;
mod tagging;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use archipel_engine::Engine;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

pub use admin::{AdminState, serve_admin};

/// Gateway settings.
#[derive(Debug, Clone)]
pub struct GatewayConfig {
    /// The region clients sign for (and `GetBucketLocation` reports).
    pub region: String,
    /// The root access key id (full rights on every bucket).
    pub root_access_key: String,
    /// The root secret key.
    pub root_secret_key: String,
    /// Host name for virtual-hosted-style requests (`bucket.<domain>`); `None` = path style only.
    pub domain: Option<String>,
    /// The canonical id reported as every bucket's owner.
    pub owner_id: String,
    /// Largest request header block a client may send.
    pub max_header_bytes: usize,
    /// How long in-flight requests get to finish at shutdown.
    pub shutdown_grace: Duration,
    /// Accept SigV2 requests (off by default: SigV4 only). When on, a SigV2 request's `Date`
    /// must be within 15 minutes and a presigned SigV2 URL may live at most 7 days.
    pub allow_sigv2: bool,
    /// Largest body a single PUT may declare (S3: 5 GiB); larger objects use multipart.
    pub max_object_bytes: u64,
    /// Requests served at once (each holds its slot until its response body is sent); beyond
    /// it a request is answered `503 SlowDown` at once, which clients retry with backoff.
    /// Bounds the gateway's memory: each request's buffers are bounded (stripes, not objects).
    pub max_requests: usize,
}

impl GatewayConfig {
    /// Defaults for a gateway with the given root credentials.
    pub fn new(root_access_key: impl Into<String>, root_secret_key: impl Into<String>) -> Self {
        GatewayConfig {
            region: "us-east-1".into(),
            root_access_key: root_access_key.into(),
            root_secret_key: root_secret_key.into(),
            domain: None,
            owner_id: "archipel".into(),
            max_header_bytes: 64 * 1024,
            shutdown_grace: Duration::from_secs(30),
            allow_sigv2: false,
            max_object_bytes: 5 * 1024 * 1024 * 1024,
            max_requests: 128,
        }
    }
}

/// A gateway failure (listener errors; request errors are answered, not returned).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum GatewayError {
    /// Accepting connections failed.
    #[error("listener: {0}")]
    Listener(#[from] std::io::Error),
}

/// Builds the S3 service (routing, auth, operations) for `engine`.
pub fn service(engine: Engine, config: &GatewayConfig) -> s3s::service::S3Service {
    let gw = gateway::Gateway::new(engine.clone(), config.clone());
    let mut b = s3s::service::S3ServiceBuilder::new(gw);
    b.set_auth(auth::Auth::new(engine.clone(), config.clone()));
    b.set_access(auth::Access::new(engine, config.clone()));
    b.set_config(Arc::new(s3s::config::StaticConfigProvider::new(Arc::new(
        s3s_limits(),
    ))));
    if let Some(host) = virtual_host(config) {
        b.set_host(host);
    }
    b.build()
}

/// The virtual hosts (`bucket.<domain>`) s3s serves, and the guard's SigV2 check reads alike.
fn virtual_host(config: &GatewayConfig) -> Option<s3s::host::MultiDomain> {
    let domain = config.domain.as_deref()?;
    s3s::host::MultiDomain::new([domain]).ok()
}

/// The request guard over untrusted bytes (fuzz target `request_guard`).
#[cfg(feature = "fuzzing")]
pub use guard::fuzz_guard;

/// Largest XML request body (DeleteObjects of 1,000 keys, CompleteMultipartUpload of 10,000
/// parts, configurations); beyond it `MaxMessageLengthExceeded`.
pub const MAX_XML_BODY: usize = 4 * 1024 * 1024;

/// Largest file of a browser-form POST: s3s holds it in memory (after authentication) before
/// the upload starts, so it is kept small; larger uploads use PUT or multipart.
pub const MAX_POST_OBJECT: u64 = 64 * 1024 * 1024;

/// The limits s3s enforces, set explicitly (its defaults are 20 MB of XML, 5 GiB POST files).
fn s3s_limits() -> s3s::config::S3Config {
    let mut c = s3s::config::S3Config::default();
    c.xml_max_body_size = MAX_XML_BODY;
    c.post_object_max_file_size = MAX_POST_OBJECT;
    c.form_max_field_size = guard::MAX_POST_PRE_DATA;
    c.form_max_fields_size = guard::MAX_POST_PRE_DATA;
    c.form_max_parts = 64;
    c.presigned_url_max_skew_time_secs = 900;
    c
}

/// The S3 service without authentication, for fuzzing the routing and parsing layers (and
/// nothing else: every request is treated as the owner's).
#[cfg(feature = "fuzzing")]
pub fn unauthenticated_service(engine: Engine, config: &GatewayConfig) -> s3s::service::S3Service {
    s3s::service::S3ServiceBuilder::new(gateway::Gateway::new(engine, config.clone())).build()
}

/// Serves S3 on `listener` until `shutdown` completes, then lets in-flight requests finish
/// (up to [`GatewayConfig::shutdown_grace`]).
pub async fn serve(
    engine: Engine,
    config: GatewayConfig,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<(), GatewayError> {
    let svc = service(engine.clone(), &config);
    let sigv2 = Arc::new(sigv2::Verifier::new(engine.clone(), &config));
    let ids = Arc::new(RequestIds::new());
    let (header_bytes, grace) = (config.max_header_bytes, config.shutdown_grace);
    let slots = Arc::new(tokio::sync::Semaphore::new(config.max_requests.max(1)));
    let config = Arc::new(config);
    serve_http(listener, shutdown, header_bytes, grace, move || {
        let (svc, ids, engine, config) = (svc.clone(), ids.clone(), engine.clone(), config.clone());
        let (slots, sigv2) = (slots.clone(), sigv2.clone());
        hyper::service::service_fn(move |req: http::Request<hyper::body::Incoming>| {
            let (svc, engine, config, id) =
                (svc.clone(), engine.clone(), config.clone(), ids.next());
            let sigv2 = sigv2.clone();
            let slot = slots.clone().try_acquire_owned();
            async move {
                let Ok(slot) = slot else {
                    return Ok::<_, s3s::HttpError>(slow_down(&id, config.max_requests));
                };
                let resp = handle(svc, engine, config, &sigv2, id, req).await?;
                // The slot is held until the response body is sent (a GET streams stripes).
                Ok(if resp.body().bytes().is_some() {
                    resp
                } else {
                    resp.map(|body| s3s::Body::http_body(Held { body, _slot: slot }))
                })
            }
        })
    })
    .await
}

static SLOW_DOWNS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// Requests this process answered `503 SlowDown` because `max_requests` were being served.
pub fn slow_downs() -> u64 {
    SLOW_DOWNS.load(std::sync::atomic::Ordering::Relaxed)
}

/// `503 SlowDown`: more than `max` requests at once.
fn slow_down(id: &str, max: usize) -> http::Response<s3s::Body> {
    SLOW_DOWNS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let mut resp = guard::Refusal::slow_down(max).response();
    resp.headers_mut().insert(
        http::header::RETRY_AFTER,
        http::HeaderValue::from_static("1"),
    );
    if let Ok(v) = http::HeaderValue::from_str(id) {
        resp.headers_mut().insert("x-amz-request-id", v);
    }
    resp
}

/// A response body that keeps its request's slot until it is sent (or dropped).
struct Held {
    body: s3s::Body,
    _slot: tokio::sync::OwnedSemaphorePermit,
}

impl hyper::body::Body for Held {
    type Data = bytes::Bytes;
    type Error = s3s::StdError;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<hyper::body::Frame<Self::Data>, Self::Error>>> {
        std::pin::Pin::new(&mut self.body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> hyper::body::SizeHint {
        self.body.size_hint()
    }
}

/// One request: CORS preflights are answered here (browsers send them unauthenticated);
/// everything else goes to the S3 service; CORS headers and the request id are added.
async fn handle(
    svc: s3s::service::S3Service,
    engine: Engine,
    config: Arc<GatewayConfig>,
    sigv2: &sigv2::Verifier,
    id: String,
    req: http::Request<hyper::body::Incoming>,
) -> Result<http::Response<s3s::Body>, s3s::HttpError> {
    let path = req.uri().path().to_string();
    let method = req.method().clone();
    let origin = req
        .headers()
        .get("origin")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let mut resp = if method == http::Method::OPTIONS {
        cors::preflight(&engine, &path, req.headers()).await
    } else {
        let (parts, body) = req.into_parts();
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        // Refusals that must come before s3s reads or buffers anything (see `guard`), then
        // SigV2 signatures (headers, presigned URLs, forms), compared here in constant time
        // (see `sigv2`).
        let body = match guard::check_head(&parts, &config, now) {
            Err(refusal) => Err(refusal.into()),
            Ok(()) => match sigv2.verify(&parts, now).await {
                Err(refused) => Err(refused),
                // Browser forms: read up to the file, a SigV2 form's signature checked here.
                Ok(()) if guard::is_form_post(&parts) => {
                    match guard::form_post(&parts, body, &config).await {
                        Err(refusal) => Err(refusal.into()),
                        Ok(form) => sigv2
                            .verify_form(form.sigv2.as_ref())
                            .await
                            .map(|()| form.body),
                    }
                }
                Ok(()) => Ok(s3s::Body::from(body)),
            },
        };
        match body {
            Ok(body) => svc.call(http::Request::from_parts(parts, body)).await?,
            Err(refused) => {
                tracing::debug!(request_id = %id, code = refused.code(), "refused before parsing");
                refused.response()
            }
        }
    };
    if let Some(origin) = origin
        && method != http::Method::OPTIONS
    {
        cors::decorate(&engine, &path, &method, &origin, resp.headers_mut()).await;
    }
    errors::ensure_message(&mut resp);
    // Every answer carries a request id, for logs and support.
    if let Ok(v) = http::HeaderValue::from_str(&id) {
        resp.headers_mut().insert("x-amz-request-id", v);
    }
    tracing::debug!(request_id = %id, status = %resp.status(), "answered");
    Ok(resp)
}

/// Request ids: a per-process random prefix and a counter, unique and cheap.
struct RequestIds {
    prefix: u64,
    next: std::sync::atomic::AtomicU64,
}

impl RequestIds {
    fn new() -> Self {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64);
        RequestIds {
            prefix: nanos ^ u64::from(std::process::id()).rotate_left(32),
            next: std::sync::atomic::AtomicU64::new(0),
        }
    }

    fn next(&self) -> String {
        let n = self.next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        format!("{:016X}{n:08X}", self.prefix)
    }
}

/// The HTTP/1.1 accept loop shared by the S3 and admin listeners.
pub(crate) async fn serve_http<S, F, B>(
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send,
    max_header_bytes: usize,
    grace: Duration,
    make: F,
) -> Result<(), GatewayError>
where
    F: Fn() -> S,
    S: hyper::service::Service<http::Request<hyper::body::Incoming>, Response = http::Response<B>>
        + Send
        + 'static,
    S::Future: Send + 'static,
    S::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    B: hyper::body::Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let mut http = hyper::server::conn::http1::Builder::new();
    http.max_buf_size(max_header_bytes.max(8192))
        .header_read_timeout(Duration::from_secs(30))
        .timer(hyper_util::rt::TokioTimer::new());
    let http = Arc::new(http);
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let (sock, peer) = match accepted {
                    Ok(x) => x,
                    Err(e) => {
                        // Out of file descriptors and the like: back off, keep serving.
                        tracing::warn!("accept: {e}");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                };
                let _ = sock.set_nodelay(true);
                // `100 Continue` also for bodiless requests that ask for it (see `expect`).
                let pending = Arc::new(std::sync::atomic::AtomicBool::new(false));
                // Closing lingers, so a refused upload's answer reaches its client (`linger`).
                let sock = linger::LingerIo::new(sock);
                let io = TokioIo::new(expect::ContinueIo::new(sock, pending.clone()));
                let svc = expect::ExpectService { inner: make(), pending };
                let conn = http.serve_connection(io, svc);
                let conn = graceful.watch(conn);
                tokio::spawn(async move {
                    if let Err(e) = conn.await {
                        tracing::debug!("connection from {peer}: {e}");
                    }
                });
            }
            () = &mut shutdown => break,
        }
    }
    drop(listener);
    if tokio::time::timeout(grace, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!("shutdown: requests still running after {grace:?}, closing them");
    }
    Ok(())
}
