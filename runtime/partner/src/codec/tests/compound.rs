//! Lists, tuples, options, results, variants, enums, flags, maps,
//! resources, and result encoding.

use super::super::*;
use super::{decode_err, func, round_trip};
use serde_json::json;

#[test]
fn lists_tuples_and_fixed_length_lists() {
    let biz = json!({"bytes": [0, 255], "pair": [7, "x"], "three": [1, 2, 3]});
    assert_eq!(round_trip("lists", biz.clone()), biz);
    for (biz, expected) in [
        (
            json!({"bytes": "AAE=", "pair": [7, "x"], "three": [1, 2, 3]}),
            r#"biz_content.bytes: expected list (an array), got "AAE=""#,
        ),
        (
            json!({"bytes": [256], "pair": [7, "x"], "three": [1, 2, 3]}),
            "biz_content.bytes[0]: expected u8, got 256 (out of range)",
        ),
        (
            json!({"bytes": [], "pair": [7], "three": [1, 2, 3]}),
            "biz_content.pair: expected an array of 2 elements (tuple), got 1",
        ),
        (
            json!({"bytes": [], "pair": [7, 8], "three": [1, 2, 3]}),
            "biz_content.pair[1]: expected string, got 8",
        ),
        (
            json!({"bytes": [], "pair": [7, "x"], "three": [1, 2]}),
            "biz_content.three: expected an array of exactly 3 elements, got 2",
        ),
    ] {
        assert_eq!(decode_err("lists", &biz.to_string()), expected);
    }
}

