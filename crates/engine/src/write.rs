//! The write path: one segment (a whole object, or one multipart part) from a streaming body
//! to `k + m` shard blobs on as many providers.
//!
//! ```text
//! body ──► [feed] ──bounded──► [encode thread: MD5, RS, AES-GCM] ──bounded──► writer 0 ──► provider
//!                                                               ├─bounded──► writer 1 ──► provider
//!                                                               └─ …        (k + m writers)
//! ```
//!
//! Every channel holds at most `pipeline_depth` pieces, so memory per write is bounded by the
//! stripe size times the depth whatever the object size; a slow provider slows the write
//! (backpressure) rather than filling memory. A writer whose provider fails is dropped; the
//! write continues while the write quorum is still reachable. Its shard is then rebuilt on a
//! spare provider (from the shards just written, through the read path) or, if none fits the
//! policy, the segment is committed degraded and the shard queued for repair.
//!
//! No straggler can hold a write (decision 0005). [`Patience`] bounds every wait on one shard:
//!
//! * **stall**: a writer whose channel stays full that long (its provider takes nothing) is
//!   dropped mid-stream, as long as the others still make the quorum;
//! * **tail**: once the quorum of shards is durable, each remaining shard gets that long after
//!   the previous one finished — the provider's recent put p95 times 4, between 250 ms and
//!   1.5 s — and is then left behind: its put goes on in the background for at most
//!   [`STRAGGLER_GRACE`], and its shard is queued for repair (the repair job finds it there if
//!   the put did finish) or rebuilt on a spare;
//! * **hang**: while the quorum is not yet reached, a write waits at most that long for any
//!   shard to make progress, then fails naming who did not answer.
//!
//! A provider that straggled counts as down for a while, longer with each failure in a row
//! (see [`crate::health`]), and a write placed on a provider that is down does not try it at
//! all when the others make the quorum; once the down period is over, one write at a time
//! probes it. So one hung provider costs one write its patience per down period, not every
//! write.
//!
//! A shard stream that ends without its trailer (the body failed, the request was dropped) is
//! turned into an error, so the provider discards the partial blob instead of storing it.

use std::collections::HashSet;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use archipel_codec::{
    CodecError, CodecParams, DataKey, EncodedStripe, ManifestSegment, MasterKey, SegmentEncoder,
    SegmentId, SegmentSpec, ShardHeader, ShardIdentity, ShardIdx, ShardPlacement, ShardTrailer,
    WrappedKey,
};
use archipel_meta::{GcBlob, ProviderName};
use archipel_provider::{BlobName, ErrorKind, ProviderError, PutBody, PutMode};
use bytes::Bytes;
use futures::{Stream, StreamExt};
use md5::{Digest, Md5};
use tokio::sync::mpsc;
use tokio::sync::mpsc::error::TrySendError;
use tokio::task::{AbortHandle, JoinSet};

use crate::engine::{InflightGuard, Inner, random};
use crate::error::{EngineError, Result};
use crate::placement::{Policy, ProviderInfo};
use crate::read::{RepairNote, read_segment};

/// The error a shard writer gets when the write stops elsewhere (body failed, quorum lost).
const ABANDONED: &str = "shard abandoned before its end (the write failed elsewhere)";

/// Whether a writer failed only because the write stopped elsewhere. A remote provider (its
/// HTTP client, its retry layer) may wrap the body's error in its own, so the text is looked
/// for anywhere in the message, whatever the kind: such a provider was reachable.
fn abandoned(e: &ProviderError) -> bool {
    e.message.contains(ABANDONED)
}

/// How long a shard put left behind by a write may go on in the background.
pub(crate) const STRAGGLER_GRACE: Duration = Duration::from_secs(30);

/// How long a write waits for one shard; see the module docs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Patience {
    /// A writer that takes nothing for this long is dropped (when the rest make the quorum).
    pub(crate) stall: Duration,
    /// With the quorum durable, the wait for each further shard.
    pub(crate) tail: Duration,
    /// Without the quorum, the wait for any progress before the write fails.
    pub(crate) hang: Duration,
}

/// The longest a write without its quorum waits for progress.
const HANG_LIMIT: Duration = Duration::from_secs(10);

