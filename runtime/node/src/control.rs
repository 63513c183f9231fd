//! The control plane of a node: the desired [`State`] replicated by raft.
//!
//! Writes are [`Command`]s wrapped in an [`Envelope`] with a fresh request
//! id and proposed to the raft log; every node applies committed commands to
//! its own copy of the state, in log order. A proposal that raft drops or
//! that times out is retried with the *same* request id, which the state
//! remembers, so a command is never applied twice. Readers take a shared
//! view of the state and can watch the applied index to react to changes.

use cloudware_raft::{ProposeError, RaftConfig, RaftError, RaftNode, StateMachine};
use cloudware_state::{Command, CommandError, Envelope, Outcome, State};
use std::path::Path;
use std::sync::{Arc, PoisonError, RwLock};
use tokio::sync::watch;

/// How often a dropped or timed-out proposal is retried.
const PROPOSE_ATTEMPTS: usize = 3;

/// Why a proposal did not produce an outcome.
#[derive(Debug, thiserror::Error)]
pub enum ProposeFailure {
    /// The state machine rejected the command; nothing changed.
    #[error(transparent)]
    Rejected(#[from] CommandError),
    /// The log could not take the command (no leader, stopped, timed out).
    #[error("the control plane is unavailable: {0}")]
    Unavailable(String),
}

/// Why the control plane could not start.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    /// The raft log could not be opened or recovered.
    #[error("cannot open the replicated log: {0}")]
    Raft(#[from] RaftError),
}

/// The replicated desired state of this node.
pub struct ControlPlane {
    raft: RaftNode,
    state: Arc<RwLock<State>>,
}

impl ControlPlane {
    /// Opens (or recovers) the raft log in `dir` as member `node_id`.
    pub async fn open(dir: &Path, node_id: u64) -> Result<Self, OpenError> {
        let state = Arc::new(RwLock::new(State::new()));
        let machine = ReplicatedState {
            state: state.clone(),
        };
        let raft = RaftNode::open(RaftConfig::new(dir, node_id), machine).await?;
        Ok(ControlPlane { raft, state })
    }

    /// Proposes `command` and waits until it is committed and applied.
    pub async fn propose(&self, command: Command) -> Result<Outcome, ProposeFailure> {
        let envelope = Envelope::new(new_request_id(), command);
        let bytes = serde_json::to_vec(&envelope)
            .map_err(|err| ProposeFailure::Unavailable(format!("cannot encode command: {err}")))?;
        let mut last_error = None;
        for _ in 0..PROPOSE_ATTEMPTS {
            match self.raft.propose(bytes.clone()).await {
                Ok(outcome) => return decode_outcome(&outcome),
                Err(err @ (ProposeError::Dropped | ProposeError::Timeout(_))) => {
                    tracing::warn!(request_id = %envelope.request_id, error = %err, "retrying proposal");
                    last_error = Some(err);
                }
                Err(err) => return Err(ProposeFailure::Unavailable(err.to_string())),
            }
        }
        Err(ProposeFailure::Unavailable(last_error.map_or_else(
            || "no attempt made".to_string(),
            |e| e.to_string(),
        )))
    }

    /// Reads the current state.
    pub fn read<R>(&self, read: impl FnOnce(&State) -> R) -> R {
        read(&self.state.read().unwrap_or_else(PoisonError::into_inner))
    }

    /// Watches the applied log index; it changes after every applied command.
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.raft.subscribe()
    }

    /// The raft node, for status and (later) cluster membership.
    pub fn raft(&self) -> &RaftNode {
        &self.raft
    }

    /// Stops the raft driver.
    pub async fn shutdown(&self) {
        if let Err(err) = self.raft.shutdown().await {
            tracing::warn!(error = %err, "raft shutdown");
        }
    }
}

/// [`State`] as raft's state machine: commands and outcomes travel as JSON.
struct ReplicatedState {
    state: Arc<RwLock<State>>,
}

/// What a proposer gets back for one applied entry.
type Applied = Result<Outcome, CommandError>;

impl StateMachine for ReplicatedState {
    fn apply(&mut self, index: u64, command: &[u8]) -> Vec<u8> {
        let applied: Applied = match serde_json::from_slice::<Envelope>(command) {
            Ok(envelope) => self
                .state
                .write()
                .unwrap_or_else(PoisonError::into_inner)
                .apply(&envelope),
            Err(err) => {
                // Every node skips the same undecodable entry, so state stays identical.
                tracing::error!(index, error = %err, "skipping an undecodable log entry");
                Err(CommandError::MissingRequestId)
            }
        };
        serde_json::to_vec(&applied).unwrap_or_default()
    }

    fn snapshot(&self) -> Vec<u8> {
        self.state
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .to_snapshot()
    }

    fn restore(&mut self, snapshot: &[u8]) -> Result<(), String> {
        let restored = State::from_snapshot(snapshot).map_err(|err| err.to_string())?;
        *self.state.write().unwrap_or_else(PoisonError::into_inner) = restored;
        Ok(())
    }
}

fn decode_outcome(bytes: &[u8]) -> Result<Outcome, ProposeFailure> {
    let applied: Applied = serde_json::from_slice(bytes)
        .map_err(|err| ProposeFailure::Unavailable(format!("undecodable outcome: {err}")))?;
    applied.map_err(ProposeFailure::Rejected)
}

/// A fresh request id: 128 random bits in hex.
pub fn new_request_id() -> String {
    hex::encode(rand::random::<[u8; 16]>())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(flavor = "multi_thread")]
    async fn commands_apply_and_survive_a_restart() {
        let dir = tempfile::tempdir().expect("dir");
        {
            let control = ControlPlane::open(dir.path(), 1).await.expect("open");
            let outcome = control
                .propose(Command::CreateTenant {
                    name: "acme".into(),
                    at: 1,
                })
                .await
                .expect("create tenant");
            assert_eq!(outcome, Outcome::TenantCreated);
            let err = control
                .propose(Command::CreateTenant {
                    name: "acme".into(),
                    at: 2,
                })
                .await
                .expect_err("duplicate");
            assert!(
                matches!(
                    err,
                    ProposeFailure::Rejected(CommandError::TenantExists { .. })
                ),
                "{err}"
            );
            control.shutdown().await;
        }
        let control = ControlPlane::open(dir.path(), 1).await.expect("reopen");
        assert_eq!(control.read(|s| s.tenants().count()), 1);
    }
}
