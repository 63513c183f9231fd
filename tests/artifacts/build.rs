//! Builds the guest components the tests run and writes
//! `$OUT_DIR/artifacts.rs`, which names the path of every component built:
//!
//! - the guest workspaces `cloudware-examples/` and `tests/programs/`,
//!   compiled for `wasm32-wasip2`;
//! - `tests/programs/adapter-hello`, compiled for `wasm32-wasip1` and turned
//!   into a component the way `cargo component build` does it: with
//!   `wit-component`'s `ComponentEncoder` and the `wasi_snapshot_preview1`
//!   reactor adapter;
//! - `tests/programs-js`, a JavaScript handler componentized with
//!   `jco componentize` (componentize-js), when `node` and `npm` are on the
//!   `PATH`.
//!
//! Rust guests are compiled by a child `cargo build --release` into one
//! shared target directory, `<repository>/target/guests`, so they are built
//! once however many host crates use them, and stay out of the watched
//! sources. The JavaScript toolchain is installed (`npm ci`) into
//! `target/guests/js`; both it and the componentization are redone only when
//! their inputs change.

use std::env;
use std::ffi::OsStr;
use std::fmt::Write as _;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const TARGET: &str = "wasm32-wasip2";

/// The target cargo-component builds core modules for.
const WASIP1: &str = "wasm32-wasip1";

#[path = "build/guests.rs"]
mod guests;
use guests::{ADAPTED, Component, WORKSPACES, Workspace};

/// Sources the Rust guests are built from, relative to the repository root.
const WATCHED: &[&str] = &["wit", "sdk", "cloudware-examples", "tests/programs"];

/// The JavaScript guest: its directory, and the files in it that it is built
/// from (everything else there, `node_modules/` above all, is not watched).
const JS_DIR: &str = "tests/programs-js";
const JS_INPUTS: &[&str] = &["package.json", "package-lock.json", "src", "wit"];
/// The JS module `jco componentize` builds, and the WIT world it targets.
const JS_SOURCE: &str = "src/hello.js";
const JS_WORLD: &str = "cloudware:jco-hello/proxy";
/// Setting this (to anything but `0`) skips the JavaScript guest, as if
/// `node` were not installed.
const SKIP_JS_VAR: &str = "CLOUDWARE_SKIP_JS";
/// Bounds of the two slow JavaScript steps (a clean `npm ci` downloads
/// about 100 MB; componentizing runs SpiderMonkey's pre-initialization).
const NPM_CI_TIMEOUT: Duration = Duration::from_secs(15 * 60);
const COMPONENTIZE_TIMEOUT: Duration = Duration::from_secs(10 * 60);

/// Variables the outer cargo sets for this build script (or that a wrapper
/// such as clippy or a coverage tool sets) which would leak into the child
/// build and break or distort it.
const LEAKY_VARS: &[&str] = &[
    "RUSTFLAGS",
    "CARGO_ENCODED_RUSTFLAGS",
    "RUSTC_WORKSPACE_WRAPPER",
    "RUSTC_WRAPPER",
    "CARGO_TARGET_DIR",
    "CARGO_BUILD_TARGET",
    "CARGO_BUILD_TARGET_DIR",
    "CARGO_PRIMARY_PACKAGE",
];

/// Prefixes of variables cargo sets per build script (target cfgs, features).
const LEAKY_PREFIXES: &[&str] = &["CARGO_CFG_", "CARGO_FEATURE_"];

fn main() {
    if let Err(message) = run() {
        // One clear line, shown by cargo as the build error.
        println!("cargo::error={message}");
    }
}

/// The generated constants, and the `(name, constant)` entries of `ALL`.
#[derive(Default)]
struct Generated {
    consts: String,
    all: String,
}

impl Generated {
    fn component(
        &mut self,
        constant: &str,
        name: &str,
        dir: &str,
        path: &Path,
    ) -> Result<(), String> {
        let path = utf8(path)?;
        // `writeln!` into a `String` cannot fail.
        let _ = writeln!(
            self.consts,
            "/// The `{name}` component, built from `{dir}`.\n\
             pub const {constant}: &str = {path:?};"
        );
        let _ = writeln!(self.all, "    ({name:?}, {constant}),");
        Ok(())
    }
}

