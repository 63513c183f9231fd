//! The package store: uploaded `.wasm` files on disk, named by digest.
//!
//! An upload streams into a private temporary file while its sha256 is
//! computed and its size capped; only a complete upload is fsynced and
//! renamed to `sha256-<hex>.wasm`, so a crash or a rejected upload never
//! leaves a half-written package visible. Storing the same bytes twice is a
//! no-op.
//!
//! In a cluster a package uploaded to one host is pulled by the others when
//! they need it: [`PackageStore::read`] of a digest that is not here asks
//! the store's [`PackageFetcher`] (peers, by digest), checks the bytes
//! against the digest and stores them like an upload.

use bytes::Bytes;
use cloudware_engine::Digest;
use futures::{Stream, StreamExt};
use sha2::{Digest as _, Sha256};
use std::io;
use std::path::{Path, PathBuf};
use tokio::io::AsyncWriteExt;

/// Why an upload was not stored.
#[derive(Debug, thiserror::Error)]
pub enum PutError {
    /// The upload exceeds the size cap.
    #[error("the package exceeds the size limit of {limit} bytes")]
    TooLarge {
        /// The cap, in bytes.
        limit: u64,
    },
    /// The upload ended before its declared length.
    #[error("the upload was truncated: got {received} of {declared} bytes")]
    Truncated {
        /// Bytes received.
        received: u64,
        /// Bytes announced.
        declared: u64,
    },
    /// Reading the upload failed.
    #[error("the upload failed: {0}")]
    Upload(String),
    /// Writing to disk failed.
    #[error("cannot store the package: {0}")]
    Io(#[from] io::Error),
}

/// A package on disk.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredPackage {
    /// Its content digest.
    pub digest: Digest,
    /// Its size in bytes.
    pub size: u64,
    /// Whether these bytes were already stored.
    pub existed: bool,
}

/// Where a host gets a package it does not have (its cluster peers).
pub trait PackageFetcher: Send + Sync + 'static {
    /// The bytes of `digest`, from wherever they can be found. The store
    /// checks them against the digest.
    fn fetch<'a>(&'a self, digest: &'a Digest)
    -> futures::future::BoxFuture<'a, io::Result<Bytes>>;
}

/// A directory of packages named by digest.
#[derive(Clone)]
pub struct PackageStore {
    dir: PathBuf,
    fetcher: std::sync::Arc<std::sync::OnceLock<std::sync::Arc<dyn PackageFetcher>>>,
}

impl std::fmt::Debug for PackageStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PackageStore")
            .field("dir", &self.dir)
            .field("fetcher", &self.fetcher.get().is_some())
            .finish()
    }
}

impl PackageStore {
    /// Opens (creating) the store in `dir` and removes temporary files left
    /// by interrupted uploads.
    pub fn open(dir: impl Into<PathBuf>) -> io::Result<Self> {
        let dir = dir.into();
        std::fs::create_dir_all(&dir)?;
        for entry in std::fs::read_dir(&dir)? {
            let entry = entry?;
            if entry.file_name().to_string_lossy().starts_with(".upload-") {
                std::fs::remove_file(entry.path())?;
            }
        }
        Ok(PackageStore {
            dir,
            fetcher: Default::default(),
        })
    }

    /// Sets where missing packages are fetched from (once; later calls are
    /// ignored). Clones of this store share it.
    pub fn set_fetcher(&self, fetcher: std::sync::Arc<dyn PackageFetcher>) {
        let _ = self.fetcher.set(fetcher);
    }

    /// The file holding `digest`'s bytes (whether or not it exists).
    pub fn path(&self, digest: &Digest) -> PathBuf {
        self.dir.join(format!("sha256-{}.wasm", digest.hex()))
    }

    /// Whether `digest` is stored.
    pub fn contains(&self, digest: &Digest) -> bool {
        self.path(digest).is_file()
    }

    /// Reads a stored package; one that is not here is fetched (when a
    /// fetcher is set), checked against its digest and stored first.
    pub async fn read(&self, digest: &Digest) -> io::Result<Vec<u8>> {
        match tokio::fs::read(self.path(digest)).await {
            Err(err) if err.kind() == io::ErrorKind::NotFound => {
                let Some(fetcher) = self.fetcher.get() else {
                    return Err(err);
                };
                let bytes = fetcher.fetch(digest).await?;
                let size = bytes.len() as u64;
                let upload = futures::stream::iter([Ok::<_, io::Error>(bytes)]);
                let stored = self
                    .put(upload, Some(size), u64::MAX)
                    .await
                    .map_err(|err| io::Error::other(err.to_string()))?;
                if stored.digest != *digest {
                    if !stored.existed {
                        let _ = self.remove(&stored.digest).await;
                    }
                    return Err(io::Error::new(
                        io::ErrorKind::InvalidData,
                        format!(
                            "fetched bytes of {digest} hash to {}; refused",
                            stored.digest
                        ),
                    ));
                }
                tracing::info!(%digest, size, "package fetched from a peer");
                tokio::fs::read(self.path(digest)).await
            }
            other => other,
        }
    }

    /// Reads a package only if it is stored here (never fetches).
    pub async fn read_local(&self, digest: &Digest) -> io::Result<Vec<u8>> {
        tokio::fs::read(self.path(digest)).await
    }

