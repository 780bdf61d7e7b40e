//! The metadata journal on the providers (decision 0012): the [`JournalSink`] that writes
//! each journal segment and snapshot part erasure-coded and encrypted like an object
//! segment, what recovery reads back — the latest complete snapshot
//! ([`Engine::find_snapshot`], [`Engine::read_snapshot_part`]), the segments after it
//! ([`Engine::read_journal`]), which object shards the providers hold
//! ([`Engine::shard_census`]) and the vault header ([`VAULT_HEADER_BLOB`]) — and the
//! compaction that removes what a snapshot supersedes ([`Engine::compact_journal`]).
//!
//! A journal segment or snapshot part is one codec segment under the default policy's
//! `k + m`, placed by the policy's rules, with its own data key wrapped under the master key;
//! its shards are `j1/<segment id>.<shard>` (journal) and `s1/<segment id>.<shard>`
//! (snapshots). The segment id is the keyed permutation of what the blob is
//! ([`archipel_codec::names`]): the vault reads run, number and part back from the name,
//! a provider learns nothing but the kind. The sealed shard identity repeats them (the version
//! id holds run and number, the part number the part), and what is read is checked against it.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Weak};
use std::time::Duration;

use archipel_codec::{
    CodecParams, DataKey, MetaBlob, SegmentId, ShardHeader, ShardIdentity, ShardTrailer, VersionId,
    WrappedKey, whole,
};
use archipel_meta::{JournalSink, SnapshotSeal};
use archipel_provider::{BlobName, Provider, ProviderExt};
use async_trait::async_trait;
use futures::StreamExt;

use crate::engine::{Engine, Inner, now_ms, random};
use crate::error::{EngineError, Result};
use crate::write::parse_blob_name;

/// Where journal shards live on every provider.
pub const JOURNAL_PREFIX: &str = "j1/";

/// Where snapshot shards live on every provider.
pub const SNAPSHOT_PREFIX: &str = "s1/";

/// How many metadata blobs are read, or shards deleted, at a time.
const PARALLEL: usize = 16;

/// The blob every provider holds with the vault header (76 bytes, nothing secret): what
/// `archipel recover` starts from.
pub const VAULT_HEADER_BLOB: &str = "archipel-vault";

/// How long one journal shard put may take before the provider is left out of that segment.
const PUT_PATIENCE: Duration = Duration::from_secs(20);

/// The sink that writes journal segments to the providers.
struct ProviderJournal {
    inner: Weak<Inner>,
}

impl ProviderJournal {
    fn inner(&self) -> std::result::Result<Arc<Inner>, String> {
        self.inner
            .upgrade()
            .ok_or_else(|| "the engine is gone".to_string())
    }
}

#[async_trait]
impl JournalSink for ProviderJournal {
    async fn write(
        &self,
        run: u64,
        number: u64,
        payload: Vec<u8>,
    ) -> std::result::Result<(), String> {
        let inner = self.inner()?;
        write_segment(&inner, MetaBlob::Journal { run, number }, &payload)
            .await
            .map_err(|e| e.to_string())
    }

    async fn write_snapshot_part(
        &self,
        at: (u64, u64),
        part: u32,
        payload: Vec<u8>,
    ) -> std::result::Result<(), String> {
        let inner = self.inner()?;
        let blob = MetaBlob::Snapshot {
            run: at.0,
            number: at.1,
            part,
        };
        write_segment(&inner, blob, &payload)
            .await
            .map_err(|e| e.to_string())
    }
}

/// The sealed identity of a metadata blob: run and number in the version id, the snapshot
/// part in the part number, and the key field saying which kind it is.
fn identity_of(blob: MetaBlob) -> ShardIdentity {
    let (run, number, part, key) = match blob {
        MetaBlob::Journal { run, number } => (run, number, 0, ""),
        MetaBlob::Snapshot { run, number, part } => (run, number, part, SNAPSHOT_IDENTITY),
    };
    let mut v = [0u8; 16];
    v[..8].copy_from_slice(&run.to_be_bytes());
    v[8..].copy_from_slice(&number.to_be_bytes());
    ShardIdentity {
        version: VersionId(v),
        timestamp_ms: now_ms(),
        part_number: part,
        bucket: String::new(),
        key: key.to_string(),
    }
}

/// The key field of a snapshot part's identity (a journal segment's is empty).
const SNAPSHOT_IDENTITY: &str = "snapshot";

