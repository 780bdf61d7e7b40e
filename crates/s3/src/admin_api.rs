//! The admin API: the control plane ([`archipel_vault::Vault`]) as JSON over HTTP on the
//! admin listener, under `/admin/v1/`. The CLI uses it when a gateway serves the vault (the
//! embedded store and directory providers belong to one process), and the console will.
//!
//! * **Authentication** before anything else, the body included: `Authorization: Bearer
//!   TOKEN`, where TOKEN is derived from the root secret
//!   ([`archipel_vault::secrets::admin_token`]). No credentials → 401 with
//!   `WWW-Authenticate: Bearer`; a wrong token → 403. Only `GET /admin/v1/openapi.json` is
//!   public.
//! * **Limits**: request bodies of at most [`MAX_BODY`] bytes, read only after the token
//!   checked; `rounds` ≤ 100 and `size` ≤ 1 GiB for provider tests.
//! * **Errors**: `{"error": {"code", "message"}}` with 400 (invalid), 404 (no such
//!   provider, key or bucket), 409 (exists), 422 (a provider failed its check), 503
//!   (retryable), 500.
//! * Jobs: `GET /admin/v1/jobs`, `POST /admin/v1/jobs` (`{"kind": "scrub", "bucket"?,
//!   "rate_bytes_per_s"?}`), `GET /admin/v1/jobs/{id}`, `POST /admin/v1/jobs/{id}/cancel`.
//! * The routes are [`route`], a pure function covered by a table test; the OpenAPI
//!   description (`admin-openapi.json`, served at `/admin/v1/openapi.json`) is checked
//!   against it by a test, so neither drifts from the other.

use archipel_engine::{EngineError, ProviderState};
use archipel_vault::{NewProvider, Perms, Vault, VaultError};
use bytes::Bytes;
use http::{Method, Response, StatusCode};
use http_body_util::{BodyExt, Full, Limited};
use serde::Deserialize;
use serde_json::json;

/// The OpenAPI description of this API.
pub const OPENAPI: &str = include_str!("../admin-openapi.json");

/// The largest request body accepted.
pub const MAX_BODY: usize = 64 * 1024;

/// One operation of the admin API.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Endpoint {
    OpenApi,
    Status,
    ListProviders,
    AddProvider,
    TestProviders,
    TestProvider(String),
    UpdateProvider(String),
    DrainProvider(String),
    RetireProvider(String),
    ExitPlan(String),
    Placement,
    ListAudits,
    StartAudit,
    ListKeys,
    CreateKey,
    DeleteKey(String),
    Grant { id: String, bucket: String },
    ListBuckets,
    CreateBucket,
    SetBucketPolicy(String),
    DefaultPolicy,
    ListJobs,
    ListServices,
    Snapshot,
    LastSnapshot,
    StartJob,
    GetJob(String),
    CancelJob(String),
}

