//! [`RaftNode`]: the handle the rest of the platform holds — open/recover, propose, read-index,
//! watch the applied index, compact, shut down. All raft work happens on the driver task
//! (`driver` module); the handle only sends it requests.

use std::sync::Mutex;
use std::time::Duration;

use raft::eraftpb::{ConfChange, ConfChangeType, ConfState, Message};
use raft::{RawNode, StateRole};
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinHandle;
use tracing::Instrument as _;

use crate::StateMachine;
use crate::config::RaftConfig;
use crate::driver::{Driver, Request, status_of};
use crate::error::{ProposeError, RaftError};
use crate::logger::raft_logger;
use crate::pending::{Proposals, Reads, RequestIds};
use crate::storage::SledStorage;
use crate::transport::{LocalTransport, Transport};

/// Capacity of the request queue between handles and the driver (back-pressure beyond it).
const REQUEST_QUEUE: usize = 4_096;

/// A node's raft role.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Follows a leader (or waits for one).
    Follower,
    /// Probing whether an election could be won (pre-vote).
    PreCandidate,
    /// Campaigning.
    Candidate,
    /// Accepts proposals.
    Leader,
}

impl From<StateRole> for Role {
    fn from(role: StateRole) -> Self {
        match role {
            StateRole::Follower => Role::Follower,
            StateRole::PreCandidate => Role::PreCandidate,
            StateRole::Candidate => Role::Candidate,
            StateRole::Leader => Role::Leader,
        }
    }
}

/// One change of a group's membership, for [`RaftNode::change_membership`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MembershipChange {
    /// Add a voting member (or promote a learner).
    AddVoter(u64),
    /// Add a non-voting member that receives the log.
    AddLearner(u64),
    /// Remove a member.
    Remove(u64),
}

/// A group's membership after a change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Membership {
    /// Voting members.
    pub voters: Vec<u64>,
    /// Non-voting members.
    pub learners: Vec<u64>,
}

/// A point-in-time view of the node, published by the driver after every round.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RaftStatus {
    /// This node's id.
    pub id: u64,
    /// Current role.
    pub role: Role,
    /// Current term.
    pub term: u64,
    /// Current leader, if known.
    pub leader: Option<u64>,
    /// Highest log index known committed.
    pub commit_index: u64,
    /// Highest log index applied to the state machine.
    pub applied_index: u64,
    /// First log index still stored (everything before is compacted into the snapshot).
    pub first_index: u64,
    /// Last log index (stored or about to be).
    pub last_index: u64,
    /// Index of the latest stored snapshot.
    pub snapshot_index: u64,
    /// Voting members.
    pub voters: Vec<u64>,
    /// Non-voting members.
    pub learners: Vec<u64>,
    /// Proposals appended but not yet applied.
    pub pending_proposals: usize,
}

/// A running raft node: a raft-rs `RawNode` over sled storage, driven by a tokio task, applying
/// committed commands to a [`StateMachine`]. Cheap to share behind an `Arc`; every method takes
/// `&self`. Dropping the last handle stops the driver; [`RaftNode::shutdown`] does so and waits.
#[derive(Debug)]
pub struct RaftNode {
    id: u64,
    requests: mpsc::Sender<Request>,
    applied: watch::Receiver<u64>,
    status: watch::Receiver<RaftStatus>,
    propose_timeout: Duration,
    read_timeout: Duration,
    shutdown: Mutex<Option<oneshot::Sender<()>>>,
    driver: Mutex<Option<JoinHandle<Result<(), RaftError>>>>,
}

impl RaftNode {
    /// Opens the node in `config.dir` with the single-member [`LocalTransport`].
    ///
    /// On an empty directory this bootstraps a cluster whose only voter is `config.node_id`.
    /// Otherwise it recovers: restores the latest snapshot into `state_machine`, re-applies the
    /// committed log after it and — as the sole voter — wins the election and applies the rest
    /// of its log. It returns once that is done, so the state is complete and proposals are
    /// accepted. Must be called within a tokio runtime.
    ///
    /// With several voters (`config.initial_voters`, or a stored membership of more than one),
    /// use [`RaftNode::open_with_transport`] with a peer transport: `open` then returns once the
    /// locally committed log is replayed; leadership comes from an election among the peers.
    pub async fn open<S: StateMachine>(
        config: RaftConfig,
        state_machine: S,
    ) -> Result<RaftNode, RaftError> {
        Self::open_with_transport(config, state_machine, LocalTransport).await
    }

