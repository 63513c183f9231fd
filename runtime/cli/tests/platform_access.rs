//! The platform on one node, end to end: who may do what. Tokens and roles
//! through the real CLI (exit code 3 for every refusal), raw HTTP for the
//! error bodies, and tenants kept out of each other's hosts.

mod common;

use cloudware_test_artifacts::{HELLO, WASIP2_HELLO};
use common::{
    Node, admin_request, cli, cli_json, cli_ok, create_token, gateway_get, last_line,
    push_and_deploy,
};
use serde_json::Value;

const HELLO_TEXT: &str = "Hello from Cloudware!\n";

/// The number of versions of `app` of `tenant`, as the operator sees them.
fn version_count(node: &Node, tenant: &str, app: &str) -> usize {
    cli_json(node, &node.token, &["history", app, "--tenant", tenant])
        .as_array()
        .map_or(0, Vec::len)
}

/// Asserts a refused CLI call: exit 3 and `phrase` in its one-line error.
fn assert_refused(node: &Node, token: &str, args: &[&str], phrase: &str) {
    let (code, stdout, stderr) = cli(node, token, args);
    assert_eq!(
        code,
        3,
        "`cloudware {}`: stdout {stdout:?}, stderr {stderr:?}",
        args.join(" ")
    );
    assert!(
        stderr.starts_with("error: ") && stderr.contains(phrase),
        "`cloudware {}`: {stderr:?} lacks {phrase:?}",
        args.join(" ")
    );
    assert_eq!(stdout, "", "a refused call prints no result");
}

/// Asserts a raw admin reply is `status` with a JSON error body of `code`.
fn assert_error_body(reply: &common::Reply, status: u16, code: &str) -> String {
    assert_eq!(reply.status, status, "{}", reply.text());
    let body: Value = serde_json::from_str(&reply.text())
        .unwrap_or_else(|err| panic!("error body is not JSON ({err}): {}", reply.text()));
    assert_eq!(body["error"]["code"], code, "{body}");
    let message = body["error"]["message"]
        .as_str()
        .expect("a message")
        .to_string();
    assert!(!message.is_empty());
    message
}

