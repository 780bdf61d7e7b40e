//! Recovery from the key and the providers alone (promise 5; decision 0012): [`recover`]
//! rebuilds the metadata store of a vault from the journal its gateways wrote to the
//! providers, into an empty data directory (or an empty PostgreSQL), and [`check`] does the
//! same into a scratch directory and compares the result with the live store — the recovery
//! drill.
//!
//! Steps: build the configured providers (tolerating outages); read the vault header
//! (`archipel-vault`) from them; unlock it; list the journal (`j1/`) on every provider in
//! parallel; apply the latest complete snapshot (`s1/`), part by part, recording after each
//! part how far it got (`recover:snapshot`); read each journal segment from the snapshot's
//! position on from `k` of its shards (those before it are superseded and not read); apply
//! the segments in (run, number) order — records of one key are in commit order within a
//! run, and runs never overlap — records of different keys concurrently, recording every 16
//! segments how far it got (`recover:progress`), so a recovery killed half-way resumes
//! there (re-applying a record is harmless: records are state); then list
//! every provider's object shards and
//! check each recovered version (and part) for `k` shards, and count the segments no record
//! references (orphans, left to the orphan scan).

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;
use std::time::Instant;

use archipel_codec::{SegmentId, VaultHeader};
use archipel_engine::{Engine, EngineOptions, SnapshotFound, VAULT_HEADER_BLOB};
use archipel_meta::journal::{self, Applied, Record, Segment};
use archipel_meta::{
    BucketName, CheckpointName, ListQuery, MetaStore, MetaStoreExt, NewVersion, ObjectKey,
    PartQuery, SqlMetaStore, UploadQuery, UploadRef,
};
use archipel_provider::{BlobName, ProviderExt};
use futures::future::BoxFuture;
use futures::stream::{FuturesUnordered, StreamExt, TryStreamExt};
use serde::Serialize;

use crate::error::{Result, VaultError};
use crate::open::{JOURNAL_BASELINE_CHECKPOINT, JOURNAL_RUN_CHECKPOINT, open_meta};
use crate::secrets;
use crate::spec::{MetaSpec, VaultSpec};
use crate::stack;

/// How far a recovery got: the (run, number) of the last segment applied.
const PROGRESS_CHECKPOINT: &str = "recover:progress";
/// How far a recovery got in the snapshot: its position and the last part applied.
const SNAPSHOT_PROGRESS_CHECKPOINT: &str = "recover:snapshot";
/// The report of a finished recovery.
const DONE_CHECKPOINT: &str = "recover:done";

/// Snapshot parts read ahead of the one being applied.
const PARTS_AHEAD: usize = 4;

/// At most this many names in each list of a report.
const REPORT_NAMES: usize = 100;

/// What a recovery did.
#[derive(Debug, Clone, Default, Serialize)]
pub struct RecoverReport {
    /// The vault recovered (hex id).
    pub vault_id: String,
    /// Whether it continued a recovery that had been interrupted.
    pub resumed: bool,
    /// The snapshot applied first: `run/number` of its journal position, with its parts and
    /// records (`None`: no snapshot, the whole journal was replayed).
    pub snapshot: Option<String>,
    /// Snapshots passed over (incomplete or unreadable), with why.
    pub snapshots_passed_over: Vec<String>,
    /// Journal segments before the snapshot's position, found and not read.
    pub segments_superseded: u64,
    /// Journal segments found and read (from the snapshot's position on).
    pub segments: u64,
    /// Of those, applied by this run (the rest were applied before an interruption).
    pub segments_applied: u64,
    /// Records applied.
    pub records: u64,
    /// Records about things the journal deletes later (nothing to do).
    pub records_moot: u64,
    /// Journal segments of which fewer than `k` shards could be read: what they held is lost.
    pub unreadable_segments: Vec<String>,
    /// Gaps in the journal: runs whose segment numbers are not contiguous.
    pub gaps: Vec<String>,
    /// Providers that could not be listed or read.
    pub unreachable: Vec<String>,
    /// Buckets recovered.
    pub buckets: u64,
    /// Object versions recovered (delete markers excluded).
    pub objects: u64,
    /// Plaintext bytes of those.
    pub bytes: u64,
    /// Versions with fewer than `k` shards of some segment on the providers (`bucket/key`).
    pub unreadable: Vec<String>,
    /// How many versions (and parts) are unreadable.
    pub unreadable_count: u64,
    /// Multipart uploads in progress recovered.
    pub uploads: u64,
    /// Access keys recovered.
    pub access_keys: u64,
    /// The root access key id written back to the data directory's `credentials` file, when
    /// the vault's root credentials were kept there.
    pub root_credentials: Option<String>,
    /// Provider records recovered.
    pub providers: u64,
    /// Object segments on the providers that no recovered version or part references.
    pub orphan_segments: u64,
    /// Wall time, in milliseconds.
    pub elapsed_ms: u64,
    /// Wall time of each phase, in milliseconds, in the order they ran (this run's only,
    /// when it resumed).
    pub phases_ms: Vec<(String, u64)>,
    /// With `--check`: where the drill recovered to, and how the result differs from the
    /// live store (`None` without `--check`).
    pub check: Option<CheckReport>,
}