impl Patience {
    /// A client's write: bounded by the providers' recent put latencies.
    pub(crate) fn for_request(inner: &Inner) -> Self {
        let tail = inner.health.write_patience();
        Patience {
            stall: tail.max(Duration::from_secs(1)),
            tail,
            hang: HANG_LIMIT,
        }
    }

    /// Background work (repair): nobody waits, so only a provider that hangs is given up.
    pub(crate) fn background() -> Self {
        Patience {
            stall: Duration::from_secs(30),
            tail: Duration::from_secs(30),
            hang: Duration::from_secs(30),
        }
    }
}

/// Bodies up to this size are hashed on the encoder thread (a second thread costs more than
/// it saves).
const HASH_INLINE_MAX: u64 = 1024 * 1024;

/// Prefix of every blob the engine writes.
pub(crate) const BLOB_PREFIX: &str = "v1/";

/// The blob holding shard `shard` of `segment`: `v1/<2 hex>/<segment hex>.<shard>`. Random
/// (the segment id is), spread over 256 directories.
pub(crate) fn blob_name(segment: &SegmentId, shard: usize) -> Result<BlobName> {
    let hex = segment.to_hex();
    BlobName::new(format!("{BLOB_PREFIX}{}/{hex}.{shard}", &hex[..2]))
        .map_err(|e| EngineError::Internal(format!("blob name: {e}")))
}

/// The segment and shard a blob name written by [`blob_name`] stands for.
pub(crate) fn parse_blob_name(name: &str) -> Option<(SegmentId, u8)> {
    let rest = name.strip_prefix(BLOB_PREFIX)?;
    let (_, file) = rest.split_once('/')?;
    let (hex, shard) = file.split_once('.')?;
    Some((SegmentId::from_hex(hex)?, shard.parse().ok()?))
}

/// A written segment, ready for a manifest.
pub(crate) struct WrittenSegment {
    pub(crate) segment: ManifestSegment,
    /// Shards written nowhere (queue them for repair once the version is committed).
    pub(crate) unwritten: Vec<RepairNote>,
    /// Shards moved to a spare provider.
    pub(crate) spared: usize,
    /// Keeps the orphan scan away from the segment until it is committed.
    pub(crate) _guard: InflightGuard,
}

/// Where one shard goes.
#[derive(Debug, Clone)]
pub(crate) struct ShardTarget {
    pub(crate) shard: usize,
    pub(crate) provider: String,
    pub(crate) blob: BlobName,
}

enum Msg {
    Data(Bytes),
    End,
}

/// What the encoder thread produced.
struct Encoded {
    md5: [u8; 16],
    len: u64,
    header_len: usize,
}

/// The secrets and identity of a segment being written.
pub(crate) struct SegmentKeys {
    pub(crate) spec: SegmentSpec,
    pub(crate) data_key: DataKey,
    pub(crate) wrapped: WrappedKey,
}

impl SegmentKeys {
    pub(crate) fn fresh(
        master: &MasterKey,
        identity: &ShardIdentity,
        params: CodecParams,
    ) -> Result<Self> {
        let segment = SegmentId(random()?);
        let data_key = DataKey::from_bytes(random()?);
        let wrapped = WrappedKey::wrap(master, &segment, &data_key, random()?)?;
        Ok(SegmentKeys {
            spec: SegmentSpec {
                version: identity.version,
                segment,
                params,
            },
            data_key,
            wrapped,
        })
    }
}

fn usable_infos(inner: &Inner, exclude: &[&str]) -> Vec<ProviderInfo> {
    inner
        .set()
        .infos
        .iter()
        .filter(|p| !exclude.contains(&p.name.as_str()) && !inner.health.is_down(&p.name))
        .cloned()
        .collect()
}

