//! Calling a function a component exports, with dynamically typed values:
//! how queue messages, service calls and partner requests reach a
//! component. Each call gets a fresh instance under the deployment's limits,
//! a deadline (the caller's, if sooner) and a depth limit against cycles of
//! service calls.

use crate::component::{LinkedComponent, RequestStats, Timed};
use crate::http::{DeadlineExceeded, HandleError};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};
use wasmtime::component::Val;

/// The deepest chain of service calls allowed: a call made at this depth
/// is refused with [`CallError::DepthExceeded`].
pub const MAX_CALL_DEPTH: u32 = 8;

/// Where a call comes from.
#[derive(Clone, Copy, Debug)]
pub struct CallOrigin {
    /// The caller's own deadline; the call ends by then at the latest.
    pub deadline: Option<Instant>,
    /// How many service calls deep the caller runs (0: the gateway, the
    /// bus or a partner).
    pub depth: u32,
}

impl CallOrigin {
    /// A call from outside any component (the bus, a partner request).
    pub fn external() -> Self {
        CallOrigin {
            deadline: None,
            depth: 0,
        }
    }
}

/// Why a call to an exported function did not return.
#[derive(Debug, Clone, thiserror::Error)]
pub enum CallError {
    /// Every instance slot was busy for longer than the queue timeout.
    #[error("overloaded: no free instance within {0:?}")]
    Overloaded(Duration),
    /// The call did not finish in time.
    #[error("the call did not finish within {0:?}")]
    DeadlineExceeded(Duration),
    /// The call chain is too deep (a cycle of services?).
    #[error("the chain of service calls is deeper than {0}")]
    DepthExceeded(u32),
    /// The component does not export the function.
    #[error("the component does not export `{interface}#{function}`")]
    NoSuchFunction {
        /// The interface asked for.
        interface: String,
        /// The function asked for.
        function: String,
    },
    /// The arguments do not fit the function's parameter types.
    #[error("arguments do not match the function's signature: {0}")]
    BadArguments(String),
    /// The component trapped or hit a limit.
    #[error("the component failed: {0}")]
    Failed(String),
    /// No instance of the component is available to take the call.
    #[error("unavailable: {0}")]
    Unavailable(String),
}

impl CallError {
    /// A short machine-friendly name, for logs and metrics.
    pub fn kind(&self) -> &'static str {
        match self {
            CallError::Overloaded(_) => "overloaded",
            CallError::DeadlineExceeded(_) => "deadline",
            CallError::DepthExceeded(_) => "depth",
            CallError::NoSuchFunction { .. } => "no_such_function",
            CallError::BadArguments(_) => "bad_arguments",
            CallError::Failed(_) => "failed",
            CallError::Unavailable(_) => "unavailable",
        }
    }
}

impl LinkedComponent {
    /// Calls `function` of the exported `interface` with `args` in a fresh
    /// instance and returns its results.
    pub async fn call(
        &self,
        interface: &str,
        function: &str,
        args: Vec<Val>,
        origin: CallOrigin,
        stats: Arc<RequestStats>,
    ) -> Result<Vec<Val>, CallError> {
        if origin.depth >= MAX_CALL_DEPTH {
            return Err(CallError::DepthExceeded(MAX_CALL_DEPTH));
        }
        let exported = self
            .inner
            .functions
            .get(&(interface.to_owned(), function.to_owned()))
            .cloned()
            .ok_or_else(|| CallError::NoSuchFunction {
                interface: interface.to_owned(),
                function: function.to_owned(),
            })?;
        let params = exported.ty.params().len();
        if args.len() != params {
            return Err(CallError::BadArguments(format!(
                "expected {params} arguments, got {}",
                args.len()
            )));
        }
        let _permits = self.admit(self.inner.engine.limits().queue_timeout).await?;
        let timeout = self.inner.settings.request_timeout;
        let own_deadline = Instant::now() + timeout;
        let deadline = origin
            .deadline
            .map_or(own_deadline, |caller| caller.min(own_deadline));
        let budget = deadline.saturating_duration_since(Instant::now());
        let mut store = self.new_store(deadline, origin.depth);
        let pre = self.inner.pre.clone();
        let results = exported.ty.results().len();
        let peak = stats.clone();
        let guest = async move {
            let outcome = async {
                let instance = pre.instantiate_async(&mut store).await?;
                let func = instance
                    .get_func(&mut store, exported.index)
                    .ok_or_else(|| wasmtime::format_err!("export vanished"))?;
                let mut out = vec![Val::Bool(false); results];
                func.call_async(&mut store, &args, &mut out).await?;
                Ok::<_, wasmtime::Error>(out)
            }
            .await;
            peak.peak_memory
                .store(store.data().limits.peak_memory() as u64, Ordering::Relaxed);
            outcome
        };
        let timed = Timed {
            inner: guest,
            stats,
        };
        match tokio::time::timeout_at(deadline.into(), timed).await {
            Ok(Ok(values)) => Ok(values),
            Ok(Err(err)) => Err(classify(err, budget)),
            Err(_) => Err(CallError::DeadlineExceeded(budget)),
        }
    }
}

/// Sorts a failed call into a [`CallError`].
fn classify(err: wasmtime::Error, budget: Duration) -> CallError {
    if err
        .chain()
        .any(|e| e.downcast_ref::<DeadlineExceeded>().is_some())
    {
        return CallError::DeadlineExceeded(budget);
    }
    if let Some(inner) = err.chain().find_map(|e| e.downcast_ref::<CallError>()) {
        // A nested service call's failure that trapped this caller.
        return inner.clone();
    }
    let is_trap = err
        .chain()
        .any(|e| e.downcast_ref::<wasmtime::Trap>().is_some());
    let text = format!("{err:#}");
    if !is_trap && text.contains("type mismatch") {
        return CallError::BadArguments(text);
    }
    match HandleError::from_guest(err) {
        HandleError::DeadlineExceeded(_) => CallError::DeadlineExceeded(budget),
        HandleError::Trap(why) => CallError::Failed(why),
        other => CallError::Failed(other.to_string()),
    }
}
