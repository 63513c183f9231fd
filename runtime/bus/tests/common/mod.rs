//! Helpers shared by the bus integration tests: opening a bus in a temporary directory,
//! recording handlers, and bounded waiting.
#![allow(dead_code)]

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use cloudware_bus::{Bus, BusConfig, Delivery, MessageHandler, QueuePolicy, handler_fn};

/// A policy with short timers, so retry tests run in milliseconds.
pub fn fast_policy() -> QueuePolicy {
    QueuePolicy {
        max_depth: 10_000,
        max_attempts: 3,
        backoff_initial: Duration::from_millis(30),
        backoff_max: Duration::from_millis(200),
        lease_timeout: Duration::from_secs(10),
    }
}

/// Opens a bus at `dir` whose queues default to [`fast_policy`].
pub fn open(dir: &Path) -> Bus {
    Bus::open(
        dir,
        BusConfig {
            default_policy: fast_policy(),
            ..BusConfig::default()
        },
    )
    .expect("open bus")
}

/// The deliveries a recording handler saw, in order.
pub type Seen = Arc<Mutex<Vec<Delivery>>>;

/// A handler that records every delivery and acknowledges it.
pub fn recorder() -> (Seen, Arc<dyn MessageHandler>) {
    let seen: Seen = Arc::default();
    let handler = handler_fn({
        let seen = seen.clone();
        move |d: Delivery| {
            seen.lock().unwrap().push(d);
            async { Ok(()) }
        }
    });
    (seen, handler)
}

/// A handler that never finishes.
pub fn stuck() -> Arc<dyn MessageHandler> {
    handler_fn(|_d: Delivery| std::future::pending::<Result<(), String>>())
}

/// Payloads of the recorded deliveries.
pub fn payloads(seen: &Seen) -> Vec<Vec<u8>> {
    seen.lock()
        .unwrap()
        .iter()
        .map(|d| d.payload.clone())
        .collect()
}

/// Waits (polling every 5 ms, at most `timeout`) until `cond` holds; panics naming `what`.
pub async fn eventually(what: &str, timeout: Duration, mut cond: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + timeout;
    while !cond() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out after {timeout:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// The standard wait bound of these tests.
pub const WAIT: Duration = Duration::from_secs(20);
