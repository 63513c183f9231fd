//! [`serve_peers`]: the receiving side. Accepts peer connections and hands every decoded frame
//! to a [`PeerInbox`] (a [`RaftNode`], normally). A frame that is too large or does not decode
//! closes its connection with a warning; the dialing peer reconnects.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use raft::eraftpb::Message;
use tokio::io::{AsyncRead, BufReader};
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio::task::{JoinHandle, JoinSet};
use tracing::Instrument as _;

use super::frame::{MAX_FRAME_BYTES, read_frame};
use crate::RaftNode;
use crate::error::RaftError;

/// Where [`serve_peers`] delivers received messages.
pub trait PeerInbox: Send + Sync + 'static {
    /// Takes one message from a peer. Waiting here back-pressures that peer's connection; an
    /// error closes it.
    fn deliver(&self, message: Message) -> impl Future<Output = Result<(), RaftError>> + Send;
}

impl PeerInbox for RaftNode {
    /// Steps the message into the node, unless it is addressed to another node (dropped with a
    /// warning: the sender's address book is wrong).
    async fn deliver(&self, message: Message) -> Result<(), RaftError> {
        if message.to != self.id() {
            tracing::warn!(
                to = message.to,
                node_id = self.id(),
                "raft message for another node; dropping"
            );
            return Ok(());
        }
        self.step(message).await
    }
}

/// A channel as inbox (tests, or a caller that wants to filter messages itself).
impl PeerInbox for mpsc::Sender<Message> {
    async fn deliver(&self, message: Message) -> Result<(), RaftError> {
        self.send(message).await.map_err(|_| RaftError::Stopped {
            reason: Some("peer inbox closed".into()),
        })
    }
}

/// The running accept loop of [`serve_peers`]. Dropping it (or [`PeerServer::stop`]) closes
/// the listener and every accepted connection.
#[derive(Debug)]
pub struct PeerServer {
    local_addr: SocketAddr,
    task: JoinHandle<()>,
}

impl PeerServer {
    /// The address the listener is bound to (what peers should dial).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Stops accepting and closes all connections.
    pub fn stop(self) {}
}

