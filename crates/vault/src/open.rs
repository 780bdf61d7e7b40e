//! [`Vault`]: an open vault — the metadata store, the master key, the root credentials, the
//! providers (built with the standard layer stack, kept in step with the registry) and the
//! engine over them. `archipel serve`, the operator commands that open a vault themselves
//! and the admin API all go through it.

use std::sync::{Arc, Mutex};

use archipel_engine::{Engine, EngineOptions, Policy};
use archipel_meta::{
    CheckpointName, EmbeddedOptions, Journaled, MetaError, MetaStore, PostgresOptions, SqlMetaStore,
};

use crate::error::{Result, VaultError};
use crate::secrets::{self, Credentials, Unlocked};
use crate::spec::{MetaSpec, VaultSpec};
use crate::stack::{self, Built};

/// The checkpoint holding the default policy for new buckets (`Policy::encode` lines), written
/// from `[policy]` at every start and removed when the file has none.
pub const DEFAULT_POLICY_CHECKPOINT: &str = "default-policy";

pub(crate) struct Inner {
    pub(crate) engine: Engine,
    /// The metadata store, journaled: what every mutation goes through.
    pub(crate) meta: Arc<dyn MetaStore>,
    /// The journal over `sql`.
    pub(crate) journal: Arc<Journaled>,
    /// The SQL store itself (to close it).
    pub(crate) sql: SqlMetaStore,
    pub(crate) unlocked: Unlocked,
    pub(crate) credentials: Credentials,
    pub(crate) default_policy: Policy,
    pub(crate) spec: VaultSpec,
    /// The providers the engine uses now, with their counters and specs.
    pub(crate) providers: Mutex<Vec<Built>>,
    /// Serialises changes of the registry made by this process.
    pub(crate) changing: tokio::sync::Mutex<()>,
    /// What reconciling the configuration with the registry found (by provider name).
    pub(crate) registry_notes: Mutex<Vec<String>>,
    /// The jobs this process runs.
    pub(crate) jobs: crate::jobs::Jobs,
    /// Providers that did not answer at start (or since), probed again by
    /// [`Vault::recheck_outages`].
    pub(crate) outages: Mutex<Vec<stack::Outage>>,
}

/// An open vault. Cheap to clone; clones share everything.
#[derive(Clone)]
pub struct Vault {
    pub(crate) inner: Arc<Inner>,
}

impl std::fmt::Debug for Vault {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Vault")
            .field("vault_id", &self.inner.unlocked.vault_id())
            .field("data_dir", &self.inner.spec.data_dir)
            .finish_non_exhaustive()
    }
}

/// Opens the metadata store of `spec`.
pub async fn open_meta(spec: &VaultSpec) -> Result<SqlMetaStore> {
    match &spec.meta {
        MetaSpec::Embedded(dir) => SqlMetaStore::open_embedded(EmbeddedOptions::new(dir))
            .await
            .map_err(|e| match e {
                MetaError::Locked { path } => VaultError::InUse {
                    data_dir: spec.data_dir.clone(),
                    lock: path,
                },
                e => e.into(),
            }),
        MetaSpec::Postgres {
            url,
            schema,
            max_connections,
        } => {
            let mut o = PostgresOptions::new(url.clone());
            o.schema = schema.clone();
            if let Some(n) = max_connections {
                o.max_connections = *n;
            }
            Ok(SqlMetaStore::connect_postgres(o).await?)
        }
    }
}

fn checkpoint(name: &str) -> Result<CheckpointName> {
    Ok(CheckpointName::new(name)?)
}

