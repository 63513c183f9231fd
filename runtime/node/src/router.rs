//! The node's router: the gateway's view of the reconciled routing table.
//!
//! The reconciler publishes a [`RouteMap`] (the state's routing table, a
//! linked component per current app, and the apps placed on other hosts
//! only) and swaps it in at once; requests in flight keep the component they
//! started on. Service calls and message consumers resolve their component
//! here too, at each call, so a redeploy or rollback reaches them.

use arc_swap::ArcSwap;
use cloudware_cap_messaging::ComponentResolver;
use cloudware_engine::LinkedComponent;
use cloudware_engine::service::{RemoteCall, RemoteOutcome, ServiceTarget};
use cloudware_gateway::{RemoteTarget, Router, Target};
use cloudware_state::RoutingTable;
use futures::future::BoxFuture;
use std::collections::HashMap;
use std::sync::{Arc, OnceLock};

/// Routes requests by the latest reconciled routing table.
pub struct NodeRouter {
    pub(crate) current: ArcSwap<RouteMap>,
    /// The applied log index the current table reflects.
    pub(crate) published: tokio::sync::watch::Sender<u64>,
    /// Makes service calls on the hosts that run the exporter, in a cluster.
    remote_services: OnceLock<Arc<dyn RemoteServices>>,
}

impl Default for NodeRouter {
    fn default() -> Self {
        NodeRouter {
            current: ArcSwap::default(),
            published: tokio::sync::watch::Sender::new(0),
            remote_services: OnceLock::new(),
        }
    }
}

/// Makes service calls on other hosts of the cluster (implemented by the
/// cluster's host-to-host client).
pub trait RemoteServices: Send + Sync + 'static {
    /// Calls `call` on one of `target`'s hosts.
    fn call(&self, target: RemoteTarget, call: RemoteCall) -> BoxFuture<'static, RemoteOutcome>;
}

impl NodeRouter {
    /// Waits until the published routing table reflects at least log
    /// `index`, so that what was applied there is what requests now see.
    pub async fn wait_published(&self, index: u64) {
        let mut published = self.published.subscribe();
        let _ = published.wait_for(|published| *published >= index).await;
    }
}

/// One published routing table with a ready target per app.
#[derive(Default)]
pub(crate) struct RouteMap {
    pub(crate) table: RoutingTable,
    /// tenant → app → target: every current deployment linked here (for
    /// service calls and messages), whether or not its HTTP instances run here.
    pub(crate) targets: HashMap<String, HashMap<String, Target>>,
    /// tenant → app → the hosts that run it, for apps whose HTTP instances
    /// are placed on other hosts only (the gateway forwards their requests).
    pub(crate) remote: HashMap<String, HashMap<String, RemoteTarget>>,
}

impl Router for NodeRouter {
    fn route(&self, host: &str, path: &str) -> Option<Target> {
        let map = self.current.load();
        let target = map.table.route(host, path)?;
        if map
            .remote
            .get(&target.tenant)
            .is_some_and(|apps| apps.contains_key(&target.app))
        {
            return None;
        }
        map.targets.get(&target.tenant)?.get(&target.app).cloned()
    }

    fn remote(&self, host: &str, path: &str) -> Option<RemoteTarget> {
        let map = self.current.load();
        let target = map.table.route(host, path)?;
        map.remote.get(&target.tenant)?.get(&target.app).cloned()
    }
}

impl NodeRouter {
    /// Whether this host serves `tenant`'s `app` over HTTP itself (rather
    /// than forwarding its requests to the hosts it is placed on).
    pub fn serves_here(&self, tenant: &str, app: &str) -> bool {
        let map = self.current.load();
        let remote = map
            .remote
            .get(tenant)
            .is_some_and(|apps| apps.contains_key(app));
        !remote
            && map
                .targets
                .get(tenant)
                .is_some_and(|apps| apps.contains_key(app))
    }

    /// Service calls to apps that run on other hosts only go through
    /// `services` from now on (the first one set stays).
    pub fn set_remote_services(&self, services: Arc<dyn RemoteServices>) {
        let _ = self.remote_services.set(services);
    }

    /// The component of `tenant`'s `app` if its instances run on this host
    /// (service calls to it are made here).
    pub fn local_component(&self, tenant: &str, app: &str) -> Option<LinkedComponent> {
        self.serves_here(tenant, app)
            .then(|| self.component(tenant, app))
            .flatten()
    }

    /// The current component of `tenant`'s `app`, as published (linked on
    /// every host, wherever its instances are placed).
    pub fn component(&self, tenant: &str, app: &str) -> Option<LinkedComponent> {
        let map = self.current.load();
        let target = map.targets.get(tenant)?.get(app)?;
        Some(target.component.clone())
    }
}

impl ComponentResolver for NodeRouter {
    fn resolve(&self, tenant: &str, app: &str) -> Option<LinkedComponent> {
        self.component(tenant, app)
    }
}

/// A linked service: the exporting app's current component at each call.
pub(crate) struct AppService {
    pub(crate) router: std::sync::Weak<NodeRouter>,
    pub(crate) tenant: String,
    pub(crate) app: String,
}

impl ServiceTarget for AppService {
    fn resolve(&self) -> Option<LinkedComponent> {
        self.router
            .upgrade()?
            .local_component(&self.tenant, &self.app)
    }

    fn call_elsewhere(&self, call: RemoteCall) -> Option<BoxFuture<'static, RemoteOutcome>> {
        let router = self.router.upgrade()?;
        let services = router.remote_services.get()?.clone();
        let target = router
            .current
            .load()
            .remote
            .get(&self.tenant)?
            .get(&self.app)?
            .clone();
        Some(services.call(target, call))
    }
}