fn prefix_of(blob: MetaBlob) -> &'static str {
    match blob {
        MetaBlob::Journal { .. } => JOURNAL_PREFIX,
        MetaBlob::Snapshot { .. } => SNAPSHOT_PREFIX,
    }
}

/// Writes the metadata blob `blob` (a journal segment or a snapshot part) to the providers.
/// A retry of the same blob puts the same names with a new data key; readers take the shards
/// of one attempt ([`read_one`]).
async fn write_segment(inner: &Arc<Inner>, blob: MetaBlob, payload: &[u8]) -> Result<()> {
    let engine = Engine {
        inner: inner.clone(),
    };
    let policy = engine.default_policy()?;
    let params = CodecParams::with_stripe_size(policy.k, policy.m, inner.opts.stripe_size)?;
    let segment = inner.namer.name(blob)?;
    let data_key = DataKey::from_bytes(random()?);
    let wrapped = WrappedKey::wrap(&inner.master, &segment, &data_key, random()?)?;
    let identity = identity_of(blob);
    let prefix = prefix_of(blob);
    let what = match blob {
        MetaBlob::Journal { run, number } => format!("journal segment {run}/{number}"),
        MetaBlob::Snapshot { run, number, part } => {
            format!("snapshot {run}/{number} part {part}")
        }
    };
    let spec = archipel_codec::SegmentSpec {
        version: identity.version,
        segment,
        params,
    };
    let encoded = whole::encode_segment(spec, &data_key, &wrapped, &identity, payload)?;
    let set = inner.set();
    let placement = policy.place_preferring(&set.infos, segment.as_bytes(), |p| {
        inner.health.trusted_for_write(&p.name)
    })?;
    // Every shard is put by a task of its own: once the write quorum is durable the
    // segment is acknowledged, and stragglers finish (or time out) by themselves, so no
    // hung provider holds a mutation longer than the others take.
    let mut puts = futures::stream::FuturesUnordered::new();
    for (i, (name, bytes)) in placement.providers.iter().zip(encoded.shards).enumerate() {
        let provider = set.providers.get(name).cloned();
        let name = name.clone();
        let blob = BlobName::new(format!("{prefix}{}.{i}", segment.to_hex()));
        puts.push(tokio::spawn(async move {
            let provider = provider.ok_or_else(|| format!("{name}: not configured"))?;
            let blob = blob.map_err(|e| e.to_string())?;
            match tokio::time::timeout(PUT_PATIENCE, provider.put_bytes(&blob, bytes)).await {
                Ok(Ok(_)) => Ok(()),
                Ok(Err(e)) => Err(format!("{name}: {e}")),
                Err(_) => Err(format!("{name}: no answer in {} s", PUT_PATIENCE.as_secs())),
            }
        }));
    }
    let n = puts.len();
    let (mut ok, mut errors) = (0usize, Vec::new());
    while let Some(r) = puts.next().await {
        match r {
            Ok(Ok(())) => ok += 1,
            Ok(Err(e)) => errors.push(e),
            Err(e) => errors.push(format!("a shard put failed: {e}")),
        }
        if ok >= policy.write_quorum {
            return Ok(());
        }
    }
    // Every put has answered and the quorum was not met: with at least `k` shards the
    // segment can be read back, so the mutations it holds are acknowledged — as a write
    // with providers down is when its own policy allows (a 3+2 bucket with two of six
    // providers down) — and the shortfall is logged.
    if ok >= policy.k {
        tracing::warn!(
            "{what} written with {ok} of {n} shards (quorum {}): {}",
            policy.write_quorum,
            errors.join("; ")
        );
        return Ok(());
    }
    Err(EngineError::Unavailable {
        what,
        needed: policy.write_quorum,
        usable: ok,
        detail: errors.join("; "),
    })
}

/// A journal segment read back.
#[derive(Debug, Clone)]
pub struct JournalSegmentRead {
    /// The writer's run.
    pub run: u64,
    /// The segment's number in the run.
    pub number: u64,
    /// Its plaintext ([`archipel_meta::journal::Segment::encode`]'s bytes).
    pub payload: Vec<u8>,
}

