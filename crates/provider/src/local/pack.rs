//! Small blobs packed into append-only files, made durable by group commit.
//!
//! A file per small blob costs an inode allocation and two fsyncs (the file and its
//! directory), which dominates a small object's write on most disks. A directory provider
//! therefore appends each blob of at most [`PACK_MAX`] bytes as one record to the active pack
//! file `ROOT/.packs/<id>.pack` (a new one is started past [`PACK_ROTATE`] bytes). One sync
//! thread per provider makes records durable: it takes every request queued since its last
//! round and calls `fdatasync` once per pack file they wrote to, so puts that arrive while a
//! sync runs share the next one (group commit). A put returns only after the sync covering
//! its record.
//!
//! Records are self-describing, so a scan of the pack files rebuilds the index (blob name →
//! record) at open; nothing else is stored. Layout, little endian:
//!
//! ```text
//! magic "APK1" | kind u8 (1 blob, 2 tombstone) | 0 u8 | name_len u16 | data_len u32 |
//! target u32 | mtime_ms u64 | crc32c u32 (of everything after the magic but itself) |
//! name | data
//! ```
//!
//! A tombstone deletes the blob's record if that record is in pack `target`; so a tombstone
//! stays meaningful wherever it is copied. A scan skips a record that is short or fails its
//! checksum and resumes at the next valid record, so damage costs only the records it hits;
//! behind the last valid record there can only be the tail of a put that was never
//! acknowledged (a sync covers everything written before it), and the active pack is cut back
//! there.
//!
//! A pack that is no longer active and whose records are at least half dead (replaced or
//! deleted) is compacted by a background task: the live records and the tombstones still
//! needed are copied, byte for byte, to the active pack, made durable, and the old pack is
//! removed. The task goes on while any pack is worth compacting (the most dead first),
//! whether or not anything is written meanwhile; a provider opened with a mostly dead last
//! pack starts a new one, so that pack can go too. Its I/O is bounded: it reads a pack in
//! steps of [`COMPACT_STEP`] bytes, copies what one step found in one write under one hold of
//! the lock (puts take it between steps), and, unless other packs wait to be compacted,
//! pauses for as long as the step took, so that it works at most half of the time while it
//! keeps up; a rate limit, if set, holds always. When puts outpace it anyway (a small-blob
//! write rate the disk cannot also compact behind), a put waits — at most a second — while
//! [`BACKLOG_PACKS`] packs wait to be compacted, so the packs stay within about twice the
//! live bytes plus a few packs whatever the write rate. The task holds the provider only
//! weakly: closing the provider stops it at the next step, which loses nothing (a pack is
//! removed only once its copies are durable, and a scan of both finds the same blobs).
//!
//! Each pack file knows how much of it is durable, so a sync that an earlier round already
//! covered costs no `fdatasync`: a delete waits for its tombstone's pack and its target's in
//! one round, and the target's is usually durable already.

use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::io;
use std::ops::Bound;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak, mpsc};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// Largest blob stored in a pack; larger blobs are files of their own.
pub(crate) const PACK_MAX: u64 = 128 * 1024;
/// Size past which a new pack file is started (the default of `LocalOptions::pack_size`).
pub(crate) const PACK_ROTATE: u64 = 64 * 1024 * 1024;
/// The smallest pack size an option may ask for.
const PACK_ROTATE_MIN: u64 = 64 * 1024;
/// Directory of the pack files, under the provider's root.
pub(crate) const PACK_DIR: &str = ".packs";

const MAGIC: &[u8; 4] = b"APK1";
const HEADER: usize = 28;
/// The longest record: header, the longest name, the largest packed blob.
const MAX_RECORD: usize = HEADER + u16::MAX as usize + PACK_MAX as usize;
/// How much of a pack the open-time scan holds at once.
const SCAN_WINDOW: usize = 4 * 1024 * 1024;
/// How much of a pack one compaction step reads (plus at most one record).
const COMPACT_STEP: usize = 512 * 1024;
/// Mostly dead packs (the one being compacted included) from which on puts wait for the
/// compaction to catch up.
const BACKLOG_PACKS: usize = 3;
/// The longest a put waits for the compaction to catch up.
const BACKLOG_PATIENCE: Duration = Duration::from_secs(1);
/// How long a pack whose compaction failed is left alone before the next try.
const COMPACT_RETRY: Duration = Duration::from_secs(10);
const KIND_BLOB: u8 = 1;
const KIND_TOMBSTONE: u8 = 2;

/// Where a blob's record is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Loc {
    pack: u32,
    /// Offset of the record (its header) in the pack.
    offset: u64,
    name_len: u16,
    len: u32,
    mtime_ms: u64,
}

impl Loc {
    fn record_len(&self) -> u64 {
        HEADER as u64 + u64::from(self.name_len) + u64::from(self.len)
    }
    fn data_offset(&self) -> u64 {
        self.offset + HEADER as u64 + u64::from(self.name_len)
    }
}

/// An open pack file, shared by the index, the readers and the sync thread.
#[derive(Debug)]
pub(crate) struct PackFd {
    file: Arc<File>,
    /// End of the records written so far (stored after each write, under the packs' lock).
    written: AtomicU64,
    /// How many bytes are durable: an `fdatasync` that started after they were written has
    /// returned.
    synced: AtomicU64,
    /// The error of a failed sync. Sticky: the kernel reports dropped pages once, so every
    /// later sync of the file fails too (and puts go to a new pack).
    failed: Mutex<Option<(io::ErrorKind, String)>>,
}

