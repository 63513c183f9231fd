//! Partner requests the cluster accepted recently: the partner API's replay
//! protection, shared by every host.
//!
//! A host that accepts a signed partner request records its key (a SHA-256
//! of the partner and the signature) with
//! [`Command::RecordPartnerRequest`](crate::Command::RecordPartnerRequest)
//! before invoking anything; the same request recorded again before it
//! expires is refused, whichever host it reaches. Entries expire with the
//! request's timestamp window (after that the timestamp check refuses the
//! request anyway) and are pruned as commands arrive, by the commands' own
//! time, so every replica prunes alike.

use crate::command::Outcome;
use crate::error::CommandError;
use std::collections::{BTreeMap, BTreeSet};

/// The most partner requests remembered at once; beyond it the entries that
/// expire first are dropped.
pub const MAX_RECORDED_REQUESTS: usize = 100_000;

/// The longest an entry may be kept, in milliseconds (one hour).
const MAX_TTL_MS: u64 = 3_600_000;

/// Recorded requests by key, and by expiry for pruning.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct AcceptedRequests {
    by_key: BTreeMap<String, u64>,
    by_expiry: BTreeSet<(u64, String)>,
}

impl AcceptedRequests {
    pub(crate) fn from_entries(entries: BTreeMap<String, u64>) -> Self {
        let by_expiry = entries.iter().map(|(k, e)| (*e, k.clone())).collect();
        AcceptedRequests {
            by_key: entries,
            by_expiry,
        }
    }

    pub(crate) fn entries(&self) -> &BTreeMap<String, u64> {
        &self.by_key
    }

    /// Records `key` at `at` until `expires_at` (unix milliseconds), or
    /// refuses it if it is recorded and unexpired.
    pub(crate) fn record(
        &mut self,
        key: &str,
        at: u64,
        expires_at: u64,
    ) -> Result<Outcome, CommandError> {
        let invalid = |reason: String| Err(CommandError::InvalidPartner { reason });
        if key.len() != 64 || !key.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
            return invalid("a request key is 64 lowercase hex digits".into());
        }
        if expires_at <= at || expires_at - at > MAX_TTL_MS {
            return invalid(format!(
                "a request is remembered for up to {MAX_TTL_MS} ms after it is recorded"
            ));
        }
        if self.by_key.get(key).is_some_and(|expires| *expires > at) {
            return Err(CommandError::PartnerRequestReplayed);
        }
        while let Some((expires, _)) = self.by_expiry.first()
            && *expires <= at
        {
            self.pop_first();
        }
        self.remove(key);
        while self.by_key.len() >= MAX_RECORDED_REQUESTS {
            self.pop_first();
        }
        self.by_key.insert(key.to_string(), expires_at);
        self.by_expiry.insert((expires_at, key.to_string()));
        Ok(Outcome::PartnerRequestRecorded)
    }

    fn pop_first(&mut self) {
        if let Some((_, key)) = self.by_expiry.pop_first() {
            self.by_key.remove(&key);
        }
    }

    fn remove(&mut self, key: &str) {
        if let Some(expires) = self.by_key.remove(key) {
            self.by_expiry.remove(&(expires, key.to_string()));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(n: u8) -> String {
        format!("{n:02x}").repeat(32)
    }

    #[test]
    fn a_request_is_accepted_once_until_it_expires() {
        let mut seen = AcceptedRequests::default();
        assert_eq!(
            seen.record(&key(1), 1_000, 61_000).unwrap(),
            Outcome::PartnerRequestRecorded
        );
        assert!(matches!(
            seen.record(&key(1), 30_000, 90_000),
            Err(CommandError::PartnerRequestReplayed)
        ));
        seen.record(&key(2), 30_000, 90_000).unwrap();
        // Past its expiry the first is pruned (and could be recorded again;
        // the timestamp window refuses such a request before it gets here).
        seen.record(&key(3), 61_000, 121_000).unwrap();
        assert!(!seen.entries().contains_key(&key(1)));
        assert_eq!(seen.entries().len(), 2);
        assert_eq!(AcceptedRequests::from_entries(seen.entries().clone()), seen);
    }

    #[test]
    fn bad_keys_and_lifetimes_change_nothing() {
        let mut seen = AcceptedRequests::default();
        for (key, at, expires) in [
            ("nothex".to_string(), 1, 2),
            (key(0xab).to_uppercase(), 1, 2),
            (key(1), 5, 5),
            (key(1), 1, 2 + MAX_TTL_MS),
        ] {
            assert!(seen.record(&key, at, expires).is_err());
        }
        assert!(seen.entries().is_empty());
    }

    #[test]
    fn recorded_requests_survive_snapshots() {
        let mut state = crate::State::new();
        let record = crate::Command::RecordPartnerRequest {
            key: key(7),
            at: 1_000,
            expires_at: 601_000,
        };
        state
            .apply(&crate::Envelope::new("r1", record.clone()))
            .unwrap();
        let restored = crate::State::from_snapshot(&state.to_snapshot()).unwrap();
        assert_eq!(restored, state);
        let mut restored = restored;
        assert!(matches!(
            restored.apply(&crate::Envelope::new("r2", record)),
            Err(CommandError::PartnerRequestReplayed)
        ));
    }
}