/// Everything read from the journal.
#[derive(Debug, Clone, Default)]
pub struct JournalRead {
    /// Readable segments by (run, number), each once.
    pub segments: BTreeMap<(u64, u64), JournalSegmentRead>,
    /// Segments before the position asked for (superseded by a snapshot), not read.
    pub superseded: u64,
    /// Segments of which fewer than `k` shards could be read, by segment id, with why.
    pub unreadable: Vec<String>,
    /// Providers that could not be listed, with why.
    pub unlisted: Vec<String>,
}

/// The shards of one metadata blob: (provider, blob name) pairs.
type Shards = Vec<(String, String)>;

/// The latest complete snapshot on the providers ([`Engine::find_snapshot`]).
#[derive(Debug, Clone, Default)]
pub struct SnapshotFound {
    /// The journal position it was taken at: it holds the state of every record of the
    /// segments before (`run`, `number`).
    pub at: (u64, u64),
    /// Its seal.
    pub seal: SnapshotSeal,
    /// The shards of each part, from part 1.
    parts: BTreeMap<u32, Shards>,
    /// Snapshots passed over (incomplete or unreadable), with why.
    pub passed_over: Vec<String>,
    /// Providers that could not be listed, with why.
    pub unlisted: Vec<String>,
}

impl SnapshotFound {
    /// The parts listed, from 1.
    pub fn parts(&self) -> u32 {
        self.parts.len() as u32
    }
}

/// What [`Engine::compact_journal`] removed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CompactReport {
    /// Journal segments removed (every shard of theirs that was listed).
    pub segments_removed: u64,
    /// Snapshot parts of older snapshots removed.
    pub snapshot_parts_removed: u64,
    /// Shards under the metadata prefixes whose names are no metadata name of this vault
    /// (a journal written before names were derived, debris), removed.
    pub foreign_removed: u64,
    /// Shards deleted.
    pub shards_deleted: u64,
    /// Deletes or listings that failed, with why (retried at the next compaction).
    pub failed: Vec<String>,
}

/// Which shards of which object segments the providers hold, from their listings.
#[derive(Debug, Clone, Default)]
pub struct ShardCensus {
    /// Shard indexes listed, by segment.
    pub shards: HashMap<SegmentId, BTreeSet<u8>>,
    /// Providers that could not be listed, with why.
    pub unlisted: Vec<String>,
}

impl ShardCensus {
    /// How many distinct shards of `segment` were listed.
    pub fn count(&self, segment: &SegmentId) -> usize {
        self.shards.get(segment).map_or(0, BTreeSet::len)
    }
}

/// What [`Engine::check_manifest`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Readability {
    /// Every segment has at least `k` shards listed.
    pub readable: bool,
    /// The segments the manifest references.
    pub segments: Vec<SegmentId>,
}

async fn list_everywhere(
    providers: &BTreeMap<String, Arc<dyn Provider>>,
    prefix: &str,
) -> (Vec<(String, Vec<String>)>, Vec<String>) {
    let lists = providers.iter().map(|(name, p)| {
        let p = p.clone();
        let name = name.clone();
        async move { (name, p.list_all(prefix).await) }
    });
    let mut out = Vec::new();
    let mut failed = Vec::new();
    for (name, r) in futures::future::join_all(lists).await {
        match r {
            Ok(blobs) => out.push((
                name,
                blobs
                    .into_iter()
                    .map(|b| b.name.as_str().to_string())
                    .collect(),
            )),
            Err(e) => failed.push(format!("{name}: {e}")),
        }
    }
    (out, failed)
}

/// What the providers list under a metadata prefix.
#[derive(Default)]
struct MetaListing {
    /// The blobs whose names are this vault's metadata names, by what the names say.
    blobs: BTreeMap<MetaBlob, Shards>,
    /// Blobs whose names are not (a journal written before names were derived, or debris).
    foreign: Shards,
    /// Providers that could not be listed, with why.
    unlisted: Vec<String>,
}

/// The metadata blobs under `prefix` on every provider.
async fn list_meta(inner: &Inner, prefix: &str) -> MetaListing {
    let set = inner.set();
    let (lists, unlisted) = list_everywhere(&set.providers, prefix).await;
    let mut out = MetaListing {
        unlisted,
        ..MetaListing::default()
    };
    for (provider, names) in lists {
        for name in names {
            let blob = name
                .strip_prefix(prefix)
                .and_then(|r| r.split_once('.'))
                .and_then(|(stem, _)| SegmentId::from_hex(stem))
                .and_then(|id| inner.namer.parse(&id));
            match blob {
                Some(blob) => out
                    .blobs
                    .entry(blob)
                    .or_default()
                    .push((provider.clone(), name)),
                None => out.foreign.push((provider.clone(), name)),
            }
        }
    }
    out
}

