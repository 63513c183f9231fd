//! Service calls between hosts: a component calls a service (a linked WIT
//! interface) whose app runs on other hosts only.
//!
//! - [`ServiceCaller`] (the calling side, a [`cloudware_node::RemoteServices`])
//!   encodes the arguments as typed JSON with the caller's view of the
//!   function type (the same codec as the partner API: records, variants,
//!   lists, options, results… as data, never untyped maps), picks a host
//!   that is up among those running the app (round robin), and `POST`s the
//!   call to `/v1/call` on its cluster port over the pooled mutual-TLS
//!   connection, with the caller's remaining time and call depth. The answer's
//!   results are decoded with the caller's types again, so a mismatch fails
//!   the call rather than handing the guest a wrong value.
//! - [`CallReceiver`] (the receiving side) calls the function on this
//!   host's instance of the app, under the caller's deadline and depth. An
//!   app not placed here answers "not here", and only then is another host
//!   tried: a call that reached a guest is never made twice.
//!
//! Failures travel as [`WireError`] and become the same [`CallError`] the
//! caller would have seen on one host (a timeout, an unavailable service, a
//! trapped service…), so `platform(…)` errors reach guests alike.

use crate::forward::pool::PeerPool;
use crate::health::HostHealth;
use bytes::Bytes;
use cloudware_engine::service::{RemoteCall, RemoteOutcome};
use cloudware_engine::{CallError, CallOrigin, ResponseBody};
use cloudware_gateway::RemoteTarget;
use cloudware_node::{NodeRouter, PeerHealth as _, RemoteServices};
use cloudware_partner::codec::{json_to_val, val_to_json};
use futures::future::BoxFuture;
use http_body_util::{BodyExt as _, Limited};
use serde::{Deserialize, Serialize};
use serde_json::Value as Json;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

/// The path of service calls on the cluster port.
pub(crate) const CALL_PATH: &str = "/v1/call";
/// Largest call or answer body (arguments and results are data, not files).
const MAX_CALL_BYTES: usize = 16 << 20;
/// Bound of a call without a caller deadline (the callee's own timeout
/// applies first).
const DEFAULT_BOUND: Duration = Duration::from_secs(300);

/// One call, as sent.
#[derive(Debug, Serialize, Deserialize)]
struct CallRequest {
    tenant: String,
    app: String,
    interface: String,
    function: String,
    params: Vec<Json>,
    /// Milliseconds left until the caller's deadline, if it has one.
    timeout_ms: Option<u64>,
    depth: u32,
}

/// One call's answer.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
enum CallAnswer {
    /// The function returned.
    Results(Vec<Json>),
    /// The call failed.
    Error(WireError),
    /// The app does not run here: try another host.
    NotHere,
}

/// A [`CallError`] on the wire.
#[derive(Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum WireError {
    /// See [`CallError::Overloaded`].
    Overloaded {
        /// Milliseconds waited.
        waited_ms: u64,
    },
    /// See [`CallError::DeadlineExceeded`].
    DeadlineExceeded {
        /// The time allowed, in milliseconds.
        after_ms: u64,
    },
    /// See [`CallError::DepthExceeded`].
    DepthExceeded {
        /// The depth limit.
        limit: u32,
    },
    /// See [`CallError::NoSuchFunction`].
    NoSuchFunction {
        /// The interface.
        interface: String,
        /// The function.
        function: String,
    },
    /// See [`CallError::BadArguments`].
    BadArguments {
        /// Why.
        message: String,
    },
    /// See [`CallError::Failed`].
    Failed {
        /// Why.
        message: String,
    },
    /// See [`CallError::Unavailable`].
    Unavailable {
        /// Why.
        message: String,
    },
}

impl From<&CallError> for WireError {
    fn from(err: &CallError) -> Self {
        let ms = |d: &Duration| u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
        match err {
            CallError::Overloaded(waited) => WireError::Overloaded {
                waited_ms: ms(waited),
            },
            CallError::DeadlineExceeded(after) => WireError::DeadlineExceeded {
                after_ms: ms(after),
            },
            CallError::DepthExceeded(limit) => WireError::DepthExceeded { limit: *limit },
            CallError::NoSuchFunction {
                interface,
                function,
            } => WireError::NoSuchFunction {
                interface: interface.clone(),
                function: function.clone(),
            },
            CallError::BadArguments(message) => WireError::BadArguments {
                message: message.clone(),
            },
            CallError::Failed(message) => WireError::Failed {
                message: message.clone(),
            },
            CallError::Unavailable(message) => WireError::Unavailable {
                message: message.clone(),
            },
        }
    }
}

