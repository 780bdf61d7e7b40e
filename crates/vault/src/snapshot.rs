//! Journal snapshots and compaction (decision 0012): the `journal-snapshot` service takes a
//! snapshot of the metadata store once the journal's tail — the segments a recovery would
//! replay after the last snapshot — is long enough to be worth it, then removes from the
//! providers what the snapshot supersedes (the journal before its position, older
//! snapshots). Recovery then reads one snapshot and a short tail instead of every segment
//! ever written.
//!
//! A snapshot is due when the tail holds at least [`SNAPSHOT_AFTER_SEGMENTS`] segments and
//! at least one per [`RECORDS_PER_TAIL_SEGMENT`] records of the last snapshot (so a large
//! store is not rewritten after every few thousand mutations), or when there is any tail and
//! the last snapshot is older than [`SNAPSHOT_MAX_AGE`] (or there is none).

use std::time::Duration;

use archipel_meta::{CheckpointName, UnixMillis};
use serde::{Deserialize, Serialize};

use crate::error::{Result, VaultError};
use crate::open::Vault;

/// The checkpoint with the last snapshot taken ([`SnapshotRecord`]).
pub const SNAPSHOT_CHECKPOINT: &str = "journal:snapshot";

/// A tail this long makes a snapshot due (with [`RECORDS_PER_TAIL_SEGMENT`]).
pub const SNAPSHOT_AFTER_SEGMENTS: u64 = 4096;

/// A snapshot of `r` records is not retaken before the tail holds `r / 64` segments.
pub const RECORDS_PER_TAIL_SEGMENT: u64 = 64;

/// Any tail makes a snapshot due once the last one is this old.
pub const SNAPSHOT_MAX_AGE: Duration = Duration::from_secs(24 * 3600);

/// The last snapshot taken, and what its compaction removed.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SnapshotRecord {
    /// The journal position it was taken at (run, segment number).
    pub run: u64,
    /// See `run`.
    pub number: u64,
    /// Its parts.
    pub parts: u32,
    /// The records in them.
    pub records: u64,
    /// When it was taken, Unix milliseconds.
    pub taken_ms: i64,
    /// How long taking it took, milliseconds.
    pub took_ms: u64,
    /// The journal's tail before it, in segments.
    pub tail_before: u64,
    /// Journal segments removed by the compaction after it.
    pub segments_removed: u64,
    /// Parts of older snapshots removed.
    pub snapshot_parts_removed: u64,
    /// Shards under the metadata prefixes with names of no metadata blob of this vault
    /// (a journal written before names were derived, debris) removed.
    #[serde(default)]
    pub foreign_removed: u64,
    /// Shards deleted.
    pub shards_deleted: u64,
    /// Deletes that failed, with why (retried by the next compaction).
    pub failed: Vec<String>,
}

fn checkpoint() -> Result<CheckpointName> {
    Ok(CheckpointName::new(SNAPSHOT_CHECKPOINT)?)
}

impl Vault {
    /// The last snapshot this vault's gateways took, if any.
    pub async fn last_snapshot(&self) -> Result<Option<SnapshotRecord>> {
        match self.inner.meta.get_checkpoint(&checkpoint()?).await? {
            Some(b) => Ok(serde_json::from_slice(&b).ok()),
            None => Ok(None),
        }
    }

    /// Takes a snapshot of the metadata and compacts the journal behind it — when one is
    /// due (see the module docs) or `force` says so; what it did, or `None` when nothing was
    /// due.
    pub async fn snapshot_journal(&self, force: bool) -> Result<Option<SnapshotRecord>> {
        let engine = &self.inner.engine;
        let last = self.last_snapshot().await?;
        let tail = engine
            .journal_tail(last.as_ref().map(|l| (l.run, l.number)))
            .await;
        let due = match &last {
            _ if force => true,
            None => tail > 0,
            Some(l) => {
                let age = UnixMillis::now().0.saturating_sub(l.taken_ms);
                (tail >= SNAPSHOT_AFTER_SEGMENTS && tail >= l.records / RECORDS_PER_TAIL_SEGMENT)
                    || (tail > 0 && age >= SNAPSHOT_MAX_AGE.as_millis() as i64)
            }
        };
        if !due {
            return Ok(None);
        }
        let started = std::time::Instant::now();
        let seal = self.inner.journal.snapshot().await?;
        let took_ms = started.elapsed().as_millis() as u64;
        let compact = engine.compact_journal((seal.run, seal.number)).await;
        if !compact.failed.is_empty() {
            tracing::warn!(
                "journal compaction: {} deletes failed (retried next time): {}",
                compact.failed.len(),
                compact.failed.join("; ")
            );
        }
        let record = SnapshotRecord {
            run: seal.run,
            number: seal.number,
            parts: seal.parts,
            records: seal.records,
            taken_ms: seal.taken_ms,
            took_ms,
            tail_before: tail,
            segments_removed: compact.segments_removed,
            snapshot_parts_removed: compact.snapshot_parts_removed,
            foreign_removed: compact.foreign_removed,
            shards_deleted: compact.shards_deleted,
            failed: compact.failed,
        };
        let bytes = serde_json::to_vec(&record)
            .map_err(|e| VaultError::Internal(format!("snapshot record: {e}")))?;
        self.inner
            .meta
            .put_checkpoint(&checkpoint()?, &bytes)
            .await?;
        Ok(Some(record))
    }
}

impl std::fmt::Display for SnapshotRecord {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "snapshot at {}/{}: {} records in {} parts, {} ms; {} journal segments and {} old snapshot parts removed ({} shards)",
            self.run,
            self.number,
            self.records,
            self.parts,
            self.took_ms,
            self.segments_removed,
            self.snapshot_parts_removed,
            self.shards_deleted
        )?;
        if !self.failed.is_empty() {
            write!(f, "; {} deletes failed", self.failed.len())?;
        }
        Ok(())
    }
}

/// How often the `journal-snapshot` service looks whether a snapshot is due.
pub(crate) const SNAPSHOT_CHECK: Duration = Duration::from_secs(600);
