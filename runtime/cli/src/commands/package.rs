//! `cloudware push FILE.wasm` and `cloudware packages`.

use super::global::ClientArgs;
use super::table::{self, Align, Table};
use super::{Ctx, Failure, parse};
use clap::Args;
use cloudware_api::wire;
use std::io::Read;
use std::path::{Path, PathBuf};

/// The first bytes of every WebAssembly binary.
const WASM_MAGIC: &[u8; 4] = b"\0asm";

/// Arguments of `cloudware push`.
#[derive(Args, Debug)]
pub struct PushArgs {
    /// The package: a WebAssembly component (`.wasm`).
    #[arg(value_name = "FILE.wasm")]
    pub file: PathBuf,
    /// The tenant to store it for (operator tokens; others act for their own).
    #[arg(long, value_name = "TENANT", value_parser = parse::name)]
    pub tenant: Option<String>,
    #[command(flatten)]
    pub global: ClientArgs,
}

/// Arguments of `cloudware packages`.
#[derive(Args, Debug)]
pub struct PackagesArgs {
    /// Whose packages (operator tokens; others see their own).
    #[arg(long, value_name = "TENANT", value_parser = parse::name)]
    pub tenant: Option<String>,
    #[command(flatten)]
    pub global: ClientArgs,
}

/// `cloudware push`: prints the digest as the last line of stdout.
pub async fn push(args: PushArgs) -> anyhow::Result<()> {
    let ctx = Ctx::new(&args.global)?;
    let info = push_file(&ctx, args.tenant.as_deref(), &args.file).await?;
    ctx.print(&info, || format!("{}\n", info.digest))
}

/// `cloudware packages`.
pub async fn list(args: PackagesArgs) -> anyhow::Result<()> {
    let ctx = Ctx::new(&args.global)?;
    let packages = ctx.client.list_packages(args.tenant.as_deref()).await?;
    ctx.print(&packages, || render_packages(&packages))
}

/// Checks `path` locally, uploads it with a progress bar on stderr, and
/// says on stderr whether it was new or already stored.
pub async fn push_file(
    ctx: &Ctx,
    tenant: Option<&str>,
    path: &Path,
) -> anyhow::Result<wire::PackageInfo> {
    let (file, len) = open_wasm(path)?;
    let bar = progress_bar(ctx.show_progress(), len, path);
    let on_chunk = {
        let bar = bar.clone();
        move |n: u64| {
            bar.inc(n);
            if bar.position() >= len {
                bar.set_message("checking…");
            }
        }
    };
    let result = ctx
        .client
        .push_package(tenant, tokio::fs::File::from_std(file), len, on_chunk)
        .await;
    bar.finish_and_clear();
    let (info, new) = result?;
    if !ctx.json() {
        let what = if new { "stored" } else { "already stored" };
        eprintln!(
            "{}: {what} ({}, exports: {})",
            path.display(),
            table::bytes(info.size),
            list_or_none(&info.exports)
        );
    }
    Ok(info)
}

/// Opens `path` if it looks like a WebAssembly binary; returns it, rewound,
/// with its length.
pub fn open_wasm(path: &Path) -> anyhow::Result<(std::fs::File, u64)> {
    let shown = path.display();
    let mut file = match std::fs::File::open(path) {
        Ok(file) => file,
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => {
            return Err(Failure::rejected(format!("{shown}: no such file")).into());
        }
        Err(err) => return Err(anyhow::anyhow!("cannot open {shown}: {err}")),
    };
    let metadata = file
        .metadata()
        .map_err(|err| anyhow::anyhow!("cannot read {shown}: {err}"))?;
    if !metadata.is_file() {
        return Err(Failure::rejected(format!("{shown} is not a file")).into());
    }
    let mut head = Vec::with_capacity(64);
    (&mut file)
        .take(64)
        .read_to_end(&mut head)
        .map_err(|err| anyhow::anyhow!("cannot read {shown}: {err}"))?;
    if let Some(problem) = not_wasm(&head) {
        return Err(Failure::rejected(format!("{shown} {problem}")).into());
    }
    // A fresh handle starts at offset 0 for the upload.
    let file =
        std::fs::File::open(path).map_err(|err| anyhow::anyhow!("cannot open {shown}: {err}"))?;
    Ok((file, metadata.len()))
}

