//! Dialling peers over TCP with tokio-rustls, and learning who the peer of a verified
//! connection is.
//!
//! The accepting side needs nothing beyond tokio-rustls:
//! `TlsAcceptor::from(server_config(&identity)?).accept(tcp).await`.

use std::fmt;
use std::sync::Arc;

use rustls::pki_types::ServerName;
use rustls::{ClientConfig, ClientConnection, CommonState, ServerConnection};
use tokio::net::{TcpStream, ToSocketAddrs};
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;

use crate::cert;
use crate::error::{Error, Result};
use crate::names::{host_server_name, join_server_name};

/// Dials host `node_id` at `addr` and completes the TLS handshake, checking that the
/// server's certificate names that node (`node-<id>.cluster.cloudware`). `config` is a
/// [`client_config`](crate::client_config) (or a
/// [`join_client_config`](crate::join_client_config)). TCP_NODELAY is set. There is no
/// timeout: wrap the call in `tokio::time::timeout`.
pub async fn connect<A>(
    addr: A,
    node_id: u64,
    config: Arc<ClientConfig>,
) -> Result<TlsStream<TcpStream>>
where
    A: ToSocketAddrs + fmt::Display,
{
    let what = format!("node {node_id} at {addr}");
    dial(addr, host_server_name(node_id), config, what).await
}

/// Dials whichever cluster host listens at `addr` with a
/// [`join_client_config`](crate::join_client_config), as a joining host does when it
/// knows only an address: the server must be a host of the cluster pinned by the token.
pub async fn connect_for_join<A>(addr: A, config: Arc<ClientConfig>) -> Result<TlsStream<TcpStream>>
where
    A: ToSocketAddrs + fmt::Display,
{
    let what = format!("cluster host at {addr}");
    dial(addr, join_server_name(), config, what).await
}

async fn dial<A: ToSocketAddrs>(
    addr: A,
    server_name: ServerName<'static>,
    config: Arc<ClientConfig>,
    what: String,
) -> Result<TlsStream<TcpStream>> {
    let tcp = TcpStream::connect(addr)
        .await
        .map_err(|e| Error::io(format!("connecting to {what}"), e))?;
    tcp.set_nodelay(true)
        .map_err(|e| Error::io(format!("setting TCP_NODELAY to {what}"), e))?;
    TlsConnector::from(config)
        .connect(server_name, tcp)
        .await
        .map_err(|e| Error::io(format!("TLS handshake with {what}"), e))
}

/// The node id of the peer of a TLS connection, read from the host name in the
/// certificate it presented; `None` if it presented none (an anonymous client of
/// [`server_config_allowing_anonymous`](crate::server_config_allowing_anonymous)) or one
/// that names no host. The certificate was verified during the handshake.
pub trait PeerNodeId {
    /// See the [trait](PeerNodeId).
    fn peer_node_id(&self) -> Option<u64>;
}

impl PeerNodeId for CommonState {
    fn peer_node_id(&self) -> Option<u64> {
        cert::peer_node_id(self.peer_certificates()?)
    }
}

impl PeerNodeId for ServerConnection {
    fn peer_node_id(&self) -> Option<u64> {
        (**self).peer_node_id()
    }
}

impl PeerNodeId for ClientConnection {
    fn peer_node_id(&self) -> Option<u64> {
        (**self).peer_node_id()
    }
}

impl<IO> PeerNodeId for tokio_rustls::server::TlsStream<IO> {
    fn peer_node_id(&self) -> Option<u64> {
        self.get_ref().1.peer_node_id()
    }
}

impl<IO> PeerNodeId for tokio_rustls::client::TlsStream<IO> {
    fn peer_node_id(&self) -> Option<u64> {
        self.get_ref().1.peer_node_id()
    }
}

impl<IO> PeerNodeId for tokio_rustls::TlsStream<IO> {
    fn peer_node_id(&self) -> Option<u64> {
        self.get_ref().1.peer_node_id()
    }
}

/// The node id of the peer of `conn`: see [`PeerNodeId`].
pub fn peer_node_id<C: PeerNodeId + ?Sized>(conn: &C) -> Option<u64> {
    conn.peer_node_id()
}