#[test]
fn options_including_nested_options() {
    for biz in [
        json!({"o": null, "oo": null}),
        json!({"o": 5, "oo": {"some": null}}),
        json!({"o": 0, "oo": {"some": 3}}),
    ] {
        assert_eq!(round_trip("options", biz.clone()), biz);
    }
    // Absent option parameters are none.
    assert_eq!(
        round_trip("options", json!({})),
        json!({"o": null, "oo": null})
    );
    let args = decode_args(&func("options"), r#"{"oo": {"some": null}}"#).expect("ok");
    assert_eq!(args[1], Val::Option(Some(Box::new(Val::Option(None)))));
    assert_eq!(
        decode_err("options", r#"{"oo": 3}"#),
        r#"biz_content.oo: expected null or {"some": …} (nested option), got 3"#
    );
    assert_eq!(
        decode_err("options", r#"{"oo": {"some": "x"}}"#),
        r#"biz_content.oo.some: expected u32, got "x""#
    );
    assert_eq!(
        decode_err("options", r#"{"oo": {"sum": 1}}"#),
        r#"biz_content.oo: expected key "some", got "sum""#
    );
}

#[test]
fn results_with_and_without_payloads() {
    for biz in [
        json!({"r": {"ok": 1}, "empty": {"ok": null}, "half": {"err": null}}),
        json!({"r": {"err": "no"}, "empty": {"err": null}, "half": {"ok": 9}}),
    ] {
        assert_eq!(round_trip("results", biz.clone()), biz);
    }
    let base = |r: &str| format!(r#"{{"r": {r}, "empty": {{"ok": null}}, "half": {{"ok": 1}}}}"#);
    assert_eq!(
        decode_err("results", &base(r#"{"ok": 1, "err": "x"}"#)),
        r#"biz_content.r: expected an object with exactly one key ("ok" or "err"), got 2 keys"#
    );
    assert_eq!(
        decode_err("results", &base(r#"{"fine": 1}"#)),
        r#"biz_content.r: expected key "ok" or "err", got "fine""#
    );
    assert_eq!(
        decode_err("results", &base(r#"{"err": 1}"#)),
        "biz_content.r.err: expected string, got 1"
    );
    assert_eq!(
        decode_err("results", &base(r#""ok""#)),
        r#"biz_content.r: expected result (an object with `ok` or `err`), got "ok""#
    );
    let err = decode_err(
        "results",
        r#"{"r": {"ok": 1}, "empty": {"ok": 5}, "half": {"ok": 1}}"#,
    );
    assert_eq!(
        err,
        "biz_content.empty.ok: expected null (no payload), got 5"
    );
}

#[test]
fn variants_enums_and_flags() {
    for biz in [
        json!({"shape": {"circle": 1.5}, "color": "light-blue", "perms": []}),
        json!({"shape": {"square": [1.0, 2.0]}, "color": "red", "perms": ["read", "exec"]}),
        json!({"shape": "point", "color": "green", "perms": ["read", "write", "exec"]}),
    ] {
        assert_eq!(round_trip("shapes", biz.clone()), biz);
    }
    // A payload-less case may also be written as an object with null.
    let args = decode_args(
        &func("shapes"),
        r#"{"shape": {"point": null}, "color": "red", "perms": ["exec", "read"]}"#,
    )
    .expect("ok");
    assert_eq!(args[0], Val::Variant("point".into(), None));
    // Flags come out in declaration order.
    assert_eq!(args[2], Val::Flags(vec!["read".into(), "exec".into()]));
    let base = |shape: &str, color: &str, perms: &str| {
        format!(r#"{{"shape": {shape}, "color": {color}, "perms": {perms}}}"#)
    };
    for (biz, expected) in [
        (
            base(r#""circle""#, r#""red""#, "[]"),
            r#"biz_content.shape: case "circle" needs a payload: write {"circle": …}"#,
        ),
        (
            base(r#"{"triangle": 1}"#, r#""red""#, "[]"),
            r#"biz_content.shape: unknown case "triangle" (cases: circle, square, point)"#,
        ),
        (
            base(r#"{"square": [1, "a"]}"#, r#""red""#, "[]"),
            r#"biz_content.shape.square[1]: expected f32, got "a""#,
        ),
        (
            base(r#"{"point": 1}"#, r#""red""#, "[]"),
            "biz_content.shape.point: expected null (no payload), got 1",
        ),
        (
            base(r#""point""#, r#""blue""#, "[]"),
            r#"biz_content.color: unknown enum case "blue" (cases: red, green, light-blue)"#,
        ),
        (
            base(r#""point""#, "0", "[]"),
            "biz_content.color: expected enum (a string), got 0",
        ),
        (
            base(r#""point""#, r#""red""#, r#"["read", "sudo"]"#),
            r#"biz_content.perms[1]: unknown flag "sudo" (flags: read, write, exec)"#,
        ),
        (
            base(r#""point""#, r#""red""#, r#"["read", "read"]"#),
            r#"biz_content.perms[1]: flag "read" given twice"#,
        ),
        (
            base(r#""point""#, r#""red""#, r#""read""#),
            r#"biz_content.perms: expected flags (an array of strings), got "read""#,
        ),
    ] {
        assert_eq!(decode_err("shapes", &biz), expected);
    }
}

#[test]
fn maps_are_objects_or_pair_arrays() {
    let biz = json!({"by-name": {"a": 1, "b": 2}, "by-id": [[1, "one"], [2, "two"]]});
    assert_eq!(round_trip("maps", biz.clone()), biz);
    assert_eq!(
        decode_err("maps", r#"{"by-name": {"a": "x"}, "by-id": []}"#),
        r#"biz_content.by-name.a: expected u32, got "x""#
    );
    assert_eq!(
        decode_err("maps", r#"{"by-name": {}, "by-id": [[1]]}"#),
        "biz_content.by-id[0]: expected a [key, value] pair, got an array"
    );
    assert_eq!(
        decode_err("maps", r#"{"by-name": {}, "by-id": [["1", "x"]]}"#),
        r#"biz_content.by-id[0][0]: expected u32, got "1""#
    );
}

#[test]
fn resources_are_refused() {
    // (Futures and streams take the same path; the workspace's wasmtime is
    // built without component-model-async, so no component can have them.)
    assert_eq!(
        decode_err("take-handle", r#"{"h": 1}"#),
        "biz_content.h: a resource cannot be passed through the partner API"
    );
    let err = encode_results(&func("take-handle"), &[]).expect("no results");
    assert_eq!(err, None);
}

#[test]
fn results_encode_by_the_function_result_type() {
    assert_eq!(encode_results(&func("no-result"), &[]).expect("none"), None);
    assert_eq!(
        encode_results(&func("floats"), &[Val::Float32(0.1)]).expect("one"),
        Some(json!(0.1))
    );
    let f = func("options");
    let some_none = Val::Option(Some(Box::new(Val::Option(None))));
    assert_eq!(
        encode_results(&f, &[some_none]).expect("nested"),
        Some(json!({"some": null}))
    );
    let f = func("results");
    let ok = Val::Result(Ok(Some(Box::new(Val::String("fine".into())))));
    assert_eq!(
        encode_results(&f, &[ok]).expect("ok"),
        Some(json!({"ok": "fine"}))
    );
    let f = func("lists");
    let items = Val::List(vec![Val::Record(vec![
        ("sku".into(), Val::String("a".into())),
        ("qty".into(), Val::U32(1)),
        ("note".into(), Val::Option(None)),
    ])]);
    assert_eq!(
        encode_results(&f, &[items]).expect("list"),
        Some(json!([{"sku": "a", "qty": 1, "note": null}]))
    );
    let f = func("maps");
    let map = Val::Map(vec![(Val::String("k".into()), Val::U32(1))]);
    assert_eq!(
        encode_results(&f, &[map]).expect("map"),
        Some(json!({"k": 1}))
    );
}

#[test]
fn mistyped_results_are_errors_naming_the_path() {
    let err = encode_results(&func("place-order"), &[Val::String("x".into())]).expect_err("type");
    assert_eq!(
        err.to_string(),
        "result: the function returned a value that is not a u32"
    );
    let err = encode_results(&func("place-order"), &[]).expect_err("count");
    assert_eq!(err.path, "result");
    let f = func("lists");
    let items = Val::List(vec![Val::Record(vec![
        ("sku".into(), Val::String("a".into())),
        ("qty".into(), Val::S32(1)),
        ("note".into(), Val::Option(None)),
    ])]);
    let err = encode_results(&f, &[items]).expect_err("field");
    assert_eq!(err.path, "result[0].qty");
    let err =
        encode_results(&func("shapes"), &[Val::Variant("hexagon".into(), None)]).expect_err("case");
    assert!(err.message.contains("hexagon"), "{err}");
}