    /// Like [`RaftNode::open`], with a peer transport for outgoing raft messages.
    pub async fn open_with_transport<S: StateMachine, T: Transport>(
        config: RaftConfig,
        state_machine: S,
        transport: T,
    ) -> Result<RaftNode, RaftError> {
        config.validate()?;
        let span = tracing::info_span!("raft", node_id = config.node_id);
        let recovery_config = config.clone();
        let recovery_span = span.clone();
        let recovered = tokio::task::spawn_blocking(move || {
            recovery_span.in_scope(|| recover(&recovery_config, state_machine))
        })
        .await
        .map_err(|e| RaftError::Stopped {
            reason: Some(format!("recovery task failed: {e}")),
        })??;
        let Recovered {
            storage,
            state_machine,
            applied,
        } = recovered;

        let conf_state = storage.conf_state().clone();
        let lone_voter = conf_state.voters == [config.node_id]
            && conf_state.learners.is_empty()
            && conf_state.voters_outgoing.is_empty();
        let raw = span.in_scope(|| {
            let mut raw = RawNode::new(&config.raft_config(applied), storage, &raft_logger())
                .map_err(|e| RaftError::raft("creating the raft node", e))?;
            if lone_voter {
                // No one else can vote: take leadership now, not after an election timeout.
                raw.campaign()
                    .map_err(|e| RaftError::raft("campaigning as the only voter", e))?;
            }
            Ok::<_, RaftError>(raw)
        })?;
        // Recovery replays the committed log; a leader also commits (and so replays) the
        // entries it appended before the restart plus its no-op.
        let startup_target = if raw.raft.state == StateRole::Leader {
            raw.raft.raft_log.last_index()
        } else {
            raw.raft.raft_log.committed
        };

        let (request_tx, request_rx) = mpsc::channel(REQUEST_QUEUE);
        let (shutdown_tx, shutdown_rx) = oneshot::channel();
        let (startup_tx, startup_rx) = oneshot::channel();
        let (applied_tx, applied_rx) = watch::channel(applied);
        let (status_tx, status_rx) = watch::channel(status_of(&raw, applied, 0));
        let driver = Driver {
            raw,
            state_machine,
            transport,
            requests: request_rx,
            shutdown: shutdown_rx,
            applied,
            applied_tx,
            status_tx,
            startup: Some((startup_target, startup_tx)),
            tick: config.tick,
            snapshot_every: config.snapshot_every,
            log_tail: config.log_tail,
            max_batch: config.max_batch,
            ids: RequestIds::new(),
            proposals: Proposals::default(),
            reads: Reads::default(),
            ticks: 0,
            read_retry_ticks: config.heartbeat_ticks.max(1) as u64,
        };
        tracing::info!(parent: &span, applied, startup_target, lone_voter, "raft node starting");
        let handle = tokio::spawn(driver.run().instrument(span.clone()));

        let node = RaftNode {
            id: config.node_id,
            requests: request_tx,
            applied: applied_rx,
            status: status_rx,
            propose_timeout: config.propose_timeout,
            read_timeout: config.read_timeout,
            shutdown: Mutex::new(Some(shutdown_tx)),
            driver: Mutex::new(Some(handle)),
        };
        match tokio::time::timeout(config.startup_timeout, startup_rx).await {
            Ok(Ok(())) => {
                let status = node.status();
                tracing::info!(
                    parent: &span,
                    applied = status.applied_index,
                    term = status.term,
                    leader = ?status.leader,
                    "raft node recovered"
                );
                Ok(node)
            }
            // The driver exited before finishing recovery: report why.
            Ok(Err(_)) => Err(node.shutdown().await.err().unwrap_or(RaftError::Stopped {
                reason: Some("driver exited during recovery".into()),
            })),
            Err(_) => {
                let _ = node.shutdown().await;
                Err(RaftError::StartupTimeout {
                    node_id: config.node_id,
                    timeout: config.startup_timeout,
                })
            }
        }
    }

    /// This node's id.
    pub fn id(&self) -> u64 {
        self.id
    }

    /// Replicates `command` and returns the state machine's outcome once the entry is committed
    /// (durable on a quorum, fsynced here) and applied on this node. Times out after the
    /// configured `propose_timeout`.
    pub async fn propose(&self, command: Vec<u8>) -> Result<Vec<u8>, ProposeError> {
        self.propose_with_timeout(command, self.propose_timeout)
            .await
    }