impl PackFd {
    fn new(file: File, len: u64) -> Arc<PackFd> {
        Arc::new(PackFd {
            file: Arc::new(file),
            written: AtomicU64::new(len),
            synced: AtomicU64::new(0),
            failed: Mutex::new(None),
        })
    }

    /// Whether the first `upto` bytes are known durable.
    fn durable(&self, upto: u64) -> bool {
        self.synced.load(Ordering::Acquire) >= upto
    }

    /// Makes the first `upto` bytes durable: nothing to do if a sync already covered them,
    /// else one `fdatasync`, which covers everything written before it started. Blocking.
    fn sync_to(&self, upto: u64) -> io::Result<()> {
        let mut failed = self.failed.lock().unwrap_or_else(|e| e.into_inner());
        if self.durable(upto) {
            return Ok(());
        }
        if let Some((kind, msg)) = &*failed {
            return Err(io::Error::new(*kind, msg.clone()));
        }
        // Read before the sync starts: every byte below it was written before.
        let end = self.written.load(Ordering::Acquire);
        match self.file.sync_data() {
            Ok(()) => {
                self.synced.fetch_max(end, Ordering::Release);
                Ok(())
            }
            Err(e) => {
                *failed = Some((e.kind(), e.to_string()));
                Err(e)
            }
        }
    }
}

/// Bytes of pack files that must be durable before an operation counts: what
/// [`Packs::sync`] waits for.
#[derive(Debug, Clone, Default)]
pub(crate) struct SyncPoint(Vec<(Arc<PackFd>, u64)>);

impl SyncPoint {
    /// Whether there is nothing to wait for.
    pub(crate) fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

#[derive(Debug)]
struct PackFile {
    fd: Arc<PackFd>,
    len: u64,
    /// Bytes of records that are dead: replaced or deleted blobs, and tombstones.
    dead: u64,
    /// How many blobs of the index are in this pack.
    live: u64,
}

impl PackFile {
    fn mostly_dead(&self) -> bool {
        self.dead * 2 >= self.len
    }
}

#[derive(Debug)]
struct State {
    index: BTreeMap<String, Loc>,
    packs: BTreeMap<u32, PackFile>,
    active: u32,
    /// Whether the compaction task runs.
    compacting: bool,
    /// Copies made by compaction that are not known durable yet: the pack they come from,
    /// the pack they are in, and the end of the last of them there. Made durable before the
    /// pack they come from is removed (also after a compaction failed half way).
    moved: Vec<(u32, Arc<PackFd>, u64)>,
    /// Packs whose compaction failed, and when to try again.
    retry: BTreeMap<u32, Instant>,
}

/// A blob found in a pack.
#[derive(Debug, Clone)]
pub(crate) struct Packed {
    pub(crate) file: Arc<File>,
    /// Offset of the blob's first byte in `file`.
    pub(crate) offset: u64,
    pub(crate) len: u64,
    pub(crate) modified: SystemTime,
    /// The pack file's path.
    pub(crate) path: PathBuf,
}

/// What an append found and did.
#[derive(Debug)]
pub(crate) enum Appended {
    /// The record is written (not yet durable: pass `file` to [`Packs::sync`]). `stale_file`
    /// is the inode of a file of the same name, to be removed (with
    /// [`Packs::remove_stale_file`]) once the record is durable.
    Written {
        file: SyncPoint,
        pack: u32,
        offset: u64,
        stale_file: Option<u64>,
    },
    /// A create-only put found the blob already there.
    Exists,
}

struct SyncRequest {
    fd: Arc<PackFd>,
    upto: u64,
    done: tokio::sync::oneshot::Sender<io::Result<()>>,
}

/// The packs of one directory provider.
#[derive(Debug)]
pub(crate) struct Packs {
    dir: PathBuf,
    /// Size past which a new pack is started.
    rotate: u64,
    /// Most bytes per second compaction reads, if limited.
    rate: Option<u64>,
    /// Holds the directory's exclusive lock while open.
    _lock: File,
    state: Mutex<State>,
    sync: mpsc::Sender<SyncRequest>,
    /// Woken whenever the compaction removed a pack, or stopped.
    compacted: tokio::sync::Notify,
}

impl std::fmt::Debug for SyncRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SyncRequest")
    }
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

fn pack_path(dir: &Path, id: u32) -> PathBuf {
    dir.join(format!("{id:08}.pack"))
}

/// One record, ready to be written.
fn record(kind: u8, name: &str, target: u32, mtime_ms: u64, data: &[&[u8]]) -> io::Result<Vec<u8>> {
    let name_len = u16::try_from(name.len())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "blob name too long"))?;
    let data_len: usize = data.iter().map(|d| d.len()).sum();
    let len = u32::try_from(data_len)
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "blob too large for a pack"))?;
    let mut r = Vec::with_capacity(HEADER + name.len() + data_len);
    r.extend_from_slice(MAGIC);
    r.push(kind);
    r.push(0);
    r.extend_from_slice(&name_len.to_le_bytes());
    r.extend_from_slice(&len.to_le_bytes());
    r.extend_from_slice(&target.to_le_bytes());
    r.extend_from_slice(&mtime_ms.to_le_bytes());
    r.extend_from_slice(&[0; 4]);
    r.extend_from_slice(name.as_bytes());
    for d in data {
        r.extend_from_slice(d);
    }
    let crc = crc32c::crc32c_append(crc32c::crc32c(&r[4..24]), &r[HEADER..]);
    r[24..28].copy_from_slice(&crc.to_le_bytes());
    Ok(r)
}

