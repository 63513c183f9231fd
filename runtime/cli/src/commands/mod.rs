//! The commands that drive a running platform through its admin API.
//!
//! Each runs on a current-thread tokio runtime of its own, prints results
//! on stdout (text, or the server's JSON with `--output json`) and progress
//! and notes on stderr.

pub mod deploy;
pub mod global;
pub mod grants;
pub mod node;
pub mod package;
pub mod parse;
pub mod partner;
pub mod queue;
pub mod scale;
pub mod status;
pub mod table;
pub mod tenant;
pub mod token;

use crate::client::{ApiError, Client, exit};
use anyhow::Context as _;
use clap::Subcommand;
use global::{ClientArgs, Connection, Output};
use serde::Serialize;
use std::fmt;
use std::io::{IsTerminal, Write};

/// The client commands (flattened into the top-level command list).
#[derive(Subcommand, Debug)]
pub enum ClientCommand {
    /// Upload a `.wasm` package; prints its digest (`sha256:…`) last.
    Push(package::PushArgs),
    /// List the stored packages.
    Packages(package::PackagesArgs),
    /// Deploy a package as a new version of an app and move traffic to it.
    Deploy(Box<deploy::DeployArgs>),
    /// Make an earlier version of an app current again.
    Rollback(deploy::RollbackArgs),
    /// List every version of an app.
    History(deploy::HistoryArgs),
    /// List the apps with their current (or latest) version.
    Apps(deploy::AppsArgs),
    /// Set how many instances of an app may run.
    Scale(scale::ScaleArgs),
    /// Live figures per app: instances, requests/s, errors, latency.
    Status(status::StatusArgs),
    /// Create and list tenants.
    Tenant(tenant::TenantArgs),
    /// Create, list and revoke API tokens.
    Token(token::TokenArgs),
    /// Durable queues: depth, dead letters, replay.
    Queue(queue::QueueArgs),
    /// Partners calling exported functions through the signed `POST /openapi`.
    Partner(partner::PartnerArgs),
    /// The cluster's hosts.
    Node(node::NodeArgs),
}

/// Runs a client command to completion.
pub fn run(command: ClientCommand) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    match command {
        ClientCommand::Push(args) => runtime.block_on(package::push(args)),
        ClientCommand::Packages(args) => runtime.block_on(package::list(args)),
        ClientCommand::Deploy(args) => runtime.block_on(deploy::deploy(*args)),
        ClientCommand::Rollback(args) => runtime.block_on(deploy::rollback(args)),
        ClientCommand::History(args) => runtime.block_on(deploy::history(args)),
        ClientCommand::Apps(args) => runtime.block_on(deploy::apps(args)),
        ClientCommand::Scale(args) => runtime.block_on(scale::run(args)),
        ClientCommand::Status(args) => runtime.block_on(status::run(args)),
        ClientCommand::Tenant(args) => runtime.block_on(tenant::run(args)),
        ClientCommand::Token(args) => runtime.block_on(token::run(args)),
        ClientCommand::Queue(args) => runtime.block_on(queue::run(args)),
        ClientCommand::Partner(args) => runtime.block_on(partner::run(args)),
        ClientCommand::Node(args) => runtime.block_on(node::run(args)),
    }
}

/// An error the CLI finds itself, with the exit code it stands for.
#[derive(Debug)]
pub struct Failure {
    /// The exit code.
    pub code: u8,
    message: String,
}

impl Failure {
    /// A bad command line that clap could not see (exit 2).
    pub fn usage(message: impl Into<String>) -> Self {
        Failure {
            code: exit::USAGE,
            message: message.into(),
        }
    }

    /// Input rejected before it reached the server (exit 5).
    pub fn rejected(message: impl Into<String>) -> Self {
        Failure {
            code: exit::REJECTED,
            message: message.into(),
        }
    }

