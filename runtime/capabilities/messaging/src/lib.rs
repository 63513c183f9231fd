//! The messaging capabilities: the seed's "async service request"
//! (`cloudware:platform/queues`) and "publish/subscribe"
//! (`cloudware:platform/topics`), on the durable [`cloudware_bus::Bus`].
//!
//! - A deployment granted `queues.send` may send to those queues of its
//!   tenant; one granted `topics.publish` may publish to those topics.
//! - A deployment whose `queues.consume` names a queue, or whose
//!   `topics.subscribe` names a topic (with an attribute filter), is a
//!   consumer: it exports `cloudware:platform/message-handler` and each
//!   message is handed to a fresh instance of it ([`Consumers`]), at least
//!   once, with retries, backoff and a dead-letter queue.
//!
//! Subscriptions are configuration (the deployment's grant), not code.

mod consumers;
mod grant;
mod host;

pub use consumers::{ComponentResolver, ConsumerSpec, Consumers, HANDLER_INTERFACE};
pub use grant::{ConsumeSpec, GrantError, QueuesSection, SubscribeSpec, TopicsSection};
pub use host::{MessagesTypes, QueuesCapability, QueuesGrant, TopicsCapability, TopicsGrant};
