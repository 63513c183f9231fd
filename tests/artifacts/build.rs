//! Builds the guest workspaces (`cloudware-examples/` and `tests/programs/`)
//! for `wasm32-wasip2` and writes `$OUT_DIR/artifacts.rs`, which names the
//! path of every component built.
//!
//! Guests are compiled by a child `cargo build --release` into one shared
//! target directory, `<repository>/target/guests`, so they are built once
//! however many host crates use them, and stay out of the watched sources.

use std::env;
use std::ffi::OsStr;
use std::fmt::Write as _;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

const TARGET: &str = "wasm32-wasip2";

/// A guest workspace and the components it builds.
struct Workspace {
    /// Directory of the workspace, relative to the repository root.
    dir: &'static str,
    components: &'static [Component],
}

/// One component: its Rust constant, its crate name, and the `.wasm` stem.
struct Component {
    constant: &'static str,
    name: &'static str,
    file: &'static str,
}

const WORKSPACES: &[Workspace] = &[
    Workspace {
        dir: "cloudware-examples",
        components: &[Component {
            constant: "HELLO",
            name: "hello",
            file: "hello",
        }],
    },
    Workspace {
        dir: "tests/programs",
        components: &[
            Component {
                constant: "WASIP2_HELLO",
                name: "wasip2-hello",
                file: "wasip2_hello",
            },
            Component {
                constant: "HOSTILE",
                name: "hostile",
                file: "hostile",
            },
            Component {
                constant: "WSTD_HELLO",
                name: "wstd-hello",
                file: "wstd_hello",
            },
        ],
    },
];

/// Sources the guests are built from, relative to the repository root.
const WATCHED: &[&str] = &["wit", "sdk", "cloudware-examples", "tests/programs"];

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
    check_target_installed()?;

    let mut consts = String::new();
    let mut all = String::new();
    for workspace in WORKSPACES {
        build(&cargo, &root, workspace.dir, &target_dir)?;
        for component in workspace.components {
            let wasm = target_dir
                .join(TARGET)
                .join("release")
                .join(format!("{}.wasm", component.file));
            // A deleted artifact (say, `rm -rf target/guests`) reruns this
            // script.
            println!("cargo::rerun-if-changed={}", wasm.display());
            if !wasm.is_file() {
                return Err(format!(
                    "building {} did not produce {}",
                    workspace.dir,
                    wasm.display()
                ));
            }
            let path = wasm
                .to_str()
                .ok_or_else(|| format!("the path {} is not UTF-8", wasm.display()))?;
            let (constant, name, dir) = (component.constant, component.name, workspace.dir);
            // `writeln!` into a `String` cannot fail.
            let _ = writeln!(
                consts,
                "/// The `{name}` component, built from `{dir}/{name}`.\n\
                 pub const {constant}: &str = {path:?};"
            );
            let _ = writeln!(all, "    ({name:?}, {constant}),");
        }
    }

    let out_dir = env_path("OUT_DIR")?;
    let code = format!(
        "{consts}\n/// Every component above as `(crate name, path)`.\n\
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

/// Fails with one actionable line if the standard library for the guest
/// target is not installed in the active toolchain.
fn check_target_installed() -> Result<(), String> {
    let rustc = env::var_os("RUSTC").unwrap_or_else(|| "rustc".into());
    let output = Command::new(&rustc)
        .args(["--print", "sysroot"])
        .output()
        .map_err(|err| format!("cannot run rustc: {err}"))?;
    let sysroot = String::from_utf8_lossy(&output.stdout);
    let target_lib = Path::new(sysroot.trim())
        .join("lib")
        .join("rustlib")
        .join(TARGET);
    if output.status.success() && !target_lib.is_dir() {
        return Err(format!(
            "the {TARGET} target is missing: run `rustup target add {TARGET}`"
        ));
    }
    Ok(())
}

/// Runs `cargo build --release --target wasm32-wasip2` for the workspace in
/// `root/dir`.
fn build(cargo: &OsStr, root: &Path, dir: &str, target_dir: &Path) -> Result<(), String> {
    let mut command = Command::new(cargo);
    command
        .arg("build")
        .arg("--release")
        .arg("--target")
        .arg(TARGET)
        .arg("--manifest-path")
        .arg(root.join(dir).join("Cargo.toml"))
        .arg("--target-dir")
        .arg(target_dir)
        // Cargo reads build-script stdout as instructions; keep the child's
        // output on stderr, which cargo shows when the build fails.
        .stdout(Stdio::from(io::stderr()))
        .stderr(Stdio::inherit());
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

/// Emits `rerun-if-changed` for every source file under `dir`, skipping
/// build output (`target`) and hidden entries other than `.cargo`.
fn watch(dir: &Path) -> io::Result<()> {
    for entry in fs::read_dir(dir)? {
        let entry = entry?;
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if name == "target" || (name.starts_with('.') && name != ".cargo") {
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
