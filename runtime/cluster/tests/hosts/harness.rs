//! The harness: real cluster hosts in one process — each a full `ClusterHost` (raft on sled,
//! the TLS cluster port) on 127.0.0.1 — with a test router serving the `hello` component.
//! Every wait is bounded.

pub(crate) use bytes::Bytes;
pub(crate) use cloudware_cluster::{
    ClusterHost, ClusterOptions, HealthConfig, HostHealth, JoinSpec,
};
pub(crate) use cloudware_engine::{Engine, EngineConfig, Limits, LinkedComponent};
pub(crate) use cloudware_gateway::{
    FORWARDED_BY_HEADER, Gateway, GatewayLimits, RemoteTarget, Router, Target,
};
pub(crate) use cloudware_node::{PackageStore, PeerHealth};
pub(crate) use http_body_util::{BodyExt, Full};
pub(crate) use std::net::SocketAddr;
pub(crate) use std::path::Path;
pub(crate) use std::sync::atomic::{AtomicUsize, Ordering};
pub(crate) use std::sync::{Arc, Mutex, OnceLock};
pub(crate) use std::time::{Duration, Instant};

/// Bound of waiting for a cluster to form or a host to restart.
pub(crate) const SETTLE: Duration = Duration::from_secs(30);
/// Fast heartbeats: down 300 ms after the last answer.
pub(crate) const FAST: HealthConfig = HealthConfig {
    interval: Duration::from_millis(100),
    timeout: Duration::from_millis(80),
    missed: 3,
};

/// What a host's router does with a request routed to it.
#[derive(Clone)]
pub(crate) enum Serve {
    /// Serves the hello component.
    Hello,
    /// Has no local instance (a forwarded request gets "not here").
    NotHere,
    /// Takes the request and dies with it (the connection breaks, no answer).
    Crash,
}

/// A router with one app, `acme/hello`, on every host name and path.
pub(crate) struct TestRouter {
    pub(crate) serve: Mutex<Serve>,
    /// Where the app runs when it does not run here.
    pub(crate) remote: Mutex<Vec<(u64, u32)>>,
    /// Requests routed (locally served or not).
    pub(crate) routed: AtomicUsize,
    /// The host name of the last request routed.
    pub(crate) last_host: Mutex<String>,
}

impl TestRouter {
    pub(crate) fn new(serve: Serve, remote: Vec<(u64, u32)>) -> Arc<Self> {
        Arc::new(TestRouter {
            serve: Mutex::new(serve),
            remote: Mutex::new(remote),
            routed: AtomicUsize::new(0),
            last_host: Mutex::new(String::new()),
        })
    }

    pub(crate) fn set(&self, serve: Serve) {
        *self.serve.lock().expect("lock") = serve;
    }

    pub(crate) fn routed(&self) -> usize {
        self.routed.load(Ordering::SeqCst)
    }
}

impl Router for TestRouter {
    fn route(&self, host: &str, _path: &str) -> Option<Target> {
        self.routed.fetch_add(1, Ordering::SeqCst);
        *self.last_host.lock().expect("lock") = host.to_string();
        let serve = self.serve.lock().expect("lock").clone();
        match serve {
            Serve::Hello => Some(Target {
                component: hello().clone(),
                recorder: None,
            }),
            Serve::NotHere => None,
            Serve::Crash => panic!("the host dies while serving the request (on purpose)"),
        }
    }

    fn remote(&self, _host: &str, _path: &str) -> Option<RemoteTarget> {
        let hosts = self.remote.lock().expect("lock").clone();
        (!hosts.is_empty()).then(|| RemoteTarget {
            tenant: "acme".into(),
            app: "hello".into(),
            hosts,
        })
    }
}

/// The hello component, loaded once per test process.
pub(crate) fn hello() -> &'static LinkedComponent {
    static HELLO: OnceLock<LinkedComponent> = OnceLock::new();
    HELLO.get_or_init(|| {
        let engine = Engine::new(
            &EngineConfig {
                cache_dir: None,
                ..EngineConfig::default()
            },
            &Limits::default(),
        )
        .expect("engine");
        engine
            .load_file(Path::new(cloudware_test_artifacts::HELLO))
            .expect("hello")
    })
}

pub(crate) fn limits() -> GatewayLimits {
    GatewayLimits::from_engine(&Limits::default())
}

/// One host: its cluster membership and its router.
pub(crate) struct Host {
    pub(crate) cluster: Option<ClusterHost>,
    pub(crate) options: ClusterOptions,
    pub(crate) router: Arc<TestRouter>,
}

impl Host {
    pub(crate) fn cluster(&self) -> &ClusterHost {
        self.cluster.as_ref().expect("running")
    }

    pub(crate) fn health(&self) -> HostHealth {
        self.cluster().health()
    }

