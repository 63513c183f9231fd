//! `cloudware up`: run a platform node with embedded defaults — a sled data
//! directory, a one-member raft group, the HTTP gateway and the admin API.
//!
//! The first start creates an operator token, prints it once and writes it
//! to `DATA_DIR/admin.token` (mode 0600); only its hash is stored.
//! Everything survives a restart.
//!
//! With `--cluster-listen` the node is a cluster host: the first one founds
//! the cluster (and prints a join token), others join it with
//! `--join PEER --join-token TOKEN`; see the `cloudware-cluster` crate.

use crate::logging::LoggingArgs;
use crate::settings::{Resolved, RunArgs};
use anyhow::Context;
use clap::Args;
use cloudware_api::{ApiContext, ApiLimits};
use cloudware_engine::Engine;
use cloudware_gateway::{Gateway, GatewayLimits};
use cloudware_metrics::Metrics;
use cloudware_node::partners::{RoutedFunctions, StatePartners};
use cloudware_node::{ControlPlane, NodeCapabilities, NodeRouter, PackageStore, Reconciler};
use cloudware_state::Role;
use std::io::Write;
use std::net::SocketAddr;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// The default admin API address.
pub const DEFAULT_ADMIN_LISTEN: &str = "127.0.0.1:8081";

/// This node's id in its raft group (one member for now).
const NODE_ID: u64 = 1;

/// Arguments of `cloudware up`.
#[derive(Args, Debug)]
pub struct UpArgs {
    /// Where the node keeps its state [default: ~/.local/share/cloudware].
    #[arg(long, value_name = "DIR", env = "CLOUDWARE_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    /// Address of the admin API [default: 127.0.0.1:8081].
    #[arg(long, value_name = "ADDR")]
    pub admin_listen: Option<SocketAddr>,
    /// Largest package `cloudware push` accepts (e.g. `64MiB`).
    #[arg(long, value_name = "SIZE", default_value = "64MiB")]
    pub max_package_size: bytesize::ByteSize,
    #[command(flatten)]
    pub cluster: ClusterArgs,
    #[command(flatten)]
    pub run: RunArgs,
}

/// Cluster flags of `cloudware up`.
#[derive(Args, Debug)]
pub struct ClusterArgs {
    /// Be a cluster host: serve the cluster port (raft and host-to-host
    /// calls, TLS) on this address. The first host founds the cluster.
    #[arg(long, value_name = "ADDR")]
    pub cluster_listen: Option<SocketAddr>,
    /// The cluster address peers dial [default: the bound address].
    #[arg(long, value_name = "ADDR", requires = "cluster_listen")]
    pub cluster_advertise: Option<SocketAddr>,
    /// Join the cluster of the host whose cluster port is at PEER (first
    /// start only; a member restarts from its data directory).
    #[arg(long, value_name = "PEER", requires_all = ["cluster_listen", "join_token"])]
    pub join: Option<SocketAddr>,
    /// The join token a member printed when it founded the cluster (also in
    /// its DATA_DIR/cluster/join.token).
    #[arg(
        long,
        value_name = "TOKEN",
        env = "CLOUDWARE_JOIN_TOKEN",
        hide_env_values = true
    )]
    pub join_token: Option<String>,
    /// This host's unique name in the cluster [default: the machine's hostname].
    #[arg(long, value_name = "NAME", requires = "cluster_listen")]
    pub name: Option<String>,
    /// A placement label, `KEY=VALUE` (repeatable).
    #[arg(long = "label", value_name = "KEY=VALUE", requires = "cluster_listen")]
    pub labels: Vec<String>,
    /// Snapshot and compact the raft log every N entries (tests force
    /// compaction with small values).
    #[arg(long, value_name = "N", hide = true, requires = "cluster_listen")]
    pub raft_snapshot_every: Option<u64>,
}

/// The partner API's platform key in the data directory (one key for the
/// whole cluster: joining hosts receive it).
const PARTNER_KEY_FILE: &str = "partner-platform.pem";

