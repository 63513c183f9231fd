//! Tenants and the API tokens that act for them.

use crate::command::Outcome;
use crate::error::{CommandError, NameKind, SnapshotError};
use crate::validation;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::str::FromStr;

/// A tenant: the owner of apps, packages and hosts. Every tenant's data is
/// its own.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tenant {
    /// The tenant's name, a slug (see [`validation::is_slug`]).
    pub name: String,
    /// When the tenant was created (unix milliseconds, from the command).
    pub created_at: u64,
}

/// What a token may do. The API layer decides what each role allows; this
/// crate only records it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Role {
    /// Runs the platform; belongs to no tenant.
    Operator,
    /// Uploads packages and deploys apps of its tenant.
    Developer,
    /// Builds sites from templates for its tenant.
    SiteBuilder,
    /// Reads its tenant's state.
    Viewer,
}

impl Role {
    /// Every role, in order of decreasing power.
    pub const ALL: [Role; 4] = [
        Role::Operator,
        Role::Developer,
        Role::SiteBuilder,
        Role::Viewer,
    ];

    /// The role's name as written in JSON and on the command line
    /// (`operator`, `developer`, `site-builder`, `viewer`).
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Operator => "operator",
            Role::Developer => "developer",
            Role::SiteBuilder => "site-builder",
            Role::Viewer => "viewer",
        }
    }

    /// Whether tokens of this role must belong to a tenant (all but
    /// operators).
    pub fn needs_tenant(self) -> bool {
        self != Role::Operator
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The text is not the name of a [`Role`].
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("`{0}` is not a role (expected operator, developer, site-builder or viewer)")]
pub struct ParseRoleError(pub String);

impl FromStr for Role {
    type Err = ParseRoleError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Role::ALL
            .into_iter()
            .find(|role| role.as_str() == s)
            .ok_or_else(|| ParseRoleError(s.to_owned()))
    }
}

/// An API token. The state holds only the hash of its secret, computed by
/// the caller; the secret itself never enters the log.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Token {
    /// The token's id, chosen by the proposer (e.g. `tok_…`).
    pub id: String,
    /// Lowercase hex sha256 of the token's secret.
    pub secret_hash: String,
    /// What the token may do.
    pub role: Role,
    /// The tenant the token acts for; `None` exactly for operators.
    pub tenant: Option<String>,
    /// A note from whoever created the token.
    pub description: String,
    /// When the token was created (unix milliseconds, from the command).
    pub created_at: u64,
    /// Whether the token was revoked; revoked tokens never authenticate.
    pub revoked: bool,
}

/// Tenants and tokens, with an index of tokens by secret hash.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Directory {
    tenants: BTreeMap<String, Tenant>,
    tokens: BTreeMap<String, Token>,
    /// Secret hash → token id, for every token (revoked ones too, so a
    /// revoked secret is never reused).
    by_secret: HashMap<String, String>,
}

impl Directory {
    /// Rebuilds the directory (and its index) from snapshot parts.
    pub(crate) fn from_parts(
        tenants: BTreeMap<String, Tenant>,
        tokens: BTreeMap<String, Token>,
    ) -> Result<Self, SnapshotError> {
        let inconsistent = |what: String| Err(SnapshotError::Inconsistent(what));
        if let Some((key, tenant)) = tenants.iter().find(|(key, t)| **key != t.name) {
            return inconsistent(format!("tenant `{}` is stored as `{key}`", tenant.name));
        }
        let mut by_secret = HashMap::with_capacity(tokens.len());
        for (key, token) in &tokens {
            if *key != token.id {
                return inconsistent(format!("token `{}` is stored as `{key}`", token.id));
            }
            if let Some(tenant) = &token.tenant
                && !tenants.contains_key(tenant)
            {
                return inconsistent(format!("token `{key}` names unknown tenant `{tenant}`"));
            }
            if by_secret
                .insert(token.secret_hash.clone(), token.id.clone())
                .is_some()
            {
                return inconsistent(format!("token `{key}` shares its secret with another"));
            }
        }
        Ok(Directory {
            tenants,
            tokens,
            by_secret,
        })
    }

    pub(crate) fn tenants_map(&self) -> &BTreeMap<String, Tenant> {
        &self.tenants
    }

    pub(crate) fn tokens_map(&self) -> &BTreeMap<String, Token> {
        &self.tokens
    }

