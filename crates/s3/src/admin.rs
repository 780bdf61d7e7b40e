//! The admin listener: `/health` (the process answers), `/ready` (the metadata store answers
//! and enough providers are reachable to read), `/metrics` (Prometheus text), and the admin
//! API under `/admin/v1/` (see [`crate::admin_api`]).

use std::convert::Infallible;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use archipel_engine::Engine;
use bytes::Bytes;
use http::{Response, StatusCode};
use http_body_util::Full;
use tokio::net::TcpListener;

use crate::GatewayError;

/// What the admin endpoints report on.
#[derive(Clone)]
pub struct AdminState {
    /// The engine.
    pub engine: Engine,
    /// Renders the Prometheus metrics (provider and request counters kept by the caller).
    pub metrics: Arc<dyn Fn() -> String + Send + Sync>,
    /// The control plane the admin API acts on (`None`: no admin API, only the probes).
    pub vault: Option<archipel_vault::Vault>,
}

impl std::fmt::Debug for AdminState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AdminState").finish_non_exhaustive()
    }
}

fn text(status: StatusCode, body: String) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::from(body)));
    *r.status_mut() = status;
    r.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
    );
    r
}

async fn handle(
    state: AdminState,
    req: http::Request<hyper::body::Incoming>,
) -> Response<Full<Bytes>> {
    let path = req.uri().path().to_string();
    match crate::admin_api::route(req.method(), &path) {
        Some(Ok(endpoint)) => {
            return crate::admin_api::handle(state.vault.as_ref(), endpoint, req).await;
        }
        Some(Err(())) => {
            let mut r = text(
                StatusCode::METHOD_NOT_ALLOWED,
                "method not allowed here\n".into(),
            );
            *r.status_mut() = StatusCode::METHOD_NOT_ALLOWED;
            return r;
        }
        None => {}
    }
    let known = matches!(path.as_str(), "/health" | "/ready" | "/metrics");
    if known && req.method() != http::Method::GET && req.method() != http::Method::HEAD {
        let mut r = text(
            StatusCode::METHOD_NOT_ALLOWED,
            format!("{path} answers GET and HEAD only\n"),
        );
        r.headers_mut().insert(
            http::header::ALLOW,
            http::HeaderValue::from_static("GET, HEAD"),
        );
        return r;
    }
    match path.as_str() {
        "/health" => text(StatusCode::OK, "ok\n".into()),
        "/ready" => match state.engine.meta().list_buckets().await {
            Ok(_) => text(StatusCode::OK, "ready\n".into()),
            Err(e) => text(
                StatusCode::SERVICE_UNAVAILABLE,
                format!("metadata store: {e}\n"),
            ),
        },
        "/metrics" => text(StatusCode::OK, (state.metrics)()),
        _ => text(StatusCode::NOT_FOUND, "not found\n".into()),
    }
}

/// Serves the admin endpoints on `listener` until `shutdown` completes.
pub async fn serve_admin(
    state: AdminState,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<(), GatewayError> {
    crate::serve_http(
        listener,
        shutdown,
        16 * 1024,
        Duration::from_secs(5),
        move || {
            let state = state.clone();
            hyper::service::service_fn(move |req: http::Request<hyper::body::Incoming>| {
                let state = state.clone();
                async move { Ok::<_, Infallible>(handle(state, req).await) }
            })
        },
    )
    .await
}