/// Runs a node until SIGINT or SIGTERM.
pub fn run(args: UpArgs, logging: &LoggingArgs) -> anyhow::Result<()> {
    let data_dir = match args.data_dir.clone() {
        Some(dir) => dir,
        None => default_data_dir().context("no --data-dir given and no home directory")?,
    };
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(&data_dir)
        .with_context(|| format!("cannot create the data directory {}", data_dir.display()))?;

    let Resolved {
        limits,
        engine: engine_config,
        listen,
        keyvalue,
        ..
    } = args.run.resolve(logging, Some(data_dir.join("compiled")))?;
    let admin_listen = match args.admin_listen {
        Some(addr) => addr,
        None => DEFAULT_ADMIN_LISTEN.parse()?,
    };
    let engine = Engine::with_capabilities(
        &engine_config,
        &limits,
        &NodeCapabilities::engine_capabilities(),
    )?;

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("cloudware-worker")
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(async move {
        let router = Arc::new(NodeRouter::default());
        let gateway = Gateway::bind(listen, router.clone(), GatewayLimits::from_engine(&limits))
            .await
            .with_context(|| format!("cannot listen on {listen}"))?;
        let admin = tokio::net::TcpListener::bind(admin_listen)
            .await
            .with_context(|| format!("cannot listen on {admin_listen}"))?;
        let gateway_addr = gateway.local_addr()?;
        let admin_addr = admin.local_addr()?;
        let packages = PackageStore::open(data_dir.join("packages"))
            .context("cannot open the package store")?;
        let (control, cluster) = match args.cluster.cluster_listen {
            None => {
                let control = ControlPlane::open(&data_dir.join("raft"), NODE_ID).await?;
                (Arc::new(control), None)
            }
            Some(listen) => {
                let options =
                    cluster_options(&args.cluster, listen, &data_dir, admin_addr, gateway_addr)?;
                let host = cloudware_cluster::ClusterHost::start(options, packages.clone())
                    .await
                    .context("cannot start the cluster host")?;
                // Requests other hosts forward here are served by the local routes.
                host.serve_forwarded(router.clone(), GatewayLimits::from_engine(&limits));
                // Service calls to apps placed on other hosts are made there.
                host.link_services(&router);
                (host.control().clone(), Some(host))
            }
        };
        let metrics = Arc::new(Metrics::new());
        let kv = keyvalue
            .open(&data_dir)
            .await
            .context("cannot open the key-value backend")?;
        // A cluster host's queues and topics are the cluster's replicated bus.
        let bus = cluster.as_ref().map(|host| {
            cloudware_cap_messaging::Replicated::new(host.bus().clone())
                as Arc<dyn cloudware_cap_messaging::MessageBus>
        });
        let capabilities = NodeCapabilities::open_with_bus(&data_dir, Some(kv), bus)
            .await
            .map_err(|err| anyhow::anyhow!(err))?;
        let reconciler = Reconciler::new(
            control.clone(),
            engine.clone(),
            packages.clone(),
            metrics.clone(),
            router.clone(),
            capabilities,
        );
        let health: Option<Arc<dyn cloudware_node::PeerHealth>> = cluster
            .as_ref()
            .map(|host| Arc::new(host.health()) as Arc<dyn cloudware_node::PeerHealth>);
        let mut placing = Vec::new();
        if let (Some(host), Some(health)) = (&cluster, &health) {
            // A cluster host runs the apps placed on it; the leader places
            // them and keeps raft membership in line with the host registry.
            reconciler.set_host(host.node_id());
            placing.push(
                cloudware_node::Scheduler::new(control.clone(), health.clone(), host.node_id())
                    .spawn(),
            );
            placing.push(cloudware_node::membership::spawn(
                control.clone(),
                health.clone(),
                host.node_id(),
            ));
        }
        // Load and route every current app before announcing the gateway.
        let reconciling = reconciler.start().await;

        let first_token = ensure_operator_token(&control, &data_dir).await?;

        let platform_key =
            cloudware_partner::PlatformKey::load_or_create(&data_dir.join(PARTNER_KEY_FILE))
                .context("cannot load the partner API's platform key")?;
        let partner_public_key = platform_key
            .public_key_pem()
            .context("cannot encode the platform key")?;
        let mut openapi = cloudware_partner::OpenApi::new(
            Arc::new(StatePartners::new(control.clone())),
            Arc::new(RoutedFunctions::new(router.clone())),
            platform_key,
            Default::default(),
        );
        if cluster.is_some() {
            // A replayed partner request is refused whichever host it reaches.
            openapi = openapi.with_replay_ledger(Arc::new(
                cloudware_node::partners::ReplicatedReplayLedger::new(control.clone()),
            ));
        }
        let openapi = Arc::new(openapi);
        let mut gateway = gateway.with_openapi(openapi).with_metrics(metrics.clone());
        if let Some(host) = &cluster {
            // Apps placed only on other hosts are forwarded to one of them.
            gateway = gateway.with_forwarder(Arc::new(host.forwarder()));
        }
        let context = Arc::new(ApiContext {
            control: control.clone(),
            packages,
            engine,
            metrics,
            reconciler,
            router,
            limits: ApiLimits {
                max_package_size: args.max_package_size.as_u64(),
                ..ApiLimits::default()
            },
            partner_public_key,
            health,
        });

        let shutdown = crate::serve::shutdown_signal();
        let mut stdout = std::io::stdout().lock();
        if let Some(secret) = first_token {
            writeln!(
                stdout,
                "Operator token (shown once; also in {}): {secret}",
                data_dir.join("admin.token").display()
            )?;
        }
        if let Some(host) = &cluster {
            if let Some(token) = host.founded_with() {
                writeln!(
                    stdout,
                    "Founded a cluster. Join token (also in {}): {token}",
                    data_dir.join("cluster").join("join.token").display()
                )?;
            }
            writeln!(
                stdout,
                "Cluster host {} on {}",
                host.node_id(),
                host.cluster_addr()
            )?;
        }
        writeln!(stdout, "Gateway on http://{gateway_addr}/")?;
        writeln!(stdout, "Admin API on http://{admin_addr}/")?;
        stdout.flush()?;
        drop(stdout);
        tracing::info!(%gateway_addr, %admin_addr, data_dir = %data_dir.display(), "node up");

        let (stop, stopped) = tokio::sync::watch::channel(false);
        let gateway_stopped = {
            let mut stopped = stopped.clone();
            async move {
                let _ = stopped.wait_for(|s| *s).await;
            }
        };
        let admin_stopped = {
            let mut stopped = stopped.clone();
            async move {
                let _ = stopped.wait_for(|s| *s).await;
            }
        };
        let serving_gateway = tokio::spawn(gateway.serve(gateway_stopped));
        let serving_admin = tokio::spawn(cloudware_api::serve(admin, context, admin_stopped));
        shutdown.await;
        tracing::info!("shutting down");
        let _ = stop.send(true);
        let _ = serving_gateway.await;
        let _ = serving_admin.await;
        reconciling.abort();
        for task in placing {
            task.abort();
        }
        control.shutdown().await;
        drop(cluster);
        Ok(())
    })
}

