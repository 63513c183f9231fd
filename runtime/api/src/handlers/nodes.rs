//! The cluster's hosts (operators): `GET /v1/nodes` lists them with their
//! raft role, state (ready, draining, down) and placed instances;
//! `POST /v1/nodes/{host}/drain` and `/ready` change what the operator wants of
//! a host; `DELETE /v1/nodes/{host}` removes one from the cluster. `{host}` is
//! a host's id or name.

use crate::ApiContext;
use crate::auth::{Action, Principal};
use crate::error::ApiError;
use crate::wire::{ClusterInfo, NodeInfo, PlacedOn, RemoveNode, ServiceCall};
use axum::Json;
use axum::extract::{Path, Query, State};
use cloudware_node::HostState;
use cloudware_state::{Command, HostMode, State as DesiredState};
use std::collections::BTreeMap;
use std::sync::Arc;

/// `GET /v1/nodes`: every host, its raft role and administrative mode.
pub async fn list(
    State(context): State<Arc<ApiContext>>,
    principal: Principal,
) -> Result<Json<ClusterInfo>, ApiError> {
    principal.require(Action::Administer)?;
    let status = context.control.raft().status();
    let role_of = |id: u64| {
        if status.leader == Some(id) {
            "leader"
        } else if status.voters.contains(&id) {
            "voter"
        } else if status.learners.contains(&id) {
            "learner"
        } else {
            "joining"
        }
    };
    let bus_leader = context.reconciler.capabilities().bus().leader();
    let mut hosts: Vec<NodeInfo> = context.control.read(|state| {
        let placed = placed_instances(state);
        state
            .hosts()
            .map(|host| {
                let (up, last_seen_ms) = liveness(&context, status.id, host.id);
                NodeInfo {
                    id: host.id,
                    name: host.name.clone(),
                    role: role_of(host.id).to_string(),
                    mode: match host.mode {
                        HostMode::Ready => "ready",
                        HostMode::Draining => "draining",
                    }
                    .to_string(),
                    state: HostState::of(host.mode, up).as_str().to_string(),
                    last_seen_ms,
                    instances: placed.get(&host.id).copied().unwrap_or(0),
                    cluster: host.addrs.cluster.clone(),
                    api: host.addrs.api.clone(),
                    gateway: host.addrs.gateway.clone(),
                    labels: host.labels.clone(),
                    bus_leader: bus_leader == Some(host.id),
                }
            })
            .collect()
    });
    if hosts.is_empty() {
        // Not a cluster: one node, its own only voter.
        hosts.push(NodeInfo {
            id: status.id,
            name: "local".to_string(),
            role: role_of(status.id).to_string(),
            mode: "ready".to_string(),
            state: "ready".to_string(),
            last_seen_ms: Some(0),
            instances: context
                .control
                .read(|state| state.apps().map(|app| app.scale.instances).sum::<u32>()),
            cluster: String::new(),
            api: String::new(),
            gateway: String::new(),
            labels: Default::default(),
            bus_leader: false,
        });
    }
    Ok(Json(ClusterInfo {
        this: status.id,
        leader: status.leader,
        term: status.term,
        commit_index: status.commit_index,
        hosts,
    }))
}

/// Whether `host` is up as this host (`this`) sees it, and how long ago it
/// last answered (milliseconds; this host always answers itself).
fn liveness(context: &ApiContext, this: u64, host: u64) -> (bool, Option<u64>) {
    if host == this {
        return (true, Some(0));
    }
    match &context.health {
        Some(health) => (
            health.is_up(host),
            health
                .last_seen(host)
                .map(|ago| u64::try_from(ago.as_millis()).unwrap_or(u64::MAX)),
        ),
        None => (false, None),
    }
}

/// Instances placed per host, over every app.
fn placed_instances(state: &DesiredState) -> BTreeMap<u64, u32> {
    let mut placed = BTreeMap::new();
    for app in state.apps() {
        for (host, n) in &app.placement {
            *placed.entry(*host).or_default() += n;
        }
    }
    placed
}

/// The id of the host named or numbered `host`.
fn resolve(context: &ApiContext, host: &str) -> Result<u64, ApiError> {
    context
        .control
        .read(|state| {
            state
                .hosts()
                .find(|h| h.name == host || h.id.to_string() == host)
                .map(|h| h.id)
        })
        .ok_or_else(|| ApiError::NotFound(format!("no host `{host}` in the cluster")))
}

