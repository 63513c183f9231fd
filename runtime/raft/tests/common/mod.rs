//! Test helpers: a journal state machine whose state the test can inspect, and config builders.

#![allow(dead_code)]

use std::path::Path;
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use cloudware_raft::{RaftConfig, RaftNode, StateMachine};

/// What the journal holds: every applied command with its log index, in apply order.
pub type Entries = Vec<(u64, String)>;

/// A state machine that appends each command to a list and snapshots it as JSON. The test keeps
/// handles to the state and to the log of `apply` calls made in this process.
///
/// Applying the command `block` waits while `gate` is closed, so a test can hold the driver
/// inside `apply` (e.g. to make a proposal time out).
#[derive(Clone, Default)]
pub struct Journal {
    pub state: Arc<Mutex<Entries>>,
    pub apply_calls: Arc<Mutex<Vec<u64>>>,
    pub gate: Arc<Gate>,
}

impl Journal {
    pub fn entries(&self) -> Entries {
        self.state.lock().unwrap().clone()
    }

    pub fn commands(&self) -> Vec<String> {
        self.entries().into_iter().map(|(_, c)| c).collect()
    }

    pub fn apply_calls(&self) -> Vec<u64> {
        self.apply_calls.lock().unwrap().clone()
    }

    /// Asserts that indices strictly increase and no command appears twice.
    pub fn assert_applied_once(&self) {
        let entries = self.entries();
        for pair in entries.windows(2) {
            assert!(pair[0].0 < pair[1].0, "indices not increasing: {pair:?}");
        }
        let mut commands: Vec<_> = entries.iter().map(|(_, c)| c.clone()).collect();
        commands.sort();
        let before = commands.len();
        commands.dedup();
        assert_eq!(before, commands.len(), "a command was applied twice");
    }
}

/// A gate `apply` can wait at: closed by the test, opened to let it through.
#[derive(Default)]
pub struct Gate {
    closed: Mutex<bool>,
    opened: Condvar,
}

impl Gate {
    pub fn close(&self) {
        *self.closed.lock().unwrap() = true;
    }

    pub fn open(&self) {
        *self.closed.lock().unwrap() = false;
        self.opened.notify_all();
    }

    fn wait(&self) {
        let mut closed = self.closed.lock().unwrap();
        while *closed {
            closed = self.opened.wait(closed).unwrap();
        }
    }
}

impl StateMachine for Journal {
    fn apply(&mut self, index: u64, command: &[u8]) -> Vec<u8> {
        if command == b"block" {
            self.gate.wait();
        }
        self.apply_calls.lock().unwrap().push(index);
        let mut state = self.state.lock().unwrap();
        state.push((index, String::from_utf8_lossy(command).into_owned()));
        format!("{index}:{}", state.len()).into_bytes()
    }

    fn snapshot(&self) -> Vec<u8> {
        serde_json::to_vec(&*self.state.lock().unwrap()).expect("journal serializes")
    }

    fn restore(&mut self, snapshot: &[u8]) -> Result<(), String> {
        let entries: Entries = serde_json::from_slice(snapshot).map_err(|e| e.to_string())?;
        *self.state.lock().unwrap() = entries;
        Ok(())
    }
}

/// A config with a short tick so tests stay fast.
pub fn config(dir: &Path) -> RaftConfig {
    let mut config = RaftConfig::new(dir, 1);
    config.tick = Duration::from_millis(20);
    config.startup_timeout = Duration::from_secs(10);
    config
}

/// Opens a node on `dir` with a fresh journal.
pub async fn open(config: RaftConfig) -> (RaftNode, Journal) {
    let journal = Journal::default();
    let node = RaftNode::open(config, journal.clone())
        .await
        .expect("node opens");
    (node, journal)
}

/// Installs a test tracing subscriber once (set RUST_LOG to see raft's logs).
pub fn init_tracing() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();
}
