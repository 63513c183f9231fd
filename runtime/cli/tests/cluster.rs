//! Many hosts, one platform: three real `cloudware up --cluster-listen`
//! processes on loopback form a cluster over TLS, and what one host is told
//! every host does.

mod common;

use cloudware_test_artifacts::HELLO;
use common::{Node, cli, cli_json, cli_ok, gateway_get, push_and_deploy, wait_until};
use serde_json::Value;
use std::time::Duration;

const HELLO_TEXT: &str = "Hello from Cloudware!\n";
/// Bound for the cluster to agree on something (membership, a deploy).
const SETTLE: Duration = Duration::from_secs(60);

/// The value after `prefix` on the line of `node`'s start output that has it.
fn printed(node: &Node, prefix: &str) -> String {
    node.stdout_lines
        .iter()
        .find_map(|line| line.strip_prefix(prefix))
        .unwrap_or_else(|| panic!("no {prefix:?} line in {:?}", node.stdout_lines))
        .trim()
        .to_string()
}

/// The founder and two hosts that joined it; every host answers the admin
/// API with the founder's operator token.
fn three_hosts() -> (Node, Node, Node) {
    let founder = Node::start(&["--cluster-listen", "127.0.0.1:0", "--name", "alpha"]);
    let line = printed(&founder, "Founded a cluster. Join token ");
    let token = line.rsplit(' ').next().expect("token").to_string();
    assert!(token.starts_with("cwjoin1."), "{line}");
    let cluster = printed(&founder, "Cluster host 1 on ");
    let join = |name: &str| {
        let mut host = Node::start(&[
            "--cluster-listen",
            "127.0.0.1:0",
            "--name",
            name,
            "--join",
            &cluster,
            "--join-token",
            &token,
        ]);
        assert!(
            host.printed_token.is_none(),
            "a joining host creates no operator token"
        );
        host.token = founder.token.clone();
        host
    };
    let second = join("beta");
    let third = join("gamma");
    (founder, second, third)
}

fn roles(node: &Node) -> Vec<(u64, String, String)> {
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

#[test]
fn three_hosts_form_a_cluster_and_a_deploy_on_one_serves_from_all() {
    let (a, b, c) = three_hosts();
    let hosts = [&a, &b, &c];

    // Every host knows all three, one leader and two voters.
    for host in hosts {
        let seen = wait_until("every host sees three members", SETTLE, || {
            let roles = roles(host);
            let leaders = roles.iter().filter(|(_, _, r)| r == "leader").count();
            let voters = roles.iter().filter(|(_, _, r)| r == "voter").count();
            (roles.len() == 3 && leaders == 1 && voters == 2).then_some(roles)
        });
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
