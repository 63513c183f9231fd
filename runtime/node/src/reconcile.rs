//! The reconciler: makes this node serve what the desired state says.
//!
//! After every applied command it
//! 1. takes each pending deployment, compiles its package (or takes it from
//!    the compile cache), sends it a health probe, and proposes
//!    `ActivateDeployment` — or `FailDeployment` with the reason;
//! 2. rebuilds the routing table from the current deployments, with each
//!    app's limits, capability grants, service links, instance quota and
//!    metrics, and swaps it into the [`NodeRouter`] at once. Requests in
//!    flight keep the component they started on;
//! 3. starts and stops the queue consumers and topic subscriptions the
//!    current deployments ask for.

use crate::capabilities::{self, NodeCapabilities};
use crate::control::{ControlPlane, ProposeFailure};
use crate::packages::PackageStore;
use crate::router::{AppService, NodeRouter, RouteMap};
use cloudware_cap_messaging::Consumers;
use cloudware_engine::service::ServiceImport;
use cloudware_engine::{
    CompiledComponent, ComponentSettings, Digest, Engine, InstanceQuota, LinkPlan, LinkedComponent,
    OutboundPolicy,
};
use cloudware_gateway::{RemoteTarget, Target};
use cloudware_metrics::Metrics;
use cloudware_state::{Command, Deployment, DeploymentLimits, RouteTarget, RoutingTable, Scale};
use serde_json::Value;
use std::collections::BTreeMap;
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

/// The path a health probe is sent to when the deployment has no routes.
const PROBE_PATH: &str = "/";

/// What a deployment links with: its package, config and grant sections.
struct LinkInput<'a> {
    tenant: &'a str,
    app: &'a str,
    version: u32,
    package: &'a str,
    config: &'a BTreeMap<String, String>,
    capabilities: &'a BTreeMap<String, Value>,
}

/// Live figures of one app on this node.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct AppLoad {
    /// Instances running a request now.
    pub busy: u32,
    /// The app's instance quota.
    pub instances: u32,
}

/// Turns applied desired state into loaded components and routes.
pub struct Reconciler {
    control: Arc<ControlPlane>,
    engine: Engine,
    packages: PackageStore,
    metrics: Arc<Metrics>,
    router: Arc<NodeRouter>,
    capabilities: NodeCapabilities,
    consumers: Consumers,
    /// Compiled components by package digest.
    loaded: Mutex<HashMap<Digest, CompiledComponent>>,
    /// Linked components by (tenant, app, version): a version's package,
    /// grants and links never change, so it is linked once, not on every
    /// reconciliation pass.
    linked: Mutex<HashMap<(String, String, u32), LinkedComponent>>,
    /// Held while a package is compiled, so concurrent passes compile it once.
    loading: tokio::sync::Mutex<()>,
    /// Instance quotas by (tenant, app); shared by all versions of an app.
    quotas: Mutex<HashMap<(String, String), InstanceQuota>>,
    /// Pending deployments being compiled and probed: (tenant, app, version).
    activating: Mutex<HashSet<(String, String, u32)>>,
    /// This host's id in its cluster (none on a single host, which runs
    /// every app).
    host: std::sync::OnceLock<u64>,
}

impl Reconciler {
    /// A reconciler publishing into `router`.
    pub fn new(
        control: Arc<ControlPlane>,
        engine: Engine,
        packages: PackageStore,
        metrics: Arc<Metrics>,
        router: Arc<NodeRouter>,
        capabilities: NodeCapabilities,
    ) -> Arc<Self> {
        let consumers = Consumers::new(capabilities.bus().clone(), router.clone());
        Arc::new(Reconciler {
            control,
            engine,
            packages,
            metrics,
            router,
            capabilities,
            consumers,
            loaded: Mutex::new(HashMap::new()),
            linked: Mutex::new(HashMap::new()),
            loading: tokio::sync::Mutex::new(()),
            quotas: Mutex::new(HashMap::new()),
            activating: Mutex::new(HashSet::new()),
            host: std::sync::OnceLock::new(),
        })
    }

