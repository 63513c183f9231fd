//! `OpenApi::handle` end to end: signatures, timestamps, replays, exposure,
//! argument decoding and invocation failures, each refused with its own code
//! in a signed reply.

mod support;

use bytes::Bytes;
use cloudware_partner::client::sign_request;
use cloudware_partner::keys::{parse_private_key, parse_public_key};
use cloudware_partner::reply::verify_reply;
use cloudware_partner::request::format_timestamp;
use cloudware_partner::service::InvokeError;
use cloudware_partner::sign::sign;
use serde_json::json;
use std::time::{Duration, UNIX_EPOCH};
use support::{FORM, NOW_MS, ORDER, fields, fixture, fixture_with};
use wasmtime::component::Val;

#[tokio::test]
async fn a_valid_request_is_answered_ok_with_a_verifiable_signature() {
    let f = fixture();
    let (status, reply) = f.send_form(&fields("shop.place-order", ORDER)).await;
    assert_eq!((status, reply.code.as_str()), (200, "ok"), "{}", reply.msg);
    assert_eq!(reply.result, Some(json!(42)));
    let calls = f.calls();
    assert_eq!(calls.len(), 1);
    let (tenant, app, function, args) = &calls[0];
    assert_eq!(
        (tenant.as_str(), app.as_str(), function.as_str()),
        ("acme", "shop", "place-order")
    );
    assert_eq!(
        args,
        &vec![Val::Record(vec![
            ("id".into(), Val::U64(7)),
            (
                "items".into(),
                Val::List(vec![Val::Record(vec![
                    ("sku".into(), Val::String("A-1".into())),
                    ("qty".into(), Val::U32(2)),
                ])])
            ),
        ])]
    );
    // The reply's signature is over the platform key, not any other.
    let response = f
        .api
        .handle(Some(FORM), f.body(&fields("shop.ping", "")))
        .await;
    let other = parse_public_key(include_str!("../testdata/other.pub.pem")).expect("other");
    assert!(verify_reply(&other, response.body()).is_err());
    let reply = verify_reply(f.api.platform_public_key(), response.body()).expect("verifies");
    assert_eq!((reply.code.as_str(), reply.result), ("ok", None));
}

#[tokio::test]
async fn a_json_body_with_unix_millisecond_timestamp_works() {
    let f = fixture();
    let mut fields = fields("shop.place-order", ORDER);
    fields.insert("timestamp".into(), (NOW_MS - 1000).to_string());
    let signature = sign(&f.partner_key, &fields).expect("sign");
    fields.insert("sign".into(), signature);
    let body = Bytes::from(serde_json::to_vec(&fields).expect("json"));
    let (status, reply) = f.send("application/json", body).await;
    assert_eq!((status, reply.code.as_str()), (200, "ok"), "{}", reply.msg);
}

