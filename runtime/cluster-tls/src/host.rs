//! A host's side of the cluster PKI: its private key (which never leaves the host), the
//! signing request it sends to the CA, the certificate it gets back, and the identity it
//! keeps on disk and presents on every connection.

use std::fmt;
use std::path::Path;

use rcgen::{CertificateParams, CertificateSigningRequestParams, DnType, KeyPair};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, CertificateSigningRequestDer, PrivateKeyDer};

use crate::ca::CaFingerprint;
use crate::cert;
use crate::error::{Error, Result};
use crate::files::{self, Secrecy};

const HOST_CERT_FILE: &str = "host.crt";
const HOST_KEY_FILE: &str = "host.key";
const CA_CERT_FILE: &str = "ca.crt";

/// A host's private key (ECDSA P-256). Generate it on the host, send the CA only
/// [`csr`](Self::csr), and combine the answer with [`into_identity`](Self::into_identity).
pub struct HostKey {
    key: KeyPair,
}

impl fmt::Debug for HostKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HostKey").finish_non_exhaustive()
    }
}

impl HostKey {
    /// A new random key.
    pub fn generate() -> Result<HostKey> {
        let key = KeyPair::generate().map_err(Error::generate("host key"))?;
        Ok(HostKey { key })
    }

    /// Loads a key saved as [`key_pem`](Self::key_pem).
    pub fn from_pem(key_pem: &str) -> Result<HostKey> {
        let key = KeyPair::from_pem(key_pem).map_err(|e| Error::invalid("host private key", e))?;
        Ok(HostKey { key })
    }

    /// The private key, PKCS#8 PEM.
    pub fn key_pem(&self) -> String {
        self.key.serialize_pem()
    }

    /// A certificate signing request for this key. It carries no names: it proves that the
    /// sender holds the key, and the CA decides the host's identity.
    pub fn csr(&self) -> Result<HostCsr> {
        let mut params = CertificateParams::default();
        params
            .distinguished_name
            .push(DnType::CommonName, "Cloudware host");
        let request = params
            .serialize_request(&self.key)
            .map_err(Error::generate("host certificate signing request"))?;
        Ok(HostCsr {
            der: request.der().to_vec(),
        })
    }

    /// Combines this key with the certificate the CA issued for it.
    pub fn into_identity(self, cert: &HostCertificate) -> Result<HostIdentity> {
        let identity = HostIdentity::from_pem(&cert.cert_pem, &self.key_pem(), &cert.ca_pem)?;
        if identity.node_id() != cert.node_id {
            return Err(Error::invalid(
                "host certificate",
                format!(
                    "it names node {} but was issued as node {}",
                    identity.node_id(),
                    cert.node_id
                ),
            ));
        }
        Ok(identity)
    }
}

/// A host's certificate signing request (PKCS#10), as sent to the CA; travels as PEM.
#[derive(Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(into = "String", try_from = "String")]
pub struct HostCsr {
    der: Vec<u8>,
}

impl fmt::Debug for HostCsr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HostCsr")
            .field("len", &self.der.len())
            .finish()
    }
}

impl HostCsr {
    /// Parses a PEM request, checking its self-signature (proof that the sender holds the
    /// key).
    pub fn from_pem(pem: &str) -> Result<HostCsr> {
        const WHAT: &str = "host certificate signing request";
        let der = CertificateSigningRequestDer::from_pem_slice(pem.as_bytes())
            .map_err(|e| Error::invalid(WHAT, format!("bad PEM: {e}")))?;
        CertificateSigningRequestParams::from_der(&der).map_err(|e| Error::invalid(WHAT, e))?;
        Ok(HostCsr {
            der: der.as_ref().to_vec(),
        })
    }

    /// The request, PEM.
    pub fn to_pem(&self) -> String {
        let body = base64::Engine::encode(&base64::engine::general_purpose::STANDARD, &self.der);
        let mut pem = String::from("-----BEGIN CERTIFICATE REQUEST-----\n");
        for line in body.as_bytes().chunks(64) {
            pem.push_str(&String::from_utf8_lossy(line));
            pem.push('\n');
        }
        pem.push_str("-----END CERTIFICATE REQUEST-----\n");
        pem
    }

    /// The request, DER.
    pub fn der(&self) -> &[u8] {
        &self.der
    }
}

impl From<HostCsr> for String {
    fn from(csr: HostCsr) -> String {
        csr.to_pem()
    }
}

impl TryFrom<String> for HostCsr {
    type Error = Error;

    fn try_from(pem: String) -> Result<Self> {
        HostCsr::from_pem(&pem)
    }
}

/// What the CA sends back to a host: its certificate and the CA certificate, PEM.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct HostCertificate {
    /// The node id the certificate names.
    pub node_id: u64,
    /// The host certificate.
    pub cert_pem: String,
    /// The cluster CA certificate.
    pub ca_pem: String,
}

