//! The provider registry: the source of truth for which providers a vault uses, kept in the
//! metadata store so that every gateway sharing it sees the same set.
//!
//! * At the first start, the configuration's providers **seed** the registry.
//! * Afterwards each record remembers who set it last (label `source`). A record set from the
//!   configuration follows later edits of the file; a provider added or changed through the
//!   admin API is kept across restarts, and a configuration that disagrees with it is
//!   reported. Either way every difference is reported by name ([`Vault::registry_notes`],
//!   the log), never silently applied or ignored.
//! * Connection settings (paths, endpoints, credentials) are kept sealed under the master key
//!   (AES-256-GCM, bound to `provider:<name>`), so a copy of the database alone yields no
//!   provider credentials. Labels and state stay readable.
//! * Every change raises the record's generation; [`Vault::refresh_registry`] (run every few
//!   seconds by the gateway) applies records whose generation it has not seen, so a change
//!   made through one gateway reaches the others.

use std::collections::BTreeMap;

use archipel_codec::MasterKey;
use archipel_engine::{ProviderInfo, ProviderState};
use archipel_meta::{MetaStore, ProviderName, ProviderRecord, SqlMetaStore, StringMap};
use serde::{Deserialize, Serialize};

use crate::error::{Result, VaultError};
use crate::open::Vault;
use crate::secrets;
use crate::spec::{ProviderSpec, StoredProvider, VaultSpec, valid_provider_name};
use crate::stack::{self, Built};

fn seal_id(name: &str) -> String {
    format!("provider:{name}")
}

/// Who last set a registry record: the configuration (which it then follows) or the admin
/// API (which it then keeps, reporting a configuration that differs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Source {
    Config,
    Api,
}

impl Source {
    fn as_str(self) -> &'static str {
        match self {
            Source::Config => "config",
            Source::Api => "api",
        }
    }

    fn of(r: &ProviderRecord) -> Source {
        match r.labels.get("source").map(String::as_str) {
            Some("api") => Source::Api,
            _ => Source::Config,
        }
    }
}

