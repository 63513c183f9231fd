//! Hosts restarted on new cluster addresses.

use crate::harness::*;
use cloudware_raft::Role;

/// The cluster address host `id` has in `host`'s copy of the registry.
fn registered_addr(host: &Host, id: u64) -> Option<String> {
    host.cluster()
        .control()
        .read(|state| state.host(id).map(|h| h.addrs.cluster.clone()))
}

/// Waits until `host` leads the control plane, asking the current leader to hand over.
async fn make_leader(cluster: &mut Cluster, id: u64) {
    let started = Instant::now();
    loop {
        let status = cluster.host(id).cluster().control().raft().status();
        if status.role == Role::Leader {
            return;
        }
        assert!(
            started.elapsed() < SETTLE,
            "host {id} did not become the leader"
        );
        if let Some(leader) = status.leader.filter(|leader| *leader != id) {
            let raft = cluster.host(leader).cluster().control().raft().clone();
            let _ = raft.transfer_leadership(id).await;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Host 3 is down while host 1 moves to a new address and becomes the leader; host 3 then
/// restarts on a new address too. Its replayed registry has host 1's old address, and host 1
/// has host 3's old one: neither can reach the other. Host 3's new address must reach the
/// leader through host 2 (a relayed proposal), after which the leader reaches host 3 and it
/// catches up.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_host_that_missed_the_leaders_move_rejoins_through_a_relay() {
    let mut cluster = Cluster::start(&[Serve::NotHere, Serve::NotHere, Serve::NotHere], FAST).await;
    cluster.host(3).stop().await;

    let old = cluster.host(1).cluster().cluster_addr();
    cluster.host(1).stop().await;
    cluster.host(1).restart_elsewhere(FAST).await;
    let moved = cluster.host(1).cluster().cluster_addr().to_string();
    assert_ne!(old.to_string(), moved);
    let host2 = &cluster.hosts[1];
    wait_for("host 2 knows host 1's new address", SETTLE, || {
        registered_addr(host2, 1).as_deref() == Some(moved.as_str())
    })
    .await;
    make_leader(&mut cluster, 1).await;

    cluster.host(3).restart_elsewhere(FAST).await;
    let host3_addr = cluster.host(3).cluster().cluster_addr().to_string();
    let leader = &cluster.hosts[0];
    wait_for("the leader knows host 3's new address", SETTLE, || {
        registered_addr(leader, 3).as_deref() == Some(host3_addr.as_str())
    })
    .await;
    let leader_applied = leader.cluster().control().raft().applied_index();
    let host3 = &cluster.hosts[2];
    wait_for("host 3 catches up with the leader", SETTLE, || {
        host3.cluster().control().raft().applied_index() >= leader_applied
    })
    .await;
    assert_eq!(registered_addr(host3, 1).as_deref(), Some(moved.as_str()));
    assert_eq!(
        host3.cluster().control().raft().status().leader,
        Some(1),
        "host 3 follows the leader"
    );
}
