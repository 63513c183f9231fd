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
use std::fmt;
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
/// How much of a non-JSON error body is quoted in the message.
const MAX_QUOTED_BODY: usize = 200;
/// The size of the chunks a package is uploaded in (one progress step each).
const UPLOAD_CHUNK: usize = 64 * 1024;

/// Process exit codes.
pub mod exit {
    /// Any error without a more specific code.
    pub const FAILURE: u8 = 1;
    /// Bad command line (clap's own code).
    pub const USAGE: u8 = 2;
    /// Missing, unknown or insufficient credentials.
    pub const UNAUTHORIZED: u8 = 3;
    /// The tenant, app, version, token … does not exist.
    pub const NOT_FOUND: u8 = 4;
    /// The input was rejected (invalid, conflicting or too large).
    pub const REJECTED: u8 = 5;
}

/// The exit code for an error answer of the admin API: its `code` decides,
/// and the HTTP status when the code is unknown (e.g. a proxy's error page).
pub fn exit_code(status: u16, code: &str) -> u8 {
    match code {
        "unauthorized" | "forbidden" => exit::UNAUTHORIZED,
        "not_found" => exit::NOT_FOUND,
        "bad_request" | "conflict" | "payload_too_large" => exit::REJECTED,
        "unavailable" | "internal" => exit::FAILURE,
        _ => match status {
            401 | 403 => exit::UNAUTHORIZED,
            404 => exit::NOT_FOUND,
            400 | 409 | 413 | 422 => exit::REJECTED,
            _ => exit::FAILURE,
        },
    }
}

/// What went wrong talking to the admin API.
#[derive(Debug)]
pub enum ApiError {
    /// No connection could be made, or it broke.
    Unreachable {
        /// The admin API's base URL.
        url: String,
        /// The root cause, e.g. `Connection refused (os error 111)`.
        detail: String,
    },
    /// No answer in time.
    Timeout {
        /// The admin API's base URL.
        url: String,
        /// The time allowed.
        after: Duration,
    },
    /// The server answered with an error status.
    Server {
        /// The HTTP status.
        status: u16,
        /// The `error.code` of the body (empty when the body was not an
        /// [`wire::ErrorBody`]).
        code: String,
        /// The server's message (or a description of the status).
        message: String,
    },
    /// A 2xx answer that does not match the contract.
    BadResponse {
        /// The request, e.g. `GET /v1/status`.
        request: String,
        /// What was wrong with it.
        detail: String,
    },
    /// The package file could not be read while uploading it.
    ReadFile(std::io::Error),
}

impl ApiError {
    /// The process exit code this error stands for.
    pub fn exit_code(&self) -> u8 {
        match self {
            ApiError::Server { status, code, .. } => exit_code(*status, code),
            _ => exit::FAILURE,
        }
    }
}

impl fmt::Display for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ApiError::Unreachable { url, detail } => {
                write!(f, "cannot reach the admin API at {url}: {detail}")
            }
            ApiError::Timeout { url, after } => write!(
                f,
                "the admin API at {url} did not answer within {}",
                humantime::format_duration(*after)
            ),
            ApiError::Server { message, .. } => f.write_str(message),
            ApiError::BadResponse { request, detail } => {
                write!(f, "unexpected answer to {request}: {detail}")
            }
            ApiError::ReadFile(err) => write!(f, "cannot read the package file: {err}"),
        }
    }
}

impl std::error::Error for ApiError {}

/// An I/O error of the upload's body stream, recognised again in the error
/// reqwest returns.
#[derive(Debug)]
struct BodyReadError(std::io::Error);

impl fmt::Display for BodyReadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl std::error::Error for BodyReadError {}

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

