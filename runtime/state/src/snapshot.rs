//! Snapshots: the whole state as bytes, for raft log compaction and for
//! nodes that join late.
//!
//! A snapshot is JSON with a format number. Maps are ordered, so equal states
//! write equal bytes. Indexes are not written; loading rebuilds them and
//! checks the state's invariants.

use crate::apps::{App, Apps};
use crate::error::SnapshotError;
use crate::hosts::{Host, Hosts};
use crate::packages::{Package, Packages};
use crate::partners::{Partner, Partners};
use crate::recent::{RecentRequests, Remembered};
use crate::state::State;
use crate::tenants::{Directory, Tenant, Token};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// The snapshot format this build writes and reads.
pub const SNAPSHOT_FORMAT: u32 = 1;

/// Just the format number, read first so that a snapshot of another format
/// is reported as such rather than as malformed.
#[derive(Deserialize)]
struct Header {
    format: u32,
}

#[derive(Serialize)]
struct SnapshotRef<'a> {
    format: u32,
    tenants: &'a BTreeMap<String, Tenant>,
    tokens: &'a BTreeMap<String, Token>,
    packages: &'a BTreeMap<String, Package>,
    apps: &'a BTreeMap<String, BTreeMap<String, App>>,
    partners: &'a BTreeMap<String, Partner>,
    hosts: &'a BTreeMap<u64, Host>,
    last_host_id: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    join_secret_hash: Option<&'a str>,
    recent_requests: &'a RecentRequests,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    partner_requests: &'a BTreeMap<String, u64>,
}

#[derive(Deserialize)]
struct SnapshotData {
    tenants: BTreeMap<String, Tenant>,
    tokens: BTreeMap<String, Token>,
    packages: BTreeMap<String, Package>,
    apps: BTreeMap<String, BTreeMap<String, App>>,
    #[serde(default)]
    partners: BTreeMap<String, Partner>,
    #[serde(default)]
    hosts: BTreeMap<u64, Host>,
    #[serde(default)]
    last_host_id: u64,
    #[serde(default)]
    join_secret_hash: Option<String>,
    recent_requests: Vec<Remembered>,
    #[serde(default)]
    partner_requests: BTreeMap<String, u64>,
}

impl State {
    /// The whole state, including the remembered request ids, as bytes.
    /// Equal states give equal bytes.
    pub fn to_snapshot(&self) -> Vec<u8> {
        serde_json::to_vec(&SnapshotRef {
            format: SNAPSHOT_FORMAT,
            tenants: self.directory.tenants_map(),
            tokens: self.directory.tokens_map(),
            packages: self.packages.map(),
            apps: self.apps.map(),
            partners: self.partners.map(),
            hosts: self.hosts.map(),
            last_host_id: self.hosts.last_id(),
            join_secret_hash: self.hosts.join_secret_hash(),
            recent_requests: &self.recent,
            partner_requests: self.partner_requests.entries(),
        })
        .expect("the state has only string map keys, so it always serializes")
    }

    /// Loads a state written by [`State::to_snapshot`], rebuilding its
    /// indexes and checking its invariants.
    pub fn from_snapshot(bytes: &[u8]) -> Result<State, SnapshotError> {
        let Header { format } = serde_json::from_slice(bytes)?;
        if format != SNAPSHOT_FORMAT {
            return Err(SnapshotError::UnsupportedFormat {
                found: format,
                supported: SNAPSHOT_FORMAT,
            });
        }
        let data: SnapshotData = serde_json::from_slice(bytes)?;
        let inconsistent = |what: String| Err(SnapshotError::Inconsistent(what));
        for package in data.packages.values() {
            if let Some(owner) = package
                .owners
                .iter()
                .find(|o| !data.tenants.contains_key(*o))
            {
                return inconsistent(format!(
                    "package `{}` is owned by unknown tenant `{owner}`",
                    package.digest
                ));
            }
        }
        if let Some(tenant) = data.apps.keys().find(|t| !data.tenants.contains_key(*t)) {
            return inconsistent(format!("apps belong to unknown tenant `{tenant}`"));
        }
        Ok(State {
            directory: Directory::from_parts(data.tenants, data.tokens)?,
            packages: Packages::from_parts(data.packages)?,
            apps: Apps::from_parts(data.apps)?,
            partners: Partners::from_parts(data.partners),
            hosts: Hosts::from_parts(data.hosts, data.last_host_id, data.join_secret_hash),
            recent: RecentRequests::from_entries(data.recent_requests)?,
            partner_requests: crate::replays::AcceptedRequests::from_entries(data.partner_requests),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::world;

    #[test]
    fn round_trips() {
        let h = world();
        let bytes = h.state.to_snapshot();
        let restored = State::from_snapshot(&bytes).unwrap();
        assert_eq!(restored, h.state);
        assert_eq!(restored.to_snapshot(), bytes);
        assert_eq!(restored.routing_table(), h.state.routing_table());
    }

    #[test]
    fn empty_state_round_trips() {
        let state = State::new();
        assert_eq!(State::from_snapshot(&state.to_snapshot()).unwrap(), state);
    }

    #[test]
    fn rejects_other_formats_and_garbage() {
        let bytes = world().state.to_snapshot();
        let text = String::from_utf8(bytes).unwrap();
        let future = text.replacen("\"format\":1", "\"format\":2", 1);
        assert!(matches!(
            State::from_snapshot(future.as_bytes()),
            Err(SnapshotError::UnsupportedFormat {
                found: 2,
                supported: 1
            })
        ));
        assert!(matches!(
            State::from_snapshot(b"not json"),
            Err(SnapshotError::Malformed(_))
        ));
        assert!(matches!(
            State::from_snapshot(br#"{"format":1}"#),
            Err(SnapshotError::Malformed(_))
        ));
    }

    #[test]
    fn rejects_inconsistent_snapshots() {
        let text = String::from_utf8(world().state.to_snapshot()).unwrap();
        // An app whose current version is not active.
        let broken = text.replacen("\"current\":1", "\"current\":3", 1);
        assert_ne!(broken, text);
        assert!(matches!(
            State::from_snapshot(broken.as_bytes()),
            Err(SnapshotError::Inconsistent(_))
        ));
        // Tenants gone, but their apps and packages remain.
        let mut value: serde_json::Value = serde_json::from_str(&text).unwrap();
        value["tenants"] = serde_json::json!({});
        value["tokens"] = serde_json::json!({});
        let orphaned = serde_json::to_vec(&value).unwrap();
        assert!(matches!(
            State::from_snapshot(&orphaned),
            Err(SnapshotError::Inconsistent(_))
        ));
    }
}
