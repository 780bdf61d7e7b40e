//! The operator commands' way to a vault: through the admin API of the gateway that serves
//! it, when one answers at the configuration's admin address, else by opening the vault in
//! this process ([`Control::Local`]; refused while another process holds the embedded store).
//! Same commands, same output, whichever way.

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::{Context, anyhow, bail};
use archipel_vault::{
    AddedProvider, CreatedKey, JobKind, JobParams, JobRecord, KeyView, NewProvider, Perms,
    ProviderSpec, ProviderTest, RegistryEntry, Status, Vault,
};
use serde::de::DeserializeOwned;

use crate::config::{Listen, Settings};
use crate::ops::VaultArgs;

/// A running gateway's admin API.
pub(crate) struct Admin {
    base: String,
    token: String,
    http: reqwest::Client,
}

/// How long the CLI waits for a gateway to answer `/health` before opening the vault itself.
const PROBE_TIMEOUT: Duration = Duration::from_millis(1500);

impl Admin {
    /// The gateway serving `settings`' vault, if one answers at its admin address.
    pub(crate) async fn find(settings: &Settings) -> anyhow::Result<Option<Admin>> {
        let Listen::At(addr) = settings.admin_listen else {
            return Ok(None);
        };
        let addr = crate::serve::reachable(addr);
        let http = reqwest::Client::builder()
            .connect_timeout(PROBE_TIMEOUT)
            .build()
            .context("cannot build the HTTP client")?;
        let base = format!("http://{}", fmt_addr(addr));
        let health = http
            .get(format!("{base}/health"))
            .timeout(PROBE_TIMEOUT)
            .send()
            .await;
        match health {
            Ok(r) if r.status().is_success() => {}
            _ => return Ok(None),
        }
        // The root credentials give the token; a gateway of another vault refuses it.
        let credentials = archipel_vault::secrets::credentials(settings)?;
        Ok(Some(Admin {
            base,
            token: archipel_vault::secrets::admin_token(credentials.secret_key.as_str()),
            http,
        }))
    }

    async fn call<T: DeserializeOwned>(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<serde_json::Value>,
    ) -> anyhow::Result<T> {
        let url = format!("{}/admin/v1/{path}", self.base);
        let mut req = self
            .http
            .request(method.clone(), &url)
            .bearer_auth(&self.token);
        if let Some(b) = body {
            req = req
                .header("content-type", "application/json")
                .body(b.to_string());
        }
        let resp = req
            .send()
            .await
            .with_context(|| format!("the gateway's admin API at {} did not answer", self.base))?;
        let status = resp.status();
        let text = resp
            .text()
            .await
            .with_context(|| format!("reading the admin API's answer to {method} {path}"))?;
        if !status.is_success() {
            let message = serde_json::from_str::<serde_json::Value>(&text)
                .ok()
                .and_then(|v| v["error"]["message"].as_str().map(str::to_string))
                .unwrap_or(text);
            if status == reqwest::StatusCode::FORBIDDEN {
                bail!(
                    "the gateway at {} refused this vault's admin token ({message}): is it \
                     serving another vault?",
                    self.base
                );
            }
            bail!("{message}");
        }
        serde_json::from_str(&text)
            .map_err(|e| anyhow!("the admin API's answer to {method} {path} is not valid: {e}"))
    }
}

fn fmt_addr(a: SocketAddr) -> String {
    a.to_string()
}

/// A vault reached through a gateway, or opened here.
pub(crate) enum Control {
    /// Through the admin API of the gateway that serves it.
    Remote(Admin),
    /// Opened by this process (no gateway serves it).
    Local(Vault),
}

impl Control {
    /// The vault of `args`: through its gateway when one runs, else opened here.
    pub(crate) async fn open(args: &VaultArgs) -> anyhow::Result<Control> {
        let settings = args.settings()?;
        if let Some(a) = Admin::find(&settings).await? {
            return Ok(Control::Remote(a));
        }
        Ok(Control::Local(Vault::open_existing(&settings).await?))
    }

