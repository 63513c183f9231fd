//! The admin API's JSON bodies, shared by the server and the CLI.
//!
//! Unknown fields are rejected everywhere, so a typo in a request is an
//! error rather than a silently ignored setting.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Every error response: `{"error": {"code": "...", "message": "..."}}`.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct ErrorBody {
    /// The error.
    pub error: ErrorDetail,
}

/// What went wrong, for machines (`code`) and people (`message`).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct ErrorDetail {
    /// A stable identifier: `unauthorized`, `forbidden`, `not_found`,
    /// `bad_request`, `conflict`, `payload_too_large`, `unavailable`, `internal`.
    pub code: String,
    /// One sentence for a person.
    pub message: String,
}

/// `POST /v1/tenants`.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct CreateTenant {
    /// A slug: lowercase letters, digits and `-`.
    pub name: String,
}

/// A tenant.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct TenantInfo {
    /// Its name.
    pub name: String,
    /// When it was created (unix milliseconds).
    pub created_at: u64,
}

/// `POST /v1/tokens`.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct CreateToken {
    /// `operator`, `developer`, `site-builder` or `viewer`.
    pub role: String,
    /// The tenant the token acts for (required except for operators).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tenant: Option<String>,
    /// What the token is for.
    #[serde(default)]
    pub description: String,
}

/// A token as listed (never its secret).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct TokenInfo {
    /// Its id (`tok_…`), used to revoke it.
    pub id: String,
    /// Its role.
    pub role: String,
    /// Its tenant, if any.
    pub tenant: Option<String>,
    /// What it is for.
    pub description: String,
    /// When it was created (unix milliseconds).
    pub created_at: u64,
    /// Whether it was revoked.
    pub revoked: bool,
}

/// The answer to `POST /v1/tokens`: the only time the secret is shown.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct CreatedToken {
    /// The token's metadata.
    #[serde(flatten)]
    pub info: TokenInfo,
    /// The secret to send as `Authorization: Bearer …`.
    pub token: String,
}

/// A stored package.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct PackageInfo {
    /// `sha256:<hex>`.
    pub digest: String,
    /// Size in bytes.
    pub size: u64,
    /// Interfaces it imports.
    pub imports: Vec<String>,
    /// Interfaces it exports.
    pub exports: Vec<String>,
    /// Whether the same bytes were already stored (push is then a no-op).
    #[serde(default)]
    pub existed: bool,
}

/// `POST /v1/apps/{app}/deployments`.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct CreateDeployment {
    /// The package to run: `sha256:<hex>`.
    pub package: String,
    /// Routes, each `[HOST]/PATH-PREFIX` (e.g. `shop.example.com/`, `/api`).
    pub routes: Vec<String>,
    /// Instances to run (app scale); unchanged if absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instances: Option<u32>,
    /// Per-request deadline in milliseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_ms: Option<u64>,
    /// Memory cap per instance in bytes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory_bytes: Option<u64>,
    /// Hosts the component may call.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub allow_outbound: Vec<String>,
    /// Configuration values.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub config: BTreeMap<String, String>,
    /// Capability grants by capability: `keyvalue`, `queues`, `topics`,
    /// `secrets` (sealed at once, never shown back), `services`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub capabilities: BTreeMap<String, serde_json::Value>,
}

/// One version of an app.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct DeploymentInfo {
    /// The app.
    pub app: String,
    /// The owning tenant.
    pub tenant: String,
    /// The version number.
    pub version: u32,
    /// The package digest.
    pub package: String,
    /// Its routes, `[HOST]/PATH-PREFIX`.
    pub routes: Vec<String>,
    /// `pending`, `active` or `failed`.
    pub status: String,
    /// Why it failed, if it did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Whether it is the version receiving traffic.
    pub current: bool,
    /// When it was created (unix milliseconds).
    pub created_at: u64,
}

/// `POST /v1/apps/{app}/rollback`.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Rollback {
    /// The version to make current; the previous active one if absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to: Option<u32>,
}

/// `PUT /v1/apps/{app}/scale`.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Scale {
    /// Instances to run at most at once.
    pub instances: u32,
    /// Instances kept ready.
    #[serde(default)]
    pub min_warm: u32,
    /// Spread rules over the cluster's hosts by label and weight (absent:
    /// keep the app's rules; empty: every host alike).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub spread: Option<Vec<cloudware_state::Spread>>,
}

/// `GET /v1/status` and `GET /v1/apps/{app}/status`: live figures per app.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct AppStatus {
    /// The app.
    pub app: String,
    /// The owning tenant.
    pub tenant: String,
    /// The current version, if any.
    pub version: Option<u32>,
    /// Configured instances.
    pub instances: u32,
    /// Instances running a request now.
    pub busy: u32,
    /// Instances free to take a request.
    pub idle: u32,
    /// Requests per second over the last minute.
    pub requests_per_second: f64,
    /// Share of requests answered with a 5xx over the last minute.
    pub error_rate: f64,
    /// Median latency in milliseconds over the last minute.
    pub p50_ms: f64,
    /// 99th percentile latency in milliseconds over the last minute.
    pub p99_ms: f64,
    /// Instances the answering host runs (its share of `instances`; 0 when
    /// it forwards the app's requests to the hosts that run it).
    #[serde(default)]
    pub here: u32,
    /// Where its instances run (empty on a single host, which runs them all).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub placement: Vec<PlacedOn>,
    /// The services it calls, and whether they run on the same hosts.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub calls: Vec<ServiceCall>,
}