/// Why a file starting with `head` is not a WebAssembly binary, if it is not.
fn not_wasm(head: &[u8]) -> Option<&'static str> {
    if head.starts_with(WASM_MAGIC) {
        None
    } else if head.is_empty() {
        Some("is empty, not a WebAssembly component")
    } else if head.trim_ascii_start().starts_with(b"(") {
        Some(
            "is WebAssembly text, not a binary: convert it first (e.g. `wasm-tools parse FILE.wat -o FILE.wasm`)",
        )
    } else {
        Some("is not a WebAssembly component (it does not start with \\0asm)")
    }
}

fn progress_bar(show: bool, len: u64, path: &Path) -> indicatif::ProgressBar {
    if !show {
        return indicatif::ProgressBar::hidden();
    }
    let bar = indicatif::ProgressBar::with_draw_target(
        Some(len),
        indicatif::ProgressDrawTarget::stderr(),
    );
    if let Ok(style) = indicatif::ProgressStyle::with_template(
        "{prefix} [{wide_bar}] {binary_bytes}/{binary_total_bytes} {binary_bytes_per_sec} {msg}",
    ) {
        bar.set_style(style.progress_chars("=> "));
    }
    let name = path.file_name().map_or_else(
        || path.display().to_string(),
        |n| n.to_string_lossy().into_owned(),
    );
    bar.set_prefix(format!("pushing {name}"));
    bar
}

fn list_or_none(items: &[String]) -> String {
    if items.is_empty() {
        "none".to_owned()
    } else {
        items.join(", ")
    }
}

fn render_packages(packages: &[wire::PackageInfo]) -> String {
    if packages.is_empty() {
        return "no packages\n".to_owned();
    }
    let mut table = Table::new(&[
        ("DIGEST", Align::Left),
        ("SIZE", Align::Right),
        ("EXPORTS", Align::Left),
    ]);
    for package in packages {
        table.row(vec![
            package.digest.clone(),
            table::bytes(package.size),
            list_or_none(&package.exports),
        ]);
    }
    table.render()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn local_wasm_check() {
        let dir = tempfile::tempdir().unwrap();
        let good = dir.path().join("good.wasm");
        std::fs::write(&good, b"\0asm\x0d\x00\x01\x00rest").unwrap();
        let (mut file, len) = open_wasm(&good).unwrap();
        assert_eq!(len, 12);
        let mut all = Vec::new();
        file.read_to_end(&mut all).unwrap();
        assert_eq!(all, b"\0asm\x0d\x00\x01\x00rest");

        let cases: [(&str, &[u8], &str); 3] = [
            ("empty.wasm", b"", "is empty"),
            ("text.wat", b"  (component)", "is WebAssembly text"),
            ("other.wasm", b"\x7fELF", "does not start with \\0asm"),
        ];
        for (name, bytes, expected) in cases {
            let path = dir.path().join(name);
            std::fs::write(&path, bytes).unwrap();
            let err = open_wasm(&path).unwrap_err();
            assert!(err.to_string().contains(expected), "{name}: {err}");
            assert_eq!(super::super::exit_code(&err), 5);
        }
        let err = open_wasm(&dir.path().join("missing.wasm")).unwrap_err();
        assert!(
            err.to_string().ends_with("missing.wasm: no such file"),
            "{err}"
        );
        assert_eq!(super::super::exit_code(&err), 5);
        let err = open_wasm(dir.path()).unwrap_err();
        assert!(err.to_string().ends_with("is not a file"), "{err}");
    }

    #[test]
    fn packages_table() {
        let digest = format!("sha256:{}", "ab".repeat(32));
        let packages = vec![wire::PackageInfo {
            digest: digest.clone(),
            size: 2048,
            imports: vec![],
            exports: vec!["wasi:http/incoming-handler@0.2.6".into()],
            existed: false,
        }];
        assert_eq!(
            render_packages(&packages),
            format!(
                "DIGEST{}     SIZE  EXPORTS\n{digest}  2.0 KiB  wasi:http/incoming-handler@0.2.6\n",
                " ".repeat(65)
            )
        );
        assert_eq!(render_packages(&[]), "no packages\n");
    }
}
