//! The config capability: `wasi:config/store@0.2.0-rc.1`, answering from
//! the deployment's configuration values and its secrets.
//!
//! Secrets are sealed ([`SecretKey::seal`]) by the admin API before they are
//! proposed, so the raft log, its snapshots and every API answer hold only
//! ciphertext; the node opens them when it links the deployment. A
//! [`SecretValue`] never prints its contents.
//!
//! Every deployment may import the interface (it sees only its own values),
//! so the capability is always granted.

mod secrets;

pub use secrets::{SecretError, SecretKey, SecretValue, is_sealed};

use cloudware_engine::Capability;
use cloudware_engine::http::RequestState;
use std::collections::BTreeMap;
use wasmtime::component::{HasData, Linker};

mod bindings {
    wasmtime::component::bindgen!({
        path: "../../../wit",
        world: "wasi:config/imports@0.2.0-rc.1",
        imports: { default: trappable },
    });
}

use bindings::wasi::config::store;

/// The interface this capability provides.
pub const INTERFACE: &str = "wasi:config/store@0.2.0-rc.1";

/// The capability, added once to the node's engine.
pub struct ConfigCapability;

impl Capability for ConfigCapability {
    fn name(&self) -> &'static str {
        "config"
    }

    fn interfaces(&self) -> &'static [&'static str] {
        &[INTERFACE]
    }

    fn add_to_linker(&self, linker: &mut Linker<RequestState>) -> wasmtime::Result<()> {
        store::add_to_linker::<RequestState, ConfigData>(linker, |state| ConfigView {
            grant: state.capability::<ConfigGrant>().grant,
        })
    }

    fn always_granted(&self) -> bool {
        true
    }
}

/// One deployment's values: its config, and its opened secrets (which win
/// over a config value of the same name).
#[derive(Clone, Default)]
pub struct ConfigGrant {
    values: BTreeMap<String, SecretValue>,
}

impl ConfigGrant {
    /// The grant of `config` values and opened `secrets`.
    pub fn new(config: &BTreeMap<String, String>, secrets: BTreeMap<String, SecretValue>) -> Self {
        let mut values: BTreeMap<String, SecretValue> = config
            .iter()
            .map(|(k, v)| (k.clone(), SecretValue::new(v.clone())))
            .collect();
        values.extend(secrets);
        ConfigGrant { values }
    }

    /// How many values it holds.
    pub fn len(&self) -> usize {
        self.values.len()
    }

    /// Whether it holds no values.
    pub fn is_empty(&self) -> bool {
        self.values.is_empty()
    }
}

struct ConfigData;

impl HasData for ConfigData {
    type Data<'a> = ConfigView<'a>;
}

/// What the host functions see: the deployment's grant, if any.
struct ConfigView<'a> {
    grant: Option<&'a ConfigGrant>,
}

impl store::Host for ConfigView<'_> {
    fn get(&mut self, key: String) -> wasmtime::Result<Result<Option<String>, store::Error>> {
        Ok(Ok(self
            .grant
            .and_then(|grant| grant.values.get(&key))
            .map(|value| value.expose().to_owned())))
    }

    fn get_all(&mut self) -> wasmtime::Result<Result<Vec<(String, String)>, store::Error>> {
        Ok(Ok(self
            .grant
            .map(|grant| {
                grant
                    .values
                    .iter()
                    .map(|(k, v)| (k.clone(), v.expose().to_owned()))
                    .collect()
            })
            .unwrap_or_default()))
    }
}
