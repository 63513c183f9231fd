//! Linking a compiled component for one deployment: every import must be
//! WASI, a capability the deployment was granted, or a service it links;
//! then the component is pre-instantiated and its exported functions
//! indexed.

use crate::capability::Grants;
use crate::component::{ComponentSettings, ExportedFunction, Inner, LinkedComponent};
use crate::digest::Digest;
use crate::engine::Engine;
use crate::load::{HTTP_HANDLER_INTERFACE, Interfaces, LoadError, unsatisfied_import};
use crate::service::{self, ServiceImport, typecheck};
use std::collections::HashMap;
use std::sync::Arc;
use wasmtime::component::types::{ComponentInstance, ComponentItem};
use wasmtime::component::{Component, Linker};
use wasmtime_wasi_http::p2::bindings::ProxyPre;

/// A validated, compiled component, not yet linked to any deployment.
///
/// Cheap to clone; linking it for several deployments shares the code.
#[derive(Clone)]
pub struct CompiledComponent {
    pub(crate) engine: Engine,
    pub(crate) digest: Digest,
    pub(crate) component: Component,
    pub(crate) interfaces: Arc<Interfaces>,
}

/// What a deployment links its component with.
#[derive(Clone, Debug, Default)]
pub struct LinkPlan {
    /// The capabilities it was granted.
    pub grants: Grants,
    /// The services its imports are linked to.
    pub services: Vec<ServiceImport>,
}

impl CompiledComponent {
    /// The component's content digest.
    pub fn digest(&self) -> Digest {
        self.digest
    }

    /// What it imports and exports.
    pub fn interfaces(&self) -> &Interfaces {
        &self.interfaces
    }

    /// The imports that are neither WASI nor a platform capability: the
    /// service interfaces a deployment must link.
    pub fn service_imports(&self) -> Vec<String> {
        self.interfaces
            .imports
            .iter()
            .filter(|name| self.engine.capability_of(name).is_none() && !is_wasi(name))
            .cloned()
            .collect()
    }

    /// The interfaces it exports (instances, not bare functions): what a
    /// deployment can run. Refuses a component that exports none.
    pub fn require_runnable(&self) -> Result<Vec<String>, LoadError> {
        let engine = self.engine.wasmtime();
        let ty = self.component.component_type();
        let interfaces: Vec<String> = ty
            .exports(engine)
            .filter(|(_, item)| matches!(item.ty, ComponentItem::ComponentInstance(_)))
            .map(|(name, _)| name.to_owned())
            .collect();
        if interfaces.is_empty() {
            let exports = self.interfaces.exports.join(", ");
            return Err(LoadError::NothingToRun {
                exports: if exports.is_empty() {
                    "nothing".into()
                } else {
                    exports
                },
            });
        }
        Ok(interfaces)
    }

    /// The capabilities (by name) its imports need.
    pub fn needed_capabilities(&self) -> Vec<&'static str> {
        let mut names: Vec<_> = self
            .interfaces
            .imports
            .iter()
            .filter_map(|name| self.engine.capability_of(name))
            .filter(|(_, always)| !always)
            .map(|(name, _)| name)
            .collect();
        names.sort_unstable();
        names.dedup();
        names
    }

    /// Links the component for a deployment with `plan`.
    pub fn link(&self, plan: &LinkPlan) -> Result<LinkedComponent, LoadError> {
        let engine = self.engine.wasmtime();
        let ty = self.component.component_type();
        let mut linker: Option<Linker<_>> = None;
        for (name, item) in ty.imports(engine) {
            if let Some((capability, always)) = self.engine.capability_of(name) {
                if !always && !plan.grants.has(capability) {
                    return Err(LoadError::NotGranted {
                        interface: name.to_owned(),
                        capability: capability.to_owned(),
                    });
                }
                continue;
            }
            if let Some(import) = plan.services.iter().find(|s| s.interface == name) {
                let ComponentItem::ComponentInstance(imported) = &item.ty else {
                    return Err(LoadError::BadLink {
                        interface: name.to_owned(),
                        reason: "only interfaces can be linked".into(),
                    });
                };
                let exported =
                    import
                        .exporter
                        .exported_interface(name)
                        .ok_or_else(|| LoadError::BadLink {
                            interface: name.to_owned(),
                            reason: "the service does not export it".into(),
                        })?;
                typecheck::check_interface(engine, imported, &exported).map_err(|reason| {
                    LoadError::BadLink {
                        interface: name.to_owned(),
                        reason,
                    }
                })?;
                let linker = linker.get_or_insert_with(|| self.engine.linker().clone());
                service::define(linker, engine, imported, import).map_err(|err| {
                    LoadError::BadLink {
                        interface: name.to_owned(),
                        reason: format!("{err:#}"),
                    }
                })?;
                continue;
            }
            if !is_wasi(name) {
                return Err(LoadError::Unlinked {
                    interface: name.to_owned(),
                });
            }
        }
        let pre = linker
            .as_ref()
            .unwrap_or(self.engine.linker())
            .instantiate_pre(&self.component)
            .map_err(|err| unsatisfied_import(&err))?;
        let proxy = if self.exports_http() {
            Some(
                ProxyPre::new(pre.clone()).map_err(|err| LoadError::MissingHandler {
                    exports: format!("{err:#}"),
                })?,
            )
        } else {
            None
        };
        let settings = ComponentSettings::defaults(&self.engine);
        Ok(LinkedComponent {
            inner: Arc::new(Inner {
                engine: self.engine.clone(),
                digest: self.digest,
                pre,
                proxy,
                interfaces: self.interfaces.clone(),
                functions: Arc::new(self.exported_functions()),
                component: self.component.clone(),
                log_name: Arc::from(self.digest.to_string()),
                grants: plan.grants.clone(),
                settings,
            }),
        })
    }

    fn exports_http(&self) -> bool {
        let ty = self.component.component_type();
        ty.exports(self.engine.wasmtime()).any(|(name, item)| {
            name.starts_with(HTTP_HANDLER_INTERFACE)
                && matches!(item.ty, ComponentItem::ComponentInstance(_))
        })
    }

    /// Every function of every exported interface, by (interface, name).
    fn exported_functions(&self) -> HashMap<(String, String), ExportedFunction> {
        let engine = self.engine.wasmtime();
        let ty = self.component.component_type();
        let mut functions = HashMap::new();
        for (interface, item) in ty.exports(engine) {
            let ComponentItem::ComponentInstance(instance) = item.ty else {
                continue;
            };
            let Some(instance_index) = self.component.get_export_index(None, interface) else {
                continue;
            };
            for (name, item) in instance.exports(engine) {
                let ComponentItem::ComponentFunc(func) = item.ty else {
                    continue;
                };
                if let Some(index) = self.component.get_export_index(Some(&instance_index), name) {
                    functions.insert(
                        (interface.to_owned(), name.to_owned()),
                        ExportedFunction { index, ty: func },
                    );
                }
            }
        }
        functions
    }
}

impl CompiledComponent {
    /// The type of the exported interface `name`, if it is exported.
    pub fn exported_interface(&self, name: &str) -> Option<ComponentInstance> {
        let ty = self.component.component_type();
        match ty.get_export(self.engine.wasmtime(), name)?.ty {
            ComponentItem::ComponentInstance(instance) => Some(instance),
            _ => None,
        }
    }
}

/// Whether `name` is a WASI interface (provided by the base linker).
fn is_wasi(name: &str) -> bool {
    name.starts_with("wasi:")
}
