//! Authenticated, encrypted traffic between the hosts of a Cloudware cluster.
//!
//! The first host of a cluster creates a [`ClusterCa`] (a self-signed ECDSA P-256
//! certificate authority) and a certificate for itself. Every host certificate names its
//! host by the DNS name [`host_dns_name`]`(node_id)` and is good for both server and client
//! authentication, so one [`HostIdentity`] serves both ends of a connection:
//! [`server_config`] requires a client certificate issued by the cluster CA and
//! [`client_config`] trusts only the cluster CA, and each side learns the other's node id
//! with [`peer_node_id`].
//!
//! A new host joins with a [`JoinToken`] printed by an existing host:
//! `cwjoin1.<ca-fingerprint-hex>.<secret>`. The CA fingerprint pins the cluster CA so the
//! new host can trust its first connection ([`join_client_config`]) before it has the CA
//! certificate; the secret proves to the cluster that the new host was invited (the cluster
//! stores only [`JoinToken::secret_hash`]). The new host keeps its private key to itself
//! ([`HostKey`]) and sends a certificate signing request ([`HostCsr`]) that the CA signs
//! with [`ClusterCa::issue_host`]; the joining side listens with
//! [`server_config_allowing_anonymous`], which admits clients without a certificate.
//!
//! Every rustls config here is built with an explicit ring [`CryptoProvider`](rustls::crypto::CryptoProvider)
//! ([`crypto_provider`]); nothing relies on a process-wide default provider. Hosts speak
//! TLS 1.3 only.

mod ca;
mod cert;
mod config;
mod error;
mod files;
mod host;
mod names;
mod net;
mod token;

pub use ca::{CA_VALIDITY, CaFingerprint, ClusterCa, HOST_VALIDITY};
pub use config::{
    client_config, crypto_provider, join_client_config, server_config,
    server_config_allowing_anonymous,
};
pub use error::{Error, Result, TokenError};
pub use host::{HostCertificate, HostCsr, HostIdentity, HostKey};
pub use names::{
    HOST_NAME_SUFFIX, JOIN_SERVER_NAME, host_dns_name, host_server_name, node_id_from_dns_name,
};
pub use net::{PeerNodeId, connect, connect_for_join, peer_node_id};
pub use token::{JoinToken, TokenHash};

/// The TLS crates this crate builds on, re-exported so callers use the same versions.
pub use rustls;
pub use tokio_rustls;
