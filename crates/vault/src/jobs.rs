//! The job runner: background work as owned jobs with a kind, a state, progress (items and
//! bytes done of total, rate, ETA), a checkpoint in the metadata store, cancellation and a
//! rate limit.
//!
//! * A job is a record in meta's checkpoint space (`job:<id>`, JSON): its parameters, state,
//!   progress, cursor and the runs that worked on it. The record is written at every
//!   checkpoint (at most every [`CHECKPOINT_EVERY`] or 100 items), cursor and counters
//!   together, so a run that dies — SIGKILL, power loss — leaves a record from which the next
//!   run resumes: nothing before the cursor is done again, and counters match the cursor.
//! * A job runs on one gateway at a time: the runner holds the lease `job:<id>` in the store
//!   (renewed at every checkpoint, [`LEASE`] long). Every gateway's runner looks for queued
//!   or running jobs whose lease is free ([`Jobs::resume`], every few seconds from `serve`),
//!   so a job whose gateway died is taken over once its lease ends.
//! * Cancelling marks the record; the run holding it stops at its next item.
//! * Kinds: `scrub` (read and verify every shard of every object, or of one bucket; bad shards
//!   go to the repair queue; results per provider), started by hand or by the `scrub` service
//!   ([`Vault::schedule_scrub`]) once the last one is `[scrub] interval_s` old; `drain` (move
//!   every shard off one provider and prove it empty, `crate::drain`), started by
//!   [`Vault::drain_provider`]; `audit` (sampled, verified ranged reads of each provider's
//!   shards within a byte budget, with dated evidence, `crate::audit`), started by hand or by
//!   the `audit` service once the last one is `[audit] interval_s` old.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use archipel_meta::{CheckpointName, ListQuery, UnixMillis};
use serde::{Deserialize, Serialize};

use crate::error::{Result, VaultError};
use crate::open::Vault;

/// How often a running job writes its record (and renews its lease).
pub const CHECKPOINT_EVERY: Duration = Duration::from_secs(1);
/// How long a lease lasts without renewal: a job whose gateway died is taken over after this.
pub const LEASE: Duration = Duration::from_secs(10);
/// Jobs listed at most (the newest are kept; finished ones can be deleted).
const MAX_JOBS: usize = 1000;
/// Unreadable objects named in a job's result at most.
const MAX_NAMED: usize = 100;

/// What a job does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
#[non_exhaustive]
pub enum JobKind {
    /// Read and verify every shard of every object (or of one bucket).
    Scrub,
    /// Move every shard off one provider, with a report as evidence (`crate::drain`).
    Drain,
    /// Sampled, verified reads of one provider's (or every provider's) shards within a byte
    /// budget, with dated evidence (`crate::audit`).
    Audit,
}

impl JobKind {
    /// As written in records: `scrub`, `drain`, `audit`.
    pub fn as_str(self) -> &'static str {
        match self {
            JobKind::Scrub => "scrub",
            JobKind::Drain => "drain",
            JobKind::Audit => "audit",
        }
    }
}

/// Where a job is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum JobState {
    /// Waiting for a gateway to take it.
    Queued,
    /// Held by a gateway (or by one that died, until its lease ends).
    Running,
    /// Finished.
    Done,
    /// Stopped by an error (see `error`).
    Failed,
    /// Stopped on request.
    Cancelled,
}

impl JobState {
    /// As written in records: `queued`, `running`, `done`, `failed`, `cancelled`.
    pub fn as_str(self) -> &'static str {
        match self {
            JobState::Queued => "queued",
            JobState::Running => "running",
            JobState::Done => "done",
            JobState::Failed => "failed",
            JobState::Cancelled => "cancelled",
        }
    }

    /// Whether the job is over.
    pub fn is_final(self) -> bool {
        matches!(
            self,
            JobState::Done | JobState::Failed | JobState::Cancelled
        )
    }
}

/// What a job is asked to do.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobParams {
    /// Only this bucket (all buckets when absent).
    #[serde(default)]
    pub bucket: Option<String>,
    /// At most this many object bytes per second (unlimited when absent).
    #[serde(default)]
    pub rate_bytes_per_s: Option<u64>,
    /// The provider (a drain's; an audit's, every provider when absent).
    #[serde(default)]
    pub provider: Option<String>,
    /// The provider a drain moves shards onto where the policy allows (a replacement).
    #[serde(default)]
    pub onto: Option<String>,
    /// Bytes an audit may read from each provider (what is left of the day's budget when
    /// absent).
    #[serde(default)]
    pub budget_bytes: Option<u64>,
}

