//! Segment files prepared ahead of time, so the active segment of the queue log is written
//! by overwriting, not by appending.
//!
//! Appending to a file makes every `fdatasync` also commit the file's new size to the
//! filesystem's journal; overwriting blocks that are already allocated and written needs only
//! the data flush. On the benchmark machine (ext4 on a virtual disk) that halves the latency of
//! an `fdatasync`, which bounds the group-commit cycle (BENCHMARKS.md).
//!
//! So the log keeps one *spare* file, `queue-log/spare`: either zero-filled by the preparer
//! thread (created and written as `spare.tmp`, synced, then renamed), or the file of a deleted
//! segment, recycled. When the flusher first writes to a new segment it renames the spare to
//! the segment's name (the directory is fsynced with that flush) and seals the segment once the
//! spare's size is used up. Stale records in a recycled file, or zeroes, never pass for the new
//! segment's records: checksums cover the segment number ([`crate::frame`]). Without a spare
//! ready, the flusher creates a plain file and seals it after [`PLAIN_CAPACITY`] bytes.
//!
//! Opening a bus adopts an existing spare, or writes a small first one ([`FIRST_SPARE`])
//! synchronously; spares then grow fourfold up to the segment size.

use std::fs::{File, OpenOptions};
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use crate::segments::{Log, State, segment_path};

/// The spare's name in the log directory.
pub(crate) const SPARE: &str = "spare";
/// The name of a spare being written.
pub(crate) const SPARE_TMP: &str = "spare.tmp";
/// Size of the spare written when a bus opens without one.
const FIRST_SPARE: u64 = 1 << 20;
/// Capacity of a segment created without a spare.
pub(crate) const PLAIN_CAPACITY: u64 = 1 << 20;
/// Zeroes are written in chunks of this size (checking for a stop in between).
const CHUNK: usize = 1 << 20;

/// A prepared file.
pub(crate) struct Spare {
    pub file: Arc<File>,
    pub size: u64,
}

/// Writes a zero-filled, synced file of `size` bytes as `dir/spare.tmp`; `None` if `stop` was
/// set meanwhile.
fn zero_filled(dir: &Path, size: u64, stop: &AtomicBool) -> std::io::Result<Option<File>> {
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(true)
        .open(dir.join(SPARE_TMP))?;
    let zeroes = vec![0u8; CHUNK];
    let mut at = 0u64;
    while at < size {
        if stop.load(Ordering::Acquire) {
            return Ok(None);
        }
        let n = (size - at).min(CHUNK as u64) as usize;
        file.write_all_at(&zeroes[..n], at)?;
        at += n as u64;
    }
    file.sync_all()?;
    Ok(Some(file))
}

impl Log {
    /// At open: adopts `spare` if there is one, or writes a first one.
    pub(crate) fn init_spare(&self) -> std::io::Result<()> {
        let _ = std::fs::remove_file(self.dir.join(SPARE_TMP));
        let path = self.dir.join(SPARE);
        let file = match OpenOptions::new().read(true).write(true).open(&path) {
            Ok(file) => file,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let size = FIRST_SPARE.min(self.lock().segment_bytes);
                let Some(file) = zero_filled(&self.dir, size, &AtomicBool::new(false))? else {
                    return Ok(());
                };
                std::fs::rename(self.dir.join(SPARE_TMP), &path)?;
                file
            }
            Err(e) => return Err(e),
        };
        let size = file.metadata()?.len();
        self.lock().spare = Some(Spare {
            file: Arc::new(file),
            size,
        });
        Ok(())
    }

    /// Makes the file of deleted segment `no` (of `size` bytes) the spare if none is waiting
    /// and it is big enough; returns whether it did (the caller then does not delete it).
    pub(crate) fn recycle(&self, no: u64, size: u64) -> bool {
        let mut state = self.lock();
        if state.spare.is_some() || size < state.segment_bytes {
            return false;
        }
        let path = self.dir.join(SPARE);
        if std::fs::rename(segment_path(&self.dir, no), &path).is_err() {
            return false;
        }
        match OpenOptions::new().read(true).write(true).open(&path) {
            Ok(file) => {
                state.spare = Some(Spare {
                    file: Arc::new(file),
                    size,
                });
                true
            }
            // Renamed, but unusable: gone from the log either way.
            Err(_) => true,
        }
    }

    /// Wakes the preparer (a spare was taken).
    fn wake_preparer(&self) {
        if let Some(thread) = self
            .preparer
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .as_ref()
        {
            thread.unpark();
        }
    }

    /// The file for new segment `no`: the spare, renamed (with its size as the segment's
    /// capacity), or else a new plain file. Called by the flusher with the lock held.
    pub(crate) fn file_for(&self, state: &mut State, no: u64) -> Result<(Arc<File>, u64), String> {
        let path = segment_path(&self.dir, no);
        if let Some(spare) = state.spare.take() {
            self.wake_preparer();
            match std::fs::rename(self.dir.join(SPARE), &path) {
                Ok(()) => return Ok((spare.file, spare.size)),
                Err(e) => tracing::warn!(error = %e, "could not use the spare queue log segment"),
            }
        }
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(&path)
            .map_err(|e| format!("creating queue log segment {no}: {e}"))?;
        Ok((Arc::new(file), PLAIN_CAPACITY))
    }
}

/// The thread that writes spares; stopped and joined on drop.
pub(crate) struct Preparer {
    thread: Option<JoinHandle<()>>,
    stop: Arc<AtomicBool>,
}

impl Preparer {
    pub(crate) fn start(log: Arc<Log>) -> std::io::Result<Self> {
        let stop = Arc::new(AtomicBool::new(false));
        let thread = std::thread::Builder::new()
            .name("bus-spares".into())
            .spawn({
                let (log, stop) = (log.clone(), stop.clone());
                move || prepare(&log, &stop)
            })?;
        *log.preparer.lock().unwrap_or_else(|p| p.into_inner()) = Some(thread.thread().clone());
        Ok(Self {
            thread: Some(thread),
            stop,
        })
    }
}

impl Drop for Preparer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Release);
        if let Some(thread) = self.thread.take() {
            thread.thread().unpark();
            if thread.join().is_err() {
                tracing::error!("the queue log's spare preparer panicked");
            }
        }
    }
}

fn prepare(log: &Log, stop: &AtomicBool) {
    let segment_bytes = log.lock().segment_bytes;
    let mut size = (FIRST_SPARE * 4).min(segment_bytes);
    while !stop.load(Ordering::Acquire) {
        if log.lock().spare.is_some() {
            std::thread::park_timeout(Duration::from_secs(1));
            continue;
        }
        match zero_filled(&log.dir, size, stop) {
            Ok(Some(file)) => {
                let mut state = log.lock();
                let renamed = state.spare.is_none()
                    && std::fs::rename(log.dir.join(SPARE_TMP), log.dir.join(SPARE)).is_ok();
                if renamed {
                    state.spare = Some(Spare {
                        file: Arc::new(file),
                        size,
                    });
                    size = (size * 4).min(segment_bytes);
                } else {
                    drop(state);
                    let _ = std::fs::remove_file(log.dir.join(SPARE_TMP));
                }
            }
            Ok(None) => {
                let _ = std::fs::remove_file(log.dir.join(SPARE_TMP));
            }
            Err(e) => {
                tracing::warn!(error = %e, "preparing a spare queue log segment failed");
                let _ = std::fs::remove_file(log.dir.join(SPARE_TMP));
                std::thread::park_timeout(Duration::from_secs(1));
            }
        }
    }
}