/// What a recovery drill found.
#[derive(Debug, Clone, Default, Serialize)]
pub struct CheckReport {
    /// The scratch directory the drill recovered into (removed afterwards).
    pub scratch: String,
    /// Records compared (buckets, keys, grants, providers, object versions, uploads, parts).
    pub compared: u64,
    /// Differences between the live store and the recovered one (at most 100 listed).
    pub differences: Vec<String>,
    /// How many differences.
    pub difference_count: u64,
}

/// Progress of a recovery: the phase and how far it is.
pub trait Progress: Sync {
    /// `phase` is at `done` of `total`.
    fn update(&self, phase: &'static str, done: u64, total: u64);
}

impl<F: Fn(&'static str, u64, u64) + Sync> Progress for F {
    fn update(&self, phase: &'static str, done: u64, total: u64) {
        self(phase, done, total)
    }
}

/// The phase running (with when it began) and the phases' times so far.
type PhaseClock = (Option<&'static str>, Instant, Vec<(String, u64)>);

/// Times the phases a [`Progress`] is told about, passing every update on.
struct Timed<'a> {
    inner: &'a dyn Progress,
    state: std::sync::Mutex<PhaseClock>,
}

impl<'a> Timed<'a> {
    fn new(inner: &'a dyn Progress) -> Timed<'a> {
        Timed {
            inner,
            state: std::sync::Mutex::new((None, Instant::now(), Vec::new())),
        }
    }

    /// Ends the phase running now; the phases' times.
    fn finish(&self) -> Vec<(String, u64)> {
        let mut s = self
            .state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(p) = s.0.take() {
            let ms = s.1.elapsed().as_millis() as u64;
            s.2.push((p.to_string(), ms));
        }
        std::mem::take(&mut s.2)
    }
}

impl Progress for Timed<'_> {
    fn update(&self, phase: &'static str, done: u64, total: u64) {
        {
            let mut s = self
                .state
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            if s.0 != Some(phase) {
                if let Some(p) = s.0 {
                    let ms = s.1.elapsed().as_millis() as u64;
                    s.2.push((p.to_string(), ms));
                }
                *s = (Some(phase), Instant::now(), std::mem::take(&mut s.2));
            }
        }
        self.inner.update(phase, done, total);
    }
}

fn cp(name: &str) -> Result<CheckpointName> {
    Ok(CheckpointName::new(name)?)
}

fn note(list: &mut Vec<String>, item: String) {
    if list.len() < REPORT_NAMES {
        list.push(item);
    }
}

/// Recovers the vault of `spec` from its providers into `spec`'s data directory (or
/// database), which must be empty or hold an interrupted recovery.
pub async fn recover(spec: &VaultSpec, progress: &dyn Progress) -> Result<RecoverReport> {
    let started = Instant::now();
    secrets::ensure_data_dir(&spec.data_dir)?;
    let header_path = spec.data_dir.join("vault");
    let had_header = header_path.is_file();
    let meta = open_meta(spec).await?;
    let timed = Timed::new(progress);
    let r = recover_into(spec, &meta, had_header, &timed, started).await;
    meta.close().await;
    let mut report = r?;
    report.phases_ms = timed.finish();
    Ok(report)
}

async fn recover_into(
    spec: &VaultSpec,
    meta: &SqlMetaStore,
    had_header: bool,
    progress: &dyn Progress,
    started: Instant,
) -> Result<RecoverReport> {
    let progress_name = cp(PROGRESS_CHECKPOINT)?;
    let resume_from = match meta.get_checkpoint(&progress_name).await? {
        Some(b) if b.len() == 16 => {
            let mut r = [0u8; 8];
            r.copy_from_slice(&b[..8]);
            let mut n = [0u8; 8];
            n.copy_from_slice(&b[8..]);
            Some(Some((u64::from_le_bytes(r), u64::from_le_bytes(n))))
        }
        Some(_) => Some(None),
        None => None,
    };
    if resume_from.is_none() {
        if meta.get_checkpoint(&cp(DONE_CHECKPOINT)?).await?.is_some() {
            return Err(VaultError::Invalid(format!(
                "{} holds a recovered vault already: start it with `archipel serve`",
                spec.data_dir.display()
            )));
        }
        let holds_something = had_header
            || !meta.list_buckets().await?.is_empty()
            || !meta.list_access_keys().await?.is_empty();
        if holds_something {
            return Err(VaultError::Invalid(format!(
                "{} holds a vault: `archipel recover` rebuilds into an empty data directory \
                 (or an empty database) only; use `archipel recover --check` for a drill",
                match &spec.meta {
                    MetaSpec::Embedded(_) => spec.data_dir.display().to_string(),
                    MetaSpec::Postgres { .. } => "the PostgreSQL database".into(),
                }
            )));
        }
        // From here on the store says a recovery is under way, so a second run resumes.
        meta.put_checkpoint(&progress_name, &[]).await?;
    }
    let mut report = RecoverReport {
        resumed: resume_from.is_some(),
        ..RecoverReport::default()
    };
    let resume_from = resume_from.flatten();

    progress.update("providers", 0, spec.providers.len() as u64);
    let (built, outages) = stack::build_all_degraded(&spec.providers).await?;
    let mut unreachable_names: HashSet<String> = HashSet::new();
    for o in &outages {
        unreachable_names.insert(o.name.clone());
        note(&mut report.unreachable, o.reason.clone());
    }
    let down: HashSet<&str> = outages.iter().map(|o| o.name.as_str()).collect();
    progress.update(
        "providers",
        spec.providers.len() as u64,
        spec.providers.len() as u64,
    );

    // The vault header: the one most providers hold.
    let mut headers: BTreeMap<Vec<u8>, usize> = BTreeMap::new();
    let blob = BlobName::new(VAULT_HEADER_BLOB).map_err(|e| VaultError::Internal(e.to_string()))?;
    let reads = built
        .iter()
        .filter(|b| !down.contains(b.slot.info.name.as_str()))
        .map(|b| {
            let p = b.slot.provider.clone();
            let blob = blob.clone();
            async move { p.get_bytes(&blob, None).await }
        });
    for bytes in futures::future::join_all(reads).await.into_iter().flatten() {
        if VaultHeader::decode(&bytes).is_ok() {
            *headers.entry(bytes).or_default() += 1;
        }
    }
    let header = headers
        .into_iter()
        .max_by_key(|(_, n)| *n)
        .map(|(b, _)| b)
        .ok_or_else(|| {
            if outages.len() == built.len() {
                let why: Vec<String> = outages.iter().map(|o| o.reason.clone()).collect();
                VaultError::Providers(format!(
                    "none of the {} configured providers answers: {}",
                    built.len(),
                    why.join("; ")
                ))
            } else {
                VaultError::Providers(format!(
                    "none of the {} configured providers that answer holds a vault header \
                     (`{VAULT_HEADER_BLOB}`): is this the vault's configuration?",
                    built.len() - outages.len()
                ))
            }
        })?;
    let header_path = spec.data_dir.join("vault");
    if matches!(spec.meta, MetaSpec::Embedded(_)) && !header_path.is_file() {
        secrets::write_file(&header_path, &header, false)?;
    }
    let unlocked = secrets::unlock(spec, meta).await?;
    report.vault_id = unlocked.vault_id();

    let raw: Arc<dyn MetaStore> = Arc::new(meta.clone());
    let engine = Engine::new(
        unlocked.key.clone(),
        raw.clone(),
        built.iter().map(|b| b.slot.clone()).collect(),
        EngineOptions {
            default_policy: spec.policy.clone(),
            gc_delay: spec.gc_delay,
            ..EngineOptions::default()
        },
    )?;
    for o in &outages {
        engine.health().record_error(&o.name);
    }

    let from = match engine.find_snapshot().await {
        Some(snap) => {
            for u in &snap.unlisted {
                let name = u.split_once(':').map_or(u.as_str(), |(n, _)| n).to_string();
                if unreachable_names.insert(name) {
                    note(&mut report.unreachable, u.clone());
                }
            }
            report.snapshots_passed_over = snap.passed_over.clone();
            apply_snapshot(&engine, meta, raw.as_ref(), &snap, progress, &mut report).await?;
            Some(snap.at)
        }
        None => None,
    };
    let read = engine
        .read_journal(from, &|done, total| {
            progress.update("reading the journal", done, total)
        })
        .await;
    report.segments_superseded = read.superseded;
    for u in read.unlisted {
        let name = u.split_once(':').map_or(u.as_str(), |(n, _)| n).to_string();
        if unreachable_names.insert(name) {
            note(&mut report.unreachable, u);
        }
    }
    report.unreadable_segments = read.unreadable.into_iter().take(REPORT_NAMES).collect();
    report.segments = read.segments.len() as u64;
    let mut expected: Option<(u64, u64)> = from;
    let mut max_run = from.map_or(0, |f| f.0);
    let total = read.segments.len() as u64;
    let mut applier = Applier::new(raw.as_ref());
    let mut pending: Option<(u64, u64)> = None;
    let mut since_checkpoint = 0usize;
    for (i, ((run, number), seg)) in read.segments.into_iter().enumerate() {
        max_run = max_run.max(run);
        let gap = match expected {
            Some((r, n)) if r == run => (n != number).then_some((n, number)),
            _ => (number != 0).then_some((0, number)),
        };
        if let Some((from, to)) = gap {
            note(
                &mut report.gaps,
                format!("run {run}: segments {from}..{} missing", to - 1),
            );
        }
        expected = Some((run, number + 1));
        if resume_from.is_some_and(|done| (run, number) <= done) {
            progress.update("applying", i as u64 + 1, total);
            continue;
        }
        let segment = Segment::decode(&seg.payload)?;
        for record in segment.records {
            applier.push(record).await?;
        }
        report.segments_applied += 1;
        pending = Some((run, number));
        since_checkpoint += 1;
        if since_checkpoint >= SEGMENTS_PER_CHECKPOINT {
            applier.flush().await?;
            put_progress(meta, &progress_name, (run, number)).await?;
            since_checkpoint = 0;
            pending = None;
        }
        progress.update("applying", i as u64 + 1, total);
    }
    applier.flush().await?;
    if let Some(at) = pending {
        put_progress(meta, &progress_name, at).await?;
    }
    report.records += applier.done;
    report.records_moot += applier.moot;

    // Which versions the providers can serve, and which segments nothing references.
    progress.update("listing shards", 0, 1);
    let census = engine.shard_census().await;
    progress.update("listing shards", 1, 1);
    for u in &census.unlisted {
        let name = u.split_once(':').map_or(u.as_str(), |(n, _)| n).to_string();
        if unreachable_names.insert(name) {
            note(&mut report.unreachable, u.clone());
        }
    }
    let mut referenced: HashSet<SegmentId> = HashSet::new();
    let buckets = meta.list_buckets().await?;
    report.buckets = buckets.len() as u64;
    let nb = buckets.len() as u64;
    for (bi, b) in buckets.iter().enumerate() {
        progress.update("checking objects", bi as u64, nb);
        let mut query = ListQuery {
            max_keys: archipel_meta::MAX_PAGE,
            ..ListQuery::default()
        };
        loop {
            let page = meta.list(&b.name, &query).await?;
            let versions: Vec<_> = futures::stream::iter(page.objects.iter())
                .map(|o| meta.get(&b.name, &o.key))
                .buffered(GETS_AT_ONCE)
                .try_collect()
                .await?;
            for v in versions.into_iter().flatten() {
                report.objects += 1;
                report.bytes += v.version.size;
                let ok = engine
                    .check_manifest(&census, &v.version.manifest)
                    .map(|r| {
                        referenced.extend(r.segments);
                        r.readable
                    })
                    .unwrap_or(false);
                if !ok {
                    report.unreadable_count += 1;
                    note(&mut report.unreadable, format!("{}/{}", b.name, v.key));
                }
            }
            match page.next_start_after {
                Some(next) if page.is_truncated => query.start_after = Some(next),
                _ => break,
            }
        }
        let mut q = UploadQuery {
            max_uploads: archipel_meta::MAX_PAGE,
            ..UploadQuery::default()
        };
        loop {
            let page = meta.list_uploads(&b.name, &q).await?;
            for u in &page.uploads {
                report.uploads += 1;
                let r = UploadRef {
                    bucket: b.name.clone(),
                    key: u.upload.key.clone(),
                    upload_id: u.upload.upload_id.clone(),
                };
                let parts = meta
                    .list_parts(
                        &r,
                        &PartQuery {
                            after: None,
                            max_parts: archipel_meta::MAX_PAGE,
                        },
                    )
                    .await?;
                for p in parts.parts {
                    let ok = engine
                        .check_manifest(&census, &p.manifest)
                        .map(|r| {
                            referenced.extend(r.segments);
                            r.readable
                        })
                        .unwrap_or(false);
                    if !ok {
                        report.unreadable_count += 1;
                        note(
                            &mut report.unreadable,
                            format!(
                                "{}/{} (upload {}, part {})",
                                b.name, r.key, r.upload_id, p.part_number
                            ),
                        );
                    }
                }
            }
            if !page.is_truncated {
                break;
            }
            q.key_marker = page.next_key_marker;
            q.upload_id_marker = page.next_upload_id_marker;
        }
    }
    progress.update("checking objects", nb, nb);
    report.orphan_segments = census
        .shards
        .keys()
        .filter(|s| !referenced.contains(s))
        .count() as u64;
    report.access_keys = meta.list_access_keys().await?.len() as u64;
    // Root credentials the data directory held come back into it (unless the configuration
    // or the environment gives them).
    let root = meta
        .get_checkpoint(&cp(secrets::ROOT_CREDENTIALS_CHECKPOINT)?)
        .await?;
    let file = spec.data_dir.join("credentials");
    if let Some(bytes) = root
        && spec.root_credentials.is_none()
        && !file.exists()
    {
        let (access, secret) = secrets::open_root_credentials(&unlocked.key, &bytes)?;
        secrets::write_credentials_file(&file, &access, &secret)?;
        report.root_credentials = Some(access);
    }
    report.providers = meta.list_providers().await?.len() as u64;

    // The next gateway writes a run after every run found; what was recovered is journaled.
    let run_name = cp(JOURNAL_RUN_CHECKPOINT)?;
    let stored = meta
        .get_checkpoint(&run_name)
        .await?
        .and_then(|b| <[u8; 8]>::try_from(b.as_slice()).ok())
        .map_or(0, u64::from_le_bytes);
    meta.put_checkpoint(&run_name, &stored.max(max_run).to_le_bytes())
        .await?;
    meta.put_checkpoint(&cp(JOURNAL_BASELINE_CHECKPOINT)?, b"1")
        .await?;
    report.elapsed_ms = started.elapsed().as_millis() as u64;
    let json = serde_json::to_vec(&report).map_err(|e| VaultError::Internal(e.to_string()))?;
    meta.put_checkpoint(&cp(DONE_CHECKPOINT)?, &json).await?;
    meta.delete_checkpoint(&progress_name).await?;
    meta.delete_checkpoint(&cp(SNAPSHOT_PROGRESS_CHECKPOINT)?)
        .await?;
    Ok(report)
}

/// Records that every journal segment up to `at` is applied.
async fn put_progress(meta: &SqlMetaStore, name: &CheckpointName, at: (u64, u64)) -> Result<()> {
    let mut bytes = at.0.to_le_bytes().to_vec();
    bytes.extend_from_slice(&at.1.to_le_bytes());
    Ok(meta.put_checkpoint(name, &bytes).await?)
}

/// Versions read at once while checking them against the providers' listings.
const GETS_AT_ONCE: usize = 16;

/// Records applied at once (the embedded store commits concurrent mutations together).
const APPLY_AT_ONCE: usize = 256;

/// Journal segments applied between two progress checkpoints.
const SEGMENTS_PER_CHECKPOINT: usize = 16;

/// The key (bucket, object key) a record is about, for [`Applier`].
type EntityKey = (String, String);

/// Applies records to the store being rebuilt, many at a time where their order cannot
/// matter: records of different keys (objects, uploads and their parts) run concurrently —
/// the store commits them together — while every other record (buckets, access keys,
/// grants, providers, checkpoints) waits for everything before it and holds back everything
/// after it, and two records of one key never overlap.
struct Applier<'a> {
    store: &'a dyn MetaStore,
    inflight: FuturesUnordered<BoxFuture<'a, (EntityKey, archipel_meta::Result<Applied>)>>,
    keys: HashSet<EntityKey>,
    done: u64,
    moot: u64,
}

