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
//!
//! The bus is a [`MessageBus`]: a single host's local [`cloudware_bus::Bus`], or a
//! cluster's replicated bus ([`Replicated`]) whose consumers run on every host but deliver
//! only on the bus group's leader.

mod backend;
mod consumers;
mod grant;
mod host;

pub use backend::{Consumer, MessageBus, Replicated};
pub use consumers::{ComponentResolver, ConsumerSpec, Consumers, HANDLER_INTERFACE};
pub use grant::{ConsumeSpec, GrantError, QueuesSection, SubscribeSpec, TopicsSection};
pub use host::{MessagesTypes, QueuesCapability, QueuesGrant, TopicsCapability, TopicsGrant};
