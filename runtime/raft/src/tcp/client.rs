//! [`TcpTransport`]: the sending side. One bounded queue and one writer task per peer; the
//! writer connects lazily (on the first message), batches whatever is queued into one write,
//! and on failure drops what is queued, reports the peer unreachable and backs off.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock, Weak};
use std::time::Duration;

use raft::eraftpb::Message;
use tokio::io::AsyncWriteExt as _;
use tokio::runtime::Handle;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tracing::Instrument as _;

use super::frame::encode_frame;
use super::{PeerDialer, PeerStream, PlainTcp, TcpTransportConfig};
use crate::RaftNode;
use crate::transport::Transport;

/// Bytes of frames gathered from the queue into one write.
const BATCH_BYTES: usize = 256 << 10;

/// Called with a peer's id when it cannot be reached.
type Unreachable = Arc<dyn Fn(u64) + Send + Sync>;

/// A [`Transport`] over persistent TCP connections, one per peer. Cheap to clone: clones share
/// the peer table, so keep one to update addresses ([`TcpTransport::set_peer`]) while another
/// is owned by the node. Writer tasks stop when the last clone is dropped.
#[derive(Clone)]
pub struct TcpTransport {
    shared: Arc<Shared>,
}

struct Shared {
    node_id: u64,
    config: TcpTransportConfig,
    dialer: Arc<dyn PeerDialer>,
    runtime: Handle,
    peers: Mutex<HashMap<u64, Peer>>,
    unreachable: Arc<RwLock<Option<Unreachable>>>,
    dropped: Arc<AtomicU64>,
}

/// A peer's address, queue and writer task (aborted when the peer is removed or replaced).
struct Peer {
    addr: SocketAddr,
    queue: mpsc::Sender<Message>,
    task: JoinHandle<()>,
}

impl Drop for Peer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl std::fmt::Debug for TcpTransport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TcpTransport")
            .field("node_id", &self.shared.node_id)
            .field("peers", &self.peers())
            .field("dropped", &self.dropped())
            .finish()
    }
}

impl TcpTransport {
    /// A transport for node `node_id` with no peers yet. Must be called within a tokio runtime
    /// (writer tasks are spawned on it).
    pub fn new(node_id: u64, config: TcpTransportConfig) -> Self {
        Self::with_dialer(node_id, config, Arc::new(PlainTcp))
    }

    /// A transport that opens its connections through `dialer` (e.g. TLS, or a preamble that
    /// authenticates this node) instead of plain TCP. Must be called within a tokio runtime.
    pub fn with_dialer(
        node_id: u64,
        config: TcpTransportConfig,
        dialer: Arc<dyn PeerDialer>,
    ) -> Self {
        TcpTransport {
            shared: Arc::new(Shared {
                node_id,
                config,
                dialer,
                runtime: Handle::current(),
                peers: Mutex::new(HashMap::new()),
                unreachable: Arc::new(RwLock::new(None)),
                dropped: Arc::new(AtomicU64::new(0)),
            }),
        }
    }

    /// Sets (or changes) the address of peer `id`. A changed address replaces the connection;
    /// messages queued for the old one are dropped.
    pub fn set_peer(&self, id: u64, addr: SocketAddr) {
        let mut peers = lock(&self.shared.peers);
        if peers.get(&id).is_some_and(|peer| peer.addr == addr) {
            return;
        }
        let (queue, rx) = mpsc::channel(self.shared.config.queue_capacity.max(1));
        let link = Link {
            to: id,
            addr,
            config: self.shared.config.clone(),
            dialer: Arc::clone(&self.shared.dialer),
            rx,
            unreachable: Arc::clone(&self.shared.unreachable),
            dropped: Arc::clone(&self.shared.dropped),
        };
        let span = tracing::info_span!("raft_peer", from = self.shared.node_id, to = id, %addr);
        let task = self.shared.runtime.spawn(link.run().instrument(span));
        tracing::info!(node_id = self.shared.node_id, peer = id, %addr, "raft peer address set");
        peers.insert(id, Peer { addr, queue, task });
    }

    /// Forgets peer `id`: its connection closes and messages to it are dropped.
    pub fn remove_peer(&self, id: u64) {
        if lock(&self.shared.peers).remove(&id).is_some() {
            tracing::info!(
                node_id = self.shared.node_id,
                peer = id,
                "raft peer removed"
            );
        }
    }

    /// The known peers and their addresses, sorted by id.
    pub fn peers(&self) -> Vec<(u64, SocketAddr)> {
        let mut peers: Vec<_> = lock(&self.shared.peers)
            .iter()
            .map(|(id, peer)| (*id, peer.addr))
            .collect();
        peers.sort_unstable();
        peers
    }

    /// Messages dropped so far: queue full, unknown peer, too large, or lost with a broken
    /// connection.
    pub fn dropped(&self) -> u64 {
        self.shared.dropped.load(Ordering::Relaxed)
    }

    /// Calls `callback` with a peer's id whenever a connection to it fails (once per attempt,
    /// so at most once per backoff period). Replaces any earlier callback.
    pub fn on_unreachable(&self, callback: impl Fn(u64) + Send + Sync + 'static) {
        *self
            .shared
            .unreachable
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(Arc::new(callback));
    }