/// Instances of an app on one host.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct PlacedOn {
    /// The host's id.
    pub host: u64,
    /// Its name.
    pub name: String,
    /// `ready`, `draining` or `down`.
    pub state: String,
    /// Instances placed there.
    pub instances: u32,
}

/// A service an app imports.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct ServiceCall {
    /// The interface, e.g. `acme:orders/api`.
    pub interface: String,
    /// The app that exports it.
    pub app: String,
    /// Whether some host runs the caller but not the exporter, so its calls
    /// there cross hosts.
    pub crosses_hosts: bool,
}

/// `POST /v1/partners`.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct CreatePartner {
    /// A name for people.
    pub name: String,
    /// The partner's RSA public key: PEM (PKCS#8 or PKCS#1) or base64 DER.
    pub public_key: String,
    /// The methods it may call, `APP.FUNCTION`.
    pub methods: Vec<String>,
}

/// A registered partner.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct PartnerInfo {
    /// Its id: the `app_id` of its requests.
    pub app_id: String,
    /// The tenant whose apps it calls.
    pub tenant: String,
    /// Its name.
    pub name: String,
    /// The methods it may call.
    pub methods: Vec<String>,
    /// When it was registered (unix milliseconds).
    pub created_at: u64,
    /// The platform's public key (PEM) that signs the replies.
    pub platform_public_key: String,
}

/// `GET /v1/partners/platform-key`.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct PlatformKey {
    /// PEM.
    pub public_key: String,
}

/// One queue (or a subscription's backlog, named `TOPIC@SUBSCRIBER`).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct QueueInfo {
    /// The owning tenant.
    pub tenant: String,
    /// The queue's name.
    pub queue: String,
    /// Messages stored: ready, delayed or in flight.
    pub depth: u64,
    /// Ready for delivery now.
    pub ready: u64,
    /// Waiting for a retry.
    pub delayed: u64,
    /// Being handled.
    pub in_flight: u64,
    /// Dead letters.
    pub dead: u64,
    /// Messages ever accepted.
    pub sent_total: u64,
}

/// A dead letter.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct DeadLetterInfo {
    /// The message id.
    pub id: u64,
    /// The payload (UTF-8, lossy).
    pub payload: String,
    /// Its attributes.
    pub attributes: Vec<(String, String)>,
    /// Failed deliveries.
    pub attempts: u32,
    /// The last failure.
    pub last_error: String,
    /// When it was dead-lettered (unix milliseconds).
    pub dead_at: u64,
}

/// `POST /v1/queues/{queue}/replay`.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Replay {
    /// The dead letters to replay; all if absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ids: Option<Vec<u64>>,
}

/// What a replay did.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Replayed {
    /// Messages moved back into the queue.
    pub replayed: usize,
}

/// `GET /v1/nodes`: the cluster's hosts as the answering host sees them.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct ClusterInfo {
    /// The answering host's id.
    pub this: u64,
    /// The raft leader, if known.
    pub leader: Option<u64>,
    /// The raft term.
    pub term: u64,
    /// Highest committed log index (as this host knows it).
    pub commit_index: u64,
    /// Every host (one, `local`, on a node that is not part of a cluster).
    pub hosts: Vec<NodeInfo>,
}

/// One host of the cluster.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct NodeInfo {
    /// Its id (= raft node id).
    pub id: u64,
    /// Its name.
    pub name: String,
    /// `leader`, `voter`, `learner` or `joining` (registered, not yet a raft member).
    pub role: String,
    /// What the operator wants of it: `ready` or `draining`.
    pub mode: String,
    /// `ready`, `draining` or `down` (not answering heartbeats), as the
    /// answering host sees it.
    pub state: String,
    /// Milliseconds since it last answered a heartbeat (`None`: not since
    /// the answering host started).
    pub last_seen_ms: Option<u64>,
    /// Instances placed on it, over every app.
    pub instances: u32,
    /// Its cluster address (empty outside a cluster).
    pub cluster: String,
    /// Its admin API address.
    pub api: String,
    /// Its gateway address.
    pub gateway: String,
    /// Placement labels.
    pub labels: std::collections::BTreeMap<String, String>,
    /// Whether this host leads the message bus's raft group (it delivers the cluster's
    /// queue and topic messages).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub bus_leader: bool,
}

/// `DELETE /v1/nodes/{host}` options.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct RemoveNode {
    /// Remove the host even while it is up and ready.
    #[serde(default)]
    pub force: bool,
}
