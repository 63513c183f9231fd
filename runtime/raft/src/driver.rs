//! The driver task: owns the raft-rs `RawNode`, the storage and the state machine, and runs the
//! raft loop — take requests and ticks, then handle the `Ready`.
//!
//! `Ready` handling follows raft-rs 0.7's documented order (see `RawNode::ready`/`advance` and
//! its `five_mem_node` example), with one deliberate tightening: every message, including the
//! ones a leader could send before persisting, goes out only after the fsync:
//!
//! 1. persist the snapshot, entries and hard state in one sled batch; fsync if `must_sync`;
//! 2. send messages and persisted messages through the [`Transport`];
//! 3. install a snapshot received from the leader into the state machine;
//! 4. record read states; apply committed entries;
//! 5. `advance`; record the new commit index; send the light ready's messages; apply its
//!    committed entries; `advance_apply`;
//! 6. publish the applied index, resolve waiting reads, snapshot + compact when due.
//!
//! The commit index recorded in step 5 is flushed on the next tick if no `Ready` flushed it.
//!
//! Proposals resolve only in step 4/5, i.e. after their entry was fsynced.
//!
//! Reads use raft's read-index protocol (`ReadOnlyOption::Safe`, raft-rs's default) on every
//! member: the leader confirms its leadership with a heartbeat round before it names a read
//! index; a follower's request is forwarded by raft to the leader and its `ReadState` comes
//! back in the follower's `Ready`. Either way the read resolves once this node applied up to
//! that index. A node that knows no leader fails its reads at once
//! ([`ProposeError::NotLeader`] with no leader); unconfirmed reads are re-sent when the leader
//! or term changes and every `read_retry_ticks` (raft-rs drops them silently, e.g. on a leader
//! that has not committed in its term yet).

use std::time::Duration;

use raft::eraftpb::{ConfChange, ConfChangeV2, ConfState, Entry, EntryType, Message};
use raft::{RawNode, StateRole};
use tokio::sync::{mpsc, oneshot, watch};
use tokio::time::MissedTickBehavior;
use tracing::Instrument as _;

use crate::StateMachine;
use crate::error::{ProposeError, RaftError, StorageError};
use crate::node::{RaftStatus, Role};
use crate::pending::{Proposals, ProposeReply, ReadReply, Reads, RequestIds, Sent};
use crate::storage::SledStorage;
use crate::transport::Transport;

/// What a [`RaftNode`](crate::RaftNode) handle asks of the driver.
pub(crate) enum Request {
    Propose {
        command: Vec<u8>,
        reply: ProposeReply,
    },
    ReadIndex {
        reply: ReadReply,
    },
    ChangeMembership {
        change: ConfChange,
        reply: ProposeReply,
    },
    CompactNow {
        reply: oneshot::Sender<Result<u64, RaftError>>,
    },
    Step {
        message: Box<Message>,
    },
    ReportUnreachable {
        node_id: u64,
    },
    TransferLeader {
        to: u64,
    },
}

/// Everything the driver task owns.
pub(crate) struct Driver<S, T> {
    pub(crate) raw: RawNode<SledStorage>,
    pub(crate) state_machine: S,
    pub(crate) transport: T,
    pub(crate) requests: mpsc::Receiver<Request>,
    pub(crate) shutdown: oneshot::Receiver<()>,
    pub(crate) applied: u64,
    pub(crate) applied_tx: watch::Sender<u64>,
    pub(crate) status_tx: watch::Sender<RaftStatus>,
    /// Fired once `applied` reaches the index recovery must replay up to.
    pub(crate) startup: Option<(u64, oneshot::Sender<()>)>,
    pub(crate) tick: Duration,
    pub(crate) snapshot_every: u64,
    pub(crate) log_tail: u64,
    pub(crate) max_batch: usize,
    pub(crate) ids: RequestIds,
    pub(crate) proposals: Proposals,
    pub(crate) reads: Reads,
    /// Ticks since the driver started (the clock of read re-sends).
    pub(crate) ticks: u64,
    /// Ticks an unconfirmed read waits before it is sent again.
    pub(crate) read_retry_ticks: u64,
}

/// What woke the loop up.
enum Event {
    Request(Request),
    Tick,
    Stop,
}

