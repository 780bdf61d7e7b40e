//! The metadata journal on the providers (decision 0012): the [`JournalSink`] that writes
//! each journal segment erasure-coded and encrypted like an object segment, and what
//! recovery reads back — the segments ([`Engine::read_journal`]), which object shards the
//! providers hold ([`Engine::shard_census`]) and the vault header ([`VAULT_HEADER_BLOB`]).
//!
//! A journal segment is one codec segment under the default policy's `k + m`, placed by
//! the policy's rules, with its own data key wrapped under the master key; its shards are
//! `j1/<segment id>.<shard>`. The sealed shard identity carries the run and the segment
//! number (the version id's two halves), so a provider learns only that a blob is journal.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Weak};
use std::time::Duration;

use archipel_codec::{
    CodecParams, DataKey, SegmentId, ShardHeader, ShardIdentity, ShardTrailer, VersionId,
    WrappedKey, whole,
};
use archipel_meta::JournalSink;
use archipel_provider::{BlobName, Provider, ProviderExt};
use async_trait::async_trait;
use futures::StreamExt;

use crate::engine::{Engine, Inner, now_ms, random};
use crate::error::{EngineError, Result};
use crate::write::parse_blob_name;

/// Where journal shards live on every provider.
pub const JOURNAL_PREFIX: &str = "j1/";

/// The blob every provider holds with the vault header (76 bytes, nothing secret): what
/// `archipel recover` starts from.
pub const VAULT_HEADER_BLOB: &str = "archipel-vault";

/// How long one journal shard put may take before the provider is left out of that segment.
const PUT_PATIENCE: Duration = Duration::from_secs(20);

/// The sink that writes journal segments to the providers.
struct ProviderJournal {
    inner: Weak<Inner>,
}

#[async_trait]
impl JournalSink for ProviderJournal {
    async fn write(
        &self,
        run: u64,
        number: u64,
        payload: Vec<u8>,
    ) -> std::result::Result<(), String> {
        let inner = self
            .inner
            .upgrade()
            .ok_or_else(|| "the engine is gone".to_string())?;
        write_segment(&inner, run, number, &payload)
            .await
            .map_err(|e| e.to_string())
    }
}

fn identity_of(run: u64, number: u64) -> ShardIdentity {
    let mut v = [0u8; 16];
    v[..8].copy_from_slice(&run.to_be_bytes());
    v[8..].copy_from_slice(&number.to_be_bytes());
    ShardIdentity {
        version: VersionId(v),
        timestamp_ms: now_ms(),
        part_number: 0,
        bucket: String::new(),
        key: String::new(),
    }
}

fn run_and_number(id: &ShardIdentity) -> (u64, u64) {
    let v = id.version.as_bytes();
    let mut r = [0u8; 8];
    r.copy_from_slice(&v[..8]);
    let mut n = [0u8; 8];
    n.copy_from_slice(&v[8..]);
    (u64::from_be_bytes(r), u64::from_be_bytes(n))
}

