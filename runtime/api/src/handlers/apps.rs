//! `/v1/apps`: deploy, list, history, roll back and scale apps.
//!
//! A deploy proposes a new pending version, then waits until the node has
//! compiled and probed it and traffic has moved to it (or it failed).

use super::status::{app_status, linearizable};
use crate::auth::{Action, Principal};
use crate::error::ApiError;
use crate::extract::{JsonBody, Tenant};
use crate::wire::{AppStatus, CreateDeployment, DeploymentInfo, Rollback, Scale};
use crate::{ApiContext, now_ms};
use axum::Json;
use axum::extract::{Path, State};
use cloudware_engine::OutboundPolicy;
use cloudware_state::{
    App, Command, Deployment, DeploymentLimits, DeploymentStatus, Outcome, Route,
};
use http::StatusCode;
use std::sync::Arc;

/// `POST /v1/apps/{app}/deployments`.
pub async fn deploy(
    State(context): State<Arc<ApiContext>>,
    principal: Principal,
    Tenant(requested): Tenant,
    Path(app): Path<String>,
    JsonBody(request): JsonBody<CreateDeployment>,
) -> Result<(StatusCode, Json<DeploymentInfo>), ApiError> {
    principal.require(Action::ChangeApps)?;
    let tenant = principal.tenant_for(requested.as_deref())?;
    let routes = request
        .routes
        .iter()
        .map(|route| parse_route(route))
        .collect::<Result<Vec<_>, _>>()?;
    OutboundPolicy::allow(&request.allow_outbound)
        .map_err(|err| ApiError::BadRequest(err.to_string()))?;
    let mut capabilities = context
        .reconciler
        .capabilities()
        .prepare(&tenant, &app, &request.capabilities)
        .map_err(|err| ApiError::BadRequest(err.to_string()))?;
    // Secrets are never shown back, so a deploy that names none keeps the
    // current version's (sealed for this app, so still valid); an empty
    // `secrets` object removes them.
    if !request.capabilities.contains_key("secrets")
        && let Some(sealed) = context.control.read(|state| {
            state
                .current_deployment(&tenant, &app)
                .and_then(|current| current.capabilities.get("secrets").cloned())
        })
    {
        capabilities.insert("secrets".to_owned(), sealed);
    }
    check_imports(
        &context,
        &tenant,
        &app,
        &request.package,
        &request.config,
        &capabilities,
    )?;
    check_shape(
        &context,
        &tenant,
        &request.package,
        !routes.is_empty(),
        &capabilities,
    )?;
    let exists = context
        .control
        .read(|state| state.app(&tenant, &app).is_some());
    let scale = match (request.instances, exists) {
        (Some(instances), _) => Some(cloudware_state::Scale {
            instances,
            min_warm: 0,
        }),
        (None, false) => Some(cloudware_state::Scale {
            instances: context.limits.default_instances,
            min_warm: 0,
        }),
        (None, true) => None,
    };
    let outcome = context
        .control
        .propose(Command::CreateDeployment {
            tenant: tenant.clone(),
            app: app.clone(),
            package: request.package,
            routes,
            limits: DeploymentLimits {
                timeout_ms: request.timeout_ms,
                memory_bytes: request.memory_bytes,
            },
            allow_outbound: request.allow_outbound,
            config: request.config,
            capabilities,
            scale,
            by: principal.token_id.clone(),
            at: now_ms(),
        })
        .await?;
    let Outcome::DeploymentCreated { version } = outcome else {
        return Err(ApiError::Internal(format!(
            "unexpected outcome {outcome:?}"
        )));
    };
    let info = settle(&context, &tenant, &app, version).await?;
    Ok((StatusCode::CREATED, Json(info)))
}

/// Refuses, before anything is proposed, a package that imports a
/// capability the deployment is not granted or a service interface it does
/// not link.
fn check_imports(
    context: &ApiContext,
    tenant: &str,
    app: &str,
    package: &str,
    config: &std::collections::BTreeMap<String, String>,
    capabilities: &std::collections::BTreeMap<String, serde_json::Value>,
) -> Result<(), ApiError> {
    let Some(imports) = context
        .control
        .read(|state| state.package(package).map(|p| p.imports.clone()))
    else {
        // The state machine reports the unknown package.
        return Ok(());
    };
    let grants = context
        .reconciler
        .capabilities()
        .grants(tenant, app, config, capabilities)
        .map_err(|err| ApiError::BadRequest(err.to_string()))?;
    let links = cloudware_node::capabilities::links_of(capabilities);
    for import in &imports {
        match context.engine.capability_of(import) {
            Some((name, always)) => {
                if !always && !grants.has(name) {
                    return Err(ApiError::BadRequest(format!(
                        "the component imports `{import}` (capability `{name}`), which this deployment is not granted; grant it with {} (or the `{name}` section of --capabilities)",
                        cloudware_node::capabilities::grant_flag(name)
                    )));
                }
            }
            None if import.starts_with("wasi:") => {}
            None => {
                if !links.contains_key(import) {
                    return Err(ApiError::BadRequest(format!(
                        "the component imports `{import}`, which is not a platform interface; link it to the app that exports it (services.links, or --link {import}=APP)"
                    )));
                }
            }
        }
    }
    Ok(())
}

