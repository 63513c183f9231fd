//! Health, live status per app, and Prometheus metrics.
//!
//! The status reads (and the app and deployment reads in `apps`) are
//! linearizable: [`linearizable`] confirms a raft read index first, so
//! every host answers with every write acknowledged before the call, or
//! with 503 when it cannot reach a quorum.

use crate::ApiContext;
use crate::auth::{Action, Principal};
use crate::error::ApiError;
use crate::extract::Tenant;
use crate::wire::AppStatus;
use axum::Json;
use axum::extract::{Path, State};
use axum::response::IntoResponse;
use cloudware_state::State as DesiredState;
use std::sync::Arc;

/// `GET /v1/health`: answers while the node runs (no token needed).
pub async fn health() -> Json<serde_json::Value> {
    Json(serde_json::json!({ "status": "ok" }))
}

/// `GET /metrics`: Prometheus text (operators).
pub async fn metrics(
    State(context): State<Arc<ApiContext>>,
    principal: Principal,
) -> Result<impl IntoResponse, ApiError> {
    principal.require(Action::Administer)?;
    super::nodes::record_host_states(&context);
    for (tenant, app, load) in context.reconciler.app_loads() {
        context
            .metrics
            .set_instances(&tenant, &app, u64::from(load.busy));
    }
    Ok((
        [(
            http::header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        context.metrics.render(),
    ))
}

/// `GET /v1/status`: every visible app's live figures.
pub async fn all(
    State(context): State<Arc<ApiContext>>,
    principal: Principal,
    Tenant(requested): Tenant,
) -> Result<Json<Vec<AppStatus>>, ApiError> {
    principal.require(Action::Read)?;
    let scope = principal.scope(requested.as_deref())?;
    let apps: Vec<(String, String)> = linearizable(&context, |state| {
        state
            .apps()
            .filter(|app| scope.as_deref().is_none_or(|t| t == app.tenant))
            .map(|app| (app.tenant.clone(), app.name.clone()))
            .collect()
    })
    .await?;
    Ok(Json(
        apps.iter()
            .filter_map(|(tenant, app)| app_status(&context, tenant, app))
            .collect(),
    ))
}

/// `GET /v1/apps/{app}/status`.
pub async fn one(
    State(context): State<Arc<ApiContext>>,
    principal: Principal,
    Tenant(requested): Tenant,
    Path(app): Path<String>,
) -> Result<Json<AppStatus>, ApiError> {
    principal.require(Action::Read)?;
    let tenant = principal.tenant_for(requested.as_deref())?;
    linearizable(&context, |_| ()).await?;
    app_status(&context, &tenant, &app)
        .map(Json)
        .ok_or_else(|| ApiError::NotFound(format!("no app `{app}` in tenant `{tenant}`")))
}

/// Runs `read` on the desired state once it reflects every write
/// acknowledged (on any host) before the call — a raft read index, see
/// [`cloudware_node::ControlPlane::read_linearizable`]. 503 when no quorum
/// confirms the read (no leader, or this host is cut off from it): a
/// possibly stale answer is never given.
pub(crate) async fn linearizable<R>(
    context: &ApiContext,
    read: impl FnOnce(&DesiredState) -> R,
) -> Result<R, ApiError> {
    context
        .control
        .read_linearizable(read)
        .await
        .map_err(|err| ApiError::Unavailable(err.to_string()))
}

/// One app's live figures, if it exists (from this host's applied state:
/// call [`linearizable`] first for a linearizable answer).
pub fn app_status(context: &ApiContext, tenant: &str, app: &str) -> Option<AppStatus> {
    let (version, instances) = context.control.read(|state| {
        state
            .app(tenant, app)
            .map(|a| (a.current, a.scale.instances))
    })?;
    let (placement, calls) = super::nodes::placement_of(context, tenant, app);
    let load = context.reconciler.app_load(tenant, app);
    let window = context.metrics.summary(tenant, app);
    context
        .metrics
        .set_instances(tenant, app, u64::from(load.busy));
    Some(AppStatus {
        app: app.to_string(),
        tenant: tenant.to_string(),
        version,
        instances,
        busy: load.busy,
        idle: instances.saturating_sub(load.busy),
        requests_per_second: window.requests_per_second,
        error_rate: window.error_rate,
        p50_ms: window.p50_ms,
        p99_ms: window.p99_ms,
        here: if context.router.serves_here(tenant, app) {
            load.instances
        } else {
            0
        },
        placement,
        calls,
    })
}
