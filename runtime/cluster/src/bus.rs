//! The message bus's raft group on a cluster host: a second raft node (in
//! `DATA_DIR/bus-raft`, ALPN `cw-bus-raft/2` on the cluster port) running
//! [`cloudware_bus_replicated::BusMachine`], whose membership follows the control plane's.
//!
//! - [`open`] opens this host's member: the founding host bootstraps the group, every other
//!   host opens with `join = true` and waits for the bus leader to add it. Peer addresses
//!   follow the replicated host registry, as the control plane's do.
//! - [`follow_membership`]: while this host leads the bus group, it adds the control plane's
//!   voters the bus group lacks and removes the members the control plane no longer has, one
//!   change at a time.
//! - [`RpcBusForwarder`]: a follower forwards a bus command to the leader's
//!   `POST /v1/bus/propose` (served by `rpc::server`), over mutual TLS.

use crate::peers::{PeerBook, RaftDialer};
use crate::rpc::{self, RpcError};
use crate::tls::MemberTls;
use bytes::Bytes;
use cloudware_bus::BoxFuture;
use cloudware_bus_replicated::{BusForwarder, ForwardError, ReplicatedBus, ReplicatedConfig};
use cloudware_node::ControlPlane;
use cloudware_raft::{
    MembershipChange, RaftConfig, RaftError, Role, TcpTransport, TcpTransportConfig,
};
use http::{Method, StatusCode};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;
use tokio::task::JoinHandle;
use tracing::Instrument as _;

/// The path followers forward bus commands to.
pub(crate) const BUS_PROPOSE_PATH: &str = "/v1/bus/propose";
/// Bound of connecting to the leader (not sent yet: certainly not applied).
const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);
/// Bound of one forwarded proposal once sent (the leader's own propose timeout is 5 s).
const ANSWER_TIMEOUT: Duration = Duration::from_secs(8);
/// How often the membership follower looks again without a change to wake it.
const MEMBERSHIP_RECHECK: Duration = Duration::from_secs(1);
/// Pause after a failed membership change.
const MEMBERSHIP_RETRY: Duration = Duration::from_millis(300);

/// This host's member of the bus group and its transport.
pub(crate) struct BusMember {
    pub(crate) bus: ReplicatedBus,
    pub(crate) transport: TcpTransport,
}

/// Opens this host's bus member in `data_dir/bus-raft` (`join`: wait to be added rather than
/// bootstrap a group of one). Every member uses the same (default) limits.
pub(crate) async fn open(
    data_dir: &Path,
    node_id: u64,
    join: bool,
    tick: Duration,
    tls: &MemberTls,
    own: SocketAddr,
    bootstrap_peers: &BTreeMap<u64, SocketAddr>,
) -> Result<BusMember, RaftError> {
    let mut config = RaftConfig::new(data_dir.join("bus-raft"), node_id);
    config.join = join;
    config.tick = tick;
    let transport = TcpTransport::with_dialer(
        node_id,
        TcpTransportConfig::default(),
        Arc::new(RaftDialer {
            config: tls.bus_raft_client.clone(),
            own,
        }),
    );
    for (id, addr) in bootstrap_peers {
        transport.set_peer(*id, *addr);
    }
    let bus = ReplicatedBus::open(config, ReplicatedConfig::default(), transport.clone()).await?;
    transport.report_unreachable_to(bus.node());
    Ok(BusMember { bus, transport })
}

/// Keeps the bus transport's peers where `book` says, and (on the bus leader) the bus
/// group's voters equal to the control plane's.
pub(crate) fn follow(
    control: Arc<ControlPlane>,
    book: &PeerBook,
    member: &BusMember,
    node_id: u64,
) -> Vec<JoinHandle<()>> {
    book.track(member.transport.clone());
    vec![follow_membership(control, member.bus.clone(), node_id)]
}

/// While this host leads the bus group, makes its voters those of the control plane.
fn follow_membership(
    control: Arc<ControlPlane>,
    bus: ReplicatedBus,
    node_id: u64,
) -> JoinHandle<()> {
    let span = tracing::info_span!("bus_membership", node_id);
    tokio::spawn(
        async move {
            let mut applied = control.subscribe();
            let mut control_status = control.raft().watch_status();
            let mut bus_status = bus.node().watch_status();
            loop {
                let failed = match next_change(&control, &bus, node_id) {
                    Some(change) => match bus.node().change_membership(change).await {
                        Ok(membership) => {
                            tracing::info!(?change, voters = ?membership.voters, "bus group membership changed");
                            continue;
                        }
                        Err(error) => {
                            tracing::debug!(?change, %error, "bus membership change failed; retrying");
                            true
                        }
                    },
                    None => false,
                };
                if failed {
                    tokio::time::sleep(MEMBERSHIP_RETRY).await;
                    continue;
                }
                tokio::select! {
                    changed = applied.changed() => if changed.is_err() { return },
                    changed = control_status.changed() => if changed.is_err() { return },
                    changed = bus_status.changed() => if changed.is_err() { return },
                    () = tokio::time::sleep(MEMBERSHIP_RECHECK) => {}
                }
            }
        }
        .instrument(span),
    )
}