async fn write_segment(inner: &Arc<Inner>, run: u64, number: u64, payload: &[u8]) -> Result<()> {
    let engine = Engine {
        inner: inner.clone(),
    };
    let policy = engine.default_policy()?;
    let params = CodecParams::with_stripe_size(policy.k, policy.m, inner.opts.stripe_size)?;
    let segment = SegmentId(random()?);
    let data_key = DataKey::from_bytes(random()?);
    let wrapped = WrappedKey::wrap(&inner.master, &segment, &data_key, random()?)?;
    let identity = identity_of(run, number);
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
        let blob = BlobName::new(format!("{JOURNAL_PREFIX}{}.{i}", segment.to_hex()));
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
            "journal segment {run}/{number} written with {ok} of {n} shards (quorum {}): {}",
            policy.write_quorum,
            errors.join("; ")
        );
        return Ok(());
    }
    Err(EngineError::Unavailable {
        what: format!("journal segment {run}/{number}"),
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
    /// Segments of which fewer than `k` shards could be read, by segment id, with why.
    pub unreadable: Vec<String>,
    /// Providers that could not be listed, with why.
    pub unlisted: Vec<String>,
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
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Readability {
    /// Every segment has at least `k` shards listed.
    pub readable: bool,
    /// The segments the manifest references.
    pub segments: usize,
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

    /// Lists the journal on every provider and reads every segment from `k` of its shards
    /// (16 segments at a time), calling `progress(done, total)` as segments are read.
    pub async fn read_journal(&self, progress: &(dyn Fn(u64, u64) + Sync)) -> JournalRead {
        let set = self.inner.set();
        let (lists, unlisted) = list_everywhere(&set.providers, JOURNAL_PREFIX).await;
        let mut by_segment: BTreeMap<String, Vec<(String, String)>> = BTreeMap::new();
        for (provider, names) in lists {
            for name in names {
                let Some(stem) = name
                    .strip_prefix(JOURNAL_PREFIX)
                    .and_then(|r| r.split_once('.'))
                    .map(|(s, _)| s.to_string())
                else {
                    continue;
                };
                by_segment
                    .entry(stem)
                    .or_default()
                    .push((provider.clone(), name));
            }
        }
        let total = by_segment.len() as u64;
        let mut out = JournalRead {
            unlisted,
            ..JournalRead::default()
        };
        let mut done = 0u64;
        progress(0, total);
        let mut reads = futures::stream::iter(by_segment)
            .map(|(stem, shards)| {
                let set = set.clone();
                let master = self.inner.master.clone();
                async move { (stem, read_one(&set.providers, &master, shards).await) }
            })
            .buffer_unordered(16);
        while let Some((stem, r)) = reads.next().await {
            match r {
                Ok(s) => {
                    out.segments.entry((s.run, s.number)).or_insert(s);
                }
                Err(e) => out.unreadable.push(format!("{stem}: {e}")),
            }
            done += 1;
            progress(done, total);
        }
        out
    }

    /// Lists every provider's object shards (`v1/`).
    pub async fn shard_census(&self) -> ShardCensus {
        let set = self.inner.set();
        let (lists, unlisted) = list_everywhere(&set.providers, crate::write::BLOB_PREFIX).await;
        let mut census = ShardCensus {
            unlisted,
            ..ShardCensus::default()
        };
        for (_, names) in lists {
            for name in names {
                if let Some((segment, shard)) = parse_blob_name(&name) {
                    census.shards.entry(segment).or_default().insert(shard);
                }
            }
        }
        census
    }

    /// Whether every segment of the manifest `bytes` has at least `k` shards in `census`.
    pub fn check_manifest(&self, census: &ShardCensus, bytes: &[u8]) -> Result<Readability> {
        let m = self.inner.decode_manifest(bytes)?;
        Ok(Readability {
            readable: m
                .segments
                .iter()
                .all(|s| census.count(&s.segment) >= s.params.k()),
            segments: m.segments.len(),
        })
    }

    /// The segment ids the manifest `bytes` references.
    pub fn manifest_segments(&self, bytes: &[u8]) -> Result<Vec<SegmentId>> {
        Ok(self
            .inner
            .decode_manifest(bytes)?
            .segments
            .iter()
            .map(|s| s.segment)
            .collect())
    }
}

/// Reads one journal segment from whichever of its shards verify, `k` being enough.
async fn read_one(
    providers: &BTreeMap<String, Arc<dyn Provider>>,
    master: &archipel_codec::MasterKey,
    shards: Vec<(String, String)>,
) -> Result<JournalSegmentRead> {
    let mut got: Vec<Option<Vec<u8>>> = Vec::new();
    let mut header: Option<(ShardHeader, DataKey, ShardIdentity)> = None;
    let mut errors = Vec::new();
    let mut have = 0usize;
    for (provider, name) in shards {
        if let Some((h, _, _)) = &header
            && have >= h.params.k()
        {
            break;
        }
        let Some(p) = providers.get(&provider) else {
            continue;
        };
        let Ok(blob) = BlobName::new(name.clone()) else {
            continue;
        };
        let bytes = match p.get_bytes(&blob, None).await {
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
        let idx = h.shard.get();
        if got.len() < h.params.n() {
            got.resize(h.params.n(), None);
        }
        if idx < got.len() && got[idx].is_none() {
            got[idx] = Some(bytes);
            have += 1;
        }
        if header.is_none() {
            header = Some((h, key, id));
        }
    }
    let unavailable = |needed: usize, usable: usize, errors: &[String]| EngineError::Unavailable {
        what: "journal segment".into(),
        needed,
        usable,
        detail: errors.join("; "),
    };
    let (h, key, id) = header.ok_or_else(|| unavailable(1, 0, &errors))?;
    if have < h.params.k() {
        return Err(unavailable(h.params.k(), have, &errors));
    }
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
    let (run, number) = run_and_number(&id);
    Ok(JournalSegmentRead {
        run,
        number,
        payload,
    })
}