/// `POST /v1/nodes/{host}/drain`: the host takes no new instances; the
/// scheduler moves its instances to other hosts.
pub async fn drain(
    State(context): State<Arc<ApiContext>>,
    principal: Principal,
    Path(host): Path<String>,
) -> Result<Json<ClusterInfo>, ApiError> {
    set_mode(context, principal, &host, HostMode::Draining).await
}

/// `POST /v1/nodes/{host}/ready`: the host takes instances again.
pub async fn ready(
    State(context): State<Arc<ApiContext>>,
    principal: Principal,
    Path(host): Path<String>,
) -> Result<Json<ClusterInfo>, ApiError> {
    set_mode(context, principal, &host, HostMode::Ready).await
}

async fn set_mode(
    context: Arc<ApiContext>,
    principal: Principal,
    host: &str,
    mode: HostMode,
) -> Result<Json<ClusterInfo>, ApiError> {
    principal.require(Action::Administer)?;
    let id = resolve(&context, host)?;
    context
        .control
        .propose(Command::SetHostMode { id, mode })
        .await?;
    list(State(context), principal).await
}

/// `DELETE /v1/nodes/{host}[?force=true]`: forgets the host; its instances
/// are placed elsewhere and it leaves the raft group. Refused while the host
/// is up and not draining, unless forced.
pub async fn remove(
    State(context): State<Arc<ApiContext>>,
    principal: Principal,
    Path(host): Path<String>,
    Query(options): Query<RemoveNode>,
) -> Result<Json<ClusterInfo>, ApiError> {
    principal.require(Action::Administer)?;
    let id = resolve(&context, host.as_str())?;
    let this = context.control.raft().id();
    let (mode, members) = context
        .control
        .read(|state| (state.host(id).map(|h| h.mode), state.hosts().count()));
    if members <= 1 {
        return Err(ApiError::Conflict(format!(
            "host `{host}` is the cluster's only host"
        )));
    }
    let (up, _) = liveness(&context, this, id);
    if up && mode == Some(HostMode::Ready) && !options.force {
        return Err(ApiError::Conflict(format!(
            "host `{host}` is up and ready: drain it first (`cloudware node drain {host}`), or force"
        )));
    }
    context.control.propose(Command::RemoveHost { id }).await?;
    list(State(context), principal).await
}

/// Where `tenant`'s `app` runs, and whether the services it imports run on
/// the same hosts (both empty outside a cluster).
pub fn placement_of(
    context: &ApiContext,
    tenant: &str,
    app: &str,
) -> (Vec<PlacedOn>, Vec<ServiceCall>) {
    let this = context.control.raft().id();
    context.control.read(|state| {
        let Some(caller) = state.app(tenant, app) else {
            return (Vec::new(), Vec::new());
        };
        let placement = caller
            .placement
            .iter()
            .filter_map(|(id, instances)| {
                let host = state.host(*id)?;
                let (up, _) = liveness(context, this, *id);
                Some(PlacedOn {
                    host: *id,
                    name: host.name.clone(),
                    state: HostState::of(host.mode, up).as_str().to_string(),
                    instances: *instances,
                })
            })
            .collect();
        let links = caller
            .current_deployment()
            .map(|d| cloudware_node::capabilities::links_of(&d.capabilities))
            .unwrap_or_default();
        let calls = links
            .into_iter()
            .map(|(interface, exporter)| {
                let there = state
                    .app(tenant, &exporter)
                    .map(|a| &a.placement)
                    .cloned()
                    .unwrap_or_default();
                ServiceCall {
                    crosses_hosts: caller.placement.keys().any(|id| !there.contains_key(id)),
                    interface,
                    app: exporter,
                }
            })
            .collect();
        (placement, calls)
    })
}

/// Puts every host's state, as this host sees it, into the metrics
/// (`cloudware_host_state`).
pub fn record_host_states(context: &ApiContext) {
    let this = context.control.raft().id();
    let hosts: Vec<(String, &str)> = context.control.read(|state| {
        state
            .hosts()
            .map(|host| {
                let (up, _) = liveness(context, this, host.id);
                (host.name.clone(), HostState::of(host.mode, up).as_str())
            })
            .collect()
    });
    context.metrics.set_host_states(&hosts);
}
