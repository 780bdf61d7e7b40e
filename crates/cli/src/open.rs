//! Opens a vault from [`Settings`]: the data directory, the metadata store, the master key,
//! the root credentials, the providers (checked), and the engine over them. Shared by
//! `archipel serve` and the operator commands.

use std::sync::Arc;

use anyhow::{Context, anyhow};
use archipel_engine::{Engine, EngineOptions, Policy, ProviderState};
use archipel_meta::{
    CheckpointName, EmbeddedOptions, MetaError, MetaStore, PostgresOptions, ProviderName,
    ProviderRecord, SqlMetaStore,
};

use crate::config::{MetaSetting, Settings};
use crate::providers::{self, Built};
use crate::vault::{self, Credentials, Unlocked};

/// The checkpoint holding the default policy for new buckets (`Policy::encode` lines), written
/// from `[policy]` at every start and removed when the file has none. The gateway and the
/// CLI's `bucket create` use it when a bucket is created without a policy of its own.
pub(crate) const DEFAULT_POLICY_CHECKPOINT: &str = "default-policy";

/// An open vault.
#[derive(Debug)]
pub(crate) struct Vault {
    /// The engine.
    pub(crate) engine: Engine,
    /// The metadata store (to close at the end).
    pub(crate) meta: SqlMetaStore,
    /// The providers, layered, with their counters.
    pub(crate) providers: Vec<Built>,
    /// The key and header.
    pub(crate) unlocked: Unlocked,
    /// The root credentials.
    pub(crate) credentials: Credentials,
    /// The default policy for new buckets.
    pub(crate) default_policy: Policy,
}

impl Vault {
    /// Closes the metadata store (after its queued writes).
    pub(crate) async fn close(self) {
        self.meta.close().await;
    }
}

/// Opens the metadata store.
pub(crate) async fn open_meta(settings: &Settings) -> anyhow::Result<SqlMetaStore> {
    match &settings.meta {
        MetaSetting::Embedded(dir) => SqlMetaStore::open_embedded(EmbeddedOptions::new(dir))
            .await
            .map_err(|e| match e {
                MetaError::Locked { path } => anyhow!(
                    "the vault in {} is in use by another archipel process (lock {path}); \
                     stop it first (or share a PostgreSQL metadata store between gateways)",
                    settings.data_dir.display()
                ),
                e => anyhow!("cannot open the metadata store in {}: {e}", dir.display()),
            }),
        MetaSetting::Postgres {
            url,
            schema,
            max_connections,
        } => {
            let mut o = PostgresOptions::new(url.clone());
            o.schema = schema.clone();
            if let Some(n) = max_connections {
                o.max_connections = *n;
            }
            SqlMetaStore::connect_postgres(o)
                .await
                .map_err(|e| anyhow!("cannot connect to the PostgreSQL metadata store: {e}"))
        }
    }
}

fn checkpoint(name: &str) -> anyhow::Result<CheckpointName> {
    CheckpointName::new(name).map_err(|e| anyhow!("{e}"))
}

/// Opens the vault; `check` probes every provider first.
pub(crate) async fn open(settings: &Settings, check: bool) -> anyhow::Result<Vault> {
    vault::ensure_data_dir(&settings.data_dir)?;
    let meta = open_meta(settings).await?;
    match open_with(settings, check, meta.clone()).await {
        Ok(v) => Ok(v),
        Err(e) => {
            meta.close().await;
            Err(e)
        }
    }
}

async fn open_with(settings: &Settings, check: bool, meta: SqlMetaStore) -> anyhow::Result<Vault> {
    let unlocked = vault::unlock(settings, &meta).await?;
    let credentials = vault::credentials(settings)?;
    let providers = providers::build_all(&settings.providers, check).await?;
    let dyn_meta: Arc<dyn MetaStore> = Arc::new(meta.clone());
    let engine = Engine::new(
        unlocked.key.clone(),
        dyn_meta,
        providers.iter().map(|b| b.slot.clone()).collect(),
        EngineOptions {
            default_policy: settings.policy.clone(),
            ..EngineOptions::default()
        },
    )
    .context("cannot start the engine")?;
    // What the start-up probe saw seeds the engine's view of each provider, so a provider that
    // is already slow is avoided from the first read (a probe is a put, a get and a delete).
    for b in &providers {
        if let Some(rt) = b.probe {
            engine.health().record_ok(&b.slot.info.name, rt / 3);
        }
    }
    record_providers(settings, &meta).await?;
    let default_policy = match &settings.policy {
        Some(p) => {
            meta.put_checkpoint(&checkpoint(DEFAULT_POLICY_CHECKPOINT)?, &p.encode())
                .await?;
            p.clone()
        }
        None => {
            meta.delete_checkpoint(&checkpoint(DEFAULT_POLICY_CHECKPOINT)?)
                .await?;
            engine
                .default_policy()
                .map_err(|e| anyhow!("no usable default policy for these providers: {e}"))?
        }
    };
    Ok(Vault {
        engine,
        meta,
        providers,
        unlocked,
        credentials,
        default_policy,
    })
}

/// Records the providers in the metadata store's registry (labels only: connection settings
/// and secrets stay in the configuration), and warns about providers recorded earlier that the
/// configuration no longer has (shards on them are unreachable now).
async fn record_providers(settings: &Settings, meta: &SqlMetaStore) -> anyhow::Result<()> {
    let known = meta.list_providers().await?;
    for old in &known {
        let present = settings
            .providers
            .iter()
            .any(|p| p.info.name == old.name.as_str());
        if !present && old.state != archipel_meta::ProviderState::Retired {
            tracing::warn!(
                "provider `{}` was part of this vault but is not configured any more: shards it \
                 holds cannot be read (objects stay readable while enough other shards remain)",
                old.name
            );
        }
    }
    for p in &settings.providers {
        let labels = [
            ("kind", p.backend.kind().to_string()),
            ("operator", p.info.operator.clone()),
            ("jurisdiction", p.info.jurisdiction.clone()),
            ("weight", p.info.weight.to_string()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
        let record = ProviderRecord {
            name: ProviderName::new(p.info.name.clone()).map_err(|e| anyhow!("{e}"))?,
            labels,
            state: match p.info.state {
                ProviderState::Active => archipel_meta::ProviderState::Active,
                ProviderState::Draining => archipel_meta::ProviderState::Draining,
                _ => archipel_meta::ProviderState::Retired,
            },
            config: Vec::new(),
        };
        meta.put_provider(&record).await?;
    }
    Ok(())
}
