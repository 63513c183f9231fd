//! Placement across three real hosts: the scheduler spreads an app's
//! instances by labels and weights, moves them off a drained or lost host,
//! every gateway serves every app (forwarding to the hosts that run it), and
//! a lost host is removed from the cluster.

mod common;

use cloudware_test_artifacts::HELLO;
use common::cluster::{SETTLE, cluster_of, placed, roles, wait_for_members};
use common::{Node, cli, cli_json, cli_ok, gateway_get, push_and_deploy, wait_until};
use std::collections::BTreeMap;

const HELLO_TEXT: &str = "Hello from Cloudware!\n";

/// `web`'s instances per host name, as `node` reports them.
fn placement(node: &Node) -> BTreeMap<String, u64> {
    placed(node, "acme", "web")
}

/// Waits until `node` reports `web` placed as `expected`.
fn wait_for_placement(node: &Node, what: &str, expected: &[(&str, u64)]) {
    let expected: BTreeMap<String, u64> = expected
        .iter()
        .map(|(name, n)| (name.to_string(), *n))
        .collect();
    let mut last = BTreeMap::new();
    let found = common::wait_until_or(SETTLE, || {
        last = placement(node);
        (last == expected).then_some(())
    });
    assert!(
        found.is_some(),
        "{what}: expected {expected:?}, last saw {last:?}"
    );
}

/// The state `node` reports for host `name`.
fn host_state(node: &Node, name: &str) -> String {
    let nodes = cli_json(node, &node.token, &["node", "list"]);
    nodes["hosts"]
        .as_array()
        .expect("hosts")
        .iter()
        .find(|h| h["name"] == name)
        .map(|h| h["state"].as_str().expect("state").to_string())
        .unwrap_or_else(|| "absent".to_string())
}

/// Every host's gateway answers for `web`.
fn served_everywhere(hosts: &[&Node]) {
    for host in hosts {
        wait_until("web answers on every host", SETTLE, || {
            let reply = gateway_get(host, "localhost", "/");
            (reply.status == 200 && reply.text() == HELLO_TEXT).then_some(())
        });
    }
}

#[test]
fn the_scheduler_spreads_moves_and_forwards() {
    let mut nodes = cluster_of(&[
        ("alpha", &["--label", "zone=east"]),
        ("beta", &["--label", "zone=west"]),
        ("gamma", &["--label", "zone=west"]),
    ]);
    let mut gamma = nodes.pop().expect("three");
    let beta = nodes.pop().expect("three");
    let alpha = nodes.pop().expect("three");
    wait_for_members(&alpha, 3);
    let token = alpha.token.clone();

    // A new app's instances spread over every host.
    cli_ok(&alpha, &token, &["tenant", "create", "acme"]);
    push_and_deploy(&alpha, &token, "acme", HELLO, "web", "/");
    wait_until("web is spread over three hosts", SETTLE, || {
        (placement(&beta).len() == 3).then_some(())
    });
    // One instance runs on one host; all three gateways serve the app, two
    // of them by forwarding.
    cli_ok(
        &alpha,
        &token,
        &["scale", "web", "--tenant", "acme", "--instances", "1"],
    );
    wait_until("web is placed on one host", SETTLE, || {
        let placed = placement(&beta);
        (placed.values().sum::<u64>() == 1).then_some(())
    });
    served_everywhere(&[&alpha, &beta, &gamma]);

    // Three instances: one per host.
    cli_ok(
        &beta,
        &token,
        &["scale", "web", "--tenant", "acme", "--instances", "3"],
    );
    wait_for_placement(
        &gamma,
        "three instances spread",
        &[("alpha", 1), ("beta", 1), ("gamma", 1)],
    );

    // Spread by label: only the west hosts.
    cli_ok(
        &gamma,
        &token,
        &[
            "scale",
            "web",
            "--tenant",
            "acme",
            "--instances",
            "4",
            "--spread",
            "zone=west",
        ],
    );
    wait_for_placement(&alpha, "spread west", &[("beta", 2), ("gamma", 2)]);
    let shown = cli_ok(&alpha, &token, &["status", "web", "--tenant", "acme"]);
    assert!(
        shown.contains("web runs on beta ×2 (ready), gamma ×2 (ready)"),
        "{shown}"
    );
    served_everywhere(&[&alpha, &beta, &gamma]);

    // Draining gamma moves its instances to the other west host; ready
    // again, it gets its share back.
    cli_ok(&alpha, &token, &["node", "drain", "gamma"]);
    wait_for_placement(&alpha, "gamma drained", &[("beta", 4)]);
    assert_eq!(host_state(&beta, "gamma"), "draining");
    cli_ok(&alpha, &token, &["node", "ready", "gamma"]);
    wait_for_placement(&alpha, "gamma ready", &[("beta", 2), ("gamma", 2)]);

    // An up, ready host is not removed without --force.
    let (code, _, stderr) = cli(&alpha, &token, &["node", "remove", "beta"]);
    assert_ne!(code, 0);
    assert!(stderr.contains("drain it first"), "{stderr}");

    // Losing gamma: it is seen down, its instances move to beta, and the app
    // still answers everywhere that is left.
    gamma.kill9();
    wait_until("gamma is seen down", SETTLE, || {
        (host_state(&alpha, "gamma") == "down").then_some(())
    });
    let metrics = common::admin_request(&alpha, "GET", "/metrics", Some(&token), None).text();
    for line in [
        r#"cloudware_host_state{host="gamma",state="down"} 1"#,
        r#"cloudware_host_state{host="beta",state="ready"} 1"#,
    ] {
        assert!(metrics.contains(line), "{line} missing in\n{metrics}");
    }
    wait_for_placement(&alpha, "gamma lost", &[("beta", 4)]);
    served_everywhere(&[&alpha, &beta]);

    // A down host can be removed: it leaves the registry and the raft group.
    // (Each host sees its peers on its own: wait until beta sees it down.)
    wait_until("beta sees gamma down", SETTLE, || {
        (host_state(&beta, "gamma") == "down").then_some(())
    });
    cli_ok(&beta, &token, &["node", "remove", "gamma"]);
    wait_until("gamma left the raft group", SETTLE, || {
        let seen = roles(&alpha);
        let names: Vec<&str> = seen.iter().map(|(_, n, _)| n.as_str()).collect();
        let voters = seen.iter().filter(|(_, _, r)| r == "voter").count();
        (names == ["alpha", "beta"] && voters == 1).then_some(())
    });
    let status = cli_json(&alpha, &token, &["node", "list"]);
    assert_eq!(
        status["hosts"].as_array().map(Vec::len),
        Some(2),
        "{status}"
    );
    // Writes still commit with two voters.
    cli_ok(
        &alpha,
        &token,
        &[
            "scale",
            "web",
            "--tenant",
            "acme",
            "--instances",
            "2",
            "--no-spread",
        ],
    );
    wait_for_placement(&beta, "two hosts left", &[("alpha", 1), ("beta", 1)]);
    served_everywhere(&[&alpha, &beta]);
}
