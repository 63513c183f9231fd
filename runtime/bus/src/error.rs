//! Error types of the bus: [`BusError`] for opening and operator functions, [`SendError`] for
//! `send` and `publish`.

use crate::QueueId;

/// An error opening the bus or running an operator function.
#[derive(Debug, thiserror::Error)]
pub enum BusError {
    /// sled failed (I/O, lock held by another process …).
    #[error("bus storage: {0}")]
    Storage(String),
    /// Writes could not be made durable.
    #[error("bus flush failed: {0}")]
    Flush(String),
}

impl From<sled::Error> for BusError {
    fn from(e: sled::Error) -> Self {
        BusError::Storage(e.to_string())
    }
}

/// Why a message was not accepted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SendError {
    /// The queue (for `publish`: one subscription's queue) already holds `limit` messages.
    /// Nothing was stored.
    #[error("queue {queue} is full ({depth} of {limit} messages)")]
    Full {
        /// The full queue.
        queue: QueueId,
        /// Its current depth.
        depth: u64,
        /// Its `max_depth`.
        limit: u64,
    },
    /// The payload is larger than `max_payload_bytes`. Nothing was stored.
    #[error("payload of {size} bytes exceeds the limit of {limit} bytes")]
    TooLarge {
        /// Payload size.
        size: usize,
        /// The configured limit.
        limit: usize,
    },
    /// Storing or flushing failed; the message may or may not be stored.
    #[error("bus storage: {0}")]
    Storage(String),
}

impl From<sled::Error> for SendError {
    fn from(e: sled::Error) -> Self {
        SendError::Storage(e.to_string())
    }
}