/// Refuses, before anything is proposed, routes on a component that does
/// not serve HTTP, and links to apps that do not run or do not export the
/// linked interface.
fn check_shape(
    context: &ApiContext,
    tenant: &str,
    package: &str,
    has_routes: bool,
    capabilities: &std::collections::BTreeMap<String, serde_json::Value>,
) -> Result<(), ApiError> {
    let exports_http = context.control.read(|state| {
        state.package(package).map(|p| {
            p.exports
                .iter()
                .any(|e| e.starts_with(cloudware_engine::HTTP_HANDLER_INTERFACE))
        })
    });
    if has_routes && exports_http == Some(false) {
        return Err(ApiError::BadRequest(
            "the component does not export `wasi:http/incoming-handler`, so it cannot have routes; deploy it without --route (as a service or a consumer)".into(),
        ));
    }
    for (interface, exporter) in cloudware_node::capabilities::links_of(capabilities) {
        let exports = context.control.read(|state| {
            let deployment = state.current_deployment(tenant, &exporter)?;
            state
                .package(&deployment.package)
                .map(|p| p.exports.contains(&interface))
        });
        match exports {
            None => {
                return Err(ApiError::BadRequest(format!(
                    "`{interface}` is linked to app `{exporter}`, which has no current deployment; deploy it first"
                )));
            }
            Some(false) => {
                return Err(ApiError::BadRequest(format!(
                    "`{interface}` is linked to app `{exporter}`, which does not export it"
                )));
            }
            Some(true) => {}
        }
    }
    Ok(())
}

/// Waits until `version` is live, failed or superseded.
async fn settle(
    context: &ApiContext,
    tenant: &str,
    app: &str,
    version: u32,
) -> Result<DeploymentInfo, ApiError> {
    let mut applied = context.control.subscribe();
    let deadline = tokio::time::Instant::now() + context.limits.deploy_timeout;
    loop {
        let seen = context.control.read(|state| {
            let app_state = state.app(tenant, app)?;
            let deployment = app_state.deployment(version)?;
            Some((
                deployment_info(app_state, deployment),
                deployment.status.clone(),
            ))
        });
        let Some((info, status)) = seen else {
            return Err(ApiError::NotFound(format!(
                "app `{app}` has no version {version}"
            )));
        };
        match status {
            DeploymentStatus::Failed { reason } => {
                return Err(ApiError::BadRequest(format!(
                    "version {version} of `{app}` failed: {reason}"
                )));
            }
            DeploymentStatus::Active => {
                context
                    .router
                    .wait_published(context.control.raft().applied_index())
                    .await;
                return Ok(info);
            }
            DeploymentStatus::Pending if info.status == "superseded" => return Ok(info),
            DeploymentStatus::Pending => {}
        }
        if tokio::time::timeout_at(deadline, applied.changed())
            .await
            .is_err()
        {
            return Err(ApiError::Unavailable(format!(
                "version {version} of `{app}` did not go live within {:?}; it is still pending",
                context.limits.deploy_timeout
            )));
        }
    }
}

/// `GET /v1/apps`: each app's current (or latest) version (linearizable).
pub async fn list(
    State(context): State<Arc<ApiContext>>,
    principal: Principal,
    Tenant(requested): Tenant,
) -> Result<Json<Vec<DeploymentInfo>>, ApiError> {
    principal.require(Action::Read)?;
    let scope = principal.scope(requested.as_deref())?;
    let apps = linearizable(&context, |state| {
        let summary = |app: &App| {
            let shown = app.current_deployment().or_else(|| app.history.last())?;
            Some(deployment_info(app, shown))
        };
        match &scope {
            Some(tenant) => state.apps_of(tenant).filter_map(summary).collect(),
            None => state.apps().filter_map(summary).collect(),
        }
    })
    .await?;
    Ok(Json(apps))
}

