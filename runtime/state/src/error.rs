//! Why a command is rejected, and why a snapshot cannot be loaded.

use crate::apps::StatusKind;
use crate::tenants::Role;
use serde::{Deserialize, Serialize};
use std::fmt;

/// Why a command was rejected. A rejected command changes nothing.
///
/// The `Display` text of every variant is a sentence meant for the user who
/// sent the command. Errors about another tenant's routes never name that
/// tenant or its apps.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[serde(tag = "error", rename_all = "snake_case")]
pub enum CommandError {
    /// The envelope's request id is empty.
    #[error("the request id is empty; every command needs a unique request id")]
    MissingRequestId,

    /// A tenant or app name is not a slug.
    #[error(
        "`{name}` is not a valid {kind} name: use 1–63 characters of a-z, 0-9 and '-', \
         not starting or ending with '-'"
    )]
    InvalidName {
        /// Whether it names a tenant or an app.
        kind: NameKind,
        /// The rejected name.
        name: String,
    },

    /// A token id has characters other than `A-Za-z0-9_-` or a bad length.
    #[error("`{id}` is not a valid token id: use 1–128 characters of A-Z, a-z, 0-9, '_' and '-'")]
    InvalidTokenId {
        /// The rejected id.
        id: String,
    },

    /// A token's secret hash is not 64 lowercase hex digits.
    #[error("the secret hash is not a sha256 hash (64 lowercase hex digits)")]
    InvalidSecretHash,

    /// A package digest is not `sha256:` followed by 64 lowercase hex digits.
    #[error(
        "`{digest}` is not a package digest: expected `sha256:` followed by 64 lowercase hex digits"
    )]
    InvalidDigest {
        /// The rejected digest.
        digest: String,
    },

    /// A route host is malformed.
    #[error("`{host}` is not a valid route host: {reason}")]
    InvalidHost {
        /// The host as given.
        host: String,
        /// What is wrong with it.
        reason: String,
    },

    /// A route path prefix is malformed.
    #[error("`{path}` is not a valid path prefix: {reason}")]
    InvalidPathPrefix {
        /// The path prefix as given.
        path: String,
        /// What is wrong with it.
        reason: String,
    },

    /// The same route (after normalization) appears twice in one deployment.
    #[error("route {route} appears more than once in the deployment")]
    DuplicateRoute {
        /// The repeated route, as `host/path` or `/path`.
        route: String,
    },

    /// A partner registration is malformed.
    #[error("invalid partner: {reason}")]
    InvalidPartner {
        /// What is wrong.
        reason: String,
    },
    /// A partner with this id exists.
    #[error("a partner with app_id `{app_id}` exists")]
    PartnerExists {
        /// The id.
        app_id: String,
    },
    /// No such partner (of this tenant).
    #[error("no partner with app_id `{app_id}`")]
    UnknownPartner {
        /// The id.
        app_id: String,
    },

    /// A signed partner request was accepted before (on any host).
    #[error("this partner request was accepted before")]
    PartnerRequestReplayed,

    /// A host's name, addresses or labels are malformed.
    #[error("invalid host: {reason}")]
    InvalidHostSpec {
        /// What is wrong.
        reason: String,
    },
    /// A host with this name or id exists.
    #[error("host `{name}` exists (id {id})")]
    HostExists {
        /// The name.
        name: String,
        /// The existing id.
        id: u64,
    },
    /// No such host.
    #[error("no host with id {id}")]
    UnknownHost {
        /// The id.
        id: u64,
    },
    /// An app's spread rules are malformed.
    #[error("invalid spread: {reason}")]
    InvalidSpread {
        /// What is wrong.
        reason: String,
    },
    /// A placement names hosts that are not members, or no instances.
    #[error("invalid placement: {reason}")]
    InvalidPlacement {
        /// What is wrong.
        reason: String,
    },

    /// A capability grant is malformed.
    #[error("invalid grant of capability `{capability}`: {reason}")]
    InvalidCapability {
        /// The capability's name.
        capability: String,
        /// What is wrong.
        reason: String,
    },

    /// A deployment limit is zero.
    #[error("the {limit} limit must be greater than 0")]
    ZeroLimit {
        /// The limit's name (`timeout_ms` or `memory_bytes`).
        limit: String,
    },

    /// An `allow_outbound` entry is empty or has spaces or control characters.
    #[error(
        "`{entry}` is not a valid outbound entry: it must be non-empty printable ASCII without spaces"
    )]
    InvalidOutbound {
        /// The rejected entry.
        entry: String,
    },

    /// A config key is empty, too long, or has whitespace or control characters.
    #[error(
        "`{key}` is not a valid config key: use 1–256 characters without whitespace or control characters"
    )]
    InvalidConfigKey {
        /// The rejected key.
        key: String,
    },

    /// `CreateTenant` named an existing tenant.
    #[error("tenant `{name}` already exists")]
    TenantExists {
        /// The tenant's name.
        name: String,
    },

    /// The command names a tenant that does not exist.
    #[error("tenant `{name}` does not exist")]
    UnknownTenant {
        /// The tenant's name.
        name: String,
    },

    /// `CreateToken` reused a token id.
    #[error("token `{id}` already exists")]
    TokenExists {
        /// The token's id.
        id: String,
    },

    /// `CreateToken` reused the secret of another (possibly revoked) token.
    #[error("another token already uses this secret")]
    SecretInUse,

    /// The command names a token that does not exist.
    #[error("token `{id}` does not exist")]
    UnknownToken {
        /// The token's id.
        id: String,
    },

    /// A non-operator token was created without a tenant.
    #[error("a {role} token must belong to a tenant")]
    TenantRequired {
        /// The token's role.
        role: Role,
    },

    /// An operator token was created with a tenant.
    #[error("an operator token cannot belong to a tenant")]
    OperatorWithTenant,

    /// A digest was registered again with different size, imports or exports.
    #[error("package {digest} is already registered with a different size, imports or exports")]
    PackageMismatch {
        /// The package's digest.
        digest: String,
    },

    /// The tenant has not uploaded the package (whether or not another
    /// tenant has is not revealed).
    #[error("package {digest} has not been uploaded by tenant `{tenant}`")]
    UnknownPackage {
        /// The tenant that tried to use it.
        tenant: String,
        /// The package's digest.
        digest: String,
    },

    /// The command names an app that does not exist.
    #[error("app `{app}` of tenant `{tenant}` does not exist")]
    UnknownApp {
        /// The app's tenant.
        tenant: String,
        /// The app's name.
        app: String,
    },

    /// The command names a version the app does not have.
    #[error("app `{app}` has no version {version}")]
    UnknownVersion {
        /// The app's name.
        app: String,
        /// The missing version.
        version: u32,
    },

    /// Only a pending version can be activated or failed.
    #[error("version {version} of app `{app}` is {status}, not pending")]
    NotPending {
        /// The app's name.
        app: String,
        /// The version.
        version: u32,
        /// Its status.
        status: StatusKind,
    },

    /// A pending version older than an already activated version cannot be
    /// activated (the newer deploy won).
    #[error(
        "version {version} of app `{app}` is stale: the newer version {newer} has already been activated"
    )]
    StaleActivation {
        /// The app's name.
        app: String,
        /// The stale version.
        version: u32,
        /// The newest version ever activated.
        newer: u32,
    },

    /// `Rollback` on an app without a current version.
    #[error("app `{app}` has no current version to roll back from")]
    NoCurrentVersion {
        /// The app's name.
        app: String,
    },

    /// `Rollback` without a target, and no active version older than current.
    #[error("app `{app}` has no earlier active version to roll back to")]
    NothingToRollBackTo {
        /// The app's name.
        app: String,
    },

    /// `Rollback` to the version that is already current.
    #[error("version {version} of app `{app}` is already current")]
    AlreadyCurrent {
        /// The app's name.
        app: String,
        /// The current version.
        version: u32,
    },

    /// `Rollback` to a version that was never active.
    #[error(
        "cannot roll app `{app}` back to version {version}: it is {status} and was never active"
    )]
    NeverActive {
        /// The app's name.
        app: String,
        /// The requested version.
        version: u32,
        /// Its status.
        status: StatusKind,
    },

    /// The app has used every version number (`u32::MAX`).
    #[error("app `{app}` has run out of version numbers")]
    VersionsExhausted {
        /// The app's name.
        app: String,
    },

    /// Another app of the same tenant already claims the route.
    #[error("route {route} is already used by app `{app}` of tenant `{tenant}`")]
    RouteInUse {
        /// The route, as `host/path` or `/path`.
        route: String,
        /// The tenant (the one that sent the command).
        tenant: String,
        /// The app that claims it.
        app: String,
    },

    /// An exact host is owned (routed or covered by a wildcard) by another tenant.
    #[error("host {host} belongs to another tenant")]
    HostOfAnotherTenant {
        /// The requested host.
        host: String,
    },

    /// A wildcard covers, or is covered by, a host owned by another tenant.
    #[error("wildcard {wildcard} overlaps hosts that belong to another tenant")]
    WildcardOfAnotherTenant {
        /// The requested wildcard, as `*.domain`.
        wildcard: String,
    },

    /// Another tenant already claims the same host-less route.
    #[error("route {route} is already used by another tenant")]
    RouteOfAnotherTenant {
        /// The route, as `/path`.
        route: String,
    },

    /// A scale asks for more than [`MAX_INSTANCES`](crate::MAX_INSTANCES).
    #[error("scale of {instances} instances exceeds the limit of {limit}")]
    TooManyInstances {
        /// The requested instance count.
        instances: u32,
        /// The limit.
        limit: u32,
    },

    /// A scale keeps more instances warm than it runs.
    #[error("min_warm of {min_warm} exceeds the {instances} instances of the scale")]
    MinWarmAboveInstances {
        /// The requested warm minimum.
        min_warm: u32,
        /// The requested instance count.
        instances: u32,
    },
}

