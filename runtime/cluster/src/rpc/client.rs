//! The calling side. Forwarded proposals go over the pooled HTTP/2 connections (`pooled`);
//! joins, voter requests (to addresses not in the registry yet) and package downloads open
//! one TLS connection per call, HTTP/1.1 inside, bounded by a timeout.

use super::{JoinRequest, JoinResponse, RpcError};
use crate::forward::pool::PeerPool;
use crate::tls::{MemberTls, join_client};
use bytes::Bytes;
use cloudware_cluster_tls::JoinToken;
use cloudware_engine::Digest;
use cloudware_node::{ControlPlane, PackageFetcher, ProposalForwarder};
use futures::future::BoxFuture;
use http::{Method, Request, StatusCode};
use http_body_util::{BodyExt as _, Full, Limited};
use hyper_util::rt::TokioIo;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite};

/// Bound of one call (connect, handshake, request, answer).
const CALL_TIMEOUT: Duration = Duration::from_secs(10);
/// Bound of a package download.
const PACKAGE_TIMEOUT: Duration = Duration::from_secs(120);
/// Largest answer to a forwarded proposal read (outcomes are small).
const MAX_PROPOSAL_ANSWER: usize = 16 << 20;
/// Largest answer read (packages are capped by the API's upload limit, well below this).
const MAX_ANSWER: usize = 1 << 30;

/// An answer: status and body.
pub(crate) struct Answer {
    pub(crate) status: StatusCode,
    pub(crate) body: Bytes,
    /// The callee's applied raft index when it answered (0 if not said).
    pub(crate) applied: u64,
}

impl Answer {
    /// The error message of a non-2xx answer (and the leader it names, if any).
    pub(crate) fn error(&self) -> (String, Option<u64>) {
        match serde_json::from_slice::<RpcError>(&self.body) {
            Ok(error) => (format!("{}: {}", self.status, error.error), error.leader),
            Err(_) => (self.status.to_string(), None),
        }
    }
}

/// Calls other members of the cluster: forwards proposals to the leader, fetches packages.
#[derive(Clone)]
pub struct RpcClient {
    self_id: u64,
    tls: MemberTls,
    control: Arc<ControlPlane>,
    pool: PeerPool,
}

impl RpcClient {
    pub(crate) fn new(
        self_id: u64,
        tls: MemberTls,
        control: Arc<ControlPlane>,
        pool: PeerPool,
    ) -> Self {
        RpcClient {
            self_id,
            tls,
            control,
            pool,
        }
    }

    /// Calls host `id` at `addr`.
    pub(crate) async fn call(
        &self,
        id: u64,
        addr: SocketAddr,
        method: Method,
        path: &str,
        body: Bytes,
        timeout: Duration,
    ) -> Result<Answer, String> {
        let exchange = async {
            let stream = cloudware_cluster_tls::connect(addr, id, self.tls.http_client.clone())
                .await
                .map_err(|e| e.to_string())?;
            exchange(stream, method, path, body).await
        };
        tokio::time::timeout(timeout, exchange)
            .await
            .unwrap_or_else(|_| Err(format!("no answer from host {id} within {timeout:?}")))
    }

    /// Asks the group to make this host a voter, trying `hosts` (leader hints first) until one
    /// leader accepts; bounded by `patience`.
    pub(crate) async fn become_voter(
        &self,
        mut candidates: Vec<(u64, SocketAddr)>,
        patience: Duration,
    ) -> Result<(), String> {
        let deadline = tokio::time::Instant::now() + patience;
        let mut last = String::from("no host to ask");
        let mut next = 0;
        while tokio::time::Instant::now() < deadline && !candidates.is_empty() {
            let (id, addr) = candidates[next % candidates.len()];
            next += 1;
            match self
                .call(
                    id,
                    addr,
                    Method::POST,
                    "/v1/members",
                    Bytes::new(),
                    CALL_TIMEOUT,
                )
                .await
            {
                Ok(answer) if answer.status.is_success() => return Ok(()),
                Ok(answer) => {
                    let (message, leader) = answer.error();
                    last = format!("host {id}: {message}");
                    if let Some(leader) = leader
                        && let Some(pos) = candidates.iter().position(|(c, _)| *c == leader)
                    {
                        // Ask the leader next.
                        let leader = candidates.remove(pos);
                        candidates.insert(0, leader);
                        next = 0;
                    }
                }
                Err(err) => last = format!("host {id}: {err}"),
            }
            tracing::debug!(%last, "not a voter yet; retrying");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        Err(last)
    }
}

impl RpcClient {
    /// Proposes `envelope` on host `id` over the pooled connections: its outcome and applied
    /// index. With `relay`, a callee that is not the leader proposes it on the leader it knows
    /// ([`super::RELAY_HEADER`]).
    pub(crate) async fn propose_on(
        &self,
        id: u64,
        envelope: &Bytes,
        relay: bool,
    ) -> Result<(Vec<u8>, u64), String> {
        let header = relay.then(|| {
            (
                http::HeaderName::from_static(super::RELAY_HEADER),
                http::HeaderValue::from_static("1"),
            )
        });
        let answer = super::post(
            &self.pool,
            id,
            "/v1/propose",
            envelope.clone(),
            header,
            CALL_TIMEOUT,
            MAX_PROPOSAL_ANSWER,
        )
        .await
        .map_err(|e| e.to_string())?;
        if answer.status.is_success() {
            Ok((answer.body.to_vec(), answer.applied))
        } else {
            Err(answer.error().0)
        }
    }
}

impl ProposalForwarder for RpcClient {
    /// Tries the leader, then every other peer as a relay: a host restarted on a new address
    /// may replay a registry older than a peer's address change and dial the leader where it
    /// no longer listens (while the leader does not know where this host listens now), but a
    /// peer it can reach knows both. Retrying is safe: the envelope's request id makes the
    /// command apply at most once.
    fn forward(
        &self,
        leader: Option<u64>,
        envelope: Vec<u8>,
    ) -> BoxFuture<'_, Result<(Vec<u8>, u64), String>> {
        Box::pin(async move {
            let envelope = Bytes::from(envelope);
            let mut failures = Vec::new();
            if let Some(leader) = leader {
                match self.propose_on(leader, &envelope, false).await {
                    Ok(outcome) => return Ok(outcome),
                    Err(error) => failures.push(format!("host {leader}: {error}")),
                }
            }
            let relays: Vec<u64> = self.control.read(|state| {
                state
                    .hosts()
                    .map(|host| host.id)
                    .filter(|id| *id != self.self_id && Some(*id) != leader)
                    .collect()
            });
            for relay in relays {
                match self.propose_on(relay, &envelope, true).await {
                    Ok(outcome) => {
                        if leader.is_some() {
                            tracing::info!(
                                relay,
                                ?leader,
                                "a proposal reached the leader through a relay"
                            );
                        }
                        return Ok(outcome);
                    }
                    Err(error) => failures.push(format!("host {relay} (relay): {error}")),
                }
            }
            if failures.is_empty() {
                failures.push("no peer to ask".to_string());
            }
            Err(failures.join("; "))
        })
    }
}

