//! The commands that change desired state, and what applying one reports.
//!
//! Commands are data: they carry every timestamp and id they need, so every
//! node applies them to the same result. In JSON a command is an object
//! tagged by `"type"` (`{"type": "create_tenant", "name": "acme", "at": 0}`).

use crate::apps::{DeploymentLimits, Scale};
use crate::routes::Route;
use crate::tenants::Role;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// A command with the id of the request that proposed it. Applying an
/// envelope whose request id was recently applied returns the stored outcome
/// instead of applying the command again, so a retried proposal is harmless.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Envelope {
    /// Unique per proposal (e.g. a UUID chosen by the API); never empty.
    pub request_id: String,
    /// The change to apply.
    pub command: Command,
}

impl Envelope {
    /// Wraps `command` with `request_id`.
    pub fn new(request_id: impl Into<String>, command: Command) -> Self {
        Envelope {
            request_id: request_id.into(),
            command,
        }
    }
}

/// A change of desired state.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Command {
    /// Creates a tenant. → [`Outcome::TenantCreated`]
    CreateTenant {
        /// The new tenant's name (a slug).
        name: String,
        /// Creation time, unix milliseconds.
        at: u64,
    },
    /// Creates an API token. → [`Outcome::TokenCreated`]
    CreateToken {
        /// The token's id, unique (e.g. `tok_…`).
        id: String,
        /// Lowercase hex sha256 of the secret, computed by the caller.
        secret_hash: String,
        /// What the token may do.
        role: Role,
        /// The token's tenant: required for every role but operator, which
        /// has none.
        tenant: Option<String>,
        /// A note for people.
        #[serde(default)]
        description: String,
        /// Creation time, unix milliseconds.
        at: u64,
    },
    /// Revokes a token; revoking it again is a no-op. → [`Outcome::TokenRevoked`]
    RevokeToken {
        /// The token's id.
        id: String,
    },
    /// Records an uploaded package for a tenant. The same digest registered
    /// by another tenant adds an owner; by the same tenant it is a no-op.
    /// → [`Outcome::PackageRegistered`]
    RegisterPackage {
        /// `sha256:<64 lowercase hex>` of the bytes.
        digest: String,
        /// The uploading tenant.
        tenant: String,
        /// Size in bytes.
        size: u64,
        /// The interfaces the component imports.
        #[serde(default)]
        imports: Vec<String>,
        /// The interfaces the component exports.
        #[serde(default)]
        exports: Vec<String>,
        /// Upload time, unix milliseconds.
        at: u64,
    },
    /// Adds a new, pending version to an app (creating the app on its first
    /// deployment). Traffic does not move until the version is activated.
    /// → [`Outcome::DeploymentCreated`]
    CreateDeployment {
        /// The app's tenant.
        tenant: String,
        /// The app's name (a slug).
        app: String,
        /// Digest of a package the tenant owns.
        package: String,
        /// Where the version receives traffic once current.
        #[serde(default)]
        routes: Vec<Route>,
        /// Per-request limits.
        #[serde(default)]
        limits: DeploymentLimits,
        /// Outbound destinations the component may reach.
        #[serde(default)]
        allow_outbound: Vec<String>,
        /// Config values handed to the component.
        #[serde(default)]
        config: BTreeMap<String, String>,
        /// Capability grants, per capability name (see
        /// [`Deployment::capabilities`](crate::Deployment::capabilities)).
        #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
        capabilities: BTreeMap<String, serde_json::Value>,
        /// A new app-level scale, applied at once (the app's scale is not
        /// per version); `None` keeps the app's scale (1 instance for a new app).
        #[serde(default)]
        scale: Option<Scale>,
        /// Id of the token that deployed it (recorded, not checked).
        by: String,
        /// Creation time, unix milliseconds.
        at: u64,
    },
    /// Makes a pending version current. → [`Outcome::DeploymentActivated`]
    ActivateDeployment {
        /// The app's tenant.
        tenant: String,
        /// The app's name.
        app: String,
        /// The pending version.
        version: u32,
    },
    /// Marks a pending version failed (it did not compile or pass its
    /// probe); the current version is unchanged. → [`Outcome::DeploymentFailed`]
    FailDeployment {
        /// The app's tenant.
        tenant: String,
        /// The app's name.
        app: String,
        /// The pending version.
        version: u32,
        /// Why it failed, for people.
        reason: String,
    },
    /// Makes an earlier active version current again. → [`Outcome::RolledBack`]
    Rollback {
        /// The app's tenant.
        tenant: String,
        /// The app's name.
        app: String,
        /// The version to return to; by default the newest active version
        /// older than the current one.
        #[serde(default)]
        to: Option<u32>,
    },
    /// Sets an app's scale. → [`Outcome::Scaled`]
    Scale {
        /// The app's tenant.
        tenant: String,
        /// The app's name.
        app: String,
        /// Instances to run, at most [`MAX_INSTANCES`](crate::MAX_INSTANCES).
        instances: u32,
        /// Instances to keep warm, at most `instances`.
        #[serde(default)]
        min_warm: u32,
        /// New spread rules (`None` keeps the app's rules).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        spread: Option<Vec<crate::Spread>>,
    },
    /// Records where an app's instances run: instances per host id (the
    /// leader's scheduler proposes it). → [`Outcome::Placed`]
    Place {
        /// The app's tenant.
        tenant: String,
        /// The app's name.
        app: String,
        /// Instances per host id; every host a member, every count > 0.
        #[serde(with = "crate::placement::as_pairs")]
        hosts: BTreeMap<u64, u32>,
    },
    /// Deletes an app and its history, releasing its routes. Its version
    /// numbers start again at 1 if an app of the same name is deployed later.
    /// → [`Outcome::AppDeleted`]
    DeleteApp {
        /// The app's tenant.
        tenant: String,
        /// The app's name.
        app: String,
    },
    /// Adds a host to the cluster under the next free id, or under `id` (the founding host
    /// is 1). → [`Outcome::HostJoined`]
    JoinHost {
        /// A fixed id (the founding host), or `None` for the next free one.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        id: Option<u64>,
        /// Its unique name.
        name: String,
        /// Where it listens.
        addrs: crate::HostAddrs,
        /// Its placement labels.
        #[serde(default)]
        labels: BTreeMap<String, String>,
        /// When (unix milliseconds).
        at: u64,
    },
    /// Records a host's new addresses. → [`Outcome::HostUpdated`]
    UpdateHostAddrs {
        /// The host.
        id: u64,
        /// Where it listens now.
        addrs: crate::HostAddrs,
    },
    /// Marks a host ready or draining. → [`Outcome::HostUpdated`]
    SetHostMode {
        /// The host.
        id: u64,
        /// What the operator wants of it.
        mode: crate::HostMode,
    },
    /// Forgets a host (after its raft membership was removed). → [`Outcome::HostRemoved`]
    RemoveHost {
        /// The host.
        id: u64,
    },
    /// Sets the hash (SHA-256, lowercase hex) of the secret joining hosts present.
    /// → [`Outcome::JoinSecretSet`]
    SetJoinSecret {
        /// The hash.
        hash: String,
    },
    /// Records a partner request the partner API accepted, so that no host
    /// accepts it again before `expires_at`. → [`Outcome::PartnerRequestRecorded`]
    RecordPartnerRequest {
        /// SHA-256 (lowercase hex) of the partner's app id and the request's signature.
        key: String,
        /// When (unix milliseconds).
        at: u64,
        /// Until when it is remembered (unix milliseconds).
        expires_at: u64,
    },
    /// Registers a partner of a tenant. → [`Outcome::PartnerRegistered`]
    RegisterPartner {
        /// The partner.
        partner: crate::Partner,
    },
    /// Removes a tenant's partner. → [`Outcome::PartnerRemoved`]
    RemovePartner {
        /// The partner's tenant.
        tenant: String,
        /// The partner's id.
        app_id: String,
    },
}

