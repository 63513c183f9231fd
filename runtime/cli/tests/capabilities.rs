//! The platform's capabilities end to end, through the example components
//! of `cloudware-examples/` (written with the SDK) on a real `cloudware up`
//! driven by the real `cloudware` client commands: key-value, config and
//! secrets, linked services and outbound HTTP. Every capability is denied
//! unless granted at deploy. Queues and topics are in `messaging.rs`.

mod common;

use cloudware_test_artifacts::{
    CONFIG_GREETING, HELLO, KV_COUNTER, ORDERS_CLIENT, ORDERS_SERVICE, OUTBOUND_FETCH,
};
use common::capabilities::{assert_refused, assert_reply};
use common::{
    Node, Reply, admin_request, cli_json, cli_ok, deploy_ok, files_under, gateway_get,
    gateway_send, tenant_developer, wait_until,
};
use serde_json::{Value, json};
use std::time::Duration;

#[test]
fn kv_counter_counts_across_requests_and_a_bucket_must_be_granted() {
    let node = Node::start(&[]);
    let dev = tenant_developer(&node, "acme");
    deploy_ok(
        &node,
        &dev,
        "counter",
        KV_COUNTER,
        &["--route", "/counter", "--kv-bucket", "counters"],
    );

    // Each request is a fresh instance: the count lives in the bucket.
    for expected in 1..=3 {
        let reply = gateway_get(&node, "any.test", "/counter/home");
        assert_reply(&reply, 200, "GET /counter/home");
        assert_eq!(reply.text(), format!("/counter/home {expected}\n"));
    }
    let reply = gateway_get(&node, "any.test", "/counter/about");
    assert_eq!(reply.text(), "/counter/about 1\n");
    // Peeking does not count; the health probe of the deploy did not either.
    let reply = gateway_get(&node, "any.test", "/counter/home?peek=1");
    assert_eq!(reply.text(), "/counter/home 3\n");
    let reply = gateway_get(&node, "any.test", "/counter?peek=1");
    assert_eq!(reply.text(), "/counter 0\n");

    // The same package without the grant is refused, naming the interface,
    // and nothing of it is deployed.
    assert_refused(
        &node,
        &dev,
        "uncounted",
        KV_COUNTER,
        &["--route", "/uncounted"],
        "wasi:keyvalue/store@0.2.0-draft",
    );
    let reply = gateway_get(&node, "any.test", "/uncounted/x");
    assert_eq!(reply.status, 404, "{}", reply.text());
    // The refusal changed nothing for the granted app.
    let reply = gateway_get(&node, "any.test", "/counter/home");
    assert_eq!(reply.text(), "/counter/home 4\n");
}

#[test]
fn config_greeting_sees_config_and_secret_which_never_leak() {
    let node = Node::start(&[]);
    let dev = tenant_developer(&node, "acme");
    let secret = format!("s3cr3t-{}-{}", std::process::id(), node.admin.port());
    let secret_arg = format!("api_key={secret}");
    let deployed = cli_json(
        &node,
        &dev,
        &[
            "deploy",
            "greeting",
            "--package",
            CONFIG_GREETING,
            "--route",
            "/greet",
            "--config",
            "greeting=Bonjour",
            "--secret",
            &secret_arg,
        ],
    );
    assert_eq!(deployed["status"], "active", "{deployed}");

    let reply = gateway_get(&node, "any.test", "/greet");
    assert_reply(&reply, 200, "GET /greet");
    assert_eq!(
        reply.text(),
        format!("Bonjour, world!\napi_key: set ({} bytes)\n", secret.len())
    );
    // The guest's log line (wasi:logging) reached the node's log.
    wait_until("the guest's log line", Duration::from_secs(5), || {
        node.stderr().contains("greeting with").then_some(())
    });

    // Nothing the platform shows back holds the secret: CLI (text and
    // JSON), raw API answers, the node's log, the files of its data dir.
    let mut shown = vec![deployed.to_string()];
    for args in [
        &["history", "greeting"][..],
        &["history", "greeting", "--output", "json"],
        &["apps"],
        &["apps", "--output", "json"],
        &["status", "--output", "json"],
        &["packages", "--output", "json"],
    ] {
        shown.push(cli_ok(&node, &dev, args));
    }
    for path in ["/v1/apps/greeting/deployments", "/v1/apps", "/v1/status"] {
        let reply = admin_request(&node, "GET", path, Some(&dev), None);
        assert_reply(&reply, 200, path);
        shown.push(reply.text());
    }
    for text in &shown {
        assert!(!text.contains(&secret), "the secret is shown: {text}");
    }
    assert!(
        !node.stderr().contains(&secret),
        "the secret is in the node's log"
    );
    // A new version deployed without `--secret` keeps the sealed secret
    // (it cannot be read back to be sent again).
    deploy_ok(
        &node,
        &dev,
        "greeting",
        CONFIG_GREETING,
        &["--route", "/greet", "--config", "greeting=Hej"],
    );
    let reply = gateway_get(&node, "any.test", "/greet");
    assert_eq!(
        reply.text(),
        format!("Hej, world!\napi_key: set ({} bytes)\n", secret.len())
    );
    let files = files_under(&node.data_dir());
    assert!(!files.is_empty(), "the data dir holds files");
    for file in files {
        let bytes = std::fs::read(&file).unwrap_or_default();
        assert!(
            !bytes
                .windows(secret.len())
                .any(|window| window == secret.as_bytes()),
            "{} holds the secret in the clear",
            file.display()
        );
    }
}

