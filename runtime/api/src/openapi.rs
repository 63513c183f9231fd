//! The OpenAPI 3.1 document of the admin API, served at `/openapi.json`.

use axum::Json;
use serde_json::{Value, json};

/// One documented operation: method, path, summary, request and response
/// schema names (`Name[]` for an array).
type Operation = (
    &'static str,
    &'static str,
    &'static str,
    Option<&'static str>,
    Option<&'static str>,
);

/// The reads that reflect every write acknowledged before them, on any
/// host (a raft read index); they answer 503 when no quorum confirms.
const LINEARIZABLE: &[(&str, &str)] = &[
    ("get", "/v1/apps"),
    ("get", "/v1/apps/{app}/deployments"),
    ("get", "/v1/status"),
    ("get", "/v1/apps/{app}/status"),
];

/// What the description says about hosts, writes and reads.
const CONSISTENCY: &str = "Every host of a cluster answers. Writes are replicated through raft: a host that is not the leader forwards them to it, and a write is acknowledged only once a majority of the hosts stored it. Reads marked linearizable first confirm a raft read index with the leader, so they reflect every write acknowledged before them on any host; other reads come from the answering host's applied state and may lag behind by a moment. A host that cannot reach a majority of the cluster answers writes and linearizable reads with 503 `unavailable` (after a bounded wait) rather than acknowledge a write or return possibly stale data; a write answered 503 after a timeout may still be applied (once).";

/// Every operation of the API.
const OPERATIONS: &[Operation] = &[
    ("get", "/v1/health", "Liveness (no token).", None, None),
    (
        "get",
        "/metrics",
        "Prometheus metrics (operators).",
        None,
        None,
    ),
    (
        "post",
        "/v1/tenants",
        "Create a tenant (operators).",
        Some("CreateTenant"),
        Some("TenantInfo"),
    ),
    (
        "get",
        "/v1/tenants",
        "List tenants.",
        None,
        Some("TenantInfo[]"),
    ),
    (
        "post",
        "/v1/tokens",
        "Create a token; its secret is shown once (operators).",
        Some("CreateToken"),
        Some("CreatedToken"),
    ),
    (
        "get",
        "/v1/tokens",
        "List tokens (operators).",
        None,
        Some("TokenInfo[]"),
    ),
    (
        "delete",
        "/v1/tokens/{id}",
        "Revoke a token (operators).",
        None,
        None,
    ),
    (
        "post",
        "/v1/packages",
        "Upload a .wasm component (body: the file, application/wasm).",
        None,
        Some("PackageInfo"),
    ),
    (
        "get",
        "/v1/packages",
        "List packages.",
        None,
        Some("PackageInfo[]"),
    ),
    (
        "get",
        "/v1/apps",
        "List apps with their current version. Linearizable.",
        None,
        Some("DeploymentInfo[]"),
    ),
    (
        "post",
        "/v1/apps/{app}/deployments",
        "Deploy a new version; returns once traffic moved to it.",
        Some("CreateDeployment"),
        Some("DeploymentInfo"),
    ),
    (
        "get",
        "/v1/apps/{app}/deployments",
        "An app's history, oldest first. Linearizable.",
        None,
        Some("DeploymentInfo[]"),
    ),
    (
        "post",
        "/v1/apps/{app}/rollback",
        "Make an earlier version current again.",
        Some("Rollback"),
        Some("DeploymentInfo"),
    ),
    (
        "put",
        "/v1/apps/{app}/scale",
        "Set an app's instances; takes effect at once.",
        Some("Scale"),
        Some("AppStatus"),
    ),
    (
        "get",
        "/v1/status",
        "Live figures of every app (the app list is linearizable).",
        None,
        Some("AppStatus[]"),
    ),
    (
        "get",
        "/v1/nodes",
        "The cluster's hosts: raft role, state (ready, draining, down, as the answering host sees it), placed instances, addresses, labels (operators).",
        None,
        Some("ClusterInfo"),
    ),
    (
        "post",
        "/v1/nodes/{host}/drain",
        "Stop placing instances on a host (id or name); the scheduler moves its instances elsewhere (operators).",
        None,
        Some("ClusterInfo"),
    ),
    (
        "post",
        "/v1/nodes/{host}/ready",
        "Let a drained host take instances again (operators).",
        None,
        Some("ClusterInfo"),
    ),
    (
        "delete",
        "/v1/nodes/{host}",
        "Remove a drained or down host from the cluster (`?force=true`: even while up and ready); it leaves the raft group and its instances are placed elsewhere (operators).",
        None,
        Some("ClusterInfo"),
    ),
    (
        "get",
        "/v1/apps/{app}/status",
        "Live figures of one app (its version and scale are linearizable).",
        None,
        Some("AppStatus"),
    ),
    (
        "post",
        "/v1/partners",
        "Register a partner of the partner API (POST /openapi on the gateway); returns its app_id.",
        Some("CreatePartner"),
        Some("PartnerInfo"),
    ),
    (
        "get",
        "/v1/partners",
        "List partners.",
        None,
        Some("PartnerInfo[]"),
    ),
    (
        "delete",
        "/v1/partners/{app_id}",
        "Remove a partner.",
        None,
        None,
    ),
    (
        "get",
        "/v1/partners/platform-key",
        "The platform's public key (PEM) that signs partner API replies.",
        None,
        Some("PlatformKey"),
    ),
    (
        "get",
        "/v1/queues",
        "Durable queues with depth, in-flight and dead-letter counts.",
        None,
        Some("QueueInfo[]"),
    ),
    (
        "get",
        "/v1/queues/{queue}/dead-letters",
        "A queue's dead letters (?after=ID&limit=N).",
        None,
        Some("DeadLetterInfo[]"),
    ),
    (
        "post",
        "/v1/queues/{queue}/replay",
        "Move dead letters (all, or ids) back into the queue.",
        Some("Replay"),
        Some("Replayed"),
    ),
];

