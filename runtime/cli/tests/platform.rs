//! The platform on one node, end to end: a real `cloudware up` on loopback
//! driven by the real `cloudware` client commands (and raw HTTP where the
//! wire itself is under test).
//!
//! This file: first start and restart, the developer workflow (push, deploy,
//! history, rollback, scale), routing by host and path, and metrics.
//! Access control is in `platform_access.rs`, bad input and crashes in
//! `platform_bad_input.rs`.

mod common;

use cloudware_test_artifacts::{HELLO, WASIP2_HELLO};
use common::{
    Node, admin_request, cli, cli_json, cli_ok, create_token, gateway_get, gateway_get_with,
    last_line, push_and_deploy, sha256_digest, wait_until,
};
use serde_json::Value;
use std::os::unix::fs::PermissionsExt;
use std::time::{Duration, Instant};

const HELLO_TEXT: &str = "Hello from Cloudware!\n";
const WASIP2_TEXT: &str = "Hello from wasip2!\n";

/// (version, status, current) of each entry of a `history --output json`.
fn versions(history: &Value) -> Vec<(u64, String, bool)> {
    history
        .as_array()
        .unwrap_or_else(|| panic!("history is not a list: {history}"))
        .iter()
        .map(|v| {
            (
                v["version"].as_u64().expect("version"),
                v["status"].as_str().expect("status").to_string(),
                v["current"].as_bool().expect("current"),
            )
        })
        .collect()
}

fn active(version: u64, current: bool) -> (u64, String, bool) {
    (version, "active".to_string(), current)
}

/// Waits (at most 10 s) until the gateway answers `host` + `path` with 200
/// and `text`.
fn wait_for_text(node: &Node, host: &str, path: &str, text: &str) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let reply = gateway_get(node, host, path);
        if reply.status == 200 && reply.text() == text {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{host}{path} still answers {} {:?}, not {text:?}",
            reply.status,
            reply.text()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Asserts the gateway answers `host` + `path` with 200 and `text` now.
fn assert_serves(node: &Node, host: &str, path: &str, text: &str) {
    let reply = gateway_get(node, host, path);
    assert_eq!(
        (reply.status, reply.text().as_str()),
        (200, text),
        "GET {host}{path}"
    );
}

#[test]
fn the_first_start_prints_the_token_once_and_a_restart_keeps_everything() {
    let mut node = Node::start(&[]);

    // The token: printed once, first, and stored 0600 in admin.token.
    let printed = node
        .printed_token
        .clone()
        .expect("the first start prints the operator token");
    assert!(
        printed.starts_with("cw_") && printed.len() > 20,
        "{printed}"
    );
    let token_path = node.data_dir().join("admin.token");
    assert_eq!(
        std::fs::read_to_string(&token_path).expect("admin.token"),
        format!("{printed}\n")
    );
    let mode = std::fs::metadata(&token_path)
        .expect("metadata")
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600, "admin.token mode {mode:o}");
    assert_eq!(node.stdout_lines.len(), 3, "{:?}", node.stdout_lines);
    assert_eq!(
        node.stdout_lines[0],
        format!(
            "Operator token (shown once; also in {}): {printed}",
            token_path.display()
        )
    );
    assert_eq!(
        node.stdout_lines[1],
        format!("Gateway on http://{}/", node.gateway)
    );
    assert_eq!(
        node.stdout_lines[2],
        format!("Admin API on http://{}/", node.admin)
    );

    // The API describes itself and says it is healthy, without a token.
    let reply = admin_request(&node, "GET", "/openapi.json", None, None);
    assert_eq!(reply.status, 200, "{}", reply.text());
    let document: Value = serde_json::from_str(&reply.text()).expect("openapi.json is JSON");
    assert!(
        document["openapi"]
            .as_str()
            .is_some_and(|v| v.starts_with('3')),
        "{}",
        document["openapi"]
    );
    let deployments = &document["paths"]["/v1/apps/{app}/deployments"];
    assert!(
        deployments["post"].is_object() && deployments["get"].is_object(),
        "{deployments}"
    );
    let reply = admin_request(&node, "GET", "/v1/health", None, None);
    assert_eq!(reply.status, 200);
    let health: Value = serde_json::from_str(&reply.text()).expect("health JSON");
    assert_eq!(health["status"], "ok");

    // Some state: a tenant, a package, a deployed app.
    let op = node.token.clone();
    cli_ok(&node, &op, &["tenant", "create", "acme"]);
    let digest = push_and_deploy(&node, &op, "acme", HELLO, "web", "/");
    assert_serves(&node, "anything.test", "/", HELLO_TEXT);
    cli_ok(
        &node,
        &op,
        &["scale", "web", "--tenant", "acme", "--instances", "3"],
    );
    let (_, dev) = create_token(&node, Some("acme"), "developer");
    let (revoked_id, revoked) = create_token(&node, Some("acme"), "viewer");
    cli_ok(&node, &op, &["token", "revoke", &revoked_id]);

    // A clean restart on the same directory.
    node.restart();
    assert_eq!(node.printed_token, None, "{:?}", node.stdout_lines);
    assert!(
        node.stdout_lines.iter().all(|l| !l.contains("cw_")),
        "a restart prints no secret: {:?}",
        node.stdout_lines
    );
    assert_eq!(node.stdout_lines.len(), 2, "{:?}", node.stdout_lines);
    assert_eq!(node.token, printed, "admin.token is kept");

    // Everything survived: the token works, the tenant, package and app are
    // there, and the gateway serves the app.
    let tenants = cli_json(&node, &op, &["tenant", "list"]);
    let names: Vec<&str> = tenants
        .as_array()
        .expect("list")
        .iter()
        .filter_map(|t| t["name"].as_str())
        .collect();
    assert_eq!(names, ["acme"]);
    let packages = cli_json(&node, &op, &["packages", "--tenant", "acme"]);
    assert_eq!(packages[0]["digest"], digest.as_str(), "{packages}");
    let history = cli_json(&node, &op, &["history", "web", "--tenant", "acme"]);
    assert_eq!(versions(&history), [active(1, true)]);
    assert_eq!(history[0]["package"], digest.as_str());
    wait_for_text(&node, "anything.test", "/", HELLO_TEXT);
    let status = cli_json(&node, &dev, &["status", "web"]);
    assert_eq!(status["instances"], 3, "the scale survives: {status}");
    let (code, _, stderr) = cli(&node, &revoked, &["apps"]);
    assert_eq!(code, 3, "a revoked token stays revoked: {stderr}");

    // The restarted node takes writes, and versions go on from where they were.
    let deployed = cli_json(
        &node,
        &op,
        &[
            "deploy",
            "web",
            "--tenant",
            "acme",
            "--package",
            WASIP2_HELLO,
            "--route",
            "/",
        ],
    );
    assert_eq!(deployed["version"], 2, "{deployed}");
    assert_serves(&node, "anything.test", "/", WASIP2_TEXT);

    // A second restart keeps that too.
    node.restart();
    let history = cli_json(&node, &op, &["history", "web", "--tenant", "acme"]);
    assert_eq!(versions(&history), [active(1, false), active(2, true)]);
    wait_for_text(&node, "anything.test", "/", WASIP2_TEXT);
}

