//! [`BusError`]: why a replicated bus operation did not go through, and whether it may still
//! take effect. Converts into cloudware-bus's [`SendError`] so the messaging capability can
//! switch backends with little change.

use std::time::Duration;

use cloudware_bus::{QueueId, SendError};

use crate::command::Rejection;

/// A replicated bus operation failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BusError {
    /// The queue (for `publish`: one matching subscription's queue) holds `limit` messages.
    /// Nothing was stored.
    #[error("queue {queue} is full ({depth} of {limit} messages)")]
    Full {
        /// The full queue.
        queue: QueueId,
        /// Its depth.
        depth: u64,
        /// Its `max_depth`.
        limit: u64,
    },
    /// The message is larger than the limit. Nothing was stored.
    #[error("message of {size} bytes exceeds the limit of {limit} bytes")]
    TooLarge {
        /// Payload plus attribute bytes.
        size: usize,
        /// The configured limit.
        limit: usize,
    },
    /// The group holds its maximum of message bytes (`max_stored_bytes`). Nothing was stored.
    #[error("the replicated bus is full ({stored} of {limit} bytes stored)")]
    OverCapacity {
        /// Bytes held.
        stored: u64,
        /// The configured bound.
        limit: u64,
    },
    /// `send` addressed a topic subscription's queue. Nothing was stored.
    #[error("{queue} is a topic subscription: publish to its topic instead")]
    NotAQueue {
        /// The addressed queue.
        queue: QueueId,
    },
    /// No leader took the command within `waited` (election, no quorum, forwarding failed):
    /// it was NOT applied; retrying is safe.
    #[error("the replicated bus is unavailable after {waited:?} ({op}): {reason}")]
    Unavailable {
        /// The operation, e.g. "send".
        op: &'static str,
        /// How long it waited for a leader.
        waited: Duration,
        /// The last failure seen.
        reason: String,
    },
    /// The command was handed to raft but no outcome came (timeout, leader lost mid-way): it
    /// may or may not be applied.
    #[error("the outcome of {op} is unknown: {reason}; it may still be applied")]
    Unknown {
        /// The operation.
        op: &'static str,
        /// What happened.
        reason: String,
    },
    /// This member's raft node stopped.
    #[error("the replicated bus stopped ({op})")]
    Stopped {
        /// The operation.
        op: &'static str,
    },
    /// An outcome could not be decoded, or a command was refused as malformed (members of
    /// different versions?).
    #[error("replicated bus codec ({op}): {reason}")]
    Codec {
        /// The operation.
        op: &'static str,
        /// The decoder's message.
        reason: String,
    },
}

impl BusError {
    /// The error for a command the machine refused.
    pub(crate) fn rejected(op: &'static str, rejection: Rejection) -> Self {
        match rejection {
            Rejection::Full {
                queue,
                depth,
                limit,
            } => BusError::Full {
                queue: QueueId::from(&queue),
                depth,
                limit,
            },
            Rejection::TooLarge { size, limit } => BusError::TooLarge { size, limit },
            Rejection::OverCapacity { stored, limit } => BusError::OverCapacity { stored, limit },
            Rejection::NotAQueue { queue } => BusError::NotAQueue {
                queue: QueueId::from(&queue),
            },
            Rejection::Malformed(reason) => BusError::Codec { op, reason },
        }
    }

    /// Whether the operation certainly did not take effect (safe to retry).
    pub fn is_not_applied(&self) -> bool {
        !matches!(self, BusError::Unknown { .. })
    }
}

impl From<BusError> for SendError {
    fn from(e: BusError) -> Self {
        match e {
            BusError::Full {
                queue,
                depth,
                limit,
            } => SendError::Full {
                queue,
                depth,
                limit,
            },
            BusError::TooLarge { size, limit } => SendError::TooLarge { size, limit },
            other => SendError::Storage(other.to_string()),
        }
    }
}
