//! Internal services: a deployment that imports a custom WIT interface
//! (e.g. `acme:orders/api`) has it linked, at deploy time, to a deployment
//! that exports it. Each imported function becomes a host function that
//! calls the exporter's function in a fresh instance of the exporter, so the
//! call looks local to the caller.
//!
//! Links are type-checked when made ([`typecheck`]); every call has the
//! caller's deadline (less a small reserve, so that the caller can still
//! handle the callee's timeout) and one more level of depth
//! ([`MAX_CALL_DEPTH`]).
//! Failures of the platform (timeout, depth, no instance, a trapped
//! service) reach a caller whose function returns `result<T, E>`, with `E`
//! a variant that has a case `platform(call-error)` (or `platform(string)`),
//! as that case; any other caller traps.
//!
//! [`MAX_CALL_DEPTH`]: crate::MAX_CALL_DEPTH

pub mod typecheck;

use crate::component::LinkedComponent;
use crate::http::RequestState;
use crate::invoke::{CallError, CallOrigin};
use crate::link::CompiledComponent;
use futures::future::BoxFuture;
use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant};
use wasmtime::component::types::{ComponentFunc, ComponentInstance, ComponentItem, Type};
use wasmtime::component::{Linker, Val};

/// The types-only interface `cloudware:platform/services` (its
/// `call-error`), which service interfaces `use`: every component may
/// import it, and it has nothing to link but an empty instance.
pub(crate) struct ServiceTypes;

/// The interface [`ServiceTypes`] provides.
pub const SERVICE_TYPES_INTERFACE: &str = "cloudware:platform/services@0.1.0";

impl crate::capability::Capability for ServiceTypes {
    fn name(&self) -> &'static str {
        "services"
    }

    fn interfaces(&self) -> &'static [&'static str] {
        &[SERVICE_TYPES_INTERFACE]
    }

    fn add_to_linker(&self, linker: &mut Linker<RequestState>) -> wasmtime::Result<()> {
        linker.instance(SERVICE_TYPES_INTERFACE)?;
        Ok(())
    }

    fn always_granted(&self) -> bool {
        true
    }
}

/// Finds the exporter's component at each call: it may be redeployed or
/// rolled back while callers keep running.
pub trait ServiceTarget: Send + Sync + 'static {
    /// The component to call now; `None` if the service has no instance on
    /// this host.
    fn resolve(&self) -> Option<LinkedComponent>;

    /// When [`resolve`](Self::resolve) found no instance here: the call,
    /// made on another host that runs the service, if there is one.
    fn call_elsewhere(&self, _call: RemoteCall) -> Option<BoxFuture<'static, RemoteOutcome>> {
        None
    }
}

/// What a service call made on another host returns.
pub type RemoteOutcome = Result<Vec<Val>, CallError>;

/// A service call to be made on another host: the function, its type as the
/// caller imports it (to encode the arguments and decode the results), the
/// arguments, and the caller's deadline and depth.
pub struct RemoteCall {
    /// The interface, as imported.
    pub interface: Arc<str>,
    /// The function.
    pub function: Arc<str>,
    /// Its type, as the caller imports it.
    pub ty: ComponentFunc,
    /// The arguments.
    pub params: Vec<Val>,
    /// The callee's deadline and depth.
    pub origin: CallOrigin,
}

/// A fixed component as a target (tests, `serve`).
impl ServiceTarget for LinkedComponent {
    fn resolve(&self) -> Option<LinkedComponent> {
        Some(self.clone())
    }
}

/// One import of a component linked to a service.
#[derive(Clone)]
pub struct ServiceImport {
    /// The interface, as imported, e.g. `acme:orders/api@1.0.0`.
    pub interface: String,
    /// The exporter's component as deployed now, whose signatures the
    /// import must match.
    pub exporter: CompiledComponent,
    /// Where calls go.
    pub target: Arc<dyn ServiceTarget>,
}

impl fmt::Debug for ServiceImport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServiceImport")
            .field("interface", &self.interface)
            .field("exporter", &self.exporter.digest())
            .finish()
    }
}