impl From<WireError> for CallError {
    fn from(err: WireError) -> Self {
        match err {
            WireError::Overloaded { waited_ms } => {
                CallError::Overloaded(Duration::from_millis(waited_ms))
            }
            WireError::DeadlineExceeded { after_ms } => {
                CallError::DeadlineExceeded(Duration::from_millis(after_ms))
            }
            WireError::DepthExceeded { limit } => CallError::DepthExceeded(limit),
            WireError::NoSuchFunction {
                interface,
                function,
            } => CallError::NoSuchFunction {
                interface,
                function,
            },
            WireError::BadArguments { message } => CallError::BadArguments(message),
            WireError::Failed { message } => CallError::Failed(message),
            WireError::Unavailable { message } => CallError::Unavailable(message),
        }
    }
}

/// Makes service calls on the hosts that run the exporting app.
#[derive(Clone)]
pub struct ServiceCaller {
    pool: PeerPool,
    health: HostHealth,
    next: Arc<AtomicUsize>,
}

impl ServiceCaller {
    pub(crate) fn new(pool: PeerPool, health: HostHealth) -> Self {
        ServiceCaller {
            pool,
            health,
            next: Arc::default(),
        }
    }

    /// The hosts to try, up ones only, starting at the next in turn.
    fn order(&self, target: &RemoteTarget) -> Vec<u64> {
        let up: Vec<u64> = target
            .hosts
            .iter()
            .map(|(host, _)| *host)
            .filter(|host| self.health.is_up(*host))
            .collect();
        if up.is_empty() {
            return up;
        }
        let start = self.next.fetch_add(1, Ordering::Relaxed) % up.len();
        up[start..].iter().chain(&up[..start]).copied().collect()
    }

    async fn call_on(
        &self,
        host: u64,
        body: Bytes,
        bound: Duration,
    ) -> Result<CallAnswer, (bool, String)> {
        let answer = crate::rpc::post(
            &self.pool,
            host,
            CALL_PATH,
            body,
            None,
            bound,
            MAX_CALL_BYTES,
        )
        .await
        .map_err(|err| match err {
            // Not connected: nothing was sent, another host may take it.
            crate::rpc::PostError::NotSent(reason) => (true, reason),
            crate::rpc::PostError::Unanswered(reason) => (false, reason),
        })?;
        serde_json::from_slice(&answer.body).map_err(|err| {
            (
                false,
                format!(
                    "a {} answer that is not a call answer: {err}",
                    answer.status
                ),
            )
        })
    }
}

impl RemoteServices for ServiceCaller {
    fn call(&self, target: RemoteTarget, call: RemoteCall) -> BoxFuture<'static, RemoteOutcome> {
        let this = self.clone();
        Box::pin(async move {
            let params = call
                .ty
                .params()
                .zip(&call.params)
                .map(|((name, ty), val)| val_to_json(val, &ty, name))
                .collect::<Result<Vec<_>, _>>()
                .map_err(|err| CallError::BadArguments(err.to_string()))?;
            let now = Instant::now();
            let left = call
                .origin
                .deadline
                .map(|deadline| deadline.saturating_duration_since(now));
            let request = CallRequest {
                tenant: target.tenant.clone(),
                app: target.app.clone(),
                interface: call.interface.to_string(),
                function: call.function.to_string(),
                params,
                timeout_ms: left.map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX)),
                depth: call.origin.depth,
            };
            let body = Bytes::from(
                serde_json::to_vec(&request).map_err(|err| CallError::Failed(err.to_string()))?,
            );
            let bound = left.unwrap_or(DEFAULT_BOUND) + Duration::from_secs(1);
            let mut tried = Vec::new();
            for host in this.order(&target) {
                match this.call_on(host, body.clone(), bound).await {
                    Ok(CallAnswer::Results(results)) => {
                        if results.len() != call.ty.results().len() {
                            return Err(CallError::Failed(format!(
                                "the service returned {} values for {} result types",
                                results.len(),
                                call.ty.results().len()
                            )));
                        }
                        return call
                            .ty
                            .results()
                            .zip(&results)
                            .map(|(ty, json)| json_to_val(json, &ty, "result"))
                            .collect::<Result<Vec<_>, _>>()
                            .map_err(|err| {
                                CallError::Failed(format!("the service's answer: {err}"))
                            });
                    }
                    Ok(CallAnswer::Error(err)) => return Err(err.into()),
                    Ok(CallAnswer::NotHere) => tried.push(format!("host {host}: not here")),
                    Err((true, reason)) => tried.push(format!("host {host}: {reason}")),
                    Err((false, reason)) => {
                        return Err(CallError::Unavailable(format!(
                            "the call to host {host} failed: {reason}"
                        )));
                    }
                }
            }
            Err(CallError::Unavailable(if tried.is_empty() {
                format!("no host running `{}` is up", target.app)
            } else {
                format!("no host took the call ({})", tried.join("; "))
            }))
        })
    }
}

/// Makes the calls other hosts send here, on this host's instances.
#[derive(Default)]
pub(crate) struct CallReceiver {
    router: OnceLock<Arc<NodeRouter>>,
}

