//! On-disk cache of compiled components.
//!
//! Entries are keyed by the component's sha256 digest and the engine's
//! [`wasmtime::Engine::precompile_compatibility_hash`], written atomically
//! (temporary file, `fsync`, `rename`) into a directory only this user can
//! write. Precompiled code is loaded from nowhere else.

use crate::digest::Digest;
use sha2::{Digest as _, Sha256};
use std::fs;
use std::hash::{Hash, Hasher};
use std::io::{self, Write};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use wasmtime::component::Component;

/// A directory of compiled components for one engine configuration.
pub struct CompileCache {
    dir: PathBuf,
    engine_key: String,
}

impl CompileCache {
    /// Opens (creating with mode 0700) the cache directory. Refuses a
    /// directory that another user owns or that others may write to, since
    /// code loaded from it runs unchecked.
    pub fn open(dir: &Path, engine: &wasmtime::Engine) -> io::Result<Self> {
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)?;
        let meta = fs::symlink_metadata(dir)?;
        if !meta.is_dir() {
            return Err(io::Error::other("not a directory"));
        }
        if meta.uid() != rustix::process::geteuid().as_raw() {
            return Err(io::Error::other("owned by another user"));
        }
        if meta.permissions().mode() & 0o022 != 0 {
            return Err(io::Error::other("writable by group or others"));
        }
        Ok(CompileCache {
            dir: dir.to_path_buf(),
            engine_key: engine_key(engine),
        })
    }

    /// The file an entry lives in.
    fn entry_path(&self, digest: &Digest) -> PathBuf {
        self.dir
            .join(format!("{}-{}.cwasm", digest.hex(), self.engine_key))
    }

    /// Loads a previously compiled component, if present and usable. A
    /// corrupt or incompatible entry is removed and reported as a miss.
    pub fn load(&self, engine: &wasmtime::Engine, digest: &Digest) -> Option<Component> {
        let path = self.entry_path(digest);
        let meta = fs::symlink_metadata(&path).ok()?;
        let own = meta.uid() == rustix::process::geteuid().as_raw();
        if !meta.is_file() || !own || meta.permissions().mode() & 0o022 != 0 {
            tracing::warn!(path = %path.display(), "ignoring suspicious compile cache entry");
            return None;
        }
        // SAFETY: `Component::deserialize_file` requires that the file holds
        // bytes produced by `Component::serialize` of a compatible engine and
        // that it is not modified while mapped. The file sits in a directory
        // that `open` verified is owned by this user and not writable by
        // anyone else, it is a regular file owned by this user (checked just
        // above, symlinks refused), and it was written only by `store` below,
        // which renames a complete, fsynced serialization into place and never
        // rewrites an existing file. Its name carries the engine's
        // compatibility hash, and wasmtime itself re-checks the header for
        // version and configuration compatibility before using the code.
        match unsafe { Component::deserialize_file(engine, &path) } {
            Ok(component) => Some(component),
            Err(err) => {
                tracing::warn!(path = %path.display(), error = %format!("{err:#}"), "discarding unusable compile cache entry");
                let _ = fs::remove_file(&path);
                None
            }
        }
    }

    /// Stores a compiled component atomically; an existing entry is kept.
    pub fn store(&self, digest: &Digest, component: &Component) -> io::Result<()> {
        let path = self.entry_path(digest);
        if path.exists() {
            return Ok(());
        }
        let bytes = component.serialize().map_err(io::Error::other)?;
        let tmp = self.dir.join(format!(
            ".{}-{}.{}.tmp",
            digest.hex(),
            self.engine_key,
            std::process::id()
        ));
        let result = (|| {
            let mut file = fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(&tmp)?;
            file.write_all(&bytes)?;
            file.sync_all()?;
            fs::rename(&tmp, &path)?;
            fs::File::open(&self.dir)?.sync_all()
        })();
        if result.is_err() {
            let _ = fs::remove_file(&tmp);
        }
        result
    }
}

/// A short, stable string of the engine's precompile compatibility hash.
fn engine_key(engine: &wasmtime::Engine) -> String {
    struct Sha256Hasher(Sha256);
    impl Hasher for Sha256Hasher {
        fn write(&mut self, bytes: &[u8]) {
            self.0.update(bytes);
        }
        fn finish(&self) -> u64 {
            // Only `write` is used; the full digest is read below.
            0
        }
    }
    let mut hasher = Sha256Hasher(Sha256::new());
    engine.precompile_compatibility_hash().hash(&mut hasher);
    hex::encode(&hasher.0.finalize()[..12])
}

#[cfg(test)]
mod tests {
    use super::*;

    const COMPONENT_WAT: &str = r#"(component (core module (func (export "f"))))"#;

    #[test]
    fn stores_and_loads_by_digest_and_engine() {
        let dir = tempfile::tempdir().expect("tempdir");
        let engine = wasmtime::Engine::default();
        let cache = CompileCache::open(&dir.path().join("c"), &engine).expect("open");
        let digest = Digest::of(COMPONENT_WAT.as_bytes());
        assert!(cache.load(&engine, &digest).is_none());
        let component = Component::new(&engine, COMPONENT_WAT).expect("compile");
        cache.store(&digest, &component).expect("store");
        assert!(cache.load(&engine, &digest).is_some());
        // A different digest misses.
        assert!(cache.load(&engine, &Digest::of(b"other")).is_none());
        // Exactly one entry, no temporary files left behind.
        let names: Vec<_> = fs::read_dir(dir.path().join("c"))
            .expect("read_dir")
            .map(|e| e.expect("entry").file_name())
            .collect();
        assert_eq!(names.len(), 1, "{names:?}");
    }

    #[test]
    fn a_corrupt_entry_is_discarded() {
        let dir = tempfile::tempdir().expect("tempdir");
        let engine = wasmtime::Engine::default();
        let cache = CompileCache::open(dir.path(), &engine).expect("open");
        let digest = Digest::of(b"x");
        let path = cache.entry_path(&digest);
        fs::write(&path, b"not compiled code").expect("write");
        assert!(cache.load(&engine, &digest).is_none());
        assert!(!path.exists());
    }

    #[test]
    fn refuses_a_world_writable_directory() {
        let dir = tempfile::tempdir().expect("tempdir");
        fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o777)).expect("chmod");
        let engine = wasmtime::Engine::default();
        assert!(CompileCache::open(dir.path(), &engine).is_err());
    }
}