    /// Stops the host as a crash would: its port closes, its raft stops.
    pub(crate) async fn stop(&mut self) {
        let cluster = self.cluster.take().expect("running");
        cluster.control().shutdown().await;
        let _ = cluster.bus().shutdown().await;
        drop(cluster);
    }

    /// Starts it again from its data directory, on the same cluster address.
    pub(crate) async fn restart(&mut self, health: HealthConfig) {
        self.start_again(self.options.listen, health).await;
    }

    /// Starts it again from its data directory on a new cluster port (the address it
    /// advertises changes, as with `--cluster-listen 127.0.0.1:0`).
    pub(crate) async fn restart_elsewhere(&mut self, health: HealthConfig) {
        let any: SocketAddr = "127.0.0.1:0".parse().expect("addr");
        self.start_again(any, health).await;
        self.options.listen = self.cluster().cluster_addr();
    }

    async fn start_again(&mut self, listen: SocketAddr, health: HealthConfig) {
        let mut options = self.options.clone();
        options.listen = listen;
        options.join = None;
        let started = Instant::now();
        let cluster = loop {
            let packages = PackageStore::open(options.data_dir.join("packages")).expect("store");
            match ClusterHost::start_with(options.clone(), packages, health).await {
                Ok(cluster) => break cluster,
                // The old raft log may take a moment to be released.
                Err(err) if started.elapsed() < SETTLE => {
                    eprintln!("restart: {err}; retrying");
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
                Err(err) => panic!("restart: {err}"),
            }
        };
        cluster.serve_forwarded(self.router.clone(), limits());
        self.cluster = Some(cluster);
    }
}

/// `n` hosts; host 1 founded the cluster. Host 1's gateway forwards.
pub(crate) struct Cluster {
    pub(crate) hosts: Vec<Host>,
    pub(crate) gateway: SocketAddr,
    pub(crate) _dir: tempfile::TempDir,
}

impl Cluster {
    /// Starts `serve.len()` hosts: host `i + 1` serves as `serve[i]`; host 1's router
    /// places the app on every other host (one instance each).
    pub(crate) async fn start(serve: &[Serve], health: HealthConfig) -> Cluster {
        let dir = tempfile::tempdir().expect("dir");
        let mut hosts: Vec<Host> = Vec::new();
        for (i, how) in serve.iter().enumerate() {
            let id = i as u64 + 1;
            let remote = if id == 1 {
                (2..=serve.len() as u64).map(|id| (id, 1)).collect()
            } else {
                Vec::new()
            };
            let data_dir = dir.path().join(format!("host-{id}"));
            let join = hosts.first().map(|founder| JoinSpec {
                peer: founder.cluster().cluster_addr(),
                token: founder.cluster().founded_with().expect("founded").clone(),
            });
            let mut options = ClusterOptions {
                data_dir: data_dir.clone(),
                listen: "127.0.0.1:0".parse().expect("addr"),
                advertise: None,
                api: "127.0.0.1:9".parse().expect("addr"),
                gateway: "127.0.0.1:9".parse().expect("addr"),
                name: format!("host-{id}"),
                labels: Default::default(),
                join,
                snapshot_every: None,
                shared_key: None,
            };
            let packages = PackageStore::open(data_dir.join("packages")).expect("store");
            let cluster = tokio::time::timeout(
                SETTLE,
                ClusterHost::start_with(options.clone(), packages, health),
            )
            .await
            .expect("host started in time")
            .expect("host started");
            assert_eq!(cluster.node_id(), id);
            // Restarts reuse the bound address.
            options.listen = cluster.cluster_addr();
            let router = TestRouter::new(how.clone(), remote);
            cluster.serve_forwarded(router.clone(), limits());
            hosts.push(Host {
                cluster: Some(cluster),
                options,
                router,
            });
        }
        let first = &hosts[0];
        let gateway = Gateway::bind(
            "127.0.0.1:0".parse().expect("addr"),
            first.router.clone(),
            limits(),
        )
        .await
        .expect("gateway")
        .with_forwarder(Arc::new(first.cluster().forwarder()));
        let addr = gateway.local_addr().expect("addr");
        tokio::spawn(gateway.serve(std::future::pending()));
        let cluster = Cluster {
            hosts,
            gateway: addr,
            _dir: dir,
        };
        // Every host has heard from every other.
        for host in &cluster.hosts {
            for other in &cluster.hosts {
                let id = other.cluster().node_id();
                wait_for(&format!("host {id} answering"), SETTLE, || {
                    host.health().last_seen(id).is_some()
                })
                .await;
            }
        }
        cluster
    }

    pub(crate) fn host(&mut self, id: u64) -> &mut Host {
        &mut self.hosts[id as usize - 1]
    }
}

pub(crate) async fn wait_for(
    what: &str,
    bound: Duration,
    mut done: impl FnMut() -> bool,
) -> Duration {
    let started = Instant::now();
    while !done() {
        assert!(started.elapsed() < bound, "{what}: not within {bound:?}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    started.elapsed()
}