    pub(crate) fn tenant(&self, name: &str) -> Option<&Tenant> {
        self.tenants.get(name)
    }

    pub(crate) fn require_tenant(&self, name: &str) -> Result<&Tenant, CommandError> {
        self.tenants
            .get(name)
            .ok_or_else(|| CommandError::UnknownTenant {
                name: name.to_owned(),
            })
    }

    pub(crate) fn token(&self, id: &str) -> Option<&Token> {
        self.tokens.get(id)
    }

    pub(crate) fn authenticate(&self, secret_hash: &str) -> Option<&Token> {
        let id = self.by_secret.get(secret_hash)?;
        self.tokens.get(id).filter(|token| !token.revoked)
    }

    pub(crate) fn create_tenant(&mut self, name: &str, at: u64) -> Result<Outcome, CommandError> {
        validation::check_name(NameKind::Tenant, name)?;
        if self.tenants.contains_key(name) {
            return Err(CommandError::TenantExists {
                name: name.to_owned(),
            });
        }
        self.tenants.insert(
            name.to_owned(),
            Tenant {
                name: name.to_owned(),
                created_at: at,
            },
        );
        Ok(Outcome::TenantCreated)
    }

    /// Creates a token; see [`Command::CreateToken`](crate::Command::CreateToken).
    pub(crate) fn create_token(&mut self, token: Token) -> Result<Outcome, CommandError> {
        if !validation::is_token_id(&token.id) {
            return Err(CommandError::InvalidTokenId { id: token.id });
        }
        if !validation::is_sha256_hex(&token.secret_hash) {
            return Err(CommandError::InvalidSecretHash);
        }
        match (&token.tenant, token.role.needs_tenant()) {
            (None, true) => return Err(CommandError::TenantRequired { role: token.role }),
            (Some(_), false) => return Err(CommandError::OperatorWithTenant),
            (Some(tenant), true) => {
                self.require_tenant(tenant)?;
            }
            (None, false) => {}
        }
        if self.tokens.contains_key(&token.id) {
            return Err(CommandError::TokenExists { id: token.id });
        }
        if self.by_secret.contains_key(&token.secret_hash) {
            return Err(CommandError::SecretInUse);
        }
        self.by_secret
            .insert(token.secret_hash.clone(), token.id.clone());
        self.tokens.insert(token.id.clone(), token);
        Ok(Outcome::TokenCreated)
    }