/// A record found by a [`Scanner`].
struct Scanned {
    kind: u8,
    target: u32,
    loc: Loc,
    /// Where the name starts in the scanner's window.
    name_at: usize,
}

impl Scanned {
    /// The record's name, in the window it was found in (checked UTF-8 by [`parse`]).
    fn name<'b>(&self, window: &'b [u8]) -> &'b str {
        window
            .get(self.name_at..self.name_at + usize::from(self.loc.name_len))
            .and_then(|b| std::str::from_utf8(b).ok())
            .unwrap_or("")
    }
}

/// What [`Scanner::next`] found.
enum Next {
    /// A valid record, which starts at this offset of the window.
    Record(Scanned, usize),
    /// The window must move on first (and the caller said not to).
    Refill,
    /// No valid record after the last one returned.
    End,
}

/// Reads the records of a pack in order. A record that is short or fails its checksum is
/// skipped: the scanner looks for the next offset where a whole, valid record starts, so one
/// damaged record does not hide the ones after it (behind the last valid record there is only
/// the torn tail of an unacknowledged put).
///
/// Memory: the pack is read through a window of `window` bytes plus one record, not whole.
struct Scanner {
    id: u32,
    /// The file's bytes from `base` on.
    buf: Vec<u8>,
    window: usize,
    base: u64,
    /// Where the next read of the file starts.
    read: u64,
    eof: bool,
    /// Where the next record is looked for.
    at: u64,
    /// End of the last valid record.
    valid: u64,
}

impl Scanner {
    fn new(id: u32, window: usize) -> Scanner {
        Scanner {
            id,
            buf: Vec::new(),
            window,
            base: 0,
            read: 0,
            eof: false,
            at: 0,
            valid: 0,
        }
    }

    /// Starts over on pack `id`, keeping the buffer.
    fn reset(&mut self, id: u32) {
        self.buf.clear();
        (self.id, self.base, self.read, self.eof, self.at, self.valid) = (id, 0, 0, false, 0, 0);
    }

    /// The next valid record of `file`. Without `refill`, stops with [`Next::Refill`] where the
    /// window would have to move (which would change the window offsets of the records
    /// returned so far).
    fn next(&mut self, file: &File, refill: bool) -> io::Result<Next> {
        loop {
            let rel = usize::try_from(self.at - self.base).unwrap_or(usize::MAX);
            // Keep at least one whole record ahead of `at` in the window, unless the file ends.
            if !self.eof && self.buf.len().saturating_sub(rel) < MAX_RECORD {
                if !refill {
                    return Ok(Next::Refill);
                }
                self.fill(file, rel)?;
            }
            let rel = usize::try_from(self.at - self.base).unwrap_or(usize::MAX);
            if rel >= self.buf.len() {
                return Ok(Next::End);
            }
            match parse(self.id, &self.buf, rel, self.base) {
                Some(r) => {
                    self.at += r.loc.record_len();
                    self.valid = self.at;
                    return Ok(Next::Record(r, rel));
                }
                // Damaged or torn: resume at the next magic that starts a valid record.
                None => match find_magic(&self.buf, rel + 1) {
                    Some(next) => self.at = self.base + next as u64,
                    None if self.eof => return Ok(Next::End),
                    // No magic in the rest of the window: go on from its last bytes (a magic
                    // may straddle the edge).
                    None => {
                        let edge = self.buf.len().saturating_sub(MAGIC.len() - 1).max(rel + 1);
                        self.at = self.base + edge as u64;
                    }
                },
            }
        }
    }

    /// Moves the window to start at `at` (`rel` bytes into it) and fills it.
    fn fill(&mut self, file: &File, rel: usize) -> io::Result<()> {
        self.buf.drain(..rel.min(self.buf.len()));
        self.base = self.at;
        let cap = self.window + MAX_RECORD;
        while !self.eof && self.buf.len() < cap {
            let start = self.buf.len();
            self.buf.resize(cap, 0);
            // Positional reads: the handle is shared, and its file position means nothing.
            let n = loop {
                match file.read_at(&mut self.buf[start..], self.read) {
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    r => break r,
                }
            };
            let n = match n {
                Ok(n) => n,
                Err(e) => {
                    self.buf.truncate(start);
                    return Err(e);
                }
            };
            self.buf.truncate(start + n);
            self.read += n as u64;
            self.eof = n == 0;
        }
        Ok(())
    }
}

/// The first offset at or after `from` where the magic starts.
fn find_magic(data: &[u8], from: usize) -> Option<usize> {
    data.get(from..)?
        .windows(MAGIC.len())
        .position(|w| w == MAGIC)
        .map(|i| from + i)
}