fn labels_of(s: &ProviderSpec, source: Source) -> StringMap {
    let mut labels: StringMap = [
        ("source", source.as_str().to_string()),
        ("kind", s.backend.kind().to_string()),
        ("operator", s.info.operator.clone()),
        ("jurisdiction", s.info.jurisdiction.clone()),
        ("weight", s.info.weight.to_string()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect();
    if let Some(p) = &s.egress_price_per_gb {
        labels.insert("egress_price_per_gb".into(), p.clone());
    }
    labels
}

/// The registry record of `s`, its connection sealed under `key`.
fn record_of(
    s: &ProviderSpec,
    key: &MasterKey,
    generation: u64,
    source: Source,
) -> Result<ProviderRecord> {
    let stored = serde_json::to_vec(&StoredProvider::from_spec(s))
        .map_err(|e| VaultError::Internal(format!("provider settings: {e}")))?;
    let sealed = key.seal_secret(&seal_id(&s.info.name), &stored, secrets::random()?)?;
    Ok(ProviderRecord {
        name: ProviderName::new(s.info.name.clone())?,
        labels: labels_of(s, source),
        state: s.info.state,
        config: sealed,
        generation,
    })
}

/// The provider a registry record describes; `None` for a record of an older build that kept
/// labels only.
fn spec_of(r: &ProviderRecord, key: &MasterKey) -> Result<Option<ProviderSpec>> {
    if r.config.is_empty() {
        return Ok(None);
    }
    let name = r.name.as_str();
    let plain = key.open_secret(&seal_id(name), &r.config).map_err(|e| {
        VaultError::Key(format!(
            "the registry's settings of provider `{name}` do not open with this key: {e}"
        ))
    })?;
    let stored: StoredProvider = serde_json::from_slice(&plain).map_err(|e| {
        VaultError::Invalid(format!(
            "the registry's settings of provider `{name}` are unreadable: {e}"
        ))
    })?;
    let label = |k: &str| r.labels.get(k).cloned().unwrap_or_default();
    let info = ProviderInfo {
        name: name.to_string(),
        operator: label("operator"),
        jurisdiction: label("jurisdiction"),
        weight: label("weight").parse().unwrap_or(1),
        state: r.state,
    };
    let mut spec = stored.into_spec(info, Some("the provider registry".into()));
    spec.egress_price_per_gb = r.labels.get("egress_price_per_gb").cloned();
    Ok(Some(spec))
}

/// Seeds or reads the registry at open; returns the providers to use (retired ones left out)
/// and one note per disagreement between the configuration and the registry.
pub(crate) async fn reconcile(
    spec: &VaultSpec,
    meta: &SqlMetaStore,
    key: &MasterKey,
) -> Result<(Vec<(ProviderSpec, u64)>, Vec<String>)> {
    let mut known: BTreeMap<String, ProviderRecord> = meta
        .list_providers()
        .await?
        .into_iter()
        .map(|r| (r.name.as_str().to_string(), r))
        .collect();
    let mut use_: Vec<(ProviderSpec, u64)> = Vec::new();
    let mut notes = Vec::new();
    for p in &spec.providers {
        let from_registry = match known.remove(&p.info.name) {
            Some(r) => spec_of(&r, key)?.map(|s| (s, r.generation, Source::of(&r))),
            None => None,
        };
        match from_registry {
            None => {
                // First start, or a record from a build that kept labels only: the
                // configuration seeds the registry.
                meta.put_provider(&record_of(p, key, 1, Source::Config)?)
                    .await?;
                use_.push((p.clone(), 1));
            }
            Some((old, generation, Source::Config)) => {
                // Set from the configuration: the registry follows the file (reported).
                let fields = p.connection_differs(&old);
                if fields.is_empty() {
                    use_.push((p.clone(), generation));
                } else {
                    let g = generation + 1;
                    meta.put_provider(&record_of(p, key, g, Source::Config)?)
                        .await?;
                    notes.push(format!(
                        "{}: the configuration changed its {}; the registry follows it \
                         (generation {g})",
                        p.describe(),
                        fields.join(", ")
                    ));
                    use_.push((p.clone(), g));
                }
            }
            Some((mut reg, generation, Source::Api)) => {
                let fields = p.connection_differs(&reg);
                if !fields.is_empty() {
                    notes.push(format!(
                        "{}: the configuration differs from the registry in {}; the registry's \
                         settings are used (they were changed through the admin API)",
                        p.describe(),
                        fields.join(", ")
                    ));
                }
                // Limits and test settings come from the configuration.
                reg.origin = p.origin.clone();
                reg.concurrency = p.concurrency;
                reg.request_timeout = p.request_timeout;
                reg.put_timeout = p.put_timeout;
                reg.inject_latency = p.inject_latency;
                use_.push((reg, generation));
            }
        }
    }
    for (name, r) in known {
        match spec_of(&r, key)? {
            Some(reg) if reg.info.state != ProviderState::Retired => {
                notes.push(format!(
                    "provider `{name}` is in the registry (added through the admin API) but \
                     not in the configuration; it is used"
                ));
                use_.push((reg, r.generation));
            }
            Some(_) => {}
            None if r.state != ProviderState::Retired => notes.push(format!(
                "provider `{name}` was part of this vault but is not configured any more: shards \
                 it holds cannot be read (objects stay readable while enough other shards remain)"
            )),
            None => {}
        }
    }
    for n in &notes {
        tracing::warn!("{n}");
    }
    use_.retain(|(p, _)| p.info.state != ProviderState::Retired);
    Ok((use_, notes))
}

/// A provider as the registry lists it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RegistryEntry {
    /// Its name.
    pub name: String,
    /// `dir`, `s3` or `webdav`.
    pub kind: String,
    /// Where it is (no credentials).
    pub location: String,
    /// Who runs it.
    pub operator: String,
    /// Its jurisdiction (ISO country or a label).
    pub jurisdiction: String,
    /// Its placement weight.
    pub weight: u32,
    /// `active`, `draining` or `retired`.
    pub state: String,
    /// Raised on every change.
    pub generation: u64,
    /// Whether this gateway uses it now.
    pub in_use: bool,
}

/// A provider to add through the admin API: its labels and how to reach it (the fields of
/// `[[provider]]` in `archipel.toml`; paths absolute). Limits take their defaults.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct NewProvider {
    /// Its name (letters, digits, `-`, `_`, `.`).
    pub name: String,
    /// Who runs it (default `self`).
    #[serde(default)]
    pub operator: Option<String>,
    /// Its jurisdiction (default `local`).
    #[serde(default)]
    pub jurisdiction: Option<String>,
    /// Its placement weight (default 1).
    #[serde(default)]
    pub weight: Option<u32>,
    /// What reading a GB out of it costs (for exit plans), e.g. `"0.09"`.
    #[serde(default)]
    pub egress_price_per_gb: Option<String>,
    /// How to reach it: `kind` and its fields.
    #[serde(flatten)]
    pub backend: crate::spec::StoredBackend,
}