/// The cluster options of `cloudware up --cluster-listen`.
fn cluster_options(
    args: &ClusterArgs,
    listen: SocketAddr,
    data_dir: &Path,
    api: SocketAddr,
    gateway: SocketAddr,
) -> anyhow::Result<cloudware_cluster::ClusterOptions> {
    let join = match (args.join, &args.join_token) {
        (Some(peer), Some(token)) => Some(cloudware_cluster::JoinSpec {
            peer,
            token: token
                .parse()
                .map_err(|err| anyhow::anyhow!("the join token is malformed: {err}"))?,
        }),
        _ => None,
    };
    let name = match &args.name {
        Some(name) => name.clone(),
        None => std::fs::read_to_string("/proc/sys/kernel/hostname")
            .map(|name| name.trim().to_string())
            .ok()
            .filter(|name| !name.is_empty())
            .unwrap_or_else(|| "cloudware-host".to_string()),
    };
    let mut labels = std::collections::BTreeMap::new();
    for label in &args.labels {
        let (key, value) = label
            .split_once('=')
            .with_context(|| format!("--label {label}: expected KEY=VALUE"))?;
        labels.insert(key.to_string(), value.to_string());
    }
    // Peers dial the admin API and gateway at the advertised cluster IP when
    // they are bound to every interface.
    let advertise_ip = args.cluster_advertise.unwrap_or(listen).ip();
    let concrete = |addr: SocketAddr| {
        if addr.ip().is_unspecified() {
            SocketAddr::new(advertise_ip, addr.port())
        } else {
            addr
        }
    };
    Ok(cloudware_cluster::ClusterOptions {
        data_dir: data_dir.to_path_buf(),
        listen,
        advertise: args.cluster_advertise,
        api: concrete(api),
        gateway: concrete(gateway),
        name,
        labels,
        join,
        snapshot_every: args.raft_snapshot_every,
        shared_key: Some(data_dir.join(PARTNER_KEY_FILE)),
    })
}

/// `$XDG_DATA_HOME/cloudware` or `~/.local/share/cloudware`.
fn default_data_dir() -> Option<PathBuf> {
    let base = std::env::var_os("XDG_DATA_HOME")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .or_else(|| {
            std::env::var_os("HOME")
                .filter(|v| !v.is_empty())
                .map(|home| PathBuf::from(home).join(".local").join("share"))
        })?;
    Some(base.join("cloudware"))
}

/// On a node without an operator token, creates one, writes its secret to
/// `DATA_DIR/admin.token` (0600) and returns it for printing.
async fn ensure_operator_token(
    control: &ControlPlane,
    data_dir: &Path,
) -> anyhow::Result<Option<String>> {
    let has_operator = control.read(|state| {
        state
            .tokens()
            .any(|token| token.role == Role::Operator && !token.revoked)
    });
    if has_operator {
        return Ok(None);
    }
    let created = cloudware_api::create_token(
        control,
        Role::Operator,
        None,
        "created on first start".into(),
    )
    .await
    .context("cannot create the operator token")?;
    let path = data_dir.join("admin.token");
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&path)
        .with_context(|| format!("cannot write {}", path.display()))?;
    writeln!(file, "{}", created.token)?;
    file.sync_all()?;
    Ok(Some(created.token))
}