#[test]
fn a_restarted_node_serves_its_apps_as_soon_as_it_announces_the_gateway() {
    let mut node = Node::start(&[]);
    let op = node.token.clone();
    cli_ok(&node, &op, &["tenant", "create", "acme"]);
    cli_ok(
        &node,
        &op,
        &[
            "deploy",
            "web",
            "--tenant",
            "acme",
            "--package",
            HELLO,
            "--route",
            "/",
        ],
    );
    for _ in 0..3 {
        node.restart();
        // The very first request after the announcement.
        assert_serves(&node, "anything.test", "/", HELLO_TEXT);
    }
}

#[test]
fn the_developer_workflow_push_deploy_history_rollback_scale() {
    let node = Node::start(&[]);
    let op = node.token.clone();
    cli_ok(&node, &op, &["tenant", "create", "acme"]);
    let (_, dev) = create_token(&node, Some("acme"), "developer");

    // Push: the digest is the sha256 of the file, printed last.
    let (code, stdout, stderr) = cli(&node, &dev, &["push", HELLO]);
    assert_eq!(code, 0, "{stderr}");
    let digest = last_line(&stdout).to_string();
    assert_eq!(
        digest,
        sha256_digest(&std::fs::read(HELLO).expect("read HELLO"))
    );
    assert!(stderr.contains("stored"), "{stderr}");
    assert!(!stderr.contains("already stored"), "{stderr}");
    // The same bytes again: the same digest, and nothing new.
    let (code, stdout, stderr) = cli(&node, &dev, &["push", HELLO]);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(last_line(&stdout), digest);
    assert!(stderr.contains("already stored"), "{stderr}");
    let packages = cli_json(&node, &dev, &["packages"]);
    assert_eq!(packages.as_array().map(Vec::len), Some(1), "{packages}");

    // Deploy by digest, then a new version from a file.
    let deployed = cli_json(
        &node,
        &dev,
        &["deploy", "web", "--package", &digest, "--route", "/"],
    );
    assert_eq!(
        (
            &deployed["version"],
            &deployed["status"],
            &deployed["current"]
        ),
        (&Value::from(1), &Value::from("active"), &Value::from(true)),
        "{deployed}"
    );
    assert_serves(&node, "example.test", "/", HELLO_TEXT);
    let stdout = cli_ok(
        &node,
        &dev,
        &["deploy", "web", "--package", WASIP2_HELLO, "--route", "/"],
    );
    assert!(stdout.contains("web version 2 is live"), "{stdout}");
    assert_serves(&node, "example.test", "/", WASIP2_TEXT);
    let wasip2_digest = sha256_digest(&std::fs::read(WASIP2_HELLO).expect("read"));

    let history = cli_json(&node, &dev, &["history", "web"]);
    assert_eq!(versions(&history), [active(1, false), active(2, true)]);
    assert_eq!(history[0]["package"], digest.as_str());
    assert_eq!(history[1]["package"], wasip2_digest.as_str());
    assert_eq!(history[1]["routes"], serde_json::json!(["/"]));
    assert_eq!(history[1]["tenant"], "acme");

    // Roll back to the previous version, then forward to 2 again.
    let stdout = cli_ok(&node, &dev, &["rollback", "web"]);
    assert!(stdout.contains("web version 1 is current"), "{stdout}");
    assert_serves(&node, "example.test", "/", HELLO_TEXT);
    let history = cli_json(&node, &dev, &["history", "web"]);
    assert_eq!(versions(&history), [active(1, true), active(2, false)]);
    let rolled = cli_json(&node, &dev, &["rollback", "web", "--to", "2"]);
    assert_eq!(rolled["version"], 2, "{rolled}");
    assert_serves(&node, "example.test", "/", WASIP2_TEXT);
    // Rolling back to the current version is refused and changes nothing.
    let (code, _, stderr) = cli(&node, &dev, &["rollback", "web", "--to", "2"]);
    assert_eq!(code, 5, "{stderr}");
    assert_serves(&node, "example.test", "/", WASIP2_TEXT);

    // Scale: takes effect and shows in status.
    let scaled = cli_json(&node, &dev, &["scale", "web", "--instances", "3"]);
    assert_eq!(scaled["instances"], 3, "{scaled}");
    let status = cli_json(&node, &dev, &["status", "web"]);
    assert_eq!(
        (&status["app"], &status["instances"], &status["version"]),
        (&Value::from("web"), &Value::from(3), &Value::from(2)),
        "{status}"
    );
    let all = cli_json(&node, &dev, &["status"]);
    assert_eq!(all[0]["instances"], 3, "{all}");
    // Scaling is not a new version.
    let history = cli_json(&node, &dev, &["history", "web"]);
    assert_eq!(history.as_array().map(Vec::len), Some(2));
    assert_serves(&node, "example.test", "/", WASIP2_TEXT);

    // `apps` shows the app at its current version.
    let apps = cli_json(&node, &dev, &["apps"]);
    assert_eq!(apps.as_array().map(Vec::len), Some(1), "{apps}");
    assert_eq!(
        (&apps[0]["app"], &apps[0]["version"]),
        (&Value::from("web"), &Value::from(2))
    );
}