fn run() -> Result<(), String> {
    let manifest_dir = env_path("CARGO_MANIFEST_DIR")?;
    let root = manifest_dir
        .join("../..")
        .canonicalize()
        .map_err(|err| format!("cannot resolve the repository root: {err}"))?;
    let target_dir = root.join("target").join("guests");
    let cargo = env::var_os("CARGO").unwrap_or_else(|| "cargo".into());

    for dir in WATCHED {
        watch(&root.join(dir))
            .map_err(|err| format!("cannot list the guest sources in {dir}: {err}"))?;
    }
    for input in JS_INPUTS {
        let path = root.join(JS_DIR).join(input);
        let watched = if path.is_dir() {
            watch(&path)
        } else {
            println!("cargo::rerun-if-changed={}", path.display());
            Ok(())
        };
        watched.map_err(|err| format!("cannot list the sources in {}: {err}", path.display()))?;
    }
    println!("cargo::rerun-if-env-changed={SKIP_JS_VAR}");
    check_target_installed(TARGET)?;
    check_target_installed(WASIP1)?;

    let mut generated = Generated::default();
    for workspace in WORKSPACES {
        build(&cargo, &root, workspace.dir, TARGET, &target_dir)?;
        for component in workspace.components {
            let wasm = built(&target_dir, TARGET, workspace, component)?;
            let dir = format!("{}/{}", workspace.dir, component.name);
            generated.component(component.constant, component.name, &dir, &wasm)?;
        }
    }

    let adapted_dir = target_dir.join("adapted");
    for workspace in ADAPTED {
        build(&cargo, &root, workspace.dir, WASIP1, &target_dir)?;
        for component in workspace.components {
            let module = built(&target_dir, WASIP1, workspace, component)?;
            let wasm = adapted_dir.join(format!("{}.wasm", component.file));
            componentize_with_adapter(&module, &wasm)?;
            println!("cargo::rerun-if-changed={}", wasm.display());
            generated.component(component.constant, component.name, workspace.dir, &wasm)?;
        }
    }

    let jco_hello = if js_skipped() {
        println!(
            "cargo::warning=JCO_HELLO is None: {SKIP_JS_VAR} is set, so the jco component \
             ({JS_DIR}) was not built"
        );
        "None".to_owned()
    } else if let Some(missing) = missing_node() {
        println!(
            "cargo::warning=JCO_HELLO is None: {missing}, so the jco component ({JS_DIR}) was not \
             built; install Node.js 20 or later and `touch {JS_DIR}/package.json` to build it"
        );
        "None".to_owned()
    } else {
        let wasm = build_js(&root, &target_dir.join("js"))?;
        println!("cargo::rerun-if-changed={}", wasm.display());
        let path = utf8(&wasm)?;
        let _ = writeln!(generated.all, "    (\"jco-hello\", {path:?}),");
        format!("Some({path:?})")
    };

    let out_dir = env_path("OUT_DIR")?;
    let Generated { consts, all } = generated;
    let code = format!(
        "{consts}\n/// The `jco-hello` component (JavaScript, built with `jco componentize`), or\n\
         /// `None` if `node` or `npm` was missing (or `{SKIP_JS_VAR}` set) when this\n\
         /// crate was built.\n\
         pub const JCO_HELLO: Option<&str> = {jco_hello};\n\n\
         /// Every component above as `(crate name, path)`.\n\
         pub const ALL: &[(&str, &str)] = &[\n{all}];\n"
    );
    fs::write(out_dir.join("artifacts.rs"), code)
        .map_err(|err| format!("cannot write artifacts.rs: {err}"))
}

fn env_path(name: &str) -> Result<PathBuf, String> {
    env::var_os(name)
        .map(PathBuf::from)
        .ok_or_else(|| format!("cargo did not set {name}"))
}

fn utf8(path: &Path) -> Result<&str, String> {
    path.to_str()
        .ok_or_else(|| format!("the path {} is not UTF-8", path.display()))
}

