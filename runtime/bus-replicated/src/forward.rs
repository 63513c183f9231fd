//! Forwarding proposals from a follower to the leader.
//!
//! Only the raft leader takes proposals. A member that is not the leader hands the encoded
//! [`Command`](crate::Command) to a [`BusForwarder`], which proposes it on the leader and
//! returns the leader's encoded outcome. The cluster host will implement it with its
//! host-to-host calls (like `cloudware_node::ProposalForwarder`); [`LocalForwarder`] reaches
//! the other members of an in-process group directly (tests, benchmarks).

use std::collections::HashMap;
use std::sync::{Arc, PoisonError, RwLock, Weak};

use cloudware_bus::BoxFuture;
use cloudware_raft::{ProposeError, RaftNode};

/// Why a forwarded proposal produced no outcome.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ForwardError {
    /// Certainly not applied (the callee is not the leader, unreachable, refused): retry.
    #[error("not applied: {0}")]
    NotApplied(String),
    /// Handed to the leader, but no answer came: it may be applied.
    #[error("outcome unknown: {0}")]
    Unknown(String),
}

/// Proposes an encoded bus command on the raft leader, for a member that is not it.
pub trait BusForwarder: Send + Sync + 'static {
    /// Sends `command` to member `leader` (or, when unknown, to whichever member leads) and
    /// returns the outcome bytes its [`RaftNode::propose`] returned.
    fn forward(
        &self,
        leader: Option<u64>,
        command: Vec<u8>,
    ) -> BoxFuture<'_, Result<Vec<u8>, ForwardError>>;
}

/// A [`BusForwarder`] over the raft nodes of an in-process group (held weakly, so a stopped
/// member is simply unreachable).
#[derive(Default)]
pub struct LocalForwarder {
    nodes: RwLock<HashMap<u64, Weak<RaftNode>>>,
}

impl LocalForwarder {
    /// An empty forwarder; add members with [`LocalForwarder::insert`].
    pub fn new() -> Arc<Self> {
        Arc::new(Self::default())
    }

    /// Makes `node` reachable under its id (replacing an earlier one).
    pub fn insert(&self, node: &Arc<RaftNode>) {
        self.nodes
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(node.id(), Arc::downgrade(node));
    }

    /// Makes member `id` unreachable.
    pub fn remove(&self, id: u64) {
        self.nodes
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(&id);
    }

    fn node(&self, id: u64) -> Option<Arc<RaftNode>> {
        self.nodes
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&id)
            .and_then(Weak::upgrade)
    }

    fn ids(&self) -> Vec<u64> {
        let mut ids: Vec<u64> = self
            .nodes
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .keys()
            .copied()
            .collect();
        ids.sort_unstable();
        ids
    }
}

impl BusForwarder for LocalForwarder {
    fn forward(
        &self,
        leader: Option<u64>,
        command: Vec<u8>,
    ) -> BoxFuture<'_, Result<Vec<u8>, ForwardError>> {
        Box::pin(async move {
            let candidates = match leader {
                Some(id) => vec![id],
                None => self.ids(),
            };
            let mut last = ForwardError::NotApplied("no member to forward to".into());
            for id in candidates {
                let Some(node) = self.node(id) else {
                    last = ForwardError::NotApplied(format!("member {id} is unreachable"));
                    continue;
                };
                match node.propose(command.clone()).await {
                    Ok(outcome) => return Ok(outcome),
                    // Stopped mid-way: the entry may have reached the others.
                    Err(e @ (ProposeError::Timeout(_) | ProposeError::Stopped)) => {
                        return Err(ForwardError::Unknown(format!("member {id}: {e}")));
                    }
                    Err(e) => last = ForwardError::NotApplied(format!("member {id}: {e}")),
                }
            }
            Err(last)
        })
    }
}
