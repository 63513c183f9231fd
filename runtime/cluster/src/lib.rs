//! Many hosts, one platform: how a Cloudware host founds or joins a cluster and talks to its
//! peers.
//!
//! ```text
//!                 cluster port (TLS 1.3, cluster CA; ALPN picks the protocol)
//!  peer ──────────► ├─ "cw-raft/2"  mutual TLS ─► dialer's address, raft frames ─► RaftNode::step
//!                   ├─ "cw-bus-raft/2"  mutual TLS ─► the same, for the message bus's raft group
//!                   └─ "http/1.1", "h2"  host-to-host calls (rpc):
//!                        POST /v1/join        token-authenticated (no client certificate yet)
//!                        POST /v1/members     add the calling host as a voter
//!                        POST /v1/propose     a proposal forwarded to the leader (or relayed)
//!                        POST /v1/bus/propose a bus command forwarded to the bus leader
//!                        GET  /v1/packages/D  a package's bytes, by digest
//!                        GET  /v1/health      a heartbeat
//!                        ANY  /v1/forward/P   a gateway request for an app that runs here
//!                        POST /v1/call        a service call to an app that runs here
//! ```
//!
//! - [`ClusterHost::start`] — found a cluster (the first host creates the cluster CA, its own
//!   certificate and a join token), join one (`--join PEER` with the token: the peer checks the
//!   token, allocates the host id through the replicated state, signs the new host's
//!   certificate request and hands it the CA; the new host then asks to become a raft voter),
//!   or restart as a member.
//! - Proposals made on a host that is not the leader are forwarded to the leader
//!   ([`cloudware_node::ProposalForwarder`]), through another host when the leader cannot be
//!   reached from here; packages a host lacks are pulled from its peers
//!   by digest and checked ([`cloudware_node::PackageFetcher`]).
//! - Peer addresses follow the replicated host registry (`cloudware_state::Host`), corrected
//!   by what a host says of itself when it opens a raft connection (a host restarted on a new
//!   address is dialed back there before its new address is committed).
//! - The message bus is replicated by a second raft group ([`ClusterHost::bus`], module
//!   `bus`): its own log in `DATA_DIR/bus-raft`, its voters following the control plane's.
//! - Every host sends heartbeats to every other ([`HostHealth`]: up or down, last seen,
//!   round-trip time), and its gateway forwards requests for apps that run only on other
//!   hosts to one that is up ([`HostForwarder`]), over pooled mutual-TLS connections.
//! - A service call to an app that runs only on other hosts is made on one of them
//!   ([`ServiceCaller`]), its arguments and results as typed JSON.
//!
//! Modules: `files` (what a host keeps in `DATA_DIR/cluster`), `tls` (the configs per
//! protocol), `listener` (the cluster port), `rpc` (the host-to-host calls, both sides),
//! `peers` (where peers listen: the registry and what hosts say), `host` (founding, joining,
//! restarting), `health` (heartbeats), `forward` (the connection pool, and forwarding
//! gateway requests: both sides), `calls` (service calls between hosts: both sides), `bus`
//! (the message bus's raft group: opening, membership, forwarding).

mod bus;
mod calls;
mod files;
mod forward;
mod health;
mod host;
mod listener;
mod peers;
mod rpc;
mod tls;

pub use calls::{ServiceCaller, WireError};
pub use files::ClusterDir;
pub use forward::{ForwardConfig, HostForwarder};
pub use health::{HealthConfig, HostHealth, PeerStatus};
pub use host::{ClusterError, ClusterHost, ClusterOptions, JoinSpec};
pub use rpc::RpcClient;

/// Milliseconds since the Unix epoch (command timestamps).
pub(crate) fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}
