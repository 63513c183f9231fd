//! Error types: what opening, driving and talking to a raft node can fail with.
//!
//! Three enums, one per audience:
//! - [`StorageError`]: the sled-backed log store failed or holds data it cannot decode;
//! - [`RaftError`]: opening, recovering, compacting or driving the node failed (fatal for the node);
//! - [`ProposeError`]: a single proposal or read did not go through (the node itself is fine).

use std::path::PathBuf;
use std::time::Duration;

/// The raft log store (sled) failed, or what it read back is corrupt.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    /// A sled operation failed; `op` says which one and on what.
    #[error("raft storage: {op} failed")]
    Sled {
        /// What the store was doing, e.g. "appending entries 5..=9".
        op: String,
        /// The sled error.
        #[source]
        source: sled::Error,
    },
    /// A record read from disk could not be decoded or contradicts the rest of the store.
    #[error("raft storage is corrupt: {what}: {reason}")]
    Corrupt {
        /// Which record is corrupt, e.g. "log entry 17" or "hard state".
        what: String,
        /// Why it is considered corrupt.
        reason: String,
    },
    /// A write would break the log's invariants (e.g. a gap, or overwriting compacted entries).
    /// This is a bug in the caller, not a disk problem.
    #[error("raft storage: refused write: {0}")]
    Invariant(String),
    /// A record could not be encoded (protobuf); this is a bug, not a disk problem.
    #[error("raft storage: encoding {what} failed")]
    Encode {
        /// What was being encoded.
        what: &'static str,
        /// The protobuf error.
        #[source]
        source: protobuf::ProtobufError,
    },
}

impl StorageError {
    /// Wraps a sled error with the operation it interrupted.
    pub(crate) fn sled(op: impl Into<String>, source: sled::Error) -> Self {
        StorageError::Sled {
            op: op.into(),
            source,
        }
    }

    /// Builds a corruption error naming the corrupt record.
    pub(crate) fn corrupt(what: impl Into<String>, reason: impl Into<String>) -> Self {
        StorageError::Corrupt {
            what: what.into(),
            reason: reason.into(),
        }
    }
}

/// Opening, recovering or driving a raft node failed. Errors raised by the driver task are fatal:
/// the node stops, pending proposals resolve with [`ProposeError::Stopped`], and
/// [`RaftNode::shutdown`](crate::RaftNode::shutdown) returns the error.
#[derive(Debug, thiserror::Error)]
pub enum RaftError {
    /// The configuration is unusable.
    #[error("invalid raft configuration: {0}")]
    Config(String),
    /// The sled database in `dir` could not be opened.
    #[error("opening raft storage in {}", dir.display())]
    Open {
        /// The data directory.
        dir: PathBuf,
        /// Why it failed.
        #[source]
        source: StorageError,
    },
    /// The log store failed while the node was running.
    #[error(transparent)]
    Storage(#[from] StorageError),
    /// The state machine rejected a snapshot.
    #[error("restoring the state machine from the snapshot at index {index} failed: {reason}")]
    Restore {
        /// The snapshot's log index.
        index: u64,
        /// The state machine's explanation.
        reason: String,
    },
    /// raft-rs refused an operation.
    #[error("raft: {context}")]
    Raft {
        /// What the node was doing.
        context: String,
        /// The raft-rs error.
        #[source]
        source: raft::Error,
    },
    /// Recovery (replaying the committed log and, for a lone voter, winning the election) did
    /// not finish in time.
    #[error("raft node {node_id} did not finish recovery within {timeout:?}")]
    StartupTimeout {
        /// This node's id.
        node_id: u64,
        /// How long `open` waited.
        timeout: Duration,
    },
    /// The driver task is gone (shut down, failed earlier, or panicked).
    #[error("raft node stopped{}", reason.as_deref().map(|r| format!(": {r}")).unwrap_or_default())]
    Stopped {
        /// Why, when known.
        reason: Option<String>,
    },
}

impl RaftError {
    /// Wraps a raft-rs error with what the node was doing.
    pub(crate) fn raft(context: impl Into<String>, source: raft::Error) -> Self {
        RaftError::Raft {
            context: context.into(),
            source,
        }
    }
}

/// A proposal or read-index request did not succeed. The node keeps running.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProposeError {
    /// This node is not the leader; `leader` is the current leader when one is known.
    #[error("not the raft leader (leader: {leader:?})")]
    NotLeader {
        /// The leader's node id, if known.
        leader: Option<u64>,
    },
    /// raft dropped the proposal: it was refused (e.g. leadership transfer in progress) or its
    /// log entry was overwritten after a leadership change. The command was NOT applied.
    #[error("proposal dropped by raft")]
    Dropped,
    /// No outcome within the timeout. The command may still be applied later.
    #[error("no outcome within {0:?}; the command may still be applied")]
    Timeout(Duration),
    /// The node shut down or failed before the request completed.
    #[error("raft node stopped")]
    Stopped,
}