/// The record starting at `at` of `data` (which starts at byte `base` of the pack), if it is
/// whole and its checksum holds.
fn parse(id: u32, data: &[u8], at: usize, base: u64) -> Option<Scanned> {
    let header = data.get(at..at + HEADER)?;
    if &header[..4] != MAGIC {
        return None;
    }
    let kind = header[4];
    let name_len = u16::from_le_bytes([header[6], header[7]]);
    let len = u32::from_le_bytes([header[8], header[9], header[10], header[11]]);
    let target = u32::from_le_bytes([header[12], header[13], header[14], header[15]]);
    let mut mtime = [0u8; 8];
    mtime.copy_from_slice(&header[16..24]);
    let crc = u32::from_le_bytes([header[24], header[25], header[26], header[27]]);
    if u64::from(len) > PACK_MAX || !(kind == KIND_BLOB || kind == KIND_TOMBSTONE) {
        return None;
    }
    let body_start = at + HEADER;
    let body = data.get(body_start..body_start + usize::from(name_len) + len as usize)?;
    if crc32c::crc32c_append(crc32c::crc32c(&header[4..24]), body) != crc {
        return None;
    }
    std::str::from_utf8(&body[..usize::from(name_len)]).ok()?;
    Some(Scanned {
        kind,
        target,
        loc: Loc {
            pack: id,
            offset: base + at as u64,
            name_len,
            len,
            mtime_ms: u64::from_le_bytes(mtime),
        },
        name_at: body_start,
    })
}

/// Whether the file was removed from its directory (it may still be open here).
fn unlinked(f: &File) -> bool {
    use std::os::unix::fs::MetadataExt;
    f.metadata().map_or(true, |m| m.nlink() == 0)
}

fn open_pack(path: &Path, create: bool) -> io::Result<File> {
    OpenOptions::new()
        .read(true)
        .write(true)
        .create_new(create)
        .open(path)
}

/// The sync thread: each round makes everything written before its requests durable, at most
/// one `fdatasync` per pack file (none for bytes an earlier sync covered), and answers them
/// all.
fn sync_loop(rx: mpsc::Receiver<SyncRequest>) {
    while let Ok(first) = rx.recv() {
        let mut batch = vec![first];
        while let Ok(more) = rx.try_recv() {
            batch.push(more);
        }
        // Every request's bytes were written before it was queued, so before this round's
        // first sync of their file: that sync covers the file's other requests too.
        for req in batch {
            let res = req.fd.sync_to(req.upto);
            let _ = req.done.send(res);
        }
    }
}