impl CommandError {
    /// The broad class of the error, for mapping to API status codes.
    pub fn kind(&self) -> ErrorKind {
        use CommandError::*;
        match self {
            MissingRequestId
            | InvalidName { .. }
            | InvalidTokenId { .. }
            | InvalidSecretHash
            | InvalidDigest { .. }
            | InvalidHost { .. }
            | InvalidPathPrefix { .. }
            | DuplicateRoute { .. }
            | ZeroLimit { .. }
            | InvalidCapability { .. }
            | InvalidPartner { .. }
            | InvalidHostSpec { .. }
            | InvalidSpread { .. }
            | InvalidPlacement { .. }
            | InvalidOutbound { .. }
            | InvalidConfigKey { .. }
            | TenantRequired { .. }
            | OperatorWithTenant
            | TooManyInstances { .. }
            | MinWarmAboveInstances { .. } => ErrorKind::Invalid,
            UnknownTenant { .. }
            | UnknownToken { .. }
            | UnknownPackage { .. }
            | UnknownApp { .. }
            | UnknownVersion { .. }
            | UnknownPartner { .. }
            | UnknownHost { .. } => ErrorKind::NotFound,
            TenantExists { .. }
            | PartnerExists { .. }
            | HostExists { .. }
            | PartnerRequestReplayed
            | TokenExists { .. }
            | SecretInUse
            | PackageMismatch { .. }
            | NotPending { .. }
            | StaleActivation { .. }
            | NoCurrentVersion { .. }
            | NothingToRollBackTo { .. }
            | AlreadyCurrent { .. }
            | NeverActive { .. }
            | VersionsExhausted { .. }
            | RouteInUse { .. }
            | HostOfAnotherTenant { .. }
            | WildcardOfAnotherTenant { .. }
            | RouteOfAnotherTenant { .. } => ErrorKind::Conflict,
        }
    }
}

