//! The read path: a byte range of one segment from any `k` of its shards.
//!
//! Each shard being read has a reader task: one ranged GET covering exactly the stripes the
//! range needs, cut into chunks, sent through a bounded channel. The decoder waits, stripe by
//! stripe, for `k` chunks; readers start on the providers that answered best lately (data
//! shards first, so a healthy read needs no reconstruction). More readers are started —
//! from the current stripe on — when
//!
//! * a chunk is late: a reader's first byte did not arrive within the hedge delay (the
//!   provider's recent p95, or a configured delay), the classic hedged request; or, once it is
//!   streaming, a peer delivered the stripe a hedge delay ago and it still has not (a
//!   straggler — when every provider is busy, nobody is late and no load is added);
//! * a reader fails (provider unreachable, blob missing) or a chunk fails verification.
//!
//! Once a stripe is decoded, readers that have fallen behind the fastest `k` are stopped, so a
//! slow provider costs one hedge, not a permanent extra stream. When no provider is left to
//! ask and fewer than `k` chunks are usable, the read fails with
//! [`EngineError::Unavailable`]: no byte that did not verify is ever returned.

use std::future::poll_fn;
use std::ops::Range;
use std::sync::Arc;
use std::task::Poll;
use std::time::{Duration, Instant};

use archipel_codec::{
    CodecError, ManifestSegment, SegmentDecoder, SegmentLayout, SegmentSpec, ShardPlacement,
    VersionId,
};
use archipel_provider::{BlobName, ErrorKind, Provider, ProviderError};
use bytes::{Bytes, BytesMut};
use futures::StreamExt;
use tokio::sync::mpsc;
use tokio::task::{AbortHandle, JoinSet};

use crate::engine::Inner;
use crate::error::{EngineError, Result};
use crate::health::Standing;

/// Why a shard needs repair.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RepairReason {
    /// Not there (or its provider does not answer for it).
    Missing,
    /// There, but a header, chunk or trailer failed its check.
    Corrupt,
    /// Never written: its provider failed while the object was written.
    Unwritten,
}

impl RepairReason {
    /// As kept in the repair queue: `missing`, `corrupt` or `unwritten`.
    pub fn as_str(self) -> &'static str {
        match self {
            RepairReason::Missing => "missing",
            RepairReason::Corrupt => "corrupt",
            RepairReason::Unwritten => "unwritten",
        }
    }
}

impl std::fmt::Display for RepairReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A shard found missing, corrupt or unwritten, to queue for repair.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct RepairNote {
    pub(crate) shard: usize,
    pub(crate) provider: String,
    pub(crate) blob: String,
    pub(crate) reason: RepairReason,
}

type ChunkMsg = (u64, std::result::Result<Bytes, ProviderError>);

struct Reader<'a> {
    /// Where it reads from (returned to the candidates if the reader is stopped for lagging).
    source: &'a ShardPlacement,
    shard: usize,
    provider: String,
    blob: String,
    rx: mpsc::Receiver<ChunkMsg>,
    abort: AbortHandle,
    alive: bool,
    /// The last stripe this reader delivered.
    delivered: Option<u64>,
    started: Instant,
    /// Already hedged for the stripe being waited for.
    hedged: bool,
}

