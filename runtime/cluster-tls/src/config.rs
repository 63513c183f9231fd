//! rustls configs for traffic between hosts: mutual TLS for cluster members, a server
//! config that also admits joining hosts (which have no certificate yet), and the client
//! config a joining host uses, which trusts the CA pinned by its join token.
//!
//! Every config is built with the ring provider from [`crypto_provider`] and speaks TLS 1.3
//! only (both ends are Cloudware hosts).

use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{CryptoProvider, WebPkiSupportedAlgorithms};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::server::{ParsedCertificate, WebPkiClientVerifier};
use rustls::{
    CertificateError, ClientConfig, DigitallySignedStruct, RootCertStore, ServerConfig,
    SignatureScheme,
};

use crate::ca::CaFingerprint;
use crate::cert;
use crate::error::{Error, Result};
use crate::host::HostIdentity;
use crate::names::JOIN_SERVER_NAME;
use crate::token::JoinToken;

const PROTOCOL_VERSIONS: &[&rustls::SupportedProtocolVersion] = &[&rustls::version::TLS13];

/// The crypto provider of every config here: rustls' ring provider.
pub fn crypto_provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// The server side of host-to-host mutual TLS: presents `identity`'s certificate (with the
/// CA certificate after it) and requires a client certificate issued by the cluster CA.
pub fn server_config(identity: &HostIdentity) -> Result<Arc<ServerConfig>> {
    build_server_config(identity, false)
}

/// Like [`server_config`], but a client may also connect without a certificate (a host
/// that is joining and has none yet); a client that does present one must still present
/// one issued by the cluster CA. Tell the two apart with [`peer_node_id`](crate::peer_node_id),
/// which is `None` for an anonymous client.
pub fn server_config_allowing_anonymous(identity: &HostIdentity) -> Result<Arc<ServerConfig>> {
    build_server_config(identity, true)
}

/// The client side of host-to-host mutual TLS: trusts only the cluster CA and presents
/// `identity`'s certificate. Dial a peer by its [`host_server_name`](crate::host_server_name)
/// (as [`connect`](crate::connect) does) so that the peer is checked to be that node.
pub fn client_config(identity: &HostIdentity) -> Result<Arc<ClientConfig>> {
    let provider = crypto_provider();
    let config = ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(PROTOCOL_VERSIONS)
        .map_err(Error::tls("client config"))?
        .with_root_certificates(ca_roots(identity)?)
        .with_client_auth_cert(vec![identity.cert_der().clone()], identity.key_der())
        .map_err(Error::tls("client config"))?;
    Ok(Arc::new(config))
}

/// The client config of a host that is joining with `token` and has no certificate yet.
///
/// The server must send its certificate followed by the CA certificate (as
/// [`server_config`] does). The server is trusted only if one certificate of its chain has
/// the fingerprint the token carries and that CA issued the server's host certificate. If
/// dialled by a host name ([`host_server_name`](crate::host_server_name)) the server must
/// be that host; if dialled as [`JOIN_SERVER_NAME`] (as
/// [`connect_for_join`](crate::connect_for_join) does) any host of the cluster will do.
pub fn join_client_config(token: &JoinToken) -> Result<Arc<ClientConfig>> {
    let provider = crypto_provider();
    let verifier = PinnedCaVerifier {
        fingerprint: *token.ca_fingerprint(),
        algorithms: provider.signature_verification_algorithms,
    };
    let config = ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(PROTOCOL_VERSIONS)
        .map_err(Error::tls("join client config"))?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(verifier))
        .with_no_client_auth();
    Ok(Arc::new(config))
}

fn build_server_config(
    identity: &HostIdentity,
    allow_anonymous: bool,
) -> Result<Arc<ServerConfig>> {
    let provider = crypto_provider();
    let mut verifier = WebPkiClientVerifier::builder_with_provider(
        Arc::new(ca_roots(identity)?),
        provider.clone(),
    );
    if allow_anonymous {
        verifier = verifier.allow_unauthenticated();
    }
    let chain = vec![identity.cert_der().clone(), identity.ca_cert_der().clone()];
    let config = ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(PROTOCOL_VERSIONS)
        .map_err(Error::tls("server config"))?
        .with_client_cert_verifier(verifier.build()?)
        .with_single_cert(chain, identity.key_der())
        .map_err(Error::tls("server config"))?;
    Ok(Arc::new(config))
}

fn ca_roots(identity: &HostIdentity) -> Result<RootCertStore> {
    let mut roots = RootCertStore::empty();
    roots
        .add(identity.ca_cert_der().clone())
        .map_err(Error::tls("cluster CA trust anchor"))?;
    Ok(roots)
}

/// Trusts a server whose chain carries the CA with a pinned fingerprint and whose host
/// certificate that CA issued.
#[derive(Debug)]
struct PinnedCaVerifier {
    fingerprint: CaFingerprint,
    algorithms: WebPkiSupportedAlgorithms,
}

impl ServerCertVerifier for PinnedCaVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let (pinned, others): (Vec<_>, Vec<_>) = intermediates
            .iter()
            .partition(|c| CaFingerprint::of_cert(c) == self.fingerprint);
        let Some(ca) = pinned.first() else {
            return Err(rustls::Error::InvalidCertificate(
                CertificateError::UnknownIssuer,
            ));
        };
        let mut roots = RootCertStore::empty();
        roots.add((*ca).clone().into_owned())?;
        let others: Vec<CertificateDer<'_>> = others.into_iter().cloned().collect();
        let cert = ParsedCertificate::try_from(end_entity)?;
        rustls::client::verify_server_cert_signed_by_trust_anchor(
            &cert,
            &roots,
            &others,
            now,
            self.algorithms.all,
        )?;
        match server_name {
            ServerName::DnsName(name) if name.as_ref() == JOIN_SERVER_NAME => {
                // Any host of the cluster: the certificate must name one.
                if cert::peer_node_id(std::slice::from_ref(end_entity)).is_none() {
                    return Err(rustls::Error::InvalidCertificate(
                        CertificateError::NotValidForName,
                    ));
                }
            }
            _ => rustls::client::verify_server_name(&cert, server_name)?,
        }
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}
