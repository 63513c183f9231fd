//! Hosts: the machines of the cluster, as the replicated state knows them.
//!
//! A host gets its id (which is also its raft node id) when it joins:
//! [`Command::JoinHost`](crate::Command::JoinHost) allocates the next free
//! one, deterministically, so every replica agrees. The registry holds where
//! each host listens (cluster peer port, admin API, gateway), its labels for
//! placement, and its administrative state. Liveness (heartbeats) is not
//! replicated: it is observed by each host on its own.
//!
//! The cluster's join secret is kept here only as a SHA-256 hash, so any host
//! can check a joining host's token.

use crate::command::Outcome;
use crate::error::CommandError;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// The most hosts one cluster may have.
pub const MAX_HOSTS: usize = 256;

/// Where a host listens.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct HostAddrs {
    /// Its cluster port (raft and host-to-host calls), `ip:port`.
    pub cluster: String,
    /// Its admin API, `ip:port`.
    pub api: String,
    /// Its HTTP gateway, `ip:port`.
    pub gateway: String,
}

/// What an operator wants of a host.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HostMode {
    /// Takes instances.
    #[default]
    Ready,
    /// Keeps what it runs until moved elsewhere; takes nothing new.
    Draining,
}

/// A host of the cluster.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Host {
    /// Its id, also its raft node id.
    pub id: u64,
    /// Its name (unique; the machine's hostname by default).
    pub name: String,
    /// Where it listens.
    pub addrs: HostAddrs,
    /// Labels for placement (`zone=a`, …).
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// What the operator wants of it.
    #[serde(default)]
    pub mode: HostMode,
    /// When it joined (unix milliseconds).
    pub joined_at: u64,
}

/// Every host, by id, the highest id ever given, and the join secret's hash.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Hosts {
    by_id: BTreeMap<u64, Host>,
    /// Ids are never reused: a removed raft member must not come back under its old id.
    last_id: u64,
    join_secret_hash: Option<String>,
}

impl Hosts {
    pub(crate) fn from_parts(
        by_id: BTreeMap<u64, Host>,
        last_id: u64,
        join_secret_hash: Option<String>,
    ) -> Self {
        let last_id = by_id.keys().next_back().copied().unwrap_or(0).max(last_id);
        Hosts {
            by_id,
            last_id,
            join_secret_hash,
        }
    }

    pub(crate) fn last_id(&self) -> u64 {
        self.last_id
    }

    pub(crate) fn map(&self) -> &BTreeMap<u64, Host> {
        &self.by_id
    }

    pub(crate) fn join_secret_hash(&self) -> Option<&str> {
        self.join_secret_hash.as_deref()
    }

    pub(crate) fn set_join_secret(&mut self, hash: &str) -> Result<Outcome, CommandError> {
        if hash.len() != 64 || !hash.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
            return Err(CommandError::InvalidSecretHash);
        }
        self.join_secret_hash = Some(hash.to_string());
        Ok(Outcome::JoinSecretSet)
    }

    /// Adds a host under the next free id (or `id` when given: the founding host is 1).
    pub(crate) fn join(
        &mut self,
        id: Option<u64>,
        name: &str,
        addrs: &HostAddrs,
        labels: &BTreeMap<String, String>,
        at: u64,
    ) -> Result<Outcome, CommandError> {
        validate_host(name, addrs, labels)?;
        if let Some(existing) = self.by_id.values().find(|h| h.name == name) {
            return Err(CommandError::HostExists {
                name: name.to_string(),
                id: existing.id,
            });
        }
        if self.by_id.len() >= MAX_HOSTS {
            return Err(CommandError::InvalidHostSpec {
                reason: format!("a cluster has at most {MAX_HOSTS} hosts"),
            });
        }
        let id = match id {
            Some(0) => {
                return Err(CommandError::InvalidHostSpec {
                    reason: "host id 0 is reserved".into(),
                });
            }
            Some(id) if id <= self.last_id => {
                return Err(CommandError::HostExists {
                    name: name.to_string(),
                    id,
                });
            }
            Some(id) => id,
            None => self.last_id + 1,
        };
        self.last_id = id;
        self.by_id.insert(
            id,
            Host {
                id,
                name: name.to_string(),
                addrs: addrs.clone(),
                labels: labels.clone(),
                mode: HostMode::Ready,
                joined_at: at,
            },
        );
        Ok(Outcome::HostJoined { id })
    }

    /// Records a host's new addresses (it restarted on other ports).
    pub(crate) fn update_addrs(
        &mut self,
        id: u64,
        addrs: &HostAddrs,
    ) -> Result<Outcome, CommandError> {
        let host = self
            .by_id
            .get_mut(&id)
            .ok_or(CommandError::UnknownHost { id })?;
        validate_host(&host.name, addrs, &host.labels)?;
        host.addrs = addrs.clone();
        Ok(Outcome::HostUpdated)
    }

    pub(crate) fn set_mode(&mut self, id: u64, mode: HostMode) -> Result<Outcome, CommandError> {
        let host = self
            .by_id
            .get_mut(&id)
            .ok_or(CommandError::UnknownHost { id })?;
        host.mode = mode;
        Ok(Outcome::HostUpdated)
    }

    pub(crate) fn remove(&mut self, id: u64) -> Result<Outcome, CommandError> {
        self.by_id
            .remove(&id)
            .ok_or(CommandError::UnknownHost { id })?;
        Ok(Outcome::HostRemoved)
    }
}

