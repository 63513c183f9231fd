//! The queue log: message bodies of named queues (and subscriptions' replayed dead letters) in
//! append-only segment files, with an in-memory index; sled keeps dead letters, metadata and
//! topics.
//!
//! ```text
//! <bus dir>/queue-log/00000000000000000001.log   sealed (read-only, deleted once dead)
//!                     00000000000000000002.log   active: appends go here
//! ```
//!
//! A send appends a `Put` record ([`crate::frame`]) to the active segment's in-memory buffer
//! and returns at once; the flusher thread ([`crate::commit`]) writes every buffer with one
//! `write` per segment and makes it durable with one `fdatasync` per segment, so a send costs a
//! buffered append and a share of one `fdatasync`. An acknowledgement appends a `Remove`
//! record; a failed attempt appends a new `Put` with the new attempt count (a later `Put` of an
//! id replaces the earlier one).
//!
//! The index maps each live message (destination, id) to where its latest `Put` is. Opening
//! replays the segments in order: `Put` indexes, `Remove` unindexes. Every segment is read up
//! to its first frame that does not check out (torn by a crash or never written): nothing after
//! it was acknowledged, since an acknowledgement waits for an `fdatasync` that covers every
//! earlier byte. Appends never go to a segment that existed at open: the log starts a new one,
//! so a torn tail is never followed by new records.
//!
//! A segment is sealed once it is full (its file's prepared size, see [`crate::spare`], at most
//! `segment_bytes`); sealed segments are deleted and compacted oldest first (see
//! [`crate::compact`]).

use std::collections::{BTreeMap, HashMap};
use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use crate::error::BusError;
use crate::frame::{self, Kind, Next};
use crate::spare::{SPARE, SPARE_TMP, Spare};
use crate::store::Corrupt;

/// Size at which the active segment is sealed and a new one started.
pub(crate) const SEGMENT_BYTES: u64 = 16 << 20;
/// The active segment's buffer keeps its allocation between flushes up to this size.
const KEEP_BUFFER: usize = 4 << 20;
/// The log's directory inside the bus directory.
const DIR: &str = "queue-log";
const SUFFIX: &str = ".log";

/// Where a message's latest `Put` frame is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Loc {
    pub seg: u64,
    pub offset: u64,
    pub len: u32,
}

/// One segment file.
pub(crate) struct Segment {
    /// Opened (or created) by the flusher on its first write.
    pub file: Option<Arc<File>>,
    /// Bytes in the file: valid frames only, for a segment that existed at open.
    pub written: u64,
    /// Appended bytes not written yet; they belong at offset `written`.
    pub buf: Vec<u8>,
    /// The segment is sealed once it holds this many bytes.
    pub capacity: u64,
    /// Written but not fsynced yet.
    pub unsynced: bool,
    /// Created by this process; its directory entry is not known to be durable yet.
    pub new_file: bool,
    /// Indexed messages whose latest `Put` is in this segment, and their frames' bytes.
    pub live: u64,
    pub live_bytes: u64,
    /// The log position after the last record that replaced or removed one of this segment's
    /// messages: the segment may be deleted only once that record is durable.
    pub killed: u64,
}

impl Segment {
    fn new(file: Option<Arc<File>>, written: u64, capacity: u64) -> Self {
        Self {
            file,
            written,
            buf: Vec::new(),
            capacity,
            unsynced: false,
            new_file: false,
            live: 0,
            live_bytes: 0,
            killed: 0,
        }
    }

    /// Bytes written and buffered.
    pub fn size(&self) -> u64 {
        self.written + self.buf.len() as u64
    }
}

/// The log's view of one queue.
#[derive(Default)]
pub(crate) struct QueueIndex {
    pub live: HashMap<u64, Loc>,
    /// The highest id the log has seen for the queue (put or removed).
    pub max_id: u64,
    /// The next id recorded in the queue's sled meta key by the log (see `compact`).
    pub persisted: u64,
}

/// Everything behind the log's lock.
pub(crate) struct State {
    pub segments: BTreeMap<u64, Segment>,
    /// The segment appends go to; always in `segments`.
    pub active: u64,
    pub queues: HashMap<Vec<u8>, QueueIndex>,
    /// Bytes appended since the log was opened (a position in the log).
    pub lsn: u64,
    /// Every byte appended up to this position is durable.
    pub durable: u64,
    pub segment_bytes: u64,
    /// A prepared file for the next segment (see [`crate::spare`]).
    pub spare: Option<Spare>,
}

