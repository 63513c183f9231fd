//! Remote calls in a cluster: a caller placed on one host calls a linked
//! service placed on another, with the same typed values and the same
//! `platform(…)` errors as on one host, and `cloudware status` says the call
//! crosses hosts; a partner's signed request is accepted by any host, signed
//! with the one platform key, and refused as a replay by every other host.

mod common;

use cloudware_test_artifacts::{ORDERS_CLIENT, ORDERS_SERVICE};
use common::cluster::{SETTLE, cluster_of, placed, wait_for_members};
use common::partner::{PARTNER_KEY, add_partner, post_openapi, signed};
use common::{Node, Reply, cli_json, cli_ok, deploy_ok, gateway_get, gateway_send, wait_until};
use serde_json::{Value, json};

/// Pins `app` to `host` (named `name`) with one instance, and waits until
/// that host runs it.
fn pin(node: &Node, app: &str, host: &Node, name: &str) {
    let rule = format!("name={name}");
    cli_ok(
        node,
        &node.token,
        &[
            "scale",
            app,
            "--tenant",
            "acme",
            "--instances",
            "1",
            "--spread",
            &rule,
        ],
    );
    wait_until(&format!("{app} runs on {name} only"), SETTLE, || {
        let runs = cli_json(host, &host.token, &["status", app, "--tenant", "acme"]);
        let only_there = placed(node, "acme", app) == [(name.to_string(), 1)].into();
        (only_there && runs["here"] == 1).then_some(())
    });
}

fn json_of(reply: &Reply) -> Value {
    serde_json::from_str(&reply.text())
        .unwrap_or_else(|err| panic!("not JSON ({err}): {}", reply.text()))
}

fn post_order(node: &Node, body: Value) -> Reply {
    gateway_send(
        node,
        "POST",
        "shop.test",
        "/orders",
        &[("content-type", "application/json")],
        body.to_string().as_bytes(),
    )
}

#[test]
fn a_service_call_crosses_hosts_with_typed_values_and_errors() {
    let nodes = cluster_of(&[
        ("alpha", &["--label", "name=alpha"]),
        ("beta", &["--label", "name=beta"]),
        ("gamma", &["--label", "name=gamma"]),
    ]);
    let [alpha, beta, gamma] = &nodes[..] else {
        panic!("three hosts");
    };
    wait_for_members(alpha, 3);
    let token = alpha.token.clone();
    cli_ok(alpha, &token, &["tenant", "create", "acme"]);
    let tenant = ["--tenant", "acme"];
    deploy_ok(alpha, &token, "orders", ORDERS_SERVICE, &tenant);
    pin(alpha, "orders", beta, "beta");
    deploy_ok(
        alpha,
        &token,
        "shop",
        ORDERS_CLIENT,
        &[
            "--tenant",
            "acme",
            "--route",
            "/orders",
            "--link",
            "acme:orders/api@1.0.0=orders",
        ],
    );
    pin(alpha, "shop", alpha, "alpha");

    // The caller runs on alpha, the service on beta: status says so.
    let status = cli_json(gamma, &token, &["status", "shop", "--tenant", "acme"]);
    assert_eq!(
        status["calls"],
        json!([{"interface": "acme:orders/api@1.0.0", "app": "orders", "crosses_hosts": true}]),
        "{status}"
    );
    let shown = cli_ok(gamma, &token, &["status", "shop", "--tenant", "acme"]);
    assert!(
        shown.contains("calls acme:orders/api@1.0.0 on orders: crosses hosts"),
        "{shown}"
    );

    // Records and lists cross hosts both ways; through gamma the request is
    // forwarded to alpha first, and alpha calls beta.
    for entry in [alpha, gamma] {
        let reply = post_order(
            entry,
            json!({"customer": "ada", "lines": [{"sku": "book", "quantity": 2}]}),
        );
        assert_eq!(
            reply.status,
            200,
            "{}; alpha: {}",
            reply.text(),
            alpha.stderr_tail()
        );
        assert_eq!(
            json_of(&reply),
            json!({
                "customer": "ada",
                "lines": [{"sku": "book", "quantity": 2, "unit_cents": 1250, "cents": 2500}],
                "total_cents": 2500,
            })
        );
    }
    // Typed refusals keep their variant case and payload.
    let reply = post_order(
        alpha,
        json!({"customer": "ada", "lines": [{"sku": "rocket", "quantity": 1}]}),
    );
    assert_eq!(reply.status, 422, "{}", reply.text());
    assert_eq!(
        json_of(&reply),
        json!({"error": "unknown-sku", "detail": "rocket"})
    );
    // A service that traps on beta: the caller on alpha gets `platform(failed)`.
    let reply = post_order(
        alpha,
        json!({"customer": "ada", "lines": [{"sku": "panic", "quantity": 1}]}),
    );
    assert_eq!(reply.status, 503, "{}", reply.text());
    let refusal = json_of(&reply);
    assert_eq!(refusal["error"], "platform", "{refusal}");
    assert!(
        refusal["detail"]
            .as_str()
            .is_some_and(|d| d.starts_with("the service failed")),
        "{refusal}"
    );
    let reply = gateway_get(alpha, "shop.test", "/orders");
    assert_eq!(json_of(&reply), json!(["book", "mug", "pen"]));

    // The service moves next to its caller: the call stays on one host.
    pin(alpha, "orders", alpha, "alpha");
    let status = cli_json(beta, &token, &["status", "shop", "--tenant", "acme"]);
    assert_eq!(status["calls"][0]["crosses_hosts"], false, "{status}");
    let reply = post_order(
        beta,
        json!({"customer": "bo", "lines": [{"sku": "pen", "quantity": 1}]}),
    );
    assert_eq!(reply.status, 200, "{}", reply.text());
    assert_eq!(json_of(&reply)["total_cents"], 150);

    // The partner API: one platform key for the cluster, one record of
    // accepted requests.
    let (_, developer) = common::create_token(alpha, Some("acme"), "developer");
    let (app_id, platform_pem) = add_partner(alpha, &developer, &["orders.place"]);
    let platform = cloudware_partner::parse_public_key(platform_pem.trim()).expect("key");
    for host in [beta, gamma] {
        let shown = cli_ok(host, &token, &["partner", "platform-key"]);
        assert_eq!(shown.trim(), platform_pem.trim(), "every host has one key");
    }
    let order = r#"{"request": {"customer": "ada", "lines": [{"sku": "pen", "quantity": 2}]}}"#;
    let body = signed(
        PARTNER_KEY,
        &app_id,
        "orders.place",
        order,
        std::time::SystemTime::now(),
    );
    let code_on = |host: &Node, body: String| {
        let (status, reply) = post_openapi(host, body);
        let verified = cloudware_partner::verify_reply(&platform, &reply).unwrap_or_else(|err| {
            panic!("the reply does not verify with the platform key ({err})")
        });
        (status, verified.code)
    };
    assert_eq!(code_on(beta, body.clone()), (200, "ok".to_string()));
    for host in [alpha, beta, gamma] {
        assert_eq!(code_on(host, body.clone()), (409, "replayed".to_string()));
    }
}
