//! The storage behind the buckets: the [`KvBackend`] trait every backend
//! implements, the limits they all enforce, and the value conventions that
//! make the backends interchangeable.
//!
//! # Conventions shared by every backend
//!
//! - **Namespacing.** Every operation names a [`Namespace`] (tenant and
//!   bucket); a backend maps it injectively into its key space, so two
//!   tenants' buckets of the same name never share a key.
//! - **Counters** ([`KvBackend::increment`]) are stored as the decimal ASCII
//!   of a non-negative integer (`0` or a digit string without leading zeros)
//!   no larger than [`MAX_COUNTER`] (`i64::MAX`, Redis's `INCRBY` range). A
//!   missing key counts as 0; any other value is refused with
//!   [`KvError::NotACounter`] and left unchanged. An increment keeps the
//!   key's time-to-live.
//! - **Time-to-live.** [`KvBackend::set`] with a TTL makes the key expire;
//!   a plain set, a compare-and-swap or a batch set clears any TTL. An
//!   expired key is absent for every operation.
//! - **Limits.** Keys of at most [`MAX_KEY_BYTES`], values of at most
//!   [`MAX_VALUE_BYTES`], TTLs between 1 ms and [`MAX_TTL`], pages of at
//!   most [`MAX_PAGE`] keys.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Weak};
use std::time::Duration;

/// The largest key, in bytes.
pub const MAX_KEY_BYTES: usize = 1024;
/// The largest value, in bytes.
pub const MAX_VALUE_BYTES: usize = 1024 * 1024;
/// The most keys one [`KvBackend::list_keys`] call returns.
pub const MAX_PAGE: usize = 1000;
/// The page size the host functions ask for.
pub const DEFAULT_PAGE: usize = 100;
/// The longest time-to-live (ten years).
pub const MAX_TTL: Duration = Duration::from_secs(10 * 365 * 24 * 3600);
/// The largest counter value (Redis `INCRBY` works on signed 64-bit).
pub const MAX_COUNTER: u64 = i64::MAX as u64;

/// A boxed, sendable future: what [`KvBackend`] methods return, so the trait
/// stays object safe.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// What a [`KvBackend`] operation returns.
pub type KvResult<T> = Result<T, KvError>;

/// What [`KvBackend::get_many`] returns: per key asked, in order, the key
/// and its value, or `None` if it is absent.
pub type Found = Vec<Option<(String, Vec<u8>)>>;

/// Why a key-value operation failed. Its text is what the guest sees in
/// `error::other`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KvError {
    /// The key is longer than [`MAX_KEY_BYTES`].
    #[error("key too large: {0} bytes, limit {MAX_KEY_BYTES}")]
    KeyTooLarge(usize),
    /// The value is longer than [`MAX_VALUE_BYTES`].
    #[error("value too large: {0} bytes, limit {MAX_VALUE_BYTES}")]
    ValueTooLarge(usize),
    /// A TTL of zero or above [`MAX_TTL`].
    #[error("invalid ttl: {0} ms (must be between 1 and {max} ms)", max = MAX_TTL.as_millis())]
    InvalidTtl(u128),
    /// The value being incremented is not a counter.
    #[error("the value is not a counter (decimal digits of a number up to {MAX_COUNTER})")]
    NotACounter,
    /// The increment would pass [`MAX_COUNTER`].
    #[error("increment would overflow (the largest counter is {MAX_COUNTER})")]
    Overflow,
    /// The storage failed (I/O, connection, corrupt data).
    #[error("storage error: {0}")]
    Storage(String),
}

/// A bucket of a tenant: the scope of every backend operation.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Namespace {
    /// The owning tenant.
    pub tenant: Arc<str>,
    /// The bucket's name.
    pub bucket: Arc<str>,
}

impl Namespace {
    /// The namespace of `bucket` of `tenant`.
    pub fn new(tenant: &str, bucket: &str) -> Self {
        Namespace {
            tenant: tenant.into(),
            bucket: bucket.into(),
        }
    }
}

/// One page of [`KvBackend::list_keys`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KeyPage {
    /// The keys of this page, in no particular order.
    pub keys: Vec<String>,
    /// Where the next page starts; `None` when there are no more keys.
    pub cursor: Option<u64>,
}

