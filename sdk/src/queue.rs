//! Durable queues: `cloudware:platform/queues`, the asynchronous service
//! request.
//!
//! [`send`] stores a message in a queue the deployment was granted
//! (`cloudware deploy … --send-queue jobs`) and returns its id once it is on
//! disk. A deployment consuming the queue (`--consume jobs`, exporting a
//! [`message_handler!`](crate::message_handler)) gets it at least once.
//!
//! ```no_run
//! use cloudware_sdk::queue::{self, SendError};
//!
//! match queue::send("jobs", b"resize photo 7", &[("priority", "high")]) {
//!     Ok(id) => cloudware_sdk::log::info!("queued job {id}"),
//!     Err(SendError::Full(reason)) => cloudware_sdk::log::warn!("try later: {reason}"),
//!     Err(err) => cloudware_sdk::log::error!("not queued: {err}"),
//! }
//! ```

use crate::bindings::cloudware::platform::queues;

pub use crate::message::SendError;

/// Stores `payload` with `attributes` in `queue`; returns the message's id
/// once it is on disk.
pub fn send(
    queue: &str,
    payload: impl AsRef<[u8]>,
    attributes: &[(&str, &str)],
) -> Result<u64, SendError> {
    let attributes = crate::message::owned_attributes(attributes);
    Ok(queues::send(queue, payload.as_ref(), &attributes)?)
}
