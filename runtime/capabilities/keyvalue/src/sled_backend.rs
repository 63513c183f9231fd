//! The embedded backend: every tenant's buckets in one sled tree.
//!
//! # Layout
//!
//! An entry's sled key is
//! `u32be(len tenant) ‖ tenant ‖ u32be(len bucket) ‖ bucket ‖ u64be(fnv1a(key)) ‖ key`:
//! length-prefixed, so it is injective and a tenant's (or bucket's) prefix
//! never matches another's. Its value is `u64be(expiry) ‖ value`, the
//! expiry in milliseconds since the Unix epoch by the wall clock, 0 for
//! none.
//!
//! The key's hash orders a bucket's entries, which makes the list cursor
//! stateless: a cursor is the hash where the next page starts (the way a
//! Redis `SCAN` cursor is a position in its hash table), and a page never
//! splits a run of keys with the same hash.
//!
//! # Atomicity and durability
//!
//! Increment and compare-and-swap are read–compute–`compare_and_swap`
//! loops on the raw entry, so they are linearizable. Writes are *not*
//! flushed one by one: sled flushes in the background (every 500 ms by
//! default), so a crash may lose the last half second of writes. That is
//! the deal for a cache; data that must survive belongs in a durable
//! capability.
//!
//! # Expiry
//!
//! An expired entry is absent for every operation; a read that meets one
//! deletes it (if unchanged), and [`KvBackend::sweep_expired`] walks the
//! tree a bounded batch at a time (see [`spawn_sweeper`](crate::spawn_sweeper)).

use crate::backend::{
    BoxFuture, KeyPage, KvBackend, KvError, KvResult, MAX_PAGE, Namespace, add_counter, check_key,
    check_ttl, check_value, parse_counter,
};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// How many entries one page of `list_keys` looks at, at most, besides the
/// keys it returns (expired entries not yet purged).
const SCAN_BUDGET: usize = 10_000;

/// The embedded key-value backend.
pub struct SledBackend {
    tree: sled::Tree,
    /// Where the next sweep continues.
    sweep_from: Arc<Mutex<Vec<u8>>>,
}

impl SledBackend {
    /// Opens (or creates) the database at `path` and its `keyvalue` tree.
    pub fn open(path: &Path) -> KvResult<Self> {
        let db = sled::Config::new().path(path).open().map_err(storage)?;
        Self::in_db(&db)
    }

    /// Uses the `keyvalue` tree of an already open database.
    pub fn in_db(db: &sled::Db) -> KvResult<Self> {
        let tree = db.open_tree("keyvalue").map_err(storage)?;
        Ok(SledBackend {
            tree,
            sweep_from: Arc::default(),
        })
    }

    /// Writes every pending change to disk.
    pub async fn flush(&self) -> KvResult<()> {
        self.tree.flush_async().await.map(drop).map_err(storage)
    }

    /// The stored entry of `key`, deleting it if it has expired.
    fn live(&self, ns: &Namespace, key: &str) -> KvResult<(Vec<u8>, Option<sled::IVec>)> {
        check_key(key)?;
        let sled_key = entry_key(ns, key);
        let raw = self.tree.get(&sled_key).map_err(storage)?;
        if let Some(old) = &raw
            && Entry::decode(old)?.expired(now_ms())
        {
            // Purge it unless someone just replaced it.
            let _ = self
                .tree
                .compare_and_swap(&sled_key, Some(old), None::<&[u8]>)
                .map_err(storage)?;
            return Ok((sled_key, None));
        }
        Ok((sled_key, raw))
    }
}

