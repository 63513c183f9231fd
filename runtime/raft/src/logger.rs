//! Routes raft-rs's `slog` records into `tracing`, so raft's own logs (elections, term changes,
//! rejected messages) land in the platform's subscriber, under target `raft` and inside the
//! driver's span.

use std::fmt::{self, Write as _};

use slog::{Drain, KV, Key, Level, OwnedKVList, Record, Serializer};

/// A `slog` drain that re-emits each record as a `tracing` event (target `raft`).
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct TracingDrain;

/// Builds the root `slog::Logger` handed to raft-rs (which adds `raft_id` itself).
pub(crate) fn raft_logger() -> slog::Logger {
    slog::Logger::root(TracingDrain, slog::o!())
}

impl Drain for TracingDrain {
    type Ok = ();
    type Err = slog::Never;

    fn log(&self, record: &Record<'_>, values: &OwnedKVList) -> Result<(), slog::Never> {
        if !level_enabled(record.level()) {
            return Ok(());
        }
        let mut fields = FieldWriter(String::new());
        // Formatting into a String cannot fail; ignore the (impossible) error.
        let _ = record.kv().serialize(record, &mut fields);
        let _ = values.serialize(record, &mut fields);
        let message = record.msg();
        let fields = fields.0;
        let module = record.module();
        match record.level() {
            Level::Critical | Level::Error => {
                tracing::error!(target: "raft", module, "{message}{fields}")
            }
            Level::Warning => tracing::warn!(target: "raft", module, "{message}{fields}"),
            Level::Info => tracing::info!(target: "raft", module, "{message}{fields}"),
            Level::Debug => tracing::debug!(target: "raft", module, "{message}{fields}"),
            Level::Trace => tracing::trace!(target: "raft", module, "{message}{fields}"),
        }
        Ok(())
    }
}

/// Skips formatting records no subscriber wants.
fn level_enabled(level: Level) -> bool {
    match level {
        Level::Critical | Level::Error => tracing::enabled!(target: "raft", tracing::Level::ERROR),
        Level::Warning => tracing::enabled!(target: "raft", tracing::Level::WARN),
        Level::Info => tracing::enabled!(target: "raft", tracing::Level::INFO),
        Level::Debug => tracing::enabled!(target: "raft", tracing::Level::DEBUG),
        Level::Trace => tracing::enabled!(target: "raft", tracing::Level::TRACE),
    }
}

/// Appends slog key-values as ` key=value` pairs.
struct FieldWriter(String);

impl Serializer for FieldWriter {
    fn emit_arguments(&mut self, key: Key, val: &fmt::Arguments<'_>) -> slog::Result {
        let _ = write!(self.0, " {key}={val}");
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn raft_logs_reach_tracing() {
        let logger = raft_logger();
        // Nothing to assert without a capturing subscriber; this proves the drain does not panic
        // with and without key-values.
        slog::info!(logger, "became leader"; "term" => 3);
        slog::debug!(logger, "plain message");
    }
}
