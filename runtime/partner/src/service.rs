//! The front door: [`OpenApi::handle`] turns a `POST /openapi` body into a
//! signed reply.
//!
//! The gateway owns the HTTP server; it reads the body (at most
//! [`crate::request::MAX_BODY_BYTES`]) and calls [`OpenApi::handle`] with the
//! `Content-Type` header. The platform side plugs in through two traits:
//! [`PartnerDirectory`] (who the partners are) and [`PartnerInvoker`] (how to
//! call a function of a deployed app).

use crate::codec::{decode_args, encode_results};
use crate::error::PartnerError;
use crate::keys::PlatformKey;
use crate::replay::{DEFAULT_REPLAY_CAPACITY, ReplayCache, ReplayLedger};
use crate::reply::{CODE_OK, response_object, signed_reply};
use crate::request::{PartnerRequest, parse_request};
use crate::sign::verify;
use bytes::Bytes;
use futures::future::BoxFuture;
use http::{HeaderValue, Response, StatusCode, header};
use rsa::RsaPublicKey;
use serde_json::Value as Json;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use wasmtime::component::Val;
use wasmtime::component::types::ComponentFunc;

/// A registered partner.
#[derive(Debug, Clone)]
pub struct PartnerInfo {
    /// The partner's id (the request's `app_id`).
    pub app_id: String,
    /// The tenant whose apps the partner calls.
    pub tenant: String,
    /// The partner's public key; requests must be signed with its private
    /// half.
    pub public_key: RsaPublicKey,
    /// The methods the partner may call, as `APP.FUNCTION`.
    pub exposed: Vec<String>,
}

/// Looks partners up by `app_id`.
pub trait PartnerDirectory: Send + Sync {
    /// The partner registered as `app_id`, if any.
    fn partner(&self, app_id: &str) -> Option<PartnerInfo>;
}

/// Why a call of a deployed function failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InvokeError {
    /// The app cannot serve now (not deployed, overloaded, draining): the
    /// partner may retry.
    #[error("unavailable: {0}")]
    Unavailable(String),
    /// The function trapped or failed.
    #[error("failed: {0}")]
    Failed(String),
    /// The function ran out of time.
    #[error("timed out")]
    Timeout,
}

/// Calls exported functions of a tenant's deployed apps.
pub trait PartnerInvoker: Send + Sync {
    /// The type of `function` exported by the current deployment of `app`,
    /// if there is such a function.
    fn function_type(&self, tenant: &str, app: &str, function: &str) -> Option<ComponentFunc>;

    /// Calls `function` with `args` (already checked against
    /// [`PartnerInvoker::function_type`]); resolves to its results.
    fn invoke(
        &self,
        tenant: &str,
        app: &str,
        function: &str,
        args: Vec<Val>,
    ) -> BoxFuture<'static, Result<Vec<Val>, InvokeError>>;
}

/// Tunables of [`OpenApi`].
#[derive(Debug, Clone)]
pub struct OpenApiConfig {
    /// How far a request's timestamp may be from the platform's clock, either
    /// way (default 5 minutes).
    pub window: Duration,
    /// How many recent requests the replay cache holds (default 100 000).
    pub replay_capacity: usize,
}

impl Default for OpenApiConfig {
    fn default() -> Self {
        Self {
            window: Duration::from_secs(300),
            replay_capacity: DEFAULT_REPLAY_CAPACITY,
        }
    }
}

/// A source of wall-clock time (injectable for tests).
pub type Clock = Arc<dyn Fn() -> SystemTime + Send + Sync>;

/// The partner API service.
pub struct OpenApi {
    directory: Arc<dyn PartnerDirectory>,
    invoker: Arc<dyn PartnerInvoker>,
    key: PlatformKey,
    window: Duration,
    replay: ReplayCache,
    /// The cluster's shared record of accepted requests, if any.
    ledger: Option<Arc<dyn ReplayLedger>>,
    clock: Clock,
}

impl std::fmt::Debug for OpenApi {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OpenApi")
            .field("window", &self.window)
            .field("replay", &self.replay)
            .finish_non_exhaustive()
    }
}

impl OpenApi {
    /// A service answering with `platform_key`'s signature.
    pub fn new(
        directory: Arc<dyn PartnerDirectory>,
        invoker: Arc<dyn PartnerInvoker>,
        platform_key: PlatformKey,
        config: OpenApiConfig,
    ) -> Self {
        Self {
            directory,
            invoker,
            key: platform_key,
            window: config.window,
            replay: ReplayCache::new(config.window.saturating_mul(2), config.replay_capacity),
            ledger: None,
            clock: Arc::new(SystemTime::now),
        }
    }

    /// Also records every accepted request in `ledger`, shared by the
    /// cluster's hosts, and refuses the ones it already holds.
    pub fn with_replay_ledger(mut self, ledger: Arc<dyn ReplayLedger>) -> Self {
        self.ledger = Some(ledger);
        self
    }