    /// Runs `f` on the vault of `args` and closes it whatever happens.
    pub(crate) async fn with<T>(
        args: &VaultArgs,
        f: impl AsyncFnOnce(&Control) -> anyhow::Result<T>,
    ) -> anyhow::Result<T> {
        let c = Control::open(args).await?;
        let r = f(&c).await;
        if let Control::Local(v) = c {
            v.close().await;
        }
        r
    }

    /// The root access key id, when known here (for `key list`'s footer).
    pub(crate) fn root_key(&self, args: &VaultArgs) -> String {
        match self {
            Control::Local(v) => v.credentials().access_key.clone(),
            Control::Remote(_) => args
                .settings()
                .ok()
                .and_then(|s| archipel_vault::secrets::credentials(&s).ok())
                .map(|c| c.access_key)
                .unwrap_or_default(),
        }
    }

    pub(crate) async fn list_keys(&self) -> anyhow::Result<Vec<KeyView>> {
        match self {
            Control::Local(v) => Ok(v.list_keys().await?),
            Control::Remote(a) => a.call(reqwest::Method::GET, "keys", None).await,
        }
    }

    pub(crate) async fn create_key(
        &self,
        owner: &str,
        grant: Option<(&str, Perms)>,
    ) -> anyhow::Result<CreatedKey> {
        match self {
            Control::Local(v) => Ok(v.create_key(owner, grant).await?),
            Control::Remote(a) => {
                let mut body = serde_json::json!({"owner": owner});
                if let Some((b, p)) = grant {
                    body["bucket"] = b.into();
                    body["read"] = p.read.into();
                    body["write"] = p.write.into();
                    body["admin"] = p.admin.into();
                }
                a.call(reqwest::Method::POST, "keys", Some(body)).await
            }
        }
    }

    pub(crate) async fn delete_key(&self, id: &str) -> anyhow::Result<()> {
        match self {
            Control::Local(v) => Ok(v.delete_key(id).await?),
            Control::Remote(a) => {
                let _: serde_json::Value = a
                    .call(reqwest::Method::DELETE, &format!("keys/{}", seg(id)), None)
                    .await?;
                Ok(())
            }
        }
    }

    pub(crate) async fn grant_key(&self, id: &str, bucket: &str, p: Perms) -> anyhow::Result<()> {
        match self {
            Control::Local(v) => Ok(v.grant_key(id, bucket, p).await?),
            Control::Remote(a) => {
                let _: serde_json::Value = a
                    .call(
                        reqwest::Method::PUT,
                        &format!("keys/{}/grants/{}", seg(id), seg(bucket)),
                        Some(serde_json::to_value(p)?),
                    )
                    .await?;
                Ok(())
            }
        }
    }

    pub(crate) async fn status(&self) -> anyhow::Result<Status> {
        match self {
            Control::Local(v) => Ok(archipel_vault::status::collect(v).await?),
            Control::Remote(a) => a.call(reqwest::Method::GET, "status", None).await,
        }
    }

    pub(crate) async fn registry(&self) -> anyhow::Result<Vec<RegistryEntry>> {
        match self {
            Control::Local(v) => Ok(v.list_registry().await?),
            Control::Remote(a) => a.call(reqwest::Method::GET, "providers", None).await,
        }
    }

    pub(crate) async fn add_provider(&self, spec: &ProviderSpec) -> anyhow::Result<AddedProvider> {
        match self {
            Control::Local(v) => Ok(v.add_provider(spec.clone()).await?),
            Control::Remote(a) => {
                let body = serde_json::to_value(NewProvider::from_spec(spec))?;
                a.call(reqwest::Method::POST, "providers", Some(body)).await
            }
        }
    }
}

impl Control {
    pub(crate) async fn list_jobs(&self) -> anyhow::Result<Vec<JobRecord>> {
        match self {
            Control::Local(v) => Ok(v.list_jobs().await?),
            Control::Remote(a) => a.call(reqwest::Method::GET, "jobs", None).await,
        }
    }

    pub(crate) async fn job(&self, id: &str) -> anyhow::Result<JobRecord> {
        match self {
            Control::Local(v) => Ok(v.job(id).await?),
            Control::Remote(a) => {
                a.call(reqwest::Method::GET, &format!("jobs/{}", seg(id)), None)
                    .await
            }
        }
    }