impl KvBackend for SledBackend {
    fn kind(&self) -> &'static str {
        "sled"
    }

    fn get<'a>(
        &'a self,
        ns: &'a Namespace,
        key: &'a str,
    ) -> BoxFuture<'a, KvResult<Option<Vec<u8>>>> {
        Box::pin(async move {
            let (_, raw) = self.live(ns, key)?;
            raw.map(|raw| Entry::decode(&raw).map(|entry| entry.value.to_vec()))
                .transpose()
        })
    }

    fn set<'a>(
        &'a self,
        ns: &'a Namespace,
        key: &'a str,
        value: Vec<u8>,
        ttl: Option<Duration>,
    ) -> BoxFuture<'a, KvResult<()>> {
        Box::pin(async move {
            check_key(key)?;
            check_value(&value)?;
            check_ttl(ttl)?;
            let expiry = ttl.map_or(0, |ttl| now_ms().saturating_add(millis(ttl)));
            self.tree
                .insert(entry_key(ns, key), Entry::encode(&value, expiry))
                .map_err(storage)?;
            Ok(())
        })
    }

    fn delete<'a>(&'a self, ns: &'a Namespace, key: &'a str) -> BoxFuture<'a, KvResult<()>> {
        Box::pin(async move {
            check_key(key)?;
            self.tree.remove(entry_key(ns, key)).map_err(storage)?;
            Ok(())
        })
    }

    fn exists<'a>(&'a self, ns: &'a Namespace, key: &'a str) -> BoxFuture<'a, KvResult<bool>> {
        Box::pin(async move { Ok(self.live(ns, key)?.1.is_some()) })
    }

    fn list_keys<'a>(
        &'a self,
        ns: &'a Namespace,
        cursor: Option<u64>,
        limit: usize,
    ) -> BoxFuture<'a, KvResult<KeyPage>> {
        let tree = self.tree.clone();
        let prefix = bucket_prefix(ns);
        blocking(move || list_page(&tree, &prefix, cursor, limit.clamp(1, MAX_PAGE)))
    }

    fn increment<'a>(
        &'a self,
        ns: &'a Namespace,
        key: &'a str,
        delta: u64,
    ) -> BoxFuture<'a, KvResult<u64>> {
        Box::pin(async move {
            loop {
                let (sled_key, old) = self.live(ns, key)?;
                let (current, expiry) = match &old {
                    Some(raw) => {
                        let entry = Entry::decode(raw)?;
                        (parse_counter(entry.value)?, entry.expiry)
                    }
                    None => (0, 0),
                };
                let new = add_counter(current, delta)?;
                let raw = Entry::encode(new.to_string().as_bytes(), expiry);
                let swapped = self
                    .tree
                    .compare_and_swap(&sled_key, old.as_ref(), Some(raw))
                    .map_err(storage)?;
                if swapped.is_ok() {
                    return Ok(new);
                }
            }
        })
    }

    fn compare_and_swap<'a>(
        &'a self,
        ns: &'a Namespace,
        key: &'a str,
        expected: Option<Vec<u8>>,
        value: Vec<u8>,
    ) -> BoxFuture<'a, KvResult<bool>> {
        Box::pin(async move {
            check_value(&value)?;
            loop {
                let (sled_key, old) = self.live(ns, key)?;
                let current = old.as_ref().map(|raw| Entry::decode(raw)).transpose()?;
                if current.map(|entry| entry.value) != expected.as_deref() {
                    return Ok(false);
                }
                let swapped = self
                    .tree
                    .compare_and_swap(&sled_key, old.as_ref(), Some(Entry::encode(&value, 0)))
                    .map_err(storage)?;
                if swapped.is_ok() {
                    return Ok(true);
                }
            }
        })
    }

    fn stored_bytes<'a>(&'a self, tenant: &'a str) -> BoxFuture<'a, KvResult<u64>> {
        let tree = self.tree.clone();
        let prefix = tenant_prefix(tenant);
        blocking(move || {
            let now = now_ms();
            let mut total = 0u64;
            for item in tree.scan_prefix(&prefix) {
                let (sled_key, raw) = item.map_err(storage)?;
                let entry = Entry::decode(&raw)?;
                if entry.expired(now) {
                    continue;
                }
                let key_len = split_entry_key(&sled_key[prefix.len()..])?.1.len();
                total += (key_len + entry.value.len()) as u64;
            }
            Ok(total)
        })
    }

    fn sweep_expired(&self, max: usize) -> BoxFuture<'_, KvResult<usize>> {
        let tree = self.tree.clone();
        let position = self.sweep_from.clone();
        blocking(move || {
            let mut from = position.lock().unwrap_or_else(|e| e.into_inner());
            let now = now_ms();
            let (mut seen, mut purged) = (0, 0);
            let mut last = None;
            for item in tree.range(from.as_slice()..).take(max.max(1)) {
                let (sled_key, raw) = item.map_err(storage)?;
                seen += 1;
                if Entry::decode(&raw).is_ok_and(|entry| entry.expired(now))
                    && tree
                        .compare_and_swap(&sled_key, Some(&raw), None::<&[u8]>)
                        .map_err(storage)?
                        .is_ok()
                {
                    purged += 1;
                }
                last = Some(sled_key);
            }
            *from = match last {
                // The smallest key after the last one seen.
                Some(key) if seen >= max.max(1) => [key.as_ref(), &[0]].concat(),
                _ => Vec::new(),
            };
            Ok(purged)
        })
    }
}

/// Reads one page of keys of the bucket with `prefix`.
fn list_page(
    tree: &sled::Tree,
    prefix: &[u8],
    cursor: Option<u64>,
    limit: usize,
) -> KvResult<KeyPage> {
    let start = [prefix, &cursor.unwrap_or(0).to_be_bytes()].concat();
    let now = now_ms();
    let mut page = KeyPage::default();
    let mut previous_hash = None;
    for (scanned, item) in tree.range(start..).enumerate() {
        let (sled_key, raw) = item.map_err(storage)?;
        let Some(rest) = sled_key.strip_prefix(prefix) else {
            break;
        };
        let (hash, key) = split_hash(rest)?;
        // Stop only between two different hashes, so the cursor (the next
        // hash) resumes exactly where this page ends.
        let full = page.keys.len() >= limit || scanned >= SCAN_BUDGET;
        if full && previous_hash != Some(hash) {
            page.cursor = Some(hash);
            break;
        }
        previous_hash = Some(hash);
        if Entry::decode(&raw)?.expired(now) {
            continue;
        }
        let key = String::from_utf8(key.to_vec())
            .map_err(|_| KvError::Storage("corrupt entry: key is not UTF-8".into()))?;
        page.keys.push(key);
    }
    Ok(page)
}

