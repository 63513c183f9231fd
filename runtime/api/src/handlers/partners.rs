//! `/v1/partners`: register, list and remove the outside systems allowed to
//! call chosen exported functions through the gateway's signed
//! `POST /openapi`, and show the platform's public key replies are signed
//! with.

use crate::auth::{Action, Principal};
use crate::error::ApiError;
use crate::extract::{JsonBody, Tenant};
use crate::wire::{CreatePartner, PartnerInfo, PlatformKey};
use crate::{ApiContext, now_ms};
use axum::Json;
use axum::extract::{Path, State};
use cloudware_state::{Command, Partner};
use http::StatusCode;
use std::sync::Arc;

/// `POST /v1/partners`: registers a partner and returns its `app_id`.
pub async fn create(
    State(context): State<Arc<ApiContext>>,
    principal: Principal,
    Tenant(requested): Tenant,
    JsonBody(request): JsonBody<CreatePartner>,
) -> Result<(StatusCode, Json<PartnerInfo>), ApiError> {
    principal.require(Action::ChangeApps)?;
    let tenant = principal.tenant_for(requested.as_deref())?;
    let key = cloudware_partner::parse_public_key(&request.public_key)
        .map_err(|err| ApiError::BadRequest(format!("the public key is not usable: {err}")))?;
    // Stored as PEM whatever form it came in.
    let public_key = cloudware_partner::public_key_pem(&key)
        .map_err(|err| ApiError::BadRequest(format!("the public key is not usable: {err}")))?;
    let at = now_ms();
    let app_id = new_app_id(at);
    let partner = Partner {
        app_id: app_id.clone(),
        tenant,
        name: request.name,
        public_key,
        methods: request.methods,
        created_at: at,
    };
    context
        .control
        .propose(Command::RegisterPartner {
            partner: partner.clone(),
        })
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(info(&partner, &context.partner_public_key)),
    ))
}

/// `GET /v1/partners`.
pub async fn list(
    State(context): State<Arc<ApiContext>>,
    principal: Principal,
    Tenant(requested): Tenant,
) -> Result<Json<Vec<PartnerInfo>>, ApiError> {
    principal.require(Action::Read)?;
    let scope = principal.scope(requested.as_deref())?;
    let partners = context.control.read(|state| {
        state
            .partners()
            .filter(|p| scope.as_deref().is_none_or(|tenant| p.tenant == tenant))
            .map(|p| info(p, &context.partner_public_key))
            .collect()
    });
    Ok(Json(partners))
}

/// `DELETE /v1/partners/{app_id}`.
pub async fn remove(
    State(context): State<Arc<ApiContext>>,
    principal: Principal,
    Tenant(requested): Tenant,
    Path(app_id): Path<String>,
) -> Result<StatusCode, ApiError> {
    principal.require(Action::ChangeApps)?;
    let tenant = principal.tenant_for(requested.as_deref())?;
    context
        .control
        .propose(Command::RemovePartner { tenant, app_id })
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `GET /v1/partners/platform-key`: the key partner API replies are signed
/// with.
pub async fn platform_key(
    State(context): State<Arc<ApiContext>>,
    principal: Principal,
) -> Result<Json<PlatformKey>, ApiError> {
    principal.require(Action::Read)?;
    Ok(Json(PlatformKey {
        public_key: context.partner_public_key.clone(),
    }))
}

fn info(partner: &Partner, platform_key: &str) -> PartnerInfo {
    PartnerInfo {
        app_id: partner.app_id.clone(),
        tenant: partner.tenant.clone(),
        name: partner.name.clone(),
        methods: partner.methods.clone(),
        created_at: partner.created_at,
        platform_public_key: platform_key.to_owned(),
    }
}

/// A new partner id: 16 digits, the date then random digits (Alipay's
/// ids look alike).
fn new_app_id(at_ms: u64) -> String {
    use rand::Rng;
    let days = at_ms / 86_400_000;
    format!(
        "{:06}{:010}",
        days % 1_000_000,
        rand::rng().random_range(0..10_000_000_000u64)
    )
}