    /// Makes this reconciler a member of a cluster as host `id`: it then
    /// serves HTTP only for the apps placed on it, and activates only their
    /// new versions. Call before [`start`](Self::start).
    pub fn set_host(&self, id: u64) {
        let _ = self.host.set(id);
    }

    /// Reconciles once — so the current apps are loaded and routed when
    /// this returns — then again after every applied command, in a
    /// background task, until the control plane stops.
    pub async fn start(self: &Arc<Self>) -> tokio::task::JoinHandle<()> {
        let mut applied = self.control.subscribe();
        applied.mark_unchanged();
        self.reconcile_once().await;
        let this = self.clone();
        tokio::spawn(async move {
            while applied.changed().await.is_ok() {
                this.reconcile_once().await;
            }
        })
    }

    /// One pass: start activating new pending deployments, publish routes.
    pub async fn reconcile_once(self: &Arc<Self>) {
        // Read the index first: the state read below reflects at least it.
        let index = self.control.raft().applied_index();
        let (pending, table, stored, here) = self.control.read(|state| {
            let here = self
                .host
                .get()
                .copied()
                .filter(|id| state.host(*id).is_some());
            let pending: Vec<(String, String, Deployment)> = state
                .pending_deployments()
                .filter(|(app, _)| here.is_none_or(|id| app.placement.contains_key(&id)))
                .map(|(app, deployment)| (app.tenant.clone(), app.name.clone(), deployment.clone()))
                .collect();
            let mut stored: HashMap<String, u64> = HashMap::new();
            for package in state.packages() {
                for owner in &package.owners {
                    *stored.entry(owner.clone()).or_default() += package.size;
                }
            }
            (pending, state.routing_table(), stored, here)
        });
        for (tenant, bytes) in stored {
            self.metrics.set_stored_bytes(&tenant, bytes);
        }
        for (tenant, app, deployment) in pending {
            let key = (tenant.clone(), app.clone(), deployment.version);
            if self.lock_activating().insert(key.clone()) {
                let this = self.clone();
                tokio::spawn(async move {
                    this.activate(&tenant, &app, &deployment).await;
                    this.lock_activating().remove(&key);
                });
            }
        }
        self.publish(table, here).await;
        self.sync_consumers();
        self.router.published.send_if_modified(|published| {
            let newer = index > *published;
            *published = (*published).max(index);
            newer
        });
    }

