//! Audits: the cheap, continuous proof that each provider still holds what it was given.
//!
//! An audit job (`JobKind::Audit`, one provider or every provider not retired) draws, per
//! provider, a uniform random sample of the shards the index places there and reads one
//! random chunk of each with a ranged read, verified by its AEAD tag
//! ([`Engine::audit_sample`](archipel_engine::Engine::audit_sample),
//! [`audit_check`](archipel_engine::Engine::audit_check)), [`IN_FLIGHT`] at a time, until the
//! provider's byte budget is spent: the one the job was given, or what is left of
//! `[audit] max_mib_per_day` for the current UTC day (a ledger per provider,
//! `audit-ledger:<provider>`, counts the bytes read by every audit that day).
//!
//! Each provider's outcome is an [`AuditRecord`] — dated evidence, kept in the metadata store
//! as `audit:<provider>:<finished ms>` (the newest [`KEEP_EVIDENCE`] per provider) and in the
//! job record — with the bound the samples give: "at least X of the shards present with 99 %
//! confidence", and whether that reaches the target of 99.9 % ([`TARGET_PRESENT`]; 4,603
//! clean samples). A missing or corrupt chunk is queued for repair at once, and any failure
//! starts an inventory of that provider (a full listing checked against the index), so every
//! shard it lost is queued, not only those sampled.
//!
//! The `audit` service starts an audit of every provider when the last one ended
//! `[audit] interval_s` ago (1 day).

use std::time::Instant;

use archipel_engine::{AuditOutcome, ProviderState, present_lower_bound, samples_needed};
use archipel_meta::{CheckpointName, UnixMillis};
use futures::StreamExt;
use serde::{Deserialize, Serialize};

use crate::error::{Result, VaultError};
use crate::jobs::{CHECKPOINT_EVERY, JobKind, JobParams, JobRecord, JobState, pace};
use crate::open::Vault;

/// The confidence every bound is given at.
pub const CONFIDENCE: f64 = 0.99;
/// The fraction of shards present an audit aims to show (at [`CONFIDENCE`]).
pub const TARGET_PRESENT: f64 = 0.999;
/// Shards sampled per provider at most (20,000 clean samples bound the missing fraction
/// below 0.023 % at 99 %).
pub const MAX_SAMPLES: usize = 20_000;
/// Chunks read at once from one provider.
pub const IN_FLIGHT: usize = 4;
/// Audit records kept per provider (about a year of daily audits).
pub const KEEP_EVIDENCE: usize = 400;
/// An audit of a provider stops after this many reads in a row that got no answer.
pub const MAX_UNANSWERED: u64 = 8;
/// Distinct read errors named in a record.
const MAX_ERRORS: usize = 10;
/// Failed samples named in a record.
const MAX_NAMED: usize = 100;