/// Moves bucket settings that builds before schema 5 kept in meta's checkpoint space
/// (`bucket-cors/<bucket>`: JSON rules; `bucket-public/<bucket>`: present = public-read) into
/// the bucket records. Idempotent; each checkpoint is removed once its bucket has it.
async fn migrate_bucket_settings(engine: &Engine) -> Result<()> {
    let meta = engine.meta();
    for prefix in ["bucket-cors/", "bucket-public/"] {
        loop {
            let page = meta.list_checkpoints(prefix, None, 100).await?;
            if page.is_empty() {
                break;
            }
            for (name, data) in page {
                let bucket = &name.as_str()[prefix.len()..];
                let changed = if prefix == "bucket-cors/" {
                    let rules: Vec<archipel_engine::CorsRule> = serde_json::from_slice(&data)
                        .map_err(|e| VaultError::Invalid(format!("{name}: {e}")))?;
                    engine
                        .update_bucket_settings(bucket, |s| s.cors = Some(rules))
                        .await
                } else {
                    engine
                        .update_bucket_settings(bucket, |s| s.public_read = true)
                        .await
                };
                match changed {
                    Ok(_) | Err(archipel_engine::EngineError::NoSuchBucket { .. }) => {}
                    Err(e) => return Err(e.into()),
                }
                meta.delete_checkpoint(&name).await?;
                tracing::info!("moved {name} into the bucket record");
            }
        }
    }
    Ok(())
}

/// Refuses to serve when fewer providers answer than the smallest `k` of any bucket (or of
/// the default policy): then no object could be read.
async fn check_readable(
    meta: &SqlMetaStore,
    spec: &VaultSpec,
    total: usize,
    outages: &[stack::Outage],
) -> Result<()> {
    let answering = total - outages.len();
    let mut min_k = match &spec.policy {
        Some(p) => p.k,
        None => Policy::default_for(total).map_or(1, |p| p.k),
    };
    for b in meta.list_buckets().await? {
        if let Ok(p) = Policy::decode(&b.policy) {
            min_k = min_k.min(p.k);
        }
    }
    if answering < min_k {
        return Err(VaultError::Providers(format!(
            "only {answering} of {total} providers answer, and every object needs at least \
             {min_k}: nothing could be read. Unreachable:\n  {}",
            outages
                .iter()
                .map(|o| o.reason.as_str())
                .collect::<Vec<_>>()
                .join("\n  ")
        )));
    }
    Ok(())
}

/// The checkpoint with the last journal run begun on this store.
pub const JOURNAL_RUN_CHECKPOINT: &str = "journal:run";
/// Present once everything the store held before its journal existed has been journaled.
pub const JOURNAL_BASELINE_CHECKPOINT: &str = "journal:baseline";

/// Raises and returns the journal run: every open of the vault writes its own run, after
/// every earlier one.
async fn next_journal_run(meta: &SqlMetaStore) -> Result<u64> {
    let name = checkpoint(JOURNAL_RUN_CHECKPOINT)?;
    let last = match meta.get_checkpoint(&name).await? {
        Some(b) => <[u8; 8]>::try_from(b.as_slice())
            .map(u64::from_le_bytes)
            .map_err(|_| VaultError::Invalid(format!("{JOURNAL_RUN_CHECKPOINT}: not 8 bytes")))?,
        None => 0,
    };
    let run = last + 1;
    meta.put_checkpoint(&name, &run.to_le_bytes()).await?;
    Ok(run)
}

/// What a gateway does once it serves: the vault header to every provider, the small state
/// (providers, buckets, keys, grants) to the journal — the registry rows written from the
/// configuration at open are not journaled by themselves — and, once, everything a store
/// written before its journal existed holds.
async fn journal_at_start(engine: Engine, journal: Arc<Journaled>, header: Vec<u8>) {
    for e in engine.publish_vault_header(&header).await {
        tracing::warn!("the vault header could not be written to {e} (retried at next start)");
    }
    let Ok(baseline) = checkpoint(JOURNAL_BASELINE_CHECKPOINT) else {
        return;
    };
    let objects = match journal.get_checkpoint(&baseline).await {
        Ok(b) => b.is_none(),
        Err(e) => {
            tracing::warn!("journal baseline: {e}");
            return;
        }
    };
    match journal.journal_state(objects).await {
        Ok(n) => {
            if objects {
                tracing::info!(
                    "journaled the metadata the store held before its journal: {n} records"
                );
                if let Err(e) = journal.put_checkpoint(&baseline, b"1").await {
                    tracing::warn!("journal baseline: {e}");
                }
            }
        }
        Err(e) => {
            tracing::warn!("journaling the metadata at start failed (retried at next start): {e}")
        }
    }
}

