//! The vault's periodic services — garbage collection, the orphan scan, the expiry of
//! abandoned multipart uploads, repair (rebuilding the shards of the repair queue), the
//! inventory (finding shards missing from their providers, for repair) and the scrub schedule
//! (a full scrub job, rate-limited, once the last one is old enough), the audit schedule (an
//! audit job of every provider within its daily byte budget, `crate::audit`), the sweep of
//! interrupted puts' temporary files and the journal's snapshots and compaction
//! (`crate::snapshot`) — run once across every gateway sharing the metadata store:
//! each round takes (or renews) the lease `service:<name>` first, held until its next round
//! is due plus [`LEASE`](crate::jobs::LEASE), so the gateway that runs a service keeps it and
//! another takes over only when it stops. Each round's outcome is kept as the record
//! `service:<name>` (last run, outcome, runs), listed by [`Vault::list_services`] and shown by
//! `archipel job list`.

use std::time::Duration;

use archipel_meta::{CheckpointName, UnixMillis};
use serde::{Deserialize, Serialize};
use tokio::sync::watch;

use crate::error::{Result, VaultError};
use crate::jobs::LEASE;
use crate::open::Vault;

/// How often each service runs.
#[derive(Debug, Clone, Copy)]
pub struct Schedule {
    /// Garbage collection of superseded and deleted shards.
    pub gc_every: Duration,
    /// The orphan scan (blobs no version references, e.g. of interrupted writes).
    pub orphans_every: Duration,
    /// Orphans younger than this are left alone (a write may still be going on).
    pub orphan_min_age: Duration,
    /// The expiry of abandoned multipart uploads.
    pub uploads_every: Duration,
    /// Uploads older than this are aborted.
    pub upload_max_age: Duration,
    /// Rounds over the repair queue.
    pub repair_every: Duration,
    /// Inventories of what each provider holds.
    pub inventory_every: Duration,
    /// How a repair round may run.
    pub repair: archipel_engine::RepairOptions,
    /// A full scrub is started when the last one is this old.
    pub scrub_interval: Duration,
    /// The scheduled scrub's rate, bytes per second.
    pub scrub_rate: Option<u64>,
    /// Leftovers of interrupted puts older than this are removed (longer than any put may
    /// take), at start and every [`TEMP_SWEEP_EVERY`].
    pub temp_min_age: Duration,
}

/// How often the providers' temporary areas are swept.
pub const TEMP_SWEEP_EVERY: Duration = Duration::from_secs(3600);

/// How often the `scrub` and `audit` services look whether a scrub or an audit is due.
const SCRUB_CHECK: Duration = Duration::from_secs(600);

/// A service as last recorded.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServiceRecord {
    /// `gc`, `orphan-scan`, `upload-expiry`, `repair`, `inventory`, `scrub` (which starts
    /// the scrub job when one is due), `audit` (likewise), `temp-sweep` or
    /// `journal-snapshot`.
    pub name: String,
    /// Seconds between rounds.
    pub every_s: u64,
    /// The runner of the last round.
    pub owner: String,
    /// When the last round ended, Unix milliseconds.
    pub last_run_ms: i64,
    /// Whether it succeeded.
    pub last_ok: bool,
    /// What it did, or why it failed.
    pub last_outcome: String,
    /// Rounds recorded so far.
    pub runs: u64,
}

fn name(service: &str) -> Result<CheckpointName> {
    Ok(CheckpointName::new(format!("service:{service}"))?)
}

impl Vault {
    /// Every service's last recorded round, by name.
    pub async fn list_services(&self) -> Result<Vec<ServiceRecord>> {
        let page = self
            .inner
            .meta
            .list_checkpoints("service:", None, 100)
            .await?;
        let mut out = Vec::new();
        for (n, bytes) in page {
            match serde_json::from_slice(&bytes) {
                Ok(r) => out.push(r),
                Err(e) => tracing::warn!("{n}: unreadable service record: {e}"),
            }
        }
        Ok(out)
    }

    /// Takes or renews the lease of `service` for one round and the wait before the next;
    /// whether this runner holds it.
    async fn hold(&self, service: &str, every: Duration) -> Result<bool> {
        let now = UnixMillis::now();
        let until = UnixMillis(now.0 + (every + LEASE).as_millis() as i64);
        Ok(self
            .inner
            .meta
            .take_lease(&name(service)?, self.inner.jobs.owner(), now, until)
            .await?)
    }