impl<S: StateMachine, T: Transport> Driver<S, T> {
    /// Runs until shutdown, until every handle is dropped, or until a fatal error.
    pub(crate) async fn run(mut self) -> Result<(), RaftError> {
        let mut ticker = tokio::time::interval(self.tick);
        ticker.set_missed_tick_behavior(MissedTickBehavior::Delay);
        let result = loop {
            if let Err(error) = self.drain_ready().await {
                break Err(error);
            }
            self.after_round();
            let event = tokio::select! {
                biased;
                _ = &mut self.shutdown => Event::Stop,
                // Ticks before requests: a flood of proposals must not starve heartbeats.
                _ = ticker.tick() => Event::Tick,
                request = self.requests.recv() => request.map_or(Event::Stop, Event::Request),
            };
            let outcome = match event {
                Event::Stop => break Ok(()),
                Event::Tick => {
                    self.raw.tick();
                    self.ticks += 1;
                    self.proposals.purge_abandoned();
                    self.reads.purge_abandoned();
                    self.flush_commit().await
                }
                Event::Request(first) => self.handle_requests(first).await,
            };
            if let Err(error) = outcome {
                break Err(error);
            }
        };
        self.proposals.fail_all(&ProposeError::Stopped);
        self.reads.fail_all(&ProposeError::Stopped);
        match &result {
            Ok(()) => {
                // Nothing acknowledged depends on this flush; it just leaves a tidy store.
                let flushed = self.raw.store().flush().await;
                tracing::info!(applied = self.applied, ?flushed, "raft driver stopped");
            }
            Err(error) => tracing::error!(%error, "raft driver failed; node stopped"),
        }
        result
    }

    /// Handles `first` and whatever else is already queued, up to `max_batch`, so that one
    /// `Ready` (one fsync) carries many proposals.
    async fn handle_requests(&mut self, first: Request) -> Result<(), RaftError> {
        self.handle_request(first).await?;
        for _ in 1..self.max_batch {
            match self.requests.try_recv() {
                Ok(request) => self.handle_request(request).await?,
                Err(_) => break,
            }
        }
        Ok(())
    }

    async fn handle_request(&mut self, request: Request) -> Result<(), RaftError> {
        match request {
            Request::Propose { command, reply } => self.propose(command, reply),
            Request::ChangeMembership { change, reply } => self.change_membership(change, reply),
            Request::ReadIndex { reply } => self.reads.add(self.ids.next_id(), reply),
            Request::CompactNow { reply } => match self.snapshot_now().await {
                Ok(index) => {
                    let _ = reply.send(Ok(index));
                }
                Err(error) => {
                    // Storage failures are fatal: tell the caller, then stop the node.
                    let reason = Some(format!("compaction failed: {error}"));
                    let _ = reply.send(Err(RaftError::Stopped { reason }));
                    return Err(error);
                }
            },
            Request::Step { message } => {
                if let Err(error) = self.raw.step(*message) {
                    tracing::debug!(%error, "ignored raft message");
                }
            }
            Request::ReportUnreachable { node_id } => self.raw.report_unreachable(node_id),
            Request::TransferLeader { to } => {
                tracing::info!(to, "transferring leadership");
                self.raw.transfer_leader(to);
            }
        }
        Ok(())
    }

    fn check_leader(&self) -> Result<(), ProposeError> {
        if self.raw.raft.state == StateRole::Leader {
            return Ok(());
        }
        let leader = self.raw.raft.leader_id;
        Err(ProposeError::NotLeader {
            leader: (leader != raft::INVALID_ID).then_some(leader),
        })
    }

    fn propose(&mut self, command: Vec<u8>, reply: ProposeReply) {
        if let Err(e) = self.check_leader() {
            let _ = reply.send(Err(e));
            return;
        }
        let id = self.ids.next_id();
        match self.raw.propose(id.to_vec(), command) {
            Ok(()) => {
                let index = self.raw.raft.raft_log.last_index();
                self.proposals.insert(index, id, reply);
            }
            Err(error) => {
                tracing::debug!(%error, "raft dropped a proposal");
                let _ = reply.send(Err(ProposeError::Dropped));
            }
        }
    }

    /// Proposes a membership change; the proposer gets the resulting `ConfState` (protobuf) once
    /// it is applied. raft-rs allows one pending change at a time: a second one while the first
    /// is unapplied becomes a no-op entry, i.e. [`ProposeError::Dropped`].
    fn change_membership(&mut self, change: ConfChange, reply: ProposeReply) {
        if let Err(e) = self.check_leader() {
            let _ = reply.send(Err(e));
            return;
        }
        let id = self.ids.next_id();
        match self.raw.propose_conf_change(id.to_vec(), change) {
            Ok(()) => {
                let index = self.raw.raft.raft_log.last_index();
                self.proposals.insert(index, id, reply);
            }
            Err(error) => {
                tracing::info!(%error, "raft dropped a membership change");
                let _ = reply.send(Err(ProposeError::Dropped));
            }
        }
    }

