//! The bus's sled tree, wrapped so that every write also tells the flusher that sled has
//! something to flush: a flush cycle in which only the queue log was written (plain sends and
//! acknowledgements) then skips sled's flush and `fdatasync` altogether.
//!
//! A writer writes, then (inside the wrapper) sets the dirty flag, then marks its write in the
//! group commit; the flusher reads the written generation, then takes the flag. So every write
//! a flush claims to cover set the flag before the flusher took it.

use std::ops::RangeBounds;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use sled::IVec;

/// A sled tree whose writes set a shared dirty flag.
#[derive(Clone)]
pub(crate) struct Tree {
    tree: sled::Tree,
    dirty: Arc<AtomicBool>,
}

impl Tree {
    pub(crate) fn new(tree: sled::Tree, dirty: Arc<AtomicBool>) -> Self {
        Self { tree, dirty }
    }

    fn touched(&self) {
        self.dirty.store(true, Ordering::SeqCst);
    }

    pub(crate) fn insert<K: AsRef<[u8]>, V: Into<IVec>>(
        &self,
        key: K,
        value: V,
    ) -> sled::Result<Option<IVec>> {
        let r = self.tree.insert(key, value);
        self.touched();
        r
    }

    pub(crate) fn remove<K: AsRef<[u8]>>(&self, key: K) -> sled::Result<Option<IVec>> {
        let r = self.tree.remove(key);
        self.touched();
        r
    }

    pub(crate) fn apply_batch(&self, batch: sled::Batch) -> sled::Result<()> {
        let r = self.tree.apply_batch(batch);
        self.touched();
        r
    }

    /// Sets `key` to the result of `f` on its current value, atomically.
    pub(crate) fn update_and_fetch<K, V, F>(&self, key: K, f: F) -> sled::Result<Option<IVec>>
    where
        K: AsRef<[u8]>,
        F: FnMut(Option<&[u8]>) -> Option<V>,
        V: Into<IVec>,
    {
        let r = self.tree.update_and_fetch(key, f);
        self.touched();
        r
    }

    pub(crate) fn get<K: AsRef<[u8]>>(&self, key: K) -> sled::Result<Option<IVec>> {
        self.tree.get(key)
    }

    pub(crate) fn iter(&self) -> sled::Iter {
        self.tree.iter()
    }

    pub(crate) fn range<K: AsRef<[u8]>, R: RangeBounds<K>>(&self, range: R) -> sled::Iter {
        self.tree.range(range)
    }

    pub(crate) fn scan_prefix<P: AsRef<[u8]>>(&self, prefix: P) -> sled::Iter {
        self.tree.scan_prefix(prefix)
    }
}