impl NewProvider {
    /// The request for `spec` (what the CLI sends).
    pub fn from_spec(spec: &ProviderSpec) -> NewProvider {
        NewProvider {
            name: spec.info.name.clone(),
            operator: Some(spec.info.operator.clone()),
            jurisdiction: Some(spec.info.jurisdiction.clone()),
            weight: Some(spec.info.weight),
            egress_price_per_gb: spec.egress_price_per_gb.clone(),
            backend: StoredProvider::from_spec(spec).backend,
        }
    }

    /// The provider it describes, with default limits; a relative directory path is refused
    /// (the gateway's working directory is not the caller's).
    pub fn into_spec(self) -> Result<ProviderSpec> {
        if let crate::spec::StoredBackend::Dir { path } = &self.backend
            && !path.is_absolute()
        {
            return Err(VaultError::Invalid(format!(
                "path {}: give an absolute path",
                path.display()
            )));
        }
        let defaults = ProviderSpec::dir(&self.name, std::path::PathBuf::new(), None);
        let stored = StoredProvider {
            backend: self.backend,
            concurrency: defaults.concurrency,
            request_timeout_ms: defaults.request_timeout.as_millis() as u64,
            put_timeout_ms: defaults.put_timeout.as_millis() as u64,
            inject_latency_ms: 0,
        };
        let info = ProviderInfo {
            name: self.name,
            operator: self.operator.unwrap_or(defaults.info.operator),
            jurisdiction: self.jurisdiction.unwrap_or(defaults.info.jurisdiction),
            weight: self.weight.unwrap_or(1),
            state: ProviderState::Active,
        };
        let price = self
            .egress_price_per_gb
            .as_deref()
            .map(crate::spec::valid_egress_price)
            .transpose()
            .map_err(VaultError::Invalid)?;
        let mut spec = stored.into_spec(info, Some("the admin API".into()));
        spec.egress_price_per_gb = price;
        Ok(spec)
    }
}

/// What adding a provider did.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AddedProvider {
    /// The provider as listed.
    pub provider: RegistryEntry,
    /// The probe's round trip (put, read back, delete), in milliseconds.
    pub probe_ms: f64,
}

impl Vault {
    /// The registry's providers, with whether this gateway uses each now.
    pub async fn list_registry(&self) -> Result<Vec<RegistryEntry>> {
        let in_use: Vec<String> = self
            .providers()
            .iter()
            .map(|b| b.slot.info.name.clone())
            .collect();
        let mut out = Vec::new();
        for r in self.inner.meta.list_providers().await? {
            let label = |k: &str| r.labels.get(k).cloned().unwrap_or_default();
            let location = match spec_of(&r, &self.inner.unlocked.key) {
                Ok(Some(s)) => s.backend.location(),
                Ok(None) => String::new(),
                Err(e) => format!("(unreadable: {e})"),
            };
            out.push(RegistryEntry {
                name: r.name.as_str().to_string(),
                kind: label("kind"),
                location,
                operator: label("operator"),
                jurisdiction: label("jurisdiction"),
                weight: label("weight").parse().unwrap_or(1),
                state: r.state.as_str().to_string(),
                generation: r.generation,
                in_use: in_use.iter().any(|n| n == r.name.as_str()),
            });
        }
        Ok(out)
    }

    /// Hands `providers` to the engine, then keeps them as the set in use.
    pub(crate) fn install(&self, providers: Vec<Built>) -> Result<()> {
        self.inner
            .engine
            .set_providers(providers.iter().map(|b| b.slot.clone()).collect())?;
        *self
            .inner
            .providers
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = providers;
        Ok(())
    }

    /// Adds a provider, live: checks the name, builds it with the standard layers, probes it
    /// (put, read back, delete), records it in the registry (connection sealed) and hands it
    /// to the engine, so objects written from now on may place shards on it. Nothing changes
    /// if any step fails.
    pub async fn add_provider(&self, spec: ProviderSpec) -> Result<AddedProvider> {
        let name = spec.info.name.clone();
        if !valid_provider_name(&name) {
            return Err(VaultError::Invalid(format!(
                "provider name {name:?}: use 1–64 letters, digits, `-`, `_` or `.`"
            )));
        }
        let _changing = self.inner.changing.lock().await;
        let pname = ProviderName::new(name.clone())?;
        if self.inner.meta.get_provider(&pname).await?.is_some()
            || self.providers().iter().any(|b| b.slot.info.name == name)
        {
            return Err(VaultError::ProviderExists { name });
        }
        let (mut built, probe) = stack::build_checked(&spec, true)
            .await
            .map_err(VaultError::Providers)?;
        built.probe = probe;
        let record = record_of(&spec, &self.inner.unlocked.key, 1, Source::Api)?;
        let mut next = self.providers();
        next.push(built);
        // The engine first: it refuses a set it cannot use, and then nothing is recorded.
        let before = self.providers();
        self.install(next)?;
        if let Err(e) = self.inner.meta.put_provider(&record).await {
            self.install(before)?;
            return Err(e.into());
        }
        if let Some(rt) = probe {
            self.inner.engine.health().record_ok(&name, rt / 3);
        }
        tracing::info!("provider {name} added ({})", spec.backend.location());
        let provider = self
            .list_registry()
            .await?
            .into_iter()
            .find(|e| e.name == name)
            .ok_or_else(|| VaultError::Internal(format!("provider {name} vanished")))?;
        Ok(AddedProvider {
            provider,
            probe_ms: probe.map_or(0.0, |d| d.as_secs_f64() * 1e3),
        })
    }

