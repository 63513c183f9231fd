//! The cluster port's routes. Every route but `join` requires the caller's cluster
//! certificate ([`Caller`]); `join` checks the join token instead.

use super::{Caller, JoinRequest, JoinResponse, RpcError};
use crate::now_ms;
use axum::body::Bytes;
use axum::extract::{Extension, Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use cloudware_bus_replicated::ReplicatedBus;
use cloudware_cluster_tls::{ClusterCa, JoinToken, TokenHash};
use cloudware_engine::Digest;
use cloudware_node::{ControlPlane, PackageStore, ProposeFailure};
use cloudware_raft::{MembershipChange, ProposeError};
use cloudware_state::{Command, CommandError, Outcome};
use std::sync::Arc;

/// What the routes need.
pub(crate) struct RpcState {
    /// This host's id.
    pub(crate) node_id: u64,
    pub(crate) control: Arc<ControlPlane>,
    /// Relays proposals to the leader.
    pub(crate) client: super::RpcClient,
    pub(crate) packages: PackageStore,
    pub(crate) ca: ClusterCa,
    /// The file of the key every host shares, handed to joining hosts.
    pub(crate) shared_key: Option<std::path::PathBuf>,
    /// This host's member of the message bus's raft group.
    pub(crate) bus: ReplicatedBus,
}

/// The router of the cluster port's HTTP protocol.
pub(crate) fn router(state: Arc<RpcState>) -> Router {
    Router::new()
        .route("/v1/join", post(join))
        .route("/v1/members", post(add_member))
        .route("/v1/propose", post(propose))
        .route(crate::bus::BUS_PROPOSE_PATH, post(bus_propose))
        .route("/v1/packages/{digest}", get(package))
        .route(crate::health::HEALTH_PATH, get(health))
        .layer(axum::middleware::map_response_with_state(
            state.clone(),
            applied_index,
        ))
        .with_state(state)
}

fn error(status: StatusCode, error: impl Into<String>, leader: Option<u64>) -> Response {
    let body = RpcError {
        error: error.into(),
        leader,
    };
    (status, Json(body)).into_response()
}

/// The answer to a call without a cluster certificate where one is needed.
fn no_certificate() -> Response {
    error(
        StatusCode::UNAUTHORIZED,
        "a cluster certificate is required",
        None,
    )
}

/// Stamps every answer with this host's applied index (read-your-writes for forwarded
/// proposals), unless it carries another host's (a relayed proposal's).
async fn applied_index(State(rpc): State<Arc<RpcState>>, mut response: Response) -> Response {
    if response.headers().contains_key(super::APPLIED_HEADER) {
        return response;
    }
    let applied = rpc.control.raft().applied_index();
    if let Ok(value) = http::HeaderValue::from_str(&applied.to_string()) {
        response.headers_mut().insert(super::APPLIED_HEADER, value);
    }
    response
}

/// Admits a new host: token check, id from the replicated registry, certificate.
async fn join(State(rpc): State<Arc<RpcState>>, Json(request): Json<JoinRequest>) -> Response {
    let Ok(token) = request.token.parse::<JoinToken>() else {
        return error(StatusCode::FORBIDDEN, "malformed join token", None);
    };
    let stored = rpc
        .control
        .read(|state| state.join_secret_hash().map(str::to_string));
    let valid = stored
        .and_then(|hash| hash.parse::<TokenHash>().ok())
        .is_some_and(|hash| token.verify(&hash))
        && *token.ca_fingerprint() == rpc.ca.fingerprint();
    if !valid {
        tracing::warn!(name = %request.name, "refused a join with a wrong token");
        return error(StatusCode::FORBIDDEN, "the join token is not valid", None);
    }
    let command = Command::JoinHost {
        id: None,
        name: request.name.clone(),
        addrs: request.addrs.clone(),
        labels: request.labels.clone(),
        at: now_ms(),
    };
    let id = match rpc.control.propose(command).await {
        Ok(Outcome::HostJoined { id }) => id,
        Ok(other) => {
            return error(
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("unexpected outcome {other:?}"),
                None,
            );
        }
        Err(ProposeFailure::Rejected(err @ CommandError::HostExists { .. })) => {
            return error(
                StatusCode::CONFLICT,
                format!("{err}; remove it first (`cloudware node remove`) or pick another --name"),
                None,
            );
        }
        Err(ProposeFailure::Rejected(err)) => {
            return error(StatusCode::BAD_REQUEST, err.to_string(), None);
        }
        Err(err) => return error(StatusCode::SERVICE_UNAVAILABLE, err.to_string(), None),
    };
    let certificate = match rpc.ca.issue_host(id, &request.csr) {
        Ok(certificate) => certificate,
        Err(err) => return error(StatusCode::BAD_REQUEST, err.to_string(), None),
    };
    let hosts = rpc.control.read(|state| state.hosts().cloned().collect());
    tracing::info!(id, name = %request.name, addrs = ?request.addrs, "host admitted");
    let shared_key_pem = rpc
        .shared_key
        .as_deref()
        .and_then(|path| std::fs::read_to_string(path).ok());
    Json(JoinResponse {
        certificate,
        ca_key_pem: rpc.ca.key_pem(),
        hosts,
        shared_key_pem,
    })
    .into_response()
}

/// Makes the calling (registered) host a raft voter; only the leader can.
async fn add_member(
    State(rpc): State<Arc<RpcState>>,
    Extension(caller): Extension<Caller>,
) -> Response {
    let Caller(Some(id)) = caller else {
        return no_certificate();
    };
    if rpc.control.read(|state| state.host(id).is_none()) {
        return error(
            StatusCode::FORBIDDEN,
            format!("host {id} is not registered"),
            None,
        );
    }
    match rpc
        .control
        .raft()
        .change_membership(MembershipChange::AddVoter(id))
        .await
    {
        Ok(membership) => {
            tracing::info!(id, voters = ?membership.voters, "host became a voter");
            (StatusCode::OK, Json(membership.voters)).into_response()
        }
        Err(err) => propose_error(err),
    }
}

/// Proposes a forwarded envelope here (the caller believes this host leads). A relayed one
/// ([`super::RELAY_HEADER`]) that finds another leader is proposed there on the caller's behalf.
async fn propose(
    State(rpc): State<Arc<RpcState>>,
    Extension(caller): Extension<Caller>,
    headers: http::HeaderMap,
    envelope: Bytes,
) -> Response {
    let Caller(Some(caller)) = caller else {
        return no_certificate();
    };
    match rpc.control.raft().propose(envelope.to_vec()).await {
        Ok(outcome) => (StatusCode::OK, outcome).into_response(),
        Err(ProposeError::NotLeader {
            leader: Some(leader),
        }) if headers.contains_key(super::RELAY_HEADER)
            && leader != caller
            && leader != rpc.node_id =>
        {
            relay(&rpc, caller, leader, envelope).await
        }
        Err(err) => propose_error(err),
    }
}

/// Proposes `envelope` on `leader` for `caller`, directly (a relayed proposal is never
/// relayed again), answering with the leader's outcome and applied index.
async fn relay(rpc: &RpcState, caller: u64, leader: u64, envelope: Bytes) -> Response {
    tracing::info!(caller, leader, "relaying a proposal to the leader");
    match rpc.client.propose_on(leader, &envelope, false).await {
        Ok((outcome, applied)) => {
            let mut response = (StatusCode::OK, outcome).into_response();
            if let Ok(value) = http::HeaderValue::from_str(&applied.to_string()) {
                response.headers_mut().insert(super::APPLIED_HEADER, value);
            }
            response
        }
        Err(err) => error(
            StatusCode::BAD_GATEWAY,
            format!("relaying to the leader (host {leader}): {err}"),
            None,
        ),
    }
}

/// Proposes a forwarded bus command on this host's bus member (the caller believes it leads
/// the bus group). A timeout or a stop answers 504: the command may be applied.
async fn bus_propose(
    State(rpc): State<Arc<RpcState>>,
    Extension(caller): Extension<Caller>,
    command: Bytes,
) -> Response {
    if caller.0.is_none() {
        return no_certificate();
    }
    match rpc.bus.node().propose(command.to_vec()).await {
        Ok(outcome) => (StatusCode::OK, outcome).into_response(),
        Err(err @ ProposeError::Stopped) => {
            error(StatusCode::GATEWAY_TIMEOUT, err.to_string(), None)
        }
        Err(err) => propose_error(err),
    }
}

fn propose_error(err: ProposeError) -> Response {
    match err {
        ProposeError::NotLeader { leader } => {
            error(StatusCode::MISDIRECTED_REQUEST, "not the leader", leader)
        }
        ProposeError::Timeout(_) => error(StatusCode::GATEWAY_TIMEOUT, err.to_string(), None),
        err => error(StatusCode::SERVICE_UNAVAILABLE, err.to_string(), None),
    }
}

/// A package's bytes, if this host has them.
async fn package(
    State(rpc): State<Arc<RpcState>>,
    Extension(caller): Extension<Caller>,
    Path(digest): Path<String>,
) -> Response {
    if caller.0.is_none() {
        return no_certificate();
    }
    let Ok(digest) = digest.parse::<Digest>() else {
        return error(StatusCode::BAD_REQUEST, "malformed digest", None);
    };
    match rpc.packages.read_local(&digest).await {
        Ok(bytes) => (StatusCode::OK, bytes).into_response(),
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => {
            error(StatusCode::NOT_FOUND, "no such package here", None)
        }
        Err(err) => error(StatusCode::INTERNAL_SERVER_ERROR, err.to_string(), None),
    }
}

/// A heartbeat: answers this host's id.
async fn health(
    State(rpc): State<Arc<RpcState>>,
    Extension(caller): Extension<Caller>,
) -> Response {
    if caller.0.is_none() {
        return no_certificate();
    }
    Json(super::HealthAnswer { id: rpc.node_id }).into_response()
}
