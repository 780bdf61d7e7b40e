//! Archipel's control plane: everything an operator acts on, in one library that the S3
//! gateway's admin API, the CLI and (next) the web console share, and that works while the
//! gateway runs.
//!
//! * [`spec`]: [`VaultSpec`], the typed description of a vault (the CLI parses
//!   `archipel.toml` into it; zero configuration is [`VaultSpec::zero_config`]).
//! * [`secrets`]: the data directory, the master key (key file or passphrase) checked against
//!   the vault header, the root credentials.
//! * [`stack`]: the standard provider layer stack (Retry ∘ Timeout ∘ Limit ∘ Metrics), built
//!   the same way for the gateway and the tests, and the start-up probe.
//! * [`open`]: [`Vault`], an open vault: metadata store, key, providers, engine.
//! * [`registry`]: the provider registry in the metadata store as the source of truth while
//!   serving — seeded from the configuration, changed live (add, state, weight), followed by
//!   every gateway sharing the store.
//! * [`jobs`]: the job runner — background work with progress, checkpoints in the metadata
//!   store, leases (one gateway at a time), cancellation and a rate limit.
//! * [`services`]: garbage collection, the orphan scan and upload expiry, each run once
//!   across the gateways sharing a metadata store (a lease per service).
//! * [`audit`]: the audit job — sampled, verified ranged reads per provider within a daily
//!   byte budget — and its dated evidence.
//! * [`drain`]: leaving a provider with proof — the drain job and its report, retiring, the
//!   exit plan, the placement report.
//! * [`buckets`]: buckets with their policies and settings.
//! * [`keys`]: S3 access keys and their grants.
//! * [`status`]: providers, inventory, redundancy and placement.
//! * [`recover`]: rebuilding the metadata store from the journal on the providers, and the
//!   recovery drill that compares the result with the live store.
//! * [`provider_test`]: reachability, permissions, latency and throughput of a provider.
//!
//! # Architecture invariants
//!
//! * Nothing here prints, reads the environment beyond the documented `ARCHIPEL_*`
//!   variables, or knows HTTP: front ends render what this crate returns.
//! * Provider connection settings never reach the metadata store in clear: they are sealed
//!   under the master key.
//! * A registry change is applied to the engine before it is recorded, and undone if
//!   recording fails: no gateway records a provider set its engine refused.

pub mod audit;
pub mod buckets;
pub mod drain;
pub mod error;
pub mod jobs;
pub mod keys;
pub mod open;
pub mod provider_test;
pub mod recover;
pub mod registry;
pub mod secrets;
pub mod services;
pub mod snapshot;
pub mod spec;
pub mod stack;
pub mod status;

pub use audit::AuditRecord;
pub use buckets::BucketView;
pub use drain::{Count, DrainReport, ExitPlan};
pub use error::{Result, VaultError};
pub use jobs::{JobKind, JobParams, JobRecord, JobState};
pub use keys::{CreatedKey, GrantView, KeyView, Perms};
pub use open::{DEFAULT_POLICY_CHECKPOINT, Vault, open_meta};
pub use provider_test::{ProviderTest, test_provider};
pub use recover::{CheckReport, RecoverReport};
pub use registry::{AddedProvider, NewProvider, RegistryEntry};
pub use secrets::{Credentials, CredentialsOrigin, KeyOrigin, Unlocked};
pub use snapshot::SnapshotRecord;
pub use spec::{
    AuditSpec, DEFAULT_ADMIN_LISTEN, DEFAULT_DATA_DIR, DEFAULT_LISTEN, DEFAULT_REGION,
    DEMO_PROVIDERS, KeySpec, Listen, MetaSpec, ProviderBackend, ProviderSpec, RepairSpec,
    ScrubSpec, VaultSpec, passphrase_from_env, valid_provider_name,
};
pub use stack::Built;
pub use status::Status;
