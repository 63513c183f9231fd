//! The state machine: the whole desired state, the single entry point that
//! applies commands to it, and the queries the API and reconciler use.

use crate::apps::{App, Apps, Deployment, DeploymentRequest, Scale};
use crate::command::{Command, Envelope, Outcome};
use crate::error::CommandError;
use crate::hosts::{Host, Hosts};
use crate::packages::{NewPackage, Package, Packages};
use crate::partners::{Partner, Partners};
use crate::recent::RecentRequests;
use crate::routing::{RouteTarget, RoutingTable};
use crate::tenants::{Directory, Tenant, Token};

/// The platform's desired state: tenants, tokens, packages and apps.
///
/// It changes only through [`State::apply`], which is deterministic: every
/// node that applies the same envelopes in the same order holds the same
/// state (and writes the same snapshot bytes).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct State {
    pub(crate) directory: Directory,
    pub(crate) packages: Packages,
    pub(crate) apps: Apps,
    pub(crate) partners: Partners,
    pub(crate) hosts: Hosts,
    pub(crate) recent: RecentRequests,
    pub(crate) partner_requests: crate::replays::AcceptedRequests,
}

impl State {
    /// An empty state.
    pub fn new() -> Self {
        State::default()
    }

    /// Applies one envelope.
    ///
    /// If its request id was among the last
    /// [`REMEMBERED_REQUESTS`](crate::REMEMBERED_REQUESTS) successfully
    /// applied, returns that outcome and changes nothing (the command is not
    /// compared: a request id names one proposal). A rejected command
    /// changes nothing and is not remembered.
    pub fn apply(&mut self, envelope: &Envelope) -> Result<Outcome, CommandError> {
        if envelope.request_id.is_empty() {
            return Err(CommandError::MissingRequestId);
        }
        if let Some(outcome) = self.recent.outcome(&envelope.request_id) {
            return Ok(outcome.clone());
        }
        let outcome = self.execute(&envelope.command)?;
        self.recent
            .remember(envelope.request_id.clone(), outcome.clone());
        Ok(outcome)
    }

    fn execute(&mut self, command: &Command) -> Result<Outcome, CommandError> {
        match command {
            Command::CreateTenant { name, at } => self.directory.create_tenant(name, *at),
            Command::CreateToken {
                id,
                secret_hash,
                role,
                tenant,
                description,
                at,
            } => self.directory.create_token(Token {
                id: id.clone(),
                secret_hash: secret_hash.clone(),
                role: *role,
                tenant: tenant.clone(),
                description: description.clone(),
                created_at: *at,
                revoked: false,
            }),
            Command::RevokeToken { id } => self.directory.revoke_token(id),
            Command::RegisterPartner { partner } => {
                self.directory.require_tenant(&partner.tenant)?;
                self.partners.register(partner.clone())
            }
            Command::RemovePartner { tenant, app_id } => self.partners.remove(tenant, app_id),
            Command::JoinHost {
                id,
                name,
                addrs,
                labels,
                at,
            } => self.hosts.join(*id, name, addrs, labels, *at),
            Command::UpdateHostAddrs { id, addrs } => self.hosts.update_addrs(*id, addrs),
            Command::SetHostMode { id, mode } => self.hosts.set_mode(*id, *mode),
            Command::RemoveHost { id } => {
                let outcome = self.hosts.remove(*id)?;
                self.apps.forget_host(*id);
                Ok(outcome)
            }
            Command::SetJoinSecret { hash } => self.hosts.set_join_secret(hash),
            Command::RecordPartnerRequest {
                key,
                at,
                expires_at,
            } => self.partner_requests.record(key, *at, *expires_at),
            Command::RegisterPackage {
                digest,
                tenant,
                size,
                imports,
                exports,
                at,
            } => {
                self.directory.require_tenant(tenant)?;
                self.packages.register(NewPackage {
                    digest,
                    tenant,
                    size: *size,
                    imports,
                    exports,
                    at: *at,
                })
            }
            Command::CreateDeployment {
                tenant,
                app,
                package,
                routes,
                limits,
                allow_outbound,
                config,
                capabilities,
                scale,
                by,
                at,
            } => {
                self.directory.require_tenant(tenant)?;
                self.packages.require_owned(package, tenant)?;
                self.apps.create_deployment(DeploymentRequest {
                    tenant,
                    app,
                    package,
                    routes,
                    limits: *limits,
                    allow_outbound,
                    config,
                    capabilities,
                    scale: *scale,
                    by,
                    at: *at,
                })
            }
            Command::ActivateDeployment {
                tenant,
                app,
                version,
            } => self.apps.activate(tenant, app, *version),
            Command::FailDeployment {
                tenant,
                app,
                version,
                reason,
            } => self.apps.fail(tenant, app, *version, reason),
            Command::Rollback { tenant, app, to } => self.apps.rollback(tenant, app, *to),
            Command::Scale {
                tenant,
                app,
                instances,
                min_warm,
                spread,
            } => self.apps.scale(
                tenant,
                app,
                Scale {
                    instances: *instances,
                    min_warm: *min_warm,
                },
                spread.as_deref(),
            ),
            Command::Place { tenant, app, hosts } => {
                let members = self.hosts.map();
                self.apps
                    .place(tenant, app, hosts, |id| members.contains_key(&id))
            }
            Command::DeleteApp { tenant, app } => self.apps.delete(tenant, app),
        }
    }