    /// Replaces the wall clock used for the timestamp window.
    pub fn with_clock(mut self, clock: Clock) -> Self {
        self.clock = clock;
        self
    }

    /// The public key partners verify replies with.
    pub fn platform_public_key(&self) -> &RsaPublicKey {
        self.key.public_key()
    }

    /// Handles one request body: always a signed JSON reply (see
    /// [`crate::reply`]), status 200 on success or the error's status.
    pub async fn handle(&self, content_type: Option<&str>, body: Bytes) -> Response<Bytes> {
        let (status, response) = match self.process(content_type, &body).await {
            Ok(result) => (StatusCode::OK, response_object(CODE_OK, "success", result)),
            Err(e) => (e.status(), response_object(e.code(), &e.to_string(), None)),
        };
        let (status, body) = match signed_reply(self.key.private_key(), &response) {
            Ok(body) => (status, body),
            Err(e) => {
                tracing::error!(error = %e, "cannot sign a partner API reply");
                (
                    StatusCode::INTERNAL_SERVER_ERROR,
                    Bytes::from_static(
                        br#"{"response":{"code":"service-error","msg":"reply signing failed"}}"#,
                    ),
                )
            }
        };
        let mut reply = Response::new(body);
        *reply.status_mut() = status;
        reply.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json; charset=utf-8"),
        );
        reply
    }

    /// The steps of [`OpenApi::handle`], in order: parse, find the partner,
    /// verify the signature, check the timestamp window, check and record
    /// against replays, check the method is exposed and exists, decode
    /// `biz_content`, invoke, encode the result.
    async fn process(
        &self,
        content_type: Option<&str>,
        body: &[u8],
    ) -> Result<Option<Json>, PartnerError> {
        let request = parse_request(content_type, body)?;
        let outcome = self.authorised_call(&request).await;
        match &outcome {
            Ok(_) => {
                tracing::debug!(app_id = %request.app_id, method = %request.method, "partner call")
            }
            Err(e) => tracing::info!(
                app_id = %request.app_id,
                method = %request.method,
                code = e.code(),
                "partner request refused"
            ),
        }
        outcome
    }

    async fn authorised_call(
        &self,
        request: &PartnerRequest,
    ) -> Result<Option<Json>, PartnerError> {
        let partner = self
            .directory
            .partner(&request.app_id)
            .ok_or_else(|| PartnerError::UnknownPartner(request.app_id.clone()))?;
        verify(&partner.public_key, &request.fields, &request.sign)
            .map_err(|_| PartnerError::BadSignature)?;
        self.check_window(request.timestamp_ms)?;
        self.replay
            .check_and_record(&request.app_id, &request.sign, Instant::now())?;
        if let Some(ledger) = &self.ledger {
            let key = ReplayCache::request_key(&request.app_id, &request.sign);
            ledger.record(key, self.window.saturating_mul(2)).await?;
        }
        let not_exposed = || PartnerError::MethodNotExposed(request.method.clone());
        if !partner.exposed.contains(&request.method) {
            return Err(not_exposed());
        }
        let func = self
            .invoker
            .function_type(&partner.tenant, &request.app, &request.function)
            .ok_or_else(not_exposed)?;
        let args = decode_args(&func, &request.biz_content)
            .map_err(|e| PartnerError::BadBizContent(e.to_string()))?;
        let results = self
            .invoker
            .invoke(&partner.tenant, &request.app, &request.function, args)
            .await
            .map_err(|e| {
                tracing::warn!(tenant = %partner.tenant, method = %request.method, error = %e, "partner call failed");
                match e {
                    InvokeError::Unavailable(_) => {
                        PartnerError::ServiceUnavailable("the app is unavailable; retry later".into())
                    }
                    InvokeError::Failed(_) => PartnerError::ServiceError("the function failed".into()),
                    InvokeError::Timeout => PartnerError::ServiceError("the function timed out".into()),
                }
            })?;
        encode_results(&func, &results).map_err(|e| {
            tracing::warn!(tenant = %partner.tenant, method = %request.method, error = %e, "partner call returned an unencodable value");
            PartnerError::ServiceError("the function returned a value that cannot be written as JSON".into())
        })
    }

    fn check_window(&self, timestamp_ms: i64) -> Result<(), PartnerError> {
        let now_ms = match (self.clock)().duration_since(UNIX_EPOCH) {
            Ok(d) => i64::try_from(d.as_millis()).unwrap_or(i64::MAX),
            Err(_) => 0,
        };
        let window_ms = i64::try_from(self.window.as_millis()).unwrap_or(i64::MAX);
        if now_ms.abs_diff(timestamp_ms) > window_ms.unsigned_abs() {
            return Err(PartnerError::StaleTimestamp {
                window_secs: self.window.as_secs(),
            });
        }
        Ok(())
    }
}