/// What one audit of one provider found: dated evidence.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct AuditRecord {
    /// The provider.
    pub provider: String,
    /// The job that ran it.
    pub job: String,
    /// Started and finished, Unix milliseconds.
    pub started_ms: i64,
    /// Finished.
    pub finished_ms: i64,
    /// Bytes it was allowed to read.
    pub budget_bytes: u64,
    /// Bytes it read.
    pub bytes_read: u64,
    /// Shards the index placed on the provider when it started.
    pub population: u64,
    /// Their bytes.
    pub population_bytes: u64,
    /// Samples that count as evidence: verified + missing + corrupt + unreadable.
    pub samples: u64,
    /// Chunks that were there and verified.
    pub verified: u64,
    /// Shards that were not there.
    pub missing: u64,
    /// Chunks that failed their check (or were short).
    pub corrupt: u64,
    /// Samples whose object changed meanwhile (not counted).
    pub obsolete: u64,
    /// Chunks the provider did not produce when asked twice, while it answered for others
    /// (counted as lost).
    #[serde(default)]
    pub unreadable: u64,
    /// Reads the provider did not answer, twice or while it answered nothing (not counted).
    pub unreachable: u64,
    /// Why (the first few distinct errors).
    #[serde(default)]
    pub errors: Vec<String>,
    /// The failed samples (first 100): `bucket/key shard i (blob), stripe s: missing`.
    pub failed: Vec<String>,
    /// Whether every shard on the provider was checked (then the fraction is exact).
    pub exhaustive: bool,
    /// The confidence of the bound.
    pub confidence: f64,
    /// At least this fraction of the provider's shards is present, with `confidence`.
    pub present_at_least: f64,
    /// The fraction aimed at.
    pub target_present: f64,
    /// Clean samples needed to show the target.
    pub samples_for_target: u64,
    /// Whether the evidence shows the target.
    pub target_met: bool,
    /// Shards queued for repair by the samples.
    pub repairs_queued: u64,
    /// What the inventory a failure started found, if one ran.
    pub inventory: Option<String>,
    /// `pass` (no failure, target shown), `weak` (no failure, too few samples for the target:
    /// raise the budget), `fail` (shards missing or corrupt: queued for repair),
    /// `inconclusive` (the provider did not answer enough to say).
    pub verdict: String,
    /// Why it stopped early, if it did.
    pub note: Option<String>,
    /// SHA-256 (hex) of this record in JSON with `digest` empty.
    pub digest: Option<String>,
}

impl AuditRecord {
    /// The digest this record should carry.
    pub fn compute_digest(&self) -> Result<String> {
        let mut copy = self.clone();
        copy.digest = None;
        let json = serde_json::to_vec(&copy)
            .map_err(|e| VaultError::Internal(format!("audit record: {e}")))?;
        let d = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, &json);
        Ok(crate::secrets::hex(d.as_ref()))
    }

    /// One line: `p3: pass — 4,700 samples, ≥ 99.902 % present (99 % confidence), 1.1 GiB`.
    pub fn summary(&self) -> String {
        let mut s = format!(
            "{}: {} — {} of {} shards sampled, {} missing, {} corrupt; ≥ {:.3} % present ({:.0} % confidence){}",
            self.provider,
            self.verdict,
            self.samples,
            self.population,
            self.missing,
            self.corrupt,
            self.present_at_least * 100.0,
            self.confidence * 100.0,
            if self.exhaustive {
                ", every shard checked"
            } else {
                ""
            }
        );
        if let Some(n) = &self.note {
            s.push_str(&format!(" ({n})"));
        }
        s
    }

    /// Fills the bound, the target and the verdict from the counts.
    fn conclude(&mut self) {
        let failures = self.missing + self.corrupt + self.unreadable;
        self.samples = self.verified + failures;
        self.confidence = CONFIDENCE;
        self.target_present = TARGET_PRESENT;
        self.samples_for_target = samples_needed(TARGET_PRESENT, CONFIDENCE);
        self.exhaustive = self.samples == self.population && self.obsolete == 0;
        let bound = if self.population == 0 {
            1.0
        } else if self.exhaustive {
            self.verified as f64 / self.population as f64
        } else {
            present_lower_bound(self.samples, failures, CONFIDENCE)
        };
        // Rounded down to six decimals: still a lower bound, and a number that reads back
        // from JSON exactly (so the digest of a stored record checks).
        self.present_at_least = (bound * 1e6).floor() / 1e6;
        self.target_met = self.present_at_least >= TARGET_PRESENT;
        self.verdict = if failures > 0 {
            "fail"
        } else if self.target_met {
            "pass"
        } else if self.samples == 0 || self.note.is_some() {
            "inconclusive"
        } else {
            "weak"
        }
        .to_string();
    }
}

/// The bytes audits read from one provider on one UTC day.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize)]
struct Ledger {
    /// Days since the Unix epoch.
    day: i64,
    bytes: u64,
}

/// Names a failed sample in `rec` (the first [`MAX_NAMED`]).
fn failed(pick: &archipel_engine::AuditPick, what: &str, rec: &mut AuditRecord) {
    if rec.failed.len() < MAX_NAMED {
        rec.failed.push(format!("{}: {what}", pick.describe()));
    }
}

