//! The routing view the gateway uses: every current deployment, indexed for
//! a fast per-request match.
//!
//! Matching a request picks a host first, then a path prefix:
//!
//! 1. The request host is lowercased and its port (and a trailing dot)
//!    dropped.
//! 2. An exact host route beats a wildcard; among wildcards the longest
//!    domain wins. A host matched this way is owned by a tenant and is
//!    served *only* by that host's routes: no fall-through to other
//!    patterns or to host-less routes.
//! 3. A host no route names or covers is served by the host-less routes.
//! 4. Among the chosen host's routes the longest path prefix that matches at
//!    a segment boundary wins (`/api` matches `/api` and `/api/x`, not
//!    `/apix`; `/` matches every path).

use crate::apps::{DeploymentLimits, Scale};
use crate::routes::{HostPattern, Route};
use serde::{Deserialize, Serialize};
use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap};

/// A current deployment, with everything the gateway needs to serve it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RouteTarget {
    /// The app's tenant.
    pub tenant: String,
    /// The app's name.
    pub app: String,
    /// The current version.
    pub version: u32,
    /// Digest of the package the version runs.
    pub package: String,
    /// The version's routes.
    pub routes: Vec<Route>,
    /// Per-request limits.
    pub limits: DeploymentLimits,
    /// The app's scale (in the whole cluster).
    pub scale: Scale,
    /// Instances per host id (empty on a single host: it runs every app).
    #[serde(
        default,
        skip_serializing_if = "BTreeMap::is_empty",
        with = "crate::placement::as_pairs"
    )]
    pub placement: BTreeMap<u64, u32>,
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
}

/// A path prefix and the index of its target.
#[derive(Clone, Debug, PartialEq, Eq)]
struct PrefixRoute {
    prefix: String,
    target: usize,
}

/// Every current deployment and an index from host and path to it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RoutingTable {
    targets: Vec<RouteTarget>,
    /// Exact host → its prefixes, longest first.
    exact: HashMap<String, Vec<PrefixRoute>>,
    /// Wildcard domain (without `*.`) → its prefixes, longest first.
    wildcard: HashMap<String, Vec<PrefixRoute>>,
    /// Host-less prefixes, longest first.
    any_host: Vec<PrefixRoute>,
}

impl RoutingTable {
    /// Indexes `targets`. Their routes must be normalized (as the state
    /// keeps them); where two targets claim the same host and prefix, which
    /// the state never allows, the earlier one wins.
    pub fn new(targets: Vec<RouteTarget>) -> Self {
        let mut table = RoutingTable {
            targets,
            ..RoutingTable::default()
        };
        for (index, target) in table.targets.iter().enumerate() {
            for route in &target.routes {
                let prefixes = match route.host_pattern() {
                    None => &mut table.any_host,
                    Some(HostPattern::Exact(host)) => {
                        table.exact.entry(host.to_owned()).or_default()
                    }
                    Some(HostPattern::Wildcard(domain)) => {
                        table.wildcard.entry(domain.to_owned()).or_default()
                    }
                };
                prefixes.push(PrefixRoute {
                    prefix: route.path_prefix.clone(),
                    target: index,
                });
            }
        }
        let sort = |prefixes: &mut Vec<PrefixRoute>| {
            // Stable: among equal prefixes the earlier target stays first.
            prefixes.sort_by_key(|route| std::cmp::Reverse(route.prefix.len()));
        };
        table.exact.values_mut().for_each(sort);
        table.wildcard.values_mut().for_each(sort);
        sort(&mut table.any_host);
        table
    }

    /// Every current deployment, ordered by tenant and app.
    pub fn targets(&self) -> &[RouteTarget] {
        &self.targets
    }

    /// Whether no deployment is current.
    pub fn is_empty(&self) -> bool {
        self.targets.is_empty()
    }

    /// The deployment that serves a request for `host` (as in the `Host`
    /// header or URI authority, port allowed) and `path` (a query string is
    /// ignored), or `None` when nothing matches.
    pub fn route(&self, host: &str, path: &str) -> Option<&RouteTarget> {
        let host = request_host(host);
        let prefixes = self.host_routes(&host).unwrap_or(&self.any_host);
        let path = path.split(['?', '#']).next().unwrap_or_default();
        prefixes
            .iter()
            .find(|route| prefix_matches(&route.prefix, path))
            .map(|route| &self.targets[route.target])
    }

    /// The prefixes of the pattern that owns `host`: its exact entry, else
    /// the longest wildcard covering it.
    fn host_routes(&self, host: &str) -> Option<&[PrefixRoute]> {
        if let Some(prefixes) = self.exact.get(host) {
            return Some(prefixes);
        }
        if self.wildcard.is_empty() {
            return None;
        }
        // Each dot starts a shorter candidate domain, so the first hit is the
        // longest covering wildcard.
        host.match_indices('.')
            .find_map(|(dot, _)| self.wildcard.get(&host[dot + 1..]))
            .map(Vec::as_slice)
    }
}

/// The request host, lowercased, without port or trailing dot.
fn request_host(host: &str) -> Cow<'_, str> {
    let host = if host.starts_with('[') {
        // An IPv6 literal: `[::1]:8080`. No route host has brackets, so it
        // only ever matches host-less routes.
        host.find(']').map_or(host, |end| &host[..=end])
    } else {
        host.rsplit_once(':').map_or(host, |(name, _port)| name)
    };
    let host = host.strip_suffix('.').unwrap_or(host);
    if host.bytes().any(|b| b.is_ascii_uppercase()) {
        Cow::Owned(host.to_ascii_lowercase())
    } else {
        Cow::Borrowed(host)
    }
}

/// Whether `prefix` (normalized) matches `path` at a segment boundary.
fn prefix_matches(prefix: &str, path: &str) -> bool {
    prefix == "/"
        || (path.starts_with(prefix)
            && matches!(path.as_bytes().get(prefix.len()), None | Some(b'/')))
}

#[cfg(test)]
mod tests;