/// Encodes `body` as one segment and writes its shards; see the module docs.
pub(crate) async fn write_segment(
    inner: &Arc<Inner>,
    policy: &Policy,
    identity: &ShardIdentity,
    what: &str,
    body: crate::object::Body,
    expected_len: Option<u64>,
    content_md5: Option<[u8; 16]>,
) -> Result<WrittenSegment> {
    let params = CodecParams::with_stripe_size(policy.k, policy.m, inner.opts.stripe_size)?;
    let keys = SegmentKeys::fresh(&inner.master, identity, params)?;
    let segment = keys.spec.segment;
    let guard = InflightGuard::new(inner.clone(), segment);

    // Shards the write can do without: a write may probe or skip that many providers and
    // still make its quorum from the others.
    let budget = (policy.k + policy.m).saturating_sub(policy.write_quorum);
    // Providers that failed lately are left out when the policy can do without them; ones
    // whose down period is over join as probes, as many as the write can afford to lose.
    // (A provider that is down has failed since it last answered: it is not trusted.)
    let set = inner.set();
    let infos = &set.infos;
    let mut pool: Vec<ProviderInfo> = infos
        .iter()
        .filter(|p| inner.health.trusted_for_write(&p.name))
        .cloned()
        .collect();
    pool.extend(
        infos
            .iter()
            .filter(|p| inner.health.probe_free(&p.name))
            .take(budget)
            .cloned(),
    );
    let placement = match policy.place(&pool, segment.as_bytes()) {
        Ok(p) => p,
        // Too few: the pool's providers first, then the others.
        Err(_) => policy.place_preferring(infos, segment.as_bytes(), |p| {
            pool.iter().any(|q| q.name == p.name)
        })?,
    };
    let targets: Vec<ShardTarget> = placement
        .providers
        .iter()
        .enumerate()
        .map(|(shard, provider)| {
            Ok(ShardTarget {
                shard,
                provider: provider.clone(),
                blob: blob_name(&segment, shard)?,
            })
        })
        .collect::<Result<_>>()?;
    let all_blobs = gc_blobs(&targets);
    // A provider that failed lately is not tried when the others make the quorum (its shard
    // is repaired later): a hung provider would cost every write its patience. One whose
    // down period is over is probed by one write at a time, and only by a write that makes
    // its quorum without it. When the trusted providers alone cannot make the quorum, every
    // target is tried: the write needs some of them to answer.
    let untrusted: Vec<&ShardTarget> = targets
        .iter()
        .filter(|t| !inner.health.trusted_for_write(&t.provider))
        .collect();
    let skip: Vec<usize> = if untrusted.len() <= budget {
        untrusted
            .iter()
            .filter(|t| inner.health.avoid_for_write(&t.provider))
            .map(|t| t.shard)
            .collect()
    } else {
        Vec::new()
    };

    let source = body.map(|r| r.map_err(|e| EngineError::Body(e.to_string())));
    let outcome = encode_and_write(
        inner,
        &keys,
        identity,
        targets.clone(),
        &skip,
        policy.write_quorum,
        Patience::for_request(inner),
        source,
        expected_len,
    )
    .await;
    let (encoded, results) = match outcome {
        Ok(x) => x,
        Err(e) => {
            inner.collect(all_blobs).await?;
            return Err(e);
        }
    };
    if let Some(want) = content_md5
        && encoded.md5 != want
    {
        inner.collect(all_blobs).await?;
        return Err(EngineError::BadDigest {
            expected: hex(&want),
            actual: hex(&encoded.md5),
        });
    }
    let ok: Vec<&ShardTarget> = results
        .iter()
        .filter(|(_, r)| r.is_ok())
        .map(|(t, _)| t)
        .collect();
    if ok.len() < policy.write_quorum {
        // Writers stopped because others failed were fine: count them as usable.
        let usable = results
            .iter()
            .filter(|(_, r)| r.as_ref().err().is_none_or(abandoned))
            .count();
        let detail = results
            .iter()
            .filter_map(|(_, r)| r.as_ref().err().filter(|e| !abandoned(e)))
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join("; ");
        tracing::warn!(
            "{what}: {usable} of the {} providers answered, {} needed: {detail}",
            results.len(),
            policy.write_quorum
        );
        inner.collect(all_blobs).await?;
        return Err(EngineError::Unavailable {
            what: what.to_string(),
            needed: policy.write_quorum,
            usable,
            detail,
        });
    }

    let mut segment_rec = ManifestSegment {
        segment,
        part_number: identity.part_number,
        params,
        len: encoded.len,
        header_len: encoded.header_len as u32,
        wrapped_key: keys.wrapped.clone(),
        etag: hex(&encoded.md5),
        placement: ok
            .iter()
            .map(|t| ShardPlacement {
                shard: ShardIdx(t.shard as u8),
                provider: t.provider.clone(),
                blob: t.blob.as_str().to_string(),
            })
            .collect(),
    };
    let failed: Vec<&ShardTarget> = results
        .iter()
        .filter(|(_, r)| r.is_err())
        .map(|(t, _)| t)
        .collect();
    let mut unwritten = Vec::new();
    let mut spared = 0;
    let mut current = placement.clone();
    for t in failed {
        let failed_names: Vec<&str> = results
            .iter()
            .filter(|(_, r)| r.is_err())
            .map(|(t, _)| t.provider.as_str())
            .collect();
        let candidates = usable_infos(inner, &failed_names);
        let spare = policy.spare(&candidates, segment.as_bytes(), &current, t.shard);
        let rebuilt = match spare {
            Some(provider) => {
                let target = ShardTarget {
                    shard: t.shard,
                    provider,
                    blob: t.blob.clone(),
                };
                match rebuild_shard(
                    inner,
                    &keys,
                    identity,
                    what,
                    &segment_rec,
                    target.clone(),
                    Patience::for_request(inner),
                )
                .await
                {
                    Ok(()) => Some(target),
                    Err(e) => {
                        tracing::warn!(
                            "{what}: shard {} could not be rebuilt on spare {}: {e}",
                            t.shard,
                            target.provider
                        );
                        inner
                            .collect(gc_blobs(std::slice::from_ref(&target)))
                            .await?;
                        None
                    }
                }
            }
            None => None,
        };
        match rebuilt {
            Some(target) => {
                spared += 1;
                if let Some(slot) = current.providers.get_mut(t.shard) {
                    slot.clone_from(&target.provider);
                }
                segment_rec.placement.push(ShardPlacement {
                    shard: ShardIdx(t.shard as u8),
                    provider: target.provider,
                    blob: target.blob.as_str().to_string(),
                });
            }
            None => unwritten.push(RepairNote {
                shard: t.shard,
                provider: t.provider.clone(),
                blob: t.blob.as_str().to_string(),
                reason: crate::read::RepairReason::Unwritten,
            }),
        }
    }
    // A failed provider may hold a complete blob of its shard (a put that failed only on its
    // way back, a straggler that finished late): collect those of shards that went to a spare.
    // A shard queued for repair keeps its blob name there, so its blob is left for the repair
    // job to find (and the orphan scan, if the version goes first).
    let failed_blobs: Vec<ShardTarget> = results
        .iter()
        .filter(|(t, r)| r.is_err() && !unwritten.iter().any(|u| u.shard == t.shard))
        .map(|(t, _)| t.clone())
        .collect();
    inner.collect(gc_blobs(&failed_blobs)).await?;
    segment_rec.placement.sort_by_key(|p| p.shard.0);
    Ok(WrittenSegment {
        segment: segment_rec,
        unwritten,
        spared,
        _guard: guard,
    })
}

