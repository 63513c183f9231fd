//! Node configuration and its translation into raft-rs's [`raft::Config`].

use std::path::PathBuf;
use std::time::Duration;

use crate::error::RaftError;

/// How a [`RaftNode`](crate::RaftNode) is opened. Build with [`RaftConfig::new`] and adjust
/// fields; every field except `dir` and `node_id` has a production default.
#[derive(Debug, Clone)]
pub struct RaftConfig {
    /// Directory of the sled database (created if missing). One node per directory.
    pub dir: PathBuf,
    /// This node's raft id; must be non-zero and unique in the cluster.
    pub node_id: u64,
    /// The voters a fresh (empty) directory is bootstrapped with. Empty (the default) means a
    /// single-member group of `node_id`. To start an N-member group, give every member the same
    /// list (which must contain its own `node_id`). Ignored when the directory already holds a
    /// raft state: membership then comes from the log.
    pub initial_voters: Vec<u64>,
    /// Joining an existing group: an empty directory is *not* bootstrapped; the node starts
    /// with no membership and waits for a member to add it (a conf change) and for the
    /// leader's snapshot. Default `false`. Ignored when the directory already holds a raft
    /// state.
    pub join: bool,
    /// Take a state machine snapshot and compact the log after this many applied entries.
    /// Default 10 000.
    pub snapshot_every: u64,
    /// Log entries kept behind a snapshot when compacting, so slightly lagging followers catch
    /// up from the log rather than a full snapshot. Default 1 000.
    pub log_tail: u64,
    /// Raft's logical clock period. Default 100 ms.
    pub tick: Duration,
    /// Ticks without a leader before a follower campaigns. Default 10 (1 s at 100 ms ticks).
    pub election_ticks: usize,
    /// Ticks between leader heartbeats. Default 3.
    pub heartbeat_ticks: usize,
    /// How long [`RaftNode::propose`](crate::RaftNode::propose) waits for an outcome.
    /// Default 5 s.
    pub propose_timeout: Duration,
    /// How long [`RaftNode::read_index`](crate::RaftNode::read_index) waits for the leader to
    /// confirm a read and for this node to apply up to it. Default 5 s.
    pub read_timeout: Duration,
    /// How long [`RaftNode::open`](crate::RaftNode::open) waits for recovery (log replay and,
    /// for a single member, becoming leader). Default 30 s.
    pub startup_timeout: Duration,
    /// Bytes of proposed-but-uncommitted entries raft accepts before dropping proposals
    /// (back-pressure). Default 64 MiB.
    pub max_uncommitted_bytes: u64,
    /// Requests (proposals, reads) the driver takes in per `Ready` round, i.e. per fsync.
    /// Default 1 024.
    pub max_batch: usize,
    /// Period of sled's own background flush, which writes its log buffer out ahead of the
    /// driver's fsyncs (15–30% more committed writes/s in the `throughput` example than
    /// `None`). Durability never depends on it. Default 500 ms.
    pub background_flush: Option<Duration>,
}

impl RaftConfig {
    /// A configuration with defaults for everything but the directory and node id.
    pub fn new(dir: impl Into<PathBuf>, node_id: u64) -> Self {
        RaftConfig {
            dir: dir.into(),
            node_id,
            initial_voters: Vec::new(),
            join: false,
            snapshot_every: 10_000,
            log_tail: 1_000,
            tick: Duration::from_millis(100),
            election_ticks: 10,
            heartbeat_ticks: 3,
            propose_timeout: Duration::from_secs(5),
            read_timeout: Duration::from_secs(5),
            startup_timeout: Duration::from_secs(30),
            background_flush: Some(super::storage::DEFAULT_BACKGROUND_FLUSH),
            max_uncommitted_bytes: 64 << 20,
            max_batch: 1_024,
        }
    }