    /// Streams an upload to disk, at most `limit` bytes. `declared` is the
    /// announced length, if any: an upload that ends short of it is
    /// [`PutError::Truncated`].
    pub async fn put<S, E>(
        &self,
        mut upload: S,
        declared: Option<u64>,
        limit: u64,
    ) -> Result<StoredPackage, PutError>
    where
        S: Stream<Item = Result<Bytes, E>> + Unpin,
        E: std::fmt::Display,
    {
        if let Some(declared) = declared
            && declared > limit
        {
            return Err(PutError::TooLarge { limit });
        }
        let tmp = self.dir.join(format!(
            ".upload-{}-{}",
            std::process::id(),
            UPLOAD_COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
        ));
        let result = async {
            let mut file = tokio::fs::File::create(&tmp).await?;
            let mut hasher = Sha256::new();
            let mut size = 0u64;
            while let Some(chunk) = upload.next().await {
                let chunk = chunk.map_err(|err| PutError::Upload(err.to_string()))?;
                size += chunk.len() as u64;
                if size > limit {
                    return Err(PutError::TooLarge { limit });
                }
                hasher.update(&chunk);
                file.write_all(&chunk).await?;
            }
            if let Some(declared) = declared
                && size != declared
            {
                return Err(PutError::Truncated {
                    received: size,
                    declared,
                });
            }
            file.sync_all().await?;
            drop(file);
            let digest = Digest::from_bytes(hasher.finalize().into());
            let path = self.path(&digest);
            let existed = path.is_file();
            if existed {
                tokio::fs::remove_file(&tmp).await?;
            } else {
                tokio::fs::rename(&tmp, &path).await?;
                sync_dir(&self.dir).await?;
            }
            Ok(StoredPackage {
                digest,
                size,
                existed,
            })
        }
        .await;
        if result.is_err() {
            let _ = tokio::fs::remove_file(&tmp).await;
        }
        result
    }

    /// Removes a package's file (e.g. when its registration was refused and
    /// no other registration refers to it).
    pub async fn remove(&self, digest: &Digest) -> io::Result<()> {
        match tokio::fs::remove_file(self.path(digest)).await {
            Err(err) if err.kind() != io::ErrorKind::NotFound => Err(err),
            _ => Ok(()),
        }
    }

    /// The store's directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }
}

static UPLOAD_COUNTER: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

async fn sync_dir(dir: &Path) -> io::Result<()> {
    let dir = dir.to_path_buf();
    tokio::task::spawn_blocking(move || std::fs::File::open(dir)?.sync_all())
        .await
        .map_err(io::Error::other)?
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chunks(data: &[u8], size: usize) -> impl Stream<Item = Result<Bytes, io::Error>> + Unpin {
        let parts: Vec<_> = data
            .chunks(size)
            .map(|c| Ok(Bytes::copy_from_slice(c)))
            .collect();
        futures::stream::iter(parts)
    }

    fn files(dir: &Path) -> Vec<String> {
        let mut names: Vec<_> = std::fs::read_dir(dir)
            .expect("read_dir")
            .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }

    #[tokio::test]
    async fn stores_by_digest_once() {
        let dir = tempfile::tempdir().expect("dir");
        let store = PackageStore::open(dir.path()).expect("open");
        let data = vec![7u8; 100_000];
        let first = store
            .put(chunks(&data, 4096), Some(100_000), 1 << 20)
            .await
            .expect("put");
        assert_eq!(first.digest, Digest::of(&data));
        assert_eq!(first.size, 100_000);
        assert!(!first.existed);
        assert_eq!(store.read(&first.digest).await.expect("read"), data);
        let second = store
            .put(chunks(&data, 999), None, 1 << 20)
            .await
            .expect("put again");
        assert!(second.existed);
        assert_eq!(
            files(dir.path()),
            vec![format!("sha256-{}.wasm", first.digest.hex())]
        );
    }

    #[tokio::test]
    async fn oversize_and_truncated_uploads_leave_nothing() {
        let dir = tempfile::tempdir().expect("dir");
        let store = PackageStore::open(dir.path()).expect("open");
        let data = vec![1u8; 10_000];
        let err = store
            .put(chunks(&data, 1000), None, 5_000)
            .await
            .expect_err("too large");
        assert!(matches!(err, PutError::TooLarge { limit: 5_000 }), "{err}");
        let err = store
            .put(chunks(&data, 1000), Some(20_000), 5_000)
            .await
            .expect_err("declared too large");
        assert!(matches!(err, PutError::TooLarge { .. }), "{err}");
        let err = store
            .put(chunks(&data, 1000), Some(12_000), 1 << 20)
            .await
            .expect_err("truncated");
        assert!(
            matches!(
                err,
                PutError::Truncated {
                    received: 10_000,
                    declared: 12_000
                }
            ),
            "{err}"
        );
        let failing = futures::stream::iter(vec![
            Ok(Bytes::from_static(b"abc")),
            Err(io::Error::other("connection reset")),
        ]);
        let err = store
            .put(failing, None, 1 << 20)
            .await
            .expect_err("failed upload");
        assert!(err.to_string().contains("connection reset"), "{err}");
        assert!(files(dir.path()).is_empty(), "{:?}", files(dir.path()));
    }

    #[tokio::test]
    async fn interrupted_uploads_are_cleaned_on_open() {
        let dir = tempfile::tempdir().expect("dir");
        std::fs::write(dir.path().join(".upload-1-1"), b"partial").expect("write");
        PackageStore::open(dir.path()).expect("open");
        assert!(files(dir.path()).is_empty());
    }
}