/// Reads `range` (segment-relative) of `seg` and sends the plaintext to `out` in pieces of at
/// most one stripe. Returns `Ok(false)` if `out` was closed (the client went away). Shards found
/// missing or corrupt are added to `notes`.
pub(crate) async fn read_segment<'s>(
    inner: &Arc<Inner>,
    what: &str,
    version: VersionId,
    seg: &'s ManifestSegment,
    range: Range<u64>,
    out: &mpsc::Sender<Result<Bytes>>,
    notes: &mut Vec<RepairNote>,
) -> Result<bool> {
    if range.is_empty() {
        return Ok(true);
    }
    let params = seg.params;
    let (k, n) = (params.k(), params.n());
    let key = seg.wrapped_key.unwrap(&inner.master, &seg.segment)?;
    let spec = SegmentSpec {
        version,
        segment: seg.segment,
        params,
    };
    let mut dec = SegmentDecoder::new(spec, &key, seg.len, u64::from(seg.header_len))?;
    let layout = *dec.layout();
    let stripes = layout.stripes_for(range.clone());

    // Candidates, best first: healthy before slow before down, data shards before parity.
    let mut candidates: Vec<&ShardPlacement> =
        seg.placement.iter().filter(|p| p.shard.get() < n).collect();
    let names: Vec<&str> = candidates.iter().map(|p| p.provider.as_str()).collect();
    let standing = inner.health.standings(&names);
    let mut order: Vec<(Standing, usize, &ShardPlacement)> = candidates
        .drain(..)
        .zip(standing)
        .map(|(p, s)| (s, p.shard.get(), p))
        .collect();
    order.sort_by_key(|(s, shard, _)| (*s, *shard));
    let mut pending: std::collections::VecDeque<&'s ShardPlacement> =
        order.into_iter().map(|(_, _, p)| p).collect();

    let mut tasks = JoinSet::new();
    let mut readers: Vec<Reader<'s>> = Vec::new();
    let mut failures: Vec<String> = Vec::new();
    let depth = inner.opts.pipeline_depth;

    let start_reader = |from: u64,
                        pending: &mut std::collections::VecDeque<&'s ShardPlacement>,
                        readers: &mut Vec<Reader<'s>>,
                        tasks: &mut JoinSet<()>,
                        failures: &mut Vec<String>|
     -> bool {
        while let Some(p) = pending.pop_front() {
            let Some(provider) = inner.provider(&p.provider) else {
                failures.push(format!("{}: not configured", p.provider));
                continue;
            };
            let Ok(blob) = BlobName::new(p.blob.clone()) else {
                failures.push(format!("{}: bad blob name {:?}", p.provider, p.blob));
                continue;
            };
            let (tx, rx) = mpsc::channel(depth);
            let abort = tasks.spawn(run_reader(
                inner.clone(),
                provider,
                blob,
                layout,
                from..stripes.end,
                tx,
            ));
            readers.push(Reader {
                source: p,
                shard: p.shard.get(),
                provider: p.provider.clone(),
                blob: p.blob.clone(),
                rx,
                abort,
                alive: true,
                delivered: None,
                started: Instant::now(),
                hedged: false,
            });
            return true;
        }
        false
    };

    for _ in 0..k {
        start_reader(
            stripes.start,
            &mut pending,
            &mut readers,
            &mut tasks,
            &mut failures,
        );
    }

    let mut slots: Vec<Option<Bytes>> = vec![None; n];
    for s in stripes.clone() {
        slots.iter_mut().for_each(|x| *x = None);
        let wait_start = Instant::now();
        // When the first chunk of this stripe arrived: a reader past its first byte is late
        // only once a peer has delivered the stripe and it has not (a straggler), never because
        // every provider is busy — hedging then would only add load.
        let mut first_arrival: Option<Instant> = None;
        readers.iter_mut().for_each(|r| r.hedged = false);
        let mut plain = Vec::with_capacity(layout.stripe_plain_len(s));
        loop {
            let have = slots.iter().flatten().count();
            if have >= k {
                let chunks: Vec<Option<&[u8]>> = slots.iter().map(|c| c.as_deref()).collect();
                plain.clear();
                match dec.decode_stripe(s, &chunks, &mut plain) {
                    Ok(report) => {
                        for c in report.corrupt {
                            note_corrupt(&readers, c.get(), notes);
                        }
                        break;
                    }
                    Err(CodecError::NotEnoughChunks { corrupt, .. }) => {
                        for c in corrupt {
                            note_corrupt(&readers, c.get(), notes);
                            if let Some(slot) = slots.get_mut(c.get()) {
                                *slot = None;
                            }
                        }
                    }
                    Err(e) => return Err(e.into()),
                }
            }
            // Make sure enough readers are still working on this stripe.
            let have = slots.iter().flatten().count();
            let working = readers
                .iter()
                .filter(|r| r.alive && r.delivered.is_none_or(|d| d < s))
                .count();
            for _ in (have + working)..k {
                if !start_reader(s, &mut pending, &mut readers, &mut tasks, &mut failures) {
                    break;
                }
            }
            let working = readers
                .iter()
                .filter(|r| r.alive && r.delivered.is_none_or(|d| d < s))
                .count();
            if have + working < k {
                return Err(EngineError::Unavailable {
                    what: what.to_string(),
                    needed: k,
                    usable: have + working,
                    detail: if failures.is_empty() {
                        "not enough shards".into()
                    } else {
                        failures.join("; ")
                    },
                });
            }
            // Each reader still owing this stripe gets its own patience (its recent p95); the
            // first to run out of it is hedged, once.
            let next_late = readers
                .iter()
                .filter(|r| r.alive && !r.hedged && r.delivered.is_none_or(|d| d < s))
                .filter_map(|r| late_at(r, wait_start, first_arrival, inner))
                .min();
            let deadline = next_late.unwrap_or_else(|| Instant::now() + Duration::from_secs(3600));
            let next = poll_fn(|cx| {
                for (i, r) in readers.iter_mut().enumerate() {
                    if !r.alive || r.delivered.is_some_and(|d| d >= s) {
                        continue;
                    }
                    if let Poll::Ready(m) = r.rx.poll_recv(cx) {
                        return Poll::Ready((i, m));
                    }
                }
                Poll::Pending
            });
            tokio::select! {
                (i, msg) = next => {
                    let r = &mut readers[i];
                    match msg {
                        Some((st, Ok(chunk))) => {
                            if st == s {
                                r.delivered = Some(s);
                                slots[r.shard] = Some(chunk);
                                first_arrival.get_or_insert_with(Instant::now);
                            }
                            // st < s: a late chunk of a stripe already decoded, dropped.
                        }
                        Some((_, Err(e))) => {
                            r.alive = false;
                            if matches!(e.kind(), ErrorKind::NotFound | ErrorKind::InvalidRange) {
                                notes.push(RepairNote {
                                    shard: r.shard,
                                    provider: r.provider.clone(),
                                    blob: r.blob.clone(),
                                    reason: RepairReason::Missing,
                                });
                            }
                            failures.push(e.to_string());
                        }
                        None => {
                            r.alive = false;
                            failures.push(format!("{}: reader stopped", r.provider));
                        }
                    }
                }
                () = tokio::time::sleep_until(deadline.into()) => {
                    // Hedge: one more provider, from this stripe on, per late reader.
                    let now = Instant::now();
                    let mut late = 0;
                    for r in readers.iter_mut() {
                        if r.alive
                            && !r.hedged
                            && r.delivered.is_none_or(|d| d < s)
                            && late_at(r, wait_start, first_arrival, inner).is_some_and(|t| t <= now)
                        {
                            r.hedged = true;
                            late += 1;
                        }
                    }
                    for _ in 0..late {
                        start_reader(s, &mut pending, &mut readers, &mut tasks, &mut failures);
                    }
                }
            }
        }
        // Stop readers that fell behind the fastest k (they cost bandwidth, not correctness).
        let ahead = readers
            .iter()
            .filter(|r| r.alive && r.delivered == Some(s))
            .count();
        if ahead >= k {
            for r in readers.iter_mut() {
                if r.alive && r.delivered.is_none_or(|d| d < s) {
                    r.alive = false;
                    r.abort.abort();
                    // Still a valid shard: ask it again later if others fail.
                    pending.push_back(r.source);
                    if r.delivered.is_none() {
                        inner
                            .health
                            .record_overtaken(&r.provider, r.started.elapsed());
                    }
                }
            }
        }
        let start = layout.stripe_start(s);
        let lo = range.start.saturating_sub(start) as usize;
        let hi = ((range.end - start) as usize).min(plain.len());
        if lo < hi {
            let piece = Bytes::from(plain).slice(lo..hi);
            if out.send(Ok(piece)).await.is_err() {
                return Ok(false);
            }
        }
    }
    Ok(true)
}