impl Packs {
    /// Opens the packs under `root` (creating the directory), rebuilding the index from the
    /// records. Blocking.
    pub(crate) fn open(root: &Path, options: &super::LocalOptions) -> io::Result<Packs> {
        let rotate = options.pack_size.max(PACK_ROTATE_MIN);
        let dir = root.join(PACK_DIR);
        std::fs::create_dir_all(&dir)?;
        // One owner at a time: two would append at their own offsets over each other's
        // records, and cut each other's "torn" tails. An owner that just closed (in this
        // process, its last task finishing) is waited for briefly.
        let lock_path = dir.join("lock");
        let lock = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)?;
        let deadline = std::time::Instant::now() + Duration::from_secs(2);
        loop {
            match lock.try_lock() {
                Ok(()) => break,
                Err(std::fs::TryLockError::WouldBlock) if std::time::Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(20));
                }
                Err(std::fs::TryLockError::WouldBlock) => {
                    return Err(io::Error::new(
                        io::ErrorKind::WouldBlock,
                        format!(
                            "{} is in use by another archipel process (lock {})",
                            root.display(),
                            lock_path.display()
                        ),
                    ));
                }
                Err(std::fs::TryLockError::Error(e)) => return Err(e),
            }
        }
        let mut ids: Vec<u32> = Vec::new();
        for entry in std::fs::read_dir(&dir)? {
            let name = entry?.file_name();
            if let Some(id) = name
                .to_str()
                .and_then(|n| n.strip_suffix(".pack"))
                .and_then(|n| n.parse().ok())
            {
                ids.push(id);
            }
        }
        ids.sort_unstable();
        let mut state = State {
            index: BTreeMap::new(),
            packs: BTreeMap::new(),
            active: 0,
            compacting: false,
            moved: Vec::new(),
            retry: BTreeMap::new(),
        };
        let mut scanner = Scanner::new(0, SCAN_WINDOW);
        for (i, &id) in ids.iter().enumerate() {
            let file = open_pack(&pack_path(&dir, id), false)?;
            let size = file.metadata()?.len();
            let fd = PackFd::new(file, 0);
            state.packs.insert(
                id,
                PackFile {
                    fd: fd.clone(),
                    len: 0,
                    dead: 0,
                    live: 0,
                },
            );
            // The records, applied in order as they are read.
            scanner.reset(id);
            while let Next::Record(r, _) = scanner.next(&fd.file, true)? {
                state.replay(&r, r.name(&scanner.buf));
            }
            let valid = scanner.valid;
            if i + 1 == ids.len() && valid < size {
                // The tail of a put that never got acknowledged: cut it before appending.
                fd.file.set_len(valid)?;
                fd.file.sync_all()?;
            }
            fd.written.store(valid, Ordering::Release);
            if let Some(p) = state.packs.get_mut(&id) {
                p.len = valid;
            }
        }
        drop(scanner);
        match ids.last() {
            // The last pack goes on taking records, unless it is full, or mostly dead: then
            // a new one starts, so it can be compacted.
            Some(&last)
                if state
                    .packs
                    .get(&last)
                    .is_some_and(|p| p.len < rotate && (p.len == 0 || !p.mostly_dead())) =>
            {
                state.active = last;
            }
            last => {
                let id = last.map_or(1, |l| l + 1);
                let file = open_pack(&pack_path(&dir, id), true)?;
                File::open(&dir)?.sync_all()?;
                state.packs.insert(
                    id,
                    PackFile {
                        fd: PackFd::new(file, 0),
                        len: 0,
                        dead: 0,
                        live: 0,
                    },
                );
                state.active = id;
            }
        }
        let (tx, rx) = mpsc::channel();
        std::thread::Builder::new()
            .name("archipel-pack-sync".into())
            .spawn(move || sync_loop(rx))?;
        Ok(Packs {
            dir,
            rotate,
            rate: options.compaction_rate,
            _lock: lock,
            state: Mutex::new(state),
            sync: tx,
            compacted: tokio::sync::Notify::new(),
        })
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The blob `name`, if it is packed (and its pack is still on disk: a pack removed behind
    /// the provider's back, as when a disk's contents are lost, holds nothing).
    pub(crate) fn find(&self, name: &str) -> Option<Packed> {
        let st = self.lock();
        let loc = *st.index.get(name)?;
        let file = st.packs.get(&loc.pack)?.fd.file.clone();
        if unlinked(&file) {
            return None;
        }
        Some(Packed {
            file,
            offset: loc.data_offset(),
            len: u64::from(loc.len),
            modified: UNIX_EPOCH + Duration::from_millis(loc.mtime_ms),
            path: pack_path(&self.dir, loc.pack),
        })
    }

    /// Packed blobs whose names start with `prefix`, after `after`, in order, at most `limit`.
    pub(crate) fn list(
        &self,
        prefix: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Vec<(String, u64, SystemTime)> {
        let st = self.lock();
        let gone: Vec<u32> = st
            .packs
            .iter()
            .filter(|(_, p)| unlinked(&p.fd.file))
            .map(|(id, _)| *id)
            .collect();
        let start = match after {
            Some(a) if a >= prefix => Bound::Excluded(a),
            _ => Bound::Included(prefix),
        };
        st.index
            .range::<str, _>((start, Bound::Unbounded))
            .take_while(|(n, _)| n.starts_with(prefix))
            .filter(|(_, l)| !gone.contains(&l.pack))
            .take(limit)
            .map(|(n, l)| {
                (
                    n.clone(),
                    u64::from(l.len),
                    UNIX_EPOCH + Duration::from_millis(l.mtime_ms),
                )
            })
            .collect()
    }

    /// Runs `f` (which creates the file of blob `name`) unless the blob is packed, under the
    /// lock every packed put takes: create-only puts of both kinds exclude each other.
    pub(crate) fn exclusive<T>(
        &self,
        name: &str,
        f: impl FnOnce() -> io::Result<T>,
    ) -> io::Result<Option<T>> {
        let st = self.lock();
        if st.index.contains_key(name) {
            return Ok(None);
        }
        let res = f()?;
        drop(st);
        Ok(Some(res))
    }

    /// Appends blob `name` (not yet durable: pass the sync point to [`Packs::sync`]). With
    /// `create`, fails if the blob exists, packed or as the file `file_path`. Blocking.
    pub(crate) fn append(
        &self,
        name: &str,
        data: &[bytes::Bytes],
        create: bool,
        file_path: &Path,
    ) -> io::Result<Appended> {
        use std::os::unix::fs::MetadataExt;
        let mut st = self.lock();
        let stale_file = file_path
            .symlink_metadata()
            .ok()
            .filter(|m| m.is_file())
            .map(|m| m.ino());
        if create && (stale_file.is_some() || st.index.contains_key(name)) {
            return Ok(Appended::Exists);
        }
        let parts: Vec<&[u8]> = data.iter().map(|b| b.as_ref()).collect();
        let mtime_ms = now_ms();
        let rec = record(KIND_BLOB, name, 0, mtime_ms, &parts)?;
        let (pack, offset, fd) = self.write(&mut st, &rec)?;
        let loc = Loc {
            pack,
            offset,
            name_len: name.len() as u16,
            len: (rec.len() - HEADER - name.len()) as u32,
            mtime_ms,
        };
        st.set_current(name, loc);
        Ok(Appended::Written {
            file: SyncPoint(vec![(fd, offset + rec.len() as u64)]),
            pack,
            offset,
            stale_file,
        })
    }

    /// Removes the file `path` of blob `name` (durably) if it is still inode `ino` and the
    /// blob's current version is still the record at `pack`/`offset` — not if a later put
    /// replaced either meanwhile. Blocking.
    pub(crate) fn remove_stale_file(
        &self,
        name: &str,
        pack: u32,
        offset: u64,
        ino: u64,
        path: &Path,
    ) -> io::Result<()> {
        use std::os::unix::fs::MetadataExt;
        let st = self.lock();
        let current = st
            .index
            .get(name)
            .is_some_and(|l| l.pack == pack && l.offset == offset);
        let same = path.symlink_metadata().is_ok_and(|m| m.ino() == ino);
        if current && same {
            std::fs::remove_file(path)?;
            if let Some(parent) = path.parent() {
                File::open(parent)?.sync_all()?;
            }
        }
        drop(st);
        Ok(())
    }

    /// Runs `f` (which puts a file in place) under the lock packed puts take, so it cannot
    /// fall between a packed put's check of the file and that file's removal.
    pub(crate) fn locked<T>(&self, f: impl FnOnce() -> T) -> T {
        let st = self.lock();
        let res = f();
        drop(st);
        res
    }

    /// Forgets blob `name` if packed, with a tombstone (to be made durable with
    /// [`Packs::sync`]). Blocking.
    ///
    /// The sync point covers the tombstone and the record it kills (which may not be durable
    /// yet — a tombstone that outlived its target would not match the older copy a crash
    /// brings back); empty if the blob was not packed.
    pub(crate) fn remove(&self, name: &str) -> io::Result<SyncPoint> {
        let mut st = self.lock();
        let Some(loc) = st.index.get(name).copied() else {
            return Ok(SyncPoint::default());
        };
        let target = st.packs.get(&loc.pack).map(|p| p.fd.clone());
        let rec = record(KIND_TOMBSTONE, name, loc.pack, now_ms(), &[])?;
        let (pack, offset, fd) = self.write(&mut st, &rec)?;
        st.forget(name);
        if let Some(p) = st.packs.get_mut(&pack) {
            p.dead += rec.len() as u64;
        }
        let mut point = vec![(fd, offset + rec.len() as u64)];
        if let Some(t) = target
            && !Arc::ptr_eq(&t, &point[0].0)
        {
            point.push((t, loc.offset + loc.record_len()));
        }
        Ok(SyncPoint(point))
    }

    /// Writes `rec` (one record or several) at the end of the active pack, starting a new pack
    /// first if the active one is full. A failed write abandons the pack (cut back to its last
    /// good record).
    fn write(&self, st: &mut State, rec: &[u8]) -> io::Result<(u32, u64, Arc<PackFd>)> {
        // A pack removed behind our back would swallow the record: start a new one (which
        // fails if the directory is gone too).
        let full = st.packs.get(&st.active).is_none_or(|p| {
            (p.len > 0 && p.len + rec.len() as u64 > self.rotate) || unlinked(&p.fd.file)
        });
        if full {
            self.rotate(st)?;
        }
        let active = st.active;
        let p = st
            .packs
            .get_mut(&active)
            .ok_or_else(|| io::Error::other("no active pack"))?;
        let offset = p.len;
        if let Err(e) = p.fd.file.write_all_at(rec, offset) {
            let _ = p.fd.file.set_len(offset);
            let _ = self.rotate(st);
            return Err(e);
        }
        p.len += rec.len() as u64;
        p.fd.written.store(p.len, Ordering::Release);
        Ok((active, offset, p.fd.clone()))
    }

    /// Starts a new active pack.
    fn rotate(&self, st: &mut State) -> io::Result<()> {
        let id = st.packs.keys().next_back().map_or(1, |l| l + 1);
        let path = pack_path(&self.dir, id);
        let file = open_pack(&path, true)?;
        if let Err(e) = File::open(&self.dir).and_then(|d| d.sync_all()) {
            // Not durable as a name: drop it, so the next rotation can try the same id.
            let _ = std::fs::remove_file(&path);
            return Err(e);
        }
        st.packs.insert(
            id,
            PackFile {
                fd: PackFd::new(file, 0),
                len: 0,
                dead: 0,
                live: 0,
            },
        );
        st.active = id;
        Ok(())
    }

    /// Waits until the bytes of `point` are durable (group commit: the sync thread's next
    /// round, or none if earlier syncs covered them). A failed sync abandons the pack: later
    /// appends go to a new one.
    pub(crate) async fn sync(&self, point: SyncPoint) -> io::Result<()> {
        let gone = || io::Error::other("the pack sync thread is gone");
        let mut waits = Vec::with_capacity(point.0.len());
        for (fd, upto) in point.0 {
            if fd.durable(upto) {
                continue;
            }
            let (tx, rx) = tokio::sync::oneshot::channel();
            let req = SyncRequest {
                fd: fd.clone(),
                upto,
                done: tx,
            };
            if self.sync.send(req).is_err() {
                return Err(gone());
            }
            waits.push((fd, rx));
        }
        let mut res = Ok(());
        for (fd, rx) in waits {
            if let Err(e) = rx.await.unwrap_or_else(|_| Err(gone())) {
                let mut st = self.lock();
                let active = st.active;
                if st
                    .packs
                    .get(&active)
                    .is_some_and(|p| Arc::ptr_eq(&p.fd, &fd))
                {
                    let _ = self.rotate(&mut st);
                }
                drop(st);
                if res.is_ok() {
                    res = Err(e);
                }
            }
        }
        res
    }

    /// Starts the compaction task unless it runs or no pack is worth compacting; once
    /// started, it runs until none is. Needs a tokio runtime.
    pub(crate) fn kick(self: &Arc<Self>) {
        if let Some(id) = self.take_compaction() {
            tokio::spawn(self.clone().compact(id));
        }
    }

    /// Waits, at most [`BACKLOG_PATIENCE`], while [`BACKLOG_PACKS`] or more packs wait to be
    /// compacted: puts faster than the compaction can follow are slowed down to its pace,
    /// rather than let the packs grow without bound.
    pub(crate) async fn admit(self: &Arc<Self>) {
        let deadline = tokio::time::Instant::now() + BACKLOG_PATIENCE;
        loop {
            let woken = self.compacted.notified();
            let mut woken = std::pin::pin!(woken);
            // Registered before the check: a removal after it wakes us.
            woken.as_mut().enable();
            let (start, backlog) = {
                let mut st = self.lock();
                let now = Instant::now();
                let start = match st.compacting {
                    true => None,
                    false => st.candidate(now),
                };
                st.compacting |= start.is_some();
                (start, st.candidates(now).count() >= BACKLOG_PACKS)
            };
            if let Some(id) = start {
                tokio::spawn(self.clone().compact(id));
            }
            if !backlog || tokio::time::timeout_at(deadline, woken).await.is_err() {
                return;
            }
        }
    }

    /// A pack worth compacting now (not active, at least half dead; the most dead first),
    /// with the compaction task marked as running; `None` if there is none or the task runs.
    /// Pass it to [`Packs::compact`].
    pub(crate) fn take_compaction(&self) -> Option<u32> {
        let mut st = self.lock();
        if st.compacting {
            return None;
        }
        let id = st.candidate(Instant::now())?;
        st.compacting = true;
        Some(id)
    }

    /// The compaction task (after [`Packs::take_compaction`]): compacts pack `first`, then
    /// every other pack worth it, until there is none or the provider is closed. A pack whose
    /// compaction fails stays as it is, and is tried again after [`COMPACT_RETRY`].
    pub(crate) async fn compact(self: Arc<Self>, first: u32) {
        let packs = Arc::downgrade(&self);
        drop(self);
        // Dropped on the way (with its runtime, say), the task is no longer running.
        let mut running = Running(Some(packs.clone()));
        let mut step = Step {
            scanner: Scanner::new(first, COMPACT_STEP),
            out: Vec::new(),
        };
        let mut next = Some(first);
        while let Some(id) = next {
            match compact_one(&packs, id, &mut step).await {
                Ok(()) => {}
                Err(Halt::Closed) => return,
                Err(Halt::Failed) => {
                    if let Some(p) = packs.upgrade() {
                        p.lock().retry.insert(id, Instant::now() + COMPACT_RETRY);
                    }
                }
            }
            let Some(p) = packs.upgrade() else {
                return;
            };
            let mut st = p.lock();
            next = st.candidate(Instant::now());
            if next.is_none() {
                st.compacting = false;
                // Said under the lock: a task started after this one must not be unmarked.
                running.0 = None;
            }
            drop(st);
            p.compacted.notify_waiters();
        }
    }

    /// One step of compacting pack `id`: scans its next records (about [`COMPACT_STEP`]
    /// bytes) and copies those still needed — live blobs, and tombstones that still delete a
    /// record in another pack — to the active pack, in one write under one hold of the lock.
    /// Returns the bytes scanned and whether another pack waits to be compacted, `None` past
    /// the last record. Blocking.
    fn copy_step(&self, id: u32, file: &File, step: &mut Step) -> io::Result<Option<(u64, bool)>> {
        let Step { scanner, out } = step;
        let from = scanner.at;
        let mut found: Vec<(Scanned, usize)> = Vec::new();
        loop {
            match scanner.next(file, found.is_empty())? {
                Next::Record(r, rel) => found.push((r, rel)),
                Next::Refill => break,
                Next::End if found.is_empty() => return Ok(None),
                Next::End => break,
            }
        }
        let window = &scanner.buf;
        out.clear();
        let mut kept: Vec<(usize, u64)> = Vec::new();
        let mut st = self.lock();
        for (i, (r, rel)) in found.iter().enumerate() {
            let copy = match r.kind {
                // Still the live version of the blob?
                KIND_BLOB => st.index.get(r.name(window)) == Some(&r.loc),
                // Still deleting a record in another pack?
                _ => r.target != id && st.packs.contains_key(&r.target),
            };
            let bytes = window.get(*rel..*rel + r.loc.record_len() as usize);
            if let (true, Some(bytes)) = (copy, bytes) {
                kept.push((i, out.len() as u64));
                out.extend_from_slice(bytes);
            }
        }
        if !out.is_empty() {
            let (pack, offset, fd) = self.write(&mut st, out)?;
            for (i, at) in kept {
                let r = &found[i].0;
                if r.kind == KIND_BLOB {
                    let loc = Loc {
                        pack,
                        offset: offset + at,
                        ..r.loc
                    };
                    st.set_current(r.name(window), loc);
                } else if let Some(p) = st.packs.get_mut(&pack) {
                    p.dead += r.loc.record_len();
                }
            }
            let end = offset + out.len() as u64;
            match st
                .moved
                .iter_mut()
                .find(|m| m.0 == id && Arc::ptr_eq(&m.1, &fd))
            {
                Some(m) => m.2 = m.2.max(end),
                None => st.moved.push((id, fd, end)),
            }
        }
        let active = st.active;
        let behind = st
            .packs
            .iter()
            .any(|(i, p)| *i != id && *i != active && p.mostly_dead());
        Ok(Some((scanner.at - from, behind)))
    }
}

/// Marks the compaction task as stopped if it is dropped before it ends.
struct Running(Option<Weak<Packs>>);

impl Drop for Running {
    fn drop(&mut self) {
        if let Some(p) = self.0.as_ref().and_then(Weak::upgrade) {
            p.lock().compacting = false;
            p.compacted.notify_waiters();
        }
    }
}

/// The buffers of the compaction task, kept from one step and one pack to the next.
struct Step {
    scanner: Scanner,
    /// The records one step copies.
    out: Vec<u8>,
}

/// Why a compaction stopped.
enum Halt {
    /// The provider was closed.
    Closed,
    /// An I/O error (the pack stays, and is tried again later; the error itself is of no use
    /// to anyone waiting, as no request waits for a compaction).
    Failed,
}

impl From<io::Error> for Halt {
    fn from(_: io::Error) -> Halt {
        Halt::Failed
    }
}

/// Compacts pack `id`, step by step (see the module docs), then makes its copies durable and
/// removes it. Holds the provider only during a step.
async fn compact_one(packs: &Weak<Packs>, id: u32, step: &mut Step) -> Result<(), Halt> {
    let upgrade = || packs.upgrade().ok_or(Halt::Closed);
    let (file, rate) = {
        let p = upgrade()?;
        let st = p.lock();
        let Some(f) = st.packs.get(&id) else {
            return Ok(());
        };
        (f.fd.file.clone(), p.rate)
    };
    step.scanner.reset(id);
    let started = Instant::now();
    let mut scanned = 0u64;
    loop {
        let (p, file) = (upgrade()?, file.clone());
        let mut s = std::mem::replace(
            step,
            Step {
                scanner: Scanner::new(id, 0),
                out: Vec::new(),
            },
        );
        let t0 = Instant::now();
        let (back, res) = tokio::task::spawn_blocking(move || {
            let res = p.copy_step(id, &file, &mut s);
            (s, res)
        })
        .await
        .map_err(|_| Halt::Failed)?;
        *step = back;
        let took = t0.elapsed();
        let Some((n, behind)) = res? else {
            break;
        };
        scanned += n;
        // At most half of the time, unless other packs wait (then puts still get the lock
        // between steps); within the rate limit always.
        let mut pause = if behind { Duration::ZERO } else { took };
        if let Some(rate) = rate {
            let due = started + Duration::from_secs_f64(scanned as f64 / rate.max(1) as f64);
            pause = pause.max(due.saturating_duration_since(Instant::now()));
        }
        if pause.is_zero() {
            tokio::task::yield_now().await;
        } else {
            tokio::time::sleep(pause).await;
        }
    }
    // Every copy of the pack's records durable (also those of an earlier try that failed)
    // before the pack goes.
    let p = upgrade()?;
    let moved = SyncPoint(
        p.lock()
            .moved
            .iter()
            .filter(|m| m.0 == id)
            .map(|m| (m.1.clone(), m.2))
            .collect(),
    );
    p.sync(moved).await?;
    if p.lock().packs.get(&id).is_some_and(|f| f.live > 0) {
        // Cannot happen (only the active pack takes records): keep it.
        return Err(Halt::Failed);
    }
    tokio::task::spawn_blocking(move || {
        // Gone from disk first: a pack still there must stay known, or tombstones aimed at
        // it would be dropped by later compactions.
        match std::fs::remove_file(pack_path(&p.dir, id)) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
            _ => {}
        }
        File::open(&p.dir)?.sync_all()?;
        let mut st = p.lock();
        st.packs.remove(&id);
        st.moved.retain(|m| m.0 != id);
        st.retry.remove(&id);
        Ok(())
    })
    .await
    .map_err(|_| Halt::Failed)??;
    Ok(())
}