/// Where a request goes; `None` for a path outside the API (404) and `Some(Err(()))` for a
/// known path with a method it does not take (405).
pub(crate) fn route(method: &Method, path: &str) -> Option<Result<Endpoint, ()>> {
    let rest = path.strip_prefix("/admin/v1/")?;
    let parts: Vec<&str> = rest.split('/').collect();
    let m = method.clone();
    let e = match (parts.as_slice(), m) {
        (["openapi.json"], Method::GET) => Endpoint::OpenApi,
        (["status"], Method::GET) => Endpoint::Status,
        (["providers"], Method::GET) => Endpoint::ListProviders,
        (["providers"], Method::POST) => Endpoint::AddProvider,
        (["providers", "test"], Method::POST) => Endpoint::TestProviders,
        (["providers", n, "test"], Method::POST) if !n.is_empty() => {
            Endpoint::TestProvider((*n).to_string())
        }
        (["providers", n], Method::PATCH) if !n.is_empty() && *n != "test" => {
            Endpoint::UpdateProvider((*n).to_string())
        }
        (["providers", n, "drain"], Method::POST) if !n.is_empty() => {
            Endpoint::DrainProvider((*n).to_string())
        }
        (["providers", n, "retire"], Method::POST) if !n.is_empty() => {
            Endpoint::RetireProvider((*n).to_string())
        }
        (["providers", n, "exit-plan"], Method::GET) if !n.is_empty() => {
            Endpoint::ExitPlan((*n).to_string())
        }
        (["placement"], Method::GET) => Endpoint::Placement,
        (["audits"], Method::GET) => Endpoint::ListAudits,
        (["audits"], Method::POST) => Endpoint::StartAudit,
        (["keys"], Method::GET) => Endpoint::ListKeys,
        (["keys"], Method::POST) => Endpoint::CreateKey,
        (["keys", id], Method::DELETE) if !id.is_empty() => Endpoint::DeleteKey((*id).to_string()),
        (["keys", id, "grants", b], Method::PUT) if !id.is_empty() && !b.is_empty() => {
            Endpoint::Grant {
                id: (*id).to_string(),
                bucket: (*b).to_string(),
            }
        }
        (["buckets"], Method::GET) => Endpoint::ListBuckets,
        (["buckets"], Method::POST) => Endpoint::CreateBucket,
        (["buckets", b, "policy"], Method::PUT) if !b.is_empty() => {
            Endpoint::SetBucketPolicy((*b).to_string())
        }
        (["policy"], Method::GET) => Endpoint::DefaultPolicy,
        (["jobs"], Method::GET) => Endpoint::ListJobs,
        (["services"], Method::GET) => Endpoint::ListServices,
        (["snapshots"], Method::POST) => Endpoint::Snapshot,
        (["snapshots", "last"], Method::GET) => Endpoint::LastSnapshot,
        (["jobs"], Method::POST) => Endpoint::StartJob,
        (["jobs", id], Method::GET) if !id.is_empty() => Endpoint::GetJob((*id).to_string()),
        (["jobs", id, "cancel"], Method::POST) if !id.is_empty() => {
            Endpoint::CancelJob((*id).to_string())
        }
        (
            ["openapi.json"]
            | ["status"]
            | ["providers"]
            | ["providers", "test"]
            | ["providers", _]
            | ["providers", _, "test"]
            | ["providers", _, "drain"]
            | ["providers", _, "retire"]
            | ["providers", _, "exit-plan"]
            | ["placement"]
            | ["audits"]
            | ["keys"]
            | ["keys", _]
            | ["keys", _, "grants", _]
            | ["buckets"]
            | ["buckets", _, "policy"]
            | ["policy"]
            | ["jobs"]
            | ["services"]
            | ["snapshots"]
            | ["snapshots", "last"]
            | ["jobs", _]
            | ["jobs", _, "cancel"],
            _,
        ) => return Some(Err(())),
        _ => return None,
    };
    Some(Ok(e))
}

fn json_response(status: StatusCode, body: &serde_json::Value) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::from(body.to_string())));
    *r.status_mut() = status;
    r.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/json"),
    );
    r.headers_mut().insert(
        http::header::CACHE_CONTROL,
        http::HeaderValue::from_static("no-store"),
    );
    r
}

fn ok<T: serde::Serialize>(status: StatusCode, v: &T) -> Response<Full<Bytes>> {
    match serde_json::to_value(v) {
        Ok(v) => json_response(status, &v),
        Err(e) => error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "Internal",
            &e.to_string(),
        ),
    }
}

fn error(status: StatusCode, code: &str, message: &str) -> Response<Full<Bytes>> {
    json_response(
        status,
        &json!({"error": {"code": code, "message": message}}),
    )
}

fn vault_error(e: &VaultError) -> Response<Full<Bytes>> {
    let (status, code) = match e {
        VaultError::NoSuchProvider { .. } => (StatusCode::NOT_FOUND, "NoSuchProvider"),
        VaultError::NoSuchKey { .. } => (StatusCode::NOT_FOUND, "NoSuchKey"),
        VaultError::NoSuchJob { .. } => (StatusCode::NOT_FOUND, "NoSuchJob"),
        VaultError::Engine(EngineError::NoSuchBucket { .. }) => {
            (StatusCode::NOT_FOUND, "NoSuchBucket")
        }
        VaultError::ProviderExists { .. } => (StatusCode::CONFLICT, "ProviderExists"),
        VaultError::Engine(EngineError::Meta(archipel_meta::MetaError::BucketExists {
            ..
        })) => (StatusCode::CONFLICT, "BucketExists"),
        VaultError::Providers(_) => (StatusCode::UNPROCESSABLE_ENTITY, "ProviderCheckFailed"),
        VaultError::Invalid(_) | VaultError::Engine(_) if !e.is_retryable() => {
            (StatusCode::BAD_REQUEST, "InvalidRequest")
        }
        _ if e.is_retryable() => (StatusCode::SERVICE_UNAVAILABLE, "Unavailable"),
        _ => (StatusCode::INTERNAL_SERVER_ERROR, "Internal"),
    };
    error(status, code, &e.to_string())
}

