//! Cloudware's replicated command log: a raft-rs node over sled storage.
//!
//! The platform's desired state is a log of opaque commands replicated by raft and applied, in
//! order, to a [`StateMachine`] supplied by the caller. This crate knows nothing about what the
//! commands mean.
//!
//! ```text
//! RaftNode::propose ──► driver task ──► RawNode (raft-rs) ──► SledStorage (fsync)
//!                          │                                      │
//!                          ├─ Transport (peers)                   │
//!                          └─ StateMachine::apply ◄── committed ──┘ ──► outcome to proposer
//! ```
//!
//! - [`RaftNode`] — open/recover, [`propose`](RaftNode::propose) (leader only),
//!   [`read_index`](RaftNode::read_index) (any member: linearizable reads),
//!   [`subscribe`](RaftNode::subscribe) to the applied index, [`status`](RaftNode::status) and
//!   [`watch_status`](RaftNode::watch_status), [`compact_now`](RaftNode::compact_now),
//!   [`shutdown`](RaftNode::shutdown).
//! - [`SledStorage`] — raft-rs's `Storage` over sled: entries, hard state, membership, snapshot.
//! - [`Transport`] — where outgoing raft messages go; [`LocalTransport`] for a single member,
//!   [`TcpTransport`] plus [`serve_peers`] (module [`tcp`]) for a group of several.
//!
//! A group starts with one member by default, or with a fixed set of voters
//! ([`RaftConfig::initial_voters`]) connected by [`TcpTransport`]/[`serve_peers`], which feeds
//! incoming messages to [`RaftNode::step`]. Membership changes go through conf changes
//! ([`RaftNode::change_membership`]); a node opened with [`RaftConfig::join`] starts empty and
//! waits to be added and sent the leader's snapshot.
//!
//! Durability: a proposal resolves only after its entry was fsynced and applied. The state
//! machine itself is not persisted; it is rebuilt on open from the latest snapshot plus the log
//! after it, so [`StateMachine::apply`] must be deterministic.

mod config;
mod driver;
mod error;
mod logger;
mod node;
mod pending;
pub mod storage;
pub mod tcp;
mod transport;

pub use config::RaftConfig;
pub use error::{ProposeError, RaftError, StorageError};
pub use node::{Membership, MembershipChange, RaftNode, RaftStatus, Role};
pub use storage::{LogPosition, SledStorage};
pub use tcp::{
    PeerDialer, PeerInbox, PeerServer, PeerStream, PlainTcp, TcpTransport, TcpTransportConfig,
    serve_peer_stream, serve_peers,
};
pub use transport::{LocalTransport, Transport};

/// raft-rs's protobuf messages (for transports) and its `Storage` trait.
pub use raft::{Storage, eraftpb};

/// The replicated state: applies committed commands in log order, and converts to and from a
/// snapshot. Owned by the driver task; its methods run there, so keep them quick.
pub trait StateMachine: Send + 'static {
    /// Applies the committed command at log `index`; returns the outcome handed to the proposer
    /// (on the node that proposed it). Must be deterministic: every node, and every restart,
    /// replays the same commands. Called exactly once per index per process lifetime, in
    /// increasing index order.
    fn apply(&mut self, index: u64, command: &[u8]) -> Vec<u8>;

    /// Serializes the whole state as of the last applied index.
    fn snapshot(&self) -> Vec<u8>;

    /// Replaces the whole state with a snapshot produced by [`StateMachine::snapshot`].
    fn restore(&mut self, snapshot: &[u8]) -> Result<(), String>;
}