impl PackageFetcher for RpcClient {
    fn fetch<'a>(&'a self, digest: &'a Digest) -> BoxFuture<'a, std::io::Result<Bytes>> {
        Box::pin(async move {
            let peers: Vec<(u64, String)> = self.control.read(|state| {
                state
                    .hosts()
                    .filter(|host| host.id != self.self_id)
                    .map(|host| (host.id, host.addrs.cluster.clone()))
                    .collect()
            });
            let path = format!("/v1/packages/{digest}");
            let mut failures = Vec::new();
            for (id, addr) in peers {
                let Ok(addr) = addr.parse() else { continue };
                match self
                    .call(id, addr, Method::GET, &path, Bytes::new(), PACKAGE_TIMEOUT)
                    .await
                {
                    Ok(answer) if answer.status.is_success() => return Ok(answer.body),
                    Ok(answer) => failures.push(format!("host {id}: {}", answer.error().0)),
                    Err(err) => failures.push(format!("host {id}: {err}")),
                }
            }
            Err(std::io::Error::new(
                std::io::ErrorKind::NotFound,
                format!("no peer has {digest} ({})", failures.join("; ")),
            ))
        })
    }
}

/// Asks the member at `peer` to admit this host (trusting the CA the token pins).
pub(crate) async fn join_cluster(
    peer: SocketAddr,
    token: &JoinToken,
    request: &JoinRequest,
) -> Result<JoinResponse, String> {
    let config = join_client(token).map_err(|e| e.to_string())?;
    let body = serde_json::to_vec(request).map_err(|e| e.to_string())?;
    let exchange = async {
        let stream = cloudware_cluster_tls::connect_for_join(peer, config)
            .await
            .map_err(|e| e.to_string())?;
        exchange(stream, Method::POST, "/v1/join", Bytes::from(body)).await
    };
    let answer = tokio::time::timeout(CALL_TIMEOUT, exchange)
        .await
        .unwrap_or_else(|_| Err(format!("no answer from {peer} within {CALL_TIMEOUT:?}")))?;
    if !answer.status.is_success() {
        return Err(answer.error().0);
    }
    serde_json::from_slice(&answer.body).map_err(|e| format!("malformed join answer: {e}"))
}

/// One HTTP/1.1 request on an established stream.
pub(crate) async fn exchange<S>(
    stream: S,
    method: Method,
    path: &str,
    body: Bytes,
) -> Result<Answer, String>
where
    S: AsyncRead + AsyncWrite + Send + Unpin + 'static,
{
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| format!("HTTP handshake: {e}"))?;
    let driving = tokio::spawn(async move {
        if let Err(error) = connection.await {
            tracing::debug!(%error, "cluster call connection ended");
        }
    });
    let request = Request::builder()
        .method(method)
        .uri(path)
        .header(http::header::HOST, "cloudware-cluster")
        .header(http::header::CONTENT_TYPE, "application/json")
        .body(Full::new(body))
        .map_err(|e| e.to_string())?;
    let response = sender
        .send_request(request)
        .await
        .map_err(|e| format!("request failed: {e}"))?;
    let answer = read_answer(response, MAX_ANSWER).await;
    driving.abort();
    answer
}

/// Reads an answer's status, the callee's applied index and its body (up to `limit` bytes).
pub(crate) async fn read_answer<B>(
    response: http::Response<B>,
    limit: usize,
) -> Result<Answer, String>
where
    B: hyper::body::Body,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let status = response.status();
    let applied = response
        .headers()
        .get(super::APPLIED_HEADER)
        .and_then(|v| v.to_str().ok()?.parse().ok())
        .unwrap_or(0);
    let body = Limited::new(response.into_body(), limit)
        .collect()
        .await
        .map_err(|e| format!("reading the answer: {e}"))?
        .to_bytes();
    Ok(Answer {
        status,
        body,
        applied,
    })
}
