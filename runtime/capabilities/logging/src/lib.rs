//! The logging capability: `wasi:logging/logging@0.1.0-draft`. A guest's log
//! records go to the host's `tracing` log under the target
//! `cloudware::guest`, with the app's name, at the guest's level
//! (`critical` is logged as error). Messages are cut at 4 KiB.
//!
//! Always granted: logging reveals nothing and reaches nothing.

use cloudware_engine::Capability;
use cloudware_engine::http::{GUEST_LOG_TARGET, RequestState};
use std::sync::Arc;
use wasmtime::component::{HasData, Linker};

mod bindings {
    wasmtime::component::bindgen!({
        path: "../../../wit",
        world: "wasi:logging/imports@0.1.0-draft",
    });
}

use bindings::wasi::logging::logging::{self, Level};

/// The interface this capability provides.
pub const INTERFACE: &str = "wasi:logging/logging@0.1.0-draft";

/// The longest message logged, in bytes; longer ones are cut.
pub const MAX_MESSAGE: usize = 4096;

/// The capability, added once to the node's engine.
pub struct LoggingCapability;

impl Capability for LoggingCapability {
    fn name(&self) -> &'static str {
        "logging"
    }

    fn interfaces(&self) -> &'static [&'static str] {
        &[INTERFACE]
    }

    fn add_to_linker(&self, linker: &mut Linker<RequestState>) -> wasmtime::Result<()> {
        logging::add_to_linker::<RequestState, LoggingData>(linker, |state| LoggingView {
            app: state
                .capability::<LogSource>()
                .grant
                .map(|source| source.app.clone()),
        })
    }

    fn always_granted(&self) -> bool {
        true
    }
}

/// Names the deployment in its log records.
#[derive(Clone, Debug)]
pub struct LogSource {
    /// `tenant/app`.
    pub app: Arc<str>,
}

struct LoggingData;

impl HasData for LoggingData {
    type Data<'a> = LoggingView;
}

struct LoggingView {
    app: Option<Arc<str>>,
}

impl logging::Host for LoggingView {
    fn log(&mut self, level: Level, context: String, message: String) {
        let app = self.app.as_deref().unwrap_or("component");
        let message = cut(&message, MAX_MESSAGE);
        let context = cut(&context, 256);
        match level {
            Level::Trace => tracing::trace!(target: GUEST_LOG_TARGET, app, context, "{message}"),
            Level::Debug => tracing::debug!(target: GUEST_LOG_TARGET, app, context, "{message}"),
            Level::Info => tracing::info!(target: GUEST_LOG_TARGET, app, context, "{message}"),
            Level::Warn => tracing::warn!(target: GUEST_LOG_TARGET, app, context, "{message}"),
            Level::Error | Level::Critical => {
                tracing::error!(target: GUEST_LOG_TARGET, app, context, critical = matches!(level, Level::Critical), "{message}")
            }
        }
    }
}

/// `text` cut to at most `max` bytes at a character boundary.
fn cut(text: &str, max: usize) -> &str {
    if text.len() <= max {
        return text;
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

#[cfg(test)]
mod tests {
    #[test]
    fn long_messages_are_cut_at_a_character_boundary() {
        assert_eq!(super::cut("héllo", 2), "h");
        assert_eq!(super::cut("héllo", 3), "hé");
        assert_eq!(super::cut("hi", 10), "hi");
    }
}
