//! Where the other hosts listen: the replicated host registry, corrected by what a host says
//! of itself when it dials this one ([`PeerBook`]). The raft transports of both groups and the
//! pooled connections dial what the book says.
//!
//! Why the registry alone is not enough: a host restarted on a new cluster address records it
//! with a raft proposal, which needs a quorum — and with one host of three down, the quorum
//! needs the moved host itself, which the others would dial where it no longer listens. So
//! every raft connection opens with the dialer's own cluster address ([`write_preamble`]),
//! authenticated by its certificate, and the accepting host dials it back there
//! ([`PeerBook::heard_from`]) until the registry says something newer.

use cloudware_cluster_tls::rustls::ClientConfig;
use cloudware_node::ControlPlane;
use cloudware_raft::TcpTransport;
use cloudware_raft::tcp::{Dialing, PeerDialer, PeerStream};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt as _, AsyncWrite, AsyncWriteExt as _};
use tokio::task::JoinHandle;

/// Longest address a preamble may carry.
const MAX_PREAMBLE: usize = 256;
/// Bound of reading a preamble.
const PREAMBLE_TIMEOUT: Duration = Duration::from_secs(5);

/// An address a host said it listens at, and the registry's address for it at the time: once
/// the registry says something else, the registry is newer and wins.
#[derive(Debug, Clone, Copy)]
struct Heard {
    addr: SocketAddr,
    registry_then: Option<SocketAddr>,
}

/// The cluster addresses of the other hosts, as this host dials them. See the module docs.
pub(crate) struct PeerBook {
    control: Arc<ControlPlane>,
    self_id: u64,
    heard: Mutex<BTreeMap<u64, Heard>>,
    transports: Mutex<Vec<TcpTransport>>,
}

impl PeerBook {
    pub(crate) fn new(control: Arc<ControlPlane>, self_id: u64) -> Arc<Self> {
        Arc::new(PeerBook {
            control,
            self_id,
            heard: Mutex::default(),
            transports: Mutex::default(),
        })
    }

    /// The registry's cluster addresses of every host but this one.
    fn registry(&self) -> BTreeMap<u64, SocketAddr> {
        self.control.read(|state| {
            state
                .hosts()
                .filter(|host| host.id != self.self_id)
                .filter_map(|host| Some((host.id, host.addrs.cluster.parse().ok()?)))
                .collect()
        })
    }

    /// Where to dial every other host: the registry, except where a host said otherwise
    /// since the registry last changed its address.
    pub(crate) fn addrs(&self) -> BTreeMap<u64, SocketAddr> {
        let mut addrs = self.registry();
        let mut heard = self.heard.lock().unwrap_or_else(PoisonError::into_inner);
        heard.retain(|id, said| {
            let now = addrs.get(id).copied();
            // Stale once the registry agrees or moved on; kept (unused) while the host is
            // not in the registry yet.
            now != Some(said.addr) && (now.is_none() || now == said.registry_then)
        });
        for (id, said) in heard.iter() {
            if let Some(addr) = addrs.get_mut(id) {
                *addr = said.addr;
            }
        }
        addrs
    }

    /// Where to dial host `id`, if it is known.
    pub(crate) fn addr_of(&self, id: u64) -> Option<SocketAddr> {
        self.addrs().get(&id).copied()
    }

    /// Host `id` dialed this one and said it listens at `addr`.
    pub(crate) fn heard_from(&self, id: u64, addr: SocketAddr) {
        if id == self.self_id {
            return;
        }
        let registry = self.registry().get(&id).copied();
        {
            let mut heard = self.heard.lock().unwrap_or_else(PoisonError::into_inner);
            if registry == Some(addr) {
                heard.remove(&id);
            } else if heard.get(&id).is_none_or(|said| said.addr != addr) {
                tracing::info!(host = id, %addr, ?registry, "a host listens elsewhere than the registry says");
                heard.insert(
                    id,
                    Heard {
                        addr,
                        registry_then: registry,
                    },
                );
            }
        }
        self.apply_all();
    }