    /// The load of an app on this node.
    pub fn app_load(&self, tenant: &str, app: &str) -> AppLoad {
        self.quotas
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&(tenant.to_string(), app.to_string()))
            .map(|quota| AppLoad {
                busy: quota.busy(),
                instances: quota.limit(),
            })
            .unwrap_or_default()
    }

    /// The load of every app this node routes, for the metrics.
    pub fn app_loads(&self) -> Vec<(String, String, AppLoad)> {
        self.quotas
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
            .map(|((tenant, app), quota)| {
                let load = AppLoad {
                    busy: quota.busy(),
                    instances: quota.limit(),
                };
                (tenant.clone(), app.clone(), load)
            })
            .collect()
    }

    /// The node's capabilities (for the admin API's checks).
    pub fn capabilities(&self) -> &NodeCapabilities {
        &self.capabilities
    }

    /// Keeps an already compiled component (e.g. one the admin API just
    /// validated), so its deployment does not load it again.
    pub fn remember(&self, component: &CompiledComponent) {
        self.lock_loaded()
            .entry(component.digest())
            .or_insert_with(|| component.clone());
    }

    fn lock_loaded(&self) -> std::sync::MutexGuard<'_, HashMap<Digest, CompiledComponent>> {
        self.loaded.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn lock_activating(&self) -> std::sync::MutexGuard<'_, HashSet<(String, String, u32)>> {
        self.activating
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Compiles and probes a pending deployment, then records the verdict.
    async fn activate(&self, tenant: &str, app: &str, deployment: &Deployment) {
        let input = LinkInput {
            tenant,
            app,
            version: deployment.version,
            package: &deployment.package,
            config: &deployment.config,
            capabilities: &deployment.capabilities,
        };
        let exporters = self.control.read(|state| exporters(&state.routing_table()));
        let verdict = match self.link(&input, &exporters).await {
            Ok(component) => {
                // The probe runs as the version will: its own limits and
                // grants, on one instance of its own.
                match self.settings(
                    &deployment.limits,
                    &deployment.allow_outbound,
                    InstanceQuota::new(1),
                ) {
                    Ok(settings) => probe(&component.with_settings(settings), deployment).await,
                    Err(reason) => Err(reason),
                }
            }
            Err(reason) => Err(reason),
        };
        let command = match verdict {
            Ok(()) => Command::ActivateDeployment {
                tenant: tenant.to_string(),
                app: app.to_string(),
                version: deployment.version,
            },
            Err(reason) => {
                tracing::warn!(tenant, app, version = deployment.version, %reason, "deployment failed");
                Command::FailDeployment {
                    tenant: tenant.to_string(),
                    app: app.to_string(),
                    version: deployment.version,
                    reason,
                }
            }
        };
        match self.control.propose(command).await {
            Ok(_) => tracing::info!(
                tenant,
                app,
                version = deployment.version,
                "deployment settled"
            ),
            // A newer version won, or another node settled it first.
            Err(ProposeFailure::Rejected(err)) => {
                tracing::info!(tenant, app, version = deployment.version, %err, "deployment not settled")
            }
            Err(err) => {
                tracing::warn!(tenant, app, version = deployment.version, %err, "cannot settle deployment")
            }
        }
    }

    /// The compiled component of a package, compiling it on first use.
    async fn component(&self, digest: &str) -> Result<CompiledComponent, String> {
        let digest: Digest = digest
            .parse()
            .map_err(|err| format!("bad package digest {digest}: {err}"))?;
        if let Some(component) = self.lock_loaded().get(&digest) {
            return Ok(component.clone());
        }
        let _loading = self.loading.lock().await;
        if let Some(component) = self.lock_loaded().get(&digest) {
            return Ok(component.clone());
        }
        let bytes = self
            .packages
            .read(&digest)
            .await
            .map_err(|err| format!("package {digest} is not available on this node: {err}"))?;
        let engine = self.engine.clone();
        let component = tokio::task::spawn_blocking(move || engine.compile(&bytes))
            .await
            .map_err(|err| format!("compiling {digest} failed: {err}"))?
            .map_err(|err| format!("package {digest} cannot run: {err}"))?;
        self.lock_loaded().insert(digest, component.clone());
        Ok(component)
    }

    /// Compiles (or reuses) a deployment's package and links it with its
    /// grants and services. `exporters` maps (tenant, app) to the package
    /// of each current deployment.
    async fn link(
        &self,
        input: &LinkInput<'_>,
        exporters: &HashMap<(String, String), String>,
    ) -> Result<LinkedComponent, String> {
        let key = (input.tenant.to_owned(), input.app.to_owned(), input.version);
        if let Some(linked) = self
            .linked
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&key)
        {
            return Ok(linked.clone());
        }
        let compiled = self.component(input.package).await?;
        let grants = self
            .capabilities
            .grants(input.tenant, input.app, input.config, input.capabilities)
            .map_err(|err| err.to_string())?;
        let mut services = Vec::new();
        for (interface, exporter) in capabilities::links_of(input.capabilities) {
            let key = (input.tenant.to_owned(), exporter.clone());
            let package = exporters.get(&key).ok_or_else(|| {
                format!(
                    "`{interface}` is linked to app `{exporter}`, which has no current deployment"
                )
            })?;
            let exporter_component = self.component(package).await?;
            services.push(ServiceImport {
                interface,
                exporter: exporter_component,
                target: Arc::new(AppService {
                    router: Arc::downgrade(&self.router),
                    tenant: input.tenant.to_owned(),
                    app: exporter,
                }),
            });
        }
        let plan = LinkPlan { grants, services };
        let linked = compiled.link(&plan).map_err(|err| err.to_string())?;
        self.linked
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(key, linked.clone());
        Ok(linked)
    }

    /// Starts and stops consumers to match the published deployments.
    fn sync_consumers(&self) {
        let map = self.router.current.load();
        let mut consumers = Vec::new();
        let mut subscriptions = Vec::new();
        for route in map.table.targets() {
            let (c, s) =
                self.capabilities
                    .consumers(&route.tenant, &route.app, &route.capabilities);
            consumers.extend(c);
            subscriptions.extend(s);
        }
        self.consumers.sync(consumers, subscriptions);
    }

    /// Builds and swaps in the routing table. `here` is this host's id in
    /// its cluster (`None`: a single host, which serves every app).
    async fn publish(&self, table: RoutingTable, here: Option<u64>) {
        let exporters = exporters(&table);
        let mut targets: HashMap<String, HashMap<String, Target>> = HashMap::new();
        let mut remote: HashMap<String, HashMap<String, RemoteTarget>> = HashMap::new();
        for route in table.targets() {
            if local_share(route, here).is_none() {
                insert_remote(&mut remote, route, here);
            }
        }
        // Until this host has linked an app (which may take a compile), its
        // requests go to the other hosts that run it: apps placed elsewhere
        // are forwarded at once, and so are apps new here that run
        // elsewhere too.
        let previous = self.router.current.load_full();
        let mut meanwhile = remote.clone();
        for route in table.targets() {
            let linked = previous
                .targets
                .get(&route.tenant)
                .is_some_and(|apps| apps.contains_key(&route.app));
            if !linked && here.is_some() {
                insert_remote(&mut meanwhile, route, here);
            }
        }
        if meanwhile != previous.remote {
            self.router.current.store(Arc::new(RouteMap {
                table: table.clone(),
                targets: previous.targets.clone(),
                remote: meanwhile,
            }));
        }
        drop(previous);
        for route in table.targets() {
            let share = local_share(route, here);
            match self.target(route, share, &exporters).await {
                Ok(target) => {
                    targets
                        .entry(route.tenant.clone())
                        .or_default()
                        .insert(route.app.clone(), target);
                }
                Err(reason) => {
                    tracing::error!(
                        tenant = %route.tenant,
                        app = %route.app,
                        version = route.version,
                        %reason,
                        "cannot serve the current version"
                    );
                    if here.is_some() {
                        insert_remote(&mut remote, route, here);
                    }
                }
            }
        }
        // Forget the linked components of versions no longer current.
        self.linked
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .retain(|(tenant, app, version), _| {
                table
                    .targets()
                    .iter()
                    .any(|t| t.tenant == *tenant && t.app == *app && t.version == *version)
            });
        self.router.current.store(Arc::new(RouteMap {
            table,
            targets,
            remote,
        }));
    }

    /// The ready target of one current deployment, running `share` of its
    /// instances here (`None`: placed elsewhere; it is still linked, with
    /// nothing kept warm, for the service calls and messages it receives).
    async fn target(
        &self,
        route: &RouteTarget,
        share: Option<Scale>,
        exporters: &HashMap<(String, String), String>,
    ) -> Result<Target, String> {
        let input = LinkInput {
            tenant: &route.tenant,
            app: &route.app,
            version: route.version,
            package: &route.package,
            config: &route.config,
            capabilities: &route.capabilities,
        };
        let component = self.link(&input, exporters).await?;
        let quota = self
            .quotas
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .entry((route.tenant.clone(), route.app.clone()))
            .or_insert_with(|| InstanceQuota::new(route.scale.instances))
            .clone();
        let scale = share.unwrap_or(Scale {
            instances: route.scale.instances.max(1),
            min_warm: 0,
        });
        quota.set_limit(scale.instances);
        quota.set_reserved(&self.engine, scale.min_warm);
        let settings = self.settings(&route.limits, &route.allow_outbound, quota)?;
        Ok(Target {
            component: component.with_settings(settings),
            recorder: Some(self.metrics.app(&route.tenant, &route.app)),
        })
    }

    /// How a deployment's component runs: its limits (node defaults where
    /// it sets none), its outbound grants, and `quota`.
    fn settings(
        &self,
        limits: &DeploymentLimits,
        allow_outbound: &[String],
        quota: InstanceQuota,
    ) -> Result<ComponentSettings, String> {
        let defaults = ComponentSettings::defaults(&self.engine);
        let outbound = OutboundPolicy::allow(allow_outbound).map_err(|err| err.to_string())?;
        Ok(ComponentSettings {
            request_timeout: limits
                .timeout_ms
                .map_or(defaults.request_timeout, Duration::from_millis),
            max_memory: limits.memory_bytes.unwrap_or(defaults.max_memory),
            outbound,
            quota,
        })
    }
}

