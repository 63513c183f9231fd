//! Cloudware's desired state and the commands that change it.
//!
//! This crate is a pure, deterministic state machine: no I/O, no clocks, no
//! randomness. Every change of desired state is a [`Command`] in an
//! [`Envelope`], appended to the raft log and applied with [`State::apply`]
//! on every node in the same order; timestamps and ids travel inside the
//! commands. The reconciler and the admin API read the [`State`]; the
//! gateway matches requests with its [`RoutingTable`].
//!
//! # Concepts
//!
//! * [`Tenant`]s own apps, packages and hosts; [`Token`]s act for them.
//! * A [`Package`] is an uploaded component, named by its digest
//!   (`sha256:<64 lowercase hex>`); only its owners may deploy it.
//! * An [`App`] (keyed by tenant and name) has numbered [`Deployment`]s,
//!   one of which may be current, and a [`Scale`].
//! * A [`Route`] sends a host and path prefix to an app's current version;
//!
//! # Route ownership
//!
//! A tenant owns every host one of its apps routes exactly, and every host
//! under a wildcard (`*.example.com`) one of its apps routes; only current
//! and pending (non-stale) versions claim routes. Host patterns of different
//! tenants never overlap, and no two apps claim the same host and path
//! prefix. Host-less routes serve the hosts no tenant owns. See
//! [`RoutingTable`] for how a request finds its deployment.
//!
//! A rejected command returns a [`CommandError`] and changes nothing.
//!
//! # Example
//!
//! ```
//! use cloudware_state::{Command, Envelope, Outcome, Route, State};
//!
//! let digest = format!("sha256:{}", "ab".repeat(32));
//! let mut state = State::new();
//! let commands = [
//!     Command::CreateTenant { name: "acme".into(), at: 1 },
//!     Command::RegisterPackage {
//!         digest: digest.clone(),
//!         tenant: "acme".into(),
//!         size: 1024,
//!         imports: vec![],
//!         exports: vec!["wasi:http/incoming-handler@0.2.0".into()],
//!         at: 2,
//!     },
//!     Command::CreateDeployment {
//!         tenant: "acme".into(),
//!         app: "shop".into(),
//!         package: digest,
//!         routes: vec![Route::new(Some("shop.example.com"), "/")?],
//!         limits: Default::default(),
//!         allow_outbound: vec![],
//!         config: Default::default(),
//!         capabilities: Default::default(),
//!         scale: None,
//!         by: "tok_1".into(),
//!         at: 3,
//!     },
//! ];
//! for (n, command) in commands.into_iter().enumerate() {
//!     state.apply(&Envelope::new(format!("req-{n}"), command))?;
//! }
//! // The new version is pending until the reconciler has probed it.
//! let (app, pending) = state.pending_deployments().next().unwrap();
//! let activate = Command::ActivateDeployment {
//!     tenant: app.tenant.clone(),
//!     app: app.name.clone(),
//!     version: pending.version,
//! };
//! let outcome = state.apply(&Envelope::new("req-3", activate))?;
//! assert_eq!(outcome, Outcome::DeploymentActivated { version: 1, previous: None });
//!
//! let table = state.routing_table();
//! let target = table.route("Shop.Example.com:443", "/cart?id=7").unwrap();
//! assert_eq!((target.app.as_str(), target.version), ("shop", 1));
//! # Ok::<(), cloudware_state::CommandError>(())
//! ```

#![warn(missing_docs)]

mod apps;
mod command;
mod error;
mod hosts;
mod packages;
mod partners;
pub mod placement;
mod recent;
mod replays;
mod routes;
mod routing;
mod snapshot;
mod state;
mod tenants;
pub mod validation;

#[cfg(test)]
mod testing;
#[cfg(test)]
mod tests;

pub use apps::{
    App, Deployment, DeploymentLimits, DeploymentStatus, MAX_INSTANCES, Scale, StatusKind,
};
pub use command::{Command, Envelope, Outcome, PackageRegistration};
pub use error::{CommandError, ErrorKind, NameKind, SnapshotError};
pub use hosts::{Host, HostAddrs, HostMode, MAX_HOSTS};
pub use packages::Package;
pub use partners::{MAX_PARTNER_METHODS, Partner};
pub use placement::Spread;
pub use recent::REMEMBERED_REQUESTS;
pub use replays::MAX_RECORDED_REQUESTS;
pub use routes::Route;
pub use routing::{RouteTarget, RoutingTable};
pub use snapshot::SNAPSHOT_FORMAT;
pub use state::State;
pub use tenants::{ParseRoleError, Role, Tenant, Token};
