//! The cluster's hosts: `GET /v1/nodes` (operators).

use crate::ApiContext;
use crate::auth::{Action, Principal};
use crate::error::ApiError;
use crate::wire::{ClusterInfo, NodeInfo};
use axum::Json;
use axum::extract::State;
use cloudware_state::HostMode;
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
    let mut hosts: Vec<NodeInfo> = context.control.read(|state| {
        state
            .hosts()
            .map(|host| NodeInfo {
                id: host.id,
                name: host.name.clone(),
                role: role_of(host.id).to_string(),
                mode: match host.mode {
                    HostMode::Ready => "ready",
                    HostMode::Draining => "draining",
                }
                .to_string(),
                cluster: host.addrs.cluster.clone(),
                api: host.addrs.api.clone(),
                gateway: host.addrs.gateway.clone(),
                labels: host.labels.clone(),
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
            cluster: String::new(),
            api: String::new(),
            gateway: String::new(),
            labels: Default::default(),
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