/// Routes `route`'s requests to the other hosts it is placed on (none: the
/// gateway answers that it has no capacity), unless it is there already.
fn insert_remote(
    remote: &mut HashMap<String, HashMap<String, RemoteTarget>>,
    route: &RouteTarget,
    here: Option<u64>,
) {
    let hosts = route
        .placement
        .iter()
        .filter(|(id, _)| Some(**id) != here)
        .map(|(id, n)| (*id, *n))
        .collect();
    remote
        .entry(route.tenant.clone())
        .or_default()
        .entry(route.app.clone())
        .or_insert_with(|| RemoteTarget {
            tenant: route.tenant.clone(),
            app: route.app.clone(),
            hosts,
        });
}

/// The scale of `route`'s HTTP instances on this host: all of it on a single
/// host (`here` is `None`), its placement's share in a cluster (`None` when
/// it is placed elsewhere). Warm instances are divided in proportion.
fn local_share(route: &RouteTarget, here: Option<u64>) -> Option<Scale> {
    let Some(here) = here else {
        return Some(route.scale);
    };
    let instances = route.placement.get(&here).copied().filter(|n| *n > 0)?;
    let total: u32 = route.placement.values().sum();
    let min_warm = u64::from(route.scale.min_warm) * u64::from(instances) / u64::from(total.max(1));
    Some(Scale {
        instances,
        min_warm: u32::try_from(min_warm).unwrap_or(instances).min(instances),
    })
}

