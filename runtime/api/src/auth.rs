//! Authentication (bearer tokens, stored only as sha256 hashes) and
//! authorisation (roles, scoped to a tenant).
//!
//! | role         | may |
//! | ------------ | --- |
//! | operator     | everything, on any tenant (named with `?tenant=`) |
//! | developer    | read its tenant; push, deploy, roll back and scale its tenant's apps |
//! | site-builder | read its tenant (site templates come with a later issue) |
//! | viewer       | read its tenant |

use crate::ApiContext;
use crate::error::ApiError;
use axum::extract::FromRequestParts;
use cloudware_state::Role;
use http::request::Parts;
use sha2::{Digest as _, Sha256};
use std::sync::Arc;

/// Who is calling: the authenticated token's identity.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Principal {
    /// The token's id (recorded as the author of what it changes).
    pub token_id: String,
    /// Its role.
    pub role: Role,
    /// Its tenant (`None` for operators).
    pub tenant: Option<String>,
}

/// What a call wants to do.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    /// Read a tenant's packages, apps, history and status.
    Read,
    /// Push packages and deploy, roll back or scale apps.
    ChangeApps,
    /// Create tenants, create and revoke tokens, read node-wide metrics.
    Administer,
}

impl Principal {
    /// Refuses the call unless the role allows `action`.
    pub fn require(&self, action: Action) -> Result<(), ApiError> {
        let allowed = matches!(
            (self.role, action),
            (Role::Operator, _)
                | (Role::Developer, Action::Read | Action::ChangeApps)
                | (Role::SiteBuilder | Role::Viewer, Action::Read)
        );
        if allowed {
            Ok(())
        } else {
            Err(ApiError::Forbidden(format!(
                "a {} token may not {}",
                self.role.as_str(),
                match action {
                    Action::Read => "read this",
                    Action::ChangeApps => "change apps",
                    Action::Administer => "administer the platform",
                }
            )))
        }
    }

    /// The tenant a call acts on: a token's own tenant, or for an operator
    /// the one it names. Naming another tenant than one's own is refused.
    pub fn tenant_for(&self, requested: Option<&str>) -> Result<String, ApiError> {
        match (&self.tenant, requested) {
            (Some(own), None) => Ok(own.clone()),
            (Some(own), Some(requested)) if own == requested => Ok(own.clone()),
            (Some(_), Some(_)) => Err(ApiError::Forbidden(
                "this token may only act on its own tenant".into(),
            )),
            (None, Some(requested)) => Ok(requested.to_string()),
            (None, None) => Err(ApiError::BadRequest(
                "an operator token acts on any tenant: say which with `?tenant=NAME`".into(),
            )),
        }
    }

    /// Which tenant a listing covers: `None` (all) for an operator naming
    /// none, otherwise the tenant [`Principal::tenant_for`] allows.
    pub fn scope(&self, requested: Option<&str>) -> Result<Option<String>, ApiError> {
        if self.sees_all() && requested.is_none() {
            return Ok(None);
        }
        self.tenant_for(requested).map(Some)
    }

    /// Whether this principal may see everything (operators).
    pub fn sees_all(&self) -> bool {
        self.role == Role::Operator
    }
}

/// The stored form of a token secret: lowercase hex sha256.
pub fn hash_secret(secret: &str) -> String {
    hex::encode(Sha256::digest(secret.as_bytes()))
}

/// A new token secret: `cw_` and 64 hex digits of randomness.
pub fn new_secret() -> String {
    format!("cw_{}", hex::encode(rand::random::<[u8; 32]>()))
}

/// A new token id: `tok_` and 16 hex digits.
pub fn new_token_id() -> String {
    format!("tok_{}", hex::encode(rand::random::<[u8; 8]>()))
}

impl FromRequestParts<Arc<ApiContext>> for Principal {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        context: &Arc<ApiContext>,
    ) -> Result<Self, Self::Rejection> {
        let header = parts
            .headers
            .get(http::header::AUTHORIZATION)
            .ok_or_else(|| {
                ApiError::Unauthorized("no token: send `Authorization: Bearer <token>`".into())
            })?;
        let secret = header
            .to_str()
            .ok()
            .and_then(|value| value.strip_prefix("Bearer "))
            .map(str::trim)
            .filter(|secret| !secret.is_empty())
            .ok_or_else(|| {
                ApiError::Unauthorized(
                    "malformed Authorization header: expected `Bearer <token>`".into(),
                )
            })?;
        let hash = hash_secret(secret);
        context
            .control
            .read(|state| {
                state.authenticate(&hash).map(|token| Principal {
                    token_id: token.id.clone(),
                    role: token.role,
                    tenant: token.tenant.clone(),
                })
            })
            .ok_or_else(|| ApiError::Unauthorized("unknown or revoked token".into()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn principal(role: Role, tenant: Option<&str>) -> Principal {
        Principal {
            token_id: "tok_x".into(),
            role,
            tenant: tenant.map(str::to_string),
        }
    }

    #[test]
    fn roles_allow_what_the_table_says() {
        let dev = principal(Role::Developer, Some("acme"));
        assert!(dev.require(Action::Read).is_ok());
        assert!(dev.require(Action::ChangeApps).is_ok());
        assert!(dev.require(Action::Administer).is_err());
        for role in [Role::Viewer, Role::SiteBuilder] {
            let p = principal(role, Some("acme"));
            assert!(p.require(Action::Read).is_ok());
            assert!(p.require(Action::ChangeApps).is_err());
        }
        let op = principal(Role::Operator, None);
        assert!(op.require(Action::Administer).is_ok());
    }

    #[test]
    fn tenants_are_scoped() {
        let dev = principal(Role::Developer, Some("acme"));
        assert_eq!(dev.tenant_for(None).ok(), Some("acme".into()));
        assert_eq!(dev.tenant_for(Some("acme")).ok(), Some("acme".into()));
        assert!(matches!(
            dev.tenant_for(Some("other")),
            Err(ApiError::Forbidden(_))
        ));
        let op = principal(Role::Operator, None);
        assert_eq!(op.tenant_for(Some("other")).ok(), Some("other".into()));
        assert!(matches!(op.tenant_for(None), Err(ApiError::BadRequest(_))));
    }

    #[test]
    fn secrets_are_random_and_hashed() {
        let a = new_secret();
        assert_ne!(a, new_secret());
        assert_eq!(hash_secret(&a).len(), 64);
        assert_ne!(hash_secret(&a), a);
    }
}