/// How far a job is.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Progress {
    /// Items done (objects, for a scrub).
    pub items_done: u64,
    /// Items in all, as counted when the job started.
    pub items_total: Option<u64>,
    /// Object bytes done.
    pub bytes_done: u64,
    /// Object bytes in all, as counted when the job started.
    pub bytes_total: Option<u64>,
    /// Bytes per second over the current run.
    pub rate_bytes_per_s: f64,
    /// Seconds left at that rate.
    pub eta_s: Option<f64>,
}

/// One gateway's turn at a job.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobRun {
    /// The runner that held the lease.
    pub owner: String,
    /// When it started, Unix milliseconds.
    pub started_ms: i64,
    /// Items already done when it started (0 for the first run; the checkpoint after).
    pub from_items: u64,
}

/// Where a scrub is: the last object done.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cursor {
    /// Its bucket.
    pub bucket: String,
    /// Its key.
    pub key: String,
}

/// What a scrub found so far.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScrubResult {
    /// Objects scrubbed.
    pub objects: u64,
    /// Shards read in full and verified.
    pub shards_checked: u64,
    /// Shards missing or damaged (each queued for repair).
    pub bad_shards: u64,
    /// Objects that could not be scrubbed (first [`MAX_NAMED`]), with why.
    pub failed: Vec<String>,
    /// Per provider: shards verified and shards found missing or damaged.
    #[serde(default)]
    pub per_provider: std::collections::BTreeMap<String, ProviderScrub>,
}

/// What a scrub found on one provider.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProviderScrub {
    /// Shards read in full and verified (good or bad).
    pub checked: u64,
    /// Of those, missing or damaged (queued for repair).
    pub bad: u64,
}

/// A job as recorded.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JobRecord {
    /// Its id (`j` + 16 hex digits).
    pub id: String,
    /// What it does.
    pub kind: JobKind,
    /// Its parameters.
    pub params: JobParams,
    /// Where it is.
    pub state: JobState,
    /// Created, last written and finished, Unix milliseconds.
    pub created_ms: i64,
    /// Last written.
    pub updated_ms: i64,
    /// Finished.
    pub finished_ms: Option<i64>,
    /// How far it is.
    pub progress: Progress,
    /// The last item done.
    pub cursor: Option<Cursor>,
    /// The runs that worked on it, oldest first.
    pub runs: Vec<JobRun>,
    /// What it found (a scrub).
    pub result: ScrubResult,
    /// What it did (a drain): the drain report.
    #[serde(default)]
    pub drain: Option<crate::drain::DrainReport>,
    /// What it found (an audit): one record per provider audited so far.
    #[serde(default)]
    pub audit: Vec<crate::audit::AuditRecord>,
    /// Why it failed.
    pub error: Option<String>,
    /// Whether cancelling was asked for.
    pub cancel_requested: bool,
}

/// Holds the run's bytes under the job's rate limit (sleeping when ahead), then updates its
/// rate and ETA: the bytes done by this run (started at `run_started` with `run_from_bytes`
/// done) over its time.
pub(crate) async fn pace(r: &mut JobRecord, run_started: Instant, run_from_bytes: u64) {
    let elapsed = run_started.elapsed().as_secs_f64().max(1e-3);
    let run_bytes = r.progress.bytes_done.saturating_sub(run_from_bytes) as f64;
    if let Some(limit) = r.params.rate_bytes_per_s {
        let due = run_bytes / limit as f64;
        if due > elapsed {
            tokio::time::sleep(Duration::from_secs_f64(due - elapsed)).await;
        }
    }
    let elapsed = run_started.elapsed().as_secs_f64().max(1e-3);
    r.progress.rate_bytes_per_s = (run_bytes / elapsed).round();
    r.progress.eta_s = r.progress.bytes_total.and_then(|t| {
        (r.progress.rate_bytes_per_s > 0.0).then(|| {
            (t.saturating_sub(r.progress.bytes_done) as f64 / r.progress.rate_bytes_per_s).round()
        })
    });
}

