//! Waiting callers: proposals waiting for their entry to be applied, reads waiting for their
//! read index.
//!
//! A proposal is tagged with a 16-byte request id carried in the raft entry's `context` field
//! (the command bytes go untouched in `data`). The id is 8 random bytes chosen when the node
//! starts plus a counter, so ids never repeat across restarts. When the entry at a proposal's
//! index is applied, the ids are compared: a match resolves the proposal with the state
//! machine's outcome; anything else means a new leader overwrote the entry, and the proposal
//! resolves as [`ProposeError::Dropped`].

use std::collections::{BTreeMap, HashMap};

use tokio::sync::oneshot;

use crate::error::ProposeError;

/// Identifies one proposal or read request of this node.
pub(crate) type RequestId = [u8; 16];

/// Reply channel of a proposal.
pub(crate) type ProposeReply = oneshot::Sender<Result<Vec<u8>, ProposeError>>;
/// Reply channel of a read-index request.
pub(crate) type ReadReply = oneshot::Sender<Result<u64, ProposeError>>;

/// Generates [`RequestId`]s: a random per-process nonce and a counter.
#[derive(Debug)]
pub(crate) struct RequestIds {
    nonce: u64,
    next: u64,
}

impl RequestIds {
    pub(crate) fn new() -> Self {
        RequestIds {
            nonce: rand::random(),
            next: 0,
        }
    }

    pub(crate) fn next_id(&mut self) -> RequestId {
        self.next += 1;
        let mut id = [0u8; 16];
        id[..8].copy_from_slice(&self.nonce.to_be_bytes());
        id[8..].copy_from_slice(&self.next.to_be_bytes());
        id
    }
}

/// Proposals appended to the log and not yet applied, by log index.
///
/// Outcomes are collected while entries are applied and sent by [`Proposals::deliver`], which the
/// driver calls after publishing the new applied index: a proposer that gets its outcome then
/// always sees `applied_index() >=` its entry.
#[derive(Debug, Default)]
pub(crate) struct Proposals {
    by_index: BTreeMap<u64, (RequestId, ProposeReply)>,
    resolved: Vec<(ProposeReply, Result<Vec<u8>, ProposeError>)>,
}

impl Proposals {
    /// Registers a proposal whose entry was appended at `index`. A proposal already waiting at
    /// that index lost its entry to a new leader: it is dropped.
    pub(crate) fn insert(&mut self, index: u64, id: RequestId, reply: ProposeReply) {
        if let Some((_, old)) = self.by_index.insert(index, (id, reply)) {
            let _ = old.send(Err(ProposeError::Dropped));
        }
    }

    /// The entry at `index` was applied. `command` is its request id and the state machine's
    /// outcome, or `None` for entries that carry no command (leader no-ops, conf changes).
    pub(crate) fn on_applied(&mut self, index: u64, command: Option<(&[u8], Vec<u8>)>) {
        // Anything still waiting below `index` had its entry replaced, and that index is past.
        while let Some(entry) = self.by_index.first_entry() {
            if *entry.key() >= index {
                break;
            }
            let (_, reply) = entry.remove();
            self.resolved.push((reply, Err(ProposeError::Dropped)));
        }
        if let Some((id, reply)) = self.by_index.remove(&index) {
            let result = match command {
                Some((context, outcome)) if context == id.as_slice() => Ok(outcome),
                _ => Err(ProposeError::Dropped),
            };
            self.resolved.push((reply, result));
        }
    }

    /// Sends the outcomes collected by [`Proposals::on_applied`].
    pub(crate) fn deliver(&mut self) {
        for (reply, result) in self.resolved.drain(..) {
            let _ = reply.send(result);
        }
    }

    /// Forgets proposals whose caller gave up (timed out).
    pub(crate) fn purge_abandoned(&mut self) {
        self.by_index.retain(|_, (_, reply)| !reply.is_closed());
    }

