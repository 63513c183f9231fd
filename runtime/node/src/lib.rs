//! A Cloudware node: turns the replicated desired state into local
//! instances and routes.
//!
//! Data flows one way: the admin API proposes commands to the raft log, the
//! state machine applies them, and this crate's reconciler loads the
//! components the state asks for and publishes the routing table the gateway
//! reads.

pub mod capabilities;
pub mod control;
pub mod health;
pub mod membership;
pub mod packages;
pub mod partners;
pub mod reconcile;
pub mod router;
pub mod scheduler;

pub use capabilities::{GrantError, NodeCapabilities};
pub use control::{ControlPlane, OpenError, ProposalForwarder, ProposeFailure};
pub use health::{HostState, PeerHealth};
pub use packages::{PackageFetcher, PackageStore, PutError, StoredPackage};
pub use reconcile::{AppLoad, Reconciler};
pub use router::{NodeRouter, RemoteServices};
pub use scheduler::Scheduler;
