//! Partners: outside systems allowed to call chosen exported functions of
//! a tenant's apps through the gateway's signed `POST /openapi`.
//!
//! A partner belongs to one tenant, has a platform-assigned `app_id`, its
//! RSA public key (PEM, checked by the API before proposal) and the list of
//! methods (`APP.FUNCTION`) it may call; anything else is refused.

use crate::command::Outcome;
use crate::error::CommandError;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// The most methods one partner may be given.
pub const MAX_PARTNER_METHODS: usize = 256;

/// A registered partner.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Partner {
    /// The partner's id, chosen by the platform (e.g. `2026112100000001`).
    pub app_id: String,
    /// The tenant whose apps it may call.
    pub tenant: String,
    /// A name for people.
    pub name: String,
    /// Its RSA public key, PEM.
    pub public_key: String,
    /// Methods it may call, `APP.FUNCTION`.
    pub methods: Vec<String>,
    /// When it was registered (unix milliseconds).
    pub created_at: u64,
}

/// Every partner, by `app_id`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Partners {
    by_app_id: BTreeMap<String, Partner>,
}

impl Partners {
    pub(crate) fn from_parts(by_app_id: BTreeMap<String, Partner>) -> Self {
        Partners { by_app_id }
    }

    pub(crate) fn map(&self) -> &BTreeMap<String, Partner> {
        &self.by_app_id
    }

    pub(crate) fn get(&self, app_id: &str) -> Option<&Partner> {
        self.by_app_id.get(app_id)
    }

    pub(crate) fn all(&self) -> impl Iterator<Item = &Partner> {
        self.by_app_id.values()
    }

    pub(crate) fn register(&mut self, partner: Partner) -> Result<Outcome, CommandError> {
        let invalid = |reason: String| CommandError::InvalidPartner { reason };
        if partner.app_id.is_empty()
            || partner.app_id.len() > 64
            || !partner.app_id.bytes().all(|b| b.is_ascii_alphanumeric())
        {
            return Err(invalid(
                "app_id must be 1-64 ASCII letters or digits".into(),
            ));
        }
        if self.by_app_id.contains_key(&partner.app_id) {
            return Err(CommandError::PartnerExists {
                app_id: partner.app_id,
            });
        }
        if partner.name.is_empty() || partner.name.len() > 128 {
            return Err(invalid("the name must be 1-128 characters".into()));
        }
        if !partner.public_key.contains("-----BEGIN") || partner.public_key.len() > 16 * 1024 {
            return Err(invalid(
                "the public key must be PEM (at most 16 KiB)".into(),
            ));
        }
        if partner.methods.len() > MAX_PARTNER_METHODS {
            return Err(invalid(format!(
                "at most {MAX_PARTNER_METHODS} methods, got {}",
                partner.methods.len()
            )));
        }
        for method in &partner.methods {
            let valid = method.split_once('.').is_some_and(|(app, function)| {
                !app.is_empty()
                    && !function.is_empty()
                    && method.len() <= 256
                    && method
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b"-_.#/:@".contains(&b))
            });
            if !valid {
                return Err(invalid(format!(
                    "`{method}` is not a method; methods are APP.FUNCTION"
                )));
            }
        }
        let app_id = partner.app_id.clone();
        self.by_app_id.insert(app_id.clone(), partner);
        Ok(Outcome::PartnerRegistered { app_id })
    }

    pub(crate) fn remove(&mut self, tenant: &str, app_id: &str) -> Result<Outcome, CommandError> {
        match self.by_app_id.get(app_id) {
            Some(partner) if partner.tenant == tenant => {
                self.by_app_id.remove(app_id);
                Ok(Outcome::PartnerRemoved)
            }
            _ => Err(CommandError::UnknownPartner {
                app_id: app_id.to_owned(),
            }),
        }
    }
}
