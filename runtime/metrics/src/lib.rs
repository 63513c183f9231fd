//! The node's metrics.
//!
//! The gateway records every request against its app and tenant; the admin
//! API renders them as Prometheus text (`/metrics`) and as live figures
//! (`cloudware status`: requests/s, error rate, p50/p99 over the last
//! minute). Per-tenant resource use — requests, guest CPU time, wall time,
//! peak memory, stored bytes — is the basis for billing by resources used.

mod window;

pub use window::{Window, WindowSummary};

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

/// Labels of per-app series.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct AppLabels {
    /// The owning tenant.
    pub tenant: String,
    /// The app.
    pub app: String,
}

/// Labels of per-tenant series.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct TenantLabels {
    /// The tenant.
    pub tenant: String,
}

/// Labels of per-host series: the host's name and one of its states.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct HostLabels {
    /// The host's name.
    pub host: String,
    /// `ready`, `draining` or `down`.
    pub state: String,
}

/// The states a cluster host can be in, as exported.
pub const HOST_STATES: [&str; 3] = ["ready", "draining", "down"];

/// What one finished request cost.
#[derive(Clone, Copy, Debug)]
pub struct RequestRecord {
    /// Wall time from arrival to response head.
    pub latency: Duration,
    /// Time spent running the guest.
    pub guest_time: Duration,
    /// Largest linear memory its instance reached, in bytes.
    pub peak_memory: u64,
    /// Whether it ended in a 5xx.
    pub server_error: bool,
}