/// What applying a command did.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum Outcome {
    /// The tenant was created.
    TenantCreated,
    /// The token was created.
    TokenCreated,
    /// The token is revoked.
    TokenRevoked {
        /// Whether it had been revoked before (nothing changed).
        already_revoked: bool,
    },
    /// The package is registered for the tenant.
    PackageRegistered {
        /// What the registration changed.
        registration: PackageRegistration,
    },
    /// A new pending version was added.
    DeploymentCreated {
        /// The version assigned to it.
        version: u32,
    },
    /// The version is now current.
    DeploymentActivated {
        /// The activated version.
        version: u32,
        /// The version that was current before, if any.
        previous: Option<u32>,
    },
    /// The version is marked failed.
    DeploymentFailed {
        /// The failed version.
        version: u32,
    },
    /// An earlier version is current again.
    RolledBack {
        /// The version now current.
        version: u32,
        /// The version that was current before.
        from: u32,
    },
    /// The app's scale was set.
    Scaled {
        /// The new scale.
        scale: Scale,
    },
    /// The app was deleted.
    AppDeleted,
    /// The app's placement was recorded.
    Placed,
    /// The partner request was recorded.
    PartnerRequestRecorded,
    /// The partner was registered.
    PartnerRegistered {
        /// Its id.
        app_id: String,
    },
    /// The partner was removed.
    PartnerRemoved,
    /// A host joined under this id.
    HostJoined {
        /// Its id (and raft node id).
        id: u64,
    },
    /// A host's record changed.
    HostUpdated,
    /// A host was forgotten.
    HostRemoved,
    /// The join secret was set.
    JoinSecretSet,
}