impl Engine {
    /// The sink that writes journal segments to this engine's providers.
    pub fn journal_sink(&self) -> Arc<dyn JournalSink> {
        Arc::new(ProviderJournal {
            inner: Arc::downgrade(&self.inner),
        })
    }

    /// Writes the vault header to every provider as [`VAULT_HEADER_BLOB`]; the providers
    /// that failed, with why.
    pub async fn publish_vault_header(&self, header: &[u8]) -> Vec<String> {
        let set = self.inner.set();
        let Ok(blob) = BlobName::new(VAULT_HEADER_BLOB) else {
            return vec!["the vault header's blob name is invalid".into()];
        };
        let puts = set.providers.iter().map(|(name, p)| {
            let blob = blob.clone();
            let bytes = header.to_vec();
            async move {
                match tokio::time::timeout(PUT_PATIENCE, p.put_bytes(&blob, bytes)).await {
                    Ok(Ok(_)) => None,
                    Ok(Err(e)) => Some(format!("{name}: {e}")),
                    Err(_) => Some(format!("{name}: no answer")),
                }
            }
        });
        futures::future::join_all(puts)
            .await
            .into_iter()
            .flatten()
            .collect()
    }

    /// Lists the journal on every provider and reads every segment at or after `from` (all
    /// of them without `from`) from `k` of its shards ([`PARALLEL`] at a time), calling
    /// `progress(done, total)` as segments are read. Segments before `from` are counted,
    /// not read.
    pub async fn read_journal(
        &self,
        from: Option<(u64, u64)>,
        progress: &(dyn Fn(u64, u64) + Sync),
    ) -> JournalRead {
        let listed = list_meta(&self.inner, JOURNAL_PREFIX).await;
        let mut out = JournalRead {
            unlisted: listed.unlisted,
            ..JournalRead::default()
        };
        let mut wanted: Vec<(Option<MetaBlob>, Shards)> = Vec::new();
        for (blob, shards) in listed.blobs {
            if let MetaBlob::Journal { run, number } = blob {
                if from.is_some_and(|f| (run, number) < f) {
                    out.superseded += 1;
                } else {
                    wanted.push((Some(blob), shards));
                }
            }
        }
        // Segments under names that say nothing (a journal written before names were
        // derived): read, and placed by their sealed identity.
        let mut foreign: BTreeMap<String, Shards> = BTreeMap::new();
        for (provider, name) in listed.foreign {
            let stem = name
                .split_once('.')
                .map_or(name.as_str(), |(s, _)| s)
                .to_string();
            foreign.entry(stem).or_default().push((provider, name));
        }
        wanted.extend(foreign.into_values().map(|shards| (None, shards)));
        let total = wanted.len() as u64;
        let mut done = 0u64;
        progress(0, total);
        let set = self.inner.set();
        let mut reads = futures::stream::iter(wanted)
            .map(|(blob, shards)| {
                let set = set.clone();
                let master = self.inner.master.clone();
                async move { (blob, read_one(&set.providers, &master, blob, shards).await) }
            })
            .buffer_unordered(PARALLEL);
        while let Some((blob, r)) = reads.next().await {
            match r {
                Ok((MetaBlob::Journal { run, number }, payload)) => {
                    if from.is_some_and(|f| (run, number) < f) {
                        out.superseded += 1;
                    } else {
                        out.segments
                            .entry((run, number))
                            .or_insert(JournalSegmentRead {
                                run,
                                number,
                                payload,
                            });
                    }
                }
                Ok((MetaBlob::Snapshot { .. }, _)) => {}
                Err(e) => out.unreadable.push(match blob {
                    Some(MetaBlob::Journal { run, number }) => {
                        format!("segment {run}/{number}: {e}")
                    }
                    _ => format!("a journal segment: {e}"),
                }),
            }
            done += 1;
            progress(done, total);
        }
        out
    }

    /// The metadata blobs `provider` lists: journal and snapshot shards and the vault
    /// header.
    pub async fn metadata_on(&self, provider: &str) -> Result<crate::Held> {
        let p = self
            .inner
            .provider(provider)
            .ok_or_else(|| EngineError::Invalid(format!("no provider named {provider}")))?;
        let mut held = crate::Held::default();
        for prefix in [JOURNAL_PREFIX, SNAPSHOT_PREFIX, VAULT_HEADER_BLOB] {
            for b in p.list_all(prefix).await? {
                held.add(b.size);
            }
        }
        Ok(held)
    }

