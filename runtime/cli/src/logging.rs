//! Log output: human-readable text or JSON lines, on stderr.

use clap::{Args, ValueEnum};
use tracing_subscriber::EnvFilter;

/// Log format.
#[derive(Clone, Copy, Debug, Default, ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Text,
    /// One JSON object per line, with the request span's fields.
    Json,
}

/// Flags controlling logging, shared by every command.
#[derive(Args, Debug)]
pub struct LoggingArgs {
    /// Log format.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text, env = "CLOUDWARE_LOG_FORMAT")]
    pub log_format: LogFormat,
    /// Log filter: a level (`error`, `warn`, `info`, `debug`, `trace`) or
    /// per-target directives (`cloudware_gateway=debug,info`).
    #[arg(long, global = true, default_value = "info", env = "CLOUDWARE_LOG")]
    pub log_level: String,
}

/// Installs the global subscriber. The per-request access log is off unless
/// `access_log` is set.
pub fn init(args: &LoggingArgs, access_log: bool) -> anyhow::Result<()> {
    let access = if access_log { "info" } else { "off" };
    let directives = format!(
        "{},{}={access}",
        args.log_level,
        cloudware_gateway::ACCESS_LOG_TARGET
    );
    let filter = EnvFilter::try_new(&directives)
        .map_err(|err| anyhow::anyhow!("invalid --log-level `{}`: {err}", args.log_level))?;
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()));
    let result = match args.log_format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder
            .json()
            .with_current_span(true)
            .with_span_list(false)
            .try_init(),
    };
    result.map_err(|err| anyhow::anyhow!("cannot install the logger: {err}"))
}