    /// Reports unreachable peers to `node` ([`RaftNode::try_report_unreachable`]), so its
    /// leader probes them gently instead of streaming appends. Holds the node weakly.
    pub fn report_unreachable_to(&self, node: &Arc<RaftNode>) {
        let node: Weak<RaftNode> = Arc::downgrade(node);
        self.on_unreachable(move |peer| {
            if let Some(node) = node.upgrade() {
                node.try_report_unreachable(peer);
            }
        });
    }
}

impl Transport for TcpTransport {
    fn send(&mut self, messages: Vec<Message>) {
        let peers = lock(&self.shared.peers);
        for message in messages {
            let to = message.to;
            let Some(peer) = peers.get(&to) else {
                self.shared.dropped.fetch_add(1, Ordering::Relaxed);
                tracing::debug!(to, "no address for raft peer; dropping message");
                continue;
            };
            if let Err(error) = peer.queue.try_send(message) {
                self.shared.dropped.fetch_add(1, Ordering::Relaxed);
                let full = matches!(error, mpsc::error::TrySendError::Full(_));
                tracing::trace!(to, full, "raft peer queue unavailable; dropping message");
            }
        }
    }
}

/// The writer task's state for one peer.
struct Link {
    to: u64,
    addr: SocketAddr,
    config: TcpTransportConfig,
    dialer: Arc<dyn PeerDialer>,
    rx: mpsc::Receiver<Message>,
    unreachable: Arc<RwLock<Option<Unreachable>>>,
    dropped: Arc<AtomicU64>,
}

impl Link {
    /// Connects on demand and writes until the queue closes (peer removed, transport dropped).
    async fn run(mut self) {
        let initial = self.config.backoff_initial.max(Duration::from_millis(1));
        let mut backoff = initial;
        let mut failures = 0u32;
        // Wait for something to send before (re)connecting.
        while let Some(first) = self.rx.recv().await {
            let dialing = self.dialer.dial(self.to, self.addr);
            let connected = tokio::time::timeout(self.config.connect_timeout, dialing)
                .await
                .unwrap_or_else(|_| Err(std::io::ErrorKind::TimedOut.into()));
            let error = match connected {
                Ok(stream) => {
                    if failures > 0 {
                        tracing::info!(failures, "connected to raft peer");
                    } else {
                        tracing::debug!("connected to raft peer");
                    }
                    failures = 0;
                    backoff = initial;
                    match self.pump(stream, first).await {
                        Ok(()) => return,
                        Err(error) => {
                            tracing::warn!(%error, "connection to raft peer broke");
                            // Reconnect right away on the next message; back off only if
                            // that fails.
                            self.fail();
                            continue;
                        }
                    }
                }
                Err(error) => error,
            };
            failures += 1;
            if failures == 1 {
                tracing::warn!(%error, "cannot connect to raft peer; retrying with backoff");
            } else {
                tracing::debug!(%error, failures, ?backoff, "still cannot connect to raft peer");
            }
            self.dropped.fetch_add(1, Ordering::Relaxed);
            self.fail();
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(self.config.backoff_max);
        }
    }

    /// Reports the peer unreachable and drops what is queued (stale by the time a connection
    /// is back; raft re-sends).
    fn fail(&mut self) {
        let mut stale = 0;
        while self.rx.try_recv().is_ok() {
            stale += 1;
        }
        self.dropped.fetch_add(stale, Ordering::Relaxed);
        let callback = self
            .unreachable
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone();
        if let Some(callback) = callback {
            callback(self.to);
        }
    }

    /// Writes `first` and every following message; returns `Ok` once the queue closes.
    async fn pump(&mut self, mut stream: PeerStream, first: Message) -> std::io::Result<()> {
        let mut buf = Vec::with_capacity(BATCH_BYTES);
        let mut next = Some(first);
        loop {
            let message = match next.take() {
                Some(message) => message,
                None => match self.rx.recv().await {
                    Some(message) => message,
                    None => return Ok(()),
                },
            };
            buf.clear();
            let mut count = self.encode(&message, &mut buf);
            while buf.len() < BATCH_BYTES {
                match self.rx.try_recv() {
                    Ok(message) => count += self.encode(&message, &mut buf),
                    Err(_) => break,
                }
            }
            if buf.is_empty() {
                continue;
            }
            let writing = async {
                stream.write_all(&buf).await?;
                stream.flush().await
            };
            let written = tokio::time::timeout(self.config.write_timeout, writing)
                .await
                .unwrap_or_else(|_| Err(std::io::ErrorKind::TimedOut.into()));
            if let Err(error) = written {
                self.dropped.fetch_add(count, Ordering::Relaxed);
                return Err(error);
            }
        }
    }

    /// Appends `message`'s frame to `buf`; returns 1 if it was, 0 if it was dropped.
    fn encode(&self, message: &Message, buf: &mut Vec<u8>) -> u64 {
        match encode_frame(message, self.config.max_frame_bytes, buf) {
            Ok(()) => 1,
            Err(error) => {
                self.dropped.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(%error, msg_type = ?message.get_msg_type(), "dropping raft message");
                0
            }
        }
    }
}

/// Locks the peer table, recovering it if a panicking thread poisoned it.
fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}