    /// Changes a provider's state or weight in the registry and in the engine, live.
    /// `draining` stops new shards from going to it at once (its shards stay readable);
    /// `retired` takes it out of the engine (refused while objects may still need it — the
    /// drain job decides that; today only a provider holding nothing should be retired).
    pub async fn update_provider(
        &self,
        name: &str,
        state: Option<ProviderState>,
        weight: Option<u32>,
    ) -> Result<RegistryEntry> {
        let _changing = self.inner.changing.lock().await;
        let pname = ProviderName::new(name.to_string())?;
        let Some(mut record) = self.inner.meta.get_provider(&pname).await? else {
            return Err(VaultError::NoSuchProvider { name: name.into() });
        };
        if let Some(s) = state {
            record.state = s;
        }
        if let Some(w) = weight {
            record.labels.insert("weight".into(), w.to_string());
        }
        record
            .labels
            .insert("source".into(), Source::Api.as_str().into());
        record.generation += 1;
        let mut next = self.providers();
        for b in &mut next {
            if b.slot.info.name == name {
                b.slot.info.state = record.state;
                b.spec.info.state = record.state;
                if let Some(w) = weight {
                    b.slot.info.weight = w;
                    b.spec.info.weight = w;
                }
            }
        }
        next.retain(|b| b.slot.info.state != ProviderState::Retired);
        self.install(next)?;
        self.inner.meta.put_provider(&record).await?;
        self.list_registry()
            .await?
            .into_iter()
            .find(|e| e.name == name)
            .ok_or_else(|| VaultError::NoSuchProvider { name: name.into() })
    }

    /// Applies registry changes made elsewhere (another gateway, or this one before a
    /// restart): new providers are built and probed, changed labels and states applied,
    /// retired providers taken out. Returns how many providers changed. A provider that
    /// cannot be built is reported and left out until the next refresh.
    pub async fn refresh_registry(&self) -> Result<usize> {
        let _changing = self.inner.changing.lock().await;
        let records = self.inner.meta.list_providers().await?;
        let current = self.providers();
        let mut next: Vec<Built> = Vec::new();
        let mut changed = 0;
        for r in &records {
            let have = current.iter().find(|b| b.slot.info.name == r.name.as_str());
            let seen = have.map(|b| b.generation);
            if seen == Some(r.generation) {
                if let Some(b) = have {
                    next.push(b.clone());
                }
                continue;
            }
            if r.state == ProviderState::Retired {
                changed += usize::from(have.is_some());
                continue;
            }
            let Some(spec) = spec_of(r, &self.inner.unlocked.key)? else {
                if let Some(b) = have {
                    next.push(b.clone());
                }
                continue;
            };
            match have {
                Some(b) if b.spec.backend == spec.backend => {
                    let mut b = b.clone();
                    b.slot.info = spec.info.clone();
                    b.spec.info = spec.info;
                    b.generation = r.generation;
                    next.push(b);
                }
                _ => match stack::build_checked(&spec, true).await {
                    Ok((mut b, probe)) => {
                        b.probe = probe;
                        b.generation = r.generation;
                        next.push(b);
                    }
                    Err(e) => {
                        tracing::warn!("registry: {e}");
                        if let Some(b) = have {
                            next.push(b.clone());
                        }
                        continue;
                    }
                },
            }
            changed += 1;
        }
        // Providers the registry does not list (configured before it kept settings) stay.
        for b in &current {
            if !records.iter().any(|r| r.name.as_str() == b.slot.info.name) {
                next.push(b.clone());
            }
        }
        if changed > 0 {
            self.install(next)?;
            tracing::info!("registry: {changed} provider(s) changed");
        }
        Ok(changed)
    }
}
