//! The cluster port's TLS configurations, one per protocol (chosen by ALPN).

use cloudware_cluster_tls::rustls::{ClientConfig, ServerConfig};
use cloudware_cluster_tls::{HostIdentity, JoinToken};
use std::sync::Arc;

/// ALPN of raft message streams.
pub(crate) const ALPN_RAFT: &[u8] = b"cw-raft/2";
/// ALPN of the message bus's raft group (its own log, same frames).
pub(crate) const ALPN_BUS_RAFT: &[u8] = b"cw-bus-raft/2";
/// ALPN of host-to-host HTTP calls.
pub(crate) const ALPN_HTTP: &[u8] = b"http/1.1";
/// ALPN of pooled host-to-host HTTP/2 (forwarded requests, heartbeats).
pub(crate) const ALPN_H2: &[u8] = b"h2";

/// A member's TLS configurations.
#[derive(Clone)]
pub(crate) struct MemberTls {
    /// The cluster port: client certificates optional (joining hosts have none; every route
    /// but `join`, and raft, require one).
    pub(crate) server: Arc<ServerConfig>,
    /// Dialing peers for raft (mutual TLS).
    pub(crate) raft_client: Arc<ClientConfig>,
    /// Dialing peers for the bus's raft group (mutual TLS).
    pub(crate) bus_raft_client: Arc<ClientConfig>,
    /// Dialing peers for calls (mutual TLS).
    pub(crate) http_client: Arc<ClientConfig>,
    /// Dialing peers for pooled HTTP/2 calls (mutual TLS).
    pub(crate) h2_client: Arc<ClientConfig>,
}

impl MemberTls {
    pub(crate) fn new(identity: &HostIdentity) -> Result<MemberTls, cloudware_cluster_tls::Error> {
        let mut server =
            (*cloudware_cluster_tls::server_config_allowing_anonymous(identity)?).clone();
        server.alpn_protocols = vec![
            ALPN_RAFT.to_vec(),
            ALPN_BUS_RAFT.to_vec(),
            ALPN_HTTP.to_vec(),
            ALPN_H2.to_vec(),
        ];
        let client = cloudware_cluster_tls::client_config(identity)?;
        Ok(MemberTls {
            server: Arc::new(server),
            raft_client: with_alpn(&client, ALPN_RAFT),
            bus_raft_client: with_alpn(&client, ALPN_BUS_RAFT),
            http_client: with_alpn(&client, ALPN_HTTP),
            h2_client: with_alpn(&client, ALPN_H2),
        })
    }
}

/// The configuration a joining host calls its peer with (trusts the CA pinned by the token).
pub(crate) fn join_client(
    token: &JoinToken,
) -> Result<Arc<ClientConfig>, cloudware_cluster_tls::Error> {
    Ok(with_alpn(
        &cloudware_cluster_tls::join_client_config(token)?,
        ALPN_HTTP,
    ))
}

fn with_alpn(config: &Arc<ClientConfig>, alpn: &[u8]) -> Arc<ClientConfig> {
    let mut config = (**config).clone();
    config.alpn_protocols = vec![alpn.to_vec()];
    Arc::new(config)
}
