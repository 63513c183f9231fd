//! The platform on one node, end to end: bad input gets a clear error and
//! changes nothing; racing deploys lose no version; a node killed with
//! SIGKILL in the middle of a deploy comes back consistent.

mod common;

use cloudware_test_artifacts::{HELLO, HOSTILE, WASIP2_HELLO};
use common::{
    CLI_TIMEOUT, Node, Running, admin_request, cli, cli_command, cli_json, cli_ok, create_token,
    file_names, gateway_get, last_line, push_and_deploy, sha256_digest, verified_package_digests,
    wait_until,
};
use serde_json::Value;
use std::io::{Read, Write};
use std::net::{Shutdown, TcpStream};
use std::time::{Duration, Instant};

const HELLO_TEXT: &str = "Hello from Cloudware!\n";
const WASIP2_TEXT: &str = "Hello from wasip2!\n";

/// (version, status, current) of each version of `app` of `tenant`.
fn history(node: &Node, tenant: &str, app: &str) -> Vec<(u64, String, bool)> {
    cli_json(node, &node.token, &["history", app, "--tenant", tenant])
        .as_array()
        .expect("a list")
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

/// The digests `packages` lists for `tenant`, sorted.
fn listed_packages(node: &Node, tenant: &str) -> Vec<String> {
    let mut digests: Vec<String> = cli_json(node, &node.token, &["packages", "--tenant", tenant])
        .as_array()
        .expect("a list")
        .iter()
        .map(|p| p["digest"].as_str().expect("digest").to_string())
        .collect();
    digests.sort();
    digests
}

/// Asserts a raw admin reply is a 400 whose JSON message contains `phrase`.
fn assert_bad_request(reply: &common::Reply, phrase: &str) {
    assert_eq!(reply.status, 400, "{}", reply.text());
    let body: Value = serde_json::from_str(&reply.text()).expect("JSON error body");
    assert_eq!(body["error"]["code"], "bad_request", "{body}");
    let message = body["error"]["message"].as_str().expect("message");
    assert!(message.contains(phrase), "{message:?} lacks {phrase:?}");
}

/// Opens a raw `POST /v1/packages` announcing `declared` bytes and sends
/// only `sent` of them; the connection stays open.
fn start_partial_upload(node: &Node, declared: usize, sent: &[u8]) -> TcpStream {
    let mut stream = TcpStream::connect(node.admin).expect("connect to the admin API");
    let head = format!(
        "POST /v1/packages?tenant=acme HTTP/1.1\r\nhost: {}\r\nauthorization: Bearer {}\r\n\
         content-type: application/wasm\r\ncontent-length: {declared}\r\n\r\n",
        node.admin, node.token
    );
    stream.write_all(head.as_bytes()).expect("send the head");
    stream.write_all(sent).expect("send part of the body");
    stream.flush().expect("flush");
    stream
}

/// Waits until the package store holds no temporary upload file.
fn wait_for_no_temp_files(node: &Node) {
    let dir = node.packages_dir();
    wait_until(
        "temporary upload files to be removed",
        Duration::from_secs(10),
        || {
            file_names(&dir)
                .iter()
                .all(|name| !name.starts_with(".upload-"))
                .then_some(())
        },
    );
}

#[test]
fn malformed_requests_unknown_packages_and_bad_scales_are_refused_and_change_nothing() {
    let node = Node::start(&[]);
    let op = node.token.clone();
    cli_ok(&node, &op, &["tenant", "create", "acme"]);
    let digest = push_and_deploy(&node, &op, "acme", HELLO, "web", "/");
    let before = history(&node, "acme", "web");
    assert_eq!(before.len(), 1);
    let post = |path: &str, body: &str| admin_request(&node, "POST", path, Some(&op), Some(body));

    // Malformed JSON, unknown fields and wrong types: 400s naming the problem.
    let deployments = "/v1/apps/web/deployments?tenant=acme";
    assert_bad_request(&post(deployments, r#"{"package": "#), "EOF");
    assert_bad_request(&post(deployments, "not json at all"), "expected");
    let unknown = format!(r#"{{"package":"{digest}","routes":["/"],"replicas":3}}"#);
    assert_bad_request(&post(deployments, &unknown), "unknown field `replicas`");
    assert_bad_request(
        &post(deployments, r#"{"package":5,"routes":["/"]}"#),
        "invalid type",
    );
    assert_bad_request(
        &post(deployments, &format!(r#"{{"package":"{digest}"}}"#)),
        "missing field `routes`",
    );
    assert_bad_request(&post("/v1/tenants", r#"{"name":"#), "EOF");
    assert_bad_request(
        &post("/v1/tenants", r#"{"name":"gamma","plan":"gold"}"#),
        "unknown field `plan`",
    );
    assert_bad_request(
        &admin_request(
            &node,
            "PUT",
            "/v1/apps/web/scale?tenant=acme&colour=red",
            Some(&op),
            Some(r#"{"instances":2}"#),
        ),
        "unknown field `colour`",
    );
    assert_eq!(history(&node, "acme", "web"), before);
    let tenants = cli_json(&node, &op, &["tenant", "list"]);
    assert_eq!(tenants.as_array().map(Vec::len), Some(1), "{tenants}");

    // A digest nobody pushed: not found, for an existing app and a new one.
    let unknown_digest = format!("sha256:{}", "0".repeat(64));
    for app in ["web", "newapp"] {
        let (code, _, stderr) = cli(
            &node,
            &op,
            &[
                "deploy",
                app,
                "--tenant",
                "acme",
                "--package",
                &unknown_digest,
                "--route",
                "/other",
            ],
        );
        assert_eq!(code, 4, "{app}: {stderr}");
        assert!(stderr.contains(&unknown_digest), "{stderr}");
    }
    assert_eq!(history(&node, "acme", "web"), before);
    let (code, _, _) = cli(&node, &op, &["history", "newapp", "--tenant", "acme"]);
    assert_eq!(code, 4, "the refused deploy created no app");

    // Scales: a negative count is a usage error, over 1000 a rejection.
    let (code, _, stderr) = cli(
        &node,
        &op,
        &["scale", "web", "--tenant", "acme", "--instances", "-1"],
    );
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("-1"), "{stderr}");
    let (code, _, stderr) = cli(
        &node,
        &op,
        &["scale", "web", "--tenant", "acme", "--instances", "5000"],
    );
    assert_eq!(code, 5, "{stderr}");
    assert!(
        stderr.contains("5000") && stderr.contains("1000"),
        "{stderr}"
    );
    let (code, _, stderr) = cli(
        &node,
        &op,
        &["scale", "nosuchapp", "--tenant", "acme", "--instances", "2"],
    );
    assert_eq!(code, 4, "{stderr}");
    let status = cli_json(&node, &op, &["status", "web", "--tenant", "acme"]);
    assert_eq!(status["instances"], 16, "unchanged: {status}");
    assert_eq!(history(&node, "acme", "web"), before);
    let reply = gateway_get(&node, "example.test", "/");
    assert_eq!(reply.text(), HELLO_TEXT);
}

#[test]
fn rejected_uploads_store_nothing() {
    let node = Node::start(&["--max-package-size", "100KiB"]);
    let op = node.token.clone();
    cli_ok(&node, &op, &["tenant", "create", "acme"]);
    // HOSTILE (~64 KiB) fits under the cap; HELLO (~144 KiB) does not.
    let hostile =
        last_line(&cli_ok(&node, &op, &["push", HOSTILE, "--tenant", "acme"])).to_string();
    let stored = verified_package_digests(&node.packages_dir());
    assert_eq!(stored, std::slice::from_ref(&hostile));
    assert_eq!(listed_packages(&node, "acme"), stored);
    let unchanged = |what: &str| {
        wait_for_no_temp_files(&node);
        assert_eq!(
            verified_package_digests(&node.packages_dir()),
            stored,
            "{what} left a file behind"
        );
        assert_eq!(
            listed_packages(&node, "acme"),
            stored,
            "{what} was registered"
        );
    };

    // Over the size cap.
    let hello_size = std::fs::metadata(HELLO).expect("HELLO").len();
    assert!(hello_size > 100 * 1024, "HELLO is {hello_size} bytes");
    let (code, _, stderr) = cli(&node, &op, &["push", HELLO, "--tenant", "acme"]);
    assert_eq!(code, 5, "{stderr}");
    assert!(
        stderr.contains("size limit") && stderr.contains(&(100 * 1024).to_string()),
        "{stderr}"
    );
    unchanged("an oversize upload");

    // Truncated: the client announces 100000 bytes, sends 4 KiB and stops.
    let bytes = std::fs::read(HELLO).expect("HELLO");
    let mut stream = start_partial_upload(&node, 100_000, &bytes[..4096]);
    stream.shutdown(Shutdown::Write).expect("half-close");
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    let mut answer = Vec::new();
    let _ = stream.read_to_end(&mut answer);
    let answer = String::from_utf8_lossy(&answer);
    assert!(
        answer.starts_with("HTTP/1.1 400") && answer.contains(r#""code":"bad_request""#),
        "a truncated upload is a bad request: {answer:?}"
    );
    unchanged("a truncated upload");

    // Not components: the server says why (the CLI's own check only looks
    // at the first bytes).
    let dir = tempfile::tempdir().expect("dir");
    let core = dir.path().join("core.wasm");
    std::fs::write(&core, wat::parse_str("(module)").expect("wat")).expect("write");
    let (code, _, stderr) = cli(
        &node,
        &op,
        &["push", core.to_str().expect("utf-8"), "--tenant", "acme"],
    );
    assert_eq!(code, 5, "{stderr}");
    assert!(
        stderr.contains("rejected") && stderr.contains("not a component"),
        "{stderr}"
    );
    unchanged("a core module");
    let no_handler = dir.path().join("nohandler.wasm");
    let component = wat::parse_str(
        r#"(component
             (core module $m (func (export "run")))
             (core instance $i (instantiate $m))
             (func (export "run") (canon lift (core func $i "run"))))"#,
    )
    .expect("wat");
    std::fs::write(&no_handler, &component).expect("write");
    let (code, _, stderr) = cli(
        &node,
        &op,
        &[
            "push",
            no_handler.to_str().expect("utf-8"),
            "--tenant",
            "acme",
        ],
    );
    assert_eq!(code, 5, "{stderr}");
    assert!(
        stderr.contains("exports no interface a deployment can run"),
        "{stderr}"
    );
    unchanged("a component that exports no interface");
    // Raw bytes that are not WebAssembly at all, past the CLI's check.
    let reply = common::send_blocking(
        node.admin,
        http::Request::post("/v1/packages?tenant=acme")
            .header("host", node.admin.to_string())
            .header("authorization", format!("Bearer {op}"))
            .body(common::full(&b"just some text\n"[..]))
            .expect("request"),
    );
    assert_bad_request(&reply, "rejected");
    unchanged("a text file");

    // The node still takes good uploads.
    let (code, stdout, stderr) = cli(&node, &op, &["push", HOSTILE, "--tenant", "acme"]);
    assert_eq!(
        (code, last_line(&stdout)),
        (0, hostile.as_str()),
        "{stderr}"
    );
    assert!(stderr.contains("already stored"), "{stderr}");
}

#[test]
fn concurrent_deploys_of_one_app_lose_no_version() {
    let node = Node::start(&[]);
    let op = node.token.clone();
    cli_ok(&node, &op, &["tenant", "create", "acme"]);
    let (_, dev) = create_token(&node, Some("acme"), "developer");
    let hello = last_line(&cli_ok(&node, &dev, &["push", HELLO])).to_string();
    let wasip2 = last_line(&cli_ok(&node, &dev, &["push", WASIP2_HELLO])).to_string();
    cli_ok(
        &node,
        &dev,
        &["deploy", "web", "--package", &hello, "--route", "/"],
    );

    for round in 0..2u64 {
        let racers: Vec<Running> = [&hello, &wasip2]
            .into_iter()
            .map(|digest| {
                Running::spawn(cli_command(
                    &node,
                    &dev,
                    &[
                        "deploy",
                        "web",
                        "--package",
                        digest,
                        "--route",
                        "/",
                        "--output",
                        "json",
                    ],
                ))
            })
            .collect();
        let mut reported = Vec::new();
        for racer in racers {
            let (code, stdout, stderr) = racer.finish(CLI_TIMEOUT);
            assert_eq!(code, 0, "a racing deploy failed: {stderr}");
            let info: Value = serde_json::from_str(&stdout).expect("JSON");
            let status = info["status"].as_str().expect("status");
            assert!(
                status == "active" || status == "superseded",
                "racing deploy reported {status}: {info}"
            );
            reported.push(info["version"].as_u64().expect("version"));
        }
        reported.sort();
        let first = 2 + 2 * round;
        assert_eq!(
            reported,
            [first, first + 1],
            "each deploy got its own version"
        );

        let versions = history(&node, "acme", "web");
        let numbers: Vec<u64> = versions.iter().map(|v| v.0).collect();
        assert_eq!(numbers, (1..=first + 1).collect::<Vec<_>>(), "{versions:?}");
        let current: Vec<_> = versions.iter().filter(|v| v.2).collect();
        assert_eq!(current.len(), 1, "{versions:?}");
        assert_eq!(
            (current[0].0, current[0].1.as_str()),
            (first + 1, "active"),
            "the later version is current: {versions:?}"
        );
        for v in &versions[versions.len() - 2..] {
            assert!(v.1 == "active" || v.1 == "superseded", "{versions:?}");
        }
    }

    // The gateway serves what history says is current.
    let latest = cli_json(&node, &dev, &["history", "web"]);
    let current = latest
        .as_array()
        .expect("list")
        .iter()
        .find(|v| v["current"] == true)
        .expect("a current version");
    let expected = if current["package"] == hello.as_str() {
        HELLO_TEXT
    } else {
        WASIP2_TEXT
    };
    let reply = gateway_get(&node, "example.test", "/");
    assert_eq!(reply.text(), expected);
}

#[test]
fn a_node_killed_mid_deploy_comes_back_with_the_old_or_the_new_version() {
    // The node's request timeout bounds every probe: 3 s keeps the probe of
    // `/sleep` (which blocks for 60 s) pending about that long.
    let mut node = Node::start(&["--request-timeout", "3s"]);
    let op = node.token.clone();
    cli_ok(&node, &op, &["tenant", "create", "acme"]);
    let hello = last_line(&cli_ok(&node, &op, &["push", HELLO, "--tenant", "acme"])).to_string();
    let hostile =
        last_line(&cli_ok(&node, &op, &["push", HOSTILE, "--tenant", "acme"])).to_string();
    cli_ok(
        &node,
        &op,
        &[
            "deploy",
            "web",
            "--tenant",
            "acme",
            "--package",
            &hello,
            "--route",
            "/",
        ],
    );
    assert_eq!(gateway_get(&node, "example.test", "/").text(), HELLO_TEXT);

    // An upload in flight, holding a temporary file.
    let wasip2_bytes = std::fs::read(WASIP2_HELLO).expect("WASIP2_HELLO");
    let _upload = start_partial_upload(&node, wasip2_bytes.len(), &wasip2_bytes[..8192]);
    wait_until(
        "the partial upload to reach the package store",
        Duration::from_secs(10),
        || {
            file_names(&node.packages_dir())
                .iter()
                .any(|name| name.starts_with(".upload-"))
                .then_some(())
        },
    );
    // A deploy whose probe takes ~3 s.
    let deploying = Running::spawn(cli_command(
        &node,
        &op,
        &[
            "deploy",
            "web",
            "--tenant",
            "acme",
            "--package",
            &hostile,
            "--route",
            "/sleep",
            "--timeout",
            "3s",
        ],
    ));
    wait_until("version 2 to be pending", Duration::from_secs(10), || {
        let versions = history(&node, "acme", "web");
        (versions.len() == 2 && versions[1].1 == "pending").then_some(())
    });
    node.kill9();
    // The deploy lost its connection: had the probe already settled, it
    // would have reported that (exit 5) instead.
    let (code, _, stderr) = deploying.finish(Duration::from_secs(20));
    assert_eq!(code, 1, "{stderr}");
    assert!(!stderr.contains("health probe"), "{stderr}");

    node.restart();
    // Only complete packages, each matching its name; no temporary files.
    let on_disk = verified_package_digests(&node.packages_dir());
    let mut pushed = vec![hello.clone(), hostile.clone()];
    pushed.sort();
    assert_eq!(on_disk, pushed);
    assert_eq!(listed_packages(&node, "acme"), pushed);
    assert!(!on_disk.contains(&sha256_digest(&wasip2_bytes)));

    // History: both versions once each; version 1 is still current and
    // served whole (its package on its route); version 2 is settled as
    // failed by the restarted node, never made current.
    let versions = history(&node, "acme", "web");
    assert_eq!(
        versions.iter().map(|v| v.0).collect::<Vec<_>>(),
        [1, 2],
        "{versions:?}"
    );
    assert_eq!(versions[0], (1, "active".to_string(), true));
    assert!(!versions[1].2, "{versions:?}");
    wait_until(
        "the restarted node to serve version 1",
        Duration::from_secs(10),
        || {
            let reply = gateway_get(&node, "example.test", "/");
            (reply.status == 200 && reply.text() == HELLO_TEXT).then_some(())
        },
    );
    let reply = gateway_get(&node, "example.test", "/sleep");
    assert_eq!(
        (reply.status, reply.text().as_str()),
        (404, "not found\n"),
        "`/sleep` is answered by version 1's package, not version 2's"
    );
    let settled = wait_until(
        "version 2 to fail its probe",
        Duration::from_secs(20),
        || {
            let info = cli_json(&node, &op, &["history", "web", "--tenant", "acme"]);
            (info[1]["status"] == "failed").then(|| info[1].clone())
        },
    );
    let reason = settled["reason"].as_str().unwrap_or_default();
    assert!(reason.contains("health probe"), "{settled}");
    let versions = history(&node, "acme", "web");
    assert_eq!(versions.len(), 2, "{versions:?}");
    assert_eq!(versions[0], (1, "active".to_string(), true));

    // The node is not wedged: the next deploy is version 3 and goes live.
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
    assert_eq!(deployed["version"], 3, "{deployed}");
    assert_eq!(gateway_get(&node, "example.test", "/").text(), WASIP2_TEXT);
    verified_package_digests(&node.packages_dir());
}

#[test]
fn the_health_probe_runs_under_the_deployments_timeout() {
    let node = Node::start(&[]);
    let op = node.token.clone();
    cli_ok(&node, &op, &["tenant", "create", "acme"]);
    cli_ok(&node, &op, &["push", HOSTILE, "--tenant", "acme"]);
    let started = Instant::now();
    let (code, _, stderr) = cli(
        &node,
        &op,
        &[
            "deploy",
            "slow",
            "--tenant",
            "acme",
            "--package",
            HOSTILE,
            "--route",
            "/sleep",
            "--timeout",
            "2s",
        ],
    );
    let took = started.elapsed();
    assert_eq!(code, 5, "{stderr}");
    assert!(stderr.contains("within 2s"), "{stderr}");
    assert!(took < Duration::from_secs(15), "the deploy took {took:?}");
}
