//! `POST /openapi`: the signed partner API on the gateway port. The body is
//! read up to the partner API's limit and handed to
//! [`cloudware_partner::OpenApi`], whose signed JSON reply is sent back.

use cloudware_engine::ResponseBody;
use cloudware_partner::OpenApi;
use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;

/// Answers one partner request.
pub(crate) async fn serve(
    openapi: &OpenApi,
    request: http::Request<Incoming>,
) -> http::Response<ResponseBody> {
    let content_type = request
        .headers()
        .get(http::header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .map(str::to_owned);
    let limit = cloudware_partner::request::MAX_BODY_BYTES;
    let body = match Limited::new(request.into_body(), limit).collect().await {
        Ok(body) => body.to_bytes(),
        Err(_) => {
            // Too large or cut off: the partner API answers an empty body
            // with a signed refusal, like any other malformed request.
            bytes::Bytes::new()
        }
    };
    let response = openapi.handle(content_type.as_deref(), body).await;
    tracing::info!(
        target: crate::ACCESS_LOG_TARGET,
        status = response.status().as_u16(),
        "partner request"
    );
    response.map(ResponseBody::full)
}
