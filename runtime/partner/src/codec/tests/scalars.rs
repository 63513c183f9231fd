//! Records, scalars and the error paths.

use super::super::*;
use super::{decode_err, func, round_trip};
use serde_json::json;

#[test]
fn nested_records_and_lists_decode_with_missing_options_as_none() {
    let f = func("place-order");
    let biz = json!({"order": {"id": 18446744073709551615u64, "express": true,
        "items": [{"sku": "A-1", "qty": 2}, {"sku": "B", "qty": 0, "note": "gift"}]}});
    let args = decode_args(&f, &biz.to_string()).expect("decodes");
    let item = |sku: &str, qty, note: Option<&str>| {
        Val::Record(vec![
            ("sku".into(), Val::String(sku.into())),
            ("qty".into(), Val::U32(qty)),
            (
                "note".into(),
                Val::Option(note.map(|n| Box::new(Val::String(n.into())))),
            ),
        ])
    };
    assert_eq!(
        args,
        vec![
            Val::Record(vec![
                ("id".into(), Val::U64(u64::MAX)),
                (
                    "items".into(),
                    Val::List(vec![item("A-1", 2, None), item("B", 0, Some("gift"))])
                ),
                ("express".into(), Val::Bool(true)),
            ]),
            Val::Option(None),
        ]
    );
}

#[test]
fn wrong_types_name_the_path() {
    let order =
        |items: &str| format!(r#"{{"order": {{"id": 1, "express": false, "items": {items}}}}}"#);
    let bad_qty = order(r#"[{"sku":"a","qty":1},{"sku":"b","qty":2},{"sku":"c","qty":"x"}]"#);
    assert_eq!(
        decode_err("place-order", &bad_qty),
        r#"biz_content.order.items[2].qty: expected u32, got "x""#
    );
    assert_eq!(
        decode_err("place-order", &order(r#"[{"qty":1}]"#)),
        "biz_content.order.items[0].sku: missing (expected string)"
    );
    let unknown = decode_err("place-order", &order(r#"[{"sku":"a","qty":1,"price":3}]"#));
    assert!(
        unknown.starts_with("biz_content.order.items[0].price: unknown field"),
        "{unknown}"
    );
    assert_eq!(
        decode_err("place-order", &order("{}")),
        "biz_content.order.items: expected list (an array), got an object"
    );
    assert_eq!(
        decode_err("place-order", "{}"),
        "biz_content.order: missing (expected record (an object))"
    );
    let extra = decode_err("place-order", r#"{"order": null, "zzz": 1}"#);
    assert_eq!(
        extra,
        "biz_content.order: expected record (an object), got null"
    );
    let extra = decode_err(
        "place-order",
        r#"{"order": {"id": 1, "express": false, "items": []}, "zzz": 1}"#,
    );
    assert_eq!(
        extra,
        "biz_content.zzz: unknown parameter (the function takes: order, coupon)"
    );
    assert!(decode_err("place-order", "[1]").starts_with("biz_content: expected an object"));
    assert!(decode_err("place-order", "{oops").starts_with("biz_content: not valid JSON"));
    assert!(decode_err("no-result", r#"{"a":1}"#).contains("the function takes: nothing"));
    assert_eq!(
        decode_args(&func("no-result"), "{}").expect("empty"),
        vec![]
    );
}

#[test]
fn integers_are_range_checked() {
    let ok = json!({"a": -128, "b": 255, "c": -32768, "d": 65535, "e": -2147483648i64,
        "f": 4294967295u64, "g": -9223372036854775808i64, "h": 18446744073709551615u64});
    assert_eq!(round_trip("ints", ok.clone()), ok);
    let zero = json!({"a": 0, "b": 0, "c": 0, "d": 0, "e": 0, "f": 0, "g": 0, "h": 0});
    for (key, bad, why) in [
        ("a", json!(128), "out of range"),
        ("a", json!(-129), "out of range"),
        ("b", json!(-1), "out of range"),
        ("b", json!(256), "out of range"),
        ("d", json!(65536), "out of range"),
        ("e", json!(2147483648u64), "out of range"),
        ("f", json!(-1), "out of range"),
        ("g", json!(9223372036854775808u64), "out of range"),
        ("h", json!(-1), "out of range"),
        ("f", json!(1.5), "not an integer"),
        ("f", json!(1.0), "not an integer"),
        ("h", json!("1"), "expected u64"),
        ("c", json!(true), "expected s16"),
    ] {
        let mut biz = zero.clone();
        biz[key] = bad.clone();
        let err = decode_err("ints", &biz.to_string());
        assert!(err.starts_with(&format!("biz_content.{key}: ")), "{err}");
        assert!(err.contains(why), "{key}={bad}: {err}");
    }
    // 2^64 does not fit anything.
    let err = decode_err(
        "ints",
        &zero
            .to_string()
            .replace(r#""h":0"#, r#""h":18446744073709551616"#),
    );
    assert!(err.starts_with("biz_content.h: expected u64"), "{err}");
}

#[test]
fn floats_chars_strings_and_bools() {
    assert_eq!(
        round_trip("floats", json!({"x": 0.1, "y": -2.5e300})),
        json!({"x": 0.1, "y": -2.5e300})
    );
    assert_eq!(
        round_trip("floats", json!({"x": "NaN", "y": "-Infinity"})),
        json!({"x": "NaN", "y": "-Infinity"})
    );
    assert_eq!(
        round_trip("floats", json!({"x": "Infinity", "y": 3})),
        json!({"x": "Infinity", "y": 3.0})
    );
    let err = decode_err("floats", r#"{"x": 1e39, "y": 0}"#);
    assert_eq!(err, "biz_content.x: expected f32, got 1e+39 (out of range)");
    let err = decode_err("floats", r#"{"x": "nan", "y": 0}"#);
    assert_eq!(err, r#"biz_content.x: expected f32, got "nan""#);
    assert_eq!(
        round_trip("text", json!({"c": "😀", "s": "héllo", "ok": false})),
        json!({"c": "😀", "s": "héllo", "ok": false})
    );
    for (biz, path) in [
        (
            r#"{"c": "ab", "s": "", "ok": true}"#,
            "biz_content.c: expected char",
        ),
        (
            r#"{"c": "", "s": "", "ok": true}"#,
            "biz_content.c: expected char",
        ),
        (
            r#"{"c": 7, "s": "", "ok": true}"#,
            "biz_content.c: expected char",
        ),
        (
            r#"{"c": "a", "s": 1, "ok": true}"#,
            "biz_content.s: expected string, got 1",
        ),
        (
            r#"{"c": "a", "s": "", "ok": 1}"#,
            "biz_content.ok: expected bool, got 1",
        ),
    ] {
        let err = decode_err("text", biz);
        assert!(err.starts_with(path), "{err}");
    }
}