    /// Checks the values raft-rs would reject or that make no sense.
    pub(crate) fn validate(&self) -> Result<(), RaftError> {
        let fail = |msg: &str| Err(RaftError::Config(msg.to_string()));
        if self.node_id == 0 {
            return fail("node_id must be non-zero");
        }
        if self.initial_voters.contains(&0) {
            return fail("initial_voters must not contain 0");
        }
        if !self.initial_voters.is_empty() && !self.initial_voters.contains(&self.node_id) {
            return fail("initial_voters must contain node_id");
        }
        if self.join && !self.initial_voters.is_empty() {
            return fail("a joining node takes its membership from the group, not initial_voters");
        }
        if self.snapshot_every == 0 {
            return fail("snapshot_every must be at least 1");
        }
        if self.tick.is_zero() {
            return fail("tick must be non-zero");
        }
        if self.read_timeout.is_zero() {
            return fail("read_timeout must be non-zero");
        }
        if self.max_uncommitted_bytes == 0 {
            return fail("max_uncommitted_bytes must be at least 1");
        }
        if self.max_batch == 0 {
            return fail("max_batch must be at least 1");
        }
        self.raft_config(0)
            .validate()
            .map_err(|e| RaftError::Config(e.to_string()))
    }

    /// The voters to bootstrap an empty directory with: `initial_voters`, sorted and
    /// deduplicated, or just `node_id`.
    pub(crate) fn bootstrap_voters(&self) -> Vec<u64> {
        if self.initial_voters.is_empty() {
            return vec![self.node_id];
        }
        let mut voters = self.initial_voters.clone();
        voters.sort_unstable();
        voters.dedup();
        voters
    }

    /// The raft-rs configuration, resuming at `applied`.
    pub(crate) fn raft_config(&self, applied: u64) -> raft::Config {
        raft::Config {
            id: self.node_id,
            election_tick: self.election_ticks,
            heartbeat_tick: self.heartbeat_ticks,
            applied,
            // raft-rs requires max_uncommitted_size >= max_size_per_msg.
            max_size_per_msg: self.max_uncommitted_bytes.min(1 << 20),
            max_inflight_msgs: 256,
            // A leader that cannot hear from a quorum for an election timeout steps down, and
            // a member cut off from the others cannot disrupt them when it comes back.
            check_quorum: true,
            pre_vote: true,
            // Read-index confirms leadership with a heartbeat round; never trust a lease
            // (clocks and paused processes make leases unsafe).
            read_only_option: raft::ReadOnlyOption::Safe,
            max_uncommitted_size: self.max_uncommitted_bytes,
            ..raft::Config::default()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid_and_bad_values_rejected() {
        let config = RaftConfig::new("/tmp/x", 1);
        config.validate().unwrap();
        assert_eq!(config.snapshot_every, 10_000);
        assert_eq!(config.tick, Duration::from_millis(100));
        assert_eq!(config.propose_timeout, Duration::from_secs(5));
        let raft = config.raft_config(0);
        assert!(
            raft.check_quorum && raft.pre_vote,
            "a cut-off leader steps down"
        );
        assert_eq!(raft.read_only_option, raft::ReadOnlyOption::Safe);

        let mut bad = config.clone();
        bad.node_id = 0;
        assert!(matches!(bad.validate(), Err(RaftError::Config(_))));
        let mut bad = config.clone();
        bad.heartbeat_ticks = 20;
        assert!(matches!(bad.validate(), Err(RaftError::Config(_))));
    }

    #[test]
    fn initial_voters_default_to_self_and_must_contain_self() {
        let mut config = RaftConfig::new("/tmp/x", 2);
        assert_eq!(config.bootstrap_voters(), vec![2]);
        config.initial_voters = vec![3, 1, 2, 3];
        config.validate().unwrap();
        assert_eq!(config.bootstrap_voters(), vec![1, 2, 3]);
        config.initial_voters = vec![1, 3];
        assert!(matches!(config.validate(), Err(RaftError::Config(_))));
        config.initial_voters = vec![0, 2];
        assert!(matches!(config.validate(), Err(RaftError::Config(_))));
    }
}
