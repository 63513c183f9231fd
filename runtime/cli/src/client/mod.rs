//! A typed client of the admin REST API (`/v1/…`), one method per endpoint.
//!
//! Every method sends `Authorization: Bearer <token>` and answers either the
//! server's JSON, parsed into the shared [`wire`] types, or an [`ApiError`]
//! that knows the process exit code it stands for.

use cloudware_api::wire;
use futures::TryStreamExt;
use reqwest::header::{AUTHORIZATION, CONTENT_LENGTH, CONTENT_TYPE, HeaderValue};
use reqwest::{Method, RequestBuilder, Response, StatusCode, Url};
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::time::Duration;

/// Where the admin API listens unless told otherwise.
pub const DEFAULT_URL: &str = "http://127.0.0.1:8081";

/// How long a quick call (lists, tenants, tokens, scale, status) may take.
pub const CALL_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a deployment or rollback may take: the server compiles the
/// package and health-probes it before it answers.
pub const DEPLOY_TIMEOUT: Duration = Duration::from_secs(120);
/// How long connecting may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// The size of the chunks a package is uploaded in (one progress step each).
const UPLOAD_CHUNK: usize = 64 * 1024;

mod error;
mod messaging;

#[cfg(test)]
pub use error::exit_code;
pub use error::{ApiError, exit};
use error::{BodyReadError, server_error};

/// A client of one admin API, holding its URL and token.
#[derive(Clone, Debug)]
pub struct Client {
    http: reqwest::Client,
    base: Url,
    token: HeaderValue,
}

impl Client {
    /// A client of the admin API at `base` (an `http://` URL, possibly with
    /// a path prefix) that authenticates with `token`.
    pub fn new(base: Url, token: &str) -> anyhow::Result<Self> {
        anyhow::ensure!(
            base.scheme() == "http",
            "the admin API URL must start with http:// (this build speaks plain HTTP), not `{base}`"
        );
        anyhow::ensure!(
            base.host().is_some(),
            "the admin API URL `{base}` has no host"
        );
        let mut token = HeaderValue::from_str(&format!("Bearer {token}")).map_err(|_| {
            anyhow::anyhow!("the token contains characters that cannot be sent in an HTTP header")
        })?;
        token.set_sensitive(true);
        let mut builder = reqwest::Client::builder()
            .user_agent(concat!("cloudware-cli/", env!("CARGO_PKG_VERSION")))
            .connect_timeout(CONNECT_TIMEOUT);
        // A proxy from the environment never stands between us and a local server.
        if is_loopback(&base) {
            builder = builder.no_proxy();
        }
        let http = builder
            .build()
            .map_err(|err| anyhow::anyhow!("cannot set up the HTTP client: {err}"))?;
        Ok(Client { http, base, token })
    }

    /// `POST /v1/tenants`.
    pub async fn create_tenant(&self, name: &str) -> Result<wire::TenantInfo, ApiError> {
        let body = wire::CreateTenant {
            name: name.to_owned(),
        };
        self.call_json(Method::POST, &["tenants"], None, Some(&body), CALL_TIMEOUT)
            .await
    }

    /// `GET /v1/nodes`.
    pub async fn list_nodes(&self) -> Result<wire::ClusterInfo, ApiError> {
        self.get(&["nodes"], None).await
    }

    /// `POST /v1/nodes/{host}/drain` or `/ready`.
    pub async fn set_node_mode(
        &self,
        host: &str,
        draining: bool,
    ) -> Result<wire::ClusterInfo, ApiError> {
        let action = if draining { "drain" } else { "ready" };
        self.call_json::<(), _>(
            Method::POST,
            &["nodes", host, action],
            None,
            None,
            CALL_TIMEOUT,
        )
        .await
    }

    /// `DELETE /v1/nodes/{host}[?force=true]`.
    pub async fn remove_node(
        &self,
        host: &str,
        force: bool,
    ) -> Result<wire::ClusterInfo, ApiError> {
        let (url, mut request) = self.request(Method::DELETE, &["nodes", host], None);
        if force {
            request = request.query(&[("force", "true")]);
        }
        let response = self.send(request, CALL_TIMEOUT).await?;
        parse(&url, "DELETE", check(response).await?).await
    }

    /// `GET /v1/tenants`.
    pub async fn list_tenants(&self) -> Result<Vec<wire::TenantInfo>, ApiError> {
        self.get(&["tenants"], None).await
    }