/// Everything a host presents and trusts: its certificate, its private key and the
/// cluster CA certificate, checked to fit together.
pub struct HostIdentity {
    node_id: u64,
    cert_pem: String,
    key_pem: String,
    ca_pem: String,
    cert_der: CertificateDer<'static>,
    key_der: PrivateKeyDer<'static>,
    ca_der: CertificateDer<'static>,
}

impl fmt::Debug for HostIdentity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HostIdentity")
            .field("node_id", &self.node_id)
            .field("ca_fingerprint", &self.ca_fingerprint())
            .finish_non_exhaustive()
    }
}

impl Clone for HostIdentity {
    fn clone(&self) -> Self {
        HostIdentity {
            node_id: self.node_id,
            cert_pem: self.cert_pem.clone(),
            key_pem: self.key_pem.clone(),
            ca_pem: self.ca_pem.clone(),
            cert_der: self.cert_der.clone(),
            key_der: self.key_der.clone_key(),
            ca_der: self.ca_der.clone(),
        }
    }
}

impl HostIdentity {
    /// Assembles an identity, checking that the certificate names a host, that the key is
    /// its own and that the CA signed it. (Validity dates are checked by TLS, not here.)
    pub fn from_pem(cert_pem: &str, key_pem: &str, ca_pem: &str) -> Result<HostIdentity> {
        const WHAT: &str = "host certificate";
        let cert_der = cert::single_cert_from_pem(WHAT, cert_pem)?;
        let ca_der = cert::single_cert_from_pem("CA certificate", ca_pem)?;
        let cert = cert::parse(WHAT, &cert_der)?;
        let ca = cert::parse("CA certificate", &ca_der)?;
        let node_id = cert::host_node_id(WHAT, &cert)?;
        let key = KeyPair::from_pem(key_pem).map_err(|e| Error::invalid("host private key", e))?;
        cert::check_key_matches("host private key", &cert, &key)?;
        cert::check_signed_by(WHAT, &cert, &ca)?;
        let key_der = PrivateKeyDer::from_pem_slice(key_pem.as_bytes())
            .map_err(|e| Error::invalid("host private key", format!("bad PEM: {e}")))?;
        Ok(HostIdentity {
            node_id,
            cert_pem: cert_pem.to_owned(),
            key_pem: key_pem.to_owned(),
            ca_pem: ca_pem.to_owned(),
            cert_der,
            key_der,
            ca_der,
        })
    }

    /// Saves the identity to `dir` (created, mode 0700, if missing) as `host.crt`,
    /// `host.key` (mode 0600) and `ca.crt`.
    pub fn save(&self, dir: &Path) -> Result<()> {
        files::ensure_dir(dir)?;
        files::write_file(&dir.join(HOST_KEY_FILE), &self.key_pem, Secrecy::Secret)?;
        files::write_file(&dir.join(HOST_CERT_FILE), &self.cert_pem, Secrecy::Public)?;
        files::write_file(&dir.join(CA_CERT_FILE), &self.ca_pem, Secrecy::Public)
    }

    /// Loads an identity written by [`save`](Self::save).
    pub fn load(dir: &Path) -> Result<HostIdentity> {
        let cert_pem = files::read_file(&dir.join(HOST_CERT_FILE))?;
        let key_pem = files::read_file(&dir.join(HOST_KEY_FILE))?;
        let ca_pem = files::read_file(&dir.join(CA_CERT_FILE))?;
        HostIdentity::from_pem(&cert_pem, &key_pem, &ca_pem)
    }

    /// The node id the certificate names.
    pub fn node_id(&self) -> u64 {
        self.node_id
    }

    /// The host certificate, PEM.
    pub fn cert_pem(&self) -> &str {
        &self.cert_pem
    }

    /// The host's private key, PKCS#8 PEM.
    pub fn key_pem(&self) -> &str {
        &self.key_pem
    }

    /// The cluster CA certificate, PEM.
    pub fn ca_pem(&self) -> &str {
        &self.ca_pem
    }

    /// The host certificate, DER.
    pub fn cert_der(&self) -> &CertificateDer<'static> {
        &self.cert_der
    }

    /// The cluster CA certificate, DER.
    pub fn ca_cert_der(&self) -> &CertificateDer<'static> {
        &self.ca_der
    }

    /// The fingerprint of the cluster CA, for making join tokens.
    pub fn ca_fingerprint(&self) -> CaFingerprint {
        CaFingerprint::of_cert(&self.ca_der)
    }

    pub(crate) fn key_der(&self) -> PrivateKeyDer<'static> {
        self.key_der.clone_key()
    }
}
