//! Bad input to `cloudware serve`: each a clear one-line error and a
//! non-zero exit, before anything listens.

mod common;

use common::{cloudware, write_file};

/// Runs `cloudware serve PATH` and returns (exit success, stderr).
fn serve(path: &str) -> (bool, String) {
    let cache = tempfile::tempdir().expect("cache");
    let output = cloudware()
        .args(["serve", path, "--listen", "127.0.0.1:0", "--cache-dir"])
        .arg(cache.path())
        .output()
        .expect("run cloudware");
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

fn assert_one_line_error(stderr: &str, phrase: &str) {
    let lines: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
    let last = lines.last().copied().unwrap_or_default();
    assert!(last.starts_with("error: "), "{stderr}");
    assert!(last.contains(phrase), "{last:?} lacks {phrase:?}");
    assert_eq!(
        lines.iter().filter(|l| l.starts_with("error")).count(),
        1,
        "{stderr}"
    );
}

#[test]
fn a_missing_file() {
    let (ok, stderr) = serve("/no/such/component.wasm");
    assert!(!ok);
    assert_one_line_error(&stderr, "/no/such/component.wasm: no such file");
}

#[test]
fn a_file_that_is_not_wasm() {
    let dir = tempfile::tempdir().expect("dir");
    let path = write_file(dir.path(), "notes.wasm", b"just some text\n");
    let (ok, stderr) = serve(path.to_str().expect("utf-8"));
    assert!(!ok);
    assert_one_line_error(&stderr, "not a WebAssembly file");
}

#[test]
fn a_core_module_instead_of_a_component() {
    let dir = tempfile::tempdir().expect("dir");
    let module = wat::parse_str("(module (func (export \"f\")))").expect("wat");
    let path = write_file(dir.path(), "core.wasm", &module);
    let (ok, stderr) = serve(path.to_str().expect("utf-8"));
    assert!(!ok);
    assert_one_line_error(&stderr, "core WebAssembly module, not a component");
}

#[test]
fn a_component_without_the_http_handler() {
    let dir = tempfile::tempdir().expect("dir");
    let component = wat::parse_str(
        r#"(component
             (core module $m (func (export "run")))
             (core instance $i (instantiate $m))
             (func (export "run") (canon lift (core func $i "run"))))"#,
    )
    .expect("wat");
    let path = write_file(dir.path(), "nohandler.wasm", &component);
    let (ok, stderr) = serve(path.to_str().expect("utf-8"));
    assert!(!ok);
    assert_one_line_error(
        &stderr,
        "does not export `wasi:http/incoming-handler@0.2.x`",
    );
    assert!(
        stderr.contains("run"),
        "the error lists what it exports: {stderr}"
    );
}

#[test]
fn a_component_importing_an_unknown_interface() {
    let dir = tempfile::tempdir().expect("dir");
    let component = wat::parse_str(
        r#"(component
             (import "acme:orders/api@1.0.0" (instance (export "place" (func)))))"#,
    )
    .expect("wat");
    let path = write_file(dir.path(), "imports.wasm", &component);
    let (ok, stderr) = serve(path.to_str().expect("utf-8"));
    assert!(!ok);
    assert_one_line_error(
        &stderr,
        "imports `acme:orders/api@1.0.0`, which is not a platform interface",
    );
}

#[test]
fn a_malformed_config_file() {
    let dir = tempfile::tempdir().expect("dir");
    let config = write_file(dir.path(), "c.toml", b"[limits]\nmax_memroy = 1\n");
    let output = cloudware()
        .args(["serve", cloudware_test_artifacts::HELLO, "--config"])
        .arg(&config)
        .output()
        .expect("run");
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_one_line_error(&stderr, "max_memroy");
}

#[test]
fn a_malformed_allow_list_entry() {
    let output = cloudware()
        .args([
            "serve",
            cloudware_test_artifacts::HELLO,
            "--allow-outbound",
            "http://x.com/",
        ])
        .output()
        .expect("run");
    assert!(!output.status.success());
    assert_one_line_error(
        &String::from_utf8_lossy(&output.stderr),
        "invalid outbound host",
    );
}
