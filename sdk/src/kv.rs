//! Key-value buckets: `wasi:keyvalue@0.2.0-draft` and the platform's
//! `cloudware:platform/keyvalue-ext` (compare-and-swap, time-to-live).
//!
//! A bucket belongs to the deployment's tenant and must be granted to the
//! deployment (`cloudware deploy … --kv-bucket counters`); opening any other
//! bucket fails with [`Error::AccessDenied`].
//!
//! ```no_run
//! use cloudware_sdk::kv::{Bucket, Error};
//! use std::time::Duration;
//!
//! fn visit(page: &str) -> Result<u64, Error> {
//!     let bucket = Bucket::open("counters")?;
//!     bucket.set_with_ttl(&format!("last-visit:{page}"), b"now", Duration::from_secs(60))?;
//!     bucket.increment(page, 1)
//! }
//!
//! fn list() -> Result<Vec<String>, Error> {
//!     // Pages of keys are fetched as the iterator needs them.
//!     Bucket::open("counters")?.keys().collect()
//! }
//! ```
//!
//! With the `json` feature (on by default), values can be any serde type:
//!
//! ```no_run
//! # #[cfg(feature = "json")]
//! # fn main() -> Result<(), cloudware_sdk::kv::Error> {
//! use serde::{Deserialize, Serialize};
//!
//! #[derive(Serialize, Deserialize)]
//! struct Cart {
//!     items: Vec<String>,
//! }
//!
//! let bucket = cloudware_sdk::kv::Bucket::open("carts")?;
//! let mut cart: Cart = bucket.get_json("alice")?.unwrap_or(Cart { items: vec![] });
//! cart.items.push("book".into());
//! bucket.set_json("alice", &cart)?;
//! # Ok(())
//! # }
//! # #[cfg(not(feature = "json"))]
//! # fn main() {}
//! ```

use std::collections::VecDeque;
use std::fmt;
use std::time::Duration;

use crate::bindings::cloudware::platform::keyvalue_ext;
use crate::bindings::wasi::keyvalue::{atomics, batch, store};

/// Why a key-value operation failed.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Error {
    /// The bucket does not exist.
    NoSuchStore,
    /// The deployment was not granted the bucket.
    AccessDenied,
    /// Any other failure, as the host describes it (e.g. a key or value
    /// over the platform's limits, or the store being unavailable).
    Other(String),
    /// A stored value is not the JSON [`Bucket::get_json`] expects, or a
    /// value could not be serialized.
    #[cfg(feature = "json")]
    Json(String),
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::NoSuchStore => f.write_str("no such key-value bucket"),
            Error::AccessDenied => f.write_str("access to the key-value bucket denied"),
            Error::Other(message) => write!(f, "key-value error: {message}"),
            #[cfg(feature = "json")]
            Error::Json(message) => write!(f, "key-value JSON error: {message}"),
        }
    }
}

impl std::error::Error for Error {}

impl From<store::Error> for Error {
    fn from(err: store::Error) -> Self {
        match err {
            store::Error::NoSuchStore => Error::NoSuchStore,
            store::Error::AccessDenied => Error::AccessDenied,
            store::Error::Other(message) => Error::Other(message),
        }
    }
}

/// An open bucket of the deployment's tenant.
pub struct Bucket {
    inner: store::Bucket,
    name: String,
}

impl fmt::Debug for Bucket {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Bucket").field("name", &self.name).finish()
    }
}

impl Bucket {
    /// Opens bucket `name`, which the deployment must have been granted.
    pub fn open(name: &str) -> Result<Bucket, Error> {
        Ok(Bucket {
            inner: store::open(name)?,
            name: name.to_owned(),
        })
    }

    /// The bucket's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The value of `key`, or `None` if it is absent.
    pub fn get(&self, key: &str) -> Result<Option<Vec<u8>>, Error> {
        Ok(self.inner.get(key)?)
    }

    /// The value of `key` as UTF-8 text (invalid sequences replaced), or
    /// `None` if it is absent.
    pub fn get_string(&self, key: &str) -> Result<Option<String>, Error> {
        Ok(self
            .get(key)?
            .map(|bytes| String::from_utf8_lossy(&bytes).into_owned()))
    }

    /// Sets `key` to `value`.
    pub fn set(&self, key: &str, value: impl AsRef<[u8]>) -> Result<(), Error> {
        Ok(self.inner.set(key, value.as_ref())?)
    }

    /// Removes `key` (removing an absent key is not an error).
    pub fn delete(&self, key: &str) -> Result<(), Error> {
        Ok(self.inner.delete(key)?)
    }

    /// Whether `key` is present.
    pub fn exists(&self, key: &str) -> Result<bool, Error> {
        Ok(self.inner.exists(key)?)
    }