/// Why a message could not be read.
#[derive(Debug)]
pub(crate) enum ReadError {
    /// Reading the file failed (may succeed later).
    Io(String),
    /// The stored frame does not check out; the bytes found, for the dead letter.
    Corrupt(Vec<u8>, Corrupt),
}

/// The queue log. Appends and the index live behind one lock; file IO happens outside it,
/// except the flusher's `write` of the buffers (a copy into the page cache) and renames.
pub(crate) struct Log {
    pub(crate) dir: PathBuf,
    state: Mutex<State>,
    /// The spare preparer's thread, woken when the spare is taken.
    pub(crate) preparer: Mutex<Option<std::thread::Thread>>,
}

/// The path of segment `no` in `dir`.
pub(crate) fn segment_path(dir: &Path, no: u64) -> PathBuf {
    dir.join(format!("{no:020}{SUFFIX}"))
}

/// fsyncs a directory, making the creation or removal of its entries durable.
pub(crate) fn sync_dir(dir: &Path) -> std::io::Result<()> {
    File::open(dir)?.sync_all()
}

impl Log {
    /// Opens the log in `bus_dir` and replays its segments. `floor` is the highest segment
    /// number ever deleted (new segments are numbered above it and above every file).
    pub(crate) fn open(bus_dir: &Path, segment_bytes: u64, floor: u64) -> Result<Log, BusError> {
        let dir = bus_dir.join(DIR);
        let io =
            |what: &str, e: std::io::Error| BusError::Storage(format!("queue log: {what}: {e}"));
        if !dir.exists() {
            std::fs::create_dir_all(&dir).map_err(|e| io("creating its directory", e))?;
            sync_dir(bus_dir).map_err(|e| io("syncing the bus directory", e))?;
        }
        let mut numbers = Vec::new();
        for entry in std::fs::read_dir(&dir).map_err(|e| io("listing", e))? {
            let name = entry.map_err(|e| io("listing", e))?.file_name();
            let parsed = name
                .to_str()
                .and_then(|n| n.strip_suffix(SUFFIX))
                .and_then(|n| n.parse::<u64>().ok());
            match parsed {
                Some(no) => numbers.push(no),
                None if name == SPARE || name == SPARE_TMP => {}
                None => tracing::warn!(?name, "ignoring a stray file in the queue log"),
            }
        }
        numbers.sort_unstable();
        let mut state = State {
            segments: BTreeMap::new(),
            active: 0,
            queues: HashMap::new(),
            lsn: 0,
            durable: 0,
            segment_bytes: segment_bytes.max(1),
            spare: None,
        };
        for no in numbers {
            let path = segment_path(&dir, no);
            let bytes = std::fs::read(&path).map_err(|e| io("reading a segment", e))?;
            let file = File::open(&path).map_err(|e| io("opening a segment", e))?;
            // What a killed process wrote may still be only in the page cache; replaying it
            // treats it as durable (a later segment deletion may rely on it), so make it so.
            file.sync_data().map_err(|e| io("syncing a segment", e))?;
            state
                .segments
                .insert(no, Segment::new(Some(Arc::new(file)), 0, 0));
            let end = state.replay(no, &bytes);
            if let Some(seg) = state.segments.get_mut(&no) {
                seg.written = end as u64;
            }
            // Zeroes or stale records of a recycled file follow the records; after a power
            // loss also a torn record.
            tracing::debug!(
                segment = no,
                valid = end,
                size = bytes.len(),
                "replayed a queue log segment"
            );
        }
        let last = state.segments.keys().next_back().copied().unwrap_or(0);
        state.active = last.max(floor) + 1;
        state
            .segments
            .insert(state.active, Segment::new(None, 0, state.segment_bytes));
        let log = Log {
            dir,
            state: Mutex::new(state),
            preparer: Mutex::new(None),
        };
        log.init_spare()
            .map_err(|e| io("preparing a spare segment", e))?;
        Ok(log)
    }

    pub(crate) fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Appends message `id` of the queue with destination `dest`; `write_record` appends its
    /// message record. Durable after the next flush.
    pub(crate) fn put(&self, dest: &[u8], id: u64, write_record: impl FnOnce(&mut Vec<u8>)) {
        self.lock().put(dest, id, write_record);
    }