    /// [`RaftNode::propose`] with an explicit timeout. On [`ProposeError::Timeout`] the outcome
    /// is unknown: the command may still be applied.
    pub async fn propose_with_timeout(
        &self,
        command: Vec<u8>,
        timeout: Duration,
    ) -> Result<Vec<u8>, ProposeError> {
        let (reply, outcome) = oneshot::channel();
        self.request(Request::Propose { command, reply }, outcome, timeout)
            .await
    }

    /// Changes the group's membership through a raft conf change and returns the membership once
    /// the change is committed and applied here. Only the leader accepts changes
    /// ([`ProposeError::NotLeader`] otherwise), one at a time ([`ProposeError::Dropped`] while
    /// another is pending: retry). A node being added should already be reachable through the
    /// transport; it catches up from the leader's snapshot.
    pub async fn change_membership(
        &self,
        change: MembershipChange,
    ) -> Result<Membership, ProposeError> {
        let (node_id, change_type) = match change {
            MembershipChange::AddVoter(id) => (id, ConfChangeType::AddNode),
            MembershipChange::AddLearner(id) => (id, ConfChangeType::AddLearnerNode),
            MembershipChange::Remove(id) => (id, ConfChangeType::RemoveNode),
        };
        let mut conf_change = ConfChange {
            node_id,
            ..Default::default()
        };
        conf_change.set_change_type(change_type);
        let (reply, outcome) = oneshot::channel();
        let request = Request::ChangeMembership {
            change: conf_change,
            reply,
        };
        let bytes = self.request(request, outcome, self.propose_timeout).await?;
        let conf_state: ConfState =
            protobuf::Message::parse_from_bytes(&bytes).map_err(|_| ProposeError::Dropped)?;
        Ok(Membership {
            voters: conf_state.voters,
            learners: conf_state.learners,
        })
    }

    /// Asks the leader (this node) to hand leadership to `to`, e.g. before this node is drained
    /// or removed. Best effort: watch [`RaftNode::status`] for the outcome.
    pub async fn transfer_leadership(&self, to: u64) -> Result<(), ProposeError> {
        let status = self.status();
        if status.role != Role::Leader {
            return Err(ProposeError::NotLeader {
                leader: status.leader,
            });
        }
        self.requests
            .send(Request::TransferLeader { to })
            .await
            .map_err(|_| ProposeError::Stopped)
    }

    /// Gets a read index through raft's read-index protocol and waits until this node has
    /// applied up to it. State read afterwards is linearizable: it reflects every command
    /// acknowledged (anywhere in the group) before the call.
    ///
    /// Works on every member: the leader confirms it still leads with a heartbeat round to a
    /// quorum (raft-rs `ReadOnlyOption::Safe`); a follower asks the leader for its commit index
    /// the same way. With one member this completes at once, without touching the disk.
    ///
    /// Fails with [`ProposeError::NotLeader`] (no leader) when this node knows no leader — an
    /// election is under way, or it is cut off from the majority — and with
    /// [`ProposeError::Timeout`] after the configured `read_timeout` when the leader does not
    /// confirm (e.g. it lost its quorum and has not noticed yet).
    pub async fn read_index(&self) -> Result<u64, ProposeError> {
        self.read_index_with_timeout(self.read_timeout).await
    }

    /// [`RaftNode::read_index`] with an explicit timeout.
    pub async fn read_index_with_timeout(&self, timeout: Duration) -> Result<u64, ProposeError> {
        let (reply, outcome) = oneshot::channel();
        self.request(Request::ReadIndex { reply }, outcome, timeout)
            .await
    }

    /// The configured bound of [`RaftNode::propose`].
    pub fn propose_timeout(&self) -> Duration {
        self.propose_timeout
    }

    /// The configured bound of [`RaftNode::read_index`].
    pub fn read_timeout(&self) -> Duration {
        self.read_timeout
    }

    async fn request<R>(
        &self,
        request: Request,
        outcome: oneshot::Receiver<Result<R, ProposeError>>,
        timeout: Duration,
    ) -> Result<R, ProposeError> {
        let exchange = async {
            self.requests
                .send(request)
                .await
                .map_err(|_| ProposeError::Stopped)?;
            outcome.await.map_err(|_| ProposeError::Stopped)?
        };
        tokio::time::timeout(timeout, exchange)
            .await
            .unwrap_or(Err(ProposeError::Timeout(timeout)))
    }

    /// Highest log index applied to the state machine.
    pub fn applied_index(&self) -> u64 {
        *self.applied.borrow()
    }

