//! `cloudware`: serve WebAssembly components, and drive a running platform
//! through its admin API.

mod client;
mod commands;
mod logging;
mod serve;
mod settings;
mod up;

use clap::{Parser, Subcommand};
use std::process::ExitCode;

/// Cloudware: a WebAssembly cloudware platform.
#[derive(Parser)]
#[command(name = "cloudware", version, about, propagate_version = true)]
struct Cli {
    #[command(flatten)]
    logging: logging::LoggingArgs,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Serve one component that exports `wasi:http/incoming-handler`.
    Serve(serve::ServeArgs),
    /// Run a platform node: gateway, admin API, replicated state, with
    /// embedded defaults.
    Up(up::UpArgs),
    #[command(flatten)]
    Client(commands::ClientCommand),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Serve(args) => serve::run(args, &cli.logging),
        Command::Up(args) => up::run(args, &cli.logging),
        Command::Client(command) => commands::run(command),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            // One line: the chain of causes joined with ": ".
            eprintln!("error: {err:#}");
            // 1 in general; the client commands' errors say which code
            // (3 unauthorized, 4 not found, 5 rejected; 2 is clap's usage).
            ExitCode::from(commands::exit_code(&err))
        }
    }
}