impl<'a> Applier<'a> {
    fn new(store: &'a dyn MetaStore) -> Applier<'a> {
        Applier {
            store,
            inflight: FuturesUnordered::new(),
            keys: HashSet::new(),
            done: 0,
            moot: 0,
        }
    }

    fn count(&mut self, a: Applied) {
        match a {
            Applied::Done => self.done += 1,
            Applied::Moot => self.moot += 1,
        }
    }

    async fn push(&mut self, record: Record) -> Result<()> {
        let key = match &record {
            Record::ObjectPut { bucket, key, .. } | Record::ObjectDelete { bucket, key, .. } => {
                Some((bucket.as_str().to_string(), key.as_str().to_string()))
            }
            Record::UploadPut { bucket, upload } => {
                Some((bucket.as_str().to_string(), upload.key.as_str().to_string()))
            }
            Record::PartPut { upload, .. } | Record::UploadDelete(upload) => Some((
                upload.bucket.as_str().to_string(),
                upload.key.as_str().to_string(),
            )),
            _ => None,
        };
        match key {
            Some(k) => {
                if self.keys.contains(&k) {
                    self.flush().await?;
                }
                // Kept full: one finishes, the next starts.
                while self.inflight.len() >= APPLY_AT_ONCE {
                    self.next().await?;
                }
                self.keys.insert(k.clone());
                let store = self.store;
                self.inflight.push(Box::pin(async move {
                    let r = journal::apply(store, &record).await;
                    (k, r)
                }));
            }
            None => {
                self.flush().await?;
                let a = journal::apply(self.store, &record).await?;
                self.count(a);
            }
        }
        Ok(())
    }

    /// Waits for one record in flight; whether there was one.
    async fn next(&mut self) -> Result<bool> {
        match self.inflight.next().await {
            Some((k, r)) => {
                self.keys.remove(&k);
                self.count(r?);
                Ok(true)
            }
            None => Ok(false),
        }
    }

    /// Waits until everything pushed is applied.
    async fn flush(&mut self) -> Result<()> {
        while self.next().await? {}
        Ok(())
    }
}

/// Loads `rows` (versions of keys in `bucket`) in bulk, if the bucket exists; empties
/// `rows`.
async fn import(
    meta: &SqlMetaStore,
    rows: &mut Vec<(ObjectKey, NewVersion)>,
    bucket: Option<BucketName>,
    report: &mut RecoverReport,
) -> Result<()> {
    let (Some(bucket), false) = (bucket, rows.is_empty()) else {
        rows.clear();
        return Ok(());
    };
    let n = rows.len() as u64;
    if meta.get_bucket(&bucket).await?.is_some() {
        meta.import_versions(&bucket, std::mem::take(rows)).await?;
        report.records += n;
    } else {
        rows.clear();
        report.records_moot += n;
    }
    Ok(())
}

/// Applies the snapshot `snap` part by part (reading a few ahead), from where an
/// interrupted recovery left off, recording after each part how far it got.
async fn apply_snapshot(
    engine: &Engine,
    meta: &SqlMetaStore,
    raw: &dyn MetaStore,
    snap: &SnapshotFound,
    progress: &dyn Progress,
    report: &mut RecoverReport,
) -> Result<()> {
    let name = cp(SNAPSHOT_PROGRESS_CHECKPOINT)?;
    let mut at = snap.at.0.to_le_bytes().to_vec();
    at.extend_from_slice(&snap.at.1.to_le_bytes());
    let done = match meta.get_checkpoint(&name).await? {
        Some(b) if b.len() == 20 && b[..16] == at[..] => {
            let mut p = [0u8; 4];
            p.copy_from_slice(&b[16..]);
            u32::from_le_bytes(p)
        }
        _ => 0,
    };
    let parts = snap.seal.parts;
    report.snapshot = Some(format!(
        "{}/{}: {} parts, {} records",
        snap.at.0, snap.at.1, parts, snap.seal.records
    ));
    progress.update("applying the snapshot", u64::from(done), u64::from(parts));
    let mut reads = futures::stream::iter(done + 1..=parts)
        .map(|part| async move { (part, engine.read_snapshot_part(snap, part).await) })
        .buffered(PARTS_AHEAD);
    while let Some((part, bytes)) = reads.next().await {
        let bytes = bytes.map_err(|e| {
            VaultError::Providers(format!(
                "snapshot {}/{} part {part} cannot be read: {e}",
                snap.at.0, snap.at.1
            ))
        })?;
        let segment = Segment::decode(&bytes)?;
        if (segment.run, segment.number) != snap.at {
            return Err(VaultError::Providers(format!(
                "snapshot {}/{} part {part} says it belongs to {}/{}",
                snap.at.0, snap.at.1, segment.run, segment.number
            )));
        }
        // A snapshot names each key once, into a store that lacks it (or holds it from an
        // interrupted run): its object versions are loaded in bulk, per bucket — into
        // buckets the snapshot created (a bucket created while it was taken is in the
        // journal after it, with its objects) — and every other record is applied.
        let mut applier = Applier::new(raw);
        let mut rows: Vec<(ObjectKey, NewVersion)> = Vec::new();
        let mut rows_bucket: Option<BucketName> = None;
        for record in segment.records {
            match record {
                Record::ObjectPut {
                    bucket,
                    key,
                    version,
                } => {
                    if rows_bucket.as_ref() != Some(&bucket) {
                        import(meta, &mut rows, rows_bucket.take(), report).await?;
                        rows_bucket = Some(bucket);
                    }
                    rows.push((key, version));
                }
                other => {
                    import(meta, &mut rows, rows_bucket.take(), report).await?;
                    applier.push(other).await?;
                }
            }
        }
        import(meta, &mut rows, rows_bucket.take(), report).await?;
        applier.flush().await?;
        report.records += applier.done;
        report.records_moot += applier.moot;
        let mut cp_bytes = at.clone();
        cp_bytes.extend_from_slice(&part.to_le_bytes());
        meta.put_checkpoint(&name, &cp_bytes).await?;
        progress.update("applying the snapshot", u64::from(part), u64::from(parts));
    }
    Ok(())
}

/// A recovery drill: recovers the vault of `spec` into a scratch directory (never touching
/// the live store or data directory), compares the result with the live store, and removes
/// the scratch directory. The live embedded store is read only while no gateway holds it.
pub async fn check(spec: &VaultSpec, progress: &dyn Progress) -> Result<RecoverReport> {
    let started = Instant::now();
    let scratch = tempfile::Builder::new()
        .prefix("archipel-recover-check-")
        .tempdir()
        .map_err(|e| {
            VaultError::io(
                "cannot create a scratch directory in",
                &std::env::temp_dir(),
                e,
            )
        })?;
    let mut drill = spec.clone();
    drill.data_dir = scratch.path().join("data");
    drill.meta = MetaSpec::Embedded(drill.data_dir.clone());
    if drill.key.file.is_none() && drill.key.passphrase.is_none() && drill.key.shares.is_empty() {
        drill.key.file = Some(spec.data_dir.join("key"));
    }
    let mut report = recover(&drill, progress).await?;
    progress.update("comparing with the live store", 0, 1);
    let live = open_meta(spec).await.map_err(|e| match e {
        VaultError::InUse { .. } => VaultError::Invalid(format!(
            "{e}: the drill compares with the live store while no gateway holds it (run it \
             against the gateway's PostgreSQL, or stop the gateway for the comparison)"
        )),
        e => e,
    })?;
    let rebuilt = open_meta(&drill).await?;
    let cmp = compare(&live, &rebuilt).await;
    live.close().await;
    rebuilt.close().await;
    let mut c = cmp?;
    c.scratch = scratch.path().display().to_string();
    progress.update("comparing with the live store", 1, 1);
    report.elapsed_ms = started.elapsed().as_millis() as u64;
    report.check = Some(c);
    Ok(report)
}

/// Every durable record of `a` and `b` side by side.
async fn compare(a: &dyn MetaStore, b: &dyn MetaStore) -> Result<CheckReport> {
    let mut r = CheckReport::default();
    let diff = |r: &mut CheckReport, what: String| {
        r.difference_count += 1;
        note(&mut r.differences, what);
    };
    let ba = a.list_buckets().await?;
    let bb = b.list_buckets().await?;
    let names = |v: &[archipel_meta::Bucket]| -> Vec<String> {
        v.iter().map(|x| x.name.to_string()).collect()
    };
    if names(&ba) != names(&bb) {
        diff(
            &mut r,
            format!("buckets: live {:?}, recovered {:?}", names(&ba), names(&bb)),
        );
    }
    for x in &ba {
        r.compared += 1;
        let Some(y) = bb.iter().find(|y| y.name == x.name) else {
            continue;
        };
        if x.policy != y.policy || x.settings != y.settings || x.owner != y.owner {
            diff(
                &mut r,
                format!("bucket {}: policy, settings or owner differ", x.name),
            );
        }
        let oa = a.list_all(&x.name, "").await?;
        let ob = b.list_all(&x.name, "").await?;
        let mut ib = ob.iter().peekable();
        for o in &oa {
            r.compared += 1;
            while ib.peek().is_some_and(|p| p.key < o.key) {
                let extra = ib.next().map(|p| p.key.to_string()).unwrap_or_default();
                diff(
                    &mut r,
                    format!("{}/{extra}: only in the recovered store", x.name),
                );
            }
            match ib.peek() {
                Some(p) if p.key == o.key => {
                    let va = a.get(&x.name, &o.key).await?;
                    let vb = b.get(&x.name, &o.key).await?;
                    if va.map(|v| v.version) != vb.map(|v| v.version) {
                        diff(&mut r, format!("{}/{}: the versions differ", x.name, o.key));
                    }
                    ib.next();
                }
                _ => diff(
                    &mut r,
                    format!("{}/{}: missing from the recovered store", x.name, o.key),
                ),
            }
        }
        for extra in ib {
            diff(
                &mut r,
                format!("{}/{}: only in the recovered store", x.name, extra.key),
            );
        }
        let q = UploadQuery {
            max_uploads: archipel_meta::MAX_PAGE,
            ..UploadQuery::default()
        };
        let ua = a.list_uploads(&x.name, &q).await?;
        let ub = b.list_uploads(&x.name, &q).await?;
        r.compared += ua.uploads.len() as u64;
        if ua.uploads != ub.uploads {
            diff(
                &mut r,
                format!("bucket {}: the uploads in progress differ", x.name),
            );
        }
        for u in &ua.uploads {
            let ur = UploadRef {
                bucket: x.name.clone(),
                key: u.upload.key.clone(),
                upload_id: u.upload.upload_id.clone(),
            };
            let pq = PartQuery {
                after: None,
                max_parts: archipel_meta::MAX_PAGE,
            };
            let pa = a.list_parts(&ur, &pq).await?;
            let pb = b.list_parts(&ur, &pq).await;
            if pb.map(|p| p.parts).ok() != Some(pa.parts) {
                diff(
                    &mut r,
                    format!(
                        "{}/{} upload {}: the parts differ",
                        x.name, ur.key, ur.upload_id
                    ),
                );
            }
        }
    }
    let ka = a.list_access_keys().await?;
    let kb = b.list_access_keys().await?;
    r.compared += ka.len() as u64;
    if ka != kb {
        diff(&mut r, "access keys differ".into());
    }
    for k in &ka {
        if a.list_grants(&k.id).await? != b.list_grants(&k.id).await? {
            diff(&mut r, format!("access key {}: the grants differ", k.id));
        }
    }
    let pa = a.list_providers().await?;
    let pb = b.list_providers().await?;
    r.compared += pa.len() as u64;
    let strip = |v: Vec<archipel_meta::ProviderRecord>| -> Vec<(String, String)> {
        v.into_iter()
            .map(|p| (p.name.to_string(), p.state.as_str().to_string()))
            .collect()
    };
    if strip(pa) != strip(pb) {
        diff(&mut r, "the provider registries differ".into());
    }
    Ok(r)
}