fn validate_host(
    name: &str,
    addrs: &HostAddrs,
    labels: &BTreeMap<String, String>,
) -> Result<(), CommandError> {
    let invalid = |reason: String| Err(CommandError::InvalidHostSpec { reason });
    if !word_ok(name, 128) {
        return invalid(format!(
            "host name `{name}` must be 1-128 ASCII letters, digits, `-`, `.` or `_`"
        ));
    }
    for (what, addr) in [
        ("cluster", &addrs.cluster),
        ("api", &addrs.api),
        ("gateway", &addrs.gateway),
    ] {
        if addr.parse::<std::net::SocketAddr>().is_err() {
            return invalid(format!("the {what} address `{addr}` is not ip:port"));
        }
    }
    if labels.len() > 32 {
        return invalid("a host has at most 32 labels".into());
    }
    for (key, value) in labels {
        check_label(key, value).or_else(invalid)?;
    }
    Ok(())
}

/// Whether `s` is 1 to `max` ASCII letters, digits, `-`, `.` or `_`.
fn word_ok(s: &str, max: usize) -> bool {
    !s.is_empty()
        && s.len() <= max
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_'))
}

/// Checks one placement label (of a host, or required by a spread rule).
pub(crate) fn check_label(key: &str, value: &str) -> Result<(), String> {
    if !word_ok(key, 63) || (!value.is_empty() && !word_ok(value, 63)) {
        return Err(format!("label `{key}={value}` must be short ASCII words"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addrs(port: u16) -> HostAddrs {
        HostAddrs {
            cluster: format!("127.0.0.1:{port}"),
            api: format!("127.0.0.1:{}", port + 1),
            gateway: format!("127.0.0.1:{}", port + 2),
        }
    }

    #[test]
    fn ids_are_allocated_in_order_and_names_are_unique() {
        let mut hosts = Hosts::default();
        let none = BTreeMap::new();
        assert_eq!(
            hosts.join(Some(1), "a", &addrs(7000), &none, 1).unwrap(),
            Outcome::HostJoined { id: 1 }
        );
        assert_eq!(
            hosts.join(None, "b", &addrs(7010), &none, 2).unwrap(),
            Outcome::HostJoined { id: 2 }
        );
        assert!(matches!(
            hosts.join(None, "b", &addrs(7020), &none, 3),
            Err(CommandError::HostExists { id: 2, .. })
        ));
        assert!(matches!(
            hosts.join(Some(2), "c", &addrs(7020), &none, 3),
            Err(CommandError::HostExists { id: 2, .. })
        ));
        hosts.remove(2).unwrap();
        // Ids are never reused.
        assert_eq!(
            hosts.join(None, "c", &addrs(7020), &none, 4).unwrap(),
            Outcome::HostJoined { id: 3 }
        );
        assert!(matches!(
            hosts.remove(9),
            Err(CommandError::UnknownHost { id: 9 })
        ));
    }

    #[test]
    fn bad_specs_are_refused() {
        let mut hosts = Hosts::default();
        let none = BTreeMap::new();
        let mut bad = addrs(7000);
        bad.api = "localhost".into();
        assert!(matches!(
            hosts.join(None, "a", &bad, &none, 1),
            Err(CommandError::InvalidHostSpec { .. })
        ));
        assert!(matches!(
            hosts.join(None, "a b", &addrs(7000), &none, 1),
            Err(CommandError::InvalidHostSpec { .. })
        ));
        let labels = BTreeMap::from([("zone".to_string(), "a b".to_string())]);
        assert!(matches!(
            hosts.join(None, "a", &addrs(7000), &labels, 1),
            Err(CommandError::InvalidHostSpec { .. })
        ));
        assert!(matches!(
            hosts.set_join_secret("nothex"),
            Err(CommandError::InvalidSecretHash)
        ));
        assert!(hosts.map().is_empty());
    }
}
