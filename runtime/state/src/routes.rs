//! Routes and who may claim them.
//!
//! Tenant isolation rests on host ownership: a tenant owns every host that
//! one of its apps routes exactly, and every host covered by a wildcard one
//! of its apps routes. Only current and pending (non-stale) versions claim
//! routes. The rules:
//!
//! * Host patterns of different tenants never overlap: no tenant may route
//!   an exact host another tenant owns, a wildcard that covers or is covered
//!   by another tenant's host or wildcard, or an exact host under another
//!   tenant's wildcard.
//! * No two apps claim the same (host, path prefix) pair, host-less pairs
//!   included, even within one tenant.
//! * Host-less routes serve hosts that no tenant owns; tenants may share that
//!   space as long as their path prefixes differ.

use crate::apps::Apps;
use crate::error::CommandError;
use crate::validation;
use serde::{Deserialize, Serialize};
use std::fmt;

/// Where a deployment receives traffic: requests for `host` (any host no
/// tenant owns, when `None`) whose path starts with `path_prefix` at a
/// segment boundary.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Route {
    /// An exact host (`shop.example.com`) or a wildcard (`*.example.com`,
    /// covering hosts ending in `.example.com` at any depth but not
    /// `example.com` itself); lowercase, without port.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
    /// Starts with `/`; no trailing `/` except for `/` itself.
    pub path_prefix: String,
}

impl Route {
    /// A validated, normalized route (host lowercased, trailing `/` of the
    /// path removed).
    pub fn new(host: Option<&str>, path_prefix: &str) -> Result<Route, CommandError> {
        Ok(Route {
            host: host.map(validation::normalize_host).transpose()?,
            path_prefix: validation::normalize_path_prefix(path_prefix)?,
        })
    }

    /// This route validated and normalized, as [`Route::new`] would build it.
    pub fn normalized(&self) -> Result<Route, CommandError> {
        Route::new(self.host.as_deref(), &self.path_prefix)
    }

    /// The route's host as a pattern, if it has a host.
    pub(crate) fn host_pattern(&self) -> Option<HostPattern<'_>> {
        self.host.as_deref().map(HostPattern::parse)
    }
}

impl fmt::Display for Route {
    /// `host/path` (`shop.example.com/api`), or just `/path` without a host.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(host) = &self.host {
            f.write_str(host)?;
        }
        f.write_str(&self.path_prefix)
    }
}

/// A normalized route host.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum HostPattern<'a> {
    /// Exactly this host.
    Exact(&'a str),
    /// Any host ending in `.` + this domain.
    Wildcard(&'a str),
}

impl<'a> HostPattern<'a> {
    pub(crate) fn parse(host: &'a str) -> Self {
        match host.strip_prefix("*.") {
            Some(domain) => HostPattern::Wildcard(domain),
            None => HostPattern::Exact(host),
        }
    }

    /// Whether some host matches both patterns.
    pub(crate) fn overlaps(self, other: HostPattern<'_>) -> bool {
        use HostPattern::*;
        match (self, other) {
            (Exact(a), Exact(b)) => a == b,
            (Exact(host), Wildcard(domain)) | (Wildcard(domain), Exact(host)) => {
                is_under(host, domain)
            }
            (Wildcard(a), Wildcard(b)) => a == b || is_under(a, b) || is_under(b, a),
        }
    }
}

/// Whether `host` is a strict subdomain of `domain` (`a.b.example.com` is
/// under `example.com`; `example.com` and `badexample.com` are not).
pub(crate) fn is_under(host: &str, domain: &str) -> bool {
    host.len() > domain.len()
        && host.ends_with(domain)
        && host.as_bytes()[host.len() - domain.len() - 1] == b'.'
}

/// Checks that app `app` of `tenant` may claim `routes` (normalized): that
/// no other app claims the same (host, path prefix) and no host pattern
/// overlaps one owned by another tenant. The app's own claims never block it.
pub(crate) fn check_claims(
    apps: &Apps,
    tenant: &str,
    app: &str,
    routes: &[Route],
) -> Result<(), CommandError> {
    if routes.is_empty() {
        return Ok(());
    }
    let claims: Vec<_> = apps
        .iter()
        .filter(|other| !(other.tenant == tenant && other.name == app))
        .flat_map(|other| other.claimed_routes().map(move |claimed| (other, claimed)))
        .collect();
    for route in routes {
        for &(other, claimed) in &claims {
            if other.tenant == tenant {
                if route == claimed {
                    return Err(CommandError::RouteInUse {
                        route: route.to_string(),
                        tenant: tenant.to_owned(),
                        app: other.name.clone(),
                    });
                }
                continue;
            }
            match (route.host_pattern(), claimed.host_pattern()) {
                (Some(mine), Some(theirs)) if mine.overlaps(theirs) => {
                    return Err(match mine {
                        HostPattern::Exact(host) => CommandError::HostOfAnotherTenant {
                            host: host.to_owned(),
                        },
                        HostPattern::Wildcard(_) => CommandError::WildcardOfAnotherTenant {
                            wildcard: route.host.clone().unwrap_or_default(),
                        },
                    });
                }
                (None, None) if route.path_prefix == claimed.path_prefix => {
                    return Err(CommandError::RouteOfAnotherTenant {
                        route: route.to_string(),
                    });
                }
                _ => {}
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests;
