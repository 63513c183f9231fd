//! `/v1/tenants`: create and list tenants (operators).

use crate::auth::{Action, Principal};
use crate::error::ApiError;
use crate::extract::JsonBody;
use crate::wire::{CreateTenant, TenantInfo};
use crate::{ApiContext, now_ms};
use axum::Json;
use axum::extract::State;
use cloudware_state::Command;
use http::StatusCode;
use std::sync::Arc;

/// `POST /v1/tenants`.
pub async fn create(
    State(context): State<Arc<ApiContext>>,
    principal: Principal,
    JsonBody(request): JsonBody<CreateTenant>,
) -> Result<(StatusCode, Json<TenantInfo>), ApiError> {
    principal.require(Action::Administer)?;
    let at = now_ms();
    context
        .control
        .propose(Command::CreateTenant {
            name: request.name.clone(),
            at,
        })
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(TenantInfo {
            name: request.name,
            created_at: at,
        }),
    ))
}

/// `GET /v1/tenants`: every tenant for operators, one's own otherwise.
pub async fn list(
    State(context): State<Arc<ApiContext>>,
    principal: Principal,
) -> Result<Json<Vec<TenantInfo>>, ApiError> {
    principal.require(Action::Read)?;
    let tenants = context.control.read(|state| {
        state
            .tenants()
            .filter(|t| {
                principal.sees_all() || principal.tenant.as_deref() == Some(t.name.as_str())
            })
            .map(|t| TenantInfo {
                name: t.name.clone(),
                created_at: t.created_at,
            })
            .collect()
    });
    Ok(Json(tenants))
}
