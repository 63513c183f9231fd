//! Hostile guests: each failure gets the right status within its deadline,
//! with a short reason, while well-behaved requests keep succeeding.

mod common;

use common::{Server, get};
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::time::Duration;

/// The request deadline the hostile server runs with.
const DEADLINE: Duration = Duration::from_secs(2);
/// Slack allowed beyond the deadline (epoch tick, scheduling, a loaded CI box).
const TOLERANCE: Duration = Duration::from_millis(1500);

fn hostile_server() -> Server {
    Server::start(
        cloudware_test_artifacts::HOSTILE,
        &["--request-timeout", "2s", "--max-memory", "32MiB"],
    )
}

/// Runs `/ok` requests in a loop until stopped; counts successes and failures.
struct Bystander {
    stop: Arc<AtomicBool>,
    ok: Arc<AtomicU32>,
    failed: Arc<AtomicU32>,
    task: tokio::task::JoinHandle<()>,
}

impl Bystander {
    fn start(addr: SocketAddr) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let ok = Arc::new(AtomicU32::new(0));
        let failed = Arc::new(AtomicU32::new(0));
        let (s, o, f) = (stop.clone(), ok.clone(), failed.clone());
        let task = tokio::spawn(async move {
            // Bounded: at most 2,000 requests, and stops when told.
            for _ in 0..2_000 {
                if s.load(Ordering::Relaxed) {
                    break;
                }
                let reply = get(addr, "/ok").await;
                if reply.status == 200 && reply.body.as_deref().ok() == Some(&b"ok"[..]) {
                    o.fetch_add(1, Ordering::Relaxed);
                } else {
                    f.fetch_add(1, Ordering::Relaxed);
                }
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        });
        Bystander {
            stop,
            ok,
            failed,
            task,
        }
    }

    async fn finish(self) -> (u32, u32) {
        self.stop.store(true, Ordering::Relaxed);
        self.task.await.expect("bystander task");
        (
            self.ok.load(Ordering::Relaxed),
            self.failed.load(Ordering::Relaxed),
        )
    }
}

/// One hostile route: its expected status and a phrase of its reason.
async fn expect_failure(server: &Server, path: &str, status: u16, reason: &str, max: Duration) {
    let bystander = Bystander::start(server.addr);
    let reply = get(server.addr, path).await;
    let (ok, failed) = bystander.finish().await;
    let text = reply
        .body
        .as_ref()
        .map(|b| String::from_utf8_lossy(b).into_owned())
        .unwrap_or_default();
    assert_eq!(reply.status, status, "{path}: {text}");
    assert!(
        text.to_lowercase().contains(reason),
        "{path}: reason {text:?} lacks {reason:?}"
    );
    assert!(
        reply.elapsed <= max,
        "{path}: took {:?}, allowed {max:?}",
        reply.elapsed
    );
    assert_eq!(failed, 0, "{path}: well-behaved requests failed meanwhile");
    assert!(
        ok > 0,
        "{path}: no well-behaved request completed meanwhile"
    );
}

fn quick() -> Duration {
    TOLERANCE
}

fn deadline() -> Duration {
    DEADLINE + TOLERANCE
}

#[tokio::test(flavor = "multi_thread")]
async fn a_trap_is_a_500() {
    let server = hostile_server();
    expect_failure(&server, "/trap", 500, "unreachable", quick()).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_panic_is_a_500() {
    let server = hostile_server();
    expect_failure(&server, "/panic", 500, "trapped", quick()).await;
    // The guest's panic message reaches the log, attributed to the guest.
    let logs = server.wait_for_stderr("boom");
    let line = logs
        .lines()
        .find(|l| l.contains("boom"))
        .unwrap_or_default();
    assert!(
        line.contains("cloudware::guest") && line.contains("stderr"),
        "{line}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn an_endless_loop_is_a_504_at_the_deadline() {
    let server = hostile_server();
    expect_failure(&server, "/loop", 504, "did not finish", deadline()).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_guest_stuck_in_a_host_call_is_a_504_at_the_deadline() {
    let server = hostile_server();
    expect_failure(&server, "/sleep", 504, "did not finish", deadline()).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn growing_memory_past_the_cap_is_a_500() {
    let server = hostile_server();
    expect_failure(&server, "/memory", 500, "memory", deadline()).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_stack_overflow_is_a_500() {
    let server = hostile_server();
    expect_failure(&server, "/stack", 500, "stack overflow", quick()).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_half_written_response_is_a_500() {
    let server = hostile_server();
    expect_failure(&server, "/half", 500, "trapped", quick()).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn no_response_at_all_is_a_500() {
    let server = hostile_server();
    expect_failure(&server, "/none", 500, "without sending a response", quick()).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_large_response_cut_by_a_trap_is_never_seen_as_complete() {
    let server = hostile_server();
    let bystander = Bystander::start(server.addr);
    let reply = get(server.addr, "/half-big").await;
    let (ok, failed) = bystander.finish().await;
    // Past the hold-back window the head is already out; the body must then
    // end in an error rather than look complete.
    match reply.status {
        200 => assert!(reply.body.is_err(), "a truncated body looked complete"),
        status => assert_eq!(status, 500),
    }
    assert_eq!(failed, 0);
    assert!(ok > 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn too_many_concurrent_instances_get_a_503() {
    let server = Server::start(
        cloudware_test_artifacts::HOSTILE,
        &[
            "--request-timeout",
            "3s",
            "--max-concurrent-instances",
            "2",
            "--queue-timeout",
            "100ms",
        ],
    );
    let addr = server.addr;
    // Two guests sleeping in a host call hold both instance slots.
    let sleepers: Vec<_> = (0..2)
        .map(|_| tokio::spawn(async move { get(addr, "/sleep").await }))
        .collect();
    // Wait until both are admitted: a third request is then turned away.
    let mut overloaded = None;
    for _ in 0..100 {
        let reply = get(addr, "/ok").await;
        if reply.status == 503 {
            overloaded = Some(reply);
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let reply = overloaded.expect("a request over the bound got 503");
    assert!(reply.text().contains("overloaded"), "{}", reply.text());
    assert!(
        reply.elapsed < Duration::from_secs(1),
        "{:?}",
        reply.elapsed
    );
    for sleeper in sleepers {
        assert_eq!(sleeper.await.expect("sleeper").status, 504);
    }
    // Slots are free again.
    assert_eq!(get(addr, "/ok").await.status, 200);
}

#[tokio::test(flavor = "multi_thread")]
async fn limits_come_from_the_config_file() {
    let dir = tempfile::tempdir().expect("dir");
    let config = common::write_file(
        dir.path(),
        "cloudware.toml",
        b"[limits]\nrequest_timeout = \"700ms\"\n",
    );
    let server = Server::start(
        cloudware_test_artifacts::HOSTILE,
        &["--config", config.to_str().expect("utf-8")],
    );
    let reply = get(server.addr, "/loop").await;
    assert_eq!(reply.status, 504);
    assert!(reply.text().contains("700ms"), "{}", reply.text());
    assert!(reply.elapsed < Duration::from_millis(700) + TOLERANCE);
}