/// `GET /openapi.json`.
pub async fn document() -> Json<Value> {
    Json(build())
}

fn schema_ref(name: &str) -> Value {
    match name.strip_suffix("[]") {
        Some(item) => {
            json!({ "type": "array", "items": { "$ref": format!("#/components/schemas/{item}") } })
        }
        None => json!({ "$ref": format!("#/components/schemas/{name}") }),
    }
}

fn build() -> Value {
    let mut paths = serde_json::Map::new();
    for (method, path, summary, request, response) in OPERATIONS {
        let mut operation = json!({
            "summary": summary,
            "responses": {
                "default": { "description": "An error", "content": { "application/json": { "schema": schema_ref("ErrorBody") } } }
            }
        });
        let ok = match response {
            Some(schema) => {
                json!({ "description": "Success", "content": { "application/json": { "schema": schema_ref(schema) } } })
            }
            None => json!({ "description": "Success" }),
        };
        operation["responses"]["200"] = ok;
        if LINEARIZABLE.contains(&(*method, *path)) {
            operation["x-linearizable"] = json!(true);
            operation["responses"]["503"] = json!({ "description": "No quorum confirmed the read (no raft leader, or this host is cut off from the majority); nothing stale is returned", "content": { "application/json": { "schema": schema_ref("ErrorBody") } } });
        }
        if let Some(schema) = request {
            operation["requestBody"] = json!({ "required": true, "content": { "application/json": { "schema": schema_ref(schema) } } });
        }
        if *path == "/v1/packages" && *method == "post" {
            operation["requestBody"] = json!({ "required": true, "content": { "application/wasm": { "schema": { "type": "string", "format": "binary" } } } });
        }
        let mut parameters = Vec::new();
        if path.contains("{app}") {
            parameters.push(json!({ "name": "app", "in": "path", "required": true, "schema": { "type": "string" } }));
        }
        if path.contains("{id}") {
            parameters.push(json!({ "name": "id", "in": "path", "required": true, "schema": { "type": "string" } }));
        }
        if path.starts_with("/v1/apps") || path.starts_with("/v1/packages") || *path == "/v1/status"
        {
            parameters.push(json!({ "name": "tenant", "in": "query", "required": false, "description": "The tenant to act on (operator tokens).", "schema": { "type": "string" } }));
        }
        if !parameters.is_empty() {
            operation["parameters"] = Value::Array(parameters);
        }
        if *path == "/v1/health" {
            operation["security"] = json!([]);
        }
        let entry = paths.entry(path.to_string()).or_insert_with(|| json!({}));
        entry[*method] = operation;
    }
    json!({
        "openapi": "3.1.0",
        "info": {
            "title": "Cloudware admin API",
            "version": env!("CARGO_PKG_VERSION"),
            "description": format!("Tenants, tokens, packages, deployments, scale and status of a Cloudware platform. Every call needs `Authorization: Bearer <token>` unless noted. {CONSISTENCY}")
        },
        "security": [{ "bearer": [] }],
        "paths": paths,
        "components": {
            "securitySchemes": { "bearer": { "type": "http", "scheme": "bearer" } },
            "schemas": schemas()
        }
    })
}