/// The broad class of a [`CommandError`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ErrorKind {
    /// The command itself is malformed or out of limits (HTTP 400/422).
    Invalid,
    /// The command names something that does not exist (HTTP 404).
    NotFound,
    /// The command conflicts with the current state (HTTP 409).
    Conflict,
}

/// What a validated name names.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NameKind {
    /// A tenant name.
    Tenant,
    /// An app name.
    App,
}

impl fmt::Display for NameKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            NameKind::Tenant => "tenant",
            NameKind::App => "app",
        })
    }
}

/// Why a snapshot could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum SnapshotError {
    /// The bytes are not a snapshot (bad JSON or missing fields).
    #[error("the snapshot is malformed: {0}")]
    Malformed(#[from] serde_json::Error),
    /// The snapshot was written in a format this build cannot read.
    #[error("snapshot format {found} is not supported (this build reads format {supported})")]
    UnsupportedFormat {
        /// The snapshot's format.
        found: u32,
        /// The format this build reads.
        supported: u32,
    },
    /// The snapshot parses but breaks an invariant of the state.
    #[error("the snapshot is inconsistent: {0}")]
    Inconsistent(String),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_are_user_facing_sentences() {
        assert_eq!(
            CommandError::TooManyInstances {
                instances: 5000,
                limit: 1000
            }
            .to_string(),
            "scale of 5000 instances exceeds the limit of 1000"
        );
        assert_eq!(
            CommandError::RouteInUse {
                route: "shop.example.com/".into(),
                tenant: "t".into(),
                app: "x".into()
            }
            .to_string(),
            "route shop.example.com/ is already used by app `x` of tenant `t`"
        );
        assert_eq!(
            CommandError::HostOfAnotherTenant {
                host: "shop.example.com".into()
            }
            .to_string(),
            "host shop.example.com belongs to another tenant"
        );
        assert_eq!(
            CommandError::TenantRequired {
                role: Role::SiteBuilder
            }
            .to_string(),
            "a site-builder token must belong to a tenant"
        );
    }

    #[test]
    fn errors_round_trip_through_json() {
        let err = CommandError::NotPending {
            app: "shop".into(),
            version: 2,
            status: StatusKind::Failed,
        };
        let json = serde_json::to_string(&err).unwrap();
        assert_eq!(
            json,
            r#"{"error":"not_pending","app":"shop","version":2,"status":"failed"}"#
        );
        assert_eq!(serde_json::from_str::<CommandError>(&json).unwrap(), err);
        assert_eq!(err.kind(), ErrorKind::Conflict);
        assert_eq!(
            CommandError::UnknownApp {
                tenant: "t".into(),
                app: "a".into()
            }
            .kind(),
            ErrorKind::NotFound
        );
        assert_eq!(CommandError::MissingRequestId.kind(), ErrorKind::Invalid);
    }
}
