//! The host side of `cloudware:platform/queues` and
//! `cloudware:platform/topics`: a send or publish is checked against the
//! deployment's grant, then stored durably on the bus before it returns.

use crate::backend::MessageBus;
use cloudware_bus::{NewMessage, QueueId, SendError as BusSendError};
use cloudware_engine::Capability;
use cloudware_engine::http::RequestState;
use std::collections::BTreeSet;
use std::sync::Arc;
use wasmtime::component::{HasData, Linker};

mod bindings {
    wasmtime::component::bindgen!({
        path: "../../../wit",
        world: "cloudware:platform/imports",
        imports: { default: async | trappable },
    });
}

use bindings::cloudware::platform::messages::SendError;
use bindings::cloudware::platform::{queues, topics};

/// The queues interface.
pub const QUEUES_INTERFACE: &str = "cloudware:platform/queues@0.1.0";
/// The topics interface.
pub const TOPICS_INTERFACE: &str = "cloudware:platform/topics@0.1.0";
/// The messages interface (types only), which both use.
pub const MESSAGES_INTERFACE: &str = "cloudware:platform/messages@0.1.0";

/// Sending to queues.
pub struct QueuesCapability;

/// Publishing to topics.
pub struct TopicsCapability;

/// What a deployment may send to.
pub struct QueuesGrant {
    /// The deployment's tenant (queues are per tenant).
    pub tenant: String,
    /// Queues it may send to.
    pub send: BTreeSet<String>,
    /// The node's bus.
    pub bus: Arc<dyn MessageBus>,
}

/// What a deployment may publish to.
pub struct TopicsGrant {
    /// The deployment's tenant (topics are per tenant).
    pub tenant: String,
    /// Topics it may publish to.
    pub publish: BTreeSet<String>,
    /// The node's bus.
    pub bus: Arc<dyn MessageBus>,
}

impl Capability for QueuesCapability {
    fn name(&self) -> &'static str {
        "queues"
    }

    fn interfaces(&self) -> &'static [&'static str] {
        &[QUEUES_INTERFACE]
    }

    fn add_to_linker(&self, linker: &mut Linker<RequestState>) -> wasmtime::Result<()> {
        queues::add_to_linker::<RequestState, QueuesData>(linker, |state| QueuesView {
            grant: state.capability::<QueuesGrant>().grant,
        })
    }
}

impl Capability for TopicsCapability {
    fn name(&self) -> &'static str {
        "topics"
    }

    fn interfaces(&self) -> &'static [&'static str] {
        &[TOPICS_INTERFACE]
    }

    fn add_to_linker(&self, linker: &mut Linker<RequestState>) -> wasmtime::Result<()> {
        topics::add_to_linker::<RequestState, TopicsData>(linker, |state| TopicsView {
            grant: state.capability::<TopicsGrant>().grant,
        })
    }
}

/// The types-only `messages` interface may be imported by anyone: it is
/// granted with either capability's interfaces.
pub struct MessagesTypes;

impl Capability for MessagesTypes {
    fn name(&self) -> &'static str {
        "messages"
    }

    fn interfaces(&self) -> &'static [&'static str] {
        &[MESSAGES_INTERFACE]
    }

    fn add_to_linker(&self, linker: &mut Linker<RequestState>) -> wasmtime::Result<()> {
        bindings::cloudware::platform::messages::add_to_linker::<RequestState, MessagesData>(
            linker,
            |_| TypesOnly,
        )
    }

    fn always_granted(&self) -> bool {
        true
    }
}

struct QueuesData;
impl HasData for QueuesData {
    type Data<'a> = QueuesView<'a>;
}

struct QueuesView<'a> {
    grant: Option<&'a QueuesGrant>,
}

struct TopicsData;
impl HasData for TopicsData {
    type Data<'a> = TopicsView<'a>;
}

struct TopicsView<'a> {
    grant: Option<&'a TopicsGrant>,
}

struct MessagesData;
impl HasData for MessagesData {
    type Data<'a> = TypesOnly;
}

/// The `messages` interface has types and no functions.
struct TypesOnly;

impl bindings::cloudware::platform::messages::Host for TypesOnly {}

fn send_error(err: BusSendError) -> SendError {
    match err {
        BusSendError::Full { .. } => SendError::Full(err.to_string()),
        BusSendError::TooLarge { limit, .. } => SendError::TooLarge(limit as u64),
        other => SendError::Unavailable(other.to_string()),
    }
}

impl queues::Host for QueuesView<'_> {
    async fn send(
        &mut self,
        queue: String,
        payload: Vec<u8>,
        attributes: Vec<(String, String)>,
    ) -> wasmtime::Result<Result<u64, SendError>> {
        let Some(grant) = self.grant.filter(|grant| grant.send.contains(&queue)) else {
            return Ok(Err(SendError::NotGranted(format!(
                "this deployment may not send to queue `{queue}`"
            ))));
        };
        let bus = grant.bus.clone();
        let id = QueueId::queue(&grant.tenant, queue);
        let message = NewMessage {
            payload,
            attributes,
        };
        Ok(bus.send(&id, message).await.map_err(send_error))
    }
}

impl topics::Host for TopicsView<'_> {
    async fn publish(
        &mut self,
        topic: String,
        payload: Vec<u8>,
        attributes: Vec<(String, String)>,
    ) -> wasmtime::Result<Result<u32, SendError>> {
        let Some(grant) = self.grant.filter(|grant| grant.publish.contains(&topic)) else {
            return Ok(Err(SendError::NotGranted(format!(
                "this deployment may not publish to topic `{topic}`"
            ))));
        };
        let bus = grant.bus.clone();
        let message = NewMessage {
            payload,
            attributes,
        };
        Ok(bus
            .publish(&grant.tenant, &topic, message)
            .await
            .map(|receipt| receipt.delivered_to)
            .map_err(send_error))
    }
}