/// `GET /v1/apps/{app}/deployments`: every version, oldest first
/// (linearizable).
pub async fn history(
    State(context): State<Arc<ApiContext>>,
    principal: Principal,
    Tenant(requested): Tenant,
    Path(app): Path<String>,
) -> Result<Json<Vec<DeploymentInfo>>, ApiError> {
    principal.require(Action::Read)?;
    let tenant = principal.tenant_for(requested.as_deref())?;
    linearizable(&context, |state| {
        let app_state = state.app(&tenant, &app)?;
        Some(
            app_state
                .history
                .iter()
                .map(|d| deployment_info(app_state, d))
                .collect(),
        )
    })
    .await?
    .map(Json)
    .ok_or_else(|| ApiError::NotFound(format!("no app `{app}` in tenant `{tenant}`")))
}

/// `POST /v1/apps/{app}/rollback`.
pub async fn rollback(
    State(context): State<Arc<ApiContext>>,
    principal: Principal,
    Tenant(requested): Tenant,
    Path(app): Path<String>,
    JsonBody(request): JsonBody<Rollback>,
) -> Result<Json<DeploymentInfo>, ApiError> {
    principal.require(Action::ChangeApps)?;
    let tenant = principal.tenant_for(requested.as_deref())?;
    let outcome = context
        .control
        .propose(Command::Rollback {
            tenant: tenant.clone(),
            app: app.clone(),
            to: request.to,
        })
        .await?;
    let Outcome::RolledBack { version, .. } = outcome else {
        return Err(ApiError::Internal(format!(
            "unexpected outcome {outcome:?}"
        )));
    };
    context
        .router
        .wait_published(context.control.raft().applied_index())
        .await;
    context
        .control
        .read(|state| {
            let app_state = state.app(&tenant, &app)?;
            Some(deployment_info(app_state, app_state.deployment(version)?))
        })
        .map(Json)
        .ok_or_else(|| ApiError::NotFound(format!("no app `{app}` in tenant `{tenant}`")))
}

/// `PUT /v1/apps/{app}/scale`: takes effect at once, no restart.
pub async fn scale(
    State(context): State<Arc<ApiContext>>,
    principal: Principal,
    Tenant(requested): Tenant,
    Path(app): Path<String>,
    JsonBody(request): JsonBody<Scale>,
) -> Result<Json<AppStatus>, ApiError> {
    principal.require(Action::ChangeApps)?;
    let tenant = principal.tenant_for(requested.as_deref())?;
    context
        .control
        .propose(Command::Scale {
            tenant: tenant.clone(),
            app: app.clone(),
            instances: request.instances,
            min_warm: request.min_warm,
            spread: request.spread.clone(),
        })
        .await?;
    context
        .router
        .wait_published(context.control.raft().applied_index())
        .await;
    app_status(&context, &tenant, &app)
        .map(Json)
        .ok_or_else(|| ApiError::NotFound(format!("no app `{app}` in tenant `{tenant}`")))
}

/// Parses `[HOST]/PATH-PREFIX`.
pub fn parse_route(text: &str) -> Result<Route, ApiError> {
    let slash = text.find('/').ok_or_else(|| {
        ApiError::BadRequest(format!(
            "route `{text}` has no path: write [HOST]/PATH-PREFIX, e.g. `shop.example.com/` or `/api`"
        ))
    })?;
    let (host, path) = text.split_at(slash);
    let host = (!host.is_empty()).then_some(host);
    Route::new(host, path).map_err(ApiError::from)
}

fn deployment_info(app: &App, deployment: &Deployment) -> DeploymentInfo {
    let (status, reason) = match &deployment.status {
        DeploymentStatus::Pending if app.is_stale(deployment) => ("superseded", None),
        DeploymentStatus::Pending => ("pending", None),
        DeploymentStatus::Active => ("active", None),
        DeploymentStatus::Failed { reason } => ("failed", Some(reason.clone())),
    };
    DeploymentInfo {
        app: app.name.clone(),
        tenant: app.tenant.clone(),
        version: deployment.version,
        package: deployment.package.clone(),
        routes: deployment.routes.iter().map(ToString::to_string).collect(),
        status: status.to_string(),
        reason,
        current: app.current == Some(deployment.version),
        created_at: deployment.created_at,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_parse_with_and_without_hosts() {
        let r = parse_route("shop.example.com/api").expect("route");
        assert_eq!(r.host.as_deref(), Some("shop.example.com"));
        assert_eq!(r.path_prefix, "/api");
        let r = parse_route("/").expect("route");
        assert_eq!(r.host, None);
        assert!(parse_route("*.example.com/").is_ok());
        assert!(matches!(
            parse_route("noslash"),
            Err(ApiError::BadRequest(_))
        ));
    }
}