    /// Resolves every waiting proposal with `error`.
    pub(crate) fn fail_all(&mut self, error: &ProposeError) {
        self.deliver();
        for (_, (_, reply)) in std::mem::take(&mut self.by_index) {
            let _ = reply.send(Err(error.clone()));
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.by_index.len()
    }
}

/// Where and when a read-index request was last handed to raft.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Sent {
    /// The leader raft addressed it to (this node, when it leads).
    pub(crate) leader: u64,
    /// The term it was sent in.
    pub(crate) term: u64,
    /// The driver's tick count when it was sent.
    pub(crate) at_tick: u64,
}

/// A read-index request raft has not confirmed yet.
#[derive(Debug)]
struct Unconfirmed {
    reply: ReadReply,
    /// `None` until handed to raft.
    sent: Option<Sent>,
}

/// Read-index requests: handed to raft (by id) — on a follower raft forwards them to the
/// leader — then waiting for their `ReadState`, then for `applied >= read index`.
///
/// raft-rs drops a read request silently in several cases (a leader that has not committed in
/// its term yet, a lost message, a leader that steps down), so an unconfirmed request is sent
/// again when the leader or term changes or when it has waited `retry_ticks`. Re-sending the
/// same id is harmless: a leader ignores a request id it already has pending, and a second
/// `ReadState` for an already confirmed id is ignored here.
#[derive(Debug, Default)]
pub(crate) struct Reads {
    /// Not yet confirmed by raft.
    unconfirmed: HashMap<RequestId, Unconfirmed>,
    /// Read index known, waiting for the state machine to catch up.
    confirmed: BTreeMap<u64, Vec<ReadReply>>,
}

impl Reads {
    /// Registers a new request; [`Reads::due`] says when to hand it to raft.
    pub(crate) fn add(&mut self, id: RequestId, reply: ReadReply) {
        self.unconfirmed
            .insert(id, Unconfirmed { reply, sent: None });
    }

    pub(crate) fn has_unconfirmed(&self) -> bool {
        !self.unconfirmed.is_empty()
    }

    /// The requests to hand to raft now, with `now` as their new [`Sent`]: those never sent,
    /// those sent to another leader or in another term, and those waiting `retry_ticks` or more.
    pub(crate) fn due(&mut self, now: Sent, retry_ticks: u64) -> Vec<RequestId> {
        let mut due = Vec::new();
        for (id, read) in &mut self.unconfirmed {
            let resend = match read.sent {
                None => true,
                Some(sent) => {
                    sent.leader != now.leader
                        || sent.term != now.term
                        || now.at_tick.saturating_sub(sent.at_tick) >= retry_ticks
                }
            };
            if resend {
                read.sent = Some(now);
                due.push(*id);
            }
        }
        due
    }

    /// raft confirmed the read with request context `ctx` at `index`.
    pub(crate) fn on_read_state(&mut self, ctx: &[u8], index: u64) {
        let Ok(id) = RequestId::try_from(ctx) else {
            return;
        };
        if let Some(read) = self.unconfirmed.remove(&id) {
            self.confirmed.entry(index).or_default().push(read.reply);
        }
    }

    /// Resolves the reads whose index is now applied.
    pub(crate) fn on_applied(&mut self, applied: u64) {
        while let Some(entry) = self.confirmed.first_entry() {
            if *entry.key() > applied {
                break;
            }
            let (index, replies) = entry.remove_entry();
            for reply in replies {
                let _ = reply.send(Ok(index));
            }
        }
    }

    /// Fails the reads raft has not confirmed (e.g. no leader to confirm them).
    pub(crate) fn fail_unconfirmed(&mut self, error: &ProposeError) {
        for (_, read) in self.unconfirmed.drain() {
            let _ = read.reply.send(Err(error.clone()));
        }
    }

    /// Resolves every waiting read with `error`.
    pub(crate) fn fail_all(&mut self, error: &ProposeError) {
        self.fail_unconfirmed(error);
        for reply in std::mem::take(&mut self.confirmed).into_values().flatten() {
            let _ = reply.send(Err(error.clone()));
        }
    }

