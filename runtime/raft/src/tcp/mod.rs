//! Raft over plain TCP: [`TcpTransport`] sends a node's outgoing messages to its peers,
//! [`serve_peers`] accepts the peers' connections and feeds what they send into
//! [`RaftNode::step`](crate::RaftNode::step).
//!
//! ```text
//! driver ─► TcpTransport::send ─► per-peer bounded queue ─► writer task ─► TCP ─┐
//!                                  (full: drop + count)      (reconnects with    │
//!                                                             capped backoff)    │
//! peer's RaftNode::step ◄─ connection task ◄─ serve_peers (accept loop) ◄────────┘
//! ```
//!
//! Every connection is one-way: the dialing node writes frames, the accepting node only reads
//! them. A frame is a `u32` big-endian length followed by that many bytes of a protobuf-encoded
//! [`raft::eraftpb::Message`] (see [`frame`]); frames over [`MAX_FRAME_BYTES`] or that do not
//! decode close the connection.
//!
//! Delivery is best effort, as raft expects: a message that finds its peer's queue full, its
//! peer unknown or its connection broken is dropped (and counted); raft re-sends what matters
//! (heartbeats, append probes). When a peer cannot be reached the transport calls its
//! unreachable callback, normally wired to
//! [`RaftNode::try_report_unreachable`](crate::RaftNode::try_report_unreachable) with
//! [`TcpTransport::report_unreachable_to`].
//!
//! Not yet: TLS and peer authentication. Anyone who can reach the listener can inject raft
//! messages, so bind it to a private network only. Mutual TLS (rustls, certificates naming the
//! node id) is planned to wrap both sides of these connections.

mod client;
pub mod frame;
mod server;

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::time::Duration;

use tokio::io::AsyncWrite;
use tokio::net::TcpStream;

pub use client::TcpTransport;
pub use frame::{FrameError, MAX_FRAME_BYTES};
pub use server::{PeerInbox, PeerServer, serve_peer_stream, serve_peers};

/// The write half a [`PeerDialer`] hands to the transport: frames are written to it.
pub type PeerStream = Pin<Box<dyn AsyncWrite + Send>>;

/// A dialing future.
pub type Dialing = Pin<Box<dyn Future<Output = std::io::Result<PeerStream>> + Send>>;

/// How [`TcpTransport`] opens a connection to a peer. The default, [`PlainTcp`], connects and
/// writes frames on the bare socket; a cluster wraps the socket (TLS, a preamble naming the
/// protocol) and serves the other side with [`serve_peer_stream`].
pub trait PeerDialer: Send + Sync + 'static {
    /// Opens a connection to peer `peer` at `addr`, ready for frames.
    fn dial(&self, peer: u64, addr: SocketAddr) -> Dialing;
}

/// Plain TCP with `TCP_NODELAY`.
#[derive(Debug, Default, Clone, Copy)]
pub struct PlainTcp;

impl PeerDialer for PlainTcp {
    fn dial(&self, _peer: u64, addr: SocketAddr) -> Dialing {
        Box::pin(async move {
            let stream = TcpStream::connect(addr).await?;
            if let Err(error) = stream.set_nodelay(true) {
                tracing::debug!(%error, "could not set TCP_NODELAY");
            }
            Ok(Box::pin(stream) as PeerStream)
        })
    }
}

/// Tuning for [`TcpTransport`]. [`Default`] gives production values.
#[derive(Debug, Clone)]
pub struct TcpTransportConfig {
    /// Messages queued per peer before new ones are dropped. Default 1 024.
    pub queue_capacity: usize,
    /// How long one connection attempt may take. Default 1 s.
    pub connect_timeout: Duration,
    /// How long one batch of frames may take to write before the connection is deemed broken.
    /// Default 5 s.
    pub write_timeout: Duration,
    /// Wait after the first failed connection attempt; doubles per failure. Default 50 ms.
    pub backoff_initial: Duration,
    /// Cap of the reconnection backoff. Default 2 s.
    pub backoff_max: Duration,
    /// Largest frame sent; bigger messages are dropped with a warning. Default
    /// [`MAX_FRAME_BYTES`].
    pub max_frame_bytes: usize,
}

impl Default for TcpTransportConfig {
    fn default() -> Self {
        TcpTransportConfig {
            queue_capacity: 1_024,
            connect_timeout: Duration::from_secs(1),
            write_timeout: Duration::from_secs(5),
            backoff_initial: Duration::from_millis(50),
            backoff_max: Duration::from_secs(2),
            max_frame_bytes: MAX_FRAME_BYTES,
        }
    }
}
