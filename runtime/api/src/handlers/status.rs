//! Health, live status per app, and Prometheus metrics.

use crate::ApiContext;
use crate::auth::{Action, Principal};
use crate::error::ApiError;
use crate::extract::Tenant;
use crate::wire::AppStatus;
use axum::Json;
use axum::extract::{Path, State};
use axum::response::IntoResponse;
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
    let apps: Vec<(String, String)> = context.control.read(|state| {
        state
            .apps()
            .filter(|app| scope.as_deref().is_none_or(|t| t == app.tenant))
            .map(|app| (app.tenant.clone(), app.name.clone()))
            .collect()
    });
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
    app_status(&context, &tenant, &app)
        .map(Json)
        .ok_or_else(|| ApiError::NotFound(format!("no app `{app}` in tenant `{tenant}`")))
}

/// One app's live figures, if it exists.
pub fn app_status(context: &ApiContext, tenant: &str, app: &str) -> Option<AppStatus> {
    let (version, instances) = context.control.read(|state| {
        state
            .app(tenant, app)
            .map(|a| (a.current, a.scale.instances))
    })?;
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
    })
}