    /// Deletes every metadata blob `provider` lists (journal and snapshot shards, the vault
    /// header); how many. For a drained provider, once a snapshot placed elsewhere
    /// superseded every segment and snapshot with a shard on it.
    pub async fn purge_metadata(&self, provider: &str) -> Result<u64> {
        let p = self
            .inner
            .provider(provider)
            .ok_or_else(|| EngineError::Invalid(format!("no provider named {provider}")))?;
        let mut n = 0;
        for prefix in [JOURNAL_PREFIX, SNAPSHOT_PREFIX, VAULT_HEADER_BLOB] {
            for b in p.list_all(prefix).await? {
                p.delete(&b.name).await?;
                n += 1;
            }
        }
        Ok(n)
    }

    /// How many journal segments at or after `from` (all, without `from`) the providers
    /// list: the tail a recovery would replay after a snapshot at `from`. Counted from the
    /// names, nothing is read.
    pub async fn journal_tail(&self, from: Option<(u64, u64)>) -> u64 {
        list_meta(&self.inner, JOURNAL_PREFIX)
            .await
            .blobs
            .keys()
            .filter(|b| match b {
                MetaBlob::Journal { run, number } => from.is_none_or(|f| (*run, *number) >= f),
                MetaBlob::Snapshot { .. } => false,
            })
            .count() as u64
    }

    /// The latest snapshot on the providers whose seal reads back and whose parts are all
    /// listed; `None` when there is none.
    pub async fn find_snapshot(&self) -> Option<SnapshotFound> {
        let listed = list_meta(&self.inner, SNAPSHOT_PREFIX).await;
        let unlisted = listed.unlisted;
        let mut by_at: BTreeMap<(u64, u64), BTreeMap<u32, Shards>> = BTreeMap::new();
        for (blob, shards) in listed.blobs {
            if let MetaBlob::Snapshot { run, number, part } = blob {
                by_at.entry((run, number)).or_default().insert(part, shards);
            }
        }
        let set = self.inner.set();
        let mut passed_over = Vec::new();
        while let Some((at, mut parts)) = by_at.pop_last() {
            let Some(seal_shards) = parts.remove(&0) else {
                passed_over.push(format!("snapshot {}/{}: not sealed", at.0, at.1));
                continue;
            };
            let blob = MetaBlob::Snapshot {
                run: at.0,
                number: at.1,
                part: 0,
            };
            let read = read_one(&set.providers, &self.inner.master, Some(blob), seal_shards).await;
            let seal = match read.map(|(_, b)| SnapshotSeal::decode(&b)) {
                Ok(Ok(s)) => s,
                Ok(Err(e)) => {
                    passed_over.push(format!("snapshot {}/{}: seal: {e}", at.0, at.1));
                    continue;
                }
                Err(e) => {
                    passed_over.push(format!("snapshot {}/{}: seal: {e}", at.0, at.1));
                    continue;
                }
            };
            let complete = (seal.run, seal.number) == at
                && parts.len() == seal.parts as usize
                && parts.keys().copied().eq(1..=seal.parts);
            if !complete {
                passed_over.push(format!(
                    "snapshot {}/{}: {} of its {} parts listed",
                    at.0,
                    at.1,
                    parts.len(),
                    seal.parts
                ));
                continue;
            }
            return Some(SnapshotFound {
                at,
                seal,
                parts,
                passed_over,
                unlisted,
            });
        }
        None
    }

    /// Reads part `part` (from 1) of `snapshot`.
    pub async fn read_snapshot_part(&self, snapshot: &SnapshotFound, part: u32) -> Result<Vec<u8>> {
        let shards =
            snapshot
                .parts
                .get(&part)
                .cloned()
                .ok_or_else(|| EngineError::Unavailable {
                    what: format!("snapshot {}/{} part {part}", snapshot.at.0, snapshot.at.1),
                    needed: 1,
                    usable: 0,
                    detail: "no shard of it is listed".into(),
                })?;
        let blob = MetaBlob::Snapshot {
            run: snapshot.at.0,
            number: snapshot.at.1,
            part,
        };
        let set = self.inner.set();
        read_one(&set.providers, &self.inner.master, Some(blob), shards)
            .await
            .map(|(_, b)| b)
    }

