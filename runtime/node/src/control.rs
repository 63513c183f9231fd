//! The control plane of a node: the desired [`State`] replicated by raft.
//!
//! Writes are [`Command`]s wrapped in an [`Envelope`] with a fresh request
//! id and proposed to the raft log; every node applies committed commands to
//! its own copy of the state, in log order. A proposal that raft drops or
//! that times out is retried with the *same* request id, which the state
//! remembers, so a command is never applied twice. Readers take a shared
//! view of the state and can watch the applied index to react to changes.
//!
//! In a cluster only the raft leader takes proposals: a host that is not
//! the leader hands the envelope to its [`ProposalForwarder`] (the cluster's
//! host-to-host calls), which proposes it on the leader; while there is no
//! leader (an election) the proposal waits, bounded.

use cloudware_raft::{ProposeError, RaftConfig, RaftError, RaftNode, StateMachine, Transport};
use cloudware_state::{Command, CommandError, Envelope, Outcome, State};
use futures::future::BoxFuture;
use std::path::Path;
use std::sync::{Arc, OnceLock, PoisonError, RwLock};
use std::time::{Duration, Instant};
use tokio::sync::watch;

/// How often a dropped or timed-out proposal is retried.
const PROPOSE_ATTEMPTS: usize = 3;

/// How long a proposal waits for a leader (elections, forwarding retries).
const LEADER_WAIT: Duration = Duration::from_secs(10);

/// Proposes an encoded [`Envelope`] on the leader, for a host that is not it.
pub trait ProposalForwarder: Send + Sync + 'static {
    /// Sends `envelope` (JSON) to host `leader` — or, when this host does not
    /// know the leader (e.g. it just restarted on a new address no one dials
    /// yet), to whichever peer leads — and returns its raft outcome bytes
    /// (what [`RaftNode::propose`] returned there) and the leader's applied
    /// index when it answered, which includes the entry.
    fn forward(
        &self,
        leader: Option<u64>,
        envelope: Vec<u8>,
    ) -> BoxFuture<'_, Result<(Vec<u8>, u64), String>>;
}

/// How long a host waits to apply a forwarded proposal's entry itself, so
/// that reads made here after a write see it.
const READ_YOUR_WRITES_WAIT: Duration = Duration::from_secs(5);

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
    raft: Arc<RaftNode>,
    state: Arc<RwLock<State>>,
    forwarder: OnceLock<Arc<dyn ProposalForwarder>>,
}

impl ControlPlane {
    /// Opens (or recovers) the raft log in `dir` as the only member
    /// `node_id`.
    pub async fn open(dir: &Path, node_id: u64) -> Result<Self, OpenError> {
        Self::open_with(
            RaftConfig::new(dir, node_id),
            cloudware_raft::LocalTransport,
        )
        .await
    }

    /// Opens (or recovers) the raft log as configured, sending to peers
    /// through `transport` (a cluster member).
    pub async fn open_with<T: Transport>(
        config: RaftConfig,
        transport: T,
    ) -> Result<Self, OpenError> {
        let state = Arc::new(RwLock::new(State::new()));
        let machine = ReplicatedState {
            state: state.clone(),
        };
        let raft = RaftNode::open_with_transport(config, machine, transport).await?;
        Ok(ControlPlane {
            raft: Arc::new(raft),
            state,
            forwarder: OnceLock::new(),
        })
    }

    /// Sets how proposals reach the leader when this host is not it (once).
    pub fn set_forwarder(&self, forwarder: Arc<dyn ProposalForwarder>) {
        let _ = self.forwarder.set(forwarder);
    }

    /// Proposes `command` and waits until it is committed and applied.
    pub async fn propose(&self, command: Command) -> Result<Outcome, ProposeFailure> {
        let envelope = Envelope::new(new_request_id(), command);
        let bytes = serde_json::to_vec(&envelope)
            .map_err(|err| ProposeFailure::Unavailable(format!("cannot encode command: {err}")))?;
        let outcome = self.propose_envelope(&envelope.request_id, bytes).await?;
        decode_outcome(&outcome)
    }

    /// Proposes an encoded envelope — here if this host leads, else through
    /// the forwarder on the leader — retrying dropped and timed-out attempts
    /// (same request id: never applied twice) and waiting out elections.
    /// Returns raft's outcome bytes.
    pub async fn propose_envelope(
        &self,
        request_id: &str,
        bytes: Vec<u8>,
    ) -> Result<Vec<u8>, ProposeFailure> {
        let deadline = Instant::now() + LEADER_WAIT;
        let mut attempts = 0;
        let mut last_error = String::from("no attempt made");
        while attempts < PROPOSE_ATTEMPTS {
            let result = self.raft.propose(bytes.clone()).await;
            let leader = match result {
                Ok(outcome) => return Ok(outcome),
                Err(err @ (ProposeError::Dropped | ProposeError::Timeout(_))) => {
                    tracing::warn!(request_id, error = %err, "retrying proposal");
                    attempts += 1;
                    last_error = err.to_string();
                    continue;
                }
                Err(ProposeError::NotLeader { leader }) => leader,
                Err(err) => return Err(ProposeFailure::Unavailable(err.to_string())),
            };
            match (leader, self.forwarder.get()) {
                (Some(leader), _) if leader == self.raft.id() => {
                    last_error = "leadership is changing".to_string();
                }
                (leader, Some(forwarder)) => match forwarder.forward(leader, bytes.clone()).await {
                    Ok((outcome, index)) => {
                        self.wait_applied(index).await;
                        return Ok(outcome);
                    }
                    Err(err) => {
                        tracing::warn!(request_id, ?leader, error = %err, "forwarding to the leader failed; retrying");
                        last_error = format!("forwarding to the leader ({leader:?}): {err}");
                    }
                },
                (Some(leader), None) => {
                    return Err(ProposeFailure::Unavailable(format!(
                        "this host is not the leader (host {leader} is)"
                    )));
                }
                (None, None) => {
                    last_error = "no raft leader (an election is under way)".to_string();
                }
            }
            if Instant::now() >= deadline {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Err(ProposeFailure::Unavailable(last_error))
    }

    /// Waits (bounded) until this host applied log `index`.
    async fn wait_applied(&self, index: u64) {
        let mut applied = self.raft.subscribe();
        let reached =
            tokio::time::timeout(READ_YOUR_WRITES_WAIT, applied.wait_for(|a| *a >= index));
        if !matches!(reached.await, Ok(Ok(_))) {
            tracing::warn!(index, "a forwarded write is not applied here yet");
        }
    }

    /// Reads the current state.
    pub fn read<R>(&self, read: impl FnOnce(&State) -> R) -> R {
        read(&self.state.read().unwrap_or_else(PoisonError::into_inner))
    }

    /// Watches the applied log index; it changes after every applied command.
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.raft.subscribe()
    }

    /// The raft node, for status and cluster membership.
    pub fn raft(&self) -> &Arc<RaftNode> {
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
