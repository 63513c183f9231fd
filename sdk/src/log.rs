//! Logging through `wasi:logging/logging@0.1.0-draft`: each line reaches the
//! node's log tagged with the app it comes from.
//!
//! The macros format like [`format!`] and use the calling module's path as
//! the context; [`log()`] takes both explicitly.
//!
//! ```no_run
//! use cloudware_sdk::log;
//!
//! let order = 42;
//! log::info!("order {order} accepted");
//! log::warn!("stock for {} is low", "book");
//! log::log(log::Level::Error, "payments", "card declined");
//! ```
//!
//! Never log a secret: log lines are kept by the node.

use crate::bindings::wasi::logging::logging;

/// How severe a log line is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Level {
    /// Very detailed tracing.
    Trace,
    /// Debugging detail.
    Debug,
    /// Normal operation.
    Info,
    /// Something unexpected that the component handled.
    Warn,
    /// A failure.
    Error,
    /// A failure the component cannot recover from.
    Critical,
}

impl From<Level> for logging::Level {
    fn from(level: Level) -> Self {
        match level {
            Level::Trace => logging::Level::Trace,
            Level::Debug => logging::Level::Debug,
            Level::Info => logging::Level::Info,
            Level::Warn => logging::Level::Warn,
            Level::Error => logging::Level::Error,
            Level::Critical => logging::Level::Critical,
        }
    }
}

/// Logs `message` at `level`; `context` says where it comes from (a module
/// path, a subsystem name, or `""`).
pub fn log(level: Level, context: &str, message: &str) {
    logging::log(level.into(), context, message);
}

/// Implementation of the level macros; not a stable API.
#[doc(hidden)]
#[macro_export]
macro_rules! __cloudware_log {
    ($level:ident, $($arg:tt)+) => {
        $crate::log::log(
            $crate::log::Level::$level,
            ::core::module_path!(),
            &::std::format!($($arg)+),
        )
    };
}

/// Logs at [`Level::Trace`], formatting like [`format!`].
#[doc(hidden)]
#[macro_export]
macro_rules! __cloudware_log_trace {
    ($($arg:tt)+) => { $crate::__cloudware_log!(Trace, $($arg)+) };
}

/// Logs at [`Level::Debug`], formatting like [`format!`].
#[doc(hidden)]
#[macro_export]
macro_rules! __cloudware_log_debug {
    ($($arg:tt)+) => { $crate::__cloudware_log!(Debug, $($arg)+) };
}

/// Logs at [`Level::Info`], formatting like [`format!`].
#[doc(hidden)]
#[macro_export]
macro_rules! __cloudware_log_info {
    ($($arg:tt)+) => { $crate::__cloudware_log!(Info, $($arg)+) };
}

/// Logs at [`Level::Warn`], formatting like [`format!`].
#[doc(hidden)]
#[macro_export]
macro_rules! __cloudware_log_warn {
    ($($arg:tt)+) => { $crate::__cloudware_log!(Warn, $($arg)+) };
}

/// Logs at [`Level::Error`], formatting like [`format!`].
#[doc(hidden)]
#[macro_export]
macro_rules! __cloudware_log_error {
    ($($arg:tt)+) => { $crate::__cloudware_log!(Error, $($arg)+) };
}

/// Logs at [`Level::Critical`], formatting like [`format!`].
#[doc(hidden)]
#[macro_export]
macro_rules! __cloudware_log_critical {
    ($($arg:tt)+) => { $crate::__cloudware_log!(Critical, $($arg)+) };
}

#[doc(inline)]
pub use crate::__cloudware_log_critical as critical;
#[doc(inline)]
pub use crate::__cloudware_log_debug as debug;
#[doc(inline)]
pub use crate::__cloudware_log_error as error;
#[doc(inline)]
pub use crate::__cloudware_log_info as info;
#[doc(inline)]
pub use crate::__cloudware_log_trace as trace;
#[doc(inline)]
pub use crate::__cloudware_log_warn as warn;
