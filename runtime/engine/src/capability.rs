//! Host capabilities: what a component may import beyond WASI 0.2 itself
//! (key-value buckets, config, queues, topics, ...), granted per deployment
//! and denied by default.
//!
//! A capability is one self-contained crate (Spin's "factor" pattern): its
//! WIT binding, its host implementation and its configuration. It tells the
//! engine which interfaces it provides and adds their host functions to the
//! node's linker once; what a given deployment may do with it is its
//! [`Grants`] entry, a value of the capability's own type that its host
//! functions find in the request's store through
//! [`RequestState::capability`](crate::http::RequestState::capability).
//!
//! A component importing an interface of a capability its deployment was
//! not granted is refused when it is linked ([`LoadError::NotGranted`]).
//!
//! [`LoadError::NotGranted`]: crate::LoadError::NotGranted

use crate::http::RequestState;
use std::any::{Any, TypeId};
use std::collections::{BTreeSet, HashMap};
use std::fmt;
use std::sync::Arc;
use wasmtime::component::Linker;

/// A host capability components import through WIT.
pub trait Capability: Send + Sync + 'static {
    /// Its name in deployment grants, e.g. `keyvalue`.
    fn name(&self) -> &'static str;

    /// The interfaces it provides, with their versions, e.g.
    /// `wasi:keyvalue/store@0.2.0-draft`.
    fn interfaces(&self) -> &'static [&'static str];

    /// Adds the host functions of [`Capability::interfaces`] to `linker`.
    fn add_to_linker(&self, linker: &mut Linker<RequestState>) -> wasmtime::Result<()>;

    /// Whether every deployment may import it without a grant (harmless
    /// capabilities such as logging). Default: no.
    fn always_granted(&self) -> bool {
        false
    }
}

/// What one deployment was granted: per capability, a value of that
/// capability's own type (its buckets, its queues, ...).
///
/// Cheap to clone; shared by every request of the deployment.
#[derive(Clone, Default)]
pub struct Grants {
    inner: Arc<GrantsInner>,
}

#[derive(Default)]
struct GrantsInner {
    by_type: HashMap<TypeId, Arc<dyn Any + Send + Sync>>,
    names: BTreeSet<&'static str>,
}

impl Grants {
    /// No grants at all.
    pub fn none() -> Self {
        Grants::default()
    }

    /// Starts an empty set of grants.
    pub fn builder() -> GrantsBuilder {
        GrantsBuilder::default()
    }

    /// The grant of type `G`, if the deployment has one.
    pub fn get<G: Any + Send + Sync>(&self) -> Option<&G> {
        self.inner
            .by_type
            .get(&TypeId::of::<G>())
            .and_then(|grant| grant.downcast_ref::<G>())
    }

    /// Whether the capability named `name` was granted.
    pub fn has(&self, name: &str) -> bool {
        self.inner.names.contains(name)
    }

    /// The names of the granted capabilities.
    pub fn names(&self) -> impl Iterator<Item = &'static str> + '_ {
        self.inner.names.iter().copied()
    }
}

impl fmt::Debug for Grants {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Grant values may hold secrets: show names only.
        f.debug_set().entries(self.inner.names.iter()).finish()
    }
}

/// Builds [`Grants`].
#[derive(Default)]
pub struct GrantsBuilder {
    inner: GrantsInner,
}

impl GrantsBuilder {
    /// Grants capability `name`, with `grant` as what its host functions
    /// see. A second grant of the same type replaces the first.
    pub fn grant<G: Any + Send + Sync>(mut self, name: &'static str, grant: G) -> Self {
        self.inner
            .by_type
            .insert(TypeId::of::<G>(), Arc::new(grant));
        self.inner.names.insert(name);
        self
    }

    /// Marks capability `name` as granted without a value of its own.
    pub fn allow(mut self, name: &'static str) -> Self {
        self.inner.names.insert(name);
        self
    }

    /// The finished grants.
    pub fn build(self) -> Grants {
        Grants {
            inner: Arc::new(self.inner),
        }
    }
}

/// The capabilities a node offers, by interface.
#[derive(Clone, Default)]
pub(crate) struct CapabilityIndex {
    /// Interface name → (capability name, always granted).
    by_interface: HashMap<&'static str, (&'static str, bool)>,
}

impl CapabilityIndex {
    pub(crate) fn add(&mut self, capability: &dyn Capability) {
        for interface in capability.interfaces() {
            self.by_interface
                .insert(interface, (capability.name(), capability.always_granted()));
        }
    }

    /// The capability providing `interface`: its name and whether it is
    /// always granted.
    pub(crate) fn provider(&self, interface: &str) -> Option<(&'static str, bool)> {
        self.by_interface.get(interface).copied()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, PartialEq)]
    struct Buckets(Vec<String>);

    #[test]
    fn grants_are_found_by_type_and_name() {
        let grants = Grants::builder()
            .grant("keyvalue", Buckets(vec!["cart".into()]))
            .allow("queues")
            .build();
        assert_eq!(grants.get::<Buckets>(), Some(&Buckets(vec!["cart".into()])));
        assert!(grants.has("keyvalue") && grants.has("queues"));
        assert!(!grants.has("topics"));
        assert_eq!(grants.get::<String>(), None);
        assert_eq!(format!("{grants:?}"), r#"{"keyvalue", "queues"}"#);
        assert!(Grants::none().get::<Buckets>().is_none());
    }
}
