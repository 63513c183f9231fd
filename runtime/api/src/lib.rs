//! Cloudware's admin REST API.
//!
//! Every call is authenticated with a bearer token and authorised by its
//! role and tenant ([`auth`]); writes become commands proposed to the
//! replicated log ([`cloudware_node::ControlPlane`]), and reads come from
//! the applied state. The OpenAPI document is served at `/openapi.json`,
//! Prometheus metrics at `/metrics`.

// The OpenAPI document is one large `json!` literal.
#![recursion_limit = "256"]

pub mod auth;
mod error;
mod extract;
mod handlers;
mod openapi;
pub mod wire;

pub use error::ApiError;
pub use handlers::tokens::create_token;

use axum::Router;
use axum::routing::{delete, get, post, put};
use cloudware_engine::Engine;
use cloudware_metrics::Metrics;
use cloudware_node::{ControlPlane, NodeRouter, PackageStore, Reconciler};
use std::sync::Arc;
use std::time::Duration;

/// Everything the admin API works with.
pub struct ApiContext {
    /// The replicated desired state.
    pub control: Arc<ControlPlane>,
    /// Uploaded packages.
    pub packages: PackageStore,
    /// The engine, for validating uploads (and compiling them once).
    pub engine: Engine,
    /// The node's metrics.
    pub metrics: Arc<Metrics>,
    /// The reconciler, for live instance counts.
    pub reconciler: Arc<Reconciler>,
    /// The router, to know when traffic has moved.
    pub router: Arc<NodeRouter>,
    /// Limits of the API itself.
    pub limits: ApiLimits,
    /// The platform's public key (PEM) signing partner API replies.
    pub partner_public_key: String,
    /// How this host sees its cluster peers (`None` outside a cluster).
    pub health: Option<Arc<dyn cloudware_node::PeerHealth>>,
}

/// Limits of the admin API.
#[derive(Clone, Debug)]
pub struct ApiLimits {
    /// Largest package accepted, in bytes.
    pub max_package_size: u64,
    /// How long a deploy waits for its version to go live.
    pub deploy_timeout: Duration,
    /// Instances a new app gets when its first deployment names none.
    pub default_instances: u32,
}

impl Default for ApiLimits {
    fn default() -> Self {
        ApiLimits {
            max_package_size: 64 * 1024 * 1024,
            deploy_timeout: Duration::from_secs(120),
            default_instances: 16,
        }
    }
}

/// The API's routes.
pub fn router(context: Arc<ApiContext>) -> Router {
    use handlers::{apps, nodes, packages, partners, queues, status, tenants, tokens};
    Router::new()
        .route("/openapi.json", get(openapi::document))
        .route("/v1/health", get(status::health))
        .route("/metrics", get(status::metrics))
        .route("/v1/tenants", post(tenants::create).get(tenants::list))
        .route("/v1/tokens", post(tokens::create).get(tokens::list))
        .route("/v1/tokens/{id}", delete(tokens::revoke))
        .route("/v1/packages", post(packages::push).get(packages::list))
        .route("/v1/apps", get(apps::list))
        .route(
            "/v1/apps/{app}/deployments",
            post(apps::deploy).get(apps::history),
        )
        .route("/v1/apps/{app}/rollback", post(apps::rollback))
        .route("/v1/apps/{app}/scale", put(apps::scale))
        .route("/v1/partners", post(partners::create).get(partners::list))
        .route("/v1/partners/platform-key", get(partners::platform_key))
        .route("/v1/partners/{app_id}", delete(partners::remove))
        .route("/v1/queues", get(queues::list))
        .route("/v1/queues/{queue}/dead-letters", get(queues::dead_letters))
        .route("/v1/queues/{queue}/replay", post(queues::replay))
        .route("/v1/nodes", get(nodes::list))
        .route("/v1/nodes/{host}", delete(nodes::remove))
        .route("/v1/nodes/{host}/drain", post(nodes::drain))
        .route("/v1/nodes/{host}/ready", post(nodes::ready))
        .route("/v1/status", get(status::all))
        .route("/v1/apps/{app}/status", get(status::one))
        .fallback(handlers::not_found)
        .layer(axum::extract::DefaultBodyLimit::disable())
        .with_state(context)
}

/// Serves the API on `listener` until `shutdown` resolves.
pub async fn serve(
    listener: tokio::net::TcpListener,
    context: Arc<ApiContext>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, router(context))
        .with_graceful_shutdown(shutdown)
        .await
}

/// Milliseconds since the Unix epoch (command timestamps).
pub(crate) fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}