fn record_name(id: &str) -> Result<CheckpointName> {
    Ok(CheckpointName::new(format!("job:{id}"))?)
}

fn now() -> UnixMillis {
    UnixMillis::now()
}

/// The runner of one process: which jobs it runs now.
pub struct Jobs {
    owner: String,
    running: Mutex<HashMap<String, tokio::task::JoinHandle<()>>>,
}

impl std::fmt::Debug for Jobs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Jobs")
            .field("owner", &self.owner)
            .finish_non_exhaustive()
    }
}

impl Jobs {
    pub(crate) fn new() -> Result<Jobs> {
        Ok(Jobs {
            owner: format!("r{}", crate::secrets::hex(&crate::secrets::random::<8>()?)),
            running: Mutex::new(HashMap::new()),
        })
    }

    /// This runner's name in leases and records.
    pub fn owner(&self) -> &str {
        &self.owner
    }

    fn is_running_here(&self, id: &str) -> bool {
        let mut r = self
            .running
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        r.retain(|_, h| !h.is_finished());
        r.contains_key(id)
    }

    fn insert(&self, id: String, h: tokio::task::JoinHandle<()>) {
        self.running
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .insert(id, h);
    }

    /// Stops every job this process runs; returns their ids.
    fn abort_all(&self) -> Vec<String> {
        let mut ids = Vec::new();
        for (id, h) in self
            .running
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .drain()
        {
            h.abort();
            ids.push(id);
        }
        ids
    }
}

impl Vault {
    /// Stops the jobs this process runs and gives up their leases, so another gateway (or
    /// this one after a restart) resumes them from their last checkpoint at once.
    pub async fn stop_jobs(&self) {
        for id in self.inner.jobs.abort_all() {
            if let Ok(name) = record_name(&id) {
                let _ = self
                    .inner
                    .meta
                    .release_lease(&name, &self.inner.jobs.owner)
                    .await;
            }
        }
    }

    async fn save_job(&self, r: &JobRecord) -> Result<()> {
        let bytes =
            serde_json::to_vec(r).map_err(|e| VaultError::Internal(format!("job record: {e}")))?;
        self.inner
            .meta
            .put_checkpoint(&record_name(&r.id)?, &bytes)
            .await?;
        Ok(())
    }

    /// The job `id`.
    pub async fn job(&self, id: &str) -> Result<JobRecord> {
        let bytes = self
            .inner
            .meta
            .get_checkpoint(&record_name(id)?)
            .await?
            .ok_or_else(|| VaultError::NoSuchJob { id: id.into() })?;
        serde_json::from_slice(&bytes)
            .map_err(|e| VaultError::Invalid(format!("job {id}: unreadable record: {e}")))
    }

    /// Every job, newest first.
    pub async fn list_jobs(&self) -> Result<Vec<JobRecord>> {
        let mut out = Vec::new();
        let mut after: Option<CheckpointName> = None;
        loop {
            let page = self
                .inner
                .meta
                .list_checkpoints("job:", after.as_ref(), archipel_meta::MAX_PAGE)
                .await?;
            let Some((last, _)) = page.last() else { break };
            after = Some(last.clone());
            for (name, bytes) in &page {
                match serde_json::from_slice::<JobRecord>(bytes) {
                    Ok(r) => out.push(r),
                    Err(e) => tracing::warn!("{name}: unreadable job record: {e}"),
                }
            }
            if out.len() >= MAX_JOBS {
                break;
            }
        }
        out.sort_by(|a, b| b.created_ms.cmp(&a.created_ms).then(b.id.cmp(&a.id)));
        Ok(out)
    }