#[test]
fn roles_and_tenants_decide_what_a_token_may_do() {
    let node = Node::start(&[]);
    let op = node.token.clone();
    cli_ok(&node, &op, &["tenant", "create", "acme"]);
    cli_ok(&node, &op, &["tenant", "create", "beta"]);
    let digest = push_and_deploy(&node, &op, "acme", HELLO, "web", "/");
    let (_, viewer) = create_token(&node, Some("acme"), "viewer");
    let (_, builder) = create_token(&node, Some("acme"), "site-builder");
    let (_, acme_dev) = create_token(&node, Some("acme"), "developer");
    let (_, beta_dev) = create_token(&node, Some("beta"), "developer");
    let deploy_web = ["deploy", "web", "--package", &digest, "--route", "/"];

    // No token at all: refused before anything is sent, with a hint.
    for args in [&["status"][..], &["apps"], &deploy_web] {
        assert_refused(&node, "", args, "no token: set CLOUDWARE_TOKEN");
    }

    // A viewer (and a site builder) reads its tenant but changes nothing.
    for token in [&viewer, &builder] {
        let status = cli_json(&node, token, &["status", "web"]);
        assert_eq!(
            (&status["app"], &status["tenant"]),
            (&Value::from("web"), &Value::from("acme"))
        );
        let history = cli_json(&node, token, &["history", "web"]);
        assert_eq!(history[0]["version"], 1, "{history}");
        cli_ok(&node, token, &["apps"]);
        cli_ok(&node, token, &["packages"]);
    }
    assert_refused(
        &node,
        &viewer,
        &deploy_web,
        "a viewer token may not change apps",
    );
    assert_refused(
        &node,
        &builder,
        &deploy_web,
        "a site-builder token may not change apps",
    );
    assert_refused(
        &node,
        &viewer,
        &["push", WASIP2_HELLO],
        "may not change apps",
    );
    // Refused before a byte is stored, yet the whole upload is read: the
    // client gets the refusal, not a broken pipe halfway through 8 MiB.
    let junk_dir = tempfile::tempdir().expect("temp dir");
    let junk = junk_dir.path().join("large.wasm");
    let mut bytes = b"\0asm\x0d\0\x01\0".to_vec(); // a component's header, then junk
    bytes.resize(8 << 20, 0x5a);
    std::fs::write(&junk, bytes).expect("write the upload");
    let junk = junk.to_str().expect("utf-8 path");
    for _ in 0..3 {
        assert_refused(&node, &viewer, &["push", junk], "may not change apps");
    }
    assert_refused(&node, &viewer, &["rollback", "web"], "may not change apps");
    assert_refused(
        &node,
        &viewer,
        &["scale", "web", "--instances", "2"],
        "may not change apps",
    );
    // Nor may a developer administer the platform.
    assert_refused(
        &node,
        &acme_dev,
        &["tenant", "create", "gamma"],
        "a developer token may not administer the platform",
    );
    assert_refused(
        &node,
        &acme_dev,
        &["token", "create", "--tenant", "acme", "--role", "operator"],
        "may not administer",
    );
    assert_refused(&node, &acme_dev, &["token", "list"], "may not administer");

    // Another tenant's developer can neither read nor change acme's app,
    // and does not see it as its own.
    assert_refused(
        &node,
        &beta_dev,
        &["history", "web", "--tenant", "acme"],
        "only act on its own tenant",
    );
    assert_refused(
        &node,
        &beta_dev,
        &["status", "web", "--tenant", "acme"],
        "only act on its own tenant",
    );
    let mut beta_deploy = deploy_web.to_vec();
    beta_deploy.extend(["--tenant", "acme"]);
    assert_refused(&node, &beta_dev, &beta_deploy, "only act on its own tenant");
    assert_refused(
        &node,
        &beta_dev,
        &["rollback", "web", "--tenant", "acme"],
        "only act on its own tenant",
    );
    let (code, _, stderr) = cli(&node, &beta_dev, &["history", "web"]);
    assert_eq!(code, 4, "beta has no app `web`: {stderr}");
    assert_eq!(cli_json(&node, &beta_dev, &["apps"]), Value::Array(vec![]));
    assert_eq!(
        cli_json(&node, &beta_dev, &["packages"]),
        Value::Array(vec![])
    );

    // None of the refusals changed anything.
    assert_eq!(version_count(&node, "acme", "web"), 1);
    let status = cli_json(&node, &op, &["status", "web", "--tenant", "acme"]);
    assert_eq!(status["instances"], 16, "{status}");
    assert_eq!(
        cli_json(&node, &op, &["tenant", "list"])
            .as_array()
            .map(Vec::len),
        Some(2)
    );
    let reply = gateway_get(&node, "example.test", "/");
    assert_eq!(reply.text(), HELLO_TEXT);

    // A revoked token stops working at once; the others keep working.
    let (id, doomed) = create_token(&node, Some("acme"), "developer");
    cli_ok(&node, &doomed, &["apps"]);
    let stdout = cli_ok(&node, &op, &["token", "revoke", &id]);
    assert_eq!(stdout, format!("revoked {id}\n"));
    assert_refused(&node, &doomed, &["apps"], "unknown or revoked token");
    assert_refused(&node, &doomed, &deploy_web, "unknown or revoked token");
    let tokens = cli_json(&node, &op, &["token", "list"]);
    let listed = tokens
        .as_array()
        .expect("list")
        .iter()
        .find(|t| t["id"] == id.as_str())
        .expect("the revoked token is listed");
    assert_eq!(listed["revoked"], true);
    assert!(
        !tokens.to_string().contains(&doomed),
        "token list never shows secrets"
    );
    cli_ok(&node, &acme_dev, &["apps"]);

    // Raw HTTP: every refusal is a JSON error body.
    let reply = admin_request(&node, "GET", "/v1/apps", Some("cw_garbage"), None);
    assert_error_body(&reply, 401, "unauthorized");
    let reply = admin_request(&node, "GET", "/v1/apps", None, None);
    let message = assert_error_body(&reply, 401, "unauthorized");
    assert!(message.contains("Bearer"), "{message}");
    let reply = admin_request(&node, "GET", "/v1/apps", Some(&doomed), None);
    assert_error_body(&reply, 401, "unauthorized");
    let reply = admin_request(
        &node,
        "GET",
        "/v1/apps/web/deployments?tenant=acme",
        Some(&beta_dev),
        None,
    );
    assert_error_body(&reply, 403, "forbidden");
    let reply = admin_request(
        &node,
        "POST",
        "/v1/tenants",
        Some(&viewer),
        Some(r#"{"name":"gamma"}"#),
    );
    assert_error_body(&reply, 403, "forbidden");
}

#[test]
fn a_tenant_cannot_route_hosts_another_tenant_owns() {
    let node = Node::start(&[]);
    let op = node.token.clone();
    cli_ok(&node, &op, &["tenant", "create", "acme"]);
    cli_ok(&node, &op, &["tenant", "create", "beta"]);
    let (_, acme) = create_token(&node, Some("acme"), "developer");
    let (_, beta) = create_token(&node, Some("beta"), "developer");
    // The app's name appears nowhere in the host, so a message naming it
    // would stand out.
    cli_ok(
        &node,
        &acme,
        &[
            "deploy",
            "storefront",
            "--package",
            HELLO,
            "--route",
            "shop.acme.test/",
        ],
    );
    let beta_digest = last_line(&cli_ok(&node, &beta, &["push", WASIP2_HELLO])).to_string();

    for (route, names) in [
        ("shop.acme.test/x", "shop.acme.test"),
        ("SHOP.acme.test/", "shop.acme.test"),
        ("*.acme.test/", "*.acme.test"),
        ("*.acme.test/api", "*.acme.test"),
    ] {
        let (code, stdout, stderr) = cli(
            &node,
            &beta,
            &[
                "deploy",
                "steal",
                "--package",
                &beta_digest,
                "--route",
                route,
            ],
        );
        assert_eq!(code, 5, "{route}: stdout {stdout:?}, stderr {stderr:?}");
        assert!(
            stderr.contains(names),
            "{route}: {stderr:?} lacks {names:?}"
        );
        assert!(
            stderr.contains("another tenant"),
            "{route}: {stderr:?} says why"
        );
        assert!(
            !stderr.contains("storefront") && !stderr.contains("tenant `acme`"),
            "{route}: {stderr:?} leaks who owns the host"
        );
    }

    // Nothing changed: beta has no app, acme still serves its host alone.
    assert_eq!(cli_json(&node, &beta, &["apps"]), Value::Array(vec![]));
    let (code, _, _) = cli(&node, &beta, &["history", "steal"]);
    assert_eq!(code, 4);
    let reply = gateway_get(&node, "shop.acme.test", "/");
    assert_eq!((reply.status, reply.text().as_str()), (200, HELLO_TEXT));
    let reply = gateway_get(&node, "shop.acme.test", "/x");
    assert_eq!(
        (reply.status, reply.text().as_str()),
        (404, "not found\n"),
        "acme's own app answers (with its own 404)"
    );

    // Beta routes hosts nobody owns, and acme may not take them either.
    cli_ok(
        &node,
        &beta,
        &[
            "deploy",
            "blog",
            "--package",
            &beta_digest,
            "--route",
            "beta.test/",
        ],
    );
    let reply = gateway_get(&node, "beta.test", "/");
    assert_eq!(reply.text(), "Hello from wasip2!\n");
    let (code, _, stderr) = cli(
        &node,
        &acme,
        &[
            "deploy",
            "storefront",
            "--package",
            HELLO,
            "--route",
            "beta.test/shop",
        ],
    );
    assert_eq!(code, 5, "{stderr}");
    assert!(
        stderr.contains("beta.test") && !stderr.contains("blog"),
        "{stderr}"
    );
    let history = cli_json(&node, &acme, &["history", "storefront"]);
    assert_eq!(history.as_array().map(Vec::len), Some(1), "{history}");
}
