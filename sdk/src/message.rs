//! Messages from queues and topics, and the handler a consumer exports with
//! [`message_handler!`](crate::message_handler).
//!
//! A deployment receives a queue's messages when it is deployed with
//! `--consume QUEUE`, and a topic's with `--subscribe TOPIC[:k=v,...]`. Each
//! message is handled by a fresh instance. Returning `Err` (or panicking,
//! which traps the instance) asks for a later redelivery; after the
//! queue's maximum of attempts the message is dead-lettered. Delivery is at
//! least once, so a handler should be idempotent, e.g. keyed by
//! [`Message::id`].
//!
//! ```no_run
//! use cloudware_sdk::kv::Bucket;
//! use cloudware_sdk::message::Message;
//!
//! fn handle(message: Message) -> Result<(), String> {
//!     if message.attribute("kind") == Some("test") {
//!         return Ok(()); // ignore
//!     }
//!     let bucket = Bucket::open("jobs-done").map_err(|err| err.to_string())?;
//!     bucket
//!         .set(&message.id.to_string(), &message.payload)
//!         .map_err(|err| err.to_string())
//! }
//!
//! cloudware_sdk::message_handler!(handle);
//! ```

use std::fmt;

use crate::bindings::cloudware::platform::messages;

/// One delivery of a message.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Message {
    /// The message's id, unique within its queue or topic (the id
    /// [`queue::send`](crate::queue::send) returned).
    pub id: u64,
    /// The queue or topic it was sent to.
    pub source: String,
    /// The body.
    pub payload: Vec<u8>,
    /// Its attributes, in the order they were sent.
    pub attributes: Vec<(String, String)>,
    /// 1 for the first delivery, 2 for the first retry, ...
    pub attempt: u32,
}

impl Message {
    /// The value of the first attribute called `name`.
    pub fn attribute(&self, name: &str) -> Option<&str> {
        self.attributes
            .iter()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.as_str())
    }

    /// The payload as UTF-8 text.
    pub fn text(&self) -> Result<&str, std::str::Utf8Error> {
        std::str::from_utf8(&self.payload)
    }

    /// The payload parsed as JSON.
    #[cfg(feature = "json")]
    pub fn json<T: serde::de::DeserializeOwned>(&self) -> Result<T, serde_json::Error> {
        serde_json::from_slice(&self.payload)
    }
}

impl From<messages::Message> for Message {
    fn from(message: messages::Message) -> Self {
        Message {
            id: message.id,
            source: message.source,
            payload: message.payload,
            attributes: message.attributes,
            attempt: message.attempt,
        }
    }
}

/// What a message handler may return: `()` (handled) or `Result<(), E>`
/// with `E: Display` (an `Err` asks for a redelivery, its text is logged).
pub trait HandlerResult {
    /// The outcome as the platform sees it.
    fn into_outcome(self) -> Result<(), String>;
}

impl HandlerResult for () {
    fn into_outcome(self) -> Result<(), String> {
        Ok(())
    }
}

impl<E: fmt::Display> HandlerResult for Result<(), E> {
    fn into_outcome(self) -> Result<(), String> {
        self.map_err(|err| err.to_string())
    }
}

/// Why a message was not sent (by [`queue::send`](crate::queue::send) or
/// [`topic::publish`](crate::topic::publish)).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum SendError {
    /// The deployment was not granted this queue or topic.
    NotGranted(String),
    /// The queue holds its maximum of messages: back-pressure, try later.
    Full(String),
    /// The payload is larger than the platform accepts (its limit in bytes).
    TooLarge(u64),
    /// The message could not be stored.
    Unavailable(String),
}

impl SendError {
    /// Whether trying again later may succeed (a full queue, a store that
    /// is unavailable for now).
    pub fn is_transient(&self) -> bool {
        matches!(self, SendError::Full(_) | SendError::Unavailable(_))
    }
}

impl fmt::Display for SendError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SendError::NotGranted(name) => write!(f, "not granted: {name}"),
            SendError::Full(message) => write!(f, "queue full: {message}"),
            SendError::TooLarge(limit) => {
                write!(f, "payload too large: the limit is {limit} bytes")
            }
            SendError::Unavailable(message) => write!(f, "message store unavailable: {message}"),
        }
    }
}

impl std::error::Error for SendError {}

impl From<messages::SendError> for SendError {
    fn from(err: messages::SendError) -> Self {
        match err {
            messages::SendError::NotGranted(name) => SendError::NotGranted(name),
            messages::SendError::Full(message) => SendError::Full(message),
            messages::SendError::TooLarge(limit) => SendError::TooLarge(limit),
            messages::SendError::Unavailable(message) => SendError::Unavailable(message),
        }
    }
}

/// Attributes as the raw bindings take them.
pub(crate) fn owned_attributes(attributes: &[(&str, &str)]) -> Vec<(String, String)> {
    attributes
        .iter()
        .map(|(key, value)| ((*key).to_owned(), (*value).to_owned()))
        .collect()
}

/// Implementation details of [`message_handler!`](crate::message_handler);
/// not a stable API.
#[doc(hidden)]
pub mod __private {
    use super::{HandlerResult, Message, messages};

    /// Runs `handler` for one delivery.
    pub fn handle<R: HandlerResult>(
        message: messages::Message,
        handler: impl FnOnce(Message) -> R,
    ) -> Result<(), String> {
        handler(message.into()).into_outcome()
    }
}
