//! How raft messages leave this node.
//!
//! The driver hands every outgoing raft message to a [`Transport`], always after the entries and
//! hard state they depend on are durable. A single member never addresses another node, so
//! [`LocalTransport`] suffices; a group of several uses a peer transport such as
//! [`TcpTransport`](crate::TcpTransport), whose receiving side
//! ([`serve_peers`](crate::serve_peers)) feeds messages into
//! [`RaftNode::step`](crate::RaftNode::step) — the node has no other code path for clusters.

use raft::eraftpb::Message;

/// Sends raft messages to peers. Implementations must not block: queue and return.
///
/// Delivery may fail silently — raft retries on its own (heartbeats, append probes). A transport
/// that learns a peer is unreachable may report it through
/// [`RaftNode::report_unreachable`](crate::RaftNode::report_unreachable).
pub trait Transport: Send + 'static {
    /// Queues `messages` (each carries its destination in `to`) for delivery.
    fn send(&mut self, messages: Vec<Message>);
}

/// The single-member transport: there are no peers, so any message is unexpected and dropped
/// (logged at `warn`, since it means the membership names a node nobody can reach).
#[derive(Debug, Default, Clone, Copy)]
pub struct LocalTransport;

impl Transport for LocalTransport {
    fn send(&mut self, messages: Vec<Message>) {
        for message in messages {
            tracing::warn!(
                to = message.to,
                msg_type = ?message.get_msg_type(),
                "no peer transport configured; dropping raft message"
            );
        }
    }
}

impl<F> Transport for F
where
    F: FnMut(Vec<Message>) + Send + 'static,
{
    fn send(&mut self, messages: Vec<Message>) {
        self(messages)
    }
}