/// A key-value store holding every tenant's buckets.
///
/// Object safe: the node holds one as `Arc<dyn KvBackend>` and shares it
/// between all deployments. Every method is scoped to one [`Namespace`].
pub trait KvBackend: Send + Sync + 'static {
    /// A short name for logs (`sled`, `redis`).
    fn kind(&self) -> &'static str;

    /// The value of `key`, if it exists and has not expired.
    fn get<'a>(
        &'a self,
        ns: &'a Namespace,
        key: &'a str,
    ) -> BoxFuture<'a, KvResult<Option<Vec<u8>>>>;

    /// Sets `key` to `value`; with a `ttl`, the key expires that long from
    /// now, without one it never expires (an earlier TTL is cleared).
    fn set<'a>(
        &'a self,
        ns: &'a Namespace,
        key: &'a str,
        value: Vec<u8>,
        ttl: Option<Duration>,
    ) -> BoxFuture<'a, KvResult<()>>;

    /// Deletes `key`; nothing happens if it does not exist.
    fn delete<'a>(&'a self, ns: &'a Namespace, key: &'a str) -> BoxFuture<'a, KvResult<()>>;

    /// Whether `key` exists and has not expired.
    fn exists<'a>(&'a self, ns: &'a Namespace, key: &'a str) -> BoxFuture<'a, KvResult<bool>>;

    /// One page of at most about `limit` keys (capped at [`MAX_PAGE`]),
    /// starting at `cursor` (`None`: the first page). Keys come in no
    /// particular order; under concurrent writes a key may be missed or,
    /// on Redis, repeated.
    fn list_keys<'a>(
        &'a self,
        ns: &'a Namespace,
        cursor: Option<u64>,
        limit: usize,
    ) -> BoxFuture<'a, KvResult<KeyPage>>;

    /// Atomically adds `delta` to the counter at `key` (absent: 0) and
    /// returns the new value.
    fn increment<'a>(
        &'a self,
        ns: &'a Namespace,
        key: &'a str,
        delta: u64,
    ) -> BoxFuture<'a, KvResult<u64>>;

    /// Atomically sets `key` to `value` if its current value is `expected`
    /// (`None`: if it does not exist); returns whether it did.
    fn compare_and_swap<'a>(
        &'a self,
        ns: &'a Namespace,
        key: &'a str,
        expected: Option<Vec<u8>>,
        value: Vec<u8>,
    ) -> BoxFuture<'a, KvResult<bool>>;

    /// The values of `keys`, in order; `None` for a missing key.
    fn get_many<'a>(
        &'a self,
        ns: &'a Namespace,
        keys: Vec<String>,
    ) -> BoxFuture<'a, KvResult<Found>> {
        Box::pin(async move {
            let mut found = Vec::with_capacity(keys.len());
            for key in keys {
                let value = self.get(ns, &key).await?;
                found.push(value.map(|value| (key, value)));
            }
            Ok(found)
        })
    }

    /// Sets every pair, without a TTL; not atomic as a whole.
    fn set_many<'a>(
        &'a self,
        ns: &'a Namespace,
        pairs: Vec<(String, Vec<u8>)>,
    ) -> BoxFuture<'a, KvResult<()>> {
        Box::pin(async move {
            for (key, value) in pairs {
                self.set(ns, &key, value, None).await?;
            }
            Ok(())
        })
    }

    /// Deletes every key; not atomic as a whole.
    fn delete_many<'a>(
        &'a self,
        ns: &'a Namespace,
        keys: Vec<String>,
    ) -> BoxFuture<'a, KvResult<()>> {
        Box::pin(async move {
            for key in keys {
                self.delete(ns, &key).await?;
            }
            Ok(())
        })
    }

    /// What `tenant` stores, for metering: the sum, over its live keys in
    /// all its buckets, of the key's and the value's length in bytes.
    fn stored_bytes<'a>(&'a self, tenant: &'a str) -> BoxFuture<'a, KvResult<u64>>;

    /// Purges up to `max` expired entries and returns how many it removed.
    /// A backend whose store expires keys by itself (Redis) does nothing.
    fn sweep_expired(&self, max: usize) -> BoxFuture<'_, KvResult<usize>> {
        _ = max;
        Box::pin(async { Ok(0) })
    }
}

