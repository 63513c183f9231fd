//! Helpers for partner API tests: the test partner's keys, signed request
//! bodies, and posting them to a node's `POST /openapi`.

use super::*;
use cloudware_partner::{parse_private_key, request_fields, sign_request};
use std::time::SystemTime;

/// The test partner's private key.
pub const PARTNER_KEY: &str = include_str!("../../../partner/testdata/partner.key.pem");
/// The test partner's public key.
pub const PARTNER_PUB: &str = include_str!("../../../partner/testdata/partner.pub.pem");
/// Another partner's private key (not registered).
pub const OTHER_KEY: &str = include_str!("../../../partner/testdata/other.key.pem");

/// POSTs a form body to the gateway's `/openapi`; returns status and body.
pub fn post_openapi(node: &Node, body: String) -> (u16, Vec<u8>) {
    let request = http::Request::post("/openapi")
        .header("host", node.gateway.to_string())
        .header("content-type", "application/x-www-form-urlencoded")
        .body(full(Bytes::from(body)))
        .expect("request");
    let reply = send_blocking(node.gateway, request);
    (reply.status, reply.body.expect("a complete reply").to_vec())
}

/// A signed form body.
pub fn signed(key: &str, app_id: &str, method: &str, biz: &str, at: SystemTime) -> String {
    let key = parse_private_key(key).expect("private key");
    sign_request(&key, &request_fields(app_id, method, biz, at)).expect("sign")
}

/// Registers the test partner of `token`'s tenant, exposing `methods`;
/// returns its app id and the platform's public key (PEM) it was given.
pub fn add_partner(node: &Node, token: &str, methods: &[&str]) -> (String, String) {
    let dir = tempfile::tempdir().expect("dir");
    let pub_path = dir.path().join("partner.pub.pem");
    std::fs::write(&pub_path, PARTNER_PUB).expect("write key");
    let mut args = vec![
        "partner",
        "add",
        "--name",
        "Acme Pay",
        "--public-key",
        pub_path.to_str().expect("path"),
    ];
    for method in methods {
        args.extend(["--method", method]);
    }
    let partner = cli_json(node, token, &args);
    (
        partner["app_id"].as_str().expect("app_id").to_owned(),
        partner["platform_public_key"]
            .as_str()
            .expect("platform key")
            .to_owned(),
    )
}