fn bearer(req: &http::request::Parts) -> Option<&str> {
    let v = req
        .headers
        .get(http::header::AUTHORIZATION)?
        .to_str()
        .ok()?;
    let (scheme, token) = v.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then_some(token.trim())
}

/// The value of query parameter `name` (percent-decoded), if given.
fn query_str(query: Option<&str>, name: &str) -> Option<String> {
    query?.split('&').find_map(|pair| {
        let (k, v) = pair.split_once('=')?;
        (k == name).then(|| crate::guard::percent_decode(v))
    })
}

fn query_u64(query: Option<&str>, name: &str) -> Result<Option<u64>, String> {
    let Some(q) = query else { return Ok(None) };
    for pair in q.split('&') {
        if let Some((k, v)) = pair.split_once('=')
            && k == name
        {
            return v
                .parse()
                .map(Some)
                .map_err(|_| format!("query parameter {name}={v:?} is not a number"));
        }
    }
    Ok(None)
}

async fn read_json<T: serde::de::DeserializeOwned>(
    body: hyper::body::Incoming,
) -> Result<T, Response<Full<Bytes>>> {
    read_json_or(body, None).await
}

/// Like [`read_json`]; an empty body is `empty` when given.
async fn read_json_or<T: serde::de::DeserializeOwned>(
    body: hyper::body::Incoming,
    empty: Option<T>,
) -> Result<T, Response<Full<Bytes>>> {
    let bytes = Limited::new(body, MAX_BODY)
        .collect()
        .await
        .map_err(|e| {
            error(
                StatusCode::PAYLOAD_TOO_LARGE,
                "InvalidRequest",
                &format!("request body: {e} (at most {MAX_BODY} bytes)"),
            )
        })?
        .to_bytes();
    if bytes.is_empty()
        && let Some(v) = empty
    {
        return Ok(v);
    }
    serde_json::from_slice(&bytes).map_err(|e| {
        error(
            StatusCode::BAD_REQUEST,
            "InvalidRequest",
            &format!("request body: {e}"),
        )
    })
}