    /// Appends the removal of message `id`; returns whether it was stored.
    pub(crate) fn remove(&self, dest: &[u8], id: u64) -> bool {
        self.lock().remove(dest, id)
    }

    /// Every queue the log knows: destination, highest id seen, live ids (sorted).
    pub(crate) fn queues(&self) -> Vec<(Vec<u8>, u64, Vec<u64>)> {
        let state = self.lock();
        state
            .queues
            .iter()
            .map(|(dest, q)| {
                let mut ids: Vec<u64> = q.live.keys().copied().collect();
                ids.sort_unstable();
                (dest.clone(), q.max_id, ids)
            })
            .collect()
    }

    /// The message record of message `id`, or `None` if it is not stored.
    pub(crate) fn read(&self, dest: &[u8], id: u64) -> Result<Option<Vec<u8>>, ReadError> {
        let (loc, frame, file) = {
            let state = self.lock();
            let Some(loc) = state
                .queues
                .get(dest)
                .and_then(|q| q.live.get(&id))
                .copied()
            else {
                return Ok(None);
            };
            let seg = state
                .segments
                .get(&loc.seg)
                .ok_or_else(|| ReadError::Io(format!("segment {} is gone", loc.seg)))?;
            if loc.offset >= seg.written {
                let start = (loc.offset - seg.written) as usize;
                let bytes = seg
                    .buf
                    .get(start..start + loc.len as usize)
                    .map(<[u8]>::to_vec);
                (loc, bytes, None)
            } else {
                (loc, None, seg.file.clone())
            }
        };
        let bytes = match (frame, file) {
            (Some(bytes), _) => bytes,
            (None, Some(file)) => {
                let mut bytes = vec![0; loc.len as usize];
                file.read_exact_at(&mut bytes, loc.offset)
                    .map_err(|e| ReadError::Io(format!("reading segment {}: {e}", loc.seg)))?;
                bytes
            }
            (None, None) => return Err(ReadError::Io("a buffered record moved".into())),
        };
        match frame::next(&bytes, loc.seg) {
            Next::Frame(_, Ok(r)) if r.kind == Kind::Put && r.dest == dest && r.id == id => {
                Ok(Some(r.record.to_vec()))
            }
            Next::Frame(_, Ok(_)) => Err(ReadError::Corrupt(
                bytes,
                Corrupt("the log record is another message's".into()),
            )),
            Next::Frame(_, Err(e)) => Err(ReadError::Corrupt(bytes, e)),
            Next::End => {
                let found = bytes.get(frame::HEADER..).unwrap_or_default().to_vec();
                Err(ReadError::Corrupt(
                    found,
                    Corrupt("the log record fails its checksum".into()),
                ))
            }
        }
    }

    /// Writes every buffered append and fsyncs every segment written since the last flush
    /// (and the directory, for new segment files). Called by the flusher thread only (and at
    /// open, before it starts).
    pub(crate) fn flush(&self) -> Result<(), String> {
        let (files, new_files, lsn) = {
            let mut guard = self.lock();
            let state = &mut *guard;
            let lsn = state.lsn;
            let active = state.active;
            let pending: Vec<u64> = state
                .segments
                .iter()
                .filter(|(_, s)| !s.buf.is_empty())
                .map(|(no, _)| *no)
                .collect();
            for no in pending {
                let needs_file = state.segments.get(&no).is_some_and(|s| s.file.is_none());
                let created = match needs_file {
                    true => Some(self.file_for(state, no)?),
                    false => None,
                };
                let Some(seg) = state.segments.get_mut(&no) else {
                    continue;
                };
                if let Some((file, capacity)) = created {
                    seg.file = Some(file);
                    seg.new_file = true;
                    seg.capacity = capacity.min(state.segment_bytes);
                }
                let Some(file) = seg.file.clone() else {
                    continue;
                };
                file.write_all_at(&seg.buf, seg.written)
                    .map_err(|e| format!("writing queue log segment {no}: {e}"))?;
                seg.written += seg.buf.len() as u64;
                seg.unsynced = true;
                if no == active && seg.buf.capacity() <= KEEP_BUFFER {
                    seg.buf.clear();
                } else {
                    seg.buf = Vec::new();
                }
            }
            state.roll();
            let files: Vec<(u64, Arc<File>)> = state
                .segments
                .iter()
                .filter(|(_, s)| s.unsynced)
                .filter_map(|(no, s)| Some((*no, s.file.clone()?)))
                .collect();
            let new_files = state.segments.values().any(|s| s.new_file);
            (files, new_files, lsn)
        };
        for (no, file) in &files {
            file.sync_data()
                .map_err(|e| format!("fdatasync of queue log segment {no}: {e}"))?;
        }
        if new_files {
            sync_dir(&self.dir).map_err(|e| format!("fsync of the queue log directory: {e}"))?;
        }
        let mut state = self.lock();
        for (no, _) in files {
            if let Some(seg) = state.segments.get_mut(&no) {
                seg.unsynced = false;
            }
        }
        if new_files {
            for seg in state.segments.values_mut() {
                // Only the flusher creates files, so every new one was covered.
                seg.new_file = false;
            }
        }
        state.durable = state.durable.max(lsn);
        Ok(())
    }
}

