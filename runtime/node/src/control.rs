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
//! leader (an election) the proposal waits, bounded. A forward that hangs
//! (the leader is paused or cut off) is abandoned as soon as this host sees
//! another leader, and every proposal gives up after [`LEADER_WAIT`]: a
//! host cut off from the majority answers "unavailable", never "done".
//!
//! [`ControlPlane::read`] reads this host's copy as applied so far (fast,
//! possibly behind the leader); [`ControlPlane::read_linearizable`] first
//! asks raft for a read index (the leader confirms with a quorum that it
//! still leads) and waits until this host applied up to it, so the read
//! reflects every write acknowledged anywhere before it — or it fails with
//! a [`ReadFailure`] when no quorum can confirm it.

use cloudware_raft::{ProposeError, RaftConfig, RaftError, RaftNode, StateMachine, Transport};
use cloudware_state::{Command, CommandError, Envelope, Outcome, State};
use futures::future::BoxFuture;
use std::path::Path;
use std::sync::{Arc, OnceLock, PoisonError, RwLock};
use std::time::{Duration, Instant};
use tokio::sync::watch;
use tracing::Instrument as _;

/// How often a dropped or timed-out proposal is retried.
const PROPOSE_ATTEMPTS: usize = 3;

/// How long a proposal waits for a leader (elections, forwarding retries)
/// before it is answered "unavailable".
pub const LEADER_WAIT: Duration = Duration::from_secs(10);

/// How one forwarding attempt ended.
enum Forwarded {
    /// The leader applied it: raft's outcome bytes and its applied index.
    Done(Vec<u8>, u64),
    /// The call failed (the callee is not the leader, unreachable…).
    Failed(String),
    /// This host saw the leader change before an answer came.
    LeaderChanged,
    /// The proposal's deadline passed before an answer came.
    OutOfTime,
}

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

/// Why a linearizable read could not be served. The state was not read:
/// nothing possibly stale is returned.
#[derive(Debug, thiserror::Error)]
pub enum ReadFailure {
    /// No leader was known for the whole wait: an election that does not
    /// end, or this host is cut off from the majority.
    #[error(
        "no raft leader: the cluster has no quorum (this host has not reached a majority of the hosts for {waited:?}); the read was not served"
    )]
    NoLeader {
        /// How long the read waited for a leader.
        waited: Duration,
    },
    /// The leader did not confirm the read (or this host did not apply up
    /// to it) in time: the leader may have lost its quorum.
    #[error(
        "the raft leader ({}) did not confirm the read within {waited:?}; the cluster may have lost its quorum; the read was not served",
        leader.map_or_else(|| "unknown".to_string(), |id| format!("host {id}"))
    )]
    Timeout {
        /// The leader this host knew of, if any.
        leader: Option<u64>,
        /// How long the read waited.
        waited: Duration,
    },
    /// The raft node stopped.
    #[error("the control plane stopped; the read was not served")]
    Stopped,
}

impl From<ReadFailure> for ProposeFailure {
    fn from(err: ReadFailure) -> Self {
        ProposeFailure::Unavailable(err.to_string())
    }
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
    /// Returns raft's outcome bytes. Gives up after [`LEADER_WAIT`] (an
    /// attempt in flight then is abandoned; the command may still be
    /// applied, at most once).
    pub async fn propose_envelope(
        &self,
        request_id: &str,
        bytes: Vec<u8>,
    ) -> Result<Vec<u8>, ProposeFailure> {
        let span = tracing::debug_span!("propose", request_id);
        self.propose_until(request_id, bytes, Instant::now() + LEADER_WAIT)
            .instrument(span)
            .await
    }