/// The package of every current deployment, by (tenant, app).
fn exporters(table: &RoutingTable) -> HashMap<(String, String), String> {
    table
        .targets()
        .iter()
        .map(|t| ((t.tenant.clone(), t.app.clone()), t.package.clone()))
        .collect()
}

/// Sends an HTTP deployment one request; any answer from the guest passes,
/// a trap, timeout or missing response fails it. A component that does not
/// serve HTTP (a service or consumer) must instantiate, and may not have
/// routes.
async fn probe(component: &LinkedComponent, deployment: &Deployment) -> Result<(), String> {
    use http_body_util::BodyExt;
    if !component.is_http() {
        if !deployment.routes.is_empty() {
            return Err(
                "the component does not export `wasi:http/incoming-handler`, so it cannot have routes"
                    .into(),
            );
        }
        return component
            .instantiate_once()
            .await
            .map_err(|err| format!("the component does not instantiate: {err:#}"));
    }
    let route = deployment.routes.first();
    let host = route
        .and_then(|r| r.host.as_deref())
        .filter(|h| !h.starts_with('*'))
        .unwrap_or("localhost");
    let path = route.map_or(PROBE_PATH, |r| r.path_prefix.as_str());
    let request = http::Request::get(format!("http://{host}{path}"))
        .header(http::header::HOST, host)
        .header("user-agent", "cloudware-health-probe")
        .body(http_body_util::Empty::<bytes::Bytes>::new())
        .map_err(|err| format!("cannot build the health probe: {err}"))?;
    let response = component
        .handle(request, Default::default())
        .await
        .map_err(|err| format!("health probe failed: {err}"))?;
    response
        .into_body()
        .collect()
        .await
        .map_err(|err| format!("health probe failed: {err}"))?;
    Ok(())
}