    /// Every key of the bucket, fetched a page at a time as the iterator
    /// advances. An error ends the iteration after it is yielded.
    pub fn keys(&self) -> Keys<'_> {
        Keys {
            bucket: self,
            page: VecDeque::new(),
            cursor: None,
            done: false,
        }
    }

    /// Adds `delta` to the number stored at `key` (an absent key counts as
    /// 0) atomically, and returns the new value.
    pub fn increment(&self, key: &str, delta: u64) -> Result<u64, Error> {
        Ok(atomics::increment(&self.inner, key, delta)?)
    }

    /// Sets `key` to `value` only if its current value is `expected`
    /// (`None`: only if the key is absent). Returns whether it was set.
    pub fn compare_and_swap(
        &self,
        key: &str,
        expected: Option<&[u8]>,
        value: impl AsRef<[u8]>,
    ) -> Result<bool, Error> {
        Ok(keyvalue_ext::compare_and_swap(
            &self.inner,
            key,
            expected,
            value.as_ref(),
        )?)
    }

    /// Sets `key` to `value`; the key expires `ttl` later (rounded down to
    /// milliseconds).
    pub fn set_with_ttl(
        &self,
        key: &str,
        value: impl AsRef<[u8]>,
        ttl: Duration,
    ) -> Result<(), Error> {
        let ttl_ms = u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX);
        Ok(keyvalue_ext::set_with_ttl(
            &self.inner,
            key,
            value.as_ref(),
            ttl_ms,
        )?)
    }

    /// The values of `keys`, in order (`None` for an absent key), in one
    /// call.
    pub fn get_many(&self, keys: &[&str]) -> Result<Vec<Option<Vec<u8>>>, Error> {
        let owned: Vec<String> = keys.iter().map(|key| (*key).to_owned()).collect();
        let found = batch::get_many(&self.inner, &owned)?;
        Ok(found
            .into_iter()
            .map(|entry| entry.map(|(_, value)| value))
            .collect())
    }

    /// Sets every `(key, value)` pair in one call.
    pub fn set_many(&self, entries: &[(&str, &[u8])]) -> Result<(), Error> {
        let owned: Vec<(String, Vec<u8>)> = entries
            .iter()
            .map(|(key, value)| ((*key).to_owned(), value.to_vec()))
            .collect();
        Ok(batch::set_many(&self.inner, &owned)?)
    }

    /// Removes every key of `keys` in one call.
    pub fn delete_many(&self, keys: &[&str]) -> Result<(), Error> {
        let owned: Vec<String> = keys.iter().map(|key| (*key).to_owned()).collect();
        Ok(batch::delete_many(&self.inner, &owned)?)
    }

    /// The value of `key` parsed as JSON, or `None` if it is absent.
    #[cfg(feature = "json")]
    pub fn get_json<T: serde::de::DeserializeOwned>(&self, key: &str) -> Result<Option<T>, Error> {
        match self.get(key)? {
            Some(bytes) => serde_json::from_slice(&bytes)
                .map(Some)
                .map_err(|err| Error::Json(format!("the value of `{key}`: {err}"))),
            None => Ok(None),
        }
    }

    /// Sets `key` to `value` serialized as JSON.
    #[cfg(feature = "json")]
    pub fn set_json<T: serde::Serialize + ?Sized>(
        &self,
        key: &str,
        value: &T,
    ) -> Result<(), Error> {
        let bytes = serde_json::to_vec(value).map_err(|err| Error::Json(err.to_string()))?;
        self.set(key, bytes)
    }

    /// The raw `wasi:keyvalue/store` bucket, for the raw [`bindings`](crate::bindings).
    pub fn as_raw(&self) -> &store::Bucket {
        &self.inner
    }
}

/// The keys of a bucket: see [`Bucket::keys`].
pub struct Keys<'a> {
    bucket: &'a Bucket,
    page: VecDeque<String>,
    cursor: Option<u64>,
    done: bool,
}

impl fmt::Debug for Keys<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Keys")
            .field("bucket", &self.bucket.name)
            .field("buffered", &self.page.len())
            .field("done", &self.done)
            .finish()
    }
}

impl Iterator for Keys<'_> {
    type Item = Result<String, Error>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            if let Some(key) = self.page.pop_front() {
                return Some(Ok(key));
            }
            if self.done {
                return None;
            }
            match self.bucket.inner.list_keys(self.cursor) {
                Ok(response) => {
                    self.page.extend(response.keys);
                    self.cursor = response.cursor;
                    self.done = self.cursor.is_none();
                }
                Err(err) => {
                    self.done = true;
                    return Some(Err(err.into()));
                }
            }
        }
    }
}