    /// Removes what the snapshot at `at` supersedes — every journal segment before `at` and
    /// every older snapshot — from every provider that lists it. Call only once that
    /// snapshot is sealed.
    pub async fn compact_journal(&self, at: (u64, u64)) -> CompactReport {
        let mut report = CompactReport::default();
        let mut doomed: Vec<(String, String)> = Vec::new();
        for prefix in [JOURNAL_PREFIX, SNAPSHOT_PREFIX] {
            let listed = list_meta(&self.inner, prefix).await;
            report.failed.extend(listed.unlisted);
            // Names that are no metadata name of this vault's are debris, or segments of a
            // journal written before names were derived: the snapshot holds whatever they
            // did (it walks the whole store).
            report.foreign_removed += listed.foreign.len() as u64;
            doomed.extend(listed.foreign);
            for (blob, shards) in listed.blobs {
                let older = match blob {
                    MetaBlob::Journal { run, number } => {
                        let older = (run, number) < at;
                        report.segments_removed += u64::from(older);
                        older
                    }
                    MetaBlob::Snapshot { run, number, .. } => {
                        let older = (run, number) < at;
                        report.snapshot_parts_removed += u64::from(older);
                        older
                    }
                };
                if older {
                    doomed.extend(shards);
                }
            }
        }
        let set = self.inner.set();
        let mut deletes = futures::stream::iter(doomed)
            .map(|(provider, name)| {
                let p = set.providers.get(&provider).cloned();
                async move {
                    let p = p.ok_or_else(|| format!("{provider}: not configured"))?;
                    let blob = BlobName::new(name.clone()).map_err(|e| e.to_string())?;
                    p.delete(&blob)
                        .await
                        .map_err(|e| format!("{provider}/{name}: {e}"))
                }
            })
            .buffer_unordered(PARALLEL);
        while let Some(r) = deletes.next().await {
            match r {
                Ok(()) => report.shards_deleted += 1,
                Err(e) => {
                    if report.failed.len() < 20 {
                        report.failed.push(e);
                    }
                }
            }
        }
        report
    }

    /// Lists every provider's object shards (`v1/`), all providers at once, a page at a
    /// time: only (segment, shard) pairs are kept, not the names.
    pub async fn shard_census(&self) -> ShardCensus {
        let set = self.inner.set();
        let lists = set.providers.iter().map(|(name, p)| async move {
            let mut found: Vec<(SegmentId, u8)> = Vec::new();
            let mut after: Option<BlobName> = None;
            loop {
                let page = match p
                    .list(
                        crate::write::BLOB_PREFIX,
                        after.as_ref(),
                        p.capabilities().max_list_page,
                    )
                    .await
                {
                    Ok(page) => page,
                    Err(e) => return Err(format!("{name}: {e}")),
                };
                found.extend(
                    page.blobs
                        .iter()
                        .filter_map(|b| parse_blob_name(b.name.as_str())),
                );
                after = page.blobs.last().map(|b| b.name.clone());
                if !page.more || after.is_none() {
                    return Ok(found);
                }
            }
        });
        let mut census = ShardCensus::default();
        for r in futures::future::join_all(lists).await {
            match r {
                Ok(found) => {
                    for (segment, shard) in found {
                        census.shards.entry(segment).or_default().insert(shard);
                    }
                }
                Err(e) => census.unlisted.push(e),
            }
        }
        census
    }

    /// Whether every segment of the manifest `bytes` has at least `k` shards in `census`,
    /// and which segments it references (one decode for both).
    pub fn check_manifest(&self, census: &ShardCensus, bytes: &[u8]) -> Result<Readability> {
        let m = self.inner.decode_manifest(bytes)?;
        Ok(Readability {
            readable: m
                .segments
                .iter()
                .all(|s| census.count(&s.segment) >= s.params.k()),
            segments: m.segments.iter().map(|s| s.segment).collect(),
        })
    }
}