#[derive(Deserialize)]
struct CreateKeyBody {
    #[serde(default)]
    owner: String,
    #[serde(default)]
    bucket: Option<String>,
    #[serde(default, flatten)]
    perms: Perms,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PolicyBody {
    #[serde(default)]
    name: Option<String>,
    /// `Policy::encode` text.
    #[serde(default)]
    policy: Option<String>,
}

#[derive(Deserialize)]
struct StartJobBody {
    kind: archipel_vault::JobKind,
    #[serde(default, flatten)]
    params: archipel_vault::JobParams,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct AuditBody {
    #[serde(default)]
    provider: Option<String>,
    #[serde(default)]
    budget_bytes: Option<u64>,
    #[serde(default)]
    rate_bytes_per_s: Option<u64>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct DrainBody {
    #[serde(default)]
    rate_bytes_per_s: Option<u64>,
    #[serde(default)]
    onto: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct UpdateProviderBody {
    #[serde(default)]
    state: Option<String>,
    #[serde(default)]
    weight: Option<u32>,
}

/// Answers an admin API request (`endpoint` from [`route`]).
pub(crate) async fn handle(
    vault: Option<&Vault>,
    endpoint: Endpoint,
    req: http::Request<hyper::body::Incoming>,
) -> Response<Full<Bytes>> {
    if endpoint == Endpoint::OpenApi {
        let mut r = Response::new(Full::new(Bytes::from_static(OPENAPI.as_bytes())));
        r.headers_mut().insert(
            http::header::CONTENT_TYPE,
            http::HeaderValue::from_static("application/json"),
        );
        return r;
    }
    let Some(vault) = vault else {
        return error(
            StatusCode::NOT_FOUND,
            "NotServed",
            "this listener does not serve the admin API",
        );
    };
    let (parts, body) = req.into_parts();
    match bearer(&parts) {
        None => {
            let mut r = error(
                StatusCode::UNAUTHORIZED,
                "Unauthorized",
                "the admin API needs `Authorization: Bearer TOKEN` (the token derived from the \
                 root credentials; the archipel CLI sends it)",
            );
            r.headers_mut().insert(
                http::header::WWW_AUTHENTICATE,
                http::HeaderValue::from_static("Bearer realm=\"archipel admin\""),
            );
            return r;
        }
        Some(t)
            if !archipel_vault::secrets::admin_token_matches(
                vault.credentials().secret_key.as_str(),
                t,
            ) =>
        {
            return error(
                StatusCode::FORBIDDEN,
                "AccessDenied",
                "the admin token does not match this vault's root credentials",
            );
        }
        Some(_) => {}
    }
    let query = parts.uri.query();
    match endpoint {
        Endpoint::OpenApi => unreachable_openapi(),
        Endpoint::Status => match archipel_vault::status::collect(vault).await {
            Ok(s) => ok(StatusCode::OK, &s),
            Err(e) => vault_error(&e),
        },
        Endpoint::ListProviders => match vault.list_registry().await {
            Ok(l) => ok(StatusCode::OK, &l),
            Err(e) => vault_error(&e),
        },
        Endpoint::AddProvider => {
            let new: NewProvider = match read_json(body).await {
                Ok(n) => n,
                Err(r) => return r,
            };
            let spec = match new.into_spec() {
                Ok(s) => s,
                Err(e) => return vault_error(&e),
            };
            match vault.add_provider(spec).await {
                Ok(a) => ok(StatusCode::CREATED, &a),
                Err(e) => vault_error(&e),
            }
        }
        Endpoint::TestProviders | Endpoint::TestProvider(_) => {
            let rounds = match query_u64(query, "rounds") {
                Ok(r) => r.unwrap_or(5),
                Err(m) => return error(StatusCode::BAD_REQUEST, "InvalidRequest", &m),
            };
            let size = match query_u64(query, "size") {
                Ok(s) => s.unwrap_or(0),
                Err(m) => return error(StatusCode::BAD_REQUEST, "InvalidRequest", &m),
            };
            if rounds == 0 || rounds > 100 || size > 1 << 30 {
                return error(
                    StatusCode::BAD_REQUEST,
                    "InvalidRequest",
                    "rounds must be 1–100 and size at most 1 GiB",
                );
            }
            let names = match endpoint {
                Endpoint::TestProvider(n) => vec![n],
                _ => Vec::new(),
            };
            match vault.test_providers(&names, rounds as u32, size).await {
                Ok(t) => ok(StatusCode::OK, &t),
                Err(e) => vault_error(&e),
            }
        }
        Endpoint::UpdateProvider(name) => {
            let b: UpdateProviderBody = match read_json(body).await {
                Ok(b) => b,
                Err(r) => return r,
            };
            let state = match b.state.as_deref().map(ProviderState::parse).transpose() {
                Ok(s) => s,
                Err(_) => {
                    return error(
                        StatusCode::BAD_REQUEST,
                        "InvalidRequest",
                        "state must be active, draining or retired",
                    );
                }
            };
            // Retiring is checked: only a provider a complete drain emptied.
            if state == Some(ProviderState::Retired) {
                if let Err(e) = vault.retire_provider(&name).await {
                    return vault_error(&e);
                }
                if b.weight.is_none() {
                    return match vault.list_registry().await {
                        Ok(l) => match l.into_iter().find(|e| e.name == name) {
                            Some(e) => ok(StatusCode::OK, &e),
                            None => vault_error(&VaultError::NoSuchProvider { name }),
                        },
                        Err(e) => vault_error(&e),
                    };
                }
            }
            match vault.update_provider(&name, state, b.weight).await {
                Ok(e) => ok(StatusCode::OK, &e),
                Err(e) => vault_error(&e),
            }
        }
        Endpoint::DrainProvider(name) => {
            let b: DrainBody = match read_json_or(body, Some(DrainBody::default())).await {
                Ok(b) => b,
                Err(r) => return r,
            };
            let started = match &b.onto {
                Some(new) => vault.replace_provider(&name, new, b.rate_bytes_per_s).await,
                None => vault.drain_provider(&name, b.rate_bytes_per_s).await,
            };
            match started {
                Ok(j) => ok(StatusCode::CREATED, &j),
                Err(e) => vault_error(&e),
            }
        }
        Endpoint::RetireProvider(name) => match vault.retire_provider(&name).await {
            Ok(e) => ok(StatusCode::OK, &e),
            Err(e) => vault_error(&e),
        },
        Endpoint::ExitPlan(name) => {
            let bandwidth = match query_u64(query, "bandwidth") {
                Ok(b) => b.unwrap_or(100_000_000),
                Err(m) => return error(StatusCode::BAD_REQUEST, "InvalidRequest", &m),
            };
            match vault.exit_plan(&name, bandwidth).await {
                Ok(p) => ok(StatusCode::OK, &p),
                Err(e) => vault_error(&e),
            }
        }
        Endpoint::Placement => match vault.placement_report().await {
            Ok(c) => ok(StatusCode::OK, &c),
            Err(e) => vault_error(&e),
        },
        Endpoint::ListAudits => {
            let limit = match query_u64(query, "limit") {
                Ok(l) => l.unwrap_or(100).min(10_000) as usize,
                Err(m) => return error(StatusCode::BAD_REQUEST, "InvalidRequest", &m),
            };
            let provider = query_str(query, "provider");
            match vault.audits(provider.as_deref(), limit).await {
                Ok(a) => ok(StatusCode::OK, &a),
                Err(e) => vault_error(&e),
            }
        }
        Endpoint::StartAudit => {
            let b: AuditBody = match read_json_or(body, Some(AuditBody::default())).await {
                Ok(b) => b,
                Err(r) => return r,
            };
            match vault
                .audit_providers(b.provider.as_deref(), b.budget_bytes, b.rate_bytes_per_s)
                .await
            {
                Ok(j) => ok(StatusCode::CREATED, &j),
                Err(e) => vault_error(&e),
            }
        }
        Endpoint::ListKeys => match vault.list_keys().await {
            Ok(k) => ok(StatusCode::OK, &k),
            Err(e) => vault_error(&e),
        },
        Endpoint::CreateKey => {
            let b: CreateKeyBody = match read_json(body).await {
                Ok(b) => b,
                Err(r) => return r,
            };
            if b.bucket.is_none() && b.perms.any() {
                return error(
                    StatusCode::BAD_REQUEST,
                    "InvalidRequest",
                    "read, write and admin need a bucket",
                );
            }
            let grant = b.bucket.as_deref().map(|bk| (bk, b.perms));
            match vault.create_key(&b.owner, grant).await {
                Ok(k) => ok(StatusCode::CREATED, &k),
                Err(e) => vault_error(&e),
            }
        }
        Endpoint::DeleteKey(id) => match vault.delete_key(&id).await {
            Ok(()) => ok(StatusCode::OK, &json!({"deleted": id})),
            Err(e) => vault_error(&e),
        },
        Endpoint::Grant { id, bucket } => {
            let p: Perms = match read_json(body).await {
                Ok(p) => p,
                Err(r) => return r,
            };
            match vault.grant_key(&id, &bucket, p).await {
                Ok(()) => ok(
                    StatusCode::OK,
                    &json!({"id": id, "bucket": bucket, "permissions": p}),
                ),
                Err(e) => vault_error(&e),
            }
        }
        Endpoint::ListJobs => match vault.list_jobs().await {
            Ok(j) => ok(StatusCode::OK, &j),
            Err(e) => vault_error(&e),
        },
        Endpoint::ListServices => match vault.list_services().await {
            Ok(l) => ok(StatusCode::OK, &l),
            Err(e) => vault_error(&e),
        },
        Endpoint::Snapshot => match vault.snapshot_journal(true).await {
            Ok(Some(r)) => ok(StatusCode::CREATED, &r),
            Ok(None) => error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "Internal",
                "no snapshot was taken",
            ),
            Err(e) => vault_error(&e),
        },
        Endpoint::LastSnapshot => match vault.last_snapshot().await {
            Ok(r) => ok(StatusCode::OK, &r),
            Err(e) => vault_error(&e),
        },
        Endpoint::StartJob => {
            let b: StartJobBody = match read_json(body).await {
                Ok(b) => b,
                Err(r) => return r,
            };
            match vault.start_job(b.kind, b.params).await {
                Ok(j) => ok(StatusCode::CREATED, &j),
                Err(e) => vault_error(&e),
            }
        }
        Endpoint::GetJob(id) => match vault.job(&id).await {
            Ok(j) => ok(StatusCode::OK, &j),
            Err(e) => vault_error(&e),
        },
        Endpoint::CancelJob(id) => match vault.cancel_job(&id).await {
            Ok(j) => ok(StatusCode::OK, &j),
            Err(e) => vault_error(&e),
        },
        Endpoint::ListBuckets => match vault.list_bucket_views().await {
            Ok(b) => ok(StatusCode::OK, &b),
            Err(e) => vault_error(&e),
        },
        Endpoint::CreateBucket => {
            let b: PolicyBody = match read_json(body).await {
                Ok(b) => b,
                Err(r) => return r,
            };
            let Some(name) = b.name else {
                return error(
                    StatusCode::BAD_REQUEST,
                    "InvalidRequest",
                    "name is required",
                );
            };
            let policy = match b
                .policy
                .as_deref()
                .map(archipel_vault::buckets::parse_policy)
            {
                None => None,
                Some(Ok(p)) => Some(p),
                Some(Err(e)) => return vault_error(&e),
            };
            match vault.create_bucket(&name, policy).await {
                Ok(p) => ok(
                    StatusCode::CREATED,
                    &json!({"bucket": name, "policy": archipel_vault::buckets::policy_text(&p)}),
                ),
                Err(e) => vault_error(&e),
            }
        }
        Endpoint::SetBucketPolicy(name) => {
            let b: PolicyBody = match read_json(body).await {
                Ok(b) => b,
                Err(r) => return r,
            };
            let Some(text) = b.policy else {
                return error(
                    StatusCode::BAD_REQUEST,
                    "InvalidRequest",
                    "policy is required",
                );
            };
            let p = match archipel_vault::buckets::parse_policy(&text) {
                Ok(p) => p,
                Err(e) => return vault_error(&e),
            };
            match vault.engine().set_bucket_policy(&name, &p).await {
                Ok(()) => ok(StatusCode::OK, &json!({"bucket": name, "policy": text})),
                Err(e) => vault_error(&VaultError::Engine(e)),
            }
        }
        Endpoint::DefaultPolicy => ok(
            StatusCode::OK,
            &json!({"policy": archipel_vault::buckets::policy_text(vault.default_policy())}),
        ),
    }
}

/// Routes `method path` and decodes `body` as the request body of the operation it reaches,
/// for fuzzing the admin API's parsing of untrusted input (nothing is carried out).
#[cfg(feature = "fuzzing")]
pub fn fuzz_request(method: &[u8], path: &str, body: &[u8]) {
    let Ok(m) = Method::from_bytes(method) else {
        return;
    };
    let Some(Ok(e)) = route(&m, path) else { return };
    match e {
        Endpoint::AddProvider => {
            if let Ok(n) = serde_json::from_slice::<NewProvider>(body) {
                let _ = n.into_spec();
            }
        }
        Endpoint::CreateKey => {
            let _ = serde_json::from_slice::<CreateKeyBody>(body);
        }
        Endpoint::UpdateProvider(_) => {
            if let Ok(b) = serde_json::from_slice::<UpdateProviderBody>(body) {
                let _ = b.state.as_deref().map(ProviderState::parse);
            }
        }
        Endpoint::Grant { .. } => {
            let _ = serde_json::from_slice::<Perms>(body);
        }
        Endpoint::StartJob => {
            let _ = serde_json::from_slice::<StartJobBody>(body);
        }
        Endpoint::CreateBucket | Endpoint::SetBucketPolicy(_) => {
            if let Ok(b) = serde_json::from_slice::<PolicyBody>(body)
                && let Some(p) = b.policy
            {
                let _ = archipel_vault::buckets::parse_policy(&p);
            }
        }
        _ => {}
    }
}

fn unreachable_openapi() -> Response<Full<Bytes>> {
    error(
        StatusCode::INTERNAL_SERVER_ERROR,
        "Internal",
        "openapi is answered before authentication",
    )
}

/// Every route as `(METHOD, /admin/v1/template)`, for the OpenAPI test.
#[cfg(test)]
pub(crate) const ROUTES: &[(&str, &str)] = &[
    ("GET", "/admin/v1/openapi.json"),
    ("GET", "/admin/v1/status"),
    ("GET", "/admin/v1/providers"),
    ("POST", "/admin/v1/providers"),
    ("POST", "/admin/v1/providers/test"),
    ("POST", "/admin/v1/providers/{name}/test"),
    ("PATCH", "/admin/v1/providers/{name}"),
    ("POST", "/admin/v1/providers/{name}/drain"),
    ("POST", "/admin/v1/providers/{name}/retire"),
    ("GET", "/admin/v1/providers/{name}/exit-plan"),
    ("GET", "/admin/v1/placement"),
    ("GET", "/admin/v1/audits"),
    ("POST", "/admin/v1/audits"),
    ("GET", "/admin/v1/keys"),
    ("POST", "/admin/v1/keys"),
    ("DELETE", "/admin/v1/keys/{id}"),
    ("PUT", "/admin/v1/keys/{id}/grants/{bucket}"),
    ("GET", "/admin/v1/buckets"),
    ("POST", "/admin/v1/buckets"),
    ("PUT", "/admin/v1/buckets/{bucket}/policy"),
    ("GET", "/admin/v1/policy"),
    ("GET", "/admin/v1/jobs"),
    ("GET", "/admin/v1/services"),
    ("POST", "/admin/v1/snapshots"),
    ("GET", "/admin/v1/snapshots/last"),
    ("POST", "/admin/v1/jobs"),
    ("GET", "/admin/v1/jobs/{id}"),
    ("POST", "/admin/v1/jobs/{id}/cancel"),
];

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    #[test]
    fn routes_are_a_table() {
        let r = |m: &str, p: &str| route(&Method::from_bytes(m.as_bytes()).unwrap(), p);
        assert_eq!(r("GET", "/admin/v1/status"), Some(Ok(Endpoint::Status)));
        assert_eq!(
            r("POST", "/admin/v1/providers"),
            Some(Ok(Endpoint::AddProvider))
        );
        assert_eq!(
            r("POST", "/admin/v1/providers/test"),
            Some(Ok(Endpoint::TestProviders))
        );
        assert_eq!(
            r("POST", "/admin/v1/providers/p1/test"),
            Some(Ok(Endpoint::TestProvider("p1".into())))
        );
        assert_eq!(
            r("PATCH", "/admin/v1/providers/p1"),
            Some(Ok(Endpoint::UpdateProvider("p1".into())))
        );
        assert_eq!(
            r("DELETE", "/admin/v1/keys/AK1"),
            Some(Ok(Endpoint::DeleteKey("AK1".into())))
        );
        assert_eq!(
            r("PUT", "/admin/v1/keys/AK1/grants/b"),
            Some(Ok(Endpoint::Grant {
                id: "AK1".into(),
                bucket: "b".into()
            }))
        );
        assert_eq!(r("DELETE", "/admin/v1/status"), Some(Err(())));
        assert_eq!(r("GET", "/admin/v1/keys/AK1"), Some(Err(())));
        assert_eq!(r("GET", "/admin/v1/nothing"), None);
        assert_eq!(r("GET", "/metrics"), None);
        assert_eq!(r("DELETE", "/admin/v1/keys/"), Some(Err(())));
    }

    /// The OpenAPI description lists exactly the routes [`route`] serves, each with the
    /// method it takes.
    #[test]
    fn openapi_matches_the_router() {
        let doc: serde_json::Value = serde_json::from_str(OPENAPI).unwrap();
        assert_eq!(doc["openapi"].as_str().map(|v| &v[..2]), Some("3."));
        let mut documented = Vec::new();
        for (path, item) in doc["paths"].as_object().unwrap() {
            for (method, op) in item.as_object().unwrap() {
                assert!(
                    op["responses"].is_object(),
                    "{method} {path} documents its responses"
                );
                documented.push((method.to_uppercase(), path.clone()));
            }
        }
        documented.sort();
        let mut served: Vec<(String, String)> = ROUTES
            .iter()
            .map(|(m, p)| (m.to_string(), p.to_string()))
            .collect();
        served.sort();
        assert_eq!(documented, served);
        for (m, template) in ROUTES {
            let concrete = template
                .replace("{name}", "p1")
                .replace("{id}", "AK1")
                .replace("{bucket}", "bkt");
            let method = Method::from_bytes(m.as_bytes()).unwrap();
            assert!(
                matches!(route(&method, &concrete), Some(Ok(_))),
                "{m} {concrete} is routed"
            );
        }
    }
}