    /// Hands unconfirmed reads to raft when it can serve them: on the leader once it committed
    /// an entry in its term (raft-rs drops read requests before that), on a follower once it
    /// knows the leader (raft forwards them there). With no leader known the reads fail now:
    /// nobody could confirm them, and the caller should hear so rather than wait.
    fn issue_reads(&mut self) {
        if !self.reads.has_unconfirmed() {
            return;
        }
        let raft = &self.raw.raft;
        let leader = raft.leader_id;
        match raft.state {
            StateRole::Leader if !raft.commit_to_current_term() => return,
            StateRole::Leader | StateRole::Follower if leader != raft::INVALID_ID => {}
            _ => {
                self.reads
                    .fail_unconfirmed(&ProposeError::NotLeader { leader: None });
                return;
            }
        }
        let now = Sent {
            leader,
            term: raft.term,
            at_tick: self.ticks,
        };
        for id in self.reads.due(now, self.read_retry_ticks) {
            self.raw.read_index(id.to_vec());
        }
    }

    /// Handles `Ready`s until raft has nothing more to do (a round can unblock more work, e.g.
    /// a leader's first commit lets waiting reads go out, which yields read states).
    async fn drain_ready(&mut self) -> Result<(), RaftError> {
        loop {
            self.issue_reads();
            if !self.raw.has_ready() {
                return Ok(());
            }
            self.handle_ready().await?;
        }
    }

    /// One round of raft `Ready` handling, in the order described in the module docs.
    async fn handle_ready(&mut self) -> Result<(), RaftError> {
        let mut ready = self.raw.ready();
        let span = tracing::trace_span!("ready", number = ready.number());
        async {
            if let Some(soft) = ready.ss() {
                let leader = (soft.leader_id != raft::INVALID_ID).then_some(soft.leader_id);
                let role = Role::from(soft.raft_state);
                tracing::info!(
                    ?role,
                    ?leader,
                    term = self.raw.raft.term,
                    "raft role changed"
                );
            }
            let snapshot = (!ready.snapshot().is_empty()).then(|| ready.snapshot().clone());
            let store = self.raw.mut_store();
            store.persist_ready(snapshot.as_ref(), ready.entries(), ready.hs())?;
            if ready.must_sync() {
                store.flush().await?;
            }
            self.send(ready.take_messages());
            self.send(ready.take_persisted_messages());
            if let Some(snapshot) = snapshot {
                self.install_snapshot(&snapshot)?;
            }
            for state in ready.take_read_states() {
                self.reads.on_read_state(&state.request_ctx, state.index);
            }
            self.apply(ready.take_committed_entries())?;

            let mut light = self.raw.advance(ready);
            if let Some(commit) = light.commit_index() {
                self.raw.mut_store().set_commit(commit)?;
            }
            self.send(light.take_messages());
            self.apply(light.take_committed_entries())?;
            self.raw.advance_apply();

            let snapshot_index = self.raw.store().snapshot_position().index;
            let wanted = self.raw.store().take_snapshot_wanted() && self.applied > snapshot_index;
            if wanted || self.applied.saturating_sub(snapshot_index) >= self.snapshot_every {
                self.snapshot_now().await?;
            }
            Ok(())
        }
        .instrument(span)
        .await
    }

    /// Makes a commit index recorded since the last flush durable (at most a tick after it was
    /// applied; under load the next `Ready`'s fsync usually does it first). A host that
    /// restarts replays up to its durable commit index, so this keeps what it replays — the
    /// peers' addresses among it — at most a tick behind what it had applied.
    async fn flush_commit(&mut self) -> Result<(), RaftError> {
        if self.raw.store().commit_unflushed() {
            self.raw.store().flush().await?;
        }
        Ok(())
    }

    /// Hands messages to the transport (only ever after the state they carry is durable).
    fn send(&mut self, messages: Vec<Message>) {
        if !messages.is_empty() {
            self.transport.send(messages);
        }
    }

    /// Applies committed entries in order.
    fn apply(&mut self, entries: Vec<Entry>) -> Result<(), RaftError> {
        for entry in entries {
            let index = entry.index;
            match entry.get_entry_type() {
                EntryType::EntryNormal if entry.data.is_empty() && entry.context.is_empty() => {
                    // A new leader's no-op.
                    self.proposals.on_applied(index, None);
                }
                EntryType::EntryNormal => {
                    let outcome = self.state_machine.apply(index, &entry.data);
                    self.proposals
                        .on_applied(index, Some((&entry.context, outcome)));
                }
                EntryType::EntryConfChange | EntryType::EntryConfChangeV2 => {
                    let conf_state = self.apply_conf_change(&entry)?;
                    let outcome = protobuf::Message::write_to_bytes(&conf_state).map_err(|e| {
                        RaftError::Storage(StorageError::Encode {
                            what: "conf state",
                            source: e,
                        })
                    })?;
                    self.proposals
                        .on_applied(index, Some((&entry.context, outcome)));
                }
            }
            self.applied = index;
        }
        self.publish_applied();
        Ok(())
    }