    /// Watches the applied index: the receiver sees every new value (or the latest, if it lags).
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.applied.clone()
    }

    /// The latest published status.
    pub fn status(&self) -> RaftStatus {
        self.status.borrow().clone()
    }

    /// Watches the status: the receiver sees each change (role, leader, indices…), or the
    /// latest if it lags.
    pub fn watch_status(&self) -> watch::Receiver<RaftStatus> {
        self.status.clone()
    }

    /// Takes a snapshot at the applied index now and compacts the log behind it (keeping the
    /// configured tail). Returns the snapshot's index.
    pub async fn compact_now(&self) -> Result<u64, RaftError> {
        let (reply, outcome) = oneshot::channel();
        let stopped = || RaftError::Stopped { reason: None };
        self.requests
            .send(Request::CompactNow { reply })
            .await
            .map_err(|_| stopped())?;
        outcome.await.map_err(|_| stopped())?
    }

    /// Feeds a raft message received from a peer into the node (for peer transports).
    pub async fn step(&self, message: Message) -> Result<(), RaftError> {
        self.requests
            .send(Request::Step {
                message: Box::new(message),
            })
            .await
            .map_err(|_| RaftError::Stopped { reason: None })
    }

    /// Like [`RaftNode::report_unreachable`] but without waiting: returns `false` (and drops the
    /// report) if the request queue is full or the node stopped. For synchronous callbacks.
    pub fn try_report_unreachable(&self, node_id: u64) -> bool {
        self.requests
            .try_send(Request::ReportUnreachable { node_id })
            .is_ok()
    }

    /// Tells raft that messages to `node_id` could not be delivered (for peer transports).
    pub async fn report_unreachable(&self, node_id: u64) -> Result<(), RaftError> {
        self.requests
            .send(Request::ReportUnreachable { node_id })
            .await
            .map_err(|_| RaftError::Stopped { reason: None })
    }

    /// Stops the driver and waits for it: pending requests resolve with
    /// [`ProposeError::Stopped`], the store is flushed and closed (so the directory can be
    /// reopened). Returns the error that stopped the driver, if one did. Idempotent.
    pub async fn shutdown(&self) -> Result<(), RaftError> {
        let signal = lock(&self.shutdown).take();
        if let Some(signal) = signal {
            let _ = signal.send(());
        }
        let handle = lock(&self.driver).take();
        match handle {
            Some(handle) => handle.await.map_err(|e| RaftError::Stopped {
                reason: Some(format!("driver task failed: {e}")),
            })?,
            None => Ok(()),
        }
    }
}

/// Locks a mutex, recovering the data if a panicking thread poisoned it (the guarded values are
/// plain `Option`s that stay valid).
fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// The storage and state machine after recovery, and the index the state machine is at.
struct Recovered<S> {
    storage: SledStorage,
    state_machine: S,
    applied: u64,
}

/// Opens the store; bootstraps it if empty, otherwise restores the latest snapshot into the
/// state machine. Blocking (file I/O, snapshot decoding): runs on the blocking pool.
fn recover<S: StateMachine>(
    config: &RaftConfig,
    mut state_machine: S,
) -> Result<Recovered<S>, RaftError> {
    let mut storage =
        SledStorage::open_with(&config.dir, config.background_flush).map_err(|source| {
            RaftError::Open {
                dir: config.dir.clone(),
                source,
            }
        })?;
    if !storage.is_initialized() && config.join {
        tracing::info!(dir = %config.dir.display(), "empty store; waiting to be added to a group");
        return Ok(Recovered {
            storage,
            state_machine,
            applied: 0,
        });
    }
    if !storage.is_initialized() {
        let voters = config.bootstrap_voters();
        storage.bootstrap(voters.clone(), state_machine.snapshot())?;
        tracing::info!(dir = %config.dir.display(), ?voters, "bootstrapped a raft cluster");
        let applied = storage.snapshot_position().index;
        return Ok(Recovered {
            storage,
            state_machine,
            applied,
        });
    }
    let snapshot = storage.read_snapshot()?;
    let index = snapshot.get_metadata().index;
    state_machine
        .restore(&snapshot.data)
        .map_err(|reason| RaftError::Restore { index, reason })?;
    let conf_state = storage.conf_state();
    if !conf_state.voters.contains(&config.node_id)
        && !conf_state.learners.contains(&config.node_id)
    {
        tracing::warn!(
            node_id = config.node_id,
            voters = ?conf_state.voters,
            "this node is not a member of the stored configuration"
        );
    }
    tracing::info!(
        snapshot_index = index,
        commit = storage.hard_state().commit,
        last_index = storage.last_log_index(),
        "restored state machine from snapshot; replaying the log"
    );
    Ok(Recovered {
        storage,
        state_machine,
        applied: index,
    })
}