    /// Queues a job and starts it here. It runs in the background; follow it with
    /// [`Vault::job`].
    pub async fn start_job(&self, kind: JobKind, params: JobParams) -> Result<JobRecord> {
        if let Some(b) = &params.bucket {
            self.inner.engine.bucket_policy(b).await?;
        }
        match (kind, &params.provider) {
            (JobKind::Drain, None) => {
                return Err(VaultError::Invalid(
                    "a drain names its provider (`archipel provider drain NAME`)".into(),
                ));
            }
            (JobKind::Drain, Some(p)) => {
                if !self.inner.engine.providers().iter().any(|i| &i.name == p) {
                    return Err(VaultError::NoSuchProvider { name: p.clone() });
                }
            }
            (JobKind::Scrub, Some(_)) => {
                return Err(VaultError::Invalid(
                    "a scrub covers every provider; leave `provider` out".into(),
                ));
            }
            (JobKind::Scrub, None) => {}
            (JobKind::Audit, Some(p)) => {
                if !self.inner.engine.providers().iter().any(|i| &i.name == p) {
                    return Err(VaultError::NoSuchProvider { name: p.clone() });
                }
            }
            (JobKind::Audit, None) => {}
        }
        if kind != JobKind::Scrub && params.bucket.is_some() {
            return Err(VaultError::Invalid(format!(
                "a{} {} covers whole providers; leave `bucket` out",
                if kind == JobKind::Audit { "n" } else { "" },
                kind.as_str()
            )));
        }
        if params.onto.is_some() && kind != JobKind::Drain {
            return Err(VaultError::Invalid("only a drain takes `onto`".into()));
        }
        if params.budget_bytes.is_some() && kind != JobKind::Audit {
            return Err(VaultError::Invalid(
                "only an audit takes a byte budget".into(),
            ));
        }
        if params.budget_bytes == Some(0) {
            return Err(VaultError::Invalid(
                "budget: give a positive number of bytes, or none (the day's budget)".into(),
            ));
        }
        if params.rate_bytes_per_s == Some(0) {
            return Err(VaultError::Invalid(
                "rate: give a positive number of bytes per second, or none".into(),
            ));
        }
        let t = now().0;
        let r = JobRecord {
            id: format!("j{}", crate::secrets::hex(&crate::secrets::random::<8>()?)),
            kind,
            params,
            state: JobState::Queued,
            created_ms: t,
            updated_ms: t,
            finished_ms: None,
            progress: Progress::default(),
            cursor: None,
            runs: Vec::new(),
            result: ScrubResult::default(),
            drain: None,
            audit: Vec::new(),
            error: None,
            cancel_requested: false,
        };
        self.save_job(&r).await?;
        self.resume_jobs().await?;
        Ok(r)
    }

    /// Asks job `id` to stop; the run holding it stops at its next item (a queued job is
    /// cancelled at once).
    pub async fn cancel_job(&self, id: &str) -> Result<JobRecord> {
        let mut r = self.job(id).await?;
        if r.state.is_final() {
            return Ok(r);
        }
        r.cancel_requested = true;
        if r.state == JobState::Queued {
            r.state = JobState::Cancelled;
            r.finished_ms = Some(now().0);
        }
        r.updated_ms = now().0;
        self.save_job(&r).await?;
        Ok(r)
    }

    /// The periodic scrub: starts a scrub of every bucket at `rate` bytes per second unless
    /// one is queued or running, or the last one ended less than `every` ago (never scrubbed:
    /// less than `every` after this was first called). What it did.
    pub async fn schedule_scrub(&self, every: Duration, rate: Option<u64>) -> Result<String> {
        self.schedule_job(
            JobKind::Scrub,
            every,
            JobParams {
                rate_bytes_per_s: rate,
                ..JobParams::default()
            },
        )
        .await
    }

    /// Starts a job of `kind` with `params` unless one is queued or running, or the last one
    /// ended less than `every` ago (never run: less than `every` after this was first called
    /// for `kind`). What it did.
    pub(crate) async fn schedule_job(
        &self,
        kind: JobKind,
        every: Duration,
        params: JobParams,
    ) -> Result<String> {
        let what = kind.as_str();
        let jobs = self.list_jobs().await?;
        let same: Vec<&JobRecord> = jobs.iter().filter(|j| j.kind == kind).collect();
        if let Some(j) = same.iter().find(|j| !j.state.is_final()) {
            return Ok(format!("{what} {} is {}", j.id, j.state.as_str()));
        }
        let every_ms = every.as_millis().min(i64::MAX as u128) as i64;
        // Never run: the schedule starts when the service first looks (a fresh vault is not
        // scrubbed or audited empty, and its first objects wait one interval like any others).
        let anchor_name = CheckpointName::new(format!("{what}-schedule:anchor"))?;
        let done = same
            .iter()
            .filter(|j| j.state == JobState::Done)
            .filter_map(|j| j.finished_ms)
            .max();
        let last = match done {
            Some(t) => t,
            None => match self.inner.meta.get_checkpoint(&anchor_name).await? {
                Some(b) => std::str::from_utf8(&b)
                    .ok()
                    .and_then(|t| t.parse::<i64>().ok())
                    .unwrap_or(0),
                None => {
                    let t = now().0;
                    self.inner
                        .meta
                        .put_checkpoint(&anchor_name, t.to_string().as_bytes())
                        .await?;
                    return Ok(format!(
                        "no {what} yet; the first is due in {} s",
                        every_ms / 1000
                    ));
                }
            },
        };
        if now().0 - last < every_ms {
            return Ok(format!(
                "last {what} (or the schedule's start) {} s ago; the next is due in {} s",
                (now().0 - last) / 1000,
                (every_ms - (now().0 - last)) / 1000
            ));
        }
        let j = self.start_job(kind, params).await?;
        Ok(format!("started {what} {}", j.id))
    }