    pub(crate) fn revoke_token(&mut self, id: &str) -> Result<Outcome, CommandError> {
        let token = self
            .tokens
            .get_mut(id)
            .ok_or_else(|| CommandError::UnknownToken { id: id.to_owned() })?;
        let already_revoked = token.revoked;
        token.revoked = true;
        Ok(Outcome::TokenRevoked { already_revoked })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Command;
    use crate::testing::{Harness, hash};

    fn create_token(id: &str, n: u8, role: Role, tenant: Option<&str>) -> Command {
        Command::CreateToken {
            id: id.into(),
            secret_hash: hash(n),
            role,
            tenant: tenant.map(Into::into),
            description: format!("{id} for tests"),
            at: 7,
        }
    }

    #[test]
    fn roles_have_kebab_case_names() {
        for role in Role::ALL {
            let json = serde_json::to_string(&role).unwrap();
            assert_eq!(json, format!("\"{role}\""));
            assert_eq!(role.as_str().parse::<Role>(), Ok(role));
        }
        assert_eq!(Role::SiteBuilder.to_string(), "site-builder");
        assert!("admin".parse::<Role>().is_err());
        assert!(!Role::Operator.needs_tenant());
        assert!(Role::Viewer.needs_tenant());
    }

    #[test]
    fn creates_tenants() {
        let mut h = Harness::new();
        assert_eq!(
            h.ok(Command::CreateTenant {
                name: "acme".into(),
                at: 5
            }),
            Outcome::TenantCreated
        );
        assert_eq!(
            h.state.tenant("acme"),
            Some(&Tenant {
                name: "acme".into(),
                created_at: 5
            })
        );
        let err = h.rejected(Command::CreateTenant {
            name: "acme".into(),
            at: 6,
        });
        assert_eq!(err.to_string(), "tenant `acme` already exists");
        let err = h.rejected(Command::CreateTenant {
            name: "Acme".into(),
            at: 6,
        });
        assert!(matches!(
            err,
            CommandError::InvalidName {
                kind: NameKind::Tenant,
                ..
            }
        ));
        assert_eq!(h.state.tenants().count(), 1);
    }

    #[test]
    fn creates_tokens_and_authenticates_them() {
        let mut h = Harness::with_tenants(&["acme"]);
        h.ok(create_token("tok_op", 1, Role::Operator, None));
        h.ok(create_token("tok_dev", 2, Role::Developer, Some("acme")));
        let dev = h.state.token("tok_dev").unwrap();
        assert_eq!(dev.role, Role::Developer);
        assert_eq!(dev.tenant.as_deref(), Some("acme"));
        assert_eq!(dev.created_at, 7);
        assert!(!dev.revoked);
        assert_eq!(h.state.authenticate(&hash(2)).unwrap().id, "tok_dev");
        assert_eq!(h.state.authenticate(&hash(1)).unwrap().id, "tok_op");
        assert!(h.state.authenticate(&hash(3)).is_none());
        assert_eq!(h.state.tokens().count(), 2);
        assert_eq!(
            h.state
                .tokens_of("acme")
                .map(|t| &t.id[..])
                .collect::<Vec<_>>(),
            ["tok_dev"]
        );
    }

    #[test]
    fn rejects_bad_tokens() {
        let mut h = Harness::with_tenants(&["acme"]);
        h.ok(create_token("tok_a", 1, Role::Viewer, Some("acme")));
        let cases = [
            (
                create_token("tok_a", 2, Role::Viewer, Some("acme")),
                "token `tok_a` already exists",
            ),
            (
                create_token("tok_b", 1, Role::Viewer, Some("acme")),
                "another token already uses this secret",
            ),
            (
                create_token("tok_b", 2, Role::SiteBuilder, None),
                "a site-builder token must belong to a tenant",
            ),
            (
                create_token("tok_b", 2, Role::Operator, Some("acme")),
                "an operator token cannot belong to a tenant",
            ),
            (
                create_token("tok_b", 2, Role::Developer, Some("nope")),
                "tenant `nope` does not exist",
            ),
            (
                create_token("tok b", 2, Role::Operator, None),
                "`tok b` is not a valid token id: use 1–128 characters of A-Z, a-z, 0-9, '_' and '-'",
            ),
        ];
        for (command, message) in cases {
            assert_eq!(h.rejected(command).to_string(), message);
        }
        let mut bad_hash = create_token("tok_b", 2, Role::Operator, None);
        if let Command::CreateToken { secret_hash, .. } = &mut bad_hash {
            *secret_hash = "NOT-HEX".into();
        }
        assert_eq!(h.rejected(bad_hash), CommandError::InvalidSecretHash);
    }

    #[test]
    fn revoked_tokens_never_authenticate() {
        let mut h = Harness::with_tenants(&["acme"]);
        h.ok(create_token("tok_a", 1, Role::Developer, Some("acme")));
        assert_eq!(
            h.ok(Command::RevokeToken { id: "tok_a".into() }),
            Outcome::TokenRevoked {
                already_revoked: false
            }
        );
        assert!(h.state.authenticate(&hash(1)).is_none());
        assert!(h.state.token("tok_a").unwrap().revoked);
        assert_eq!(
            h.ok(Command::RevokeToken { id: "tok_a".into() }),
            Outcome::TokenRevoked {
                already_revoked: true
            }
        );
        // The revoked secret stays reserved.
        assert_eq!(
            h.rejected(create_token("tok_b", 1, Role::Developer, Some("acme"))),
            CommandError::SecretInUse
        );
        assert_eq!(
            h.rejected(Command::RevokeToken { id: "tok_x".into() })
                .to_string(),
            "token `tok_x` does not exist"
        );
    }

    #[test]
    fn snapshot_rebuilds_the_secret_index() {
        let mut h = Harness::with_tenants(&["acme"]);
        h.ok(create_token("tok_a", 1, Role::Developer, Some("acme")));
        h.ok(create_token("tok_b", 2, Role::Viewer, Some("acme")));
        h.ok(Command::RevokeToken { id: "tok_b".into() });
        let restored = crate::State::from_snapshot(&h.state.to_snapshot()).unwrap();
        assert_eq!(restored.authenticate(&hash(1)).unwrap().id, "tok_a");
        assert!(restored.authenticate(&hash(2)).is_none());
        assert_eq!(restored, h.state);
    }
}
