//! A host cut off from the others cannot accept writes while the majority
//! goes on: three real `cloudware up --cluster-listen` processes on
//! loopback, one or two of them paused with SIGSTOP (all their traffic
//! stops, as in a partition), then resumed with SIGCONT.
//!
//! Every wait is bounded, and a [`Paused`] guard resumes paused hosts even
//! when an assertion fails, so nothing is left stopped.

mod common;

use cloudware_test_artifacts::HELLO;
use common::cluster::{SETTLE, three_hosts_with};
use common::paused::Paused;
use common::{Node, cli_ok, push_and_deploy, wait_until};
use serde_json::Value;
use std::net::SocketAddr;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

/// Bound for the majority to take a write once the leader is paused
/// (failure detection, election, forwarding).
const FAILOVER_WRITE: Duration = Duration::from_secs(15);
/// Bound for a cut-off host to refuse a write (the API's proposal bound is
/// 10 s) or a linearizable read (the raft read timeout is 5 s).
const REFUSAL: Duration = Duration::from_secs(20);
/// Bound of one HTTP exchange of these tests.
const EXCHANGE: Duration = Duration::from_secs(60);

/// The tests start three hosts each; one cluster at a time keeps elections
/// steady on a small machine.
static SERIAL: Mutex<()> = Mutex::new(());

/// The founder (host 1) and two hosts that joined it (2 and 3); every host
/// answers the admin API with the founder's operator token.
fn three_hosts() -> [Node; 3] {
    let (a, b, c) = three_hosts_with(&[]);
    [a, b, c]
}

fn pid(node: &Node) -> u32 {
    node.pid().expect("the host runs")
}

/// What an admin call answered.
#[derive(Debug)]
struct Answer {
    status: u16,
    body: String,
    /// When the answer came.
    at: Instant,
}

/// One admin API call to `addr`, bounded by `bound`: `None` when no answer
/// came in time (the host is paused, or hangs).
fn call(
    addr: SocketAddr,
    token: &str,
    method: &str,
    path: &str,
    body: Option<&str>,
    bound: Duration,
) -> Option<Answer> {
    let mut request = http::Request::builder()
        .method(method)
        .uri(path)
        .header("host", addr.to_string())
        .header("authorization", format!("Bearer {token}"));
    if body.is_some() {
        request = request.header("content-type", "application/json");
    }
    let bytes = bytes::Bytes::copy_from_slice(body.unwrap_or_default().as_bytes());
    let request = request.body(common::full(bytes)).expect("request");
    common::block_on(async move {
        let reply = tokio::time::timeout(bound, common::send(addr, request))
            .await
            .ok()?;
        Some(Answer {
            status: reply.status,
            body: reply
                .body
                .map_or_else(|e| e, |b| String::from_utf8_lossy(&b).into_owned()),
            at: Instant::now(),
        })
    })
}

fn call_node(node: &Node, method: &str, path: &str, body: Option<&str>) -> Option<Answer> {
    call(node.admin, &node.token, method, path, body, EXCHANGE)
}