    /// Takes every queued or running job whose lease is free and runs it here; how many were
    /// taken. Called at start and every few seconds by `serve`.
    pub async fn resume_jobs(&self) -> Result<usize> {
        let jobs = &self.inner.jobs;
        let mut taken = 0;
        for r in self.list_jobs().await? {
            if r.state.is_final() || jobs.is_running_here(&r.id) {
                continue;
            }
            let t = now();
            let until = UnixMillis(t.0 + LEASE.as_millis() as i64);
            if !self
                .inner
                .meta
                .take_lease(&record_name(&r.id)?, &jobs.owner, t, until)
                .await?
            {
                continue;
            }
            let vault = self.clone();
            let id = r.id.clone();
            let handle = tokio::spawn(async move {
                if let Err(e) = vault.run_job(&id).await {
                    tracing::warn!("job {id}: {e}");
                    if let Ok(mut r) = vault.job(&id).await
                        && !r.state.is_final()
                    {
                        r.state = JobState::Failed;
                        r.error = Some(e.to_string());
                        r.finished_ms = Some(now().0);
                        r.updated_ms = now().0;
                        let _ = vault.save_job(&r).await;
                    }
                }
                if let Ok(name) = record_name(&id) {
                    let _ = vault
                        .inner
                        .meta
                        .release_lease(&name, &vault.inner.jobs.owner)
                        .await;
                }
            });
            jobs.insert(r.id.clone(), handle);
            taken += 1;
        }
        Ok(taken)
    }

    /// Runs (or resumes) job `id`, holding its lease.
    async fn run_job(&self, id: &str) -> Result<()> {
        let mut r = self.job(id).await?;
        r.state = JobState::Running;
        r.runs.push(JobRun {
            owner: self.inner.jobs.owner.clone(),
            started_ms: now().0,
            from_items: r.progress.items_done,
        });
        if r.runs.len() > 1 {
            tracing::info!(
                "job {id} ({:?}) resumes after {} items",
                r.kind,
                r.progress.items_done
            );
        }
        match r.kind {
            JobKind::Scrub => self.scrub(r).await,
            JobKind::Drain => self.drain(r).await,
            JobKind::Audit => self.audit(r).await,
        }
    }

    /// Writes the record and renews the lease; `false` when the lease was lost (another
    /// runner has the job now) or cancelling was asked for.
    pub(crate) async fn checkpoint(&self, r: &mut JobRecord) -> Result<bool> {
        let stored = self.job(&r.id).await?;
        if stored.cancel_requested {
            r.cancel_requested = true;
        }
        let t = now();
        let until = UnixMillis(t.0 + LEASE.as_millis() as i64);
        if !self
            .inner
            .meta
            .take_lease(&record_name(&r.id)?, &self.inner.jobs.owner, t, until)
            .await?
        {
            tracing::warn!("job {}: lease lost; another gateway runs it now", r.id);
            return Ok(false);
        }
        r.updated_ms = t.0;
        self.save_job(r).await?;
        Ok(!r.cancel_requested)
    }

    pub(crate) async fn finish(&self, r: &mut JobRecord, state: JobState) -> Result<()> {
        r.state = state;
        r.finished_ms = Some(now().0);
        r.updated_ms = now().0;
        r.progress.eta_s = None;
        self.save_job(r).await
    }

