//! Helpers for cluster tests: hosts of one cluster as separate `cloudware up
//! --cluster-listen` processes on loopback.

use super::*;
use std::time::Duration;

/// Bound for the cluster to agree on something (membership, a deploy).
pub const SETTLE: Duration = Duration::from_secs(60);

/// The value after `prefix` on the line of `node`'s start output that has it.
pub fn printed(node: &Node, prefix: &str) -> String {
    node.stdout_lines
        .iter()
        .find_map(|line| line.strip_prefix(prefix))
        .unwrap_or_else(|| panic!("no {prefix:?} line in {:?}", node.stdout_lines))
        .trim()
        .to_string()
}

/// A cluster of one host per `(name, extra cloudware up arguments)`: the
/// first founds it, the others join it. Every host answers the admin API with
/// the founder's operator token.
pub fn cluster_of(hosts: &[(&str, &[&str])]) -> Vec<Node> {
    let (founder_name, founder_extra) = hosts[0];
    let mut args = vec!["--cluster-listen", "127.0.0.1:0", "--name", founder_name];
    args.extend(founder_extra);
    let founder = Node::start(&args);
    let line = printed(&founder, "Founded a cluster. Join token ");
    let token = line.rsplit(' ').next().expect("token").to_string();
    assert!(token.starts_with("cwjoin1."), "{line}");
    let cluster = printed(&founder, "Cluster host 1 on ");
    let mut nodes = vec![founder];
    for (name, extra) in &hosts[1..] {
        let mut args = vec![
            "--cluster-listen",
            "127.0.0.1:0",
            "--name",
            name,
            "--join",
            &cluster,
            "--join-token",
            &token,
        ];
        args.extend(*extra);
        let mut host = Node::start(&args);
        assert!(
            host.printed_token.is_none(),
            "a joining host creates no operator token"
        );
        host.token = nodes[0].token.clone();
        nodes.push(host);
    }
    nodes
}

/// `alpha`, `beta` and `gamma`, each started with `extra` arguments.
pub fn three_hosts_with(extra: &[&str]) -> (Node, Node, Node) {
    let mut nodes = cluster_of(&[("alpha", extra), ("beta", extra), ("gamma", extra)]);
    let third = nodes.pop().expect("three");
    let second = nodes.pop().expect("three");
    let first = nodes.pop().expect("three");
    (first, second, third)
}

/// `(id, name, raft role)` of every host, as `node` lists them.
pub fn roles(node: &Node) -> Vec<(u64, String, String)> {
    let nodes = cli_json(node, &node.token, &["node", "list"]);
    nodes["hosts"]
        .as_array()
        .expect("hosts")
        .iter()
        .map(|host| {
            (
                host["id"].as_u64().expect("id"),
                host["name"].as_str().expect("name").to_string(),
                host["role"].as_str().expect("role").to_string(),
            )
        })
        .collect()
}

/// Waits until `node` sees `count` members, one of them leader.
pub fn wait_for_members(node: &Node, count: usize) -> Vec<(u64, String, String)> {
    wait_until("every host sees the members", SETTLE, || {
        let roles = roles(node);
        let leaders = roles.iter().filter(|(_, _, r)| r == "leader").count();
        let voters = roles.iter().filter(|(_, _, r)| r == "voter").count();
        (roles.len() == count && leaders == 1 && voters == count - 1).then_some(roles)
    })
}

/// `tenant`'s `app`: its instances per host name, as `node` reports them.
pub fn placed(node: &Node, tenant: &str, app: &str) -> std::collections::BTreeMap<String, u64> {
    let status = cli_json(node, &node.token, &["status", app, "--tenant", tenant]);
    status["placement"]
        .as_array()
        .map(|hosts| {
            hosts
                .iter()
                .map(|p| {
                    (
                        p["name"].as_str().expect("name").to_string(),
                        p["instances"].as_u64().expect("instances"),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}