#[test]
fn requests_are_routed_by_host_and_longest_path_prefix() {
    let node = Node::start(&[]);
    let op = node.token.clone();
    cli_ok(&node, &op, &["tenant", "create", "acme"]);
    let (_, dev) = create_token(&node, Some("acme"), "developer");
    let deploy = |app: &str, package: &str, route: &str| {
        cli_ok(
            &node,
            &dev,
            &["deploy", app, "--package", package, "--route", route],
        );
    };
    // HELLO answers `/` with its text and anything else with its own 404;
    // WASIP2_HELLO echoes an `x-echo` request header on every answer, which
    // tells the two apart whatever the path.
    deploy("site", HELLO, "a.example.test/");
    deploy("api", WASIP2_HELLO, "a.example.test/api");
    deploy("wild", WASIP2_HELLO, "*.wild.test/");
    deploy("exact", HELLO, "exact.wild.test/");

    let answered_by = |host: &str, path: &str| -> &'static str {
        let reply = gateway_get_with(&node, host, path, &[("x-echo", "marker")]);
        let text = reply.text();
        if text.contains("no app is deployed") {
            assert_eq!(reply.status, 404, "{host}{path}: {text}");
            "nobody"
        } else if reply.headers.get("x-echo").is_some_and(|v| v == "marker") {
            "wasip2"
        } else {
            "hello"
        }
    };

    // Longest prefix on segment boundaries.
    assert_eq!(answered_by("a.example.test", "/api/x"), "wasip2");
    assert_eq!(answered_by("a.example.test", "/api"), "wasip2");
    assert_eq!(answered_by("a.example.test", "/apix"), "hello");
    assert_eq!(answered_by("a.example.test", "/"), "hello");
    assert_serves(&node, "a.example.test", "/", HELLO_TEXT);
    // Host matching ignores case and port.
    assert_eq!(answered_by("A.Example.TEST:8080", "/api/y"), "wasip2");
    assert_serves(&node, "A.EXAMPLE.test:1234", "/", HELLO_TEXT);

    // Wildcards cover subdomains at any depth, not the domain itself; an
    // exact host beats the wildcard.
    assert_serves(&node, "x.wild.test", "/", WASIP2_TEXT);
    assert_serves(&node, "y.z.wild.test", "/", WASIP2_TEXT);
    assert_serves(&node, "exact.wild.test", "/", HELLO_TEXT);
    assert_eq!(answered_by("wild.test", "/"), "nobody");

    // No host-less route: an unrouted host gets the gateway's 404.
    let reply = gateway_get(&node, "nobody.test", "/some/where");
    assert_eq!(reply.status, 404);
    assert!(
        reply
            .text()
            .contains("no app is deployed at nobody.test/some/where"),
        "{}",
        reply.text()
    );

    // A host-less route takes unowned hosts, never owned ones.
    deploy("fallback", WASIP2_HELLO, "/");
    assert_serves(&node, "nobody.test", "/", WASIP2_TEXT);
    assert_serves(&node, "wild.test", "/", WASIP2_TEXT);
    assert_eq!(answered_by("a.example.test", "/apix"), "hello");
    assert_serves(&node, "exact.wild.test", "/", HELLO_TEXT);
}