/// Every metric of a node.
pub struct Metrics {
    registry: Registry,
    app_requests: Family<AppLabels, Counter>,
    app_errors: Family<AppLabels, Counter>,
    app_latency: Family<AppLabels, Histogram>,
    app_instances: Family<AppLabels, Gauge>,
    tenant_requests: Family<TenantLabels, Counter>,
    tenant_guest_seconds: Family<TenantLabels, Counter<f64, AtomicU64>>,
    tenant_wall_seconds: Family<TenantLabels, Counter<f64, AtomicU64>>,
    tenant_peak_memory: Family<TenantLabels, Gauge>,
    tenant_stored_bytes: Family<TenantLabels, Gauge>,
    app_forwarded: Family<AppLabels, Counter>,
    app_forward_failures: Family<AppLabels, Counter>,
    host_state: Family<HostLabels, Gauge>,
    /// The hosts `host_state` has series of.
    hosts: Mutex<Vec<String>>,
    windows: Mutex<HashMap<AppLabels, Arc<Window>>>,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// An empty set of metrics.
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("cloudware");
        let app_requests = Family::<AppLabels, Counter>::default();
        let app_errors = Family::<AppLabels, Counter>::default();
        let app_latency = Family::<AppLabels, Histogram>::new_with_constructor(|| {
            // 100 µs … ~52 s in factor-2 steps.
            Histogram::new(prometheus_client::metrics::histogram::exponential_buckets(
                0.0001, 2.0, 20,
            ))
        });
        let app_instances = Family::<AppLabels, Gauge>::default();
        let tenant_requests = Family::<TenantLabels, Counter>::default();
        let tenant_guest_seconds = Family::<TenantLabels, Counter<f64, AtomicU64>>::default();
        let tenant_wall_seconds = Family::<TenantLabels, Counter<f64, AtomicU64>>::default();
        let tenant_peak_memory = Family::<TenantLabels, Gauge>::default();
        let tenant_stored_bytes = Family::<TenantLabels, Gauge>::default();
        let app_forwarded = Family::<AppLabels, Counter>::default();
        let app_forward_failures = Family::<AppLabels, Counter>::default();
        let host_state = Family::<HostLabels, Gauge>::default();
        registry.register(
            "app_requests",
            "Requests handled per app",
            app_requests.clone(),
        );
        registry.register(
            "app_errors",
            "Requests per app answered with a 5xx",
            app_errors.clone(),
        );
        registry.register(
            "app_request_duration_seconds",
            "Request latency per app",
            app_latency.clone(),
        );
        registry.register(
            "app_instances",
            "Instances of the app running now",
            app_instances.clone(),
        );
        registry.register(
            "tenant_requests",
            "Requests handled per tenant",
            tenant_requests.clone(),
        );
        registry.register(
            "tenant_guest_cpu_seconds",
            "Time spent running the tenant's guests",
            tenant_guest_seconds.clone(),
        );
        registry.register(
            "tenant_wall_seconds",
            "Wall time of the tenant's requests",
            tenant_wall_seconds.clone(),
        );
        registry.register(
            "tenant_peak_memory_bytes",
            "Largest instance memory any of the tenant's requests reached",
            tenant_peak_memory.clone(),
        );
        registry.register(
            "tenant_stored_bytes",
            "Bytes of packages the tenant stores",
            tenant_stored_bytes.clone(),
        );
        registry.register(
            "app_forwarded_requests",
            "Requests for the app this host's gateway forwarded to a host that runs it",
            app_forwarded.clone(),
        );
        registry.register(
            "app_forward_failures",
            "Requests for the app this host's gateway could not forward (answered 5xx or 413 here)",
            app_forward_failures.clone(),
        );
        registry.register(
            "host_state",
            "1 for the state each cluster host is in as this host sees it (ready, draining, down), 0 for the others",
            host_state.clone(),
        );
        Metrics {
            registry,
            app_requests,
            app_errors,
            app_latency,
            app_instances,
            tenant_requests,
            tenant_guest_seconds,
            tenant_wall_seconds,
            tenant_peak_memory,
            tenant_stored_bytes,
            app_forwarded,
            app_forward_failures,
            host_state,
            hosts: Mutex::new(Vec::new()),
            windows: Mutex::new(HashMap::new()),
        }
    }

    /// The recorder for one app; cheap to clone and use per request.
    pub fn app(self: &Arc<Self>, tenant: &str, app: &str) -> AppRecorder {
        let labels = AppLabels {
            tenant: tenant.to_string(),
            app: app.to_string(),
        };
        let window = self
            .windows
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .entry(labels.clone())
            .or_insert_with(|| Arc::new(Window::new()))
            .clone();
        let owner = TenantLabels {
            tenant: tenant.to_string(),
        };
        AppRecorder {
            inner: Arc::new(RecorderInner {
                requests: self.app_requests.get_or_create(&labels).clone(),
                errors: self.app_errors.get_or_create(&labels).clone(),
                latency: self.app_latency.get_or_create(&labels).clone(),
                tenant_requests: self.tenant_requests.get_or_create(&owner).clone(),
                tenant_guest_seconds: self.tenant_guest_seconds.get_or_create(&owner).clone(),
                tenant_wall_seconds: self.tenant_wall_seconds.get_or_create(&owner).clone(),
                tenant_peak_memory: self.tenant_peak_memory.get_or_create(&owner).clone(),
                window,
            }),
        }
    }

    /// Sets how many instances of an app run now.
    pub fn set_instances(&self, tenant: &str, app: &str, running: u64) {
        let labels = AppLabels {
            tenant: tenant.to_string(),
            app: app.to_string(),
        };
        self.app_instances
            .get_or_create(&labels)
            .set(i64::try_from(running).unwrap_or(i64::MAX));
    }

    /// Sets the bytes of packages a tenant stores.
    pub fn set_stored_bytes(&self, tenant: &str, bytes: u64) {
        self.tenant_stored_bytes
            .get_or_create(&TenantLabels {
                tenant: tenant.to_string(),
            })
            .set(i64::try_from(bytes).unwrap_or(i64::MAX));
    }

    /// Counts a request for an app the gateway forwarded to another host
    /// (`forwarded`), or could not forward.
    pub fn count_forwarded(&self, tenant: &str, app: &str, forwarded: bool) {
        let labels = AppLabels {
            tenant: tenant.to_string(),
            app: app.to_string(),
        };
        let family = if forwarded {
            &self.app_forwarded
        } else {
            &self.app_forward_failures
        };
        family.get_or_create(&labels).inc();
    }

    /// Records the state (one of [`HOST_STATES`]) of every cluster host;
    /// hosts no longer listed (they left the cluster) are dropped.
    pub fn set_host_states(&self, hosts: &[(String, &str)]) {
        let mut known = self
            .hosts
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        for gone in known
            .iter()
            .filter(|name| !hosts.iter().any(|(n, _)| n == *name))
        {
            for state in HOST_STATES {
                self.host_state.remove(&HostLabels {
                    host: gone.clone(),
                    state: state.to_string(),
                });
            }
        }
        known.clear();
        for (host, state) in hosts {
            for candidate in HOST_STATES {
                self.host_state
                    .get_or_create(&HostLabels {
                        host: host.clone(),
                        state: candidate.to_string(),
                    })
                    .set(i64::from(candidate == *state));
            }
            known.push(host.clone());
        }
    }

    /// The last minute of an app's traffic.
    pub fn summary(&self, tenant: &str, app: &str) -> WindowSummary {
        let labels = AppLabels {
            tenant: tenant.to_string(),
            app: app.to_string(),
        };
        let window = self
            .windows
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&labels)
            .cloned();
        window.map(|w| w.summary()).unwrap_or_default()
    }

    /// Everything, in the Prometheus text exposition format.
    pub fn render(&self) -> String {
        let mut text = String::new();
        // Encoding into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut text, &self.registry);
        text
    }
}

