//! Real TLS between hosts over loopback TCP: mutual TLS, refused clients, anonymous
//! joiners, and the join client's CA pinning.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use cloudware_cluster_tls::rustls::pki_types::PrivateKeyDer;
use cloudware_cluster_tls::rustls::pki_types::pem::PemObject;
use cloudware_cluster_tls::rustls::{ClientConfig, RootCertStore, ServerConfig};
use cloudware_cluster_tls::tokio_rustls::{TlsAcceptor, TlsConnector};
use cloudware_cluster_tls::{
    ClusterCa, HostCsr, HostIdentity, HostKey, JoinToken, client_config, connect, connect_for_join,
    crypto_provider, host_server_name, join_client_config, peer_node_id, server_config,
    server_config_allowing_anonymous,
};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

const LIMIT: Duration = Duration::from_secs(20);

/// Accepts one connection with `config`; on a good handshake answers "ping" with "pong"
/// and returns the client's node id.
async fn serve_once(
    config: Arc<ServerConfig>,
) -> (SocketAddr, JoinHandle<Result<Option<u64>, String>>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let task = tokio::spawn(async move {
        let (tcp, _) = listener.accept().await.map_err(|e| e.to_string())?;
        let mut tls = TlsAcceptor::from(config)
            .accept(tcp)
            .await
            .map_err(|e| format!("handshake: {e}"))?;
        let peer = peer_node_id(&tls);
        let mut buf = [0u8; 4];
        tls.read_exact(&mut buf).await.map_err(|e| e.to_string())?;
        assert_eq!(&buf, b"ping");
        tls.write_all(b"pong").await.map_err(|e| e.to_string())?;
        tls.flush().await.map_err(|e| e.to_string())?;
        tls.shutdown().await.map_err(|e| e.to_string())?;
        Ok(peer)
    });
    (addr, task)
}

async fn ping<S: AsyncRead + AsyncWrite + Unpin>(stream: &mut S) -> std::io::Result<()> {
    stream.write_all(b"ping").await?;
    stream.flush().await?;
    let mut buf = [0u8; 4];
    stream.read_exact(&mut buf).await?;
    assert_eq!(&buf, b"pong");
    Ok(())
}

async fn server_result(
    task: JoinHandle<Result<Option<u64>, String>>,
) -> Result<Option<u64>, String> {
    tokio::time::timeout(LIMIT, task).await.unwrap().unwrap()
}

/// A client trusting `roots`, presenting `client` (or no certificate).
fn raw_client(roots: &HostIdentity, client: Option<&HostIdentity>) -> Arc<ClientConfig> {
    let mut store = RootCertStore::empty();
    store.add(roots.ca_cert_der().clone()).unwrap();
    let builder = ClientConfig::builder_with_provider(crypto_provider())
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(store);
    Arc::new(match client {
        Some(id) => builder
            .with_client_auth_cert(vec![id.cert_der().clone()], key_of(id))
            .unwrap(),
        None => builder.with_no_client_auth(),
    })
}

fn key_of(identity: &HostIdentity) -> PrivateKeyDer<'static> {
    PrivateKeyDer::from_pem_slice(identity.key_pem().as_bytes()).unwrap()
}

/// Dials `addr` as node 1 with `config`; Ok only if the handshake and a ping succeed.
async fn dial_and_ping(addr: SocketAddr, config: Arc<ClientConfig>) -> Result<(), String> {
    let tcp = TcpStream::connect(addr).await.map_err(|e| e.to_string())?;
    let mut tls = TlsConnector::from(config)
        .connect(host_server_name(1), tcp)
        .await
        .map_err(|e| e.to_string())?;
    ping(&mut tls).await.map_err(|e| e.to_string())
}

