//! `/v1/tokens`: create, list and revoke tokens (operators). A token's
//! secret is shown once, at creation; only its hash is stored.

use crate::auth::{Action, Principal, hash_secret, new_secret, new_token_id};
use crate::error::ApiError;
use crate::extract::JsonBody;
use crate::wire::{CreateToken, CreatedToken, TokenInfo};
use crate::{ApiContext, now_ms};
use axum::Json;
use axum::extract::{Path, State};
use cloudware_node::{ControlPlane, ProposeFailure};
use cloudware_state::{Command, Role, Token};
use http::StatusCode;
use std::sync::Arc;

/// Creates a token and returns it with its secret. Used by the API and by
/// `cloudware up` for the first operator token.
pub async fn create_token(
    control: &ControlPlane,
    role: Role,
    tenant: Option<String>,
    description: String,
) -> Result<CreatedToken, ProposeFailure> {
    let id = new_token_id();
    let secret = new_secret();
    let at = now_ms();
    control
        .propose(Command::CreateToken {
            id: id.clone(),
            secret_hash: hash_secret(&secret),
            role,
            tenant: tenant.clone(),
            description: description.clone(),
            at,
        })
        .await?;
    Ok(CreatedToken {
        info: TokenInfo {
            id,
            role: role.as_str().to_string(),
            tenant,
            description,
            created_at: at,
            revoked: false,
        },
        token: secret,
    })
}

/// `POST /v1/tokens`.
pub async fn create(
    State(context): State<Arc<ApiContext>>,
    principal: Principal,
    JsonBody(request): JsonBody<CreateToken>,
) -> Result<(StatusCode, Json<CreatedToken>), ApiError> {
    principal.require(Action::Administer)?;
    let role: Role = request
        .role
        .parse()
        .map_err(|err: cloudware_state::ParseRoleError| ApiError::BadRequest(err.to_string()))?;
    let created = create_token(&context.control, role, request.tenant, request.description).await?;
    Ok((StatusCode::CREATED, Json(created)))
}

/// `GET /v1/tokens`.
pub async fn list(
    State(context): State<Arc<ApiContext>>,
    principal: Principal,
) -> Result<Json<Vec<TokenInfo>>, ApiError> {
    principal.require(Action::Administer)?;
    Ok(Json(
        context
            .control
            .read(|state| state.tokens().map(info).collect()),
    ))
}

/// `DELETE /v1/tokens/{id}`.
pub async fn revoke(
    State(context): State<Arc<ApiContext>>,
    principal: Principal,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    principal.require(Action::Administer)?;
    context.control.propose(Command::RevokeToken { id }).await?;
    Ok(StatusCode::NO_CONTENT)
}

fn info(token: &Token) -> TokenInfo {
    TokenInfo {
        id: token.id.clone(),
        role: token.role.as_str().to_string(),
        tenant: token.tenant.clone(),
        description: token.description.clone(),
        created_at: token.created_at,
        revoked: token.revoked,
    }
}
