//! The memory of recently applied requests, which makes re-applying a
//! retried proposal harmless.

use crate::command::Outcome;
use crate::error::SnapshotError;
use serde::ser::Serializer;
use serde::{Deserialize, Serialize};
use std::collections::{HashMap, VecDeque};

/// How many applied request ids the state remembers (with their outcomes).
pub const REMEMBERED_REQUESTS: usize = 10_000;

/// A remembered request, as written in a snapshot.
#[derive(Serialize)]
struct RememberedRef<'a> {
    request_id: &'a str,
    outcome: &'a Outcome,
}

/// A remembered request, as read from a snapshot.
#[derive(Deserialize)]
pub(crate) struct Remembered {
    request_id: String,
    outcome: Outcome,
}

/// The outcomes of the last [`REMEMBERED_REQUESTS`] successfully applied
/// requests, oldest first. Rejected commands are not remembered: they
/// changed nothing, so applying them again is as safe as the first time.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct RecentRequests {
    capacity: usize,
    order: VecDeque<String>,
    outcomes: HashMap<String, Outcome>,
}

impl Default for RecentRequests {
    fn default() -> Self {
        RecentRequests::with_capacity(REMEMBERED_REQUESTS)
    }
}

impl RecentRequests {
    fn with_capacity(capacity: usize) -> Self {
        RecentRequests {
            capacity,
            order: VecDeque::new(),
            outcomes: HashMap::new(),
        }
    }

    /// Rebuilds the memory from a snapshot, keeping the newest entries if
    /// there are more than fit.
    pub(crate) fn from_entries(entries: Vec<Remembered>) -> Result<Self, SnapshotError> {
        let mut recent = RecentRequests::default();
        let skip = entries.len().saturating_sub(recent.capacity);
        for entry in entries.into_iter().skip(skip) {
            if recent.outcome(&entry.request_id).is_some() {
                return Err(SnapshotError::Inconsistent(format!(
                    "request `{}` is remembered twice",
                    entry.request_id
                )));
            }
            recent.remember(entry.request_id, entry.outcome);
        }
        Ok(recent)
    }

    /// The outcome of an applied request, if it is remembered.
    pub(crate) fn outcome(&self, request_id: &str) -> Option<&Outcome> {
        self.outcomes.get(request_id)
    }

    /// Remembers a request, forgetting the oldest one if full.
    pub(crate) fn remember(&mut self, request_id: String, outcome: Outcome) {
        if self.order.len() >= self.capacity
            && let Some(oldest) = self.order.pop_front()
        {
            self.outcomes.remove(&oldest);
        }
        self.order.push_back(request_id.clone());
        self.outcomes.insert(request_id, outcome);
    }

    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.order.len()
    }
}

impl Serialize for RecentRequests {
    /// A list of `{request_id, outcome}`, oldest first.
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_seq(self.order.iter().map(|request_id| RememberedRef {
            request_id,
            outcome: &self.outcomes[request_id],
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forgets_the_oldest_when_full() {
        let mut recent = RecentRequests::with_capacity(3);
        for n in 0..5 {
            recent.remember(format!("r{n}"), Outcome::DeploymentCreated { version: n });
        }
        assert_eq!(recent.len(), 3);
        assert!(recent.outcome("r0").is_none());
        assert!(recent.outcome("r1").is_none());
        assert_eq!(
            recent.outcome("r4"),
            Some(&Outcome::DeploymentCreated { version: 4 })
        );
        let json = serde_json::to_string(&recent).unwrap();
        assert!(json.starts_with(
            r#"[{"request_id":"r2","outcome":{"outcome":"deployment_created","version":2}}"#
        ));
    }

    #[test]
    fn restores_in_order_and_refuses_duplicates() {
        let mut recent = RecentRequests::default();
        recent.remember("a".into(), Outcome::TenantCreated);
        recent.remember("b".into(), Outcome::TokenCreated);
        let json = serde_json::to_vec(&recent).unwrap();
        let entries: Vec<Remembered> = serde_json::from_slice(&json).unwrap();
        assert_eq!(RecentRequests::from_entries(entries).unwrap(), recent);

        let twice = r#"[{"request_id":"a","outcome":{"outcome":"tenant_created"}},
                        {"request_id":"a","outcome":{"outcome":"tenant_created"}}]"#;
        let entries: Vec<Remembered> = serde_json::from_str(twice).unwrap();
        assert!(RecentRequests::from_entries(entries).is_err());
    }

    #[test]
    fn keeps_the_newest_entries_of_an_oversized_snapshot() {
        let entries = (0..REMEMBERED_REQUESTS + 2)
            .map(|n| Remembered {
                request_id: format!("r{n}"),
                outcome: Outcome::AppDeleted,
            })
            .collect();
        let recent = RecentRequests::from_entries(entries).unwrap();
        assert_eq!(recent.len(), REMEMBERED_REQUESTS);
        assert!(recent.outcome("r1").is_none());
        assert!(recent.outcome("r2").is_some());
    }
}
