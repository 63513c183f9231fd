//! How this host sees the other hosts of its cluster: liveness observed from
//! heartbeats. Liveness is local (each host observes its peers on its own); it
//! is not replicated. What an operator wants of a host (ready or draining) is
//! replicated state ([`cloudware_state::HostMode`]); the two together give a
//! host's [`HostState`].

use cloudware_state::HostMode;
use serde::Serialize;
use std::time::Duration;

/// Liveness of the cluster's hosts as this host observes it.
pub trait PeerHealth: Send + Sync + 'static {
    /// How long ago `host` last answered a heartbeat (`None`: never, since
    /// this host started). This host itself is always up.
    fn last_seen(&self, host: u64) -> Option<Duration>;

    /// Whether `host` counts as up now.
    fn is_up(&self, host: u64) -> bool;
}

/// A host's state, as shown by `cloudware status` and in metrics.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum HostState {
    /// Up and taking instances.
    Ready,
    /// Up, keeping what it runs until that is moved; taking nothing new.
    Draining,
    /// Not answering heartbeats.
    Down,
}

impl HostState {
    /// The state of a host in `mode` that is (or is not) `up`.
    pub fn of(mode: HostMode, up: bool) -> Self {
        match (up, mode) {
            (false, _) => HostState::Down,
            (true, HostMode::Ready) => HostState::Ready,
            (true, HostMode::Draining) => HostState::Draining,
        }
    }

    /// Its name (`ready`, `draining`, `down`).
    pub fn as_str(self) -> &'static str {
        match self {
            HostState::Ready => "ready",
            HostState::Draining => "draining",
            HostState::Down => "down",
        }
    }
}