#[test]
fn orders_client_calls_the_linked_orders_service_with_typed_values() {
    let node = Node::start(&[]);
    let dev = tenant_developer(&node, "acme");
    deploy_ok(&node, &dev, "orders", ORDERS_SERVICE, &[]);
    deploy_ok(
        &node,
        &dev,
        "shop",
        ORDERS_CLIENT,
        &[
            "--route",
            "/orders",
            "--link",
            "acme:orders/api@1.0.0=orders",
        ],
    );

    let post = |body: Value| {
        gateway_send(
            &node,
            "POST",
            "shop.test",
            "/orders",
            &[("content-type", "application/json")],
            body.to_string().as_bytes(),
        )
    };
    let json_of = |reply: &Reply| -> Value {
        serde_json::from_str(&reply.text())
            .unwrap_or_else(|err| panic!("not JSON ({err}): {}", reply.text()))
    };

    // A list of records in, a record with a list of records out.
    let reply = post(json!({
        "customer": "ada",
        "lines": [{"sku": "book", "quantity": 2}, {"sku": "pen", "quantity": 3}],
    }));
    assert_reply(&reply, 200, "POST /orders");
    assert_eq!(
        json_of(&reply),
        json!({
            "customer": "ada",
            "lines": [
                {"sku": "book", "quantity": 2, "unit_cents": 1250, "cents": 2500},
                {"sku": "pen", "quantity": 3, "unit_cents": 150, "cents": 450},
            ],
            "total_cents": 2950,
        })
    );
    // Typed refusals: variant cases with and without payloads.
    let reply = post(json!({"customer": "ada", "lines": [{"sku": "rocket", "quantity": 1}]}));
    assert_reply(&reply, 422, "an unknown SKU");
    assert_eq!(
        json_of(&reply),
        json!({"error": "unknown-sku", "detail": "rocket"})
    );
    let reply = post(json!({"customer": "ada", "lines": []}));
    assert_reply(&reply, 422, "an empty order");
    assert_eq!(json_of(&reply)["error"], "empty");
    // A service that traps: the caller gets `platform(failed(…))`, not a trap.
    let reply = post(json!({"customer": "ada", "lines": [{"sku": "panic", "quantity": 1}]}));
    assert_reply(&reply, 503, "a trapping service");
    let refusal = json_of(&reply);
    assert_eq!(refusal["error"], "platform", "{refusal}");
    assert!(
        refusal["detail"]
            .as_str()
            .is_some_and(|d| d.starts_with("the service failed")),
        "{refusal}"
    );
    // A function returning a plain list.
    let reply = gateway_get(&node, "shop.test", "/orders");
    assert_reply(&reply, 200, "GET /orders");
    assert_eq!(json_of(&reply), json!(["book", "mug", "pen"]));

    // Importing the interface without a link is refused, naming it.
    assert_refused(
        &node,
        &dev,
        "unlinked-shop",
        ORDERS_CLIENT,
        &["--route", "/unlinked"],
        "acme:orders/api@1.0.0",
    );
}

#[test]
fn outbound_fetch_reaches_only_the_allowed_hosts() {
    let node = Node::start(&[]);
    let dev = tenant_developer(&node, "acme");
    // The upstream: hello, on every host; the fetcher on its own host,
    // allowed to call the gateway by its IP (not by any other name).
    deploy_ok(&node, &dev, "hello", HELLO, &["--route", "/"]);
    let allowed = format!("127.0.0.1:{}", node.gateway.port());
    deploy_ok(
        &node,
        &dev,
        "fetch",
        OUTBOUND_FETCH,
        &["--route", "fetch.test/", "--allow-outbound", &allowed],
    );

    let reply = gateway_get(&node, "fetch.test", &format!("/?url=http://{allowed}/"));
    assert_reply(&reply, 200, "fetching an allowed host");
    assert_eq!(reply.text(), "Hello from Cloudware!\n");
    let denied = format!("localhost:{}", node.gateway.port());
    let reply = gateway_get(&node, "fetch.test", &format!("/?url=http://{denied}/"));
    assert_reply(&reply, 403, "fetching a host not allowed");
    assert!(
        reply.text().starts_with("outbound request denied"),
        "{}",
        reply.text()
    );
}