fn ledger_name(provider: &str) -> Result<CheckpointName> {
    Ok(CheckpointName::new(format!("audit-ledger:{provider}"))?)
}

fn evidence_prefix(provider: &str) -> String {
    format!("audit:{provider}:")
}

fn day_of(ms: i64) -> i64 {
    ms.div_euclid(86_400_000)
}

impl Vault {
    /// Starts an audit of `provider` (every provider not retired when `None`), reading at
    /// most `budget` bytes from each (what is left of the day's budget when `None`).
    pub async fn audit_providers(
        &self,
        provider: Option<&str>,
        budget: Option<u64>,
        rate: Option<u64>,
    ) -> Result<JobRecord> {
        self.start_job(
            JobKind::Audit,
            JobParams {
                provider: provider.map(str::to_string),
                budget_bytes: budget,
                rate_bytes_per_s: rate,
                ..JobParams::default()
            },
        )
        .await
    }

    /// The audit evidence kept for `provider` (every provider when `None`), newest first, at
    /// most `limit` records.
    pub async fn audits(&self, provider: Option<&str>, limit: usize) -> Result<Vec<AuditRecord>> {
        let prefix = provider.map_or_else(|| "audit:".to_string(), evidence_prefix);
        let mut out = Vec::new();
        for (name, bytes) in self.evidence(&prefix).await? {
            match serde_json::from_slice::<AuditRecord>(&bytes) {
                Ok(r) => out.push(r),
                Err(e) => tracing::warn!("{name}: unreadable audit record: {e}"),
            }
        }
        out.sort_by(|a, b| {
            b.finished_ms
                .cmp(&a.finished_ms)
                .then(a.provider.cmp(&b.provider))
        });
        out.truncate(limit);
        Ok(out)
    }

    async fn evidence(&self, prefix: &str) -> Result<Vec<(CheckpointName, Vec<u8>)>> {
        let mut all = Vec::new();
        let mut after: Option<CheckpointName> = None;
        loop {
            let page = self
                .inner
                .meta
                .list_checkpoints(prefix, after.as_ref(), archipel_meta::MAX_PAGE)
                .await?;
            let full = page.len() == archipel_meta::MAX_PAGE;
            after = page.last().map(|(n, _)| n.clone());
            all.extend(page);
            if !full || after.is_none() {
                return Ok(all);
            }
        }
    }

    /// Keeps `rec` as evidence and drops the oldest beyond [`KEEP_EVIDENCE`].
    async fn keep_evidence(&self, rec: &AuditRecord) -> Result<()> {
        let prefix = evidence_prefix(&rec.provider);
        let name = CheckpointName::new(format!("{prefix}{:013}", rec.finished_ms))?;
        let bytes = serde_json::to_vec(rec)
            .map_err(|e| VaultError::Internal(format!("audit record: {e}")))?;
        self.inner.meta.put_checkpoint(&name, &bytes).await?;
        let kept = self.evidence(&prefix).await?;
        if kept.len() > KEEP_EVIDENCE {
            // Names sort by time (fixed-width milliseconds): the first are the oldest.
            for (old, _) in &kept[..kept.len() - KEEP_EVIDENCE] {
                self.inner.meta.delete_checkpoint(old).await?;
            }
        }
        Ok(())
    }

    /// Bytes audits read from `provider` today.
    async fn spent_today(&self, provider: &str) -> Result<u64> {
        let l = match self
            .inner
            .meta
            .get_checkpoint(&ledger_name(provider)?)
            .await?
        {
            Some(b) => serde_json::from_slice::<Ledger>(&b).unwrap_or_default(),
            None => Ledger::default(),
        };
        Ok(if l.day == day_of(UnixMillis::now().0) {
            l.bytes
        } else {
            0
        })
    }

