//! Host-to-host calls over the cluster port (inside mutual TLS): the messages both sides
//! share, the server's routes (`server`), the client (`client`: a connection per call, for
//! joins and package downloads) and calls over the pooled HTTP/2 connections (`pooled`: for
//! forwarded proposals).

mod client;
mod pooled;
mod server;

pub use client::RpcClient;
pub(crate) use client::{exchange, join_cluster};
pub(crate) use pooled::{PostError, post};
pub(crate) use server::{RpcState, router};

use cloudware_cluster_tls::{HostCertificate, HostCsr};
use cloudware_state::{Host, HostAddrs};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// The header carrying the callee's applied raft index on every answer.
pub(crate) const APPLIED_HEADER: &str = "cloudware-applied-index";

/// Set on a forwarded proposal the caller could not deliver to the leader itself (e.g. it
/// dials a stale address after a restart): a callee that is not the leader proposes it on the
/// leader it knows, on the caller's behalf. Envelopes' request ids make this idempotent.
pub(crate) const RELAY_HEADER: &str = "cloudware-relay";

/// Which host called (from its client certificate), set by the listener on every request.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Caller(pub(crate) Option<u64>);

/// `POST /v1/join`: a new host asks to join.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct JoinRequest {
    /// The join token's text.
    pub(crate) token: String,
    /// The new host's name.
    pub(crate) name: String,
    /// Where it listens.
    pub(crate) addrs: HostAddrs,
    /// Its placement labels.
    #[serde(default)]
    pub(crate) labels: BTreeMap<String, String>,
    /// Its certificate request.
    pub(crate) csr: HostCsr,
}

/// The answer to a join: the host's id and certificate, the CA (to admit others later) and
/// the hosts to dial.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct JoinResponse {
    pub(crate) certificate: HostCertificate,
    pub(crate) ca_key_pem: String,
    pub(crate) hosts: Vec<Host>,
    /// The key every host shares ([`crate::ClusterOptions::shared_key`]), if
    /// the admitting host has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) shared_key_pem: Option<String>,
}

/// `GET /v1/health`: a heartbeat's answer.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct HealthAnswer {
    /// The answering host's id.
    pub(crate) id: u64,
}

/// An error answer: a message, and the leader when the callee is not it.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct RpcError {
    pub(crate) error: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) leader: Option<u64>,
}
