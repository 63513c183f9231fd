//! The partner API's view of this node: partners from the replicated state,
//! calls into the current deployments' exported functions, and (in a
//! cluster) the record of accepted requests every host shares.

use crate::control::{ControlPlane, ProposeFailure};
use crate::router::NodeRouter;
use cloudware_engine::{CallError, CallOrigin};
use cloudware_partner::{
    InvokeError, PartnerDirectory, PartnerError, PartnerInfo, PartnerInvoker, ReplayLedger,
    parse_public_key,
};
use cloudware_state::{Command, CommandError};
use futures::future::BoxFuture;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use wasmtime::component::Val;
use wasmtime::component::types::ComponentFunc;

/// Partners as registered in the desired state.
pub struct StatePartners {
    control: Arc<ControlPlane>,
}

impl StatePartners {
    /// Partners read from `control`.
    pub fn new(control: Arc<ControlPlane>) -> Self {
        StatePartners { control }
    }
}

impl PartnerDirectory for StatePartners {
    fn partner(&self, app_id: &str) -> Option<PartnerInfo> {
        let partner = self.control.read(|state| state.partner(app_id).cloned())?;
        let public_key = match parse_public_key(&partner.public_key) {
            Ok(key) => key,
            Err(err) => {
                tracing::warn!(app_id, error = %err, "a registered partner's key does not parse");
                return None;
            }
        };
        Some(PartnerInfo {
            app_id: partner.app_id,
            tenant: partner.tenant,
            public_key,
            exposed: partner.methods,
        })
    }
}

/// Accepted partner requests recorded in the replicated state
/// ([`Command::RecordPartnerRequest`]): one raft write per accepted request,
/// so a replay is refused whichever host it reaches.
pub struct ReplicatedReplayLedger {
    control: Arc<ControlPlane>,
}

impl ReplicatedReplayLedger {
    /// A ledger in `control`'s state.
    pub fn new(control: Arc<ControlPlane>) -> Self {
        ReplicatedReplayLedger { control }
    }
}

impl ReplayLedger for ReplicatedReplayLedger {
    fn record(&self, key: [u8; 32], ttl: Duration) -> BoxFuture<'static, Result<(), PartnerError>> {
        let control = self.control.clone();
        Box::pin(async move {
            let at = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
            let ttl = u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX).max(1);
            let command = Command::RecordPartnerRequest {
                key: hex::encode(key),
                at,
                expires_at: at.saturating_add(ttl),
            };
            match control.propose(command).await {
                Ok(_) => Ok(()),
                Err(ProposeFailure::Rejected(CommandError::PartnerRequestReplayed)) => {
                    Err(PartnerError::Replayed)
                }
                Err(err) => {
                    tracing::warn!(%err, "cannot record a partner request");
                    Err(PartnerError::ServiceUnavailable(
                        "the platform cannot take requests now; retry later".into(),
                    ))
                }
            }
        })
    }
}

/// Calls exported functions of the apps this node routes.
pub struct RoutedFunctions {
    router: Arc<NodeRouter>,
}

impl RoutedFunctions {
    /// Calls through `router`'s published components.
    pub fn new(router: Arc<NodeRouter>) -> Self {
        RoutedFunctions { router }
    }
}

impl PartnerInvoker for RoutedFunctions {
    fn function_type(&self, tenant: &str, app: &str, function: &str) -> Option<ComponentFunc> {
        let component = self.router.component(tenant, app)?;
        component.find_function(function).map(|(_, ty)| ty)
    }

    fn invoke(
        &self,
        tenant: &str,
        app: &str,
        function: &str,
        args: Vec<Val>,
    ) -> BoxFuture<'static, Result<Vec<Val>, InvokeError>> {
        let component = self.router.component(tenant, app);
        let function = function.to_owned();
        let app = app.to_owned();
        Box::pin(async move {
            let component = component
                .ok_or_else(|| InvokeError::Unavailable(format!("app `{app}` is not running")))?;
            let (interface, _) = component
                .find_function(&function)
                .ok_or_else(|| InvokeError::Unavailable(format!("`{function}` is not exported")))?;
            component
                .call(
                    &interface,
                    &function,
                    args,
                    CallOrigin::external(),
                    Default::default(),
                )
                .await
                .map_err(|err| match err {
                    CallError::DeadlineExceeded(_) => InvokeError::Timeout,
                    CallError::Overloaded(_) | CallError::Unavailable(_) => {
                        InvokeError::Unavailable(err.to_string())
                    }
                    other => InvokeError::Failed(other.to_string()),
                })
        })
    }
}
