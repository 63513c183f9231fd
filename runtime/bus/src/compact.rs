//! Reclaiming the queue log's space ([`crate::segments`]), oldest segment first. The flusher
//! thread runs [`Log::maintain`] after its flushes.
//!
//! - **Deletion**: the oldest sealed segment is deleted once none of its messages is live and
//!   the records that replaced or removed them are durable. Strictly oldest first: a `Remove`
//!   (or replacing `Put`) only ever refers to a `Put` in its own or an older segment, so once
//!   every older segment is gone, nothing a deleted segment held is needed to read the rest.
//! - **Compaction**: the oldest sealed segment is evacuated — its live messages appended again
//!   to the active segment, verbatim — when at most a quarter of it is live, or when the sealed
//!   segments hold more than twice the live bytes plus two segments (a long backlog at the
//!   head of the log would otherwise pin everything behind it). It is then deleted as above
//!   once the copies are durable.
//!
//! A deleted segment's file becomes the spare (see [`crate::spare`]) if none is waiting.
//!
//! Ids are never reused: deleting segments forgets `Put` and `Remove` records, so before
//! deleting, the next id of every queue the log has seen is recorded in its sled meta key (as
//! the maximum with what is there), with the highest deleted segment number, and sled is
//! flushed.

use std::os::unix::fs::FileExt;

use crate::frame::{self, Kind, Next};
use crate::segments::{Loc, Log, segment_path, sync_dir};

/// What has to be durable in sled before segments are deleted: the next id of each queue
/// (by destination), and the highest deleted segment number.
pub(crate) type Persist<'a> = &'a mut dyn FnMut(&[(Vec<u8>, u64)], u64) -> Result<(), String>;

impl Log {
    /// Deletes the dead segments at the head of the log, then compacts the oldest one if it
    /// is worth it. Returns whether compaction appended copies (to be flushed).
    pub(crate) fn maintain(&self, persist: Persist<'_>) -> Result<bool, String> {
        self.delete_dead(persist)?;
        self.compact_oldest()
    }

    /// Deletes the oldest sealed segments while they are dead.
    fn delete_dead(&self, persist: Persist<'_>) -> Result<(), String> {
        let (doomed, metas) = {
            let state = self.lock();
            let doomed: Vec<u64> = state
                .segments
                .range(..state.active)
                .take_while(|(_, s)| {
                    s.live == 0 && s.killed <= state.durable && s.buf.is_empty() && !s.unsynced
                })
                .map(|(no, _)| *no)
                .collect();
            if doomed.is_empty() {
                return Ok(());
            }
            let metas: Vec<(Vec<u8>, u64)> = state
                .queues
                .iter()
                .filter(|(_, q)| q.max_id.saturating_add(1) > q.persisted)
                .map(|(dest, q)| (dest.clone(), q.max_id.saturating_add(1)))
                .collect();
            (doomed, metas)
        };
        let floor = doomed.iter().copied().max().unwrap_or(0);
        persist(&metas, floor)?;
        let mut deleted = Vec::new();
        let mut failed = None;
        for no in doomed {
            let size = std::fs::metadata(segment_path(&self.dir, no)).map_or(0, |m| m.len());
            if self.recycle(no, size) {
                deleted.push(no);
                continue;
            }
            match std::fs::remove_file(segment_path(&self.dir, no)) {
                Ok(()) => deleted.push(no),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => deleted.push(no),
                Err(e) => {
                    failed = Some(format!("deleting queue log segment {no}: {e}"));
                    break;
                }
            }
        }
        let synced = sync_dir(&self.dir);
        let mut state = self.lock();
        for (dest, next) in metas {
            if let Some(q) = state.queues.get_mut(&dest) {
                q.persisted = q.persisted.max(next);
            }
        }
        for no in &deleted {
            state.segments.remove(no);
        }
        // Forget queues with nothing left in the log and their next id recorded.
        state
            .queues
            .retain(|_, q| !q.live.is_empty() || q.max_id.saturating_add(1) > q.persisted);
        drop(state);
        if !deleted.is_empty() {
            tracing::debug!(segments = ?deleted, "deleted dead queue log segments");
        }
        match (failed, synced) {
            (Some(e), _) => Err(e),
            (None, Err(e)) => Err(format!("fsync of the queue log directory: {e}")),
            (None, Ok(())) => Ok(()),
        }
    }

    /// Copies the live messages of the oldest sealed segment to the active one if it is
    /// sparse, or if the log is bloated.
    fn compact_oldest(&self) -> Result<bool, String> {
        let (no, file, size) = {
            let state = self.lock();
            let Some((&no, oldest)) = state.segments.range(..state.active).next() else {
                return Ok(false);
            };
            if oldest.live == 0 || !oldest.buf.is_empty() || oldest.unsynced {
                // Dead (deleted once durable), or not completely written yet.
                return Ok(false);
            }
            let (sealed, live) = state
                .segments
                .range(..state.active)
                .fold((0u64, 0u64), |(s, l), (_, seg)| {
                    (s + seg.written, l + seg.live_bytes)
                });
            let sparse = oldest.live_bytes * 4 <= oldest.written;
            let bloated = sealed > 2 * live + 2 * state.segment_bytes;
            if !(sparse || bloated) {
                return Ok(false);
            }
            let Some(file) = oldest.file.clone() else {
                return Ok(false);
            };
            (no, file, oldest.written)
        };
        let mut bytes = vec![0; size as usize];
        file.read_exact_at(&mut bytes, 0)
            .map_err(|e| format!("reading queue log segment {no} to compact it: {e}"))?;
        let mut state = self.lock();
        let (mut at, mut copied) = (0usize, 0u64);
        while let Next::Frame(len, record) = frame::next(&bytes[at..], no) {
            if let Ok(r) = record {
                let here = Loc {
                    seg: no,
                    offset: at as u64,
                    len: len as u32,
                };
                let live = state
                    .queues
                    .get(r.dest)
                    .and_then(|q| q.live.get(&r.id))
                    .is_some_and(|loc| *loc == here);
                if r.kind == Kind::Put && live {
                    state.put(r.dest, r.id, |out| out.extend_from_slice(r.record));
                    copied += 1;
                }
            }
            at += len;
        }
        let left = state.segments.get(&no).map_or(0, |s| s.live);
        drop(state);
        tracing::debug!(
            segment = no,
            copied,
            left,
            "compacted the oldest queue log segment"
        );
        Ok(copied > 0)
    }
}