impl CallReceiver {
    /// Serves calls with `router`'s components from now on.
    pub(crate) fn set(&self, router: Arc<NodeRouter>) -> bool {
        self.router.set(router).is_ok()
    }

    /// Answers one call from host `caller` (`None`: no certificate).
    pub(crate) async fn serve(
        &self,
        caller: Option<u64>,
        request: http::Request<hyper::body::Incoming>,
    ) -> http::Response<ResponseBody> {
        if caller.is_none() {
            return answer(
                http::StatusCode::UNAUTHORIZED,
                &CallAnswer::Error(WireError::Unavailable {
                    message: "a cluster certificate is required".into(),
                }),
            );
        }
        let bytes = match Limited::new(request.into_body(), MAX_CALL_BYTES)
            .collect()
            .await
        {
            Ok(collected) => collected.to_bytes(),
            Err(err) => {
                return answer(
                    http::StatusCode::BAD_REQUEST,
                    &CallAnswer::Error(WireError::BadArguments {
                        message: format!("reading the call: {err}"),
                    }),
                );
            }
        };
        let call: CallRequest = match serde_json::from_slice(&bytes) {
            Ok(call) => call,
            Err(err) => {
                return answer(
                    http::StatusCode::BAD_REQUEST,
                    &CallAnswer::Error(WireError::BadArguments {
                        message: format!("not a call: {err}"),
                    }),
                );
            }
        };
        let outcome = self.make(call).await;
        answer(http::StatusCode::OK, &outcome)
    }

    async fn make(&self, call: CallRequest) -> CallAnswer {
        let Some(component) = self
            .router
            .get()
            .and_then(|router| router.local_component(&call.tenant, &call.app))
        else {
            return CallAnswer::NotHere;
        };
        let Some(ty) = component.export_function(&call.interface, &call.function) else {
            return CallAnswer::Error(WireError::NoSuchFunction {
                interface: call.interface,
                function: call.function,
            });
        };
        if ty.params().len() != call.params.len() {
            return CallAnswer::Error(WireError::BadArguments {
                message: format!(
                    "expected {} arguments, got {}",
                    ty.params().len(),
                    call.params.len()
                ),
            });
        }
        let params = match ty
            .params()
            .zip(&call.params)
            .map(|((name, ty), json)| json_to_val(json, &ty, name))
            .collect::<Result<Vec<_>, _>>()
        {
            Ok(params) => params,
            Err(err) => {
                return CallAnswer::Error(WireError::BadArguments {
                    message: err.to_string(),
                });
            }
        };
        let origin = CallOrigin {
            deadline: call
                .timeout_ms
                .map(|ms| Instant::now() + Duration::from_millis(ms)),
            depth: call.depth,
        };
        match component
            .call(
                &call.interface,
                &call.function,
                params,
                origin,
                Default::default(),
            )
            .await
        {
            Ok(results) => match ty
                .results()
                .zip(&results)
                .map(|(ty, val)| val_to_json(val, &ty, "result"))
                .collect::<Result<Vec<_>, _>>()
            {
                Ok(results) => CallAnswer::Results(results),
                Err(err) => CallAnswer::Error(WireError::Failed {
                    message: format!("encoding the results: {err}"),
                }),
            },
            Err(err) => CallAnswer::Error(WireError::from(&err)),
        }
    }
}

fn answer(status: http::StatusCode, body: &CallAnswer) -> http::Response<ResponseBody> {
    let bytes = serde_json::to_vec(body).unwrap_or_default();
    let mut response = http::Response::new(ResponseBody::full(bytes));
    *response.status_mut() = status;
    response.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/json"),
    );
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_keep_their_kind_across_hosts() {
        for err in [
            CallError::Overloaded(Duration::from_millis(7)),
            CallError::DeadlineExceeded(Duration::from_millis(250)),
            CallError::DepthExceeded(8),
            CallError::NoSuchFunction {
                interface: "acme:orders/api@1.0.0".into(),
                function: "place".into(),
            },
            CallError::BadArguments("two, not three".into()),
            CallError::Failed("trapped".into()),
            CallError::Unavailable("nobody home".into()),
        ] {
            let wire = WireError::from(&err);
            let json = serde_json::to_string(&wire).expect("encodes");
            let back: WireError = serde_json::from_str(&json).expect("decodes");
            assert_eq!(CallError::from(back).to_string(), err.to_string());
        }
    }

    #[test]
    fn answers_round_trip() {
        let answer = CallAnswer::Results(vec![serde_json::json!({"total": 3})]);
        let json = serde_json::to_string(&answer).expect("encodes");
        assert!(matches!(
            serde_json::from_str::<CallAnswer>(&json),
            Ok(CallAnswer::Results(r)) if r.len() == 1
        ));
        let json = serde_json::to_string(&CallAnswer::NotHere).expect("encodes");
        assert!(matches!(
            serde_json::from_str::<CallAnswer>(&json),
            Ok(CallAnswer::NotHere)
        ));
    }
}