impl Drop for PeerServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Serves raft peers on `listener`: each accepted connection is read frame by frame (limit
/// [`MAX_FRAME_BYTES`]) and every message delivered to `inbox`. Must be called within a tokio
/// runtime.
pub fn serve_peers<I: PeerInbox>(
    listener: TcpListener,
    inbox: Arc<I>,
) -> std::io::Result<PeerServer> {
    serve_peers_with_limit(listener, inbox, MAX_FRAME_BYTES)
}

/// [`serve_peers`] with a custom frame size limit (should match the peers' send limit).
pub fn serve_peers_with_limit<I: PeerInbox>(
    listener: TcpListener,
    inbox: Arc<I>,
    max_frame_bytes: usize,
) -> std::io::Result<PeerServer> {
    let local_addr = listener.local_addr()?;
    let span = tracing::info_span!("raft_peer_server", %local_addr);
    let task = tokio::spawn(accept_loop(listener, inbox, max_frame_bytes).instrument(span));
    Ok(PeerServer { local_addr, task })
}

async fn accept_loop<I: PeerInbox>(listener: TcpListener, inbox: Arc<I>, max_frame_bytes: usize) {
    tracing::info!("serving raft peers");
    // Dropped (aborting every connection task) when this task is aborted.
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, remote)) => {
                    let span = tracing::info_span!(
                        "raft_peer_conn",
                        %remote,
                        from = tracing::field::Empty
                    );
                    let inbox = Arc::clone(&inbox);
                    let _ = stream.set_nodelay(true);
                    connections.spawn(
                        async move { serve_peer_stream(stream, &*inbox, max_frame_bytes).await }
                            .instrument(span),
                    );
                }
                Err(error) => {
                    // E.g. out of file descriptors: pause rather than spin.
                    tracing::warn!(%error, "accepting a raft peer connection failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            },
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
}

/// Reads frames from one peer connection (already accepted, and unwrapped from TLS or a
/// preamble if the cluster uses them) until the peer closes, a frame is refused, or the inbox
/// stops; delivers each message to `inbox`.
pub async fn serve_peer_stream<R, I>(stream: R, inbox: &I, max_frame_bytes: usize)
where
    R: AsyncRead + Unpin,
    I: PeerInbox,
{
    let mut reader = BufReader::with_capacity(64 << 10, stream);
    let mut from = None;
    tracing::debug!("raft peer connected");
    loop {
        match read_frame(&mut reader, max_frame_bytes).await {
            Ok(Some(message)) => {
                if from != Some(message.from) {
                    from = Some(message.from);
                    tracing::Span::current().record("from", message.from);
                }
                if let Err(error) = inbox.deliver(message).await {
                    tracing::debug!(%error, "raft node stopped; closing peer connection");
                    return;
                }
            }
            Ok(None) => {
                tracing::debug!("raft peer closed the connection");
                return;
            }
            Err(error) => {
                tracing::warn!(%error, "refusing raft peer frame; closing the connection");
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tcp::frame::encode_frame;
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    use tokio::net::TcpStream;

    async fn server(limit: usize) -> (PeerServer, mpsc::Receiver<Message>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let (tx, rx) = mpsc::channel(16);
        let server = serve_peers_with_limit(listener, Arc::new(tx), limit).unwrap();
        (server, rx)
    }

    fn message(term: u64) -> Message {
        Message {
            from: 1,
            to: 2,
            term,
            ..Default::default()
        }
    }

    /// Waits (bounded) until the server closes `stream`.
    async fn assert_closed(stream: &mut TcpStream) {
        let mut byte = [0u8; 1];
        let read = tokio::time::timeout(Duration::from_secs(5), stream.read(&mut byte))
            .await
            .expect("server closes the connection");
        assert!(matches!(read, Ok(0) | Err(_)), "{read:?}");
    }

    async fn recv(rx: &mut mpsc::Receiver<Message>) -> Result<Option<Message>, ()> {
        tokio::time::timeout(Duration::from_secs(5), rx.recv())
            .await
            .map_err(|_| ())
    }

    #[tokio::test]
    async fn delivers_frames_and_closes_on_bad_ones() {
        let (server, mut rx) = server(1024).await;

        // Good frames arrive in order.
        let mut stream = TcpStream::connect(server.local_addr()).await.unwrap();
        let mut buf = Vec::new();
        encode_frame(&message(1), 1024, &mut buf).unwrap();
        encode_frame(&message(2), 1024, &mut buf).unwrap();
        stream.write_all(&buf).await.unwrap();
        assert_eq!(recv(&mut rx).await.unwrap(), Some(message(1)));
        assert_eq!(recv(&mut rx).await.unwrap(), Some(message(2)));

        // An oversize header closes the connection.
        stream.write_all(&4096u32.to_be_bytes()).await.unwrap();
        assert_closed(&mut stream).await;

        // Garbage closes the connection; the server keeps accepting.
        let mut stream = TcpStream::connect(server.local_addr()).await.unwrap();
        let mut garbage = 8u32.to_be_bytes().to_vec();
        garbage.extend_from_slice(&[0xff; 8]);
        stream.write_all(&garbage).await.unwrap();
        assert_closed(&mut stream).await;

        let mut stream = TcpStream::connect(server.local_addr()).await.unwrap();
        buf.clear();
        encode_frame(&message(3), 1024, &mut buf).unwrap();
        stream.write_all(&buf).await.unwrap();
        assert_eq!(recv(&mut rx).await.unwrap(), Some(message(3)));
        assert!(rx.try_recv().is_err());

        // Stopping the server closes its connections.
        server.stop();
        assert_closed(&mut stream).await;
    }
}