fn gc_blobs(targets: &[ShardTarget]) -> Vec<GcBlob> {
    targets
        .iter()
        .filter_map(|t| {
            Some(GcBlob {
                provider: ProviderName::new(t.provider.clone()).ok()?,
                blob: t.blob.as_str().to_string(),
            })
        })
        .collect()
}

pub(crate) fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    bytes.iter().fold(String::new(), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

/// Rebuilds one shard of a just-written segment on `target`: reads the segment back through
/// the read path (any `k` shards, verified) and re-encodes it. Encryption is deterministic per
/// (key, segment, stripe, shard), so the rebuilt shard is byte-identical to the lost one.
pub(crate) async fn rebuild_shard(
    inner: &Arc<Inner>,
    keys: &SegmentKeys,
    identity: &ShardIdentity,
    what: &str,
    segment: &ManifestSegment,
    target: ShardTarget,
    patience: Patience,
) -> Result<()> {
    let (tx, mut rx) = mpsc::channel::<Result<Bytes>>(inner.opts.pipeline_depth);
    let reader = {
        let inner = inner.clone();
        let what = what.to_string();
        let version = identity.version;
        let segment = segment.clone();
        tokio::spawn(async move {
            let mut notes = Vec::new();
            let r = read_segment(
                &inner,
                &what,
                version,
                &segment,
                0..segment.len,
                &tx,
                &mut notes,
            )
            .await;
            if let Err(e) = r {
                let _ = tx.send(Err(e)).await;
            }
        })
    };
    let source = futures::stream::poll_fn(move |cx| rx.poll_recv(cx));
    let (_, results) = encode_and_write(
        inner,
        keys,
        identity,
        vec![target],
        &[],
        1,
        patience,
        source,
        Some(segment.len),
    )
    .await?;
    reader.abort();
    match results.into_iter().next() {
        Some((_, Ok(()))) => Ok(()),
        Some((t, Err(e))) => Err(EngineError::Unavailable {
            what: what.to_string(),
            needed: 1,
            usable: 0,
            detail: format!("{}: {e}", t.provider),
        }),
        None => Err(EngineError::Internal("rebuild wrote nothing".into())),
    }
}

/// The error of a shard whose writer was left behind.
fn straggled(t: &ShardTarget, waited: Duration, mid_stream: bool) -> ProviderError {
    let what = if mid_stream {
        "took nothing"
    } else {
        "had not finished"
    };
    ProviderError::new(
        ErrorKind::Timeout,
        &t.provider,
        "put",
        Some(t.blob.as_str()),
        format!(
            "{what} for {:.1} s while the other shards went on; left behind",
            waited.as_secs_f64()
        ),
    )
}

/// Streams `source` through the encoder to the writers of `targets` (those in `skip` get no
/// writer: their providers are down). Returns the encode summary and each target's outcome,
/// or the source's error (the writers are then abandoned and their partial blobs discarded by
/// the providers). Every wait on a writer is bounded by `patience`; see the module docs.
#[allow(clippy::too_many_arguments)]
async fn encode_and_write(
    inner: &Arc<Inner>,
    keys: &SegmentKeys,
    identity: &ShardIdentity,
    targets: Vec<ShardTarget>,
    skip: &[usize],
    quorum: usize,
    patience: Patience,
    mut source: impl Stream<Item = Result<Bytes>> + Unpin,
    expected_len: Option<u64>,
) -> Result<(Encoded, Vec<(ShardTarget, Result<(), ProviderError>)>)> {
    let depth = inner.opts.pipeline_depth;
    let n = keys.spec.params.n();
    let enc = SegmentEncoder::new(keys.spec, &keys.data_key)?;
    let mut txs: Vec<Option<mpsc::Sender<Msg>>> = (0..n).map(|_| None).collect();
    let mut writers = JoinSet::new();
    let mut handles: Vec<AbortHandle> = Vec::new();
    let mut results = Vec::with_capacity(targets.len());
    let mut header_len = 0;
    for t in &targets {
        let header = ShardHeader::seal(&enc, ShardIdx(t.shard as u8), &keys.wrapped, identity)?;
        header_len = header.len();
        if skip.contains(&t.shard) {
            results.push((
                t.clone(),
                Err(ProviderError::new(
                    ErrorKind::Unavailable,
                    &t.provider,
                    "put",
                    Some(t.blob.as_str()),
                    "not tried: the provider failed moments ago",
                )),
            ));
            continue;
        }
        let (tx, rx) = mpsc::channel::<Msg>(depth);
        // The channel is empty and holds `depth ≥ 1` messages.
        let _ = tx.try_send(Msg::Data(Bytes::from(header)));
        if let Some(slot) = txs.get_mut(t.shard) {
            *slot = Some(tx);
        }
        let provider = inner.provider(&t.provider).ok_or_else(|| {
            EngineError::Invalid(format!("placement chose unknown provider {}", t.provider))
        })?;
        let t = t.clone();
        let inner = inner.clone();
        handles.push(writers.spawn(async move {
            let ended = Arc::new(OnceLock::new());
            let stream = shard_stream(
                rx,
                t.provider.clone(),
                t.blob.as_str().to_string(),
                ended.clone(),
            );
            let r = provider
                .put(&t.blob, PutBody::Stream(stream.boxed()), PutMode::Overwrite)
                .await
                .map(|_| ());
            match &r {
                Ok(()) => {
                    if let Some(at) = ended.get() {
                        inner.health.record_put(&t.provider, at.elapsed());
                    }
                }
                // A writer stopped because the write failed elsewhere says nothing about its
                // provider's health.
                Err(e) if e.kind() != ErrorKind::Other && !abandoned(e) => {
                    inner.health.record_error(&t.provider);
                }
                Err(_) => {}
            }
            (t, r)
        }));
    }
    let (in_tx, in_rx) = mpsc::channel::<Msg>(depth);
    // MD5 (~0.6 GB/s per core) would halve a large write's speed on the encoder thread, so a
    // body that is not known to be small is hashed on a thread of its own.
    let parallel_hash = expected_len.is_none_or(|n| n > HASH_INLINE_MAX);
    let (hash_tx, hasher) = if parallel_hash {
        let (tx, mut rx) = mpsc::channel::<Bytes>(depth);
        let task = tokio::task::spawn_blocking(move || {
            let mut md5 = Md5::new();
            while let Some(piece) = rx.blocking_recv() {
                md5.update(&piece);
            }
            <[u8; 16]>::from(md5.finalize())
        });
        (Some(tx), Some(task))
    } else {
        (None, None)
    };
    let handle = tokio::runtime::Handle::current();
    let encoder = tokio::task::spawn_blocking(move || {
        let mut run = EncodeRun {
            txs,
            quorum,
            patience,
            handle,
            stalled: Vec::new(),
        };
        let r = encode_loop(enc, in_rx, &mut run, !parallel_hash);
        (r, run.stalled)
    });

    // Feed the body to the encoder, checking its length.
    let mut total = 0u64;
    let fed: Result<()> = async {
        while let Some(piece) = source.next().await {
            let piece = piece?;
            total += piece.len() as u64;
            if let Some(e) = expected_len
                && total > e
            {
                return Err(EngineError::Body(format!(
                    "body longer than the announced {e} bytes"
                )));
            }
            if piece.is_empty() {
                continue;
            }
            if let Some(h) = &hash_tx {
                let _ = h.send(piece.clone()).await;
            }
            if in_tx.send(Msg::Data(piece)).await.is_err() {
                return Ok(()); // the encoder stopped: its result says why
            }
        }
        if let Some(e) = expected_len
            && total != e
        {
            return Err(EngineError::Body(format!(
                "body ended after {total} of the announced {e} bytes"
            )));
        }
        let _ = in_tx.send(Msg::End).await;
        Ok(())
    }
    .await;
    drop(in_tx);
    drop(hash_tx);
    let md5 = match hasher {
        Some(h) => Some(
            h.await
                .map_err(|e| EngineError::Internal(format!("hash task: {e}")))?,
        ),
        None => None,
    };
    let (encoded, stalled) = encoder
        .await
        .map_err(|e| EngineError::Internal(format!("encoder task: {e}")))?;
    fed?;
    let encoded = match encoded {
        Ok(e) => Some(Encoded {
            header_len,
            md5: md5.unwrap_or(e.md5),
            ..e
        }),
        Err(EncodeStop::BelowQuorum) => None,
        Err(EncodeStop::Aborted) => {
            return Err(EngineError::Internal("encoder input ended early".into()));
        }
        Err(EncodeStop::Codec(e)) => return Err(e.into()),
    };

    // Collect the writers: with the quorum durable, each further one gets `patience.tail`
    // after the previous one finished; without it, `patience.hang`. Stalled writers were
    // dropped mid-stream and are not waited for.
    let stalled_shards: HashSet<usize> = stalled.iter().map(|(s, _)| *s).collect();
    let mut pending: HashSet<usize> = targets
        .iter()
        .map(|t| t.shard)
        .filter(|s| !skip.contains(s) && !stalled_shards.contains(s))
        .collect();
    let mut ok = 0;
    let mut last = tokio::time::Instant::now();
    while !pending.is_empty() {
        let limit = if ok >= quorum {
            patience.tail
        } else {
            patience.hang
        };
        match tokio::time::timeout_at(last + limit, writers.join_next()).await {
            Ok(Some(r)) => {
                let (t, r) = r.map_err(|e| EngineError::Internal(format!("shard writer: {e}")))?;
                pending.remove(&t.shard);
                if r.is_ok() {
                    ok += 1;
                }
                results.push((t, r));
                last = tokio::time::Instant::now();
            }
            Ok(None) | Err(_) => break,
        }
    }
    // Writers that finished meanwhile, without waiting.
    while let Some(r) = writers.try_join_next() {
        let (t, r) = r.map_err(|e| EngineError::Internal(format!("shard writer: {e}")))?;
        results.push((t, r));
    }
    let waited = last.elapsed();
    for t in &targets {
        if results.iter().any(|(d, _)| d.shard == t.shard) {
            continue;
        }
        let stall = stalled.iter().find(|(s, _)| *s == t.shard).map(|(_, w)| *w);
        inner.health.record_error(&t.provider);
        tracing::warn!(
            "{}: shard {} on {} left behind ({})",
            identity.key,
            t.shard,
            t.provider,
            if stall.is_some() {
                "it took nothing"
            } else {
                "it had not finished"
            }
        );
        results.push((
            t.clone(),
            Err(straggled(t, stall.unwrap_or(waited), stall.is_some())),
        ));
    }
    if !writers.is_empty() {
        // The stragglers go on in the background (a put that finishes leaves a complete
        // shard for repair to find), for a bounded time.
        writers.detach_all();
        tokio::spawn(async move {
            tokio::time::sleep(STRAGGLER_GRACE).await;
            for h in handles {
                h.abort();
            }
        });
    }
    results.sort_by_key(|(t, _)| t.shard);
    let encoded = encoded.unwrap_or(Encoded {
        md5: [0; 16],
        len: total,
        header_len,
    });
    Ok((encoded, results))
}

/// A shard writer's body: the messages of its channel, and an error if the channel closes
/// before [`Msg::End`] (so the provider discards the partial blob).
fn shard_stream(
    rx: mpsc::Receiver<Msg>,
    provider: String,
    blob: String,
    ended: Arc<OnceLock<Instant>>,
) -> impl Stream<Item = archipel_provider::Result<Bytes>> + Send {
    futures::stream::unfold(Some(rx), move |state| {
        let (provider, blob, ended) = (provider.clone(), blob.clone(), ended.clone());
        async move {
            let mut rx = state?;
            match rx.recv().await {
                Some(Msg::Data(b)) => Some((Ok(b), Some(rx))),
                Some(Msg::End) => {
                    let _ = ended.set(Instant::now());
                    None
                }
                None => Some((
                    Err(ProviderError::new(
                        ErrorKind::Other,
                        &provider,
                        "put",
                        Some(&blob),
                        ABANDONED,
                    )),
                    None,
                )),
            }
        }
    })
}

enum EncodeStop {
    /// The input closed without [`Msg::End`].
    Aborted,
    /// Fewer writers than the quorum are left.
    BelowQuorum,
    Codec(CodecError),
}

impl From<CodecError> for EncodeStop {
    fn from(e: CodecError) -> Self {
        EncodeStop::Codec(e)
    }
}

/// The encoder thread's hold on the writers.
struct EncodeRun {
    txs: Vec<Option<mpsc::Sender<Msg>>>,
    quorum: usize,
    patience: Patience,
    /// To wait on a full channel with a deadline from this blocking thread.
    handle: tokio::runtime::Handle,
    /// Writers dropped because they took nothing for `patience.stall`: (shard, waited).
    stalled: Vec<(usize, Duration)>,
}

impl EncodeRun {
    /// Hands `msg` to shard `i`'s writer, waiting while its channel is full: at most
    /// `patience.stall` when the others make the quorum without it (then it is dropped),
    /// `patience.hang` otherwise.
    fn send(&mut self, i: usize, msg: Msg) {
        let live = self.txs.iter().flatten().count();
        let Some(Some(tx)) = self.txs.get(i) else {
            return;
        };
        let keep = match tx.try_send(msg) {
            Ok(()) => true,
            Err(TrySendError::Closed(_)) => false,
            Err(TrySendError::Full(msg)) => {
                let limit = if live > self.quorum {
                    self.patience.stall
                } else {
                    self.patience.hang
                };
                let started = Instant::now();
                match self
                    .handle
                    .block_on(tokio::time::timeout(limit, tx.send(msg)))
                {
                    Ok(Ok(())) => true,
                    Ok(Err(_)) => false,
                    Err(_) => {
                        self.stalled.push((i, started.elapsed()));
                        false
                    }
                }
            }
        };
        if !keep && let Some(slot) = self.txs.get_mut(i) {
            *slot = None; // its provider failed or hangs
        }
    }

    fn live(&self) -> usize {
        self.txs.iter().flatten().count()
    }
}

/// The encoder thread: MD5 and erasure-code + seal every stripe, hand each chunk to its
/// writer. Runs on the blocking pool (it is CPU work); channels give backpressure.
fn encode_loop(
    mut enc: SegmentEncoder,
    mut input: mpsc::Receiver<Msg>,
    run: &mut EncodeRun,
    hash: bool,
) -> Result<Encoded, EncodeStop> {
    let mut md5 = Md5::new();
    let mut stripe = EncodedStripe::new();
    let send = |stripe: &mut EncodedStripe, run: &mut EncodeRun| -> Result<(), EncodeStop> {
        for (i, chunk) in stripe.take_chunks().into_iter().enumerate() {
            run.send(i, Msg::Data(Bytes::from(chunk)));
        }
        if run.live() < run.quorum {
            return Err(EncodeStop::BelowQuorum);
        }
        Ok(())
    };
    loop {
        match input.blocking_recv() {
            Some(Msg::Data(piece)) => {
                if hash {
                    md5.update(&piece);
                }
                let mut rest: &[u8] = &piece;
                while !rest.is_empty() {
                    if enc.push(&mut rest, &mut stripe)? {
                        send(&mut stripe, run)?;
                    }
                }
            }
            Some(Msg::End) => break,
            None => return Err(EncodeStop::Aborted),
        }
    }
    let summary = enc.finish(&mut stripe)?;
    send(&mut stripe, run)?;
    let trailer = ShardTrailer {
        len: summary.len,
        stripes: summary.stripes,
    };
    for i in 0..run.txs.len() {
        if run.txs.get(i).is_some_and(Option::is_some) {
            let sealed = ShardTrailer::seal(&enc, ShardIdx(i as u8), trailer)?;
            run.send(i, Msg::Data(Bytes::copy_from_slice(&sealed)));
            run.send(i, Msg::End);
        }
    }
    if run.live() < run.quorum {
        return Err(EncodeStop::BelowQuorum);
    }
    Ok(Encoded {
        md5: md5.finalize().into(),
        len: summary.len,
        header_len: 0,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_writer_stopped_elsewhere_counts_as_reachable_even_when_its_provider_wraps_the_error() {
        let own = ProviderError::new(ErrorKind::Other, "p1", "put", Some("b"), ABANDONED);
        assert!(abandoned(&own));
        // As a remote provider reports it: its HTTP client saw the body stream fail.
        let wrapped = ProviderError::new(
            ErrorKind::Unavailable,
            "p2",
            "put",
            Some("b"),
            format!("Unexpected (temporary) at write, context: {{ body: {own} }}"),
        );
        assert!(abandoned(&wrapped));
        let real = ProviderError::new(ErrorKind::Unavailable, "p3", "put", Some("b"), "refused");
        assert!(!abandoned(&real));
    }

    #[test]
    fn blob_names_round_trip_and_reveal_nothing_but_the_segment() {
        let seg = SegmentId([0xab; 16]);
        let name = blob_name(&seg, 5).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(name.as_str(), format!("v1/ab/{}.5", "ab".repeat(16)));
        assert_eq!(parse_blob_name(name.as_str()), Some((seg, 5)));
        for bad in [
            "v1/ab/xyz.1",
            "v2/ab/abababababababababababababababab.1",
            "v1/ab/ab.1",
            "other",
        ] {
            assert_eq!(parse_blob_name(bad), None, "{bad}");
        }
    }
}