    pub(crate) async fn start_job(
        &self,
        kind: JobKind,
        params: &JobParams,
    ) -> anyhow::Result<JobRecord> {
        match self {
            Control::Local(v) => Ok(v.start_job(kind, params.clone()).await?),
            Control::Remote(a) => {
                let mut body = serde_json::to_value(params)?;
                body["kind"] = serde_json::to_value(kind)?;
                a.call(reqwest::Method::POST, "jobs", Some(body)).await
            }
        }
    }

    pub(crate) async fn cancel_job(&self, id: &str) -> anyhow::Result<JobRecord> {
        match self {
            Control::Local(v) => Ok(v.cancel_job(id).await?),
            Control::Remote(a) => {
                a.call(
                    reqwest::Method::POST,
                    &format!("jobs/{}/cancel", seg(id)),
                    None,
                )
                .await
            }
        }
    }

    pub(crate) async fn list_services(
        &self,
    ) -> anyhow::Result<Vec<archipel_vault::services::ServiceRecord>> {
        match self {
            Control::Local(v) => Ok(v.list_services().await?),
            Control::Remote(a) => a.call(reqwest::Method::GET, "services", None).await,
        }
    }

    pub(crate) async fn list_buckets(&self) -> anyhow::Result<Vec<archipel_vault::BucketView>> {
        match self {
            Control::Local(v) => Ok(v.list_bucket_views().await?),
            Control::Remote(a) => a.call(reqwest::Method::GET, "buckets", None).await,
        }
    }

    pub(crate) async fn default_policy(&self) -> anyhow::Result<archipel_engine::Policy> {
        match self {
            Control::Local(v) => Ok(v.default_policy().clone()),
            Control::Remote(a) => {
                let r: serde_json::Value = a.call(reqwest::Method::GET, "policy", None).await?;
                Ok(archipel_vault::buckets::parse_policy(
                    r["policy"].as_str().unwrap_or_default(),
                )?)
            }
        }
    }

    pub(crate) async fn bucket_policy(
        &self,
        name: &str,
    ) -> anyhow::Result<archipel_engine::Policy> {
        match self {
            Control::Local(v) => Ok(v.engine().bucket_policy(name).await?),
            Control::Remote(_) => {
                let b = self
                    .list_buckets()
                    .await?
                    .into_iter()
                    .find(|b| b.name == name)
                    .ok_or_else(|| anyhow!("the bucket {name:?} does not exist"))?;
                Ok(b.decoded_policy()?)
            }
        }
    }

    pub(crate) async fn create_bucket(
        &self,
        name: &str,
        policy: &archipel_engine::Policy,
    ) -> anyhow::Result<archipel_engine::Policy> {
        match self {
            Control::Local(v) => Ok(v.create_bucket(name, Some(policy.clone())).await?),
            Control::Remote(a) => {
                let body = serde_json::json!({
                    "name": name,
                    "policy": archipel_vault::buckets::policy_text(policy),
                });
                let r: serde_json::Value =
                    a.call(reqwest::Method::POST, "buckets", Some(body)).await?;
                Ok(archipel_vault::buckets::parse_policy(
                    r["policy"].as_str().unwrap_or_default(),
                )?)
            }
        }
    }

    pub(crate) async fn set_bucket_policy(
        &self,
        name: &str,
        policy: &archipel_engine::Policy,
    ) -> anyhow::Result<()> {
        match self {
            Control::Local(v) => Ok(v.engine().set_bucket_policy(name, policy).await?),
            Control::Remote(a) => {
                let body =
                    serde_json::json!({"policy": archipel_vault::buckets::policy_text(policy)});
                let _: serde_json::Value = a
                    .call(
                        reqwest::Method::PUT,
                        &format!("buckets/{}/policy", seg(name)),
                        Some(body),
                    )
                    .await?;
                Ok(())
            }
        }
    }

    pub(crate) async fn drain_provider(
        &self,
        name: &str,
        rate: Option<u64>,
        onto: Option<&str>,
    ) -> anyhow::Result<JobRecord> {
        match self {
            Control::Local(v) => Ok(match onto {
                Some(new) => v.replace_provider(name, new, rate).await?,
                None => v.drain_provider(name, rate).await?,
            }),
            Control::Remote(a) => {
                let body = serde_json::json!({ "rate_bytes_per_s": rate, "onto": onto });
                a.call(
                    reqwest::Method::POST,
                    &format!("providers/{}/drain", seg(name)),
                    Some(body),
                )
                .await
            }
        }
    }

