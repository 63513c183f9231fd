//! A guest's stdout and stderr, forwarded line by line to the host's log
//! (target `cloudware::guest`), so that a panic message or a `println!`
//! reaches the operator. Each request may log at most [`MAX_BYTES`]; the
//! rest is dropped with one notice, so a guest cannot flood the log.

use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};
use tokio::io::AsyncWrite;
use wasmtime_wasi::cli::{IsTerminal, StdoutStream};

/// The `tracing` target of guest output.
pub const GUEST_LOG_TARGET: &str = "cloudware::guest";
/// Bytes of output one request may log.
pub const MAX_BYTES: usize = 16 * 1024;
/// The longest line logged as one record.
const MAX_LINE: usize = 4096;

/// One of a request's output streams.
#[derive(Clone)]
pub(crate) struct GuestLog {
    inner: Arc<Inner>,
}

struct Inner {
    stream: &'static str,
    component: Arc<str>,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    line: Vec<u8>,
    logged: usize,
    truncated: bool,
}

impl GuestLog {
    /// The `stream` ("stdout" or "stderr") of a request to `component`.
    pub(crate) fn new(stream: &'static str, component: Arc<str>) -> Self {
        GuestLog {
            inner: Arc::new(Inner {
                stream,
                component,
                state: Mutex::new(State::default()),
            }),
        }
    }

    fn write(&self, bytes: &[u8]) {
        let mut state = self
            .inner
            .state
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        for &byte in bytes {
            if byte == b'\n' || state.line.len() >= MAX_LINE {
                let line = std::mem::take(&mut state.line);
                self.inner.emit(&mut state, &line);
                if byte == b'\n' {
                    continue;
                }
            }
            state.line.push(byte);
        }
    }
}

impl Inner {
    fn emit(&self, state: &mut State, line: &[u8]) {
        if state.truncated {
            return;
        }
        if state.logged + line.len() > MAX_BYTES {
            state.truncated = true;
            tracing::warn!(
                target: GUEST_LOG_TARGET,
                component = %self.component,
                stream = self.stream,
                "guest output beyond {MAX_BYTES} bytes for this request was dropped"
            );
            return;
        }
        state.logged += line.len();
        let text = String::from_utf8_lossy(line);
        tracing::info!(
            target: GUEST_LOG_TARGET,
            component = %self.component,
            stream = self.stream,
            "{}",
            text.trim_end_matches('\r')
        );
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        let state = self.state.get_mut().unwrap_or_else(PoisonError::into_inner);
        if !state.line.is_empty() {
            let line = std::mem::take(&mut state.line);
            let mut state = std::mem::take(state);
            self.emit(&mut state, &line);
        }
    }
}

impl AsyncWrite for GuestLog {
    fn poll_write(
        self: Pin<&mut Self>,
        _: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.write(buf);
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

impl IsTerminal for GuestLog {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl StdoutStream for GuestLog {
    fn async_stream(&self) -> Box<dyn AsyncWrite + Send + Sync> {
        Box::new(self.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_lines_and_caps_output() {
        let log = GuestLog::new("stderr", Arc::from("sha256:abc"));
        log.write(b"first line\nsecond ");
        log.write(b"half\n");
        {
            let state = log.inner.state.lock().expect("lock");
            assert!(state.line.is_empty());
            assert_eq!(state.logged, "first line".len() + "second half".len());
        }
        let big = vec![b'x'; MAX_BYTES * 2];
        log.write(&big);
        let state = log.inner.state.lock().expect("lock");
        assert!(state.truncated);
        assert!(state.logged <= MAX_BYTES);
    }
}
