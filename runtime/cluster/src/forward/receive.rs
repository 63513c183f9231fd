//! The receiving side of forwarding: `ANY /v1/forward/PATH?QUERY` on the
//! cluster port (a cluster certificate is required) serves the client's request
//! `ANY /PATH?QUERY` with this host's local routes only, through the gateway's
//! own serve path ([`cloudware_gateway::serve_forwarded`]), never forwarding it
//! again. An app that is not placed here gets a "not here" answer
//! ([`cloudware_gateway::NOT_HERE`]) so the sender can try another host.

use cloudware_engine::ResponseBody;
use cloudware_gateway::{FORWARD_STATUS_HEADER, GatewayLimits, NOT_HERE, Router};
use hyper::body::Incoming;
use std::sync::{Arc, OnceLock};

/// The path prefix of forwarded requests on the cluster port.
pub(crate) const FORWARD_PREFIX: &str = "/v1/forward";

/// Whether a cluster-port request is a forwarded one.
pub(crate) fn is_forwarded(path: &str) -> bool {
    path.strip_prefix(FORWARD_PREFIX)
        .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
}

/// What forwarded requests are served with, once the node has set it.
struct Local {
    router: Arc<dyn Router>,
    limits: GatewayLimits,
}

/// Serves forwarded requests with the local router (set once, after start).
#[derive(Default)]
pub(crate) struct ForwardReceiver {
    local: OnceLock<Local>,
}

impl ForwardReceiver {
    /// Serves forwarded requests with `router` under `limits` from now on; `false`
    /// if a router was set already (the first one stays).
    pub(crate) fn set(&self, router: Arc<dyn Router>, limits: GatewayLimits) -> bool {
        self.local.set(Local { router, limits }).is_ok()
    }

    /// Answers one forwarded request from host `caller` (`None`: no certificate).
    pub(crate) async fn serve(
        &self,
        caller: Option<u64>,
        request: http::Request<Incoming>,
    ) -> http::Response<ResponseBody> {
        let Some(from) = caller else {
            return plain(
                http::StatusCode::UNAUTHORIZED,
                "a cluster certificate is required",
            );
        };
        let Some(request) = strip_prefix(request) else {
            return plain(
                http::StatusCode::BAD_REQUEST,
                "expected /v1/forward/PATH with an absolute PATH",
            );
        };
        let Some(local) = self.local.get() else {
            let mut response = plain(
                http::StatusCode::SERVICE_UNAVAILABLE,
                "this host serves no apps yet",
            );
            response.headers_mut().insert(
                FORWARD_STATUS_HEADER,
                http::HeaderValue::from_static(NOT_HERE),
            );
            return response;
        };
        cloudware_gateway::serve_forwarded(local.router.as_ref(), &local.limits, from, request)
            .await
    }
}

/// The client's request: `/v1/forward/PATH?QUERY` becomes `/PATH?QUERY`.
fn strip_prefix(request: http::Request<Incoming>) -> Option<http::Request<Incoming>> {
    let (mut parts, body) = request.into_parts();
    let original = parts.uri.path_and_query()?.as_str();
    let rest = original.strip_prefix(FORWARD_PREFIX)?;
    let rest = if rest.starts_with('/') {
        rest.to_string()
    } else if rest.is_empty() || rest.starts_with('?') {
        format!("/{rest}")
    } else {
        return None;
    };
    parts.uri = http::Uri::builder().path_and_query(rest).build().ok()?;
    Some(http::Request::from_parts(parts, body))
}

fn plain(status: http::StatusCode, reason: &str) -> http::Response<ResponseBody> {
    let mut response = http::Response::new(ResponseBody::full(format!(
        "{} {}: {reason}\n",
        status.as_u16(),
        status.canonical_reason().unwrap_or("Error")
    )));
    *response.status_mut() = status;
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forwarded_paths_are_recognized() {
        assert!(is_forwarded("/v1/forward/"));
        assert!(is_forwarded("/v1/forward/shop/cart"));
        assert!(is_forwarded("/v1/forward"));
        assert!(!is_forwarded("/v1/forwarding"));
        assert!(!is_forwarded("/v1/propose"));
    }
}