impl State {
    /// Appends a `Put` and indexes it.
    pub(crate) fn put(&mut self, dest: &[u8], id: u64, write_record: impl FnOnce(&mut Vec<u8>)) {
        let no = self.active;
        let Some(seg) = self.segments.get_mut(&no) else {
            return;
        };
        let offset = seg.size();
        let len = frame::encode(&mut seg.buf, no, Kind::Put, dest, id, write_record);
        seg.live += 1;
        seg.live_bytes += len as u64;
        self.lsn += len as u64;
        let loc = Loc {
            seg: no,
            offset,
            len: len as u32,
        };
        let old = self.index(dest, id).and_then(|q| q.live.insert(id, loc));
        if let Some(old) = old {
            self.kill(old);
        }
        self.roll();
    }

    /// Appends a `Remove` of an indexed message and unindexes it.
    pub(crate) fn remove(&mut self, dest: &[u8], id: u64) -> bool {
        let Some(old) = self.queues.get_mut(dest).and_then(|q| q.live.remove(&id)) else {
            return false;
        };
        let no = self.active;
        if let Some(seg) = self.segments.get_mut(&no) {
            let len = frame::encode(&mut seg.buf, no, Kind::Remove, dest, id, |_| {});
            self.lsn += len as u64;
        }
        self.kill(old);
        self.roll();
        true
    }

    /// The index of `dest` (created if new), with `id` counted as seen.
    fn index(&mut self, dest: &[u8], id: u64) -> Option<&mut QueueIndex> {
        if !self.queues.contains_key(dest) {
            self.queues.insert(dest.to_vec(), QueueIndex::default());
        }
        let q = self.queues.get_mut(dest)?;
        q.max_id = q.max_id.max(id);
        Some(q)
    }

    /// Accounts that the message at `old` was replaced or removed (at the current position).
    fn kill(&mut self, old: Loc) {
        let lsn = self.lsn;
        if let Some(seg) = self.segments.get_mut(&old.seg) {
            seg.live = seg.live.saturating_sub(1);
            seg.live_bytes = seg.live_bytes.saturating_sub(old.len as u64);
            seg.killed = seg.killed.max(lsn);
        }
    }

    /// Seals the active segment once it is full.
    fn roll(&mut self) {
        let full = self
            .segments
            .get(&self.active)
            .is_some_and(|s| s.size() >= s.capacity);
        if full {
            self.active += 1;
            self.segments
                .insert(self.active, Segment::new(None, 0, self.segment_bytes));
        }
    }

    /// Applies the frames of segment `no` (read at open); returns where its valid frames end.
    fn replay(&mut self, no: u64, bytes: &[u8]) -> usize {
        let mut at = 0;
        while let Next::Frame(len, record) = frame::next(&bytes[at..], no) {
            match record {
                Ok(r) => {
                    let loc = Loc {
                        seg: no,
                        offset: at as u64,
                        len: len as u32,
                    };
                    let old = self.index(r.dest, r.id).and_then(|q| match r.kind {
                        Kind::Put => q.live.insert(r.id, loc),
                        Kind::Remove => q.live.remove(&r.id),
                    });
                    if r.kind == Kind::Put
                        && let Some(seg) = self.segments.get_mut(&no)
                    {
                        seg.live += 1;
                        seg.live_bytes += len as u64;
                    }
                    if let Some(old) = old {
                        self.kill(old);
                    }
                }
                Err(e) => {
                    tracing::warn!(segment = no, offset = at, error = %e, "skipping a corrupt queue log record");
                }
            }
            at += len;
        }
        at
    }
}