fn note_corrupt(readers: &[Reader<'_>], shard: usize, notes: &mut Vec<RepairNote>) {
    if let Some(r) = readers.iter().find(|r| r.shard == shard) {
        let note = RepairNote {
            shard,
            provider: r.provider.clone(),
            blob: r.blob.clone(),
            reason: RepairReason::Corrupt,
        };
        if !notes.contains(&note) {
            notes.push(note);
        }
    }
}

/// When reader `r`, owing the stripe being waited for since `wait_start`, counts as late:
/// waiting for its first byte, its patience after it started (or the wait did); streaming, its
/// patience after the stripe's first chunk arrived from a peer (`None` while none has).
fn late_at(
    r: &Reader<'_>,
    wait_start: Instant,
    first_arrival: Option<Instant>,
    inner: &Inner,
) -> Option<Instant> {
    let from = match r.delivered {
        None => wait_start.max(r.started),
        Some(_) => first_arrival?,
    };
    Some(from + patience(inner, &r.provider))
}

/// How long to wait for a provider's chunk before hedging: the configured delay, or its
/// recent p95 latency (at least the floor; twice the median of everybody's samples while it has
/// too few of its own; a default when nobody has any).
fn patience(inner: &Inner, provider: &str) -> Duration {
    let o = &inner.opts;
    if let Some(d) = o.hedge_delay {
        return d;
    }
    // A provider with no history of its own (just started, or never answered in time) is
    // expected to do what its peers do.
    inner
        .health
        .quantile(provider, 0.95)
        .or_else(|| inner.health.overall_quantile(0.5).map(|d| d * 2))
        .unwrap_or(o.hedge_default)
        .max(o.hedge_floor)
}

/// One shard's reader: a ranged GET of the stripes `stripes`, cut into chunks.
async fn run_reader(
    inner: Arc<Inner>,
    provider: Arc<dyn Provider>,
    blob: BlobName,
    layout: SegmentLayout,
    stripes: Range<u64>,
    tx: mpsc::Sender<ChunkMsg>,
) {
    let name = provider.name().to_string();
    let started = Instant::now();
    let range = layout.shard_range(stripes.clone());
    let fail = |e: ProviderError| {
        if !matches!(e.kind(), ErrorKind::NotFound | ErrorKind::InvalidRange) {
            inner.health.record_error(&name);
        }
        e
    };
    let mut stream = match provider.get(&blob, Some(range)).await {
        Ok(s) => s,
        Err(e) => {
            let _ = tx.send((stripes.start, Err(fail(e)))).await;
            return;
        }
    };
    let mut buf = BytesMut::new();
    let mut first = true;
    for s in stripes {
        let need = layout.chunk_stored_len(s);
        while buf.len() < need {
            match stream.next().await {
                Some(Ok(b)) => {
                    if first {
                        inner.health.record_ok(&name, started.elapsed());
                        first = false;
                    }
                    buf.extend_from_slice(&b);
                }
                Some(Err(e)) => {
                    let _ = tx.send((s, Err(fail(e)))).await;
                    return;
                }
                None => {
                    let e = ProviderError::new(
                        ErrorKind::InvalidRange,
                        &name,
                        "get",
                        Some(blob.as_str()),
                        "shard ended early",
                    );
                    let _ = tx.send((s, Err(e))).await;
                    return;
                }
            }
        }
        let chunk = buf.split_to(need).freeze();
        if tx.send((s, Ok(chunk))).await.is_err() {
            return;
        }
    }
}