/// Records requests of one app (and its tenant).
#[derive(Clone)]
pub struct AppRecorder {
    inner: Arc<RecorderInner>,
}

struct RecorderInner {
    requests: Counter,
    errors: Counter,
    latency: Histogram,
    tenant_requests: Counter,
    tenant_guest_seconds: Counter<f64, AtomicU64>,
    tenant_wall_seconds: Counter<f64, AtomicU64>,
    tenant_peak_memory: Gauge,
    window: Arc<Window>,
}

impl AppRecorder {
    /// Records one finished request.
    pub fn record(&self, record: RequestRecord) {
        let inner = &self.inner;
        inner.requests.inc();
        inner.tenant_requests.inc();
        if record.server_error {
            inner.errors.inc();
        }
        inner.latency.observe(record.latency.as_secs_f64());
        inner
            .tenant_guest_seconds
            .inc_by(record.guest_time.as_secs_f64());
        inner
            .tenant_wall_seconds
            .inc_by(record.latency.as_secs_f64());
        let peak = i64::try_from(record.peak_memory).unwrap_or(i64::MAX);
        // A gauge holding the maximum seen.
        let gauge = inner.tenant_peak_memory.inner();
        gauge.fetch_max(peak, Ordering::Relaxed);
        inner.window.record(record.latency, record.server_error);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_render_as_prometheus_text() {
        let metrics = Arc::new(Metrics::new());
        let shop = metrics.app("acme", "shop");
        for i in 0..10u64 {
            shop.record(RequestRecord {
                latency: Duration::from_millis(2),
                guest_time: Duration::from_millis(1),
                peak_memory: 1_000_000 + i,
                server_error: i == 0,
            });
        }
        metrics.set_instances("acme", "shop", 3);
        metrics.set_stored_bytes("acme", 4096);
        metrics.count_forwarded("acme", "shop", true);
        metrics.count_forwarded("acme", "shop", false);
        metrics.set_host_states(&[("beta".into(), "ready"), ("gamma".into(), "ready")]);
        metrics.set_host_states(&[("beta".into(), "down")]);
        let text = metrics.render();
        assert!(!text.contains(r#"host="gamma""#), "{text}");
        for expected in [
            r#"cloudware_app_requests_total{tenant="acme",app="shop"} 10"#,
            r#"cloudware_app_errors_total{tenant="acme",app="shop"} 1"#,
            r#"cloudware_app_instances{tenant="acme",app="shop"} 3"#,
            r#"cloudware_tenant_requests_total{tenant="acme"} 10"#,
            r#"cloudware_tenant_peak_memory_bytes{tenant="acme"} 1000009"#,
            r#"cloudware_tenant_stored_bytes{tenant="acme"} 4096"#,
            r#"cloudware_app_request_duration_seconds_count{tenant="acme",app="shop"} 10"#,
            r#"cloudware_app_forwarded_requests_total{tenant="acme",app="shop"} 1"#,
            r#"cloudware_app_forward_failures_total{tenant="acme",app="shop"} 1"#,
            r#"cloudware_host_state{host="beta",state="down"} 1"#,
            r#"cloudware_host_state{host="beta",state="ready"} 0"#,
        ] {
            assert!(text.contains(expected), "missing {expected} in\n{text}");
        }
        let summary = metrics.summary("acme", "shop");
        assert_eq!(summary.requests, 10);
        assert!((summary.error_rate - 0.1).abs() < 1e-9);
    }
}
