//! Cloudware's message bus: durable per-tenant queues ("async service request") and topic
//! fan-out ("publish/subscribe"), stored in an append-only queue log (message bodies) and sled
//! (dead letters, topic logs, cursors, metadata).
//!
//! ```text
//! send ─────► queue log (one record) ───────┐                 ┌─► MessageHandler (ack → removed)
//!                                           ├─ group commit ──┤
//! publish ──► topic log (one sled entry) ───┘  (one fsync for └─► retry with backoff ─► dead letters
//!               └─ subscriptions: filter + durable cursor each   many writers)
//! ```
//!
//! - [`Bus`] — [`open`](Bus::open), [`send`](Bus::send), [`publish`](Bus::publish),
//!   [`consume`](Bus::consume), policies, statistics, dead letters
//!   ([`dead_letters`](Bus::dead_letters), [`replay`](Bus::replay),
//!   [`purge_dead`](Bus::purge_dead)).
//! - [`Subscription`] — configuration: which subscriber of which topic, with an attribute
//!   filter; each has its own durable cursor into the topic's log and its own queue identity
//!   ([`QueueKind::Subscription`]) for statistics, retries and dead letters.
//! - [`MessageHandler`] — how the node plugs component invocation in; this crate knows
//!   nothing about components.
//!
//! Guarantees: `send` and `publish` return only once the message is fsynced (group commit:
//! concurrent writers share flushes). Delivery is at least once: a message is removed only
//! after its handler returned `Ok`; leases live in memory, so after a restart every
//! unacknowledged message is delivered again. Message ids are monotonic per queue and never
//! reused. A consumer may see a message a moment before its `send` returns (while the group's
//! fsync is under way); if that fsync fails the sender gets an error and may send it again.
//!
//! Fresh messages are kept in memory (bounded) and handed to waiting consumers without a
//! read-back; they are still removed from disk (or passed by the cursor) only on ack.
//!
//! Modules: `bus` (the handle, open, send), `load` (rebuilding state at open), `store`
//! (sled's layout, record encodings), `tree` (the sled tree, tracking unflushed writes),
//! `segments` (the queue log: segment files, index, flush), `frame` (its checksummed
//! records), `compact` (deleting and compacting its segments), `spare` (segment files
//! prepared ahead), `commit` (group commit: the flusher thread), `queue` (in-memory queue
//! state), `log` (topic logs, message cache), `dispatch` (consumers), `settle` (acks,
//! failures), `topics`, `dead_letter`, `types` and `error` (public types).

mod bus;
mod commit;
mod compact;
mod dead_letter;
mod dispatch;
mod error;
mod frame;
mod load;
mod log;
mod queue;
#[cfg(test)]
mod queue_log_tests;
#[cfg(test)]
mod recovery_tests;
mod segments;
mod settle;
mod spare;
mod store;
mod topics;
mod tree;
mod types;

pub use bus::Bus;
pub use dispatch::{BoxFuture, ConsumerHandle, FnHandler, MessageHandler, handler_fn};
pub use error::{BusError, SendError};
pub use topics::Subscription;
pub use types::{
    BusConfig, CommitStats, DeadLetter, Delivery, NewMessage, PublishReceipt, QueueId, QueueKind,
    QueuePolicy, QueueStats,
};
