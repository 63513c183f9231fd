//! `/v1/packages`: upload and list packages.
//!
//! An upload streams to the package store (digest computed, size capped),
//! is validated and compiled once by the engine (the compiled code lands in
//! the cache the reconciler reads), and only then registered in the
//! replicated state. A rejected upload leaves nothing behind.

use crate::auth::{Action, Principal};
use crate::error::ApiError;
use crate::extract::Tenant;
use crate::wire::PackageInfo;
use crate::{ApiContext, now_ms};
use axum::Json;
use axum::body::Body;
use axum::extract::State;
use cloudware_node::PutError;
use cloudware_state::{Command, Outcome, Package, PackageRegistration};
use futures::TryStreamExt;
use http::{HeaderMap, StatusCode};
use std::sync::Arc;

/// `POST /v1/packages`: the body is the `.wasm` file. Any refusal before the
/// package is stored (a bad token or role, an unknown tenant, too large)
/// drains the upload first, so the client reads the refusal rather than a
/// broken pipe.
pub async fn push(
    State(context): State<Arc<ApiContext>>,
    principal: Result<Principal, ApiError>,
    requested: Result<Tenant, ApiError>,
    headers: HeaderMap,
    body: Body,
) -> Result<(StatusCode, Json<PackageInfo>), ApiError> {
    let mut upload = body.into_data_stream().map_err(|err| err.to_string());
    let admitted = (|| {
        let principal = principal?;
        principal.require(Action::ChangeApps)?;
        let Tenant(requested) = requested?;
        let tenant = principal.tenant_for(requested.as_deref())?;
        if context
            .control
            .read(|state| state.tenant(&tenant).is_none())
        {
            return Err(ApiError::NotFound(format!("no tenant `{tenant}`")));
        }
        Ok(tenant)
    })();
    let tenant = match admitted {
        Ok(tenant) => tenant,
        Err(err) => {
            // No more than a package may be: a refused caller gets no bigger sink.
            drain(&mut upload, context.limits.max_package_size).await;
            return Err(err);
        }
    };
    let declared = headers
        .get(http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    let stored = match context
        .packages
        .put(&mut upload, declared, context.limits.max_package_size)
        .await
    {
        Ok(stored) => stored,
        Err(err @ PutError::TooLarge { .. }) => {
            drain(&mut upload, DRAIN_BYTES).await;
            return Err(err.into());
        }
        Err(err) => return Err(err.into()),
    };

    let bytes = context
        .packages
        .read(&stored.digest)
        .await
        .map_err(|err| ApiError::Internal(format!("cannot read the stored package: {err}")))?;
    let engine = context.engine.clone();
    let validated = tokio::task::spawn_blocking(move || {
        let compiled = engine.compile(&bytes)?;
        compiled.require_runnable()?;
        Ok::<_, cloudware_engine::LoadError>(compiled)
    })
    .await
    .map_err(|err| ApiError::Internal(format!("validation failed: {err}")))?;
    let component = match validated {
        Ok(component) => component,
        Err(err) => {
            let registered = context
                .control
                .read(|state| state.package(&stored.digest.to_string()).is_some());
            if !stored.existed && !registered {
                let _ = context.packages.remove(&stored.digest).await;
            }
            return Err(ApiError::BadRequest(format!(
                "the package was rejected: {err}"
            )));
        }
    };
    context.reconciler.remember(&component);
    let interfaces = component.interfaces().clone();
    let outcome = context
        .control
        .propose(Command::RegisterPackage {
            digest: stored.digest.to_string(),
            tenant,
            size: stored.size,
            imports: interfaces.imports.clone(),
            exports: interfaces.exports.clone(),
            at: now_ms(),
        })
        .await?;
    let already = matches!(
        outcome,
        Outcome::PackageRegistered {
            registration: PackageRegistration::AlreadyPresent
        }
    );
    let status = if already {
        StatusCode::OK
    } else {
        StatusCode::CREATED
    };
    Ok((
        status,
        Json(PackageInfo {
            digest: stored.digest.to_string(),
            size: stored.size,
            imports: interfaces.imports,
            exports: interfaces.exports,
            existed: already,
        }),
    ))
}

/// At most this much of a refused upload is read and discarded.
const DRAIN_BYTES: u64 = 256 * 1024 * 1024;
/// For at most this long.
const DRAIN_TIME: std::time::Duration = std::time::Duration::from_secs(10);

/// Reads and discards what is left of a refused upload (at most `limit`
/// bytes and [`DRAIN_TIME`]), so that the client finishes sending and reads
/// the refusal instead of running into a closed connection.
async fn drain<S>(upload: &mut S, limit: u64)
where
    S: futures::Stream<Item = Result<bytes::Bytes, String>> + Unpin,
{
    use futures::StreamExt;
    let deadline = tokio::time::Instant::now() + DRAIN_TIME;
    let mut drained = 0u64;
    while let Ok(Some(Ok(chunk))) = tokio::time::timeout_at(deadline, upload.next()).await {
        drained += chunk.len() as u64;
        if drained > limit {
            break;
        }
    }
}

/// `GET /v1/packages`: the tenant's packages (every package for operators
/// without `?tenant=`).
pub async fn list(
    State(context): State<Arc<ApiContext>>,
    principal: Principal,
    Tenant(requested): Tenant,
) -> Result<Json<Vec<PackageInfo>>, ApiError> {
    principal.require(Action::Read)?;
    let scope = principal.scope(requested.as_deref())?;
    let packages = context.control.read(|state| {
        let info = |p: &Package| PackageInfo {
            digest: p.digest.clone(),
            size: p.size,
            imports: p.imports.clone(),
            exports: p.exports.clone(),
            existed: true,
        };
        match &scope {
            Some(tenant) => state.packages_of(tenant).map(info).collect(),
            None => state.packages().map(info).collect(),
        }
    });
    Ok(Json(packages))
}
