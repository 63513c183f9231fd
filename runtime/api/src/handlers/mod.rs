//! The API's handlers, one module per resource.

pub mod apps;
pub mod nodes;
pub mod packages;
pub mod partners;
pub mod queues;
pub mod status;
pub mod tenants;
pub mod tokens;

use crate::error::ApiError;

/// Any path the API does not have.
pub async fn not_found(uri: http::Uri) -> ApiError {
    ApiError::NotFound(format!("no such API path: {}", uri.path()))
}