/// The `.wasm` that building `component` of `workspace` for `target` left in
/// `target_dir`, which must exist.
fn built(
    target_dir: &Path,
    target: &str,
    workspace: &Workspace,
    component: &Component,
) -> Result<PathBuf, String> {
    let wasm = target_dir
        .join(target)
        .join("release")
        .join(format!("{}.wasm", component.file));
    // A deleted artifact (say, `rm -rf target/guests`) reruns this script.
    println!("cargo::rerun-if-changed={}", wasm.display());
    if wasm.is_file() {
        Ok(wasm)
    } else {
        Err(format!(
            "building {} did not produce {}",
            workspace.dir,
            wasm.display()
        ))
    }
}

/// Fails with one actionable line if the standard library for `target` is
/// not installed in the active toolchain.
fn check_target_installed(target: &str) -> Result<(), String> {
    let rustc = env::var_os("RUSTC").unwrap_or_else(|| "rustc".into());
    let output = Command::new(&rustc)
        .args(["--print", "sysroot"])
        .output()
        .map_err(|err| format!("cannot run rustc: {err}"))?;
    let sysroot = String::from_utf8_lossy(&output.stdout);
    let target_lib = Path::new(sysroot.trim())
        .join("lib")
        .join("rustlib")
        .join(target);
    if output.status.success() && !target_lib.is_dir() {
        return Err(format!(
            "the {target} target is missing: run `rustup target add {target}`"
        ));
    }
    Ok(())
}

/// Runs `cargo build --release --target TARGET` for the workspace in
/// `root/dir`.
fn build(
    cargo: &OsStr,
    root: &Path,
    dir: &str,
    target: &str,
    target_dir: &Path,
) -> Result<(), String> {
    let mut command = Command::new(cargo);
    command
        .arg("build")
        .arg("--release")
        .arg("--target")
        .arg(target)
        .arg("--manifest-path")
        .arg(root.join(dir).join("Cargo.toml"))
        .arg("--target-dir")
        .arg(target_dir);
    output_to_stderr(&mut command);
    for var in LEAKY_VARS {
        command.env_remove(var);
    }
    for (var, _) in env::vars_os() {
        let leaky = var
            .to_str()
            .is_some_and(|var| LEAKY_PREFIXES.iter().any(|prefix| var.starts_with(prefix)));
        if leaky {
            command.env_remove(&var);
        }
    }
    let status = command
        .status()
        .map_err(|err| format!("cannot run cargo to build {dir}: {err}"))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!(
            "building the guest workspace {dir} failed ({status}); its errors are above"
        ))
    }
}

/// Cargo reads build-script stdout as instructions; keep a child's output
/// on stderr, which cargo shows when the build fails.
fn output_to_stderr(command: &mut Command) {
    command
        .stdin(Stdio::null())
        .stdout(Stdio::from(io::stderr()))
        .stderr(Stdio::inherit());
}

/// Turns the `wasm32-wasip1` core module at `module` into a component at
/// `out`, exactly as `cargo component build` does for a library crate:
/// `ComponentEncoder` with the module (whose `component-type` custom section
/// `wit-bindgen` wrote) and the `wasi_snapshot_preview1` reactor adapter of
/// the wasmtime release the runtime is built on, validating the result.
fn componentize_with_adapter(module: &Path, out: &Path) -> Result<(), String> {
    use wasi_preview1_component_adapter_provider::{
        WASI_SNAPSHOT_PREVIEW1_ADAPTER_NAME, WASI_SNAPSHOT_PREVIEW1_REACTOR_ADAPTER,
    };

    let bytes = fs::read(module)
        .map_err(|err| format!("cannot read the core module {}: {err}", module.display()))?;
    let failed = |err: anyhow::Error| {
        // `{:#}` puts the whole cause chain on one line.
        format!(
            "cannot componentize {} with the preview1 adapter: {err:#}",
            module.display()
        )
    };
    let component = wit_component::ComponentEncoder::default()
        .module(&bytes)
        .map_err(failed)?
        .adapter(
            WASI_SNAPSHOT_PREVIEW1_ADAPTER_NAME,
            WASI_SNAPSHOT_PREVIEW1_REACTOR_ADAPTER,
        )
        .map_err(failed)?
        .validate(true)
        .encode()
        .map_err(failed)?;
    write_if_changed(out, &component)
}

