//! Resolving a request to the component that serves it.
//!
//! The gateway asks a [`Router`] for every request; the node implements it
//! over its reconciled routing table and swaps that table atomically, so the
//! gateway never sees a half-updated set of routes.

use cloudware_engine::LinkedComponent;
use cloudware_metrics::AppRecorder;

/// Where a request goes.
#[derive(Clone)]
pub struct Target {
    /// The component that handles it.
    pub component: LinkedComponent,
    /// Where its requests are counted, if anywhere.
    pub recorder: Option<AppRecorder>,
}

/// An app routed here but running on other hosts of the cluster: the gateway
/// forwards its requests to one of `hosts`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RemoteTarget {
    /// The app's tenant.
    pub tenant: String,
    /// The app's name.
    pub app: String,
    /// The hosts (cluster host ids) that run it, with how many instances
    /// each; never this host.
    pub hosts: Vec<(u64, u32)>,
}

/// Resolves requests to targets.
pub trait Router: Send + Sync + 'static {
    /// The target for a request to `host` (lowercase or not, possibly with a
    /// port) and `path`, or `None` when nothing is routed there.
    fn route(&self, host: &str, path: &str) -> Option<Target>;

    /// When [`route`](Router::route) found nothing here: the app routed at
    /// `host` and `path` if it runs on other hosts only.
    fn remote(&self, _host: &str, _path: &str) -> Option<RemoteTarget> {
        None
    }
}

/// Serves one component on every host and path (`cloudware serve`).
pub struct SingleComponent(pub LinkedComponent);

impl Router for SingleComponent {
    fn route(&self, _host: &str, _path: &str) -> Option<Target> {
        Some(Target {
            component: self.0.clone(),
            recorder: None,
        })
    }
}

/// The host a request is addressed to: the URI's authority (HTTP/2, absolute
/// form) or the `Host` header (HTTP/1.1), without the port.
pub fn request_host<B>(request: &http::Request<B>) -> Option<&str> {
    let raw = match request.uri().authority() {
        Some(authority) => authority.host(),
        None => request.headers().get(http::header::HOST)?.to_str().ok()?,
    };
    Some(strip_port(raw))
}

fn strip_port(host: &str) -> &str {
    if host.starts_with('[') {
        // An IPv6 literal: keep the brackets, drop a trailing `:port`.
        return host
            .split_once(']')
            .map_or(host, |(h, _)| &host[..=h.len()]);
    }
    host.rsplit_once(':')
        .filter(|(_, port)| port.bytes().all(|b| b.is_ascii_digit()))
        .map_or(host, |(h, _)| h)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(uri: &str, host: Option<&str>) -> http::Request<()> {
        let mut builder = http::Request::get(uri);
        if let Some(host) = host {
            builder = builder.header("host", host);
        }
        builder.body(()).expect("request")
    }

    #[test]
    fn host_comes_from_the_header_or_the_authority() {
        assert_eq!(
            request_host(&request("/x", Some("shop.example.com:8080"))),
            Some("shop.example.com")
        );
        assert_eq!(
            request_host(&request("/x", Some("shop.example.com"))),
            Some("shop.example.com")
        );
        assert_eq!(
            request_host(&request("http://a.example:81/x", Some("ignored"))),
            Some("a.example")
        );
        assert_eq!(
            request_host(&request("/x", Some("[::1]:8080"))),
            Some("[::1]")
        );
        assert_eq!(request_host(&request("/x", None)), None);
    }
}