/// Repeats a write on `node` until it succeeds (2xx), for at most `bound`;
/// returns how long it took.
fn write_until_ok(node: &Node, method: &str, path: &str, body: &str, bound: Duration) -> Duration {
    let started = Instant::now();
    loop {
        let last = match call_node(node, method, path, Some(body)) {
            Some(answer) if (200..300).contains(&answer.status) => return started.elapsed(),
            answer => answer,
        };
        assert!(
            started.elapsed() < bound,
            "{method} {path} on {} not acknowledged within {bound:?}; last answer {last:?}",
            node.admin
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The leader `node` knows (its raft status, via `GET /v1/nodes`).
fn leader_seen_by(node: &Node) -> Option<u64> {
    let answer = call(
        node.admin,
        &node.token,
        "GET",
        "/v1/nodes",
        None,
        Duration::from_secs(5),
    )?;
    if answer.status != 200 {
        return None;
    }
    serde_json::from_str::<Value>(&answer.body).ok()?["leader"].as_u64()
}

/// The leader every host names.
fn agreed_leader(hosts: &[Node; 3]) -> u64 {
    wait_until("every host names the same leader", SETTLE, || {
        let leader = leader_seen_by(&hosts[0])?;
        hosts[1..]
            .iter()
            .all(|host| leader_seen_by(host) == Some(leader))
            .then_some(leader)
    })
}

/// `web`'s instances through the linearizable `GET /v1/apps/web/status` on
/// `node`: retried while the host answers 503 (bounded), but any 200 must
/// already hold the latest value — `expected` says which values are (empty:
/// any).
fn linearizable_instances(node: &Node, expected: &[u64]) -> u64 {
    wait_until("a linearizable read answers", SETTLE, || {
        let answer = call_node(node, "GET", "/v1/apps/web/status?tenant=acme", None)?;
        if answer.status == 503 {
            return None;
        }
        assert_eq!(answer.status, 200, "{answer:?}");
        let status: Value = serde_json::from_str(&answer.body).expect("JSON");
        let instances = status["instances"].as_u64().expect("instances");
        assert!(
            expected.is_empty() || expected.contains(&instances),
            "{} read {instances} instances, a stale value (expected one of {expected:?})",
            node.admin
        );
        Some(instances)
    })
}

/// Tenant names `node` lists (its applied state).
fn tenants(node: &Node) -> Vec<String> {
    let answer = call_node(node, "GET", "/v1/tenants", None).expect("an answer");
    assert_eq!(answer.status, 200, "{answer:?}");
    let tenants: Value = serde_json::from_str(&answer.body).expect("JSON");
    tenants
        .as_array()
        .expect("tenants")
        .iter()
        .filter_map(|t| t["name"].as_str().map(str::to_string))
        .collect()
}

fn scale_body(instances: u32) -> String {
    format!(r#"{{"instances":{instances}}}"#)
}

const SCALE: &str = "/v1/apps/web/scale?tenant=acme";

#[test]
fn a_paused_leader_acknowledges_nothing_steps_down_and_catches_up() {
    let _serial = SERIAL.lock().unwrap_or_else(PoisonError::into_inner);
    let hosts = three_hosts();
    let token = hosts[0].token.clone();
    cli_ok(&hosts[0], &token, &["tenant", "create", "acme"]);
    push_and_deploy(&hosts[0], &token, "acme", HELLO, "web", "/");
    let initial = linearizable_instances(&hosts[0], &[]);
    for host in &hosts[1..] {
        assert_eq!(linearizable_instances(host, &[initial]), initial);
    }
    let leader = agreed_leader(&hosts);
    let old = &hosts[(leader - 1) as usize];
    let others: Vec<&Node> = hosts.iter().filter(|h| h.admin != old.admin).collect();

    // The leader stops: no traffic in or out.
    let paused = Paused::stop(&[pid(old)]);
    let paused_at = Instant::now();
    // A write sent to it meanwhile cannot be answered while it is paused.
    let (sent_tx, sent_rx) = std::sync::mpsc::channel();
    let (addr, old_token) = (old.admin, old.token.clone());
    let to_old = std::thread::spawn(move || {
        let body = scale_body(7);
        let answer = call(addr, &old_token, "PUT", SCALE, Some(&body), EXCHANGE);
        let _ = sent_tx.send(());
        answer
    });

    // The majority goes on: writes through either of the other two hosts.
    let took = write_until_ok(others[0], "PUT", SCALE, &scale_body(2), FAILOVER_WRITE);
    eprintln!("first write through the majority acknowledged {took:?} after the pause");
    write_until_ok(others[1], "PUT", SCALE, &scale_body(3), FAILOVER_WRITE);
    write_until_ok(
        others[0],
        "POST",
        "/v1/tenants",
        r#"{"name":"during-pause"}"#,
        FAILOVER_WRITE,
    );
    for host in &others {
        assert_eq!(linearizable_instances(host, &[3]), 3);
    }
    let new_leader = leader_seen_by(others[0]).expect("a new leader");
    assert_ne!(new_leader, leader);
    assert!(
        sent_rx.try_recv().is_err(),
        "the paused leader answered a write"
    );
    eprintln!(
        "the majority took 3 writes within {:?}",
        paused_at.elapsed()
    );

    // Resumed, the old leader steps down and follows the new one.
    let resumed_at = Instant::now();
    paused.resume();
    wait_until("the old leader follows the new one", SETTLE, || {
        (leader_seen_by(old) == Some(new_leader)).then_some(())
    });
    eprintln!(
        "the old leader followed {:?} after resuming",
        resumed_at.elapsed()
    );
    // The write sent during the pause was answered only after it, and if it
    // was acknowledged it went through the new leader, after the others.
    let answer = to_old.join().expect("the writer thread");
    let answer = answer.expect("the write to the old leader is answered once it resumes");
    assert!(answer.at >= resumed_at);
    eprintln!(
        "the write sent to the paused leader answered {} {:?} after the resume: {}",
        answer.status,
        answer.at - resumed_at,
        answer.body
    );
    let expected: &[u64] = if answer.status == 200 { &[7] } else { &[3, 7] };

    // It catches up: a linearizable read on it shows the majority's writes.
    let instances = linearizable_instances(old, expected);
    for host in &others {
        assert_eq!(linearizable_instances(host, expected), instances);
    }
    assert!(
        tenants(old).contains(&"during-pause".to_string()),
        "{:?}",
        tenants(old)
    );
    // And it takes writes again (forwarded to the new leader).
    write_until_ok(old, "PUT", SCALE, &scale_body(4), FAILOVER_WRITE);
    for host in &hosts {
        assert_eq!(linearizable_instances(host, &[4]), 4);
    }
}

#[test]
fn a_host_cut_off_from_the_majority_acknowledges_no_write_and_serves_no_read() {
    let _serial = SERIAL.lock().unwrap_or_else(PoisonError::into_inner);
    let hosts = three_hosts();
    let token = hosts[0].token.clone();
    cli_ok(&hosts[0], &token, &["tenant", "create", "before"]);
    let leader = agreed_leader(&hosts);
    let cut = &hosts[(leader - 1) as usize];
    let followers: Vec<u32> = hosts
        .iter()
        .filter(|h| h.admin != cut.admin)
        .map(pid)
        .collect();

    // Both followers stop: the leader is alone, a minority of one.
    let paused = Paused::stop(&followers);

    // A write to it is not acknowledged: a clear 503 within a bound.
    let started = Instant::now();
    let answer = call(
        cut.admin,
        &cut.token,
        "POST",
        "/v1/tenants",
        Some(r#"{"name":"cut-off"}"#),
        REFUSAL + Duration::from_secs(10),
    )
    .expect("the cut-off host answers the write (it must not hang)");
    let refused_after = started.elapsed();
    eprintln!(
        "a write to the cut-off host: {} after {refused_after:?}: {}",
        answer.status, answer.body
    );
    assert_eq!(answer.status, 503, "{answer:?}");
    assert!(answer.body.contains("not acknowledged"), "{}", answer.body);
    assert!(refused_after < REFUSAL, "refused after {refused_after:?}");

    // A linearizable read fails rather than return possibly stale data.
    let started = Instant::now();
    let answer = call_node(cut, "GET", "/v1/apps", None).expect("an answer");
    let refused_after = started.elapsed();
    eprintln!(
        "a linearizable read on the cut-off host: {} after {refused_after:?}: {}",
        answer.status, answer.body
    );
    assert_eq!(answer.status, 503, "{answer:?}");
    assert!(answer.body.contains("no raft leader"), "{}", answer.body);
    assert!(refused_after < REFUSAL, "refused after {refused_after:?}");
    // It stepped down: it knows no leader (check-quorum).
    assert_eq!(
        leader_seen_by(cut),
        None,
        "the cut-off host still names a leader"
    );

    // The others resume: the cluster goes on and takes writes again, also
    // through the host that was cut off.
    let resumed_at = Instant::now();
    paused.resume();
    let took = write_until_ok(cut, "POST", "/v1/tenants", r#"{"name":"after"}"#, SETTLE);
    eprintln!("a write acknowledged {took:?} after the resume");
    assert!(resumed_at.elapsed() < SETTLE);
    for host in &hosts {
        wait_until("a linearizable read answers", SETTLE, || {
            let answer = call_node(host, "GET", "/v1/apps", None)?;
            (answer.status == 200).then_some(())
        });
        let names = tenants(host);
        assert!(names.contains(&"after".to_string()), "{names:?}");
        assert!(names.contains(&"before".to_string()), "{names:?}");
        // The refused write may still have been applied (its outcome was
        // unknown), but never twice.
        assert!(
            names.iter().filter(|n| *n == "cut-off").count() <= 1,
            "{names:?}"
        );
    }
}