impl Inner {
    /// The metadata store as the engine sees it.
    pub(crate) fn meta_dyn(&self) -> &dyn MetaStore {
        self.engine.meta().as_ref()
    }
}

impl Vault {
    /// Opens (on first run: creates) the vault of `spec`; `check` probes every provider first.
    pub async fn open(spec: &VaultSpec, check: bool) -> Result<Vault> {
        secrets::ensure_data_dir(&spec.data_dir)?;
        let meta = open_meta(spec).await?;
        match Self::open_with(spec, check, meta.clone()).await {
            Ok(v) => Ok(v),
            Err(e) => {
                meta.close().await;
                Err(e)
            }
        }
    }

    /// Opens an existing vault (never creates one), without probing the providers: what the
    /// operator commands use when no gateway serves the vault.
    pub async fn open_existing(spec: &VaultSpec) -> Result<Vault> {
        if matches!(spec.meta, MetaSpec::Embedded(_)) && !spec.data_dir.join("vault").is_file() {
            return Err(VaultError::NoVault {
                data_dir: spec.data_dir.clone(),
                hint: if spec.is_demo() {
                    " (or point to it with --data-dir / --config)"
                } else {
                    " --config … (or point to it with --data-dir / --config)"
                },
            });
        }
        Self::open(spec, false).await
    }

    async fn open_with(spec: &VaultSpec, check: bool, meta: SqlMetaStore) -> Result<Vault> {
        let unlocked = secrets::unlock(spec, &meta).await?;
        let credentials = secrets::credentials(spec)?;
        let (specs, notes) = crate::registry::reconcile(spec, &meta, &unlocked.key).await?;
        let generations: Vec<u64> = specs.iter().map(|(_, g)| *g).collect();
        let specs: Vec<_> = specs.into_iter().map(|(s, _)| s).collect();
        let (mut providers, outages) = if check {
            stack::build_all_degraded(&specs).await?
        } else {
            (stack::build_all(&specs, false).await?, Vec::new())
        };
        for (b, g) in providers.iter_mut().zip(generations) {
            b.generation = g;
        }
        let run = next_journal_run(&meta).await?;
        let journal = Arc::new(Journaled::new(Arc::new(meta.clone()), run));
        let dyn_meta: Arc<dyn MetaStore> = journal.clone();
        let engine = Engine::new(
            unlocked.key.clone(),
            dyn_meta,
            providers.iter().map(|b| b.slot.clone()).collect(),
            EngineOptions {
                default_policy: spec.policy.clone(),
                gc_delay: spec.gc_delay,
                ..EngineOptions::default()
            },
        )?;
        journal.set_sink(engine.journal_sink());
        // What the start-up probe saw seeds the engine's view of each provider, so a provider
        // that is already slow is avoided from the first read (a probe is a put, a get and a
        // delete).
        for b in &providers {
            if let Some(rt) = b.probe {
                engine.health().record_ok(&b.slot.info.name, rt / 3);
            }
        }
        if !outages.is_empty() {
            check_readable(&meta, spec, providers.len(), &outages).await?;
            for o in &outages {
                engine.health().record_error(&o.name);
                tracing::warn!(
                    "serving WITHOUT provider `{}` (it is probed again every few seconds): {}",
                    o.name,
                    o.reason
                );
            }
        }
        migrate_bucket_settings(&engine).await?;
        let default_policy = match &spec.policy {
            Some(p) => {
                journal
                    .put_checkpoint(&checkpoint(DEFAULT_POLICY_CHECKPOINT)?, &p.encode())
                    .await?;
                p.clone()
            }
            None => {
                journal
                    .delete_checkpoint(&checkpoint(DEFAULT_POLICY_CHECKPOINT)?)
                    .await?;
                engine.default_policy().map_err(|e| {
                    VaultError::Invalid(format!(
                        "no usable default policy for these providers: {e}"
                    ))
                })?
            }
        };
        // Root credentials generated into the data directory are kept (sealed) in the
        // journal too: a recovered vault keeps its root key.
        if matches!(
            credentials.origin,
            secrets::CredentialsOrigin::File(_) | secrets::CredentialsOrigin::Generated(_)
        ) {
            let name = checkpoint(secrets::ROOT_CREDENTIALS_CHECKPOINT)?;
            let kept = match journal.get_checkpoint(&name).await? {
                Some(b) => secrets::open_root_credentials(&unlocked.key, &b).ok(),
                None => None,
            };
            let same = kept.is_some_and(|(a, s)| {
                a == credentials.access_key && s.as_str() == credentials.secret_key.as_str()
            });
            if !same {
                let sealed = secrets::seal_root_credentials(&unlocked.key, &credentials)?;
                journal.put_checkpoint(&name, &sealed).await?;
            }
        }
        if check {
            tokio::spawn(journal_at_start(
                engine.clone(),
                journal.clone(),
                unlocked.header.encode(),
            ));
        }
        Ok(Vault {
            inner: Arc::new(Inner {
                engine,
                meta: journal.clone(),
                journal,
                sql: meta,
                unlocked,
                credentials,
                default_policy,
                spec: spec.clone(),
                providers: Mutex::new(providers),
                changing: tokio::sync::Mutex::new(()),
                registry_notes: Mutex::new(notes),
                jobs: crate::jobs::Jobs::new()?,
                outages: Mutex::new(outages),
            }),
        })
    }

