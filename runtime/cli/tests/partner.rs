//! The external partner API end to end: a real `cloudware up`, a partner
//! registered with `cloudware partner add`, the `orders-service` example
//! deployed as app `orders`, and signed requests to `POST /openapi` on the
//! gateway — the honest one answered and its reply's signature verified
//! with the platform key, and each kind of bad request refused with its own
//! code.

mod common;

use cloudware_partner::parse_public_key;
use cloudware_test_artifacts::ORDERS_SERVICE;
use common::partner::{OTHER_KEY, PARTNER_KEY, add_partner, post_openapi, signed};
use common::{Node, cli_ok, deploy_ok, tenant_developer};
use std::time::{Duration, SystemTime};

#[test]
fn partners_call_exposed_functions_with_signed_requests_and_bad_ones_are_refused() {
    let node = Node::start(&[]);
    let token = tenant_developer(&node, "acme");
    deploy_ok(&node, &token, "orders", ORDERS_SERVICE, &[]);

    let (app_id, given_key) = add_partner(&node, &token, &["orders.place"]);
    let platform_pem = cli_ok(&node, &token, &["partner", "platform-key"]);
    let platform = parse_public_key(platform_pem.trim()).expect("platform key");
    assert_eq!(given_key.trim(), platform_pem.trim());

    let order = r#"{"request": {"customer": "ada", "lines": [{"sku": "book", "quantity": 3}]}}"#;
    let now = SystemTime::now();

    // The honest request: answered, the reply signed by the platform.
    let body = signed(PARTNER_KEY, &app_id, "orders.place", order, now);
    let (status, reply) = post_openapi(&node, body.clone());
    let verified = cloudware_partner::verify_reply(&platform, &reply).unwrap_or_else(|err| {
        panic!(
            "reply does not verify ({err}): {}",
            String::from_utf8_lossy(&reply)
        )
    });
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&reply));
    assert_eq!(verified.code, "ok", "{verified:?}");
    let result = verified.result.expect("a result");
    assert_eq!(result["ok"]["customer"], "ada", "{result}");
    assert_eq!(result["ok"]["lines"][0]["quantity"], 3, "{result}");
    assert_eq!(result["ok"]["total-cents"], 3750, "{result}");

    // A typed service error comes back as the function's own `err`.
    let empty = r#"{"request": {"customer": "ada", "lines": []}}"#;
    let (_, reply) = post_openapi(
        &node,
        signed(PARTNER_KEY, &app_id, "orders.place", empty, now),
    );
    let verified = cloudware_partner::verify_reply(&platform, &reply).expect("verifies");
    assert_eq!(verified.result.expect("result")["err"], "empty");

    let code = |body: String| -> (u16, String) {
        let (status, reply) = post_openapi(&node, body);
        let verified = cloudware_partner::verify_reply(&platform, &reply)
            .unwrap_or_else(|err| panic!("refusal does not verify ({err})"));
        (status, verified.code)
    };
    let mut codes = Vec::new();
    // Replayed: the very same signed request again.
    codes.push(code(body));
    // Forged: signed by another key.
    codes.push(code(signed(OTHER_KEY, &app_id, "orders.place", order, now)));
    // Forged: a field changed after signing.
    let tampered = signed(PARTNER_KEY, &app_id, "orders.place", order, now).replace("ada", "eve");
    codes.push(code(tampered));
    // Expired and from the future.
    codes.push(code(signed(
        PARTNER_KEY,
        &app_id,
        "orders.place",
        order,
        now - Duration::from_secs(600),
    )));
    codes.push(code(signed(
        PARTNER_KEY,
        &app_id,
        "orders.place",
        order,
        now + Duration::from_secs(600),
    )));
    // Unknown partner, unexposed method, wrong argument types.
    codes.push(code(signed(
        PARTNER_KEY,
        "1234567890",
        "orders.place",
        order,
        now,
    )));
    codes.push(code(signed(
        PARTNER_KEY,
        &app_id,
        "orders.catalog",
        "{}",
        now,
    )));
    codes.push(code(signed(
        PARTNER_KEY,
        &app_id,
        "orders.place",
        r#"{"request": {"customer": 7, "lines": []}}"#,
        now + Duration::from_secs(1),
    )));
    let names: Vec<&str> = codes.iter().map(|(_, code)| code.as_str()).collect();
    assert_eq!(
        names,
        [
            "replayed",
            "bad-signature",
            "bad-signature",
            "stale-timestamp",
            "stale-timestamp",
            "unknown-partner",
            "method-not-exposed",
            "bad-biz-content",
        ],
        "{codes:?}"
    );
    assert!(codes.iter().all(|(status, _)| *status >= 400), "{codes:?}");

    // Removing the partner makes it unknown.
    cli_ok(&node, &token, &["partner", "remove", &app_id]);
    let (_, code_after) = code(signed(
        PARTNER_KEY,
        &app_id,
        "orders.place",
        order,
        now + Duration::from_secs(2),
    ));
    assert_eq!(code_after, "unknown-partner");
}