/// A stored value and its expiry.
struct Entry<'a> {
    expiry: u64,
    value: &'a [u8],
}

impl<'a> Entry<'a> {
    fn encode(value: &[u8], expiry: u64) -> Vec<u8> {
        [&expiry.to_be_bytes()[..], value].concat()
    }

    fn decode(raw: &'a [u8]) -> KvResult<Self> {
        let (expiry, value) = raw
            .split_first_chunk::<8>()
            .ok_or_else(|| KvError::Storage("corrupt entry: no header".into()))?;
        Ok(Entry {
            expiry: u64::from_be_bytes(*expiry),
            value,
        })
    }

    fn expired(&self, now: u64) -> bool {
        self.expiry != 0 && self.expiry <= now
    }
}

fn tenant_prefix(tenant: &str) -> Vec<u8> {
    let mut prefix = Vec::with_capacity(4 + tenant.len());
    push_part(&mut prefix, tenant.as_bytes());
    prefix
}

fn bucket_prefix(ns: &Namespace) -> Vec<u8> {
    let mut prefix = tenant_prefix(&ns.tenant);
    push_part(&mut prefix, ns.bucket.as_bytes());
    prefix
}

fn entry_key(ns: &Namespace, key: &str) -> Vec<u8> {
    let mut sled_key = bucket_prefix(ns);
    sled_key.extend_from_slice(&fnv1a(key.as_bytes()).to_be_bytes());
    sled_key.extend_from_slice(key.as_bytes());
    sled_key
}

fn push_part(buffer: &mut Vec<u8>, part: &[u8]) {
    // Tenant and bucket names are short; a 4 GiB name cannot reach here.
    let len = u32::try_from(part.len()).unwrap_or(u32::MAX);
    buffer.extend_from_slice(&len.to_be_bytes());
    buffer.extend_from_slice(part);
}

/// Splits what follows a tenant prefix into the bucket and the key.
fn split_entry_key(rest: &[u8]) -> KvResult<(&[u8], &[u8])> {
    let corrupt = || KvError::Storage("corrupt entry key".into());
    let (len, rest) = rest.split_first_chunk::<4>().ok_or_else(corrupt)?;
    let len = usize::try_from(u32::from_be_bytes(*len)).map_err(|_| corrupt())?;
    let bucket = rest.get(..len).ok_or_else(corrupt)?;
    let (_, key) = split_hash(rest.get(len..).ok_or_else(corrupt)?)?;
    Ok((bucket, key))
}

/// Splits what follows a bucket prefix into the key's hash and the key.
fn split_hash(rest: &[u8]) -> KvResult<(u64, &[u8])> {
    let (hash, key) = rest
        .split_first_chunk::<8>()
        .ok_or_else(|| KvError::Storage("corrupt entry key".into()))?;
    Ok((u64::from_be_bytes(*hash), key))
}

/// 64-bit FNV-1a: stable across builds and platforms, unlike std's hasher.
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |hash, &byte| {
        (hash ^ u64::from(byte)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, millis)
}

fn millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}

fn storage(err: sled::Error) -> KvError {
    KvError::Storage(err.to_string())
}

/// Runs a scan of the tree off the async threads.
fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> KvResult<T> + Send + 'static,
) -> BoxFuture<'static, KvResult<T>> {
    Box::pin(async move {
        tokio::task::spawn_blocking(work)
            .await
            .map_err(|err| KvError::Storage(format!("scan task failed: {err}")))?
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entry_keys_are_injective() {
        let a = entry_key(&Namespace::new("ab", "c"), "k");
        let b = entry_key(&Namespace::new("a", "bc"), "k");
        assert_ne!(a, b);
        assert!(!a.starts_with(&tenant_prefix("a")));
        let rest = &a[tenant_prefix("ab").len()..];
        assert_eq!(split_entry_key(rest).ok(), Some((&b"c"[..], &b"k"[..])));
    }

    #[test]
    fn entries_round_trip() {
        let raw = Entry::encode(b"v", 7);
        let entry = Entry::decode(&raw).ok();
        assert!(entry.is_some_and(|e| e.expiry == 7 && e.value == b"v" && e.expired(7)));
        assert!(Entry::decode(b"short").is_err());
    }
}