/// Reads one metadata blob from whichever of its shards verify, `k` shards of one write
/// attempt being enough (a retried write puts the same names with another data key), and
/// checks that what the sealed identity says is what the name said.
async fn read_one(
    providers: &BTreeMap<String, Arc<dyn Provider>>,
    master: &archipel_codec::MasterKey,
    blob: Option<MetaBlob>,
    shards: Shards,
) -> Result<(MetaBlob, Vec<u8>)> {
    struct Attempt {
        wrapped: WrappedKey,
        header: ShardHeader,
        key: DataKey,
        id: ShardIdentity,
        got: Vec<Option<Vec<u8>>>,
        have: usize,
    }
    let mut attempts: Vec<Attempt> = Vec::new();
    let mut errors = Vec::new();
    let mut complete: Option<usize> = None;
    for (provider, name) in shards {
        let Some(p) = providers.get(&provider) else {
            continue;
        };
        let Ok(blob_name) = BlobName::new(name.clone()) else {
            continue;
        };
        let bytes = match p.get_bytes(&blob_name, None).await {
            Ok(b) => b,
            Err(e) => {
                errors.push(format!("{provider}: {e}"));
                continue;
            }
        };
        let parsed = ShardHeader::parse(&bytes).and_then(|h| {
            let key = h.wrapped_key.unwrap(master, &h.segment)?;
            let id = h.open(&key)?;
            Ok((h, key, id))
        });
        let (h, key, id) = match parsed {
            Ok(x) => x,
            Err(e) => {
                errors.push(format!("{provider}/{name}: {e}"));
                continue;
            }
        };
        if identity_blob(&id).is_none_or(|is| blob.is_some_and(|b| b != is)) {
            errors.push(format!("{provider}/{name}: its identity is another blob's"));
            continue;
        }
        let i = match attempts.iter().position(|a| a.wrapped == h.wrapped_key) {
            Some(i) => i,
            None => {
                attempts.push(Attempt {
                    wrapped: h.wrapped_key.clone(),
                    got: vec![None; h.params.n()],
                    header: h.clone(),
                    key,
                    id,
                    have: 0,
                });
                attempts.len() - 1
            }
        };
        let a = &mut attempts[i];
        let idx = h.shard.get();
        if idx < a.got.len() && a.got[idx].is_none() {
            a.got[idx] = Some(bytes);
            a.have += 1;
        }
        if a.have >= a.header.params.k() {
            complete = Some(i);
            break;
        }
    }
    let unavailable = |needed: usize, usable: usize, errors: &[String]| EngineError::Unavailable {
        what: "metadata blob".into(),
        needed,
        usable,
        detail: errors.join("; "),
    };
    let Some(a) = complete.map(|i| attempts.swap_remove(i)) else {
        let best = attempts.iter().max_by_key(|a| a.have);
        return Err(match best {
            Some(a) => unavailable(a.header.params.k(), a.have, &errors),
            None => unavailable(1, 0, &errors),
        });
    };
    let (h, key, id, got) = (a.header, a.key, a.id, a.got);
    let is = identity_blob(&id).ok_or_else(|| unavailable(1, 0, &["no identity".to_string()]))?;
    // The length is in every shard's trailer.
    let mut len = None;
    for b in got.iter().flatten() {
        if b.len() >= ShardTrailer::LEN {
            let Ok(sh) = ShardHeader::parse(b) else {
                continue;
            };
            if let Ok(t) = ShardTrailer::open(&b[b.len() - ShardTrailer::LEN..], &sh, &key) {
                len = Some(t.len);
                break;
            }
        }
    }
    let len = len
        .ok_or_else(|| unavailable(h.params.k(), 0, &["no shard trailer verifies".to_string()]))?;
    let spec = h.spec(&id);
    let refs: Vec<Option<&[u8]>> = got.iter().map(|b| b.as_deref()).collect();
    let (payload, _) = whole::decode_segment_range(spec, &key, len, h.len(), &refs, 0..len)?;
    Ok((is, payload))
}

/// What a metadata blob's sealed identity says it is (the inverse of [`identity_of`]).
fn identity_blob(id: &ShardIdentity) -> Option<MetaBlob> {
    let v = id.version.as_bytes();
    let mut r = [0u8; 8];
    r.copy_from_slice(&v[..8]);
    let mut n = [0u8; 8];
    n.copy_from_slice(&v[8..]);
    let (run, number) = (u64::from_be_bytes(r), u64::from_be_bytes(n));
    match (id.bucket.as_str(), id.key.as_str(), id.part_number) {
        ("", "", 0) => Some(MetaBlob::Journal { run, number }),
        ("", SNAPSHOT_IDENTITY, part) => Some(MetaBlob::Snapshot { run, number, part }),
        _ => None,
    }
}
