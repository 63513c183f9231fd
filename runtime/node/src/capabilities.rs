//! The capabilities this node offers, in one place: the engine's host
//! interfaces, the checking (and sealing) of a deployment's grant sections
//! before they are proposed, and the [`Grants`] a current deployment runs
//! with.
//!
//! Adding a capability means a crate under `runtime/capabilities/` and a
//! few lines here: its engine capability, its section parser, its grant.

use cloudware_bus::{Bus, BusConfig, QueueId, Subscription};
use cloudware_cap_config::{ConfigCapability, ConfigGrant, SecretKey};
use cloudware_cap_keyvalue::{
    KeyValueCapability, KeyValueGrant, KvBackend, KvGrantSection as KvSection,
};
use cloudware_cap_logging::{LogSource, LoggingCapability};
use cloudware_cap_messaging::MessageBus;
use cloudware_cap_messaging::{
    ConsumerSpec, MessagesTypes, QueuesCapability, QueuesGrant, QueuesSection, TopicsCapability,
    TopicsGrant, TopicsSection,
};
use cloudware_engine::{Capability, Grants};
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

/// The section names a deployment's grant may have.
pub const SECTIONS: &[&str] = &["keyvalue", "queues", "topics", "secrets", "services"];

/// Why a grant section was refused, for the API's 400.
#[derive(Debug, thiserror::Error)]
#[error("capability `{capability}`: {reason}")]
pub struct GrantError {
    /// The section.
    pub capability: String,
    /// What is wrong.
    pub reason: String,
}

fn refuse(capability: &str, reason: impl ToString) -> GrantError {
    GrantError {
        capability: capability.to_owned(),
        reason: reason.to_string(),
    }
}

/// The node's capability backends.
#[derive(Clone)]
pub struct NodeCapabilities {
    secrets: SecretKey,
    bus: Arc<dyn MessageBus>,
    kv: Arc<dyn KvBackend>,
}

/// The service links of a deployment: imported interface → exporting app
/// (of the same tenant).
pub type ServiceLinks = BTreeMap<String, String>;

impl NodeCapabilities {
    /// Opens the backends under `data_dir`: the secret key, the bus and
    /// the key-value store (`kv` if given, else embedded sled).
    pub async fn open(data_dir: &Path, kv: Option<Arc<dyn KvBackend>>) -> Result<Self, String> {
        Self::open_with_bus(data_dir, kv, None).await
    }

    /// [`NodeCapabilities::open`] with `bus` as the message bus (a cluster's replicated
    /// bus) instead of the local one in `data_dir/bus`.
    pub async fn open_with_bus(
        data_dir: &Path,
        kv: Option<Arc<dyn KvBackend>>,
        bus: Option<Arc<dyn MessageBus>>,
    ) -> Result<Self, String> {
        let secrets = SecretKey::load_or_create(&data_dir.join("secrets.key"))
            .map_err(|err| err.to_string())?;
        let bus = match bus {
            Some(bus) => bus,
            None => Arc::new(
                Bus::open(&data_dir.join("bus"), BusConfig::default())
                    .map_err(|err| format!("cannot open the message bus: {err}"))?,
            ),
        };
        let kv = match kv {
            Some(kv) => kv,
            None => cloudware_cap_keyvalue::KvConfig::default()
                .open(data_dir)
                .await
                .map_err(|err| format!("cannot open the key-value store: {err}"))?,
        };
        Ok(NodeCapabilities { secrets, bus, kv })
    }

    /// The node's bus.
    pub fn bus(&self) -> &Arc<dyn MessageBus> {
        &self.bus
    }

    /// The host interfaces to build the engine with.
    pub fn engine_capabilities() -> Vec<Arc<dyn Capability>> {
        vec![
            Arc::new(ConfigCapability),
            Arc::new(LoggingCapability),
            Arc::new(MessagesTypes),
            Arc::new(QueuesCapability),
            Arc::new(TopicsCapability),
            Arc::new(KeyValueCapability),
        ]
    }

    /// Checks a deployment's grant sections before they are proposed, and
    /// seals its secrets: the result is what the raft log stores.
    pub fn prepare(
        &self,
        tenant: &str,
        app: &str,
        sections: &BTreeMap<String, Value>,
    ) -> Result<BTreeMap<String, Value>, GrantError> {
        let mut prepared = BTreeMap::new();
        for (name, section) in sections {
            let value = match name.as_str() {
                "keyvalue" => {
                    KvSection::parse(section).map_err(|err| refuse(name, err))?;
                    section.clone()
                }
                "queues" => {
                    QueuesSection::parse(section).map_err(|err| refuse(name, err))?;
                    section.clone()
                }
                "topics" => {
                    TopicsSection::parse(section).map_err(|err| refuse(name, err))?;
                    section.clone()
                }
                "services" => {
                    parse_links(section).map_err(|err| refuse(name, err))?;
                    section.clone()
                }
                "secrets" => self.seal(tenant, app, section)?,
                other => {
                    return Err(refuse(
                        other,
                        format!("unknown capability; known: {}", SECTIONS.join(", ")),
                    ));
                }
            };
            prepared.insert(name.clone(), value);
        }
        Ok(prepared)
    }

