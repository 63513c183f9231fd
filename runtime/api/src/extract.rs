//! Request extractors whose failures are API errors with clear messages.

use crate::error::ApiError;
use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{FromRequest, FromRequestParts, Request};
use http::request::Parts;
use serde::de::DeserializeOwned;

/// A JSON body; malformed JSON and unknown fields are 400s naming the problem.
pub struct JsonBody<T>(pub T);

/// The largest JSON body accepted.
const MAX_JSON: usize = 1024 * 1024;

impl<S, T> FromRequest<S> for JsonBody<T>
where
    S: Send + Sync,
    T: DeserializeOwned,
{
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, Self::Rejection> {
        let request = request.map(|body| axum::body::Body::new(http_body_util_limited(body)));
        match axum::Json::<T>::from_request(request, state).await {
            Ok(axum::Json(value)) => Ok(JsonBody(value)),
            Err(rejection) => Err(json_error(rejection)),
        }
    }
}

fn http_body_util_limited(body: axum::body::Body) -> http_body_util::Limited<axum::body::Body> {
    http_body_util::Limited::new(body, MAX_JSON)
}

fn json_error(rejection: JsonRejection) -> ApiError {
    let text = rejection.body_text();
    if text.contains("length limit") {
        return ApiError::PayloadTooLarge(format!("the JSON body exceeds {MAX_JSON} bytes"));
    }
    ApiError::BadRequest(text)
}

/// Query parameters of tenant-scoped calls.
#[derive(Debug, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TenantQuery {
    /// The tenant to act on (operators; others may repeat their own).
    pub tenant: Option<String>,
}

/// `?tenant=…`, strictly parsed.
pub struct Tenant(pub Option<String>);

impl<S: Send + Sync> FromRequestParts<S> for Tenant {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        match axum::extract::Query::<TenantQuery>::from_request_parts(parts, state).await {
            Ok(query) => Ok(Tenant(query.0.tenant)),
            Err(rejection) => Err(query_error(rejection)),
        }
    }
}

fn query_error(rejection: QueryRejection) -> ApiError {
    ApiError::BadRequest(rejection.body_text())
}