    /// Runs one round of `service` if this runner holds its lease; whether it ran.
    pub async fn run_service_round(&self, service: &str, s: &Schedule) -> Result<bool> {
        let every = match service {
            "gc" => s.gc_every,
            "orphan-scan" => s.orphans_every,
            "upload-expiry" => s.uploads_every,
            "repair" => s.repair_every,
            "inventory" => s.inventory_every,
            "scrub" => SCRUB_CHECK.min(s.scrub_interval),
            "temp-sweep" => TEMP_SWEEP_EVERY,
            "audit" => SCRUB_CHECK.min(self.inner.spec.audit.every),
            "journal-snapshot" => crate::snapshot::SNAPSHOT_CHECK,
            other => return Err(VaultError::Invalid(format!("no service {other:?}"))),
        };
        if !self.hold(service, every).await? {
            return Ok(false);
        }
        let engine = &self.inner.engine;
        let outcome: std::result::Result<String, String> = match service {
            "gc" => engine
                .gc_once()
                .await
                .map(|r| format!("{r:?}"))
                .map_err(|e| e.to_string()),
            "orphan-scan" => engine
                .reclaim_orphans(s.orphan_min_age)
                .await
                .map(|r| format!("{r:?}"))
                .map_err(|e| e.to_string()),
            "repair" => engine
                .repair_once(&s.repair)
                .await
                .map(|r| {
                    format!(
                        "{} examined: {} rebuilt ({} on spares, {} bytes), {} intact, {} obsolete, {} waiting",
                        r.examined, r.rebuilt, r.moved, r.bytes_written, r.found_intact, r.obsolete, r.waiting
                    )
                })
                .map_err(|e| e.to_string()),
            "inventory" => engine
                .inventory_once()
                .await
                .map(|r| {
                    let mut out = format!(
                        "{} providers listed, {} versions checked, {} shards missing (queued)",
                        r.providers_listed, r.versions, r.missing
                    );
                    if !r.providers_skipped.is_empty() {
                        out.push_str(&format!("; not listed: {}", r.providers_skipped.join(", ")));
                    }
                    out
                })
                .map_err(|e| e.to_string()),
            "temp-sweep" => {
                let (n, failed) = engine.sweep_temp(s.temp_min_age).await;
                if failed.is_empty() {
                    Ok(format!("{n} leftovers of interrupted puts removed"))
                } else {
                    Err(format!(
                        "{n} leftovers removed; not swept: {}",
                        failed.join("; ")
                    ))
                }
            }
            "scrub" => self
                .schedule_scrub(s.scrub_interval, s.scrub_rate)
                .await
                .map_err(|e| e.to_string()),
            "audit" => self.schedule_audit().await.map_err(|e| e.to_string()),
            "journal-snapshot" => match self.snapshot_journal(false).await {
                Ok(Some(r)) => Ok(r.to_string()),
                Ok(None) => Ok("no snapshot due".into()),
                Err(e) => Err(e.to_string()),
            },
            _ => engine
                .expire_uploads(s.upload_max_age)
                .await
                .map(|n| format!("{n} uploads aborted"))
                .map_err(|e| e.to_string()),
        };
        if let Err(e) = &outcome {
            tracing::warn!("{service}: {e}");
        }
        let key = name(service)?;
        let runs = match self.inner.meta.get_checkpoint(&key).await? {
            Some(b) => serde_json::from_slice::<ServiceRecord>(&b).map_or(0, |r| r.runs),
            None => 0,
        };
        let record = ServiceRecord {
            name: service.to_string(),
            every_s: every.as_secs(),
            owner: self.inner.jobs.owner().to_string(),
            last_run_ms: UnixMillis::now().0,
            last_ok: outcome.is_ok(),
            last_outcome: outcome.unwrap_or_else(|e| e),
            runs: runs + 1,
        };
        let bytes = serde_json::to_vec(&record)
            .map_err(|e| VaultError::Internal(format!("service record: {e}")))?;
        self.inner.meta.put_checkpoint(&key, &bytes).await?;
        Ok(true)
    }

    /// Runs the services on `schedule` until `stop` turns true, each round only where this
    /// gateway holds the service's lease. Gives the leases up when it stops.
    pub fn spawn_services(
        &self,
        schedule: Schedule,
        mut stop: watch::Receiver<bool>,
    ) -> tokio::task::JoinHandle<()> {
        let vault = self.clone();
        tokio::spawn(async move {
            let services = [
                ("gc", schedule.gc_every),
                ("orphan-scan", schedule.orphans_every),
                ("upload-expiry", schedule.uploads_every),
                ("repair", schedule.repair_every),
                ("inventory", schedule.inventory_every),
                ("scrub", SCRUB_CHECK.min(schedule.scrub_interval)),
                ("temp-sweep", TEMP_SWEEP_EVERY),
                ("audit", SCRUB_CHECK.min(vault.inner.spec.audit.every)),
                ("journal-snapshot", crate::snapshot::SNAPSHOT_CHECK),
            ];
            let tick = services
                .iter()
                .map(|(_, e)| *e)
                .min()
                .unwrap_or(Duration::from_secs(30));
            let mut due: Vec<tokio::time::Instant> = services
                .iter()
                .map(|_| tokio::time::Instant::now())
                .collect();
            loop {
                for ((service, every), due) in services.iter().zip(due.iter_mut()) {
                    if tokio::time::Instant::now() >= *due {
                        if let Err(e) = vault.run_service_round(service, &schedule).await {
                            tracing::warn!("{service}: {e}");
                        }
                        *due = tokio::time::Instant::now() + *every;
                    }
                }
                tokio::select! {
                    () = tokio::time::sleep(tick) => {}
                    _ = stop.wait_for(|v| *v) => break,
                }
            }
            for (service, _) in services {
                if let Ok(n) = name(service) {
                    let _ = vault
                        .inner
                        .meta
                        .release_lease(&n, vault.inner.jobs.owner())
                        .await;
                }
            }
        })
    }
}