    fn seal(&self, tenant: &str, app: &str, section: &Value) -> Result<Value, GrantError> {
        let Some(values) = section.as_object() else {
            return Err(refuse("secrets", "must be an object of name: value"));
        };
        let mut sealed = serde_json::Map::new();
        for (name, value) in values {
            let Some(value) = value.as_str() else {
                return Err(refuse("secrets", format!("`{name}` must be a string")));
            };
            cloudware_state::validation::check_config_key(name)
                .map_err(|err| refuse("secrets", err))?;
            let place = format!("{tenant}/{app}/{name}");
            sealed.insert(
                name.clone(),
                Value::String(self.secrets.seal(&place, value)),
            );
        }
        Ok(Value::Object(sealed))
    }

    /// What a deployment runs with: its config and secrets, logging, and
    /// the capabilities its sections grant.
    pub fn grants(
        &self,
        tenant: &str,
        app: &str,
        config: &BTreeMap<String, String>,
        sections: &BTreeMap<String, Value>,
    ) -> Result<Grants, GrantError> {
        let mut secrets = BTreeMap::new();
        if let Some(Value::Object(sealed)) = sections.get("secrets") {
            for (name, value) in sealed {
                let place = format!("{tenant}/{app}/{name}");
                let opened = self
                    .secrets
                    .open(&place, value.as_str().unwrap_or_default())
                    .map_err(|err| refuse("secrets", err))?;
                secrets.insert(name.clone(), opened);
            }
        }
        let mut grants = Grants::builder()
            .grant("config", ConfigGrant::new(config, secrets))
            .grant(
                "logging",
                LogSource {
                    app: Arc::from(format!("{tenant}/{app}")),
                },
            );
        if let Some(section) = sections.get("keyvalue") {
            let kv = KvSection::parse(section).map_err(|err| refuse("keyvalue", err))?;
            grants = grants.grant(
                "keyvalue",
                KeyValueGrant {
                    tenant: tenant.to_owned(),
                    buckets: kv.buckets,
                    backend: self.kv.clone(),
                },
            );
        }
        if let Some(section) = sections.get("queues") {
            let queues = QueuesSection::parse(section).map_err(|err| refuse("queues", err))?;
            if !queues.send.is_empty() {
                grants = grants.grant(
                    "queues",
                    QueuesGrant {
                        tenant: tenant.to_owned(),
                        send: queues.send.into_iter().collect(),
                        bus: self.bus.clone(),
                    },
                );
            }
        }
        if let Some(section) = sections.get("topics") {
            let topics = TopicsSection::parse(section).map_err(|err| refuse("topics", err))?;
            if !topics.publish.is_empty() {
                grants = grants.grant(
                    "topics",
                    TopicsGrant {
                        tenant: tenant.to_owned(),
                        publish: topics.publish.into_iter().collect(),
                        bus: self.bus.clone(),
                    },
                );
            }
        }
        Ok(grants.build())
    }

    /// The consumers and subscriptions of one current deployment.
    pub fn consumers(
        &self,
        tenant: &str,
        app: &str,
        sections: &BTreeMap<String, Value>,
    ) -> (Vec<ConsumerSpec>, Vec<Subscription>) {
        let defaults = self.bus.policy(&QueueId::queue(tenant, ""));
        let mut consumers = Vec::new();
        let mut subscriptions = Vec::new();
        if let Some(Ok(queues)) = sections.get("queues").map(QueuesSection::parse) {
            for consume in queues.consume {
                consumers.push(ConsumerSpec {
                    queue: QueueId::queue(tenant, &consume.queue),
                    tenant: tenant.to_owned(),
                    app: app.to_owned(),
                    policy: consume.policy(&defaults),
                    concurrency: consume.concurrency.unwrap_or(4),
                });
            }
        }
        if let Some(Ok(topics)) = sections.get("topics").map(TopicsSection::parse) {
            for subscribe in topics.subscribe {
                let subscription = Subscription {
                    tenant: tenant.to_owned(),
                    topic: subscribe.topic.clone(),
                    subscriber: app.to_owned(),
                    filter: subscribe.filter.clone(),
                };
                consumers.push(ConsumerSpec {
                    queue: subscription.queue_id(),
                    tenant: tenant.to_owned(),
                    app: app.to_owned(),
                    policy: subscribe.policy(&defaults),
                    concurrency: 4,
                });
                subscriptions.push(subscription);
            }
        }
        (consumers, subscriptions)
    }
}

/// The `cloudware deploy` flag that grants capability `name`.
pub fn grant_flag(name: &str) -> &'static str {
    match name {
        "keyvalue" => "--kv-bucket NAME",
        "queues" => "--send-queue QUEUE",
        "topics" => "--publish TOPIC",
        _ => "--capabilities FILE",
    }
}

/// The `services` section: `{"links": {"acme:orders/api@1.0.0": "orders"}}`.
pub fn parse_links(section: &Value) -> Result<ServiceLinks, String> {
    #[derive(serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Section {
        #[serde(default)]
        links: ServiceLinks,
    }
    let parsed: Section = serde_json::from_value(section.clone()).map_err(|err| err.to_string())?;
    for (interface, app) in &parsed.links {
        if !interface.contains(':') || !interface.contains('/') || interface.starts_with("wasi:") {
            return Err(format!(
                "`{interface}` is not a linkable interface (namespace:package/interface[@version], not wasi:)"
            ));
        }
        cloudware_state::validation::check_name(cloudware_state::NameKind::App, app)
            .map_err(|err| err.to_string())?;
    }
    Ok(parsed.links)
}

/// The links of a deployment's sections (none if it has no `services`).
pub fn links_of(sections: &BTreeMap<String, Value>) -> ServiceLinks {
    sections
        .get("services")
        .and_then(|section| parse_links(section).ok())
        .unwrap_or_default()
}
