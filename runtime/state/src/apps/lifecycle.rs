//! The commands that move apps and their versions through their lives.
//!
//! Each method validates everything first and mutates only when nothing can
//! fail any more, so a rejected command changes nothing.

use super::{App, Apps, Deployment, DeploymentLimits, DeploymentStatus, MAX_INSTANCES, Scale};
use crate::Spread;
use crate::command::Outcome;
use crate::error::{CommandError, NameKind};
use crate::routes::{self, Route};
use crate::validation;
use std::collections::{BTreeMap, BTreeSet};

/// What a `CreateDeployment` command carries. The caller has checked that
/// the tenant exists and owns the package.
pub(crate) struct DeploymentRequest<'a> {
    pub(crate) tenant: &'a str,
    pub(crate) app: &'a str,
    pub(crate) package: &'a str,
    pub(crate) routes: &'a [Route],
    pub(crate) limits: DeploymentLimits,
    pub(crate) allow_outbound: &'a [String],
    pub(crate) config: &'a BTreeMap<String, String>,
    pub(crate) capabilities: &'a BTreeMap<String, serde_json::Value>,
    pub(crate) scale: Option<Scale>,
    pub(crate) by: &'a str,
    pub(crate) at: u64,
}

impl Scale {
    /// Checks the scale against [`MAX_INSTANCES`] and `min_warm ≤ instances`.
    pub fn validate(&self) -> Result<(), CommandError> {
        if self.instances > MAX_INSTANCES {
            return Err(CommandError::TooManyInstances {
                instances: self.instances,
                limit: MAX_INSTANCES,
            });
        }
        if self.min_warm > self.instances {
            return Err(CommandError::MinWarmAboveInstances {
                min_warm: self.min_warm,
                instances: self.instances,
            });
        }
        Ok(())
    }
}

impl DeploymentLimits {
    /// Checks that every limit that is set is greater than zero.
    pub fn validate(&self) -> Result<(), CommandError> {
        for (name, value) in [
            ("timeout_ms", self.timeout_ms),
            ("memory_bytes", self.memory_bytes),
        ] {
            if value == Some(0) {
                return Err(CommandError::ZeroLimit {
                    limit: name.to_owned(),
                });
            }
        }
        Ok(())
    }
}

/// Validates and normalizes a deployment's routes, refusing duplicates.
fn normalize_routes(routes: &[Route]) -> Result<Vec<Route>, CommandError> {
    let mut seen = BTreeSet::new();
    let mut normalized = Vec::with_capacity(routes.len());
    for route in routes {
        let route = route.normalized()?;
        if !seen.insert(route.clone()) {
            return Err(CommandError::DuplicateRoute {
                route: route.to_string(),
            });
        }
        normalized.push(route);
    }
    Ok(normalized)
}

impl Apps {
    fn require(&self, tenant: &str, app: &str) -> Result<&App, CommandError> {
        self.get(tenant, app)
            .ok_or_else(|| CommandError::UnknownApp {
                tenant: tenant.to_owned(),
                app: app.to_owned(),
            })
    }

    /// The app, which the caller has found with [`Apps::require`].
    fn existing_mut(&mut self, tenant: &str, app: &str) -> &mut App {
        self.by_tenant
            .get_mut(tenant)
            .and_then(|apps| apps.get_mut(app))
            .expect("the app was checked to exist")
    }

    /// The deployment `version` of `app`.
    fn require_version(app: &App, version: u32) -> Result<&Deployment, CommandError> {
        app.deployment(version)
            .ok_or_else(|| CommandError::UnknownVersion {
                app: app.name.clone(),
                version,
            })
    }

    /// The pending deployment `version` of `app`.
    fn require_pending(app: &App, version: u32) -> Result<&Deployment, CommandError> {
        let deployment = Self::require_version(app, version)?;
        match deployment.status {
            DeploymentStatus::Pending => Ok(deployment),
            ref status => Err(CommandError::NotPending {
                app: app.name.clone(),
                version,
                status: status.kind(),
            }),
        }
    }

    /// Adds a pending version to an app, creating the app if needed.
    pub(crate) fn create_deployment(
        &mut self,
        request: DeploymentRequest<'_>,
    ) -> Result<Outcome, CommandError> {
        let DeploymentRequest {
            tenant,
            app: name,
            package,
            routes,
            limits,
            allow_outbound,
            config,
            capabilities,
            scale,
            by,
            at,
        } = request;
        validation::check_name(NameKind::App, name)?;
        let routes = normalize_routes(routes)?;
        limits.validate()?;
        allow_outbound
            .iter()
            .try_for_each(|entry| validation::check_outbound(entry))?;
        config
            .keys()
            .try_for_each(|key| validation::check_config_key(key))?;
        capabilities
            .iter()
            .try_for_each(|(name, section)| validation::check_capability(name, section))?;
        if let Some(scale) = &scale {
            scale.validate()?;
        }
        let version = match self.get(tenant, name) {
            Some(app) => app
                .next_version()
                .ok_or_else(|| CommandError::VersionsExhausted {
                    app: name.to_owned(),
                })?,
            None => 1,
        };
        routes::check_claims(self, tenant, name, &routes)?;

        let app = self
            .by_tenant
            .entry(tenant.to_owned())
            .or_default()
            .entry(name.to_owned())
            .or_insert_with(|| App::new(tenant, name));
        if let Some(scale) = scale {
            app.scale = scale;
        }
        app.history.push(Deployment {
            version,
            package: package.to_owned(),
            routes,
            limits,
            allow_outbound: allow_outbound.to_vec(),
            config: config.clone(),
            capabilities: capabilities.clone(),
            created_at: at,
            created_by: by.to_owned(),
            status: DeploymentStatus::Pending,
        });
        Ok(Outcome::DeploymentCreated { version })
    }