impl State {
    /// The pack most worth compacting now: not active, at least half dead, not waiting for
    /// another try; the one with the most dead bytes.
    fn candidate(&self, now: Instant) -> Option<u32> {
        self.candidates(now)
            .max_by_key(|(id, p)| (p.dead, std::cmp::Reverse(*id)))
            .map(|(id, _)| id)
    }

    /// The packs worth compacting now.
    fn candidates(&self, now: Instant) -> impl Iterator<Item = (u32, &PackFile)> {
        self.packs
            .iter()
            .filter(move |(id, p)| {
                **id != self.active
                    && p.mostly_dead()
                    && self.retry.get(id).is_none_or(|t| *t <= now)
            })
            .map(|(id, p)| (*id, p))
    }

    /// Makes `loc` the current record of blob `name` (the one it replaces is dead).
    fn set_current(&mut self, name: &str, loc: Loc) {
        let old = match self.index.get_mut(name) {
            Some(l) => Some(std::mem::replace(l, loc)),
            None => {
                self.index.insert(name.to_string(), loc);
                None
            }
        };
        if let Some(p) = self.packs.get_mut(&loc.pack) {
            p.live += 1;
        }
        if let Some(old) = old {
            self.dies(&old);
        }
    }

    /// Forgets blob `name` (its record is dead).
    fn forget(&mut self, name: &str) {
        if let Some(old) = self.index.remove(name) {
            self.dies(&old);
        }
    }

    /// Counts the blob record at `loc` dead.
    fn dies(&mut self, loc: &Loc) {
        if let Some(p) = self.packs.get_mut(&loc.pack) {
            p.live = p.live.saturating_sub(1);
            p.dead += loc.record_len();
        }
    }

    /// Applies a record read at open.
    fn replay(&mut self, r: &Scanned, name: &str) {
        if r.kind == KIND_BLOB {
            self.set_current(name, r.loc);
            return;
        }
        if let Some(p) = self.packs.get_mut(&r.loc.pack) {
            p.dead += r.loc.record_len();
        }
        if self.index.get(name).is_some_and(|l| l.pack == r.target) {
            self.forget(name);
        }
    }
}
