//! `/v1/queues`: what operators and developers see of the durable queues:
//! depth, in-flight and dead-letter counts, the dead letters themselves,
//! and replaying them. A topic subscription's backlog is the queue named
//! `TOPIC@SUBSCRIBER`.

use crate::ApiContext;
use crate::auth::{Action, Principal};
use crate::error::ApiError;
use crate::extract::{JsonBody, Tenant};
use crate::wire::{DeadLetterInfo, QueueInfo, Replay, Replayed};
use axum::Json;
use axum::extract::{Path, Query, State};
use cloudware_bus::{QueueId, QueueKind};
use std::sync::Arc;

/// The name a queue is shown and addressed by.
fn queue_name(id: &QueueId) -> String {
    match &id.kind {
        QueueKind::Queue { name } => name.clone(),
        QueueKind::Subscription { topic, subscriber } => format!("{topic}@{subscriber}"),
    }
}

fn queue_id(tenant: &str, name: &str) -> QueueId {
    match name.split_once('@') {
        Some((topic, subscriber)) => QueueId::subscription(tenant, topic, subscriber),
        None => QueueId::queue(tenant, name),
    }
}

/// `GET /v1/queues`.
pub async fn list(
    State(context): State<Arc<ApiContext>>,
    principal: Principal,
    Tenant(requested): Tenant,
) -> Result<Json<Vec<QueueInfo>>, ApiError> {
    principal.require(Action::Read)?;
    let scope = principal.scope(requested.as_deref())?;
    let bus = context.reconciler.capabilities().bus();
    let queues = bus
        .queues(scope.as_deref())
        .into_iter()
        .map(|(id, stats)| QueueInfo {
            tenant: id.tenant.clone(),
            queue: queue_name(&id),
            depth: stats.depth,
            ready: stats.ready,
            delayed: stats.delayed,
            in_flight: stats.in_flight,
            dead: stats.dead,
            sent_total: stats.sent_total,
        })
        .collect();
    Ok(Json(queues))
}

/// Paging of dead letters.
#[derive(serde::Deserialize)]
pub struct Page {
    after: Option<u64>,
    limit: Option<usize>,
}

/// `GET /v1/queues/{queue}/dead-letters`.
pub async fn dead_letters(
    State(context): State<Arc<ApiContext>>,
    principal: Principal,
    Tenant(requested): Tenant,
    Path(queue): Path<String>,
    Query(page): Query<Page>,
) -> Result<Json<Vec<DeadLetterInfo>>, ApiError> {
    principal.require(Action::Read)?;
    let tenant = principal.tenant_for(requested.as_deref())?;
    let bus = context.reconciler.capabilities().bus();
    let letters = bus
        .dead_letters(
            &queue_id(&tenant, &queue),
            page.after,
            page.limit.unwrap_or(100).min(1000),
        )
        .map_err(|err| ApiError::Internal(err.to_string()))?
        .into_iter()
        .map(|letter| DeadLetterInfo {
            id: letter.id,
            payload: String::from_utf8_lossy(&letter.payload).into_owned(),
            attributes: letter.attributes,
            attempts: letter.attempts,
            last_error: letter.last_error,
            dead_at: letter.dead_at_ms,
        })
        .collect();
    Ok(Json(letters))
}

/// `POST /v1/queues/{queue}/replay`: moves dead letters (all, or `ids`)
/// back into the queue.
pub async fn replay(
    State(context): State<Arc<ApiContext>>,
    principal: Principal,
    Tenant(requested): Tenant,
    Path(queue): Path<String>,
    JsonBody(request): JsonBody<Replay>,
) -> Result<Json<Replayed>, ApiError> {
    principal.require(Action::ChangeApps)?;
    let tenant = principal.tenant_for(requested.as_deref())?;
    let bus = context.reconciler.capabilities().bus();
    let replayed = bus
        .replay(&queue_id(&tenant, &queue), request.ids.as_deref())
        .await
        .map_err(|err| ApiError::Internal(err.to_string()))?;
    Ok(Json(Replayed { replayed }))
}