    /// The engine.
    pub fn engine(&self) -> &Engine {
        &self.inner.engine
    }

    /// The metadata store (journaled: every mutation through it is on the providers before
    /// it returns).
    pub fn meta(&self) -> &dyn MetaStore {
        self.inner.meta.as_ref()
    }

    /// The metadata journal.
    pub fn journal(&self) -> &Journaled {
        &self.inner.journal
    }

    /// The key and the vault header.
    pub fn unlocked(&self) -> &Unlocked {
        &self.inner.unlocked
    }

    /// The root credentials.
    pub fn credentials(&self) -> &Credentials {
        &self.inner.credentials
    }

    /// The default policy of new buckets.
    pub fn default_policy(&self) -> &Policy {
        &self.inner.default_policy
    }

    /// What the vault was opened from.
    pub fn spec(&self) -> &VaultSpec {
        &self.inner.spec
    }

    /// The providers in use now (a snapshot).
    pub fn providers(&self) -> Vec<Built> {
        self.inner
            .providers
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// What reconciling the configuration with the registry found, one line per provider
    /// that the configuration and the registry disagree on.
    pub fn registry_notes(&self) -> Vec<String> {
        self.inner
            .registry_notes
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// Providers that do not answer now (as found at start and by the probes since).
    pub fn outages(&self) -> Vec<stack::Outage> {
        self.inner
            .outages
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// Probes the providers that were out; those that answer again are used again (a provider
    /// that could not be opened is opened now). How many came back.
    pub async fn recheck_outages(&self) -> Result<usize> {
        let _changing = self.inner.changing.lock().await;
        let out = self.outages();
        if out.is_empty() {
            return Ok(0);
        }
        let mut back: Vec<String> = Vec::new();
        let mut providers = self.providers();
        for o in &out {
            let Some(i) = providers.iter().position(|b| b.slot.info.name == o.name) else {
                continue;
            };
            let spec = providers[i].spec.clone();
            if let Some((mut b, rt)) = stack::recheck(&spec, &providers[i], o.unopened).await {
                b.generation = providers[i].generation;
                b.probe = Some(rt);
                providers[i] = b;
                self.inner.engine.health().record_ok(&o.name, rt / 3);
                tracing::info!("provider `{}` answers again; it is used again", o.name);
                back.push(o.name.clone());
            } else {
                self.inner.engine.health().record_error(&o.name);
            }
        }
        if !back.is_empty() {
            self.install(providers)?;
            // Only now: who sees the outage gone sees the provider in use.
            self.inner
                .outages
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .retain(|x| !back.contains(&x.name));
        }
        Ok(back.len())
    }

    /// The jobs this process runs.
    pub fn jobs(&self) -> &crate::jobs::Jobs {
        &self.inner.jobs
    }

    /// Closes the metadata store (after its queued writes and journal records).
    pub async fn close(self) {
        self.inner.journal.close().await;
        self.inner.sql.close().await;
    }
}
