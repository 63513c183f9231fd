//! The node end to end in-process: real raft log on sled, real package
//! store, real engine and components. Deployments are compiled, probed and
//! activated by the reconciler; the router serves the current version.

use bytes::Bytes;
use cloudware_engine::{Engine, EngineConfig, Limits};
use cloudware_gateway::Router;
use cloudware_metrics::Metrics;
use cloudware_node::{ControlPlane, NodeCapabilities, NodeRouter, PackageStore, Reconciler};
use cloudware_state::{Command, DeploymentLimits, Outcome, Route, StatusKind};
use http_body_util::{BodyExt, Empty};
use std::sync::Arc;
use std::time::Duration;

struct Node {
    control: Arc<ControlPlane>,
    store: PackageStore,
    router: Arc<NodeRouter>,
    _dir: tempfile::TempDir,
}

async fn node() -> Node {
    let dir = tempfile::tempdir().expect("dir");
    let control = Arc::new(
        ControlPlane::open(&dir.path().join("raft"), 1)
            .await
            .expect("control plane"),
    );
    let store = PackageStore::open(dir.path().join("packages")).expect("store");
    let engine = Engine::with_capabilities(
        &EngineConfig {
            cache_dir: None,
            ..EngineConfig::default()
        },
        &Limits {
            max_concurrent_instances: 16,
            ..Limits::default()
        },
        &NodeCapabilities::engine_capabilities(),
    )
    .expect("engine");
    let router = Arc::new(NodeRouter::default());
    let reconciler = Reconciler::new(
        control.clone(),
        engine,
        store.clone(),
        Arc::new(Metrics::new()),
        router.clone(),
        NodeCapabilities::open(dir.path(), None)
            .await
            .expect("capabilities"),
    );
    reconciler.start().await;
    control
        .propose(Command::CreateTenant {
            name: "acme".into(),
            at: 1,
        })
        .await
        .expect("tenant");
    Node {
        control,
        store,
        router,
        _dir: dir,
    }
}

impl Node {
    async fn push(&self, path: &str) -> String {
        let bytes = Bytes::from(cloudware_test_artifacts::read(path));
        let stored = self
            .store
            .put(
                futures::stream::iter([Ok::<_, std::io::Error>(bytes)]),
                None,
                64 << 20,
            )
            .await
            .expect("store");
        self.control
            .propose(Command::RegisterPackage {
                digest: stored.digest.to_string(),
                tenant: "acme".into(),
                size: stored.size,
                imports: vec![],
                exports: vec![],
                at: 2,
            })
            .await
            .expect("register");
        stored.digest.to_string()
    }

    async fn deploy(&self, app: &str, package: &str, route: &str) -> u32 {
        let outcome = self
            .control
            .propose(Command::CreateDeployment {
                tenant: "acme".into(),
                app: app.into(),
                package: package.into(),
                routes: vec![Route::new(None, route).expect("route")],
                limits: DeploymentLimits::default(),
                allow_outbound: vec![],
                config: Default::default(),
                capabilities: Default::default(),
                scale: None,
                by: "tok_test".into(),
                at: 3,
            })
            .await
            .expect("deploy");
        match outcome {
            Outcome::DeploymentCreated { version } => version,
            other => panic!("unexpected {other:?}"),
        }
    }

    /// Waits (bounded) until the version leaves `pending`.
    async fn settled(&self, app: &str, version: u32) -> StatusKind {
        for _ in 0..500 {
            let status = self.control.read(|s| {
                s.app("acme", app)
                    .and_then(|a| a.deployment(version))
                    .map(|d| d.status.kind())
            });
            if let Some(kind) = status.filter(|k| *k != StatusKind::Pending) {
                return kind;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        panic!("{app} v{version} never settled");
    }

    async fn get(&self, path: &str) -> Option<(u16, String)> {
        // The published table may trail the applied state by one pass.
        for _ in 0..100 {
            if let Some(target) = self.router.route("example.test", path) {
                let request = http::Request::get(format!("http://example.test{path}"))
                    .header("host", "example.test")
                    .body(Empty::<Bytes>::new())
                    .expect("request");
                let response = target
                    .component
                    .handle(request, Default::default())
                    .await
                    .expect("response");
                let status = response.status().as_u16();
                let body = response
                    .into_body()
                    .collect()
                    .await
                    .expect("body")
                    .to_bytes();
                return Some((status, String::from_utf8_lossy(&body).into_owned()));
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        None
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_deployment_is_probed_activated_and_served() {
    let node = node().await;
    assert!(node.router.route("example.test", "/").is_none());
    let hello = node.push(cloudware_test_artifacts::HELLO).await;
    let version = node.deploy("hello", &hello, "/").await;
    assert_eq!(node.settled("hello", version).await, StatusKind::Active);
    let (status, body) = node.get("/").await.expect("routed");
    assert_eq!(status, 200);
    assert_eq!(body, "Hello from Cloudware!\n");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_version_that_fails_its_probe_never_takes_traffic() {
    let node = node().await;
    let hello = node.push(cloudware_test_artifacts::HELLO).await;
    let v1 = node.deploy("site", &hello, "/").await;
    assert_eq!(node.settled("site", v1).await, StatusKind::Active);

    // hostile's `/trap` route traps on the probe.
    let hostile = node.push(cloudware_test_artifacts::HOSTILE).await;
    let v2 = node.deploy("site", &hostile, "/trap").await;
    assert_eq!(node.settled("site", v2).await, StatusKind::Failed);
    let reason = node.control.read(|s| {
        format!(
            "{:?}",
            s.app("acme", "site")
                .and_then(|a| a.deployment(v2))
                .map(|d| &d.status)
        )
    });
    assert!(reason.contains("health probe failed"), "{reason}");
    // v1 still serves.
    assert_eq!(
        node.control
            .read(|s| s.app("acme", "site").and_then(|a| a.current)),
        Some(v1)
    );
    assert_eq!(
        node.get("/").await.expect("routed").1,
        "Hello from Cloudware!\n"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn rollback_moves_traffic_back() {
    let node = node().await;
    let hello = node.push(cloudware_test_artifacts::HELLO).await;
    let wasip2 = node.push(cloudware_test_artifacts::WASIP2_HELLO).await;
    let v1 = node.deploy("site", &hello, "/").await;
    assert_eq!(node.settled("site", v1).await, StatusKind::Active);
    let v2 = node.deploy("site", &wasip2, "/").await;
    assert_eq!(node.settled("site", v2).await, StatusKind::Active);
    for _ in 0..100 {
        if node.get("/").await.expect("routed").1 == "Hello from wasip2!\n" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(
        node.get("/").await.expect("routed").1,
        "Hello from wasip2!\n"
    );

    node.control
        .propose(Command::Rollback {
            tenant: "acme".into(),
            app: "site".into(),
            to: None,
        })
        .await
        .expect("rollback");
    let mut body = String::new();
    for _ in 0..100 {
        body = node.get("/").await.expect("routed").1;
        if body == "Hello from Cloudware!\n" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(body, "Hello from Cloudware!\n");
}