/// The next change that brings the bus group's voters to the control plane's, if this host
/// leads the bus group.
fn next_change(
    control: &ControlPlane,
    bus: &ReplicatedBus,
    node_id: u64,
) -> Option<MembershipChange> {
    let status = bus.node().status();
    if status.role != Role::Leader {
        return None;
    }
    let wanted = control.raft().status().voters;
    if wanted.is_empty() {
        return None;
    }
    if let Some(id) = wanted.iter().find(|id| !status.voters.contains(id)) {
        return Some(MembershipChange::AddVoter(*id));
    }
    status
        .voters
        .iter()
        .find(|id| **id != node_id && !wanted.contains(id))
        .map(|id| MembershipChange::Remove(*id))
}

/// Forwards bus commands to the bus leader's `POST /v1/bus/propose`.
pub(crate) struct RpcBusForwarder {
    pub(crate) self_id: u64,
    pub(crate) tls: MemberTls,
    pub(crate) control: Arc<ControlPlane>,
}

impl RpcBusForwarder {
    /// The cluster address of host `id`, from the replicated registry.
    fn addr_of(&self, id: u64) -> Result<SocketAddr, ForwardError> {
        self.control
            .read(|state| state.host(id).map(|host| host.addrs.cluster.clone()))
            .and_then(|addr| addr.parse().ok())
            .ok_or_else(|| ForwardError::NotApplied(format!("host {id} has no cluster address")))
    }

    /// Proposes `command` on host `id`; a "not the leader" answer names the leader it knows.
    async fn propose_on(
        &self,
        id: u64,
        command: &Bytes,
    ) -> Result<Vec<u8>, (ForwardError, Option<u64>)> {
        let addr = self.addr_of(id).map_err(|e| (e, None))?;
        let connect = cloudware_cluster_tls::connect(addr, id, self.tls.http_client.clone());
        let stream = match tokio::time::timeout(CONNECT_TIMEOUT, connect).await {
            Ok(Ok(stream)) => stream,
            Ok(Err(error)) => {
                let reason = format!("host {id}: {error}");
                return Err((ForwardError::NotApplied(reason), None));
            }
            Err(_) => {
                let reason = format!("host {id}: no connection within {CONNECT_TIMEOUT:?}");
                return Err((ForwardError::NotApplied(reason), None));
            }
        };
        let exchange = rpc::exchange(stream, Method::POST, BUS_PROPOSE_PATH, command.clone());
        let answer = match tokio::time::timeout(ANSWER_TIMEOUT, exchange).await {
            Ok(Ok(answer)) => answer,
            Ok(Err(error)) => {
                return Err((ForwardError::Unknown(format!("host {id}: {error}")), None));
            }
            Err(_) => {
                let reason = format!("host {id}: no answer within {ANSWER_TIMEOUT:?}");
                return Err((ForwardError::Unknown(reason), None));
            }
        };
        if answer.status.is_success() {
            return Ok(answer.body.to_vec());
        }
        let (message, leader) = match serde_json::from_slice::<RpcError>(&answer.body) {
            Ok(error) => (format!("host {id}: {}", error.error), error.leader),
            Err(_) => (format!("host {id}: {}", answer.status), None),
        };
        if answer.status == StatusCode::GATEWAY_TIMEOUT {
            Err((ForwardError::Unknown(message), None))
        } else {
            Err((ForwardError::NotApplied(message), leader))
        }
    }
}

impl BusForwarder for RpcBusForwarder {
    fn forward(
        &self,
        leader: Option<u64>,
        command: Vec<u8>,
    ) -> BoxFuture<'_, Result<Vec<u8>, ForwardError>> {
        Box::pin(async move {
            let command = Bytes::from(command);
            let candidates: Vec<u64> = match leader {
                Some(id) => vec![id],
                None => self.control.read(|state| {
                    state
                        .hosts()
                        .map(|host| host.id)
                        .filter(|id| *id != self.self_id)
                        .collect()
                }),
            };
            let mut last = ForwardError::NotApplied("no peer to forward to".into());
            for id in candidates {
                match self.propose_on(id, &command).await {
                    Ok(outcome) => return Ok(outcome),
                    Err((error @ ForwardError::Unknown(_), _)) => return Err(error),
                    Err((_, Some(named))) if named != self.self_id && named != id => {
                        return self.propose_on(named, &command).await.map_err(|(e, _)| e);
                    }
                    Err((error, _)) => last = error,
                }
            }
            Err(last)
        })
    }
}