    /// The buckets a scrub covers, in name order.
    async fn scrub_buckets(&self, p: &JobParams) -> Result<Vec<archipel_meta::BucketName>> {
        let mut all: Vec<_> = self
            .inner
            .meta
            .list_buckets()
            .await?
            .into_iter()
            .map(|b| b.name)
            .collect();
        if let Some(only) = &p.bucket {
            all.retain(|b| b.as_str() == only);
        }
        all.sort();
        Ok(all)
    }

    async fn scrub(&self, mut r: JobRecord) -> Result<()> {
        let meta = self.inner.meta.clone();
        let buckets = self.scrub_buckets(&r.params).await?;
        // Totals for the ETA, counted page by page (memory bounded by a page).
        if r.progress.items_total.is_none() {
            let (mut n, mut bytes) = (0u64, 0u64);
            for b in &buckets {
                let mut q = ListQuery {
                    prefix: String::new(),
                    delimiter: None,
                    start_after: None,
                    max_keys: archipel_meta::MAX_PAGE,
                };
                loop {
                    let page = meta.list(b, &q).await?;
                    n += page.objects.len() as u64;
                    bytes += page.objects.iter().map(|o| o.size).sum::<u64>();
                    match page.next_start_after {
                        Some(next) if page.is_truncated => q.start_after = Some(next),
                        _ => break,
                    }
                }
            }
            r.progress.items_total = Some(n);
            r.progress.bytes_total = Some(bytes);
        }
        if !self.checkpoint(&mut r).await? {
            return self.stopped(r).await;
        }
        let run_started = Instant::now();
        let run_from_bytes = r.progress.bytes_done;
        let mut last_checkpoint = Instant::now();
        let mut since = 0u32;
        for b in &buckets {
            let start_after = match &r.cursor {
                Some(c) if c.bucket.as_str() > b.as_str() => continue,
                Some(c) if c.bucket == b.as_str() => Some(c.key.clone()),
                _ => None,
            };
            let mut q = ListQuery {
                prefix: String::new(),
                delimiter: None,
                start_after,
                max_keys: 100,
            };
            loop {
                let page = meta.list(b, &q).await?;
                for o in &page.objects {
                    match self
                        .inner
                        .engine
                        .scrub_object(b.as_str(), o.key.as_str())
                        .await
                    {
                        Ok(rep) => {
                            r.result.shards_checked += rep.shards_checked as u64;
                            r.result.bad_shards += rep.bad.len() as u64;
                            for (p, n) in &rep.checked_per_provider {
                                r.result.per_provider.entry(p.clone()).or_default().checked +=
                                    *n as u64;
                            }
                            for (_, p, _, _) in &rep.bad {
                                r.result.per_provider.entry(p.clone()).or_default().bad += 1;
                            }
                        }
                        Err(archipel_engine::EngineError::NoSuchKey { .. }) => {}
                        Err(e) => {
                            if r.result.failed.len() < MAX_NAMED {
                                r.result.failed.push(format!("{b}/{}: {e}", o.key.as_str()));
                            }
                        }
                    }
                    r.result.objects += 1;
                    r.progress.items_done += 1;
                    r.progress.bytes_done += o.size;
                    r.cursor = Some(Cursor {
                        bucket: b.to_string(),
                        key: o.key.as_str().to_string(),
                    });
                    pace(&mut r, run_started, run_from_bytes).await;
                    since += 1;
                    if last_checkpoint.elapsed() >= CHECKPOINT_EVERY || since >= 100 {
                        if !self.checkpoint(&mut r).await? {
                            return self.stopped(r).await;
                        }
                        last_checkpoint = Instant::now();
                        since = 0;
                    }
                }
                match page.next_start_after {
                    Some(next) if page.is_truncated => q.start_after = Some(next),
                    _ => break,
                }
            }
        }
        tracing::info!(
            "job {} (scrub) done: {} objects, {} shards verified, {} bad",
            r.id,
            r.result.objects,
            r.result.shards_checked,
            r.result.bad_shards
        );
        self.finish(&mut r, JobState::Done).await
    }

    /// After a checkpoint said stop: cancelled, or the lease went elsewhere.
    pub(crate) async fn stopped(&self, mut r: JobRecord) -> Result<()> {
        if r.cancel_requested {
            tracing::info!(
                "job {} cancelled after {} items",
                r.id,
                r.progress.items_done
            );
            self.finish(&mut r, JobState::Cancelled).await
        } else {
            Ok(())
        }
    }
}