    /// Forgets reads whose caller gave up.
    pub(crate) fn purge_abandoned(&mut self) {
        self.unconfirmed.retain(|_, read| !read.reply.is_closed());
        self.confirmed.retain(|_, replies| {
            replies.retain(|reply| !reply.is_closed());
            !replies.is_empty()
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_unique() {
        let mut ids = RequestIds::new();
        let a = ids.next_id();
        let b = ids.next_id();
        assert_ne!(a, b);
        assert_ne!(
            RequestIds::new().next_id(),
            a,
            "nonce differs per process start"
        );
    }

    #[test]
    fn matching_entry_resolves_and_replaced_entries_drop() {
        let mut ids = RequestIds::new();
        let mut proposals = Proposals::default();
        let (id5, id6, id7) = (ids.next_id(), ids.next_id(), ids.next_id());
        let (tx5, mut rx5) = oneshot::channel();
        let (tx6, mut rx6) = oneshot::channel();
        let (tx7, mut rx7) = oneshot::channel();
        proposals.insert(5, id5, tx5);
        proposals.insert(6, id6, tx6);
        proposals.insert(7, id7, tx7);

        proposals.on_applied(5, Some((&id5, b"ok".to_vec())));
        assert!(rx5.try_recv().is_err(), "outcomes wait for deliver()");
        proposals.deliver();
        assert_eq!(rx5.try_recv().unwrap(), Ok(b"ok".to_vec()));
        // Entry 6 was overwritten by another node's command.
        let other = ids.next_id();
        proposals.on_applied(6, Some((&other, b"x".to_vec())));
        proposals.deliver();
        assert_eq!(rx6.try_recv().unwrap(), Err(ProposeError::Dropped));
        // Entry 7 became a leader no-op.
        proposals.on_applied(7, None);
        proposals.deliver();
        assert_eq!(rx7.try_recv().unwrap(), Err(ProposeError::Dropped));
        assert_eq!(proposals.len(), 0);
    }

    #[test]
    fn reads_resolve_once_applied() {
        let mut reads = Reads::default();
        let id = RequestIds::new().next_id();
        let (tx, mut rx) = oneshot::channel();
        reads.add(id, tx);
        reads.on_read_state(&id, 10);
        reads.on_applied(9);
        assert!(rx.try_recv().is_err());
        reads.on_applied(10);
        assert_eq!(rx.try_recv().unwrap(), Ok(10));
    }

    #[test]
    fn unconfirmed_reads_are_resent_on_leader_change_and_after_a_while() {
        let mut reads = Reads::default();
        let id = RequestIds::new().next_id();
        let (tx, _rx) = oneshot::channel();
        reads.add(id, tx);
        let sent = |leader, term, at_tick| Sent {
            leader,
            term,
            at_tick,
        };
        assert_eq!(reads.due(sent(2, 5, 0), 3), vec![id], "never sent");
        assert!(reads.due(sent(2, 5, 2), 3).is_empty(), "sent recently");
        assert_eq!(reads.due(sent(2, 5, 3), 3), vec![id], "waited too long");
        assert_eq!(reads.due(sent(3, 5, 3), 3), vec![id], "another leader");
        assert_eq!(reads.due(sent(3, 6, 3), 3), vec![id], "another term");
        reads.on_read_state(&id, 7);
        assert!(reads.due(sent(3, 6, 9), 3).is_empty(), "confirmed");
        // A second ReadState for the same id (a re-sent request) changes nothing.
        reads.on_read_state(&id, 8);
        assert_eq!(reads.confirmed.len(), 1);
    }

    #[test]
    fn unconfirmed_reads_fail_confirmed_ones_wait() {
        let mut reads = Reads::default();
        let mut ids = RequestIds::new();
        let (a, b) = (ids.next_id(), ids.next_id());
        let (tx_a, mut rx_a) = oneshot::channel();
        let (tx_b, mut rx_b) = oneshot::channel();
        reads.add(a, tx_a);
        reads.add(b, tx_b);
        reads.on_read_state(&b, 4);
        let error = ProposeError::NotLeader { leader: None };
        reads.fail_unconfirmed(&error);
        assert_eq!(rx_a.try_recv().unwrap(), Err(error));
        assert!(rx_b.try_recv().is_err());
        reads.on_applied(4);
        assert_eq!(rx_b.try_recv().unwrap(), Ok(4));
    }
}