fn schemas() -> Value {
    let string = json!({ "type": "string" });
    let int = json!({ "type": "integer", "minimum": 0 });
    let strings = json!({ "type": "array", "items": { "type": "string" } });
    json!({
        "ErrorBody": { "type": "object", "required": ["error"], "properties": { "error": { "type": "object", "required": ["code", "message"], "properties": { "code": string, "message": string } } } },
        "CreateTenant": { "type": "object", "required": ["name"], "additionalProperties": false, "properties": { "name": string } },
        "TenantInfo": { "type": "object", "properties": { "name": string, "created_at": int } },
        "CreateToken": { "type": "object", "required": ["role"], "additionalProperties": false, "properties": { "role": { "enum": ["operator", "developer", "site-builder", "viewer"] }, "tenant": string, "description": string } },
        "TokenInfo": { "type": "object", "properties": { "id": string, "role": string, "tenant": string, "description": string, "created_at": int, "revoked": { "type": "boolean" } } },
        "CreatedToken": { "allOf": [ { "$ref": "#/components/schemas/TokenInfo" }, { "type": "object", "properties": { "token": string } } ] },
        "PackageInfo": { "type": "object", "properties": { "digest": string, "size": int, "imports": strings, "exports": strings, "existed": { "type": "boolean" } } },
        "CreateDeployment": { "type": "object", "required": ["package"], "additionalProperties": false, "properties": {
            "package": string, "routes": strings, "instances": int, "timeout_ms": int, "memory_bytes": int,
            "allow_outbound": strings, "config": { "type": "object", "additionalProperties": string },
            "capabilities": { "type": "object", "description": "Grants by capability: keyvalue {buckets}, queues {send, consume}, topics {publish, subscribe}, secrets {name: value} (sealed, never shown back), services {links: {interface: app}}.",
                "additionalProperties": { "type": "object" } } } },
        "CreatePartner": { "type": "object", "required": ["name", "public_key", "methods"], "additionalProperties": false, "properties": { "name": string, "public_key": string, "methods": strings } },
        "PartnerInfo": { "type": "object", "properties": { "app_id": string, "tenant": string, "name": string, "methods": strings, "created_at": int, "platform_public_key": string } },
        "PlatformKey": { "type": "object", "properties": { "public_key": string } },
        "QueueInfo": { "type": "object", "properties": { "tenant": string, "queue": string, "depth": int, "ready": int, "delayed": int, "in_flight": int, "dead": int, "sent_total": int } },
        "DeadLetterInfo": { "type": "object", "properties": { "id": int, "payload": string, "attributes": { "type": "array", "items": strings }, "attempts": int, "last_error": string, "dead_at": int } },
        "Replay": { "type": "object", "additionalProperties": false, "properties": { "ids": { "type": "array", "items": int } } },
        "Replayed": { "type": "object", "properties": { "replayed": int } },
        "DeploymentInfo": { "type": "object", "properties": { "app": string, "tenant": string, "version": int, "package": string, "routes": strings,
            "status": { "enum": ["pending", "active", "failed", "superseded"] }, "reason": string, "current": { "type": "boolean" }, "created_at": int } },
        "Rollback": { "type": "object", "additionalProperties": false, "properties": { "to": int } },
        "Scale": { "type": "object", "required": ["instances"], "additionalProperties": false, "properties": { "instances": int, "min_warm": int,
            "spread": { "type": "array", "description": "Spread over hosts by label: each rule gets weight parts of the instances, divided among the hosts carrying all its labels. Absent: keep; empty: every host alike.",
                "items": { "type": "object", "required": ["weight"], "properties": { "requirements": { "type": "object", "additionalProperties": string }, "weight": int } } } } },
        "ClusterInfo": { "type": "object", "properties": { "this": int, "leader": int, "term": int, "commit_index": int,
            "hosts": { "type": "array", "items": { "$ref": "#/components/schemas/NodeInfo" } } } },
        "NodeInfo": { "type": "object", "properties": { "id": int, "name": string, "role": string, "mode": string, "state": string, "last_seen_ms": int, "instances": int,
            "cluster": string, "api": string, "gateway": string, "labels": { "type": "object", "additionalProperties": string },
            "bus_leader": { "type": "boolean" } } },
        "AppStatus": { "type": "object", "properties": { "app": string, "tenant": string, "version": int, "instances": int, "busy": int, "idle": int,
            "requests_per_second": { "type": "number" }, "error_rate": { "type": "number" }, "p50_ms": { "type": "number" }, "p99_ms": { "type": "number" }, "here": int,
            "placement": { "type": "array", "items": { "type": "object", "properties": { "host": int, "name": string, "state": string, "instances": int } } },
            "calls": { "type": "array", "items": { "type": "object", "properties": { "interface": string, "app": string, "crosses_hosts": { "type": "boolean" } } } } } }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_operation_is_documented_with_resolvable_schemas() {
        let doc = build();
        for (method, path, ..) in OPERATIONS {
            assert!(doc["paths"][path][method].is_object(), "{method} {path}");
        }
        let text = doc.to_string();
        for reference in text.split("#/components/schemas/").skip(1) {
            let name: String = reference
                .chars()
                .take_while(|c| c.is_alphanumeric())
                .collect();
            assert!(doc["components"]["schemas"][&name].is_object(), "{name}");
        }
    }

    #[test]
    fn linearizable_reads_are_marked_and_explained() {
        let doc = build();
        for (method, path) in LINEARIZABLE {
            let operation = &doc["paths"][path][method];
            assert_eq!(operation["x-linearizable"], true, "{method} {path}");
            assert!(operation["responses"]["503"].is_object(), "{method} {path}");
        }
        let description = doc["info"]["description"].as_str().unwrap_or_default();
        assert!(description.contains("linearizable"), "{description}");
    }
}