    /// Adds `bytes` to today's ledger of `provider`.
    async fn charge(&self, provider: &str, bytes: u64) -> Result<()> {
        if bytes == 0 {
            return Ok(());
        }
        let l = Ledger {
            day: day_of(UnixMillis::now().0),
            bytes: self.spent_today(provider).await? + bytes,
        };
        let b = serde_json::to_vec(&l)
            .map_err(|e| VaultError::Internal(format!("audit ledger: {e}")))?;
        self.inner
            .meta
            .put_checkpoint(&ledger_name(provider)?, &b)
            .await?;
        Ok(())
    }

    /// The periodic audit: starts an audit of every provider when the last one ended
    /// `[audit] interval_s` ago; off when `[audit] max_mib_per_day = 0`. What it did.
    pub async fn schedule_audit(&self) -> Result<String> {
        let spec = self.inner.spec.audit;
        if spec.bytes_per_day == 0 {
            return Ok("scheduled audits are off ([audit] max_mib_per_day = 0)".into());
        }
        self.schedule_job(JobKind::Audit, spec.every, JobParams::default())
            .await
    }

    /// Runs an audit job; see the module docs.
    pub(crate) async fn audit(&self, mut r: JobRecord) -> Result<()> {
        let names: Vec<String> = match &r.params.provider {
            Some(p) => vec![p.clone()],
            None => self
                .inner
                .engine
                .providers()
                .into_iter()
                .filter(|i| i.state != ProviderState::Retired)
                .map(|i| i.name)
                .collect(),
        };
        r.progress.items_total = Some(names.len() as u64);
        if !self.checkpoint(&mut r).await? {
            return self.stopped(r).await;
        }
        let run_started = Instant::now();
        let run_from_bytes = r.progress.bytes_done;
        for name in &names {
            // A resumed job does not audit again what it already recorded.
            if r.audit.iter().any(|a| &a.provider == name) {
                continue;
            }
            let Some(rec) = self
                .audit_one(&mut r, name, run_started, run_from_bytes)
                .await?
            else {
                return self.stopped(r).await;
            };
            tracing::info!("job {} (audit): {}", r.id, rec.summary());
            self.keep_evidence(&rec).await?;
            r.audit.push(rec);
            r.progress.items_done += 1;
            if !self.checkpoint(&mut r).await? {
                return self.stopped(r).await;
            }
        }
        self.finish(&mut r, JobState::Done).await
    }