    async fn propose_until(
        &self,
        request_id: &str,
        bytes: Vec<u8>,
        deadline: Instant,
    ) -> Result<Vec<u8>, ProposeFailure> {
        let started = Instant::now();
        let mut attempts = 0;
        let mut last_error = String::from("no attempt made");
        while attempts < PROPOSE_ATTEMPTS {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            let timeout = left.min(self.raft.propose_timeout());
            let result = self.raft.propose_with_timeout(bytes.clone(), timeout).await;
            let leader = match result {
                Ok(outcome) => return Ok(outcome),
                Err(err @ (ProposeError::Dropped | ProposeError::Timeout(_))) => {
                    tracing::warn!(request_id, error = %err, "retrying proposal");
                    attempts += 1;
                    last_error = match err {
                        ProposeError::Timeout(_) => format!(
                            "no quorum acknowledged the command in time; this host may be cut off from the majority ({err})"
                        ),
                        err => err.to_string(),
                    };
                    continue;
                }
                Err(ProposeError::NotLeader { leader }) => leader,
                Err(err) => return Err(ProposeFailure::Unavailable(err.to_string())),
            };
            match (leader, self.forwarder.get()) {
                (Some(leader), _) if leader == self.raft.id() => {
                    last_error = "leadership is changing".to_string();
                }
                (leader, Some(forwarder)) => {
                    match self
                        .forward(forwarder.as_ref(), leader, &bytes, deadline)
                        .await
                    {
                        Forwarded::Done(outcome, index) => {
                            self.wait_applied(index).await;
                            return Ok(outcome);
                        }
                        Forwarded::Failed(err) => {
                            tracing::warn!(request_id, ?leader, error = %err, "forwarding to the leader failed; retrying");
                            last_error = format!("forwarding to the leader ({leader:?}): {err}");
                        }
                        Forwarded::LeaderChanged => {
                            tracing::info!(
                                request_id,
                                ?leader,
                                "the leader changed while forwarding; retrying"
                            );
                            last_error = "the leader changed".to_string();
                            continue;
                        }
                        Forwarded::OutOfTime => {
                            last_error = match leader {
                                Some(leader) => format!(
                                    "the raft leader (host {leader}) did not answer; it may be cut off from this host"
                                ),
                                None => "no raft leader: the cluster has no quorum (no host answered as leader)".to_string(),
                            };
                            break;
                        }
                    }
                }
                (Some(leader), None) => {
                    return Err(ProposeFailure::Unavailable(format!(
                        "this host is not the leader (host {leader} is)"
                    )));
                }
                (None, None) => {
                    last_error =
                        "no raft leader: the cluster has no quorum (or an election is under way)"
                            .to_string();
                }
            }
            if Instant::now() >= deadline {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Err(ProposeFailure::Unavailable(format!(
            "the command was not acknowledged (gave up after {:.1?}): {last_error}",
            started.elapsed()
        )))
    }

    /// Forwards `bytes` to `leader` (or whoever leads) until `deadline`,
    /// abandoning the call when this host sees the leader change (a call
    /// to a paused or cut-off leader may otherwise hang for its whole
    /// timeout while a new leader is already elected).
    async fn forward(
        &self,
        forwarder: &dyn ProposalForwarder,
        leader: Option<u64>,
        bytes: &[u8],
        deadline: Instant,
    ) -> Forwarded {
        let mut status = self.raft.watch_status();
        // Only the outcome leaves the block: a watch guard must not be held.
        let changed = async move { status.wait_for(|s| s.leader != leader).await.is_ok() };
        let deadline = tokio::time::Instant::from_std(deadline);
        tokio::select! {
            forwarded = forwarder.forward(leader, bytes.to_vec()) => match forwarded {
                Ok((outcome, index)) => Forwarded::Done(outcome, index),
                Err(err) => Forwarded::Failed(err),
            },
            // A stopped node (`false`) fails the next local attempt.
            _ = changed => Forwarded::LeaderChanged,
            () = tokio::time::sleep_until(deadline) => Forwarded::OutOfTime,
        }
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

    /// Reads this host's copy of the state as applied so far: fast, but on
    /// a follower (or a leader cut off from the others) it may miss writes
    /// acknowledged elsewhere. See [`ControlPlane::read_linearizable`].
    pub fn read<R>(&self, read: impl FnOnce(&State) -> R) -> R {
        read(&self.state.read().unwrap_or_else(PoisonError::into_inner))
    }

    /// Reads the state after every write acknowledged (on any host) before
    /// the call: gets a raft read index — the leader confirms with a quorum
    /// that it still leads — waits until this host applied up to it, then
    /// runs `read`. Waits out an election, bounded by the raft read timeout;
    /// fails rather than read a possibly stale state when no quorum
    /// confirms. With a single host this costs one round trip to the raft
    /// task and no disk access.
    pub async fn read_linearizable<R>(
        &self,
        read: impl FnOnce(&State) -> R,
    ) -> Result<R, ReadFailure> {
        let span = tracing::debug_span!("read_linearizable");
        self.confirm_read().instrument(span).await?;
        Ok(self.read(read))
    }

    /// Gets a read index and waits until it is applied here; retries while
    /// there is no leader, until the raft read timeout.
    async fn confirm_read(&self) -> Result<u64, ReadFailure> {
        let started = Instant::now();
        let wait = self.raft.read_timeout();
        let deadline = started + wait;
        let mut status = self.raft.watch_status();
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let result = if left.is_zero() {
                Err(ProposeError::Timeout(wait))
            } else {
                self.raft.read_index_with_timeout(left).await
            };
            match result {
                Ok(index) => return Ok(index),
                Err(ProposeError::NotLeader { .. } | ProposeError::Dropped) => {
                    // Wait (bounded) until some leader is known, then try again.
                    // Only the outcome leaves the future: a watch guard must not be held.
                    let known = async { status.wait_for(|s| s.leader.is_some()).await.is_ok() };
                    let deadline = tokio::time::Instant::from_std(deadline);
                    match tokio::time::timeout_at(deadline, known).await {
                        Ok(true) => tokio::time::sleep(Duration::from_millis(20)).await,
                        Ok(false) => return Err(ReadFailure::Stopped),
                        Err(_) => return Err(ReadFailure::NoLeader { waited: wait }),
                    }
                }
                Err(ProposeError::Timeout(_)) => {
                    let leader = self.raft.status().leader;
                    return Err(match leader {
                        None => ReadFailure::NoLeader { waited: wait },
                        leader => ReadFailure::Timeout {
                            leader,
                            waited: started.elapsed(),
                        },
                    });
                }
                Err(ProposeError::Stopped) => return Err(ReadFailure::Stopped),
            }
        }
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

    #[tokio::test(flavor = "multi_thread")]
    async fn linearizable_reads_see_acknowledged_writes_and_fail_without_a_quorum() {
        let dir = tempfile::tempdir().expect("dir");
        let control = ControlPlane::open(dir.path(), 1).await.expect("open");
        control
            .propose(Command::CreateTenant {
                name: "acme".into(),
                at: 1,
            })
            .await
            .expect("create tenant");
        let count = control
            .read_linearizable(|s| s.tenants().count())
            .await
            .expect("a single host answers at once");
        assert_eq!(count, 1);
        control.shutdown().await;

        // One of two voters, the other never reachable: no leader, no read.
        let dir = tempfile::tempdir().expect("dir");
        let mut config = RaftConfig::new(dir.path(), 1);
        config.initial_voters = vec![1, 2];
        config.tick = Duration::from_millis(20);
        config.read_timeout = Duration::from_millis(500);
        let control = ControlPlane::open_with(config, cloudware_raft::LocalTransport)
            .await
            .expect("open");
        let started = Instant::now();
        let err = control
            .read_linearizable(|s| s.tenants().count())
            .await
            .expect_err("no quorum");
        assert!(matches!(err, ReadFailure::NoLeader { .. }), "{err}");
        assert!(err.to_string().starts_with("no raft leader"), "{err}");
        assert!(started.elapsed() < Duration::from_secs(2));
        let failure = ProposeFailure::from(err);
        assert!(matches!(failure, ProposeFailure::Unavailable(_)));
        control.shutdown().await;
    }
}