/// Defines every function of `imported` (the importer's view of the
/// interface) in `linker`, forwarding to `import.target`.
pub(crate) fn define(
    linker: &mut Linker<RequestState>,
    engine: &wasmtime::Engine,
    imported: &ComponentInstance,
    import: &ServiceImport,
) -> wasmtime::Result<()> {
    let mut instance = linker.instance(&import.interface)?;
    for (name, item) in imported.exports(engine) {
        if !matches!(item.ty, ComponentItem::ComponentFunc(_)) {
            continue;
        }
        let interface: Arc<str> = Arc::from(import.interface.as_str());
        let function: Arc<str> = Arc::from(name);
        let target = import.target.clone();
        instance.func_new_async(name, move |store, ty, params, results| {
            let interface = interface.clone();
            let function = function.clone();
            let target = target.clone();
            let origin = CallOrigin {
                deadline: Some(callee_deadline(store.data().deadline(), Instant::now())),
                depth: store.data().depth() + 1,
            };
            Box::new(async move {
                let outcome = match target.resolve() {
                    Some(service) => {
                        service
                            .call(
                                &interface,
                                &function,
                                params.to_vec(),
                                origin,
                                Default::default(),
                            )
                            .await
                    }
                    None => {
                        let call = RemoteCall {
                            interface: interface.clone(),
                            function: function.clone(),
                            ty: ty.clone(),
                            params: params.to_vec(),
                            origin,
                        };
                        match target.call_elsewhere(call) {
                            Some(remote) => remote.await,
                            None => Err(CallError::Unavailable(format!(
                                "no instance exports `{interface}`"
                            ))),
                        }
                    }
                };
                match outcome {
                    Ok(values) => {
                        for (slot, value) in results.iter_mut().zip(values) {
                            *slot = value;
                        }
                        Ok(())
                    }
                    Err(err) => match platform_error(&ty, &err) {
                        Some(value) => {
                            if let Some(slot) = results.first_mut() {
                                *slot = value;
                            }
                            Ok(())
                        }
                        None => Err(wasmtime::Error::new(err)),
                    },
                }
            })
        })?;
    }
    Ok(())
}

/// The deadline of a service call made by a caller that must finish by
/// `caller`: a little earlier (a tenth of the time left, at most
/// [`MAX_RESERVE`]), so that a callee running out of time leaves its caller
/// the time to receive `platform(timeout)` and answer, instead of both
/// hitting the same deadline and the caller failing as a whole.
fn callee_deadline(caller: Instant, now: Instant) -> Instant {
    let reserve = (caller.saturating_duration_since(now) / 10).min(MAX_RESERVE);
    caller.checked_sub(reserve).unwrap_or(caller)
}

/// The most of a caller's time kept back from a service call it makes.
const MAX_RESERVE: Duration = Duration::from_millis(100);

/// The value reporting `err` to a caller whose function returns
/// `result<T, E>` with a `platform` case in `E`, if it does.
fn platform_error(ty: &ComponentFunc, err: &CallError) -> Option<Val> {
    let mut results = ty.results();
    let (Some(Type::Result(result)), None) = (results.next(), results.next()) else {
        return None;
    };
    let Some(Type::Variant(error)) = result.err() else {
        return None;
    };
    let case = error.cases().find(|case| case.name == "platform")?;
    let payload = match case.ty? {
        Type::String => Val::String(err.to_string()),
        Type::Variant(call_error) => {
            let (name, detail) = match err {
                CallError::DeadlineExceeded(_) => ("timeout", None),
                CallError::DepthExceeded(_) => ("depth-exceeded", None),
                CallError::Overloaded(_) | CallError::Unavailable(_) => {
                    ("unavailable", Some(err.to_string()))
                }
                _ => ("failed", Some(err.to_string())),
            };
            let case = call_error.cases().find(|case| case.name == name)?;
            let detail = match (case.ty, detail) {
                (None, _) => None,
                (Some(Type::String), Some(detail)) => Some(Box::new(Val::String(detail))),
                _ => return None,
            };
            Val::Variant(name.to_owned(), detail)
        }
        _ => return None,
    };
    Some(Val::Result(Err(Some(Box::new(Val::Variant(
        "platform".to_owned(),
        Some(Box::new(payload)),
    ))))))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_callee_ends_before_its_caller() {
        let now = Instant::now();
        let second = now + Duration::from_secs(1);
        assert_eq!(
            callee_deadline(second, now),
            second - Duration::from_millis(100)
        );
        let minute = now + Duration::from_secs(60);
        assert_eq!(callee_deadline(minute, now), minute - MAX_RESERVE);
        let soon = now + Duration::from_millis(20);
        assert_eq!(callee_deadline(soon, now), soon - Duration::from_millis(2));
        // A caller already past its deadline passes it on unchanged.
        assert_eq!(callee_deadline(now, soon), now);
    }
}