#[tokio::test]
async fn forged_signatures_are_bad_signature() {
    let f = fixture();
    let other = parse_private_key(include_str!("../testdata/other.key.pem")).expect("other");
    let by_other = Bytes::from(sign_request(&other, &fields("shop.ping", "")).expect("sign"));
    let (status, reply) = f.send(FORM, by_other).await;
    assert_eq!((status, reply.code.as_str()), (401, "bad-signature"));

    // A field changed after signing.
    let genuine = fields("shop.place-order", ORDER);
    let mut signed = genuine.clone();
    signed.insert("sign".into(), sign(&f.partner_key, &genuine).expect("sign"));
    let mut tampered = signed.clone();
    tampered.insert(
        "biz_content".into(),
        ORDER.replace(r#""qty":2"#, r#""qty":200"#),
    );
    let body = form_urlencoded::Serializer::new(String::new())
        .extend_pairs(&tampered)
        .finish();
    let (status, reply) = f.send(FORM, Bytes::from(body)).await;
    assert_eq!((status, reply.code.as_str()), (401, "bad-signature"));
    // An added field is covered too.
    let mut added = signed.clone();
    added.insert("notify_url".into(), "https://evil.example/".into());
    let body = form_urlencoded::Serializer::new(String::new())
        .extend_pairs(&added)
        .finish();
    let (_, reply) = f.send(FORM, Bytes::from(body)).await;
    assert_eq!(reply.code, "bad-signature");
    // Garbage in `sign`.
    let mut garbage = genuine.clone();
    garbage.insert("sign".into(), "%%%".into());
    let body = form_urlencoded::Serializer::new(String::new())
        .extend_pairs(&garbage)
        .finish();
    let (_, reply) = f.send(FORM, Bytes::from(body)).await;
    assert_eq!(reply.code, "bad-signature");
    assert!(f.calls().is_empty());

    // The forgeries carried the genuine `sign` but were not recorded as
    // seen: the genuine request still goes through.
    let body = form_urlencoded::Serializer::new(String::new())
        .extend_pairs(&signed)
        .finish();
    let (status, reply) = f.send(FORM, Bytes::from(body)).await;
    assert_eq!((status, reply.code.as_str()), (200, "ok"), "{}", reply.msg);
}

#[tokio::test]
async fn timestamps_outside_five_minutes_are_stale() {
    let f = fixture();
    let at = |offset_secs: i64| {
        let mut fields = fields("shop.ping", "");
        let t =
            UNIX_EPOCH + Duration::from_millis(NOW_MS.saturating_add_signed(offset_secs * 1000));
        fields.insert("timestamp".into(), format_timestamp(t));
        fields
    };
    for offset in [-301, 301, -86_400, 3_600] {
        let (status, reply) = f.send_form(&at(offset)).await;
        assert_eq!(
            (status, reply.code.as_str()),
            (401, "stale-timestamp"),
            "{offset}"
        );
    }
    for offset in [-300, 300, 0] {
        let (status, reply) = f.send_form(&at(offset)).await;
        assert_eq!(
            (status, reply.code.as_str()),
            (200, "ok"),
            "{offset}: {}",
            reply.msg
        );
    }
    // A stale request with a bad signature is a bad signature (checked first).
    let other = parse_private_key(include_str!("../testdata/other.key.pem")).expect("other");
    let body = Bytes::from(sign_request(&other, &at(-3_600)).expect("sign"));
    let (_, reply) = f.send(FORM, body).await;
    assert_eq!(reply.code, "bad-signature");
}

#[tokio::test]
async fn the_same_request_twice_is_replayed() {
    let f = fixture();
    let body = f.body(&fields("shop.place-order", ORDER));
    let (status, reply) = f.send(FORM, body.clone()).await;
    assert_eq!((status, reply.code.as_str()), (200, "ok"));
    let (status, reply) = f.send(FORM, body).await;
    assert_eq!((status, reply.code.as_str()), (409, "replayed"));
    assert_eq!(f.calls().len(), 1, "a replay never reaches the app");
    // The same call, re-signed with another timestamp, is a new request.
    let mut again = fields("shop.place-order", ORDER);
    again.insert("timestamp".into(), (NOW_MS + 1).to_string());
    let (status, _) = f.send_form(&again).await;
    assert_eq!(status, 200);
}

#[tokio::test]
async fn an_unknown_app_id_is_unknown_partner() {
    let f = fixture();
    let mut fields = fields("shop.ping", "");
    fields.insert("app_id".into(), "2021999999999999".into());
    let (status, reply) = f.send_form(&fields).await;
    assert_eq!((status, reply.code.as_str()), (401, "unknown-partner"));
}

#[tokio::test]
async fn unexposed_and_missing_methods_are_method_not_exposed_alike() {
    let f = fixture();
    // Exists but is not exposed to this partner.
    let (status, reply) = f.send_form(&fields("shop.secret", "")).await;
    assert_eq!((status, reply.code.as_str()), (403, "method-not-exposed"));
    let not_exposed_msg = reply.msg.replace("shop.secret", "X");
    // Exposed, but the app has no such function.
    let (status, reply) = f.send_form(&fields("shop.missing", "")).await;
    assert_eq!((status, reply.code.as_str()), (403, "method-not-exposed"));
    assert_eq!(reply.msg.replace("shop.missing", "X"), not_exposed_msg);
    // Another app entirely.
    let (_, reply) = f.send_form(&fields("billing.ping", "")).await;
    assert_eq!(reply.code, "method-not-exposed");
    assert!(f.calls().is_empty());
}

#[tokio::test]
async fn biz_content_of_the_wrong_type_is_bad_biz_content() {
    let f = fixture();
    let bad = r#"{"order":{"id":7,"items":[{"sku":"A-1","qty":"x"}]}}"#;
    let (status, reply) = f.send_form(&fields("shop.place-order", bad)).await;
    assert_eq!((status, reply.code.as_str()), (400, "bad-biz-content"));
    assert_eq!(
        reply.msg,
        r#"biz_content.order.items[0].qty: expected u32, got "x""#
    );
    for bad in [
        "{",
        "[]",
        r#"{"order":{"id":7,"items":[]},"extra":1}"#,
        "{}",
    ] {
        let (_, reply) = f.send_form(&fields("shop.place-order", bad)).await;
        assert_eq!(reply.code, "bad-biz-content", "{bad}: {}", reply.msg);
    }
    assert!(f.calls().is_empty());
}

#[tokio::test]
async fn invocation_failures_are_service_errors() {
    let f = fixture_with(Box::new(|function| match function {
        "ping" => Err(InvokeError::Unavailable("no deployment".into())),
        "place-order" => Err(InvokeError::Failed(
            "wasm trap: unreachable at shop.wasm".into(),
        )),
        _ => Ok(vec![]),
    }));
    let (status, reply) = f.send_form(&fields("shop.ping", "")).await;
    assert_eq!((status, reply.code.as_str()), (503, "service-unavailable"));
    let (status, reply) = f.send_form(&fields("shop.place-order", ORDER)).await;
    assert_eq!((status, reply.code.as_str()), (502, "service-error"));
    assert!(
        !reply.msg.contains("trap"),
        "guest details stay in the log: {}",
        reply.msg
    );

    let f = fixture_with(Box::new(|function| match function {
        "ping" => Err(InvokeError::Timeout),
        // Of the wrong type for `result`.
        _ => Ok(vec![Val::String("42".into())]),
    }));
    let (status, reply) = f.send_form(&fields("shop.ping", "")).await;
    assert_eq!((status, reply.code.as_str()), (502, "service-error"));
    assert!(reply.msg.contains("timed out"), "{}", reply.msg);
    let (status, reply) = f.send_form(&fields("shop.place-order", ORDER)).await;
    assert_eq!((status, reply.code.as_str()), (502, "service-error"));
}

#[tokio::test]
async fn malformed_requests_are_refused_with_signed_replies() {
    let f = fixture();
    let mut no_method = fields("shop.ping", "");
    no_method.remove("method");
    let (status, reply) = f.send_form(&no_method).await;
    assert_eq!((status, reply.code.as_str()), (400, "missing-field"));
    let (status, reply) = f.send("text/plain", Bytes::from_static(b"hello")).await;
    assert_eq!((status, reply.code.as_str()), (400, "bad-request"));
    let response = f.api.handle(None, Bytes::new()).await;
    assert_eq!(response.status(), 400);
    let mut rsa1 = fields("shop.ping", "");
    rsa1.insert("sign_type".into(), "RSA".into());
    let (_, reply) = f.send_form(&rsa1).await;
    assert_eq!(reply.code, "bad-request");
}

#[tokio::test]
async fn every_refusal_has_a_distinct_code() {
    let f = fixture_with(Box::new(|function| match function {
        "ping" => Err(InvokeError::Unavailable("x".into())),
        _ => Err(InvokeError::Failed("x".into())),
    }));
    let other = parse_private_key(include_str!("../testdata/other.key.pem")).expect("other");
    let mut stale = fields("shop.ping", "");
    stale.insert("timestamp".into(), "2020-01-01 00:00:00".into());
    let mut unknown = fields("shop.ping", "");
    unknown.insert("app_id".into(), "nobody".into());
    let mut missing = fields("shop.ping", "");
    missing.remove("timestamp");
    let replay = f.body(&fields(
        "shop.place-order",
        r#"{"order":{"id":1,"items":[]}}"#,
    ));
    let _ = f.send(FORM, replay.clone()).await;
    let cases: Vec<(&str, Bytes)> = vec![
        ("missing-field", f.body(&missing)),
        ("bad-request", Bytes::from_static(b"app_id=%FF")),
        ("unknown-partner", f.body(&unknown)),
        (
            "bad-signature",
            Bytes::from(sign_request(&other, &fields("shop.ping", "")).expect("sign")),
        ),
        ("stale-timestamp", f.body(&stale)),
        ("replayed", replay),
        ("method-not-exposed", f.body(&fields("shop.secret", ""))),
        ("bad-biz-content", f.body(&fields("shop.place-order", "[]"))),
        ("service-error", f.body(&fields("shop.place-order", ORDER))),
        ("service-unavailable", f.body(&fields("shop.ping", ""))),
    ];
    let mut statuses = Vec::new();
    for (expected, body) in cases {
        let (status, reply) = f.send(FORM, body).await;
        assert_eq!(reply.code, expected, "{}", reply.msg);
        statuses.push(status);
    }
    assert_eq!(statuses, [400, 400, 401, 401, 401, 409, 403, 400, 502, 503]);
    assert_eq!(
        cloudware_partner::error::PartnerError::CODES.len(),
        10,
        "every code is exercised above"
    );
}