/// What registering a package changed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PackageRegistration {
    /// The package was not known before.
    New,
    /// The package was known; the tenant became one of its owners.
    OwnerAdded,
    /// The tenant already owned the package; nothing changed.
    AlreadyPresent,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands_are_tagged_json() {
        let envelope = Envelope::new(
            "req-1",
            Command::CreateTenant {
                name: "acme".into(),
                at: 5,
            },
        );
        let json = serde_json::to_string(&envelope).unwrap();
        assert_eq!(
            json,
            r#"{"request_id":"req-1","command":{"type":"create_tenant","name":"acme","at":5}}"#
        );
        assert_eq!(serde_json::from_str::<Envelope>(&json).unwrap(), envelope);
    }

    #[test]
    fn deployment_fields_have_defaults() {
        let json = r#"{"type":"create_deployment","tenant":"acme","app":"shop",
            "package":"sha256:00","by":"tok_1","at":9,
            "routes":[{"host":"shop.example.com","path_prefix":"/"},{"path_prefix":"/api"}]}"#;
        let Command::CreateDeployment {
            routes,
            limits,
            allow_outbound,
            config,
            scale,
            ..
        } = serde_json::from_str(json).unwrap()
        else {
            panic!("not a deployment");
        };
        assert_eq!(routes[0].host.as_deref(), Some("shop.example.com"));
        assert_eq!(routes[1].host, None);
        assert_eq!(limits, DeploymentLimits::default());
        assert!(allow_outbound.is_empty() && config.is_empty() && scale.is_none());
    }

    #[test]
    fn outcomes_are_tagged_json() {
        let outcome = Outcome::PackageRegistered {
            registration: PackageRegistration::OwnerAdded,
        };
        assert_eq!(
            serde_json::to_string(&outcome).unwrap(),
            r#"{"outcome":"package_registered","registration":"owner_added"}"#
        );
        assert_eq!(
            serde_json::to_string(&Outcome::AppDeleted).unwrap(),
            r#"{"outcome":"app_deleted"}"#
        );
    }
}