    /// Every host of the cluster, ordered by id.
    pub fn hosts(&self) -> impl Iterator<Item = &Host> {
        self.hosts.map().values()
    }

    /// The host with `id`.
    pub fn host(&self, id: u64) -> Option<&Host> {
        self.hosts.map().get(&id)
    }

    /// The hash (SHA-256, lowercase hex) of the cluster's join secret, once set.
    pub fn join_secret_hash(&self) -> Option<&str> {
        self.hosts.join_secret_hash()
    }

    /// Every tenant, ordered by name.
    pub fn tenants(&self) -> impl Iterator<Item = &Tenant> {
        self.directory.tenants_map().values()
    }

    /// The tenant named `name`.
    pub fn tenant(&self, name: &str) -> Option<&Tenant> {
        self.directory.tenant(name)
    }

    /// Every token (revoked ones too), ordered by id.
    pub fn tokens(&self) -> impl Iterator<Item = &Token> {
        self.directory.tokens_map().values()
    }

    /// The tokens of `tenant` (revoked ones too), ordered by id.
    pub fn tokens_of<'a>(&'a self, tenant: &'a str) -> impl Iterator<Item = &'a Token> {
        self.tokens()
            .filter(move |token| token.tenant.as_deref() == Some(tenant))
    }

    /// The token with `id` (possibly revoked).
    pub fn token(&self, id: &str) -> Option<&Token> {
        self.directory.token(id)
    }

    /// The unrevoked token whose secret hashes to `secret_hash` (lowercase
    /// hex sha256). A hash-map lookup.
    pub fn authenticate(&self, secret_hash: &str) -> Option<&Token> {
        self.directory.authenticate(secret_hash)
    }

    /// Every package, ordered by digest.
    pub fn packages(&self) -> impl Iterator<Item = &Package> {
        self.packages.map().values()
    }

    /// The packages `tenant` owns, ordered by digest.
    pub fn packages_of<'a>(&'a self, tenant: &'a str) -> impl Iterator<Item = &'a Package> {
        self.packages()
            .filter(move |package| package.is_owned_by(tenant))
    }

    /// The package with `digest` (`sha256:<hex>`), whoever owns it.
    pub fn package(&self, digest: &str) -> Option<&Package> {
        self.packages.get(digest)
    }

    /// Every app, ordered by tenant and name.
    pub fn apps(&self) -> impl Iterator<Item = &App> {
        self.apps.iter()
    }

    /// The apps of `tenant`, ordered by name.
    pub fn apps_of(&self, tenant: &str) -> impl Iterator<Item = &App> {
        self.apps.of_tenant(tenant)
    }

    /// The partner with `app_id`.
    pub fn partner(&self, app_id: &str) -> Option<&Partner> {
        self.partners.get(app_id)
    }

    /// Every partner, ordered by `app_id`.
    pub fn partners(&self) -> impl Iterator<Item = &Partner> {
        self.partners.all()
    }

    /// The app `name` of `tenant`, with its history.
    pub fn app(&self, tenant: &str, name: &str) -> Option<&App> {
        self.apps.get(tenant, name)
    }

    /// The current deployment of app `name` of `tenant`.
    pub fn current_deployment(&self, tenant: &str, name: &str) -> Option<&Deployment> {
        self.app(tenant, name)?.current_deployment()
    }

    /// Every pending deployment that may still be activated (not stale),
    /// with its app, ordered by tenant, app and version: what the reconciler
    /// compiles and probes before proposing `ActivateDeployment` or
    /// `FailDeployment`.
    pub fn pending_deployments(&self) -> impl Iterator<Item = (&App, &Deployment)> {
        self.apps()
            .flat_map(|app| app.pending().map(move |deployment| (app, deployment)))
    }

    /// The outcome of a request, if it is among the recently applied ones.
    pub fn remembered_outcome(&self, request_id: &str) -> Option<&Outcome> {
        self.recent.outcome(request_id)
    }

    /// The routing view of every current deployment, for the gateway.
    pub fn routing_table(&self) -> RoutingTable {
        let targets = self
            .apps()
            .filter_map(|app| {
                let current = app.current_deployment()?;
                Some(RouteTarget {
                    tenant: app.tenant.clone(),
                    app: app.name.clone(),
                    version: current.version,
                    package: current.package.clone(),
                    routes: current.routes.clone(),
                    limits: current.limits,
                    scale: app.scale,
                    placement: app.placement.clone(),
                    allow_outbound: current.allow_outbound.clone(),
                    config: current.config.clone(),
                    capabilities: current.capabilities.clone(),
                })
            })
            .collect();
        RoutingTable::new(targets)
    }
}