#[tokio::test]
async fn mutual_tls_between_two_hosts() {
    let ca = ClusterCa::generate("test").unwrap();
    let first = ca.issue_identity(1).unwrap();

    // The second host joins the way a real one does: its key stays with it, only a PEM
    // request travels to the CA and a certificate comes back.
    let key = HostKey::generate().unwrap();
    let request = HostCsr::from_pem(&key.csr().unwrap().to_pem()).unwrap();
    let issued = ca.issue_host(2, &request).unwrap();
    let second = key.into_identity(&issued).unwrap();
    assert_eq!(second.node_id(), 2);
    assert_eq!(second.ca_fingerprint(), ca.fingerprint());

    let (addr, server) = serve_once(server_config(&first).unwrap()).await;
    let mut stream = tokio::time::timeout(LIMIT, connect(addr, 1, client_config(&second).unwrap()))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(peer_node_id(&stream), Some(1));
    ping(&mut stream).await.unwrap();
    assert_eq!(server_result(server).await.unwrap(), Some(2));
}

#[tokio::test]
async fn peer_must_be_the_node_dialled() {
    let ca = ClusterCa::generate("test").unwrap();
    let first = ca.issue_identity(1).unwrap();
    let second = ca.issue_identity(2).unwrap();
    let (addr, server) = serve_once(server_config(&first).unwrap()).await;
    let err = connect(addr, 3, client_config(&second).unwrap())
        .await
        .unwrap_err();
    assert!(err.to_string().contains("node 3"), "{err}");
    assert!(server_result(server).await.is_err());
}

#[tokio::test]
async fn client_certificate_from_another_ca_is_refused() {
    let ca = ClusterCa::generate("test").unwrap();
    let other_ca = ClusterCa::generate("other").unwrap();
    let server_id = ca.issue_identity(1).unwrap();
    let stranger = other_ca.issue_identity(2).unwrap();

    // The stranger trusts our CA, so only the server's check of its certificate stops it.
    let (addr, server) = serve_once(server_config(&server_id).unwrap()).await;
    let client = dial_and_ping(addr, raw_client(&server_id, Some(&stranger))).await;
    assert!(client.is_err());
    let refused = server_result(server).await.unwrap_err();
    assert!(refused.contains("UnknownIssuer"), "{refused}");

    // With its own client config it does not even trust the server.
    let (addr, server) = serve_once(server_config(&server_id).unwrap()).await;
    assert!(
        connect(addr, 1, client_config(&stranger).unwrap())
            .await
            .is_err()
    );
    assert!(server_result(server).await.is_err());

    // The anonymous-allowing config still refuses a certificate from another CA.
    let (addr, server) = serve_once(server_config_allowing_anonymous(&server_id).unwrap()).await;
    assert!(
        dial_and_ping(addr, raw_client(&server_id, Some(&stranger)))
            .await
            .is_err()
    );
    let refused = server_result(server).await.unwrap_err();
    assert!(refused.contains("UnknownIssuer"), "{refused}");
}

#[tokio::test]
async fn anonymous_clients_only_where_allowed() {
    let ca = ClusterCa::generate("test").unwrap();
    let server_id = ca.issue_identity(1).unwrap();
    let member = ca.issue_identity(2).unwrap();

    let (addr, server) = serve_once(server_config(&server_id).unwrap()).await;
    assert!(
        dial_and_ping(addr, raw_client(&server_id, None))
            .await
            .is_err()
    );
    let refused = server_result(server).await.unwrap_err();
    assert!(refused.contains("no certificates"), "{refused}");

    let (addr, server) = serve_once(server_config_allowing_anonymous(&server_id).unwrap()).await;
    dial_and_ping(addr, raw_client(&server_id, None))
        .await
        .unwrap();
    assert_eq!(server_result(server).await.unwrap(), None);

    // A member presenting its certificate is still identified there.
    let (addr, server) = serve_once(server_config_allowing_anonymous(&server_id).unwrap()).await;
    let mut stream = connect(addr, 1, client_config(&member).unwrap())
        .await
        .unwrap();
    ping(&mut stream).await.unwrap();
    assert_eq!(server_result(server).await.unwrap(), Some(2));
}

