//! A bounded cache of recently accepted requests, to refuse replays.
//!
//! A request is identified by the SHA-256 of its `app_id` and its `sign`
//! (whitespace removed). SHA256withRSA with PKCS#1 v1.5 padding is
//! deterministic and its verification refuses non-canonical signatures, so
//! the signature identifies the signed content: two requests with the same
//! fields (same timestamp, same `biz_content`) are the same request. Partners
//! that legitimately repeat a call must change a field (a business id in
//! `biz_content`, or the millisecond timestamp).
//!
//! Entries are kept for twice the timestamp window (±5 minutes → 10 minutes):
//! once an entry expires its request's timestamp is outside the window, so
//! the timestamp check refuses it instead. The cache holds at most
//! `capacity` entries; when full, the oldest is evicted (and a warning is
//! logged), which re-opens a replay window for that request only if it is
//! still within its timestamp window. The cache is per host; in a cluster a
//! [`ReplayLedger`] shared by every host (the replicated state) records each
//! accepted request as well, so a replay sent to another host is refused too.

use crate::error::PartnerError;
use sha2::{Digest, Sha256};
use std::collections::{HashSet, VecDeque};
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

/// A record of accepted requests shared by every host of a cluster.
pub trait ReplayLedger: Send + Sync + 'static {
    /// Records the request with `key` ([`ReplayCache::request_key`]) as
    /// accepted for `ttl`, or refuses it with [`PartnerError::Replayed`] if
    /// any host recorded it before.
    fn record(
        &self,
        key: [u8; 32],
        ttl: Duration,
    ) -> futures::future::BoxFuture<'static, Result<(), PartnerError>>;
}

/// The default capacity of [`ReplayCache`].
pub const DEFAULT_REPLAY_CAPACITY: usize = 100_000;

type Key = [u8; 32];

/// The replay cache. Cheap to share behind an `Arc`; all methods take
/// `&self`.
#[derive(Debug)]
pub struct ReplayCache {
    ttl: Duration,
    capacity: usize,
    inner: Mutex<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    seen: HashSet<Key>,
    /// Entries in insertion order with their expiry.
    order: VecDeque<(Instant, Key)>,
    evicted: u64,
}

impl ReplayCache {
    /// A cache keeping entries for `ttl` (twice the timestamp window), at
    /// most `capacity` of them (at least 1).
    pub fn new(ttl: Duration, capacity: usize) -> Self {
        Self {
            ttl,
            capacity: capacity.max(1),
            inner: Mutex::new(Inner::default()),
        }
    }

    /// The key of the request `(app_id, sign)`: SHA-256 of the app id and
    /// the signature without whitespace.
    pub fn request_key(app_id: &str, sign: &str) -> [u8; 32] {
        Self::key(app_id, sign)
    }

    fn key(app_id: &str, sign: &str) -> Key {
        let mut hasher = Sha256::new();
        hasher.update(app_id.as_bytes());
        hasher.update([0u8]);
        for part in sign.split_ascii_whitespace() {
            hasher.update(part.as_bytes());
        }
        hasher.finalize().into()
    }

    /// Records the request `(app_id, sign)` seen at `now`, or refuses it with
    /// [`PartnerError::Replayed`] when it was recorded before and has not
    /// expired. Call only for requests whose signature verified.
    pub fn check_and_record(
        &self,
        app_id: &str,
        sign: &str,
        now: Instant,
    ) -> Result<(), PartnerError> {
        let key = Self::key(app_id, sign);
        let mut inner = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        inner.expire(now);
        if inner.seen.contains(&key) {
            return Err(PartnerError::Replayed);
        }
        while inner.order.len() >= self.capacity {
            let Some((_, old)) = inner.order.pop_front() else {
                break;
            };
            inner.seen.remove(&old);
            inner.evicted += 1;
            if inner.evicted == 1 || inner.evicted.is_multiple_of(10_000) {
                tracing::warn!(
                    capacity = self.capacity,
                    evicted = inner.evicted,
                    "partner replay cache full; evicting unexpired entries"
                );
            }
        }
        inner.seen.insert(key);
        inner.order.push_back((now + self.ttl, key));
        Ok(())
    }

    /// The number of live entries (expired ones may still be counted until
    /// the next call of [`ReplayCache::check_and_record`]).
    pub fn len(&self) -> usize {
        self.inner
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .order
            .len()
    }

    /// Whether the cache holds no entry.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// How many unexpired entries were evicted because the cache was full.
    pub fn evicted(&self) -> u64 {
        self.inner
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .evicted
    }
}

impl Inner {
    fn expire(&mut self, now: Instant) {
        while let Some(&(expires, key)) = self.order.front() {
            if expires > now {
                break;
            }
            self.order.pop_front();
            self.seen.remove(&key);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TTL: Duration = Duration::from_secs(600);

    #[test]
    fn the_same_request_is_refused_until_it_expires() {
        let cache = ReplayCache::new(TTL, 10);
        let t0 = Instant::now();
        cache.check_and_record("p1", "sig", t0).expect("first");
        assert_eq!(
            cache.check_and_record("p1", "sig", t0 + Duration::from_secs(1)),
            Err(PartnerError::Replayed)
        );
        // Whitespace inside the signature does not make it a new request.
        assert_eq!(
            cache.check_and_record("p1", "s i\ng", t0 + Duration::from_secs(2)),
            Err(PartnerError::Replayed)
        );
        assert_eq!(
            cache.check_and_record("p1", "sig", t0 + TTL - Duration::from_millis(1)),
            Err(PartnerError::Replayed)
        );
        cache
            .check_and_record("p1", "sig", t0 + TTL)
            .expect("expired");
        assert_eq!(cache.len(), 1);
    }

    #[test]
    fn partners_and_signatures_are_distinct_keys() {
        let cache = ReplayCache::new(TTL, 10);
        let t0 = Instant::now();
        cache.check_and_record("p1", "sig", t0).expect("p1");
        cache.check_and_record("p2", "sig", t0).expect("p2");
        cache.check_and_record("p1", "sig2", t0).expect("sig2");
        // No ambiguity from concatenation.
        cache.check_and_record("p", "1sig", t0).expect("split");
        assert_eq!(cache.len(), 4);
    }

    #[test]
    fn a_full_cache_evicts_the_oldest() {
        let cache = ReplayCache::new(TTL, 3);
        let t0 = Instant::now();
        for i in 0..5 {
            cache
                .check_and_record("p", &format!("s{i}"), t0 + Duration::from_secs(i))
                .expect("fresh");
        }
        assert_eq!(cache.len(), 3);
        assert_eq!(cache.evicted(), 2);
        let t = t0 + Duration::from_secs(10);
        cache
            .check_and_record("p", "s0", t)
            .expect("evicted, so new again");
        assert_eq!(
            cache.check_and_record("p", "s4", t),
            Err(PartnerError::Replayed)
        );
        assert!(!cache.is_empty());
    }
}
