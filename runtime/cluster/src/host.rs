//! [`ClusterHost::start`]: found a cluster, join one, or restart as a member; then serve the
//! cluster port, follow the host registry, forward proposals and package pulls to peers,
//! send heartbeats, and forward gateway requests to the hosts that run their app.

use crate::bus::{self, RpcBusForwarder};
use crate::calls::{CallReceiver, ServiceCaller};
use crate::files::{ClusterDir, Membership};
use crate::forward::pool::PeerPool;
use crate::forward::{ForwardConfig, ForwardReceiver, HostForwarder};
use crate::health::{self, HealthConfig, HostHealth};
use crate::listener::{self, ClusterListener, RaftGroups};
use crate::now_ms;
use crate::peers::{PeerBook, RaftDialer};
use crate::rpc::{self, JoinRequest, RpcClient, RpcState};
use crate::tls::MemberTls;
use cloudware_bus_replicated::ReplicatedBus;
use cloudware_cluster_tls::{ClusterCa, HostKey, JoinToken};
use cloudware_gateway::{GatewayLimits, Router};
use cloudware_node::{ControlPlane, NodeRouter, OpenError, PackageStore, ProposeFailure};
use cloudware_raft::{RaftConfig, TcpTransport, TcpTransportConfig};
use cloudware_state::{Command, CommandError, HostAddrs};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

/// The founding host's id.
const FOUNDER_ID: u64 = 1;
/// How long a joining host keeps asking to become a voter.
const VOTER_PATIENCE: Duration = Duration::from_secs(60);
/// Raft's clock in a cluster: elections within 0.5-1 s of losing the leader.
const CLUSTER_TICK: Duration = Duration::from_millis(50);

