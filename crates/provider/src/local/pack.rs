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
//! deleted) is compacted in the background: live records and still-needed tombstones are
//! copied to the active pack, made durable, and the old pack is removed.

use std::collections::{BTreeMap, HashMap};
use std::fs::{File, OpenOptions};
use std::io;
use std::ops::Bound;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, mpsc};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Largest blob stored in a pack; larger blobs are files of their own.
pub(crate) const PACK_MAX: u64 = 128 * 1024;
/// Size past which a new pack file is started.
const PACK_ROTATE: u64 = 64 * 1024 * 1024;
/// Directory of the pack files, under the provider's root.
pub(crate) const PACK_DIR: &str = ".packs";

const MAGIC: &[u8; 4] = b"APK1";
const HEADER: usize = 28;
/// The longest record: header, the longest name, the largest packed blob.
const MAX_RECORD: usize = HEADER + u16::MAX as usize + PACK_MAX as usize;
/// How much of a pack the open-time scan holds at once.
const SCAN_WINDOW: usize = 4 * 1024 * 1024;
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

#[derive(Debug)]
struct PackFile {
    file: Arc<File>,
    len: u64,
    dead: u64,
}

#[derive(Debug)]
struct State {
    index: BTreeMap<String, Loc>,
    packs: BTreeMap<u32, PackFile>,
    active: u32,
    compacting: bool,
    /// Packs holding records copied by compaction that are not known durable yet: synced
    /// before any pack is removed.
    moved_into: Vec<Arc<File>>,
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
    /// The record is written (not yet durable). `stale_file` is the inode of a file of the
    /// same name, to be removed (with [`Packs::remove_stale_file`]) once the record is durable.
    Written {
        file: Arc<File>,
        pack: u32,
        offset: u64,
        stale_file: Option<u64>,
    },
    /// A create-only put found the blob already there.
    Exists,
}

struct SyncRequest {
    file: Arc<File>,
    done: tokio::sync::oneshot::Sender<io::Result<()>>,
}