/// Writes `bytes` to `path` (atomically, through a temporary file beside
/// it) unless the file already holds exactly them, so that an unchanged
/// output keeps its modification time and does not rerun this script.
fn write_if_changed(path: &Path, bytes: &[u8]) -> Result<(), String> {
    if fs::read(path).is_ok_and(|old| old == bytes) {
        return Ok(());
    }
    let dir = path
        .parent()
        .ok_or_else(|| format!("{} has no parent directory", path.display()))?;
    fs::create_dir_all(dir).map_err(|err| format!("cannot create {}: {err}", dir.display()))?;
    let temporary = path.with_extension("wasm.partial");
    fs::write(&temporary, bytes)
        .and_then(|()| fs::rename(&temporary, path))
        .map_err(|err| format!("cannot write {}: {err}", path.display()))
}

/// Whether the JavaScript guest is to be skipped on request.
fn js_skipped() -> bool {
    env::var_os(SKIP_JS_VAR).is_some_and(|value| !value.is_empty() && value != "0")
}

/// `None` if `node` and `npm` both run; otherwise which one does not.
fn missing_node() -> Option<String> {
    for tool in ["node", "npm"] {
        let runs = Command::new(tool)
            .arg("--version")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|status| status.success());
        if !runs {
            return Some(format!("`{tool}` is not on the PATH"));
        }
    }
    None
}

/// Builds the JavaScript guest into `work` (`target/guests/js`) and returns
/// the component's path.
///
/// `npm ci` installs the locked toolchain (`@bytecodealliance/jco` and its
/// dependencies, from the npm registry only) into `work/node_modules` when
/// `package-lock.json` changed since the last install; `jco componentize`
/// runs when the JS source, the WIT, or the lock file changed since the
/// component was last built. Each step's input digest is kept in a stamp
/// file written only after the step succeeded.
fn build_js(root: &Path, work: &Path) -> Result<PathBuf, String> {
    let js_dir = root.join(JS_DIR);
    fs::create_dir_all(work).map_err(|err| format!("cannot create {}: {err}", work.display()))?;
    // Two builds at once (say `cargo test` and an editor's `cargo check`)
    // take turns, as cargo's own lock on `target/guests` makes them do for
    // the Rust guests. The lock goes with the file, when this returns.
    let lock_path = work.join(".build.lock");
    let lock = fs::File::create(&lock_path)
        .and_then(|file| file.lock().map(|()| file))
        .map_err(|err| format!("cannot lock {}: {err}", lock_path.display()))?;

    // The install.
    let mut manifests = Vec::new();
    for file in ["package.json", "package-lock.json"] {
        let bytes = fs::read(js_dir.join(file))
            .map_err(|err| format!("cannot read {JS_DIR}/{file}: {err}"))?;
        manifests.push((file.to_owned(), bytes));
    }
    let install_digest = digest(&manifests);
    let install_stamp = work.join("node_modules").join(".cloudware-install");
    if !stamp_matches(&install_stamp, &install_digest) {
        for (file, bytes) in &manifests {
            fs::write(work.join(file), bytes)
                .map_err(|err| format!("cannot copy {file} to {}: {err}", work.display()))?;
        }
        let mut npm = Command::new("npm");
        npm.current_dir(work)
            .args(["ci", "--ignore-scripts", "--no-audit", "--no-fund"])
            .args(["--loglevel", "warn"]);
        run_bounded(npm, "npm ci", NPM_CI_TIMEOUT)?;
        write_stamp(&install_stamp, &install_digest)?;
    }

    // The component.
    let mut inputs = manifests;
    collect_files(&js_dir, Path::new("src"), &mut inputs)?;
    collect_files(&js_dir, Path::new("wit"), &mut inputs)?;
    inputs.push(("world".to_owned(), JS_WORLD.as_bytes().to_vec()));
    let build_digest = digest(&inputs);
    let wasm = work.join("jco_hello.wasm");
    let build_stamp = work.join("jco_hello.stamp");
    if !(wasm.is_file() && stamp_matches(&build_stamp, &build_digest)) {
        let partial = work.join("jco_hello.wasm.partial");
        let mut jco = Command::new("node");
        // `node_modules/.bin/jco` links to jco's command-line script.
        jco.current_dir(work)
            .arg(work.join("node_modules").join(".bin").join("jco"))
            .arg("componentize")
            .arg(js_dir.join(JS_SOURCE))
            .arg("--wit")
            .arg(js_dir.join("wit"))
            .arg("--world-name")
            .arg(JS_WORLD)
            .arg("--out")
            .arg(&partial);
        run_bounded(jco, "jco componentize", COMPONENTIZE_TIMEOUT)?;
        fs::rename(&partial, &wasm)
            .map_err(|err| format!("cannot move the jco output to {}: {err}", wasm.display()))?;
        write_stamp(&build_stamp, &build_digest)?;
    }
    drop(lock);
    Ok(wasm)
}

