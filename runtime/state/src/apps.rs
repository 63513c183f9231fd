//! Apps and their deployments (versions).
//!
//! An app belongs to a tenant and is keyed by (tenant, name). Its history
//! holds every version ever deployed, numbered 1, 2, 3 … in order of
//! creation; `current` names the version receiving traffic.
//!
//! A version's life: created **pending**; then either **active** (it was
//! made current; it stays active after it is replaced, so it can be rolled
//! back to) or **failed**. A pending version older than the newest version
//! ever activated is *stale*: the newer deploy won, so it can no longer be
//! activated, and it claims no routes.

mod lifecycle;
#[cfg(test)]
mod tests;

pub(crate) use lifecycle::DeploymentRequest;

use crate::error::SnapshotError;
use crate::routes::Route;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt;

/// The most instances an app may be scaled to.
pub const MAX_INSTANCES: u32 = 1_000;

/// How many instances of an app run. App-level: it applies to whichever
/// version is current.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Scale {
    /// Instances to run (0 stops the app), at most [`MAX_INSTANCES`].
    pub instances: u32,
    /// Instances to keep warm even when idle, at most `instances`.
    #[serde(default)]
    pub min_warm: u32,
}

impl Default for Scale {
    /// One instance, none kept warm.
    fn default() -> Self {
        Scale {
            instances: 1,
            min_warm: 0,
        }
    }
}

/// Per-request limits of a deployment; `None` means the platform default.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct DeploymentLimits {
    /// Wall-clock time a request may take, in milliseconds (> 0).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_ms: Option<u64>,
    /// Linear memory an instance may use, in bytes (> 0).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory_bytes: Option<u64>,
}

/// Where a version is in its life.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum DeploymentStatus {
    /// Created; not yet compiled and probed.
    Pending,
    /// Is or was current.
    Active,
    /// Did not compile or did not pass its probe; never receives traffic.
    Failed {
        /// Why, for people.
        reason: String,
    },
}

impl DeploymentStatus {
    /// The status without its details.
    pub fn kind(&self) -> StatusKind {
        match self {
            DeploymentStatus::Pending => StatusKind::Pending,
            DeploymentStatus::Active => StatusKind::Active,
            DeploymentStatus::Failed { .. } => StatusKind::Failed,
        }
    }
}

/// A [`DeploymentStatus`] without its details.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StatusKind {
    /// See [`DeploymentStatus::Pending`].
    Pending,
    /// See [`DeploymentStatus::Active`].
    Active,
    /// See [`DeploymentStatus::Failed`].
    Failed,
}

impl fmt::Display for StatusKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            StatusKind::Pending => "pending",
            StatusKind::Active => "active",
            StatusKind::Failed => "failed",
        })
    }
}

/// One version of an app.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Deployment {
    /// The version number, assigned when the deployment was created.
    pub version: u32,
    /// Digest of the package it runs.
    pub package: String,
    /// Where it receives traffic while current (normalized).
    pub routes: Vec<Route>,
    /// Per-request limits.
    pub limits: DeploymentLimits,
    /// Outbound destinations the component may reach.
    pub allow_outbound: Vec<String>,
    /// Config values handed to the component.
    pub config: BTreeMap<String, String>,
    /// What the deployment is granted, per capability (`keyvalue`,
    /// `queues`, `topics`, `services`, `secrets`, ...): each capability's
    /// own JSON section, validated by that capability before proposal.
    /// Secrets are sealed (ciphertext only).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub capabilities: BTreeMap<String, serde_json::Value>,
    /// When it was created (unix milliseconds, from the command).
    pub created_at: u64,
    /// Id of the token that created it.
    pub created_by: String,
    /// Where it is in its life.
    pub status: DeploymentStatus,
}

/// An app: a tenant's named, versioned deployment target.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct App {
    /// The owning tenant.
    pub tenant: String,
    /// The app's name, a slug unique within its tenant.
    pub name: String,
    /// How many instances run (in the whole cluster).
    pub scale: Scale,
    /// Over which hosts they spread (empty: every host alike).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub spread: Vec<crate::Spread>,
    /// Where they run: instances per host id, as the scheduler placed them
    /// (empty on a single host, which runs every app).
    #[serde(
        default,
        skip_serializing_if = "BTreeMap::is_empty",
        with = "crate::placement::as_pairs"
    )]
    pub placement: BTreeMap<u64, u32>,
    /// The version receiving traffic, if any.
    pub current: Option<u32>,
    /// Every version, oldest first; `history[i].version == i + 1`.
    pub history: Vec<Deployment>,
}