/// The packs of one directory provider.
#[derive(Debug)]
pub(crate) struct Packs {
    dir: PathBuf,
    /// Holds the directory's exclusive lock while open.
    _lock: File,
    state: Mutex<State>,
    sync: mpsc::Sender<SyncRequest>,
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

/// A record read back by the scan.
struct Scanned {
    kind: u8,
    name: String,
    target: u32,
    loc: Loc,
}

/// Reads the records of pack `id` in order and says where the last valid one ends. A record
/// that is short or fails its checksum is skipped: the scan looks for the next offset where a
/// whole, valid record starts, so one damaged record does not hide the ones after it (behind
/// the last valid record there is only the torn tail of an unacknowledged put).
///
/// Memory: the pack is read through a window of [`SCAN_WINDOW`] bytes (plus one record), not
/// whole, so opening a provider costs the same few MiB whatever its packs hold.
fn scan(id: u32, file: &File) -> io::Result<(Vec<Scanned>, u64)> {
    let mut buf: Vec<u8> = Vec::with_capacity(SCAN_WINDOW + MAX_RECORD);
    // `buf[0]` is the byte at `base` of the file; `read` is where the next read starts.
    let (mut base, mut read, mut eof) = (0u64, 0u64, false);
    let mut out = Vec::new();
    let (mut at, mut valid) = (0u64, 0u64);
    loop {
        let rel = usize::try_from(at - base).unwrap_or(usize::MAX);
        // Keep at least one whole record ahead of `at` in the window, unless the file ends.
        if !eof && buf.len().saturating_sub(rel) < MAX_RECORD {
            buf.drain(..rel.min(buf.len()));
            base = at;
            while !eof && buf.len() < SCAN_WINDOW + MAX_RECORD {
                let start = buf.len();
                buf.resize(SCAN_WINDOW + MAX_RECORD, 0);
                // Positional reads: the handle is shared, and its file position means nothing.
                let n = loop {
                    match file.read_at(&mut buf[start..], read) {
                        Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                        r => break r,
                    }
                };
                let n = match n {
                    Ok(n) => n,
                    Err(e) => {
                        buf.truncate(start);
                        return Err(e);
                    }
                };
                buf.truncate(start + n);
                read += n as u64;
                eof = n == 0;
            }
        }
        let rel = usize::try_from(at - base).unwrap_or(usize::MAX);
        if rel >= buf.len() {
            break;
        }
        match parse(id, &buf, rel, base) {
            Some(r) => {
                at += r.loc.record_len();
                valid = at;
                out.push(r);
            }
            // Damaged or torn: resume at the next magic that starts a valid record.
            None => match find_magic(&buf, rel + 1) {
                Some(next) => at = base + next as u64,
                None if eof => break,
                // No magic in the rest of the window: go on from its last bytes (a magic may
                // straddle the edge).
                None => {
                    let edge = buf.len().saturating_sub(MAGIC.len() - 1).max(rel + 1);
                    at = base + edge as u64;
                }
            },
        }
    }
    Ok((out, valid))
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
    let name = std::str::from_utf8(&body[..usize::from(name_len)]).ok()?;
    Some(Scanned {
        kind,
        name: name.to_string(),
        target,
        loc: Loc {
            pack: id,
            offset: base + at as u64,
            name_len,
            len,
            mtime_ms: u64::from_le_bytes(mtime),
        },
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

/// The sync thread: each round makes everything written before its requests durable, one
/// `fdatasync` per pack file, and answers them all.
fn sync_loop(rx: mpsc::Receiver<SyncRequest>) {
    // Files whose sync once failed: their unsynced pages may have been dropped, and the kernel
    // reports that only once, so every later sync of them fails too (puts go to a new pack).
    let mut failed: HashMap<*const File, (io::ErrorKind, String)> = HashMap::new();
    while let Ok(first) = rx.recv() {
        let mut batch = vec![first];
        while let Ok(more) = rx.try_recv() {
            batch.push(more);
        }
        let mut done: HashMap<*const File, Result<(), (io::ErrorKind, String)>> = HashMap::new();
        for req in batch {
            let key = Arc::as_ptr(&req.file);
            let res = done
                .entry(key)
                .or_insert_with(|| {
                    if let Some(e) = failed.get(&key) {
                        return Err(e.clone());
                    }
                    let res = req.file.sync_data().map_err(|e| (e.kind(), e.to_string()));
                    if let Err(e) = &res {
                        failed.insert(key, e.clone());
                    }
                    res
                })
                .clone();
            let _ = req
                .done
                .send(res.map_err(|(kind, msg)| io::Error::new(kind, msg)));
        }
    }
}

impl Packs {
    /// Opens the packs under `root` (creating the directory), rebuilding the index from the
    /// records. Blocking.
    pub(crate) fn open(root: &Path) -> io::Result<Packs> {
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
            moved_into: Vec::new(),
        };
        for (i, &id) in ids.iter().enumerate() {
            let file = open_pack(&pack_path(&dir, id), false)?;
            let (records, valid) = scan(id, &file)?;
            let size = file.metadata()?.len();
            if i + 1 == ids.len() && valid < size {
                // The tail of a put that never got acknowledged: cut it before appending.
                file.set_len(valid)?;
                file.sync_all()?;
            }
            state.packs.insert(
                id,
                PackFile {
                    file: Arc::new(file),
                    len: valid,
                    dead: 0,
                },
            );
            for r in records {
                match r.kind {
                    KIND_BLOB => {
                        if let Some(old) = state.index.insert(r.name, r.loc) {
                            state.add_dead(&old);
                        }
                    }
                    _ => {
                        state.add_dead(&r.loc);
                        if state.index.get(&r.name).is_some_and(|l| l.pack == r.target)
                            && let Some(old) = state.index.remove(&r.name)
                        {
                            state.add_dead(&old);
                        }
                    }
                }
            }
        }
        match ids.last() {
            Some(&last) if state.packs.get(&last).is_some_and(|p| p.len < PACK_ROTATE) => {
                state.active = last;
            }
            last => {
                let id = last.map_or(1, |l| l + 1);
                let file = open_pack(&pack_path(&dir, id), true)?;
                File::open(&dir)?.sync_all()?;
                state.packs.insert(
                    id,
                    PackFile {
                        file: Arc::new(file),
                        len: 0,
                        dead: 0,
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
            _lock: lock,
            state: Mutex::new(state),
            sync: tx,
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
        let file = st.packs.get(&loc.pack)?.file.clone();
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
            .filter(|(_, p)| unlinked(&p.file))
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

    /// Appends blob `name` (not yet durable: pass the file to [`Packs::sync`]). With `create`,
    /// fails if the blob exists, packed or as the file `file_path`. Blocking.
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
        let (pack, offset, file) = self.write(&mut st, &rec)?;
        let loc = Loc {
            pack,
            offset,
            name_len: name.len() as u16,
            len: (rec.len() - HEADER - name.len()) as u32,
            mtime_ms,
        };
        if let Some(old) = st.index.insert(name.to_string(), loc) {
            st.add_dead(&old);
        }
        Ok(Appended::Written {
            file,
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
    /// Returns the files to sync before the removal counts: the tombstone's pack and the pack
    /// of the record it kills (which may not be durable yet — a tombstone that outlived its
    /// target would not match the older copy a crash brings back).
    pub(crate) fn remove(&self, name: &str) -> io::Result<Vec<Arc<File>>> {
        let mut st = self.lock();
        let Some(loc) = st.index.get(name).copied() else {
            return Ok(Vec::new());
        };
        let target = st.packs.get(&loc.pack).map(|p| p.file.clone());
        let rec = record(KIND_TOMBSTONE, name, loc.pack, now_ms(), &[])?;
        let (_, _, file) = self.write(&mut st, &rec)?;
        st.index.remove(name);
        st.add_dead(&loc);
        let active = st.active;
        if let Some(p) = st.packs.get_mut(&active) {
            p.dead += rec.len() as u64;
        }
        let mut files = vec![file];
        if let Some(t) = target
            && !Arc::ptr_eq(&t, &files[0])
        {
            files.push(t);
        }
        Ok(files)
    }

    /// Writes `rec` at the end of the active pack, starting a new pack first if the active one
    /// is full. A failed write abandons the pack (cut back to its last good record).
    fn write(&self, st: &mut State, rec: &[u8]) -> io::Result<(u32, u64, Arc<File>)> {
        // A pack removed behind our back would swallow the record: start a new one (which
        // fails if the directory is gone too).
        let full = st.packs.get(&st.active).is_none_or(|p| {
            (p.len > 0 && p.len + rec.len() as u64 > PACK_ROTATE) || unlinked(&p.file)
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
        if let Err(e) = p.file.write_all_at(rec, offset) {
            let _ = p.file.set_len(offset);
            let _ = self.rotate(st);
            return Err(e);
        }
        p.len += rec.len() as u64;
        Ok((active, offset, p.file.clone()))
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
                file: Arc::new(file),
                len: 0,
                dead: 0,
            },
        );
        st.active = id;
        Ok(())
    }

    /// Waits until everything written to `file` so far is durable (group commit). A failed
    /// sync abandons the pack: later appends go to a new one.
    pub(crate) async fn sync(&self, file: Arc<File>) -> io::Result<()> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        let sent = self.sync.send(SyncRequest {
            file: file.clone(),
            done: tx,
        });
        if sent.is_err() {
            return Err(io::Error::other("the pack sync thread is gone"));
        }
        let res = rx
            .await
            .unwrap_or_else(|_| Err(io::Error::other("the pack sync thread is gone")));
        if res.is_err() {
            let mut st = self.lock();
            let active = st.active;
            if st
                .packs
                .get(&active)
                .is_some_and(|p| Arc::ptr_eq(&p.file, &file))
            {
                let _ = self.rotate(&mut st);
            }
        }
        res
    }

    /// A pack worth compacting now (not active, at least half dead), marked as being
    /// compacted; `None` if there is none or a compaction is running.
    pub(crate) fn take_compaction(&self) -> Option<u32> {
        let mut st = self.lock();
        if st.compacting {
            return None;
        }
        let active = st.active;
        let id = st
            .packs
            .iter()
            .find(|(id, p)| **id != active && p.dead * 2 >= p.len)
            .map(|(id, _)| *id)?;
        st.compacting = true;
        Some(id)
    }

    /// Compacts pack `id` (from [`Packs::take_compaction`]): copies its live records and the
    /// tombstones still needed to the active pack, makes them durable, removes the pack.
    pub(crate) async fn compact(self: Arc<Self>, id: u32) -> io::Result<()> {
        let res = self.clone().compact_inner(id).await;
        self.lock().compacting = false;
        res
    }

    async fn compact_inner(self: Arc<Self>, id: u32) -> io::Result<()> {
        let packs = self.clone();
        tokio::task::spawn_blocking(move || packs.copy_live(id))
            .await
            .map_err(io::Error::other)??;
        // Every copy made so far (by this compaction or one that failed before) durable
        // before the pack is removed.
        let moved = self.lock().moved_into.clone();
        for f in &moved {
            self.sync(f.clone()).await?;
        }
        self.lock()
            .moved_into
            .retain(|f| !moved.iter().any(|m| Arc::ptr_eq(m, f)));
        if self.lock().index.values().any(|l| l.pack == id) {
            return Ok(()); // cannot happen (only the active pack is written); keep it
        }
        // Gone from disk first: a pack still there must stay known, or tombstones aimed at
        // it would be dropped by later compactions.
        std::fs::remove_file(pack_path(&self.dir, id))?;
        File::open(&self.dir)?.sync_all()?;
        self.lock().packs.remove(&id);
        Ok(())
    }

    /// Copies the live records of pack `id`, and its tombstones that still delete a record in
    /// another pack, to the active pack; the packs written to join `moved_into`. Blocking.
    fn copy_live(&self, id: u32) -> io::Result<()> {
        let Some(old) = self.lock().packs.get(&id).map(|p| p.file.clone()) else {
            return Ok(());
        };
        let (records, _) = scan(id, &old)?;
        for r in records {
            let mut data = vec![0u8; r.loc.len as usize];
            if r.kind == KIND_BLOB {
                old.read_exact_at(&mut data, r.loc.data_offset())?;
            }
            let mut st = self.lock();
            let copy = match r.kind {
                // Still the live version of the blob?
                KIND_BLOB => st.index.get(&r.name) == Some(&r.loc),
                // Still deleting a record in another pack?
                _ => r.target != id && st.packs.contains_key(&r.target),
            };
            if !copy {
                continue;
            }
            let rec = record(r.kind, &r.name, r.target, r.loc.mtime_ms, &[&data])?;
            let (pack, offset, file) = self.write(&mut st, &rec)?;
            if r.kind == KIND_BLOB {
                st.index.insert(
                    r.name.clone(),
                    Loc {
                        pack,
                        offset,
                        ..r.loc
                    },
                );
            } else if let Some(p) = st.packs.get_mut(&pack) {
                p.dead += rec.len() as u64;
            }
            if !st.moved_into.iter().any(|f| Arc::ptr_eq(f, &file)) {
                st.moved_into.push(file);
            }
        }
        Ok(())
    }
}

impl State {
    fn add_dead(&mut self, loc: &Loc) {
        if let Some(p) = self.packs.get_mut(&loc.pack) {
            p.dead += loc.record_len();
        }
    }
}