    pub(crate) async fn retire_provider(&self, name: &str) -> anyhow::Result<RegistryEntry> {
        match self {
            Control::Local(v) => Ok(v.retire_provider(name).await?),
            Control::Remote(a) => {
                a.call(
                    reqwest::Method::POST,
                    &format!("providers/{}/retire", seg(name)),
                    None,
                )
                .await
            }
        }
    }

    pub(crate) async fn exit_plan(
        &self,
        name: &str,
        bandwidth: u64,
    ) -> anyhow::Result<archipel_vault::ExitPlan> {
        match self {
            Control::Local(v) => Ok(v.exit_plan(name, bandwidth).await?),
            Control::Remote(a) => {
                a.call(
                    reqwest::Method::GET,
                    &format!("providers/{}/exit-plan?bandwidth={bandwidth}", seg(name)),
                    None,
                )
                .await
            }
        }
    }

    pub(crate) async fn placement(&self) -> anyhow::Result<archipel_engine::Census> {
        match self {
            Control::Local(v) => Ok(v.placement_report().await?),
            Control::Remote(a) => a.call(reqwest::Method::GET, "placement", None).await,
        }
    }

    pub(crate) async fn audit_providers(
        &self,
        provider: Option<&str>,
        budget: Option<u64>,
        rate: Option<u64>,
    ) -> anyhow::Result<JobRecord> {
        match self {
            Control::Local(v) => Ok(v.audit_providers(provider, budget, rate).await?),
            Control::Remote(a) => {
                let body = serde_json::json!({
                    "provider": provider,
                    "budget_bytes": budget,
                    "rate_bytes_per_s": rate,
                });
                a.call(reqwest::Method::POST, "audits", Some(body)).await
            }
        }
    }

    pub(crate) async fn audits(
        &self,
        provider: Option<&str>,
        limit: usize,
    ) -> anyhow::Result<Vec<archipel_vault::AuditRecord>> {
        match self {
            Control::Local(v) => Ok(v.audits(provider, limit).await?),
            Control::Remote(a) => {
                let mut path = format!("audits?limit={limit}");
                if let Some(p) = provider {
                    path.push_str(&format!("&provider={}", seg(p)));
                }
                a.call(reqwest::Method::GET, &path, None).await
            }
        }
    }

    /// Takes a snapshot of the journal now and compacts behind it.
    pub(crate) async fn snapshot(&self) -> anyhow::Result<archipel_vault::SnapshotRecord> {
        match self {
            Control::Local(v) => v
                .snapshot_journal(true)
                .await?
                .ok_or_else(|| anyhow::anyhow!("no snapshot was taken")),
            Control::Remote(a) => a.call(reqwest::Method::POST, "snapshots", None).await,
        }
    }

    /// The last snapshot taken, if any.
    pub(crate) async fn last_snapshot(
        &self,
    ) -> anyhow::Result<Option<archipel_vault::SnapshotRecord>> {
        match self {
            Control::Local(v) => Ok(v.last_snapshot().await?),
            Control::Remote(a) => a.call(reqwest::Method::GET, "snapshots/last", None).await,
        }
    }

    /// Whether jobs started here run in this process (and stop with it).
    pub(crate) fn is_local(&self) -> bool {
        matches!(self, Control::Local(_))
    }
}

/// `name` as one URL path segment.
fn seg(name: &str) -> String {
    name.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// `provider test` through a gateway: the providers it uses, tested on its own instances.
pub(crate) async fn remote_test(
    a: &Admin,
    name: Option<&str>,
    rounds: u32,
    size: u64,
) -> anyhow::Result<Vec<ProviderTest>> {
    let path = match name {
        Some(n) => format!("providers/{}/test?rounds={rounds}&size={size}", seg(n)),
        None => format!("providers/test?rounds={rounds}&size={size}"),
    };
    a.call(reqwest::Method::POST, &path, None).await
}
