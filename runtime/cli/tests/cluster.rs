//! Many hosts, one platform: three real `cloudware up --cluster-listen`
//! processes on loopback form a cluster over TLS, and what one host is told
//! every host does.

mod common;

use cloudware_test_artifacts::HELLO;
use common::cluster::{SETTLE, printed, three_hosts_with, wait_for_members};
use common::{Node, cli, cli_json, cli_ok, gateway_get, push_and_deploy, wait_until};
use serde_json::Value;
use std::time::Duration;

const HELLO_TEXT: &str = "Hello from Cloudware!\n";

/// The founder and two hosts that joined it.
fn three_hosts() -> (Node, Node, Node) {
    three_hosts_with(&[])
}

#[test]
fn three_hosts_form_a_cluster_and_a_deploy_on_one_serves_from_all() {
    let (a, b, c) = three_hosts();
    let hosts = [&a, &b, &c];

    // Every host knows all three, one leader and two voters.
    for host in hosts {
        let seen = wait_for_members(host, 3);
        let names: Vec<&str> = seen.iter().map(|(_, n, _)| n.as_str()).collect();
        assert_eq!(names, ["alpha", "beta", "gamma"]);
    }
    let listed = cli_ok(&b, &b.token, &["node", "list"]);
    assert!(listed.contains("beta *"), "{listed}");

    // A tenant made on one host, a package pushed to another and deployed
    // through the third: proposals reach the leader from any host.
    cli_ok(&c, &c.token, &["tenant", "create", "acme"]);
    let pushed = cli_ok(&b, &b.token, &["push", HELLO, "--tenant", "acme"]);
    let digest = common::last_line(&pushed).to_string();
    cli_ok(
        &c,
        &c.token,
        &[
            "deploy",
            "web",
            "--tenant",
            "acme",
            "--package",
            &digest,
            "--route",
            "/",
        ],
    );
    // Every gateway serves it: the hosts without the package pulled it from
    // the one that has it, by digest.
    for host in hosts {
        wait_until("the app answers on every host", SETTLE, || {
            let reply = gateway_get(host, "localhost", "/");
            (reply.status == 200 && reply.text() == HELLO_TEXT).then_some(())
        });
    }
    for host in [&a, &c] {
        let file = host.packages_dir().join(format!(
            "sha256-{}.wasm",
            digest.trim_start_matches("sha256:")
        ));
        assert!(file.is_file(), "{} pulled the package", file.display());
    }
    let history = cli_json(&a, &a.token, &["history", "web", "--tenant", "acme"]);
    assert_eq!(history.as_array().map(Vec::len), Some(1), "{history}");

    // A second app deployed from the founder also reaches every host.
    push_and_deploy(&a, &a.token, "acme", HELLO, "two", "two.test/");
    for host in hosts {
        wait_until("the second app answers on every host", SETTLE, || {
            let reply = gateway_get(host, "two.test", "/");
            (reply.status == 200).then_some(())
        });
    }
}

/// The leader's id as `node` sees it (via the raw API: no CLI start-up in
/// the measured time).
fn leader_seen_by(node: &Node) -> Option<u64> {
    let reply = common::admin_request(node, "GET", "/v1/nodes", Some(&node.token), None);
    if reply.status != 200 {
        return None;
    }
    let nodes: Value = serde_json::from_str(&reply.text()).ok()?;
    nodes["leader"].as_u64()
}

/// The (route → count) of every version in `app`'s history on `node`.
fn routes_in_history(node: &Node, app: &str) -> std::collections::BTreeMap<String, usize> {
    let history = cli_json(node, &node.token, &["history", app, "--tenant", "acme"]);
    let mut routes = std::collections::BTreeMap::new();
    for version in history.as_array().expect("history") {
        for route in version["routes"].as_array().expect("routes") {
            *routes
                .entry(route.as_str().expect("route").to_string())
                .or_default() += 1;
        }
    }
    routes
}