#[tokio::test]
async fn join_client_trusts_only_the_pinned_ca() {
    let ca = ClusterCa::generate("test").unwrap();
    let other_ca = ClusterCa::generate("other").unwrap();
    let server_id = ca.issue_identity(1).unwrap();
    let token = JoinToken::new(&ca.fingerprint());
    let token: JoinToken = token.to_string().parse().unwrap();
    let join = join_client_config(&token).unwrap();

    // Any host of the cluster, or the one named.
    let (addr, server) = serve_once(server_config_allowing_anonymous(&server_id).unwrap()).await;
    let mut stream = connect_for_join(addr, join.clone()).await.unwrap();
    assert_eq!(peer_node_id(&stream), Some(1));
    ping(&mut stream).await.unwrap();
    assert_eq!(server_result(server).await.unwrap(), None);

    let (addr, server) = serve_once(server_config_allowing_anonymous(&server_id).unwrap()).await;
    let mut stream = connect(addr, 1, join.clone()).await.unwrap();
    ping(&mut stream).await.unwrap();
    server_result(server).await.unwrap();

    let (addr, server) = serve_once(server_config_allowing_anonymous(&server_id).unwrap()).await;
    let err = connect(addr, 9, join.clone()).await.unwrap_err();
    assert!(err.to_string().contains("not valid for name"), "{err}");
    assert!(server_result(server).await.is_err());

    // A token for another cluster does not trust this one.
    let wrong = join_client_config(&JoinToken::new(&other_ca.fingerprint())).unwrap();
    let (addr, server) = serve_once(server_config_allowing_anonymous(&server_id).unwrap()).await;
    let err = connect_for_join(addr, wrong).await.unwrap_err();
    assert!(err.to_string().contains("UnknownIssuer"), "{err}");
    assert!(server_result(server).await.is_err());

    // An impostor that appends the genuine CA certificate to its own chain is caught:
    // the CA it shows did not sign its host certificate.
    let impostor = other_ca.issue_identity(1).unwrap();
    let forged = ServerConfig::builder_with_provider(crypto_provider())
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(
            vec![impostor.cert_der().clone(), server_id.ca_cert_der().clone()],
            key_of(&impostor),
        )
        .unwrap();
    let (addr, server) = serve_once(Arc::new(forged)).await;
    let err = connect_for_join(addr, join.clone()).await.unwrap_err();
    assert!(err.to_string().contains("UnknownIssuer"), "{err}");
    assert!(server_result(server).await.is_err());

    // So is a server that sends no CA certificate at all.
    let bare: ServerConfig = ServerConfig::builder_with_provider(crypto_provider())
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(vec![server_id.cert_der().clone()], key_of(&server_id))
        .unwrap();
    let (addr, server) = serve_once(Arc::new(bare)).await;
    let err = connect_for_join(addr, join).await.unwrap_err();
    assert!(err.to_string().contains("UnknownIssuer"), "{err}");
    assert!(server_result(server).await.is_err());
}

#[tokio::test]
async fn reloaded_ca_issues_certificates_the_cluster_trusts() {
    let ca = ClusterCa::generate("test").unwrap();
    let dir = tempfile::tempdir().unwrap();
    ca.save(dir.path()).unwrap();
    let reloaded = ClusterCa::load(dir.path()).unwrap();
    assert_eq!(reloaded.fingerprint(), ca.fingerprint());
    assert_eq!(reloaded.cluster_name(), "test");
    let from_pem = ClusterCa::from_pem(ca.cert_pem(), &ca.key_pem()).unwrap();
    assert_eq!(from_pem.fingerprint(), ca.fingerprint());

    let old = ca.issue_identity(1).unwrap();
    let new = reloaded.issue_identity(2).unwrap();
    let (addr, server) = serve_once(server_config(&old).unwrap()).await;
    let mut stream = connect(addr, 1, client_config(&new).unwrap())
        .await
        .unwrap();
    ping(&mut stream).await.unwrap();
    assert_eq!(server_result(server).await.unwrap(), Some(2));
}