    /// No credentials (exit 3).
    pub fn unauthorized(message: impl Into<String>) -> Self {
        Failure {
            code: exit::UNAUTHORIZED,
            message: message.into(),
        }
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Failure {}

/// The process exit code for an error of any command: that of the first
/// [`ApiError`] or [`Failure`] in its chain of causes, else 1.
pub fn exit_code(err: &anyhow::Error) -> u8 {
    err.chain()
        .find_map(|cause| {
            if let Some(api) = cause.downcast_ref::<ApiError>() {
                Some(api.exit_code())
            } else {
                cause.downcast_ref::<Failure>().map(|failure| failure.code)
            }
        })
        .unwrap_or(exit::FAILURE)
}

/// What every client command works with: the API client and the output
/// format.
pub struct Ctx {
    /// The admin API.
    pub client: Client,
    /// How to print results.
    pub output: Output,
}

impl Ctx {
    /// Resolves the global options against the process environment and the
    /// CLI config file.
    pub fn new(args: &ClientArgs) -> anyhow::Result<Self> {
        let connection = Connection::resolve(args, &|name| std::env::var(name).ok())?;
        Ok(Ctx {
            client: connection.client()?,
            output: args.output,
        })
    }

    /// Whether results are printed as JSON.
    pub fn json(&self) -> bool {
        self.output == Output::Json
    }

    /// Whether to draw progress on stderr: text output to a terminal.
    pub fn show_progress(&self) -> bool {
        !self.json() && std::io::stderr().is_terminal()
    }

    /// Prints `text` (text output) or `value` pretty-printed (JSON output).
    pub fn print<T: Serialize>(
        &self,
        value: &T,
        text: impl FnOnce() -> String,
    ) -> anyhow::Result<()> {
        if self.json() {
            print_json(value)
        } else {
            stdout(&text())
        }
    }
}

/// Prints `value` as pretty JSON on stdout.
pub fn print_json<T: Serialize>(value: &T) -> anyhow::Result<()> {
    let mut text = serde_json::to_string_pretty(value).context("cannot print JSON")?;
    text.push('\n');
    stdout(&text)
}

/// Writes `text` to stdout; a closed pipe (`| head`) is not an error.
pub fn stdout(text: &str) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    match out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
        Err(err) if err.kind() != std::io::ErrorKind::BrokenPipe => {
            Err(err).context("cannot write to stdout")
        }
        _ => Ok(()),
    }
}

/// A spinner on stderr for a wait of unknown length (hidden unless `show`).
pub fn spinner(show: bool, message: String) -> indicatif::ProgressBar {
    if !show {
        return indicatif::ProgressBar::hidden();
    }
    let bar =
        indicatif::ProgressBar::with_draw_target(None, indicatif::ProgressDrawTarget::stderr());
    if let Ok(style) = indicatif::ProgressStyle::with_template("{spinner} {msg} ({elapsed})") {
        bar.set_style(style);
    }
    bar.set_message(message);
    bar.enable_steady_tick(std::time::Duration::from_millis(100));
    bar
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::client::exit_code as status_exit_code;

    #[test]
    fn exit_codes_by_error_code_then_status() {
        assert_eq!(status_exit_code(401, "unauthorized"), 3);
        assert_eq!(status_exit_code(403, "forbidden"), 3);
        assert_eq!(status_exit_code(404, "not_found"), 4);
        assert_eq!(status_exit_code(400, "bad_request"), 5);
        assert_eq!(status_exit_code(409, "conflict"), 5);
        assert_eq!(status_exit_code(413, "payload_too_large"), 5);
        assert_eq!(status_exit_code(503, "unavailable"), 1);
        assert_eq!(status_exit_code(500, "internal"), 1);
        // Without a known code (e.g. a proxy's page), the status decides.
        assert_eq!(status_exit_code(401, ""), 3);
        assert_eq!(status_exit_code(404, ""), 4);
        assert_eq!(status_exit_code(413, "whatever"), 5);
        assert_eq!(status_exit_code(502, ""), 1);
    }

    #[test]
    fn exit_codes_of_errors() {
        let api = |status: u16, code: &str| ApiError::Server {
            status,
            code: code.into(),
            message: "m".into(),
        };
        assert_eq!(exit_code(&anyhow::Error::new(api(404, "not_found"))), 4);
        // Found through context.
        let err = anyhow::Error::new(api(409, "conflict")).context("deploy shop");
        assert_eq!(exit_code(&err), 5);
        let err: anyhow::Result<()> = Err(api(403, "forbidden").into());
        assert_eq!(exit_code(&err.context("x").context("y").unwrap_err()), 3);
        let unreachable = ApiError::Unreachable {
            url: "http://127.0.0.1:1".into(),
            detail: "Connection refused".into(),
        };
        assert_eq!(exit_code(&unreachable.into()), 1);
        assert_eq!(exit_code(&Failure::usage("twice").into()), 2);
        assert_eq!(exit_code(&Failure::unauthorized("no token").into()), 3);
        assert_eq!(exit_code(&Failure::rejected("not wasm").into()), 5);
        assert_eq!(exit_code(&anyhow::anyhow!("anything else")), 1);
    }
}