/// The error for a non-2xx answer with `body`.
fn server_error(status: StatusCode, body: &[u8]) -> ApiError {
    if let Ok(wire::ErrorBody { error }) = serde_json::from_slice::<wire::ErrorBody>(body) {
        let message = if error.message.trim().is_empty() {
            format!("{} ({})", error.code, status)
        } else {
            error.message
        };
        return ApiError::Server {
            status: status.as_u16(),
            code: error.code,
            message,
        };
    }
    // Not the API's own error (a proxy, or a different server): quote it.
    let text = String::from_utf8_lossy(body);
    let text = text.split_whitespace().collect::<Vec<_>>().join(" ");
    let message = if text.is_empty() {
        format!("the admin API answered {status}")
    } else {
        let quoted: String = text.chars().take(MAX_QUOTED_BODY).collect();
        let more = if quoted.len() < text.len() { "…" } else { "" };
        format!("the admin API answered {status}: {quoted}{more}")
    };
    ApiError::Server {
        status: status.as_u16(),
        code: String::new(),
        message,
    }
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
mod tests {
    use super::*;
    use http_body_util::{BodyExt, Full};
    use hyper::service::service_fn;
    use std::sync::{Arc, Mutex};

    /// What the test server saw of one request.
    #[derive(Debug, Default, Clone)]
    struct Seen {
        method: String,
        path_and_query: String,
        headers: http::HeaderMap,
        body: Vec<u8>,
    }

    /// A one-connection-at-a-time HTTP/1 server on 127.0.0.1:0 that records
    /// each request and answers `status` with `body`.
    async fn server(status: u16, body: &'static str) -> (Url, Arc<Mutex<Vec<Seen>>>) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = Url::parse(&format!("http://{}/", listener.local_addr().unwrap())).unwrap();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let log = seen.clone();
        tokio::spawn(async move {
            loop {
                let (stream, _) = listener.accept().await.unwrap();
                let log = log.clone();
                let service = service_fn(move |request: hyper::Request<hyper::body::Incoming>| {
                    let log = log.clone();
                    async move {
                        let (parts, incoming) = request.into_parts();
                        let bytes = incoming.collect().await?.to_bytes();
                        log.lock().unwrap().push(Seen {
                            method: parts.method.to_string(),
                            path_and_query: parts.uri.path_and_query().unwrap().to_string(),
                            headers: parts.headers,
                            body: bytes.to_vec(),
                        });
                        let response = hyper::Response::builder()
                            .status(status)
                            .header("content-type", "application/json")
                            .body(Full::new(bytes::Bytes::from_static(body.as_bytes())))
                            .unwrap();
                        Ok::<_, hyper::Error>(response)
                    }
                });
                tokio::spawn(
                    hyper::server::conn::http1::Builder::new()
                        .serve_connection(hyper_util::rt::TokioIo::new(stream), service),
                );
            }
        });
        (url, seen)
    }

    const DIGEST: &str = "sha256:2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824";

    fn package_json(existed: bool) -> String {
        format!(
            r#"{{"digest":"{DIGEST}","size":200000,"imports":[],"exports":["wasi:http/incoming-handler@0.2.6"],"existed":{existed}}}"#
        )
    }

    #[tokio::test]
    async fn push_sends_the_file_with_length_type_and_token() {
        let answer: &'static str = Box::leak(package_json(false).into_boxed_str());
        let (url, seen) = server(201, answer).await;
        let client = Client::new(url, "s3cret").unwrap();

        // Larger than one chunk, so progress is reported more than once.
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("app.wasm");
        let mut bytes = b"\0asm\x0d\x00\x01\x00".to_vec();
        bytes.extend((0..200_000u32).map(|i| (i % 251) as u8));
        std::fs::write(&path, &bytes).unwrap();
        let file = tokio::fs::File::open(&path).await.unwrap();

        let progress = Arc::new(Mutex::new(Vec::new()));
        let record = progress.clone();
        let (info, new) = client
            .push_package(Some("acme"), file, bytes.len() as u64, move |n| {
                record.lock().unwrap().push(n)
            })
            .await
            .unwrap();
        assert!(new);
        assert_eq!(info.digest, DIGEST);

        let seen = seen.lock().unwrap().clone();
        assert_eq!(seen.len(), 1);
        let request = &seen[0];
        assert_eq!(request.method, "POST");
        assert_eq!(request.path_and_query, "/v1/packages?tenant=acme");
        assert_eq!(request.headers["authorization"], "Bearer s3cret");
        assert_eq!(request.headers["content-type"], "application/wasm");
        assert_eq!(
            request.headers["content-length"],
            bytes.len().to_string().as_str()
        );
        assert!(request.headers.get("transfer-encoding").is_none());
        assert!(request.body == bytes, "the body differs from the file");

        let progress = progress.lock().unwrap();
        assert!(progress.len() > 1, "{progress:?}");
        assert_eq!(progress.iter().sum::<u64>(), bytes.len() as u64);
    }

    #[tokio::test]
    async fn push_of_stored_bytes_is_not_new() {
        let answer: &'static str = Box::leak(package_json(true).into_boxed_str());
        let (url, _) = server(200, answer).await;
        let client = Client::new(url, "t").unwrap();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("app.wasm");
        std::fs::write(&path, b"\0asm\x0d\x00\x01\x00").unwrap();
        let file = tokio::fs::File::open(&path).await.unwrap();
        let (_, new) = client.push_package(None, file, 8, |_| {}).await.unwrap();
        assert!(!new);
    }

    #[tokio::test]
    async fn json_calls_use_the_contract_paths() {
        let (url, seen) = server(200, r#"{"app":"my app","tenant":"acme","version":3,"package":"sha256:x","routes":["/"],"status":"active","current":true,"created_at":1}"#).await;
        // A base URL with a path prefix keeps it.
        let client = Client::new(url.join("admin/").unwrap(), "t").unwrap();
        let request = wire::CreateDeployment {
            package: DIGEST.into(),
            routes: vec!["/".into()],
            timeout_ms: Some(30_000),
            ..Default::default()
        };
        let deployment = client
            .deploy(Some("acme"), "my app", &request)
            .await
            .unwrap();
        assert_eq!(deployment.version, 3);
        client
            .rollback(None, "shop", &wire::Rollback { to: Some(2) })
            .await
            .unwrap();

        let seen = seen.lock().unwrap().clone();
        assert_eq!(seen[0].method, "POST");
        assert_eq!(
            seen[0].path_and_query,
            "/admin/v1/apps/my%20app/deployments?tenant=acme"
        );
        assert_eq!(seen[0].headers["content-type"], "application/json");
        let body: serde_json::Value = serde_json::from_slice(&seen[0].body).unwrap();
        assert_eq!(
            body,
            serde_json::json!({"package": DIGEST, "routes": ["/"], "timeout_ms": 30000})
        );
        assert_eq!(seen[1].path_and_query, "/admin/v1/apps/shop/rollback");
        assert_eq!(seen[1].body, br#"{"to":2}"#);
    }

    #[tokio::test]
    async fn server_errors_carry_message_and_exit_code() {
        let (url, _) = server(
            409,
            r#"{"error":{"code":"conflict","message":"route /api is taken by app blog"}}"#,
        )
        .await;
        let client = Client::new(url, "t").unwrap();
        let err = client
            .scale(
                None,
                "shop",
                &wire::Scale {
                    instances: 1,
                    min_warm: 0,
                },
            )
            .await
            .unwrap_err();
        assert_eq!(err.to_string(), "route /api is taken by app blog");
        assert_eq!(err.exit_code(), exit::REJECTED);

        // Not the API's error body: status and body text.
        let (url, _) = server(404, "<html>\n  Not  here\n</html>").await;
        let err = Client::new(url, "t")
            .unwrap()
            .list_tenants()
            .await
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "the admin API answered 404 Not Found: <html> Not here </html>"
        );
        assert_eq!(err.exit_code(), exit::NOT_FOUND);

        // A 2xx whose JSON does not fit.
        let (url, _) = server(200, r#"{"nope":1}"#).await;
        let err = Client::new(url, "t")
            .unwrap()
            .status(None)
            .await
            .unwrap_err();
        assert!(
            err.to_string()
                .starts_with("unexpected answer to GET /v1/status: "),
            "{err}"
        );
        assert_eq!(err.exit_code(), exit::FAILURE);
    }

    #[tokio::test]
    async fn unreachable_server() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        drop(listener);
        let client = Client::new(Url::parse(&format!("http://{addr}")).unwrap(), "t").unwrap();
        let err = client.list_tokens().await.unwrap_err();
        let message = err.to_string();
        assert!(
            message.starts_with(&format!("cannot reach the admin API at http://{addr}: ")),
            "{message}"
        );
        assert!(message.to_lowercase().contains("refused"), "{message}");
        assert_eq!(err.exit_code(), exit::FAILURE);
    }

    #[test]
    fn client_checks_url_and_token() {
        let url = |s| Url::parse(s).unwrap();
        assert!(Client::new(url("https://h/"), "t").is_err());
        assert!(Client::new(url("http://h/"), "bad\ntoken").is_err());
        let client = Client::new(url("http://h:1"), "t").unwrap();
        assert_eq!(
            client.endpoint(&["tokens", "tok/1"], None).as_str(),
            "http://h:1/v1/tokens/tok%2F1"
        );
        assert_eq!(
            client.endpoint(&["status"], Some("a&b")).as_str(),
            "http://h:1/v1/status?tenant=a%26b"
        );
        assert!(is_loopback(&url("http://127.0.0.1:8081")));
        assert!(is_loopback(&url("http://[::1]:8081")));
        assert!(is_loopback(&url("http://LOCALHOST")));
        assert!(!is_loopback(&url("http://10.0.0.1")));
    }
}