    /// `POST /v1/tokens`: the answer holds the secret, shown only this once.
    pub async fn create_token(
        &self,
        request: &wire::CreateToken,
    ) -> Result<wire::CreatedToken, ApiError> {
        self.call_json(Method::POST, &["tokens"], None, Some(request), CALL_TIMEOUT)
            .await
    }

    /// `GET /v1/tokens`.
    pub async fn list_tokens(&self) -> Result<Vec<wire::TokenInfo>, ApiError> {
        self.get(&["tokens"], None).await
    }

    /// `DELETE /v1/tokens/{id}`.
    pub async fn revoke_token(&self, id: &str) -> Result<(), ApiError> {
        let (_, request) = self.request(Method::DELETE, &["tokens", id], None);
        let response = self.send(request, CALL_TIMEOUT).await?;
        check(response).await.map(drop)
    }

    /// `POST /v1/packages`: uploads `len` bytes read from `file` in chunks,
    /// calling `progress` with the size of each chunk as it is sent.
    ///
    /// Returns the stored package and whether it was new (`201 Created`)
    /// rather than already stored (`200 OK`, or `existed` in the answer).
    pub async fn push_package(
        &self,
        tenant: Option<&str>,
        file: tokio::fs::File,
        len: u64,
        mut progress: impl FnMut(u64) + Send + 'static,
    ) -> Result<(wire::PackageInfo, bool), ApiError> {
        let chunks = tokio_util::io::ReaderStream::with_capacity(file, UPLOAD_CHUNK)
            .map_err(BodyReadError)
            .inspect_ok(move |chunk| progress(chunk.len() as u64));
        let (url, request) = self.request(Method::POST, &["packages"], tenant);
        let request = request
            .header(CONTENT_TYPE, "application/wasm")
            .header(CONTENT_LENGTH, len)
            .body(reqwest::Body::wrap_stream(chunks));
        // No overall deadline: a large package on a slow link takes what it takes.
        let response = match request.send().await {
            Ok(response) => response,
            Err(err) => return Err(self.transport_error(err, None)),
        };
        let created = response.status() == StatusCode::CREATED;
        let info: wire::PackageInfo = parse(&url, "POST", check(response).await?).await?;
        let new = created && !info.existed;
        Ok((info, new))
    }

    /// `GET /v1/packages`.
    pub async fn list_packages(
        &self,
        tenant: Option<&str>,
    ) -> Result<Vec<wire::PackageInfo>, ApiError> {
        self.get(&["packages"], tenant).await
    }

    /// `GET /v1/apps`: the current (or latest) deployment of each app.
    pub async fn list_apps(
        &self,
        tenant: Option<&str>,
    ) -> Result<Vec<wire::DeploymentInfo>, ApiError> {
        self.get(&["apps"], tenant).await
    }

    /// `POST /v1/apps/{app}/deployments`: answers once traffic moved to the
    /// new version (after it compiled and passed its health probe).
    pub async fn deploy(
        &self,
        tenant: Option<&str>,
        app: &str,
        request: &wire::CreateDeployment,
    ) -> Result<wire::DeploymentInfo, ApiError> {
        self.call_json(
            Method::POST,
            &["apps", app, "deployments"],
            tenant,
            Some(request),
            DEPLOY_TIMEOUT,
        )
        .await
    }

    /// `GET /v1/apps/{app}/deployments`: every version, oldest first.
    pub async fn history(
        &self,
        tenant: Option<&str>,
        app: &str,
    ) -> Result<Vec<wire::DeploymentInfo>, ApiError> {
        self.get(&["apps", app, "deployments"], tenant).await
    }

    /// `POST /v1/apps/{app}/rollback`: the version that is now current.
    pub async fn rollback(
        &self,
        tenant: Option<&str>,
        app: &str,
        request: &wire::Rollback,
    ) -> Result<wire::DeploymentInfo, ApiError> {
        self.call_json(
            Method::POST,
            &["apps", app, "rollback"],
            tenant,
            Some(request),
            DEPLOY_TIMEOUT,
        )
        .await
    }

    /// `PUT /v1/apps/{app}/scale`.
    pub async fn scale(
        &self,
        tenant: Option<&str>,
        app: &str,
        request: &wire::Scale,
    ) -> Result<wire::AppStatus, ApiError> {
        self.call_json(
            Method::PUT,
            &["apps", app, "scale"],
            tenant,
            Some(request),
            CALL_TIMEOUT,
        )
        .await
    }