#[test]
fn metrics_count_an_apps_requests_for_operators_only() {
    let node = Node::start(&[]);
    let op = node.token.clone();
    cli_ok(&node, &op, &["tenant", "create", "acme"]);
    let (_, dev) = create_token(&node, Some("acme"), "developer");
    cli_ok(
        &node,
        &dev,
        &[
            "deploy",
            "web",
            "--package",
            HELLO,
            "--route",
            "metrics.test/",
        ],
    );
    const SENT: u64 = 7;
    for _ in 0..SENT {
        assert_serves(&node, "metrics.test", "/", HELLO_TEXT);
    }
    let reply = gateway_get(&node, "metrics.test", "/missing");
    assert_eq!(reply.status, 404, "the app's own 404");

    // The gateway records a request as its answer completes: allow a moment.
    let series = r#"cloudware_app_requests_total{tenant="acme",app="web"} "#;
    let mut last = String::new();
    let count = wait_until(
        &format!("{series:?} to count {} requests", SENT + 1),
        Duration::from_secs(5),
        || {
            let reply = admin_request(&node, "GET", "/metrics", Some(&op), None);
            assert_eq!(reply.status, 200, "{}", reply.text());
            last = reply.text();
            let count: u64 = last
                .lines()
                .find_map(|line| line.strip_prefix(series))?
                .trim()
                .parse()
                .expect("a count");
            (count > SENT).then_some(count)
        },
    );
    assert!(count <= SENT + 1, "{count} counted, {} sent", SENT + 1);

    // Metrics are node-wide: not for tenant tokens, not without a token.
    let reply = admin_request(&node, "GET", "/metrics", Some(&dev), None);
    assert_eq!(reply.status, 403, "{}", reply.text());
    let error: Value = serde_json::from_str(&reply.text()).expect("JSON error");
    assert_eq!(error["error"]["code"], "forbidden");
    assert!(!reply.text().contains("cloudware_app_requests_total"));
    let reply = admin_request(&node, "GET", "/metrics", None, None);
    assert_eq!(reply.status, 401);
}
