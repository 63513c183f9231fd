//! Cloudware's message bus replicated by its own raft group: durable per-tenant queues and
//! topic fan-out whose acknowledged messages survive the loss of any one host of three.
//!
//! ```text
//! send/publish ──► ReplicatedBus ──(follower: BusForwarder)──► leader's RaftNode::propose
//!                                                                  │ committed on a majority
//!                                                                  ▼
//!                        every member: BusMachine::apply (deterministic) ── snapshot/restore
//!                                                                  │
//! leader only: consumers lease due messages in memory ─► MessageHandler ─► propose Ack / Fail
//! ```
//!
//! Design:
//! - [`BusMachine`] is a pure [`cloudware_raft::StateMachine`]: every queue's unacknowledged
//!   messages (body, attributes, enqueue time, attempt count, earliest retry), topics'
//!   retained logs (each publication stored once, referenced by the subscription queues that
//!   still hold it), subscriptions with their attribute filters (as
//!   [`cloudware_bus::Subscription::matches`]), per-queue policies, dead letters and id
//!   counters. [`Command`]s carry everything a decision depends on, including the proposer's
//!   clock, so applying them is deterministic; the snapshot is the whole machine. Limits
//!   (message bytes, per-queue `max_depth`, total stored bytes — which keeps a snapshot
//!   within one raft transport frame) are enforced by the machine itself, so every
//!   member agrees on what was refused ([`Rejection`]), and checked before proposing.
//! - [`ReplicatedBus`] is the handle: `send`/`publish`/`set_policy`/`set_subscriptions`/
//!   `replay`/`purge_dead` propose a command and return only once it is committed (fsynced on
//!   a majority) and applied; a follower hands it to its [`BusForwarder`] (the cluster host
//!   will forward over its host-to-host calls; [`LocalForwarder`] serves in-process groups).
//!   While no leader is known a write waits, bounded by `leader_wait`. Reads (`stats`,
//!   `queues`, `dead_letters`, `subscriptions`) use this member's copy;
//!   [`ReplicatedBus::sync_reads`] makes them linearizable.
//! - Delivery ([`ReplicatedBus::consume`], module `deliver`): only the leader's host
//!   delivers. A host that becomes leader first applies everything committed before (read
//!   index), then leases due messages in memory and proposes `Ack` on `Ok`, `Fail` on
//!   `Err`/panic/lease timeout; `Fail` carries the attempt it reports, so a stale report never
//!   counts twice, and the machine schedules the retry by the queue's backoff or
//!   dead-letters the message after `max_attempts`. At least once: a new leader delivers
//!   everything unacknowledged again, so only messages in flight at a failover (at most the
//!   consumers' `concurrency` per queue) can be delivered twice.
//!
//! The public types are cloudware-bus's ([`QueueId`](cloudware_bus::QueueId),
//! [`NewMessage`](cloudware_bus::NewMessage), [`Delivery`](cloudware_bus::Delivery),
//! [`QueuePolicy`](cloudware_bus::QueuePolicy), [`Subscription`](cloudware_bus::Subscription),
//! [`DeadLetter`](cloudware_bus::DeadLetter) …), and [`BusError`] converts into
//! [`cloudware_bus::SendError`], so the messaging capability can switch backends with little
//! change.
//!
//! Modules: `command` (commands, outcomes, wire types and their encoding), `machine` (the
//! state machine; its read-only queries in `machine::query`), `bus` (the handle,
//! proposing), `deliver` (consumers), `forward` (follower-to-leader forwarding), `error`.

mod bus;
mod command;
mod deliver;
mod error;
mod forward;
mod machine;
#[cfg(test)]
mod machine_tests;

pub use bus::{DEFAULT_LEADER_WAIT, DEFAULT_MAX_STORED_BYTES, ReplicatedBus, ReplicatedConfig};
pub use cloudware_bus::ConsumerHandle;
pub use command::{Body, Command, Outcome, QueueKey, Rejection, WirePolicy, WireSubscription};
pub use error::BusError;
pub use forward::{BusForwarder, ForwardError, LocalForwarder};
pub use machine::BusMachine;
