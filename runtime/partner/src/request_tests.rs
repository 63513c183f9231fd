//! Tests of request parsing and validation.

use super::*;

const FORM: &str = "application/x-www-form-urlencoded";

fn base() -> Vec<(&'static str, &'static str)> {
    vec![
        ("app_id", "p1"),
        ("method", "shop.place-order"),
        ("timestamp", "2024-05-01 12:00:00"),
        ("sign_type", "RSA2"),
        ("sign", "c2ln"),
        ("charset", "utf-8"),
        ("version", "1.0"),
        ("biz_content", r#"{"a":"x y&z=1"}"#),
    ]
}

fn form(pairs: &[(&str, &str)]) -> Vec<u8> {
    form_urlencoded::Serializer::new(String::new())
        .extend_pairs(pairs)
        .finish()
        .into_bytes()
}

fn fields(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

#[test]
fn form_and_json_bodies_parse_to_the_same_request() {
    let from_form = parse_request(Some(FORM), &form(&base())).expect("form");
    let json = serde_json::to_vec(&fields(&base())).expect("json");
    let from_json =
        parse_request(Some("application/json; charset=UTF-8"), &json).expect("json body");
    assert_eq!(from_form, from_json);
    assert_eq!(from_form.app_id, "p1");
    assert_eq!(from_form.app, "shop");
    assert_eq!(from_form.function, "place-order");
    assert_eq!(from_form.biz_content, r#"{"a":"x y&z=1"}"#);
    assert_eq!(from_form.sign, "c2ln");
    assert_eq!(from_form.timestamp_ms, 1_714_564_800_000);
    assert_eq!(from_form.fields.len(), 8);
}

#[test]
fn plus_and_percent_encoding_decode() {
    let body = b"app_id=p1&method=shop.f&timestamp=2024-05-01+12%3A00%3A00&sign_type=RSA2&sign=a%2Bb%2F%3D";
    let r = parse_request(Some(FORM), body).expect("parse");
    assert_eq!(r.timestamp_ms, 1_714_564_800_000);
    assert_eq!(r.sign, "a+b/=");
    assert_eq!(r.biz_content, "{}");
}

#[test]
fn content_types_and_sizes_are_checked() {
    let body = form(&base());
    for ct in [None, Some("text/plain"), Some("multipart/form-data")] {
        let err = parse_request(ct, &body).expect_err("refused");
        assert_eq!(err.code(), "bad-request", "{ct:?}");
    }
    let err = parse_request(Some("application/json; charset=gbk"), b"{}").expect_err("gbk");
    assert_eq!(err.code(), "bad-request");
    let big = vec![b'a'; MAX_BODY_BYTES + 1];
    let err = parse_request(Some(FORM), &big).expect_err("too big");
    assert!(err.to_string().contains("larger"), "{err}");
    // Exactly the limit is read (and fails on content, not size).
    let at_limit = vec![b'a'; MAX_BODY_BYTES];
    let err = parse_request(Some(FORM), &at_limit).expect_err("no fields");
    assert_eq!(err, PartnerError::MissingField("app_id".into()));
}

#[test]
fn json_bodies_must_be_objects_of_strings_without_duplicates() {
    let json = Some("application/json");
    for body in [
        &br#"[1,2]"#[..],
        br#"{"app_id": 5}"#,
        br#"{"app_id": "a", "app_id": "b"}"#,
        br#"{"app_id": "#,
    ] {
        let err = parse_request(json, body).expect_err("refused");
        assert_eq!(
            err.code(),
            "bad-request",
            "{}",
            String::from_utf8_lossy(body)
        );
    }
}

#[test]
fn duplicate_form_fields_and_bad_utf8_are_refused() {
    let err = parse_request(Some(FORM), b"app_id=a&app_id=b").expect_err("dup");
    assert!(err.to_string().contains("more than once"), "{err}");
    let err = parse_request(Some(FORM), b"app_id=%FF").expect_err("utf8");
    assert_eq!(err.code(), "bad-request");
    let err = parse_request(Some(FORM), b"app_id=\xff").expect_err("utf8");
    assert_eq!(err.code(), "bad-request");
}

#[test]
fn each_required_field_is_named_when_missing_or_empty() {
    for name in ["app_id", "method", "timestamp", "sign_type", "sign"] {
        let mut f = fields(&base());
        f.remove(name);
        assert_eq!(
            validate(f).expect_err("missing"),
            PartnerError::MissingField(name.into())
        );
        let mut f = fields(&base());
        f.insert(name.into(), String::new());
        assert_eq!(
            validate(f).expect_err("empty"),
            PartnerError::MissingField(name.into())
        );
    }
    // Optional ones may be absent or empty.
    let mut f = fields(&base());
    for name in ["charset", "version"] {
        f.remove(name);
    }
    f.insert("biz_content".into(), String::new());
    assert_eq!(validate(f).expect("ok").biz_content, "{}");
}

#[test]
fn overlong_app_ids_are_refused() {
    let mut f = fields(&base());
    f.insert("app_id".into(), "a".repeat(MAX_APP_ID_LEN));
    validate(f.clone()).expect("at the limit");
    f.insert("app_id".into(), "a".repeat(MAX_APP_ID_LEN + 1));
    assert_eq!(validate(f).expect_err("too long").code(), "bad-request");
}

#[test]
fn sign_type_charset_version_and_format_are_checked() {
    for (name, bad, good) in [
        ("sign_type", "RSA", "RSA2"),
        ("charset", "gbk", "UTF-8"),
        ("version", "2.0", "1.0"),
        ("format", "xml", "JSON"),
    ] {
        let mut f = fields(&base());
        f.insert(name.into(), bad.into());
        let err = validate(f).expect_err(name);
        assert_eq!(err.code(), "bad-request");
        assert!(err.to_string().contains(bad), "{err}");
        let mut f = fields(&base());
        f.insert(name.into(), good.into());
        validate(f).expect(good);
    }
}

#[test]
fn methods_split_at_the_first_dot() {
    assert_eq!(
        split_method("shop.place-order").expect("ok"),
        ("shop", "place-order")
    );
    assert_eq!(
        split_method("my-app2.get-HTTP-v2").expect("ok"),
        ("my-app2", "get-HTTP-v2")
    );
    for bad in [
        "shop",
        ".f",
        "shop.",
        "Shop.f",
        "shop.place_order",
        "shop.a.b",
        "shop.-f",
        "shop.f--g",
        "shop.2f",
        "shop.mIxed",
        "-shop.f",
    ] {
        let err = split_method(bad).expect_err(bad);
        assert_eq!(err.code(), "bad-request", "{bad}");
    }
}

#[test]
fn timestamps_parse_as_utc_or_unix_millis() {
    assert_eq!(parse_timestamp("1970-01-01 00:00:00").expect("epoch"), 0);
    assert_eq!(
        parse_timestamp("2000-02-29 23:59:59").expect("leap"),
        951_868_799_000
    );
    assert_eq!(
        parse_timestamp("1714564800123").expect("ms"),
        1_714_564_800_123
    );
    assert_eq!(parse_timestamp("0").expect("zero"), 0);
    for bad in [
        "",
        "2024-05-01T12:00:00",
        "2024-05-01 12:00",
        "2024-13-01 12:00:00",
        "2023-02-29 12:00:00",
        "2024-04-31 12:00:00",
        "2024-05-01 24:00:00",
        "2024-05-01 12:60:00",
        "2024-05-01 12:00:60",
        "2024-05-01 12:00:0x",
        "+024-05-01 12:00:00",
        "-1714564800",
        "17145648001234567",
        "1.5",
    ] {
        let err = parse_timestamp(bad).expect_err(bad);
        assert_eq!(err.code(), "bad-request", "{bad}");
    }
}

#[test]
fn format_timestamp_round_trips() {
    for ms in [0_i64, 951_868_799_000, 1_714_564_800_000, 4_102_444_800_000] {
        let t = UNIX_EPOCH + Duration::from_millis(ms as u64);
        let text = format_timestamp(t);
        assert_eq!(parse_timestamp(&text).expect(&text), ms, "{text}");
    }
    assert_eq!(
        format_timestamp(UNIX_EPOCH + Duration::from_millis(1_714_564_800_999)),
        "2024-05-01 12:00:00"
    );
}