    /// Makes a pending, non-stale version current.
    pub(crate) fn activate(
        &mut self,
        tenant: &str,
        name: &str,
        version: u32,
    ) -> Result<Outcome, CommandError> {
        let app = self.require(tenant, name)?;
        let deployment = Self::require_pending(app, version)?;
        if app.is_stale(deployment) {
            return Err(CommandError::StaleActivation {
                app: name.to_owned(),
                version,
                newer: app.newest_activated().unwrap_or_default(),
            });
        }
        // The version's routes were checked when it was created and have
        // been claimed ever since, so activating it cannot conflict.
        let app = self.existing_mut(tenant, name);
        let previous = app.current.replace(version);
        app.history[version as usize - 1].status = DeploymentStatus::Active;
        Ok(Outcome::DeploymentActivated { version, previous })
    }

    /// Marks a pending version failed.
    pub(crate) fn fail(
        &mut self,
        tenant: &str,
        name: &str,
        version: u32,
        reason: &str,
    ) -> Result<Outcome, CommandError> {
        Self::require_pending(self.require(tenant, name)?, version)?;
        let app = self.existing_mut(tenant, name);
        app.history[version as usize - 1].status = DeploymentStatus::Failed {
            reason: reason.to_owned(),
        };
        Ok(Outcome::DeploymentFailed { version })
    }

    /// Makes an earlier active version current again.
    pub(crate) fn rollback(
        &mut self,
        tenant: &str,
        name: &str,
        to: Option<u32>,
    ) -> Result<Outcome, CommandError> {
        let app = self.require(tenant, name)?;
        let from = app.current.ok_or_else(|| CommandError::NoCurrentVersion {
            app: name.to_owned(),
        })?;
        let target = match to {
            Some(version) => {
                let deployment = Self::require_version(app, version)?;
                if version == from {
                    return Err(CommandError::AlreadyCurrent {
                        app: name.to_owned(),
                        version,
                    });
                }
                if deployment.status != DeploymentStatus::Active {
                    return Err(CommandError::NeverActive {
                        app: name.to_owned(),
                        version,
                        status: deployment.status.kind(),
                    });
                }
                deployment
            }
            None => app.history[..from as usize - 1]
                .iter()
                .rev()
                .find(|d| d.status == DeploymentStatus::Active)
                .ok_or_else(|| CommandError::NothingToRollBackTo {
                    app: name.to_owned(),
                })?,
        };
        // The target's routes were released when it stopped being current;
        // another app may have claimed them since.
        routes::check_claims(self, tenant, name, &target.routes)?;
        let version = target.version;
        self.existing_mut(tenant, name).current = Some(version);
        Ok(Outcome::RolledBack { version, from })
    }

    /// Sets an app's scale.
    pub(crate) fn scale(
        &mut self,
        tenant: &str,
        name: &str,
        scale: Scale,
        spread: Option<&[Spread]>,
    ) -> Result<Outcome, CommandError> {
        scale.validate()?;
        if let Some(spread) = spread {
            Spread::validate(spread)?;
        }
        self.require(tenant, name)?;
        let app = self.existing_mut(tenant, name);
        app.scale = scale;
        if let Some(spread) = spread {
            app.spread = spread.to_vec();
        }
        Ok(Outcome::Scaled { scale })
    }

    /// Records an app's placement; `is_host` tells the cluster's members.
    pub(crate) fn place(
        &mut self,
        tenant: &str,
        name: &str,
        hosts: &BTreeMap<u64, u32>,
        is_host: impl Fn(u64) -> bool,
    ) -> Result<Outcome, CommandError> {
        let invalid = |reason: String| Err(CommandError::InvalidPlacement { reason });
        let mut total: u32 = 0;
        for (&host, &instances) in hosts {
            if !is_host(host) {
                return invalid(format!("host {host} is not a member of the cluster"));
            }
            if instances == 0 {
                return invalid(format!("host {host} is given no instances"));
            }
            total = total.saturating_add(instances);
        }
        if total > MAX_INSTANCES {
            return invalid(format!(
                "{total} instances exceed the limit of {MAX_INSTANCES}"
            ));
        }
        self.require(tenant, name)?;
        self.existing_mut(tenant, name).placement = hosts.clone();
        Ok(Outcome::Placed)
    }

    /// Takes a removed host out of every placement (the scheduler places
    /// its instances elsewhere).
    pub(crate) fn forget_host(&mut self, host: u64) {
        for app in self
            .by_tenant
            .values_mut()
            .flat_map(|apps| apps.values_mut())
        {
            app.placement.remove(&host);
        }
    }

    /// Deletes an app and its history.
    pub(crate) fn delete(&mut self, tenant: &str, name: &str) -> Result<Outcome, CommandError> {
        self.require(tenant, name)?;
        if let Some(apps) = self.by_tenant.get_mut(tenant) {
            apps.remove(name);
            if apps.is_empty() {
                self.by_tenant.remove(tenant);
            }
        }
        Ok(Outcome::AppDeleted)
    }
}