    /// Keeps `transport`'s peers equal to [`PeerBook::addrs`] from now on (see
    /// [`PeerBook::follow_registry`]).
    pub(crate) fn track(&self, transport: TcpTransport) {
        self.transports
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(transport);
        self.apply_all();
    }

    /// Applies the book to the tracked transports after every applied command (a host says
    /// where it listens through [`PeerBook::heard_from`], which applies at once).
    pub(crate) fn follow_registry(self: &Arc<Self>) -> JoinHandle<()> {
        let book = self.clone();
        let mut applied = self.control.subscribe();
        tokio::spawn(async move {
            loop {
                book.apply_all();
                if applied.changed().await.is_err() {
                    return;
                }
            }
        })
    }

    fn apply_all(&self) {
        let wanted = self.addrs();
        // Keep bootstrap addresses (from a join answer) until the registry arrives.
        if wanted.is_empty() {
            return;
        }
        let transports = self
            .transports
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        for transport in transports.iter() {
            for (id, _) in transport.peers() {
                if !wanted.contains_key(&id) {
                    transport.remove_peer(id);
                }
            }
            for (id, addr) in &wanted {
                transport.set_peer(*id, *addr);
            }
        }
    }
}

/// Dials raft peers over mutual TLS (`config` carries the group's ALPN) and opens each
/// connection with this host's cluster address.
pub(crate) struct RaftDialer {
    pub(crate) config: Arc<ClientConfig>,
    pub(crate) own: SocketAddr,
}

impl PeerDialer for RaftDialer {
    fn dial(&self, peer: u64, addr: SocketAddr) -> Dialing {
        let (config, own) = (self.config.clone(), self.own);
        Box::pin(async move {
            let mut stream = cloudware_cluster_tls::connect(addr, peer, config)
                .await
                .map_err(std::io::Error::other)?;
            write_preamble(&mut stream, own).await?;
            Ok(Box::pin(stream) as PeerStream)
        })
    }
}

/// Opens a raft connection: the dialer's own cluster address, length-prefixed (`u16`
/// big-endian), before the frames.
pub(crate) async fn write_preamble<S: AsyncWrite + Unpin>(
    stream: &mut S,
    own: SocketAddr,
) -> std::io::Result<()> {
    let text = own.to_string();
    let len = u16::try_from(text.len()).map_err(std::io::Error::other)?;
    let mut bytes = len.to_be_bytes().to_vec();
    bytes.extend_from_slice(text.as_bytes());
    stream.write_all(&bytes).await
}

/// Reads what [`write_preamble`] wrote: the dialer's cluster address.
pub(crate) async fn read_preamble<S: AsyncRead + Unpin>(
    stream: &mut S,
) -> std::io::Result<SocketAddr> {
    let read = async {
        let len = usize::from(stream.read_u16().await?);
        if len > MAX_PREAMBLE {
            return Err(std::io::Error::other(format!(
                "a {len}-byte address in a raft preamble"
            )));
        }
        let mut text = vec![0; len];
        stream.read_exact(&mut text).await?;
        std::str::from_utf8(&text)
            .ok()
            .and_then(|text| text.parse().ok())
            .ok_or_else(|| std::io::Error::other("a raft preamble without an address"))
    };
    tokio::time::timeout(PREAMBLE_TIMEOUT, read)
        .await
        .unwrap_or_else(|_| Err(std::io::Error::other("no raft preamble in time")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_preamble_round_trips_and_bad_ones_are_refused() {
        let addr: SocketAddr = "127.0.0.1:4567".parse().unwrap();
        let mut bytes = Vec::new();
        write_preamble(&mut bytes, addr).await.unwrap();
        assert_eq!(read_preamble(&mut bytes.as_slice()).await.unwrap(), addr);

        let mut long = 300u16.to_be_bytes().to_vec();
        long.extend(vec![b'1'; 300]);
        assert!(read_preamble(&mut long.as_slice()).await.is_err());
        let mut junk = 3u16.to_be_bytes().to_vec();
        junk.extend(b"abc");
        assert!(read_preamble(&mut junk.as_slice()).await.is_err());
        assert!(read_preamble(&mut [0u8][..].as_ref()).await.is_err());
    }
}
