//! Keeps the raft transport's peer addresses equal to the replicated host registry: every
//! applied change of the state re-reads it.

use cloudware_node::ControlPlane;
use cloudware_raft::TcpTransport;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::task::JoinHandle;

/// The cluster addresses of every host but `self_id`.
pub(crate) fn peer_addrs(control: &ControlPlane, self_id: u64) -> BTreeMap<u64, SocketAddr> {
    control.read(|state| {
        state
            .hosts()
            .filter(|host| host.id != self_id)
            .filter_map(|host| Some((host.id, host.addrs.cluster.parse().ok()?)))
            .collect()
    })
}

/// Applies the registry to the transport now, then after every applied command.
pub(crate) fn follow_registry(
    control: Arc<ControlPlane>,
    transport: TcpTransport,
    self_id: u64,
) -> JoinHandle<()> {
    let mut applied = control.subscribe();
    tokio::spawn(async move {
        loop {
            let wanted = peer_addrs(&control, self_id);
            // Keep bootstrap addresses (from a join answer) until the registry arrives.
            if !wanted.is_empty() {
                for (id, _) in transport.peers() {
                    if !wanted.contains_key(&id) {
                        transport.remove_peer(id);
                    }
                }
                for (id, addr) in &wanted {
                    transport.set_peer(*id, *addr);
                }
            }
            if applied.changed().await.is_err() {
                return;
            }
        }
    })
}