/// Refuses a key longer than [`MAX_KEY_BYTES`].
pub fn check_key(key: &str) -> KvResult<()> {
    if key.len() > MAX_KEY_BYTES {
        return Err(KvError::KeyTooLarge(key.len()));
    }
    Ok(())
}

/// Refuses a value longer than [`MAX_VALUE_BYTES`].
pub fn check_value(value: &[u8]) -> KvResult<()> {
    if value.len() > MAX_VALUE_BYTES {
        return Err(KvError::ValueTooLarge(value.len()));
    }
    Ok(())
}

/// Refuses a TTL of zero or above [`MAX_TTL`].
pub fn check_ttl(ttl: Option<Duration>) -> KvResult<()> {
    match ttl {
        Some(ttl) if ttl.is_zero() || ttl > MAX_TTL => Err(KvError::InvalidTtl(ttl.as_millis())),
        _ => Ok(()),
    }
}

/// The counter a stored value holds (see the module docs).
pub fn parse_counter(value: &[u8]) -> KvResult<u64> {
    let canonical = match value {
        [b'0'] => true,
        [b'1'..=b'9', rest @ ..] => rest.iter().all(u8::is_ascii_digit),
        _ => false,
    };
    if !canonical {
        return Err(KvError::NotACounter);
    }
    std::str::from_utf8(value)
        .ok()
        .and_then(|text| text.parse::<u64>().ok())
        .filter(|&n| n <= MAX_COUNTER)
        .ok_or(KvError::NotACounter)
}

/// `current + delta`, if it stays within [`MAX_COUNTER`].
pub fn add_counter(current: u64, delta: u64) -> KvResult<u64> {
    current
        .checked_add(delta)
        .filter(|&n| n <= MAX_COUNTER)
        .ok_or(KvError::Overflow)
}

/// Runs [`KvBackend::sweep_expired`] every `interval`, `batch` entries at a
/// time, until the backend is dropped. Needs a Tokio runtime.
pub fn spawn_sweeper(
    backend: &Arc<dyn KvBackend>,
    interval: Duration,
    batch: usize,
) -> tokio::task::JoinHandle<()> {
    let weak: Weak<dyn KvBackend> = Arc::downgrade(backend);
    tokio::spawn(async move {
        let mut ticker = tokio::time::interval(interval);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            ticker.tick().await;
            let Some(backend) = weak.upgrade() else {
                return;
            };
            match backend.sweep_expired(batch).await {
                Ok(0) => {}
                Ok(purged) => tracing::debug!(purged, "expired keys purged"),
                Err(err) => tracing::warn!(error = %err, "key-value sweep failed"),
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_are_canonical_decimals() {
        assert_eq!(parse_counter(b"0"), Ok(0));
        assert_eq!(parse_counter(b"42"), Ok(42));
        assert_eq!(parse_counter(b"9223372036854775807"), Ok(MAX_COUNTER));
        for bad in [
            &b""[..],
            b"007",
            b"-1",
            b"+1",
            b" 1",
            b"1.0",
            b"9223372036854775808",
            b"x",
        ] {
            assert_eq!(parse_counter(bad), Err(KvError::NotACounter), "{bad:?}");
        }
        assert_eq!(add_counter(MAX_COUNTER - 1, 1), Ok(MAX_COUNTER));
        assert_eq!(add_counter(MAX_COUNTER, 1), Err(KvError::Overflow));
        assert_eq!(add_counter(0, u64::MAX), Err(KvError::Overflow));
    }

    #[test]
    fn limits_name_the_numbers() {
        assert_eq!(
            check_value(&vec![0; MAX_VALUE_BYTES + 1]).map_err(|e| e.to_string()),
            Err("value too large: 1048577 bytes, limit 1048576".to_owned())
        );
        assert!(check_value(&vec![0; MAX_VALUE_BYTES]).is_ok());
        assert!(check_key(&"k".repeat(MAX_KEY_BYTES)).is_ok());
        assert!(check_key(&"k".repeat(MAX_KEY_BYTES + 1)).is_err());
        assert!(check_ttl(Some(Duration::ZERO)).is_err());
        assert!(check_ttl(Some(MAX_TTL + Duration::from_millis(1))).is_err());
        assert!(check_ttl(Some(Duration::from_millis(1))).is_ok());
        assert!(check_ttl(None).is_ok());
    }
}