/// Runs `command` with its output on stderr, killing it after `limit`.
fn run_bounded(mut command: Command, what: &str, limit: Duration) -> Result<(), String> {
    output_to_stderr(&mut command);
    let mut child = command
        .spawn()
        .map_err(|err| format!("cannot run {what}: {err}"))?;
    let deadline = Instant::now() + limit;
    loop {
        match child.try_wait() {
            Ok(Some(status)) if status.success() => return Ok(()),
            Ok(Some(status)) => {
                return Err(format!(
                    "{what} failed ({status}) building {JS_DIR}; its output is above \
                     (set {SKIP_JS_VAR}=1 to build without the jco component)"
                ));
            }
            Ok(None) if Instant::now() >= deadline => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!(
                    "{what} did not finish within {} s building {JS_DIR}; killed it",
                    limit.as_secs()
                ));
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(100)),
            Err(err) => return Err(format!("cannot wait for {what}: {err}")),
        }
    }
}

/// Appends `(relative path, contents)` of every file under `base/dir`,
/// in a stable order.
fn collect_files(
    base: &Path,
    dir: &Path,
    files: &mut Vec<(String, Vec<u8>)>,
) -> Result<(), String> {
    let full = base.join(dir);
    let mut entries: Vec<_> = fs::read_dir(&full)
        .and_then(|entries| entries.collect::<io::Result<Vec<_>>>())
        .map_err(|err| format!("cannot list {}: {err}", full.display()))?;
    entries.sort_by_key(|entry| entry.file_name());
    for entry in entries {
        let relative = dir.join(entry.file_name());
        if entry.path().is_dir() {
            collect_files(base, &relative, files)?;
        } else {
            let bytes = fs::read(entry.path())
                .map_err(|err| format!("cannot read {}: {err}", entry.path().display()))?;
            files.push((relative.to_string_lossy().into_owned(), bytes));
        }
    }
    Ok(())
}

/// A digest of named byte strings: 64-bit FNV-1a over each name and
/// contents with their lengths, as hex. It only decides whether a build step
/// is up to date, so it needs to be stable, not cryptographic.
fn digest(items: &[(String, Vec<u8>)]) -> String {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    let mut feed = |bytes: &[u8]| {
        for byte in bytes {
            hash ^= u64::from(*byte);
            hash = hash.wrapping_mul(0x0100_0000_01b3);
        }
    };
    for (name, bytes) in items {
        feed(&(name.len() as u64).to_le_bytes());
        feed(name.as_bytes());
        feed(&(bytes.len() as u64).to_le_bytes());
        feed(bytes);
    }
    format!("{hash:016x}")
}

fn stamp_matches(stamp: &Path, digest: &str) -> bool {
    fs::read_to_string(stamp).is_ok_and(|text| text.trim() == digest)
}

fn write_stamp(stamp: &Path, digest: &str) -> Result<(), String> {
    fs::write(stamp, format!("{digest}\n"))
        .map_err(|err| format!("cannot write {}: {err}", stamp.display()))
}

/// Emits `rerun-if-changed` for every source file under `dir`, skipping
/// build output (`target`), installed packages (`node_modules`) and hidden
/// entries other than `.cargo`.
fn watch(dir: &Path) -> io::Result<()> {
    for entry in fs::read_dir(dir)? {
        let entry = entry?;
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if name == "target" || name == "node_modules" || (name.starts_with('.') && name != ".cargo")
        {
            continue;
        }
        let path = entry.path();
        if entry.file_type()?.is_dir() {
            watch(&path)?;
        } else {
            println!("cargo::rerun-if-changed={}", path.display());
        }
    }
    Ok(())
}