/// Why a host could not found, join or rejoin its cluster.
#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    /// Reading or writing `DATA_DIR/cluster` failed.
    #[error("cluster files in {dir}: {source}")]
    Files {
        /// The directory.
        dir: PathBuf,
        /// What failed.
        source: std::io::Error,
    },
    /// The cluster's certificates or keys are unusable.
    #[error("cluster TLS: {0}")]
    Tls(#[from] cloudware_cluster_tls::Error),
    /// The cluster port could not be opened.
    #[error("cannot listen on the cluster address {addr}: {source}")]
    Listen {
        /// The address.
        addr: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
    /// The advertised address cannot be dialed by peers.
    #[error("{0}")]
    Address(String),
    /// The raft log could not be opened.
    #[error(transparent)]
    Open(#[from] OpenError),
    /// The message bus's raft log could not be opened.
    #[error("cannot open the message bus's raft group: {0}")]
    Bus(#[source] cloudware_raft::RaftError),
    /// The peer refused the join, or could not be reached.
    #[error("joining through {peer} failed: {reason}")]
    Join {
        /// The peer asked.
        peer: SocketAddr,
        /// Why.
        reason: String,
    },
    /// A replicated change this host needs (its registration, the join secret, becoming a
    /// voter) did not go through.
    #[error("{what}: {reason}")]
    Control {
        /// What was being done.
        what: &'static str,
        /// Why it failed.
        reason: String,
    },
}

/// Joining an existing cluster.
#[derive(Clone, Debug)]
pub struct JoinSpec {
    /// A member's cluster address.
    pub peer: SocketAddr,
    /// The join token an existing host printed.
    pub token: JoinToken,
}

/// How a host takes part in a cluster.
#[derive(Clone, Debug)]
pub struct ClusterOptions {
    /// The host's data directory (`cluster/` and `raft/` live in it).
    pub data_dir: PathBuf,
    /// Where the cluster port listens.
    pub listen: SocketAddr,
    /// The cluster address peers dial (default: the bound address; must be a concrete IP).
    pub advertise: Option<SocketAddr>,
    /// The admin API address to advertise.
    pub api: SocketAddr,
    /// The gateway address to advertise.
    pub gateway: SocketAddr,
    /// This host's unique name.
    pub name: String,
    /// Placement labels.
    pub labels: BTreeMap<String, String>,
    /// Join this cluster (only on the first start; a member restarts from its files).
    pub join: Option<JoinSpec>,
    /// Snapshot and compact the raft log after this many entries (default: raft's).
    pub snapshot_every: Option<u64>,
    /// A private key file every host must hold the same copy of (the
    /// partner API's platform key, so that any host's replies verify with
    /// the one public key partners were given): a joining host receives the
    /// admitting host's copy within the TLS join exchange and writes it here
    /// (mode 0600) before it starts.
    pub shared_key: Option<PathBuf>,
}

/// A running cluster member.
pub struct ClusterHost {
    control: Arc<ControlPlane>,
    node_id: u64,
    cluster_addr: SocketAddr,
    founded_with: Option<JoinToken>,
    _listener: ClusterListener,
    peers: JoinHandle<()>,
    heartbeats: JoinHandle<()>,
    health: HostHealth,
    forwarder: HostForwarder,
    forwards: Arc<ForwardReceiver>,
    service_caller: ServiceCaller,
    calls: Arc<CallReceiver>,
    bus: ReplicatedBus,
    /// Background tasks (the bus group's, recording this host's addresses), aborted on drop.
    tasks: Vec<JoinHandle<()>>,
}

impl Drop for ClusterHost {
    fn drop(&mut self) {
        self.peers.abort();
        self.heartbeats.abort();
        for task in &self.tasks {
            task.abort();
        }
    }
}

impl ClusterHost {
    /// Founds, joins or rejoins the cluster, as `options` and the data directory say.
    /// `packages` is the host's package store: peers may pull from it, and it pulls what it
    /// lacks from them.
    pub async fn start(
        options: ClusterOptions,
        packages: PackageStore,
    ) -> Result<ClusterHost, ClusterError> {
        Self::start_with(options, packages, HealthConfig::default()).await
    }

    /// [`ClusterHost::start`] with heartbeats as `health` says (tests shorten them).
    pub async fn start_with(
        options: ClusterOptions,
        packages: PackageStore,
        health: HealthConfig,
    ) -> Result<ClusterHost, ClusterError> {
        let dir = ClusterDir::open(&options.data_dir).map_err(|source| ClusterError::Files {
            dir: options.data_dir.join("cluster"),
            source,
        })?;
        let files_error = |source| ClusterError::Files {
            dir: dir.path().to_path_buf(),
            source,
        };
        let listener =
            TcpListener::bind(options.listen)
                .await
                .map_err(|source| ClusterError::Listen {
                    addr: options.listen,
                    source,
                })?;
        let bound = listener
            .local_addr()
            .map_err(|source| ClusterError::Listen {
                addr: options.listen,
                source,
            })?;
        let cluster_addr = options.advertise.unwrap_or(bound);
        if cluster_addr.ip().is_unspecified() {
            return Err(ClusterError::Address(format!(
                "the cluster address {cluster_addr} cannot be dialed; pass --cluster-advertise IP:PORT"
            )));
        }
        let addrs = HostAddrs {
            cluster: cluster_addr.to_string(),
            api: options.api.to_string(),
            gateway: options.gateway.to_string(),
        };

        let mut founded_with = None;
        let mut bootstrap_peers = BTreeMap::new();
        let membership = match dir.membership().map_err(files_error)? {
            Some(membership) => {
                if options.join.is_some() {
                    tracing::warn!(
                        node_id = membership.node_id,
                        "already a member; ignoring --join"
                    );
                }
                membership
            }
            None => match &options.join {
                None => {
                    let ca = ClusterCa::generate(&options.name)?;
                    let identity = ca.issue_identity(FOUNDER_ID)?;
                    let token = JoinToken::new(&ca.fingerprint());
                    dir.save_ca(&ca)?;
                    dir.save_identity(&identity)?;
                    dir.save_join_token(&token).map_err(files_error)?;
                    founded_with = Some(token);
                    Membership {
                        node_id: FOUNDER_ID,
                        name: options.name.clone(),
                        voter: true,
                    }
                }
                Some(join) => {
                    let membership = join_through(&dir, join, &options, &addrs).await?;
                    bootstrap_peers = membership.1;
                    membership.0
                }
            },
        };
        let node_id = membership.node_id;
        let identity = dir.identity()?;
        let ca = dir.ca()?;
        let tls = MemberTls::new(&identity)?;

        let mut config = RaftConfig::new(options.data_dir.join("raft"), node_id);
        config.join = node_id != FOUNDER_ID;
        config.tick = CLUSTER_TICK;
        if let Some(every) = options.snapshot_every {
            config.snapshot_every = every;
            config.log_tail = config.log_tail.min(every);
        }
        let transport = TcpTransport::with_dialer(
            node_id,
            TcpTransportConfig::default(),
            Arc::new(RaftDialer {
                config: tls.raft_client.clone(),
                own: cluster_addr,
            }),
        );
        for (id, addr) in &bootstrap_peers {
            transport.set_peer(*id, *addr);
        }
        let control = Arc::new(ControlPlane::open_with(config, transport.clone()).await?);
        transport.report_unreachable_to(control.raft());
        let book = PeerBook::new(control.clone(), node_id);
        book.track(transport.clone());
        let bus_member = bus::open(
            &options.data_dir,
            node_id,
            node_id != FOUNDER_ID,
            CLUSTER_TICK,
            &tls,
            cluster_addr,
            &bootstrap_peers,
        )
        .await
        .map_err(ClusterError::Bus)?;
        let bus = bus_member.bus.clone();
        bus.set_forwarder(Arc::new(RpcBusForwarder {
            self_id: node_id,
            tls: tls.clone(),
            control: control.clone(),
        }));
        let pool = PeerPool::new(book.clone(), tls.h2_client.clone());
        let mut tasks = bus::follow(control.clone(), &book, &bus_member, node_id);
        let client = RpcClient::new(node_id, tls.clone(), control.clone(), pool.clone());
        let rpc_state = Arc::new(RpcState {
            node_id,
            control: control.clone(),
            client: client.clone(),
            packages: packages.clone(),
            ca,
            shared_key: options.shared_key.clone(),
            bus: bus.clone(),
        });
        let forwards = Arc::new(ForwardReceiver::default());
        let calls = Arc::new(CallReceiver::default());
        let listener = listener::serve(
            listener,
            tls.server.clone(),
            RaftGroups {
                control: control.raft().clone(),
                bus: bus.node().clone(),
                book: book.clone(),
            },
            rpc::router(rpc_state),
            forwards.clone(),
            calls.clone(),
        )
        .map_err(|source| ClusterError::Listen {
            addr: options.listen,
            source,
        })?;
        control.set_forwarder(Arc::new(client.clone()));
        packages.set_fetcher(Arc::new(client.clone()));
        let peers = book.follow_registry();
        let health = HostHealth::new(node_id, health);
        let heartbeats = health::start_heartbeats(health.clone(), pool.clone(), control.clone());
        let service_caller = ServiceCaller::new(pool.clone(), health.clone());
        let forwarder = HostForwarder::new(node_id, pool, health.clone(), ForwardConfig::default());

        if let Some(token) = &founded_with {
            register_founder(&control, &options, &addrs, token).await?;
        }
        if !membership.voter {
            let mut candidates: Vec<(u64, SocketAddr)> = bootstrap_peers.into_iter().collect();
            for (id, addr) in book.addrs() {
                if !candidates.iter().any(|(c, _)| *c == id) {
                    candidates.push((id, addr));
                }
            }
            client
                .become_voter(candidates, VOTER_PATIENCE)
                .await
                .map_err(|reason| ClusterError::Control {
                    what: "becoming a raft voter",
                    reason,
                })?;
            tracing::info!(node_id, "joined the cluster as a voter");
        } else if founded_with.is_none() && !update_addrs(&control, node_id, &addrs).await {
            let (control, addrs) = (control.clone(), addrs.clone());
            tasks.push(tokio::spawn(async move {
                while !update_addrs(&control, node_id, &addrs).await {
                    tokio::time::sleep(ADDRS_RETRY).await;
                }
                tracing::info!(node_id, "this host's new addresses are recorded");
            }));
        }
        dir.save_membership(&Membership {
            voter: true,
            ..membership
        })
        .map_err(files_error)?;
        wait_for_own_record(&control, node_id).await?;
        Ok(ClusterHost {
            control,
            node_id,
            cluster_addr,
            founded_with,
            _listener: listener,
            peers,
            heartbeats,
            health,
            forwarder,
            forwards,
            service_caller,
            calls,
            bus,
            tasks,
        })
    }

    /// The message bus replicated by the cluster's bus raft group: writes made here reach
    /// its leader; only the leader's host delivers to consumers.
    pub fn bus(&self) -> &ReplicatedBus {
        &self.bus
    }

    /// Liveness of the other hosts, from this host's heartbeats.
    pub fn health(&self) -> HostHealth {
        self.health.clone()
    }

    /// Forwards gateway requests to the hosts that run their app: give it to the
    /// gateway ([`cloudware_gateway::Gateway::with_forwarder`]).
    pub fn forwarder(&self) -> HostForwarder {
        self.forwarder.clone()
    }

    /// Serves requests other hosts forward here with `router` (local routes only) under
    /// `limits`. Until it is called, forwarded requests are answered "not here". Only
    /// the first call counts.
    pub fn serve_forwarded(&self, router: Arc<dyn Router>, limits: GatewayLimits) {
        if !self.forwards.set(router, limits) {
            tracing::warn!("the router for forwarded requests was set already");
        }
    }

    /// Makes service calls on other hosts: give it to the node's router
    /// ([`NodeRouter::set_remote_services`]), and serve the calls other hosts
    /// make here with the same router.
    pub fn link_services(&self, router: &Arc<NodeRouter>) {
        router.set_remote_services(Arc::new(self.service_caller.clone()));
        if !self.calls.set(router.clone()) {
            tracing::warn!("the router for service calls was set already");
        }
    }

    /// The replicated control plane (proposals made here reach the leader).
    pub fn control(&self) -> &Arc<ControlPlane> {
        &self.control
    }

    /// This host's id.
    pub fn node_id(&self) -> u64 {
        self.node_id
    }

    /// The address peers dial.
    pub fn cluster_addr(&self) -> SocketAddr {
        self.cluster_addr
    }

    /// The join token, when this start founded the cluster (print it once).
    pub fn founded_with(&self) -> Option<&JoinToken> {
        self.founded_with.as_ref()
    }
}

/// Asks `join.peer` to admit this host; stores the identity, CA and token it gets. Returns the
/// membership and the hosts to dial until the registry arrives.
async fn join_through(
    dir: &ClusterDir,
    join: &JoinSpec,
    options: &ClusterOptions,
    addrs: &HostAddrs,
) -> Result<(Membership, BTreeMap<u64, SocketAddr>), ClusterError> {
    let key = HostKey::generate()?;
    let request = JoinRequest {
        token: join.token.to_string(),
        name: options.name.clone(),
        addrs: addrs.clone(),
        labels: options.labels.clone(),
        csr: key.csr()?,
    };
    let answer = rpc::join_cluster(join.peer, &join.token, &request)
        .await
        .map_err(|reason| ClusterError::Join {
            peer: join.peer,
            reason,
        })?;
    let node_id = answer.certificate.node_id;
    let identity = key.into_identity(&answer.certificate)?;
    let ca = ClusterCa::from_pem(&answer.certificate.ca_pem, &answer.ca_key_pem)?;
    if ca.fingerprint() != *join.token.ca_fingerprint() {
        return Err(ClusterError::Join {
            peer: join.peer,
            reason: "the peer's CA does not match the token".into(),
        });
    }
    let files_error = |source| ClusterError::Files {
        dir: dir.path().to_path_buf(),
        source,
    };
    dir.save_ca(&ca)?;
    dir.save_identity(&identity)?;
    dir.save_join_token(&join.token).map_err(files_error)?;
    if let (Some(path), Some(pem)) = (&options.shared_key, &answer.shared_key_pem) {
        write_private(path, pem).map_err(|source| ClusterError::Files {
            dir: path.clone(),
            source,
        })?;
    }
    let membership = Membership {
        node_id,
        name: options.name.clone(),
        voter: false,
    };
    dir.save_membership(&membership).map_err(files_error)?;
    let peers = answer
        .hosts
        .iter()
        .filter(|host| host.id != node_id)
        .filter_map(|host| Some((host.id, host.addrs.cluster.parse().ok()?)))
        .collect();
    tracing::info!(node_id, peer = %join.peer, "admitted to the cluster");
    Ok((membership, peers))
}

/// Waits (bounded) until the replicated state this host applied includes its own registration:
/// everything committed before it joined (tenants, tokens, apps) is then here too.
async fn wait_for_own_record(control: &ControlPlane, node_id: u64) -> Result<(), ClusterError> {
    let mut applied = control.subscribe();
    let caught_up = async {
        while control.read(|state| state.host(node_id).is_none()) {
            if applied.changed().await.is_err() {
                return false;
            }
        }
        true
    };
    match tokio::time::timeout(VOTER_PATIENCE, caught_up).await {
        Ok(true) => Ok(()),
        _ => Err(ClusterError::Control {
            what: "catching up with the cluster's state",
            reason: format!("host {node_id}'s registration did not arrive"),
        }),
    }
}

/// Records the founding host and the join secret in the replicated state.
async fn register_founder(
    control: &ControlPlane,
    options: &ClusterOptions,
    addrs: &HostAddrs,
    token: &JoinToken,
) -> Result<(), ClusterError> {
    let join = Command::JoinHost {
        id: Some(FOUNDER_ID),
        name: options.name.clone(),
        addrs: addrs.clone(),
        labels: options.labels.clone(),
        at: now_ms(),
    };
    match control.propose(join).await {
        Ok(_) | Err(ProposeFailure::Rejected(CommandError::HostExists { .. })) => {}
        Err(err) => {
            return Err(ClusterError::Control {
                what: "registering the founding host",
                reason: err.to_string(),
            });
        }
    }
    update_addrs(control, FOUNDER_ID, addrs).await;
    let secret = Command::SetJoinSecret {
        hash: token.secret_hash().to_string(),
    };
    control
        .propose(secret)
        .await
        .map_err(|err| ClusterError::Control {
            what: "storing the join secret",
            reason: err.to_string(),
        })?;
    Ok(())
}

/// How long a host waits before trying again to record its new addresses.
const ADDRS_RETRY: Duration = Duration::from_secs(2);

/// Records this host's addresses if they changed since it last ran; returns whether the
/// registry has them. Until it does, peers dial this host where it no longer listens (a
/// restarted host whose first attempt fails keeps trying in the background).
async fn update_addrs(control: &ControlPlane, node_id: u64, addrs: &HostAddrs) -> bool {
    let current = control.read(|state| state.host(node_id).map(|host| host.addrs.clone()));
    if current.as_ref() == Some(addrs) {
        return true;
    }
    let command = Command::UpdateHostAddrs {
        id: node_id,
        addrs: addrs.clone(),
    };
    match control.propose(command).await {
        Ok(_) => true,
        Err(error) => {
            tracing::warn!(%error, "could not record this host's new addresses; retrying");
            false
        }
    }
}

/// Writes `text` to `path`, readable by this user only.
fn write_private(path: &std::path::Path, text: &str) -> std::io::Result<()> {
    use std::io::Write as _;
    use std::os::unix::fs::OpenOptionsExt as _;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)?;
    file.write_all(text.as_bytes())?;
    file.sync_all()
}
