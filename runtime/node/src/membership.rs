//! Raft membership follows the host registry: on the leader, a voter whose
//! host was removed from the replicated registry
//! ([`Command::RemoveHost`](cloudware_state::Command::RemoveHost), what
//! `cloudware node remove` proposes) is taken out of the raft group by a
//! configuration change. When the host to remove is the leader itself, it
//! first hands leadership to a peer that answers heartbeats; the new leader
//! then removes it.
//!
//! Joining works the other way round (the new host registers, then asks to
//! become a voter), so a voter missing from the registry is always one that
//! was removed.

use crate::control::ControlPlane;
use crate::health::PeerHealth;
use cloudware_raft::{MembershipChange, Role};
use std::sync::Arc;
use std::time::Duration;
use tracing::Instrument;

/// How often the leader compares the group with the registry.
const TICK: Duration = Duration::from_millis(250);

/// Starts the task on host `host`; it runs until the control plane stops.
pub fn spawn(
    control: Arc<ControlPlane>,
    health: Arc<dyn PeerHealth>,
    host: u64,
) -> tokio::task::JoinHandle<()> {
    let span = tracing::info_span!("membership", host);
    tokio::spawn(run(control, health, host).instrument(span))
}

async fn run(control: Arc<ControlPlane>, health: Arc<dyn PeerHealth>, host: u64) {
    let mut applied = control.subscribe();
    let mut tick = tokio::time::interval(TICK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            changed = applied.changed() => if changed.is_err() { break },
            _ = tick.tick() => {}
        }
        let status = control.raft().status();
        if status.role != Role::Leader {
            continue;
        }
        let (removed, registered): (Vec<u64>, Vec<u64>) = control.read(|state| {
            // Outside a cluster there is no registry to follow.
            if state.hosts().next().is_none() {
                return (Vec::new(), Vec::new());
            }
            status
                .voters
                .iter()
                .chain(&status.learners)
                .partition(|id| state.host(**id).is_none())
        });
        let Some(&gone) = removed.first() else {
            continue;
        };
        if gone == host {
            // Hand over first: a leader cannot well remove itself.
            let Some(&next) = registered
                .iter()
                .find(|id| **id != host && status.voters.contains(id) && health.is_up(**id))
            else {
                tracing::warn!("removed from the registry, but no peer is up to lead");
                continue;
            };
            tracing::info!(to = next, "this host was removed: handing over leadership");
            if let Err(err) = control.raft().transfer_leadership(next).await {
                tracing::warn!(%err, "cannot hand over leadership");
            }
            tokio::time::sleep(TICK * 4).await;
            continue;
        }
        match control
            .raft()
            .change_membership(MembershipChange::Remove(gone))
            .await
        {
            Ok(membership) => {
                tracing::info!(removed = gone, voters = ?membership.voters, "host left the raft group")
            }
            Err(err) => {
                tracing::warn!(host = gone, %err, "cannot remove the host from the raft group")
            }
        }
    }
}