    /// Audits one provider; `None` when the job was asked to stop (or lost its lease).
    async fn audit_one(
        &self,
        r: &mut JobRecord,
        name: &str,
        run_started: Instant,
        run_from_bytes: u64,
    ) -> Result<Option<AuditRecord>> {
        let engine = self.inner.engine.clone();
        let started = UnixMillis::now().0;
        let budget = match r.params.budget_bytes {
            Some(b) => b,
            None => self
                .inner
                .spec
                .audit
                .bytes_per_day
                .saturating_sub(self.spent_today(name).await?),
        };
        let seed = u64::from_le_bytes(crate::secrets::random::<8>()?);
        let sampling = engine.audit_sample(name, MAX_SAMPLES, seed).await?;
        // The longest prefix of the (random-order) sample that fits the budget: itself a
        // uniform sample, whatever the sizes.
        let mut planned = 0u64;
        let mut take = 0usize;
        for p in &sampling.picks {
            if planned + p.bytes() > budget {
                break;
            }
            planned += p.bytes();
            take += 1;
        }
        r.progress.bytes_total = Some(r.progress.bytes_done + planned);
        let mut rec = AuditRecord {
            provider: name.to_string(),
            job: r.id.clone(),
            started_ms: started,
            budget_bytes: budget,
            population: sampling.population,
            population_bytes: sampling.population_bytes,
            ..AuditRecord::default()
        };
        if take == 0 && sampling.population > 0 {
            rec.note = Some(if budget == 0 {
                "today's audit budget for this provider is spent".to_string()
            } else {
                format!("a budget of {budget} bytes fits no sampled chunk")
            });
        }
        let mut checks = futures::stream::iter(sampling.picks.into_iter().take(take).map(|pick| {
            let engine = engine.clone();
            async move {
                let v = engine.audit_check(&pick).await;
                (pick, v)
            }
        }))
        .buffered(IN_FLIGHT);
        let mut last_checkpoint = Instant::now();
        let mut uncharged = 0u64;
        let mut unanswered = 0u64;
        let mut again = Vec::new();
        while let Some((pick, v)) = checks.next().await {
            rec.bytes_read += v.bytes;
            uncharged += v.bytes;
            r.progress.bytes_done += v.bytes;
            match v.outcome {
                AuditOutcome::Verified => {
                    rec.verified += 1;
                    unanswered = 0;
                }
                AuditOutcome::Missing => {
                    rec.missing += 1;
                    failed(&pick, "missing", &mut rec);
                    unanswered = 0;
                }
                AuditOutcome::Corrupt => {
                    rec.corrupt += 1;
                    failed(&pick, "corrupt", &mut rec);
                    unanswered = 0;
                }
                AuditOutcome::Obsolete => rec.obsolete += 1,
                AuditOutcome::Unreachable(e) | AuditOutcome::Unreadable(e) => {
                    again.push(pick);
                    rec.unreachable += 1;
                    if rec.errors.len() < MAX_ERRORS && !rec.errors.contains(&e) {
                        rec.errors.push(e.clone());
                    }
                    unanswered += 1;
                    if unanswered >= MAX_UNANSWERED {
                        rec.note = Some(format!(
                            "stopped after {unanswered} reads in a row got no answer: {e}"
                        ));
                        break;
                    }
                }
            }
            pace(r, run_started, run_from_bytes).await;
            if last_checkpoint.elapsed() >= CHECKPOINT_EVERY {
                self.charge(name, std::mem::take(&mut uncharged)).await?;
                if !self.checkpoint(r).await? {
                    return Ok(None);
                }
                last_checkpoint = Instant::now();
            }
        }
        drop(checks);
        // Reads that got no answer while others did are asked once more: a provider that
        // answers for everything but one blob has lost that blob as far as readers go.
        if rec.note.is_none() && rec.verified + rec.missing + rec.corrupt > 0 {
            for pick in again {
                if rec.bytes_read + pick.bytes() > budget {
                    break;
                }
                let v = engine.audit_recheck(&pick).await;
                rec.bytes_read += v.bytes;
                uncharged += v.bytes;
                r.progress.bytes_done += v.bytes;
                match v.outcome {
                    AuditOutcome::Unreachable(_) => continue,
                    AuditOutcome::Verified => rec.verified += 1,
                    AuditOutcome::Missing => {
                        rec.missing += 1;
                        failed(&pick, "missing", &mut rec);
                    }
                    AuditOutcome::Corrupt => {
                        rec.corrupt += 1;
                        failed(&pick, "corrupt", &mut rec);
                    }
                    AuditOutcome::Unreadable(e) => {
                        rec.unreadable += 1;
                        failed(
                            &pick,
                            &format!("not served when asked twice: {e}"),
                            &mut rec,
                        );
                    }
                    AuditOutcome::Obsolete => rec.obsolete += 1,
                }
                rec.unreachable -= 1;
            }
        }
        self.charge(name, uncharged).await?;
        rec.repairs_queued = rec.missing + rec.corrupt + rec.unreadable;
        if rec.repairs_queued > 0 {
            // What was sampled is a fraction of what is lost: list the provider and queue
            // every shard it should hold and does not.
            rec.inventory = Some(match engine.inventory_of(Some(name)).await {
                Ok(inv) if inv.providers_listed == 1 => format!(
                    "listed {name}: {} shards of {} versions missing, queued for repair",
                    inv.missing, inv.versions
                ),
                Ok(_) => format!("{name} could not be listed; the inventory service retries"),
                Err(e) => format!("inventory of {name} failed: {e}"),
            });
        }
        rec.finished_ms = UnixMillis::now().0;
        rec.conclude();
        rec.digest = Some(rec.compute_digest()?);
        Ok(Some(rec))
    }
}