    /// `GET /v1/status`: live figures of every app.
    pub async fn status(&self, tenant: Option<&str>) -> Result<Vec<wire::AppStatus>, ApiError> {
        self.get(&["status"], tenant).await
    }

    /// `GET /v1/apps/{app}/status`.
    pub async fn app_status(
        &self,
        tenant: Option<&str>,
        app: &str,
    ) -> Result<wire::AppStatus, ApiError> {
        self.get(&["apps", app, "status"], tenant).await
    }

    /// The URL of `/v1/<segments…>` (each segment percent-encoded), with
    /// `?tenant=` when a tenant is given.
    pub fn endpoint(&self, segments: &[&str], tenant: Option<&str>) -> Url {
        let mut url = self.base.clone();
        url.set_query(None);
        url.set_fragment(None);
        if let Ok(mut path) = url.path_segments_mut() {
            path.pop_if_empty().push("v1").extend(segments);
        }
        if let Some(tenant) = tenant {
            url.query_pairs_mut().append_pair("tenant", tenant);
        }
        url
    }

    fn request(
        &self,
        method: Method,
        segments: &[&str],
        tenant: Option<&str>,
    ) -> (Url, RequestBuilder) {
        let url = self.endpoint(segments, tenant);
        let request = self
            .http
            .request(method, url.clone())
            .header(AUTHORIZATION, self.token.clone());
        (url, request)
    }

    async fn get<T: DeserializeOwned>(
        &self,
        segments: &[&str],
        tenant: Option<&str>,
    ) -> Result<T, ApiError> {
        self.call_json::<(), T>(Method::GET, segments, tenant, None, CALL_TIMEOUT)
            .await
    }

    async fn call_json<B: Serialize, T: DeserializeOwned>(
        &self,
        method: Method,
        segments: &[&str],
        tenant: Option<&str>,
        body: Option<&B>,
        timeout: Duration,
    ) -> Result<T, ApiError> {
        let method_name = method.as_str().to_owned();
        let (url, mut request) = self.request(method, segments, tenant);
        if let Some(body) = body {
            request = request.json(body);
        }
        let response = self.send(request, timeout).await?;
        parse(&url, &method_name, check(response).await?).await
    }

    async fn send(&self, request: RequestBuilder, timeout: Duration) -> Result<Response, ApiError> {
        request
            .timeout(timeout)
            .send()
            .await
            .map_err(|err| self.transport_error(err, Some(timeout)))
    }

    fn transport_error(&self, err: reqwest::Error, timeout: Option<Duration>) -> ApiError {
        let url = self.base.as_str().trim_end_matches('/').to_owned();
        if let Some(after) = timeout.filter(|_| err.is_timeout()) {
            return ApiError::Timeout { url, after };
        }
        // The deepest cause says what happened ("Connection refused …").
        let mut cause: &dyn std::error::Error = &err;
        while let Some(source) = cause.source() {
            if let Some(read) = source.downcast_ref::<BodyReadError>() {
                return ApiError::ReadFile(std::io::Error::new(read.0.kind(), read.0.to_string()));
            }
            cause = source;
        }
        ApiError::Unreachable {
            url,
            detail: cause.to_string(),
        }
    }
}

/// Passes a 2xx answer through; turns any other into [`ApiError::Server`].
async fn check(response: Response) -> Result<Response, ApiError> {
    let status = response.status();
    if status.is_success() {
        return Ok(response);
    }
    let body = response.bytes().await.unwrap_or_default();
    Err(server_error(status, &body))
}

/// Reads and parses a 2xx answer's JSON body.
async fn parse<T: DeserializeOwned>(
    url: &Url,
    method: &str,
    response: Response,
) -> Result<T, ApiError> {
    let request = format!("{method} {}", url.path());
    let body = response
        .bytes()
        .await
        .map_err(|err| ApiError::BadResponse {
            request: request.clone(),
            detail: format!("cannot read the body: {err}"),
        })?;
    serde_json::from_slice(&body).map_err(|err| ApiError::BadResponse {
        request,
        detail: format!(
            "its JSON does not match this client ({err}); are client and server the same version?"
        ),
    })
}

/// Whether `url` names this machine.
fn is_loopback(url: &Url) -> bool {
    let Some(host) = url.host_str() else {
        return false;
    };
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    host.eq_ignore_ascii_case("localhost")
        || bare
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

#[cfg(test)]
mod tests;