impl App {
    fn new(tenant: &str, name: &str) -> Self {
        App {
            tenant: tenant.to_owned(),
            name: name.to_owned(),
            scale: Scale::default(),
            spread: Vec::new(),
            placement: BTreeMap::new(),
            current: None,
            history: Vec::new(),
        }
    }

    /// The deployment with `version`.
    pub fn deployment(&self, version: u32) -> Option<&Deployment> {
        let index = usize::try_from(version.checked_sub(1)?).ok()?;
        self.history.get(index)
    }

    /// The deployment receiving traffic.
    pub fn current_deployment(&self) -> Option<&Deployment> {
        self.deployment(self.current?)
    }

    /// The newest version ever activated (active now or before).
    pub fn newest_activated(&self) -> Option<u32> {
        self.history
            .iter()
            .rev()
            .find(|d| d.status == DeploymentStatus::Active)
            .map(|d| d.version)
    }

    /// Whether `deployment` is pending but older than a version already
    /// activated, so it can never be activated.
    pub fn is_stale(&self, deployment: &Deployment) -> bool {
        deployment.status == DeploymentStatus::Pending
            && self
                .newest_activated()
                .is_some_and(|newest| deployment.version < newest)
    }

    /// Pending versions that may still be activated (not stale), oldest
    /// first: the ones a reconciler should compile and probe.
    pub fn pending(&self) -> impl Iterator<Item = &Deployment> {
        let newest = self.newest_activated().unwrap_or(0);
        self.history
            .iter()
            .skip(usize::try_from(newest).unwrap_or(usize::MAX))
            .filter(|d| d.status == DeploymentStatus::Pending)
    }

    /// The routes the app claims: those of its current version and of its
    /// pending, non-stale versions. No other app may claim them.
    pub fn claimed_routes(&self) -> impl Iterator<Item = &Route> {
        self.current_deployment()
            .into_iter()
            .chain(self.pending())
            .flat_map(|d| &d.routes)
    }

    /// The version a new deployment gets, or `None` when exhausted.
    fn next_version(&self) -> Option<u32> {
        u32::try_from(self.history.len()).ok()?.checked_add(1)
    }

    /// Checks the invariants a snapshot must keep.
    fn check(&self) -> Result<(), String> {
        for (index, deployment) in self.history.iter().enumerate() {
            if usize::try_from(deployment.version).ok() != Some(index + 1) {
                return Err(format!("version {} is out of order", deployment.version));
            }
        }
        match self.current.map(|v| self.deployment(v)) {
            Some(None) => Err("the current version does not exist".into()),
            Some(Some(d)) if d.status != DeploymentStatus::Active => {
                Err("the current version is not active".into())
            }
            _ => Ok(()),
        }
    }
}

/// Every app, by tenant and then by name.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Apps {
    by_tenant: BTreeMap<String, BTreeMap<String, App>>,
}

impl Apps {
    /// Rebuilds the apps from a snapshot, checking their invariants.
    pub(crate) fn from_parts(
        by_tenant: BTreeMap<String, BTreeMap<String, App>>,
    ) -> Result<Self, SnapshotError> {
        for (tenant, apps) in &by_tenant {
            for (name, app) in apps {
                if app.tenant != *tenant || app.name != *name {
                    return Err(SnapshotError::Inconsistent(format!(
                        "app `{}` of tenant `{}` is stored as `{name}` of `{tenant}`",
                        app.name, app.tenant
                    )));
                }
                app.check().map_err(|why| {
                    SnapshotError::Inconsistent(format!("app `{name}` of tenant `{tenant}`: {why}"))
                })?;
            }
        }
        Ok(Apps { by_tenant })
    }

    pub(crate) fn map(&self) -> &BTreeMap<String, BTreeMap<String, App>> {
        &self.by_tenant
    }

    /// Every app, ordered by tenant and name.
    pub(crate) fn iter(&self) -> impl Iterator<Item = &App> {
        self.by_tenant.values().flat_map(BTreeMap::values)
    }

    /// The apps of `tenant`, ordered by name.
    pub(crate) fn of_tenant(&self, tenant: &str) -> impl Iterator<Item = &App> {
        self.by_tenant
            .get(tenant)
            .into_iter()
            .flat_map(BTreeMap::values)
    }

    pub(crate) fn get(&self, tenant: &str, name: &str) -> Option<&App> {
        self.by_tenant.get(tenant)?.get(name)
    }
}