/// How many times `node`'s stderr since its last start says it installed the
/// leader's snapshot.
fn snapshots_installed_since_start(node: &Node) -> usize {
    let stderr = node.stderr();
    let last_start = stderr
        .rsplit("--- cloudware up starts ---")
        .next()
        .unwrap_or_default()
        .to_string();
    last_start
        .matches("installed snapshot from the leader")
        .count()
}

#[test]
fn a_killed_leader_loses_no_acknowledged_deploy_and_killed_hosts_catch_up() {
    // Small snapshots, so a host that misses a few dozen entries must catch
    // up from a snapshot.
    let (a, b, c) = three_hosts_with(&["--raft-snapshot-every", "20"]);
    let mut hosts = [a, b, c];
    cli_ok(&hosts[0], &hosts[0].token, &["tenant", "create", "acme"]);
    let leader = wait_until("a leader", SETTLE, || leader_seen_by(&hosts[0]));
    let leader_at = (leader - 1) as usize;
    let survivor_at = (leader_at + 1) % 3;
    let follower_at = (leader_at + 2) % 3;

    // 1. A follower killed and restarted after a few writes catches up
    //    from the leader's log.
    hosts[follower_at].kill9();
    for n in 0..3 {
        cli_ok(
            &hosts[survivor_at],
            &hosts[survivor_at].token,
            &["tenant", "create", &format!("while-down-{n}")],
        );
    }
    hosts[follower_at].restart();
    hosts[follower_at].token = hosts[survivor_at].token.clone();
    wait_until("the restarted follower has the writes", SETTLE, || {
        let tenants = cli_ok(
            &hosts[follower_at],
            &hosts[follower_at].token,
            &["tenant", "list"],
        );
        tenants.contains("while-down-2").then_some(())
    });
    assert_eq!(
        snapshots_installed_since_start(&hosts[follower_at]),
        0,
        "caught up from the log"
    );

    // 2. A stream of deploys through a survivor; the leader is killed after
    //    the fourth is acknowledged.
    let pushed = cli_ok(
        &hosts[survivor_at],
        &hosts[survivor_at].token,
        &["push", HELLO, "--tenant", "acme"],
    );
    let digest = common::last_line(&pushed).to_string();
    let acknowledged = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let (killed_tx, killed_rx) = std::sync::mpsc::channel::<()>();
    let stream = {
        let acknowledged = acknowledged.clone();
        let url = hosts[survivor_at].url();
        let token = hosts[survivor_at].token.clone();
        let home = hosts[survivor_at].home_dir();
        let digest = digest.clone();
        std::thread::spawn(move || {
            for n in 1..=12 {
                let route = format!("r{n}.test/");
                let mut command = common::cloudware();
                command
                    .args(["deploy", "web", "--tenant", "acme", "--package", &digest])
                    .args(["--route", &route])
                    .env("CLOUDWARE_URL", &url)
                    .env("CLOUDWARE_TOKEN", &token)
                    .env("HOME", &home)
                    .env_remove("CLOUDWARE_CONFIG")
                    .stdin(std::process::Stdio::null());
                let (code, _, stderr) =
                    common::Running::spawn(command).finish(Duration::from_secs(90));
                if code == 0 {
                    acknowledged.lock().expect("lock").push(route);
                } else {
                    eprintln!("deploy {route} failed: {stderr}");
                }
                if n == 4 {
                    // Wait until the leader is dead before the next deploy.
                    let _ = killed_rx.recv_timeout(Duration::from_secs(30));
                }
            }
        })
    };
    wait_until("four deploys acknowledged", SETTLE, || {
        (acknowledged.lock().expect("lock").len() >= 4).then_some(())
    });
    hosts[leader_at].kill9();
    let killed = std::time::Instant::now();
    let new_leader = wait_until("a new leader", SETTLE, || {
        leader_seen_by(&hosts[survivor_at]).filter(|l| *l != leader)
    });
    let failover = killed.elapsed();
    let _ = killed_tx.send(());
    eprintln!("new leader {new_leader} {failover:?} after the leader was killed");
    assert!(
        failover < Duration::from_secs(2),
        "a new leader within 2 s, not {failover:?}"
    );
    stream.join().expect("the deploy stream");
    let acknowledged = acknowledged.lock().expect("lock").clone();
    assert!(
        acknowledged.len() >= 10,
        "most deploys go through: {acknowledged:?}"
    );
    let routes = routes_in_history(&hosts[survivor_at], "web");
    for route in &acknowledged {
        assert!(
            routes.contains_key(route),
            "acknowledged {route} is in {routes:?}"
        );
    }
    for (route, count) in &routes {
        assert_eq!(*count, 1, "{route} applied once: {routes:?}");
    }

    // 3. The killed leader restarts after dozens more entries (past its
    //    log): it catches up from a snapshot and agrees with the others.
    for n in 0..30 {
        cli_ok(
            &hosts[survivor_at],
            &hosts[survivor_at].token,
            &["tenant", "create", &format!("after-kill-{n}")],
        );
    }
    hosts[leader_at].restart();
    hosts[leader_at].token = hosts[survivor_at].token.clone();
    wait_until("the old leader has every write", SETTLE, || {
        let tenants = cli_ok(
            &hosts[leader_at],
            &hosts[leader_at].token,
            &["tenant", "list"],
        );
        tenants.contains("after-kill-29").then_some(())
    });
    assert!(
        snapshots_installed_since_start(&hosts[leader_at]) >= 1,
        "caught up from a snapshot"
    );
    assert_eq!(routes_in_history(&hosts[leader_at], "web"), routes);
    let last = acknowledged.last().expect("a deploy");
    for host in &hosts {
        let deadline = std::time::Instant::now() + SETTLE;
        loop {
            let reply = gateway_get(host, last.trim_end_matches('/'), "/");
            if reply.status == 200 && reply.text() == HELLO_TEXT {
                break;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "{last} on {}: {} {:?}; stderr: {}",
                host.gateway,
                reply.status,
                reply.text(),
                host.stderr_tail()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

#[test]
fn a_join_with_a_wrong_token_is_refused_and_changes_nothing() {
    let founder = Node::start(&["--cluster-listen", "127.0.0.1:0", "--name", "alpha"]);
    let line = printed(&founder, "Founded a cluster. Join token ");
    let token = line.rsplit(' ').next().expect("token").to_string();
    let cluster = printed(&founder, "Cluster host 1 on ");
    // Same CA fingerprint, another secret.
    let (fingerprint, _) = token.rsplit_once('.').expect("token parts");
    let forged = format!("{fingerprint}.{}", "A".repeat(43));
    let dir = tempfile::tempdir().expect("dir");
    let (code, _, stderr) = run_up(&dir, &cluster, &forged);
    assert_ne!(code, 0);
    assert!(stderr.contains("join token is not valid"), "{stderr}");
    // A malformed token is refused before anything is sent.
    let (code, _, stderr) = run_up(&dir, &cluster, "cwjoin1.nope");
    assert_ne!(code, 0);
    assert!(stderr.contains("join token is malformed"), "{stderr}");
    let nodes: Value = cli_json(&founder, &founder.token, &["node", "list"]);
    assert_eq!(nodes["hosts"].as_array().map(Vec::len), Some(1), "{nodes}");
    let (code, _, _) = cli(&founder, &founder.token, &["node", "list"]);
    assert_eq!(code, 0);
}

/// Runs `cloudware up --join` to completion (it fails before serving).
fn run_up(dir: &tempfile::TempDir, cluster: &str, token: &str) -> (i32, String, String) {
    let mut command = common::cloudware();
    command
        .arg("up")
        .arg("--data-dir")
        .arg(dir.path().join("data"))
        .args(["--listen", "127.0.0.1:0", "--admin-listen", "127.0.0.1:0"])
        .args(["--cluster-listen", "127.0.0.1:0", "--name", "mallory"])
        .args(["--join", cluster, "--join-token", token])
        .env("HOME", dir.path())
        .stdin(std::process::Stdio::null());
    common::Running::spawn(command).finish(Duration::from_secs(60))
}
