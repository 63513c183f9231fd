//! Publish/subscribe: `cloudware:platform/topics`.
//!
//! [`publish`] stores a message for every subscription of a topic the
//! deployment was granted (`cloudware deploy … --publish events`). Which
//! deployments receive it is configuration, not code: each subscriber is
//! deployed with `--subscribe events` (every message) or
//! `--subscribe events:kind=a` (only messages whose attributes match), and
//! exports a [`message_handler!`](crate::message_handler).
//!
//! ```no_run
//! use cloudware_sdk::topic;
//!
//! let reached = topic::publish("events", br#"{"order":7}"#, &[("kind", "paid")])?;
//! cloudware_sdk::log::info!("delivered to {reached} subscriptions");
//! # Ok::<(), topic::SendError>(())
//! ```

use crate::bindings::cloudware::platform::topics;

pub use crate::message::SendError;

/// Publishes `payload` with `attributes` to `topic`; returns, once it is on
/// disk for each, how many subscriptions it reached (0 is not an error).
pub fn publish(
    topic: &str,
    payload: impl AsRef<[u8]>,
    attributes: &[(&str, &str)],
) -> Result<u32, SendError> {
    let attributes = crate::message::owned_attributes(attributes);
    Ok(topics::publish(topic, payload.as_ref(), &attributes)?)
}