    /// Publishes the applied index, then hands out the outcomes and reads it completes — in
    /// that order, so whoever gets an outcome already sees the new applied index.
    fn publish_applied(&mut self) {
        let applied = self.applied;
        self.applied_tx.send_if_modified(|current| {
            let changed = *current != applied;
            *current = applied;
            changed
        });
        self.proposals.deliver();
        self.reads.on_applied(applied);
    }

    /// Applies a membership change and stores the resulting [`raft::eraftpb::ConfState`], which
    /// it returns. Changes at or below the stored conf index are already in the stored
    /// membership (raft re-delivers them on restart) and are skipped.
    fn apply_conf_change(&mut self, entry: &Entry) -> Result<ConfState, RaftError> {
        let index = entry.index;
        if index <= self.raw.store().conf_index() {
            return Ok(self.raw.store().conf_state().clone());
        }
        let corrupt = |e: protobuf::ProtobufError| {
            StorageError::corrupt(format!("conf change entry {index}"), e.to_string())
        };
        let applied = if entry.get_entry_type() == EntryType::EntryConfChange {
            let change: ConfChange =
                protobuf::Message::parse_from_bytes(&entry.data).map_err(corrupt)?;
            self.raw.apply_conf_change(&change)
        } else {
            let change: ConfChangeV2 =
                protobuf::Message::parse_from_bytes(&entry.data).map_err(corrupt)?;
            self.raw.apply_conf_change(&change)
        };
        let conf_state = applied
            .map_err(|e| RaftError::raft(format!("applying conf change entry {index}"), e))?;
        tracing::info!(index, ?conf_state, "membership changed");
        self.raw
            .mut_store()
            .set_conf_state(conf_state.clone(), index)?;
        Ok(conf_state)
    }

    /// Replaces the state machine with a snapshot received from the leader (already stored).
    fn install_snapshot(&mut self, snapshot: &raft::eraftpb::Snapshot) -> Result<(), RaftError> {
        let index = snapshot.get_metadata().index;
        self.state_machine
            .restore(&snapshot.data)
            .map_err(|reason| RaftError::Restore { index, reason })?;
        self.applied = index;
        // Proposals below the snapshot can no longer be matched to their entries.
        self.proposals.on_applied(index, None);
        self.publish_applied();
        tracing::info!(index, "installed snapshot from the leader");
        Ok(())
    }

    /// Snapshots the state machine at the applied index, stores it, compacts the log behind it
    /// (keeping `log_tail` entries), and fsyncs. Returns the snapshot's index.
    async fn snapshot_now(&mut self) -> Result<u64, RaftError> {
        let index = self.applied;
        let started = std::time::Instant::now();
        let data = self.state_machine.snapshot();
        let bytes = data.len();
        let store = self.raw.mut_store();
        let truncated = store.save_snapshot(index, data, self.log_tail)?;
        store.flush().await?;
        tracing::info!(
            index,
            bytes,
            compacted_to = truncated.index,
            elapsed = ?started.elapsed(),
            "snapshot taken and log compacted"
        );
        Ok(index)
    }

    /// Publishes progress and wakes whoever waits on it.
    fn after_round(&mut self) {
        let status = self.status();
        self.status_tx.send_if_modified(|current| {
            let changed = *current != status;
            *current = status;
            changed
        });
        if self
            .startup
            .as_ref()
            .is_some_and(|(target, _)| self.applied >= *target)
            && let Some((_, done)) = self.startup.take()
        {
            let _ = done.send(());
        }
    }

    pub(crate) fn status(&self) -> RaftStatus {
        status_of(&self.raw, self.applied, self.proposals.len())
    }
}

/// The node's status as seen from its `RawNode`.
pub(crate) fn status_of(
    raw: &RawNode<SledStorage>,
    applied: u64,
    pending_proposals: usize,
) -> RaftStatus {
    let raft = &raw.raft;
    let store = raw.store();
    RaftStatus {
        id: raft.id,
        role: Role::from(raft.state),
        term: raft.term,
        leader: (raft.leader_id != raft::INVALID_ID).then_some(raft.leader_id),
        commit_index: raft.raft_log.committed,
        applied_index: applied,
        first_index: store.truncated().index + 1,
        last_index: raft.raft_log.last_index(),
        snapshot_index: store.snapshot_position().index,
        voters: store.conf_state().voters.clone(),
        learners: store.conf_state().learners.clone(),
        pending_proposals,
    }
}
