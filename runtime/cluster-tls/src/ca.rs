//! The cluster certificate authority: created once on the first host, it signs the
//! certificate of every host that joins, and its fingerprint pins the cluster in join
//! tokens.

use std::fmt;
use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use rcgen::{
    BasicConstraints, CertificateParams, CertificateSigningRequestParams, DnType,
    ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair, KeyUsagePurpose, SanType, SerialNumber,
};
use rustls::pki_types::CertificateDer;
use sha2::{Digest, Sha256};
use time::OffsetDateTime;

use crate::cert;
use crate::error::{Error, Result};
use crate::files::{self, Secrecy};
use crate::host::{HostCertificate, HostCsr, HostIdentity, HostKey};
use crate::names::host_dns_name;

/// How long a cluster CA certificate is valid: 20 years.
pub const CA_VALIDITY: Duration = Duration::from_secs(20 * 365 * 24 * 60 * 60);

/// How long a host certificate is valid: 5 years.
pub const HOST_VALIDITY: Duration = Duration::from_secs(5 * 365 * 24 * 60 * 60);

/// Certificates start being valid this long before they are made, for clock skew between
/// hosts.
const BACKDATE: Duration = Duration::from_secs(60 * 60);

const CA_COMMON_NAME: &str = "Cloudware cluster CA";
const CA_CERT_FILE: &str = "cluster-ca.crt";
const CA_KEY_FILE: &str = "cluster-ca.key";

/// The cluster's certificate authority: its certificate and its signing key.
pub struct ClusterCa {
    cluster_name: String,
    cert_der: CertificateDer<'static>,
    cert_pem: String,
    issuer: Issuer<'static, KeyPair>,
}

impl fmt::Debug for ClusterCa {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClusterCa")
            .field("cluster_name", &self.cluster_name)
            .field("fingerprint", &self.fingerprint())
            .finish_non_exhaustive()
    }
}

impl ClusterCa {
    /// Creates a new self-signed CA (ECDSA P-256, valid for [`CA_VALIDITY`]) for the
    /// cluster `cluster_name` (1 to 64 characters, no control characters), which it
    /// carries as its subject's organization.
    pub fn generate(cluster_name: &str) -> Result<ClusterCa> {
        if cluster_name.is_empty()
            || cluster_name.chars().count() > 64
            || cluster_name.chars().any(char::is_control)
        {
            return Err(Error::invalid(
                "cluster name",
                format!("{cluster_name:?} must be 1 to 64 characters without control characters"),
            ));
        }
        let mut params = CertificateParams::default();
        params
            .distinguished_name
            .push(DnType::CommonName, CA_COMMON_NAME);
        params
            .distinguished_name
            .push(DnType::OrganizationName, cluster_name);
        // The CA signs host certificates directly: no intermediate CAs below it.
        params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        set_validity(&mut params, CA_VALIDITY)?;
        params.serial_number = Some(random_serial());
        let key = KeyPair::generate().map_err(Error::generate("cluster CA key"))?;
        let cert = params
            .self_signed(&key)
            .map_err(Error::generate("cluster CA certificate"))?;
        Ok(ClusterCa {
            cluster_name: cluster_name.to_owned(),
            cert_pem: cert.pem(),
            cert_der: cert.der().clone(),
            issuer: Issuer::new(params, key),
        })
    }

    /// Loads a CA saved as [`cert_pem`](Self::cert_pem) and [`key_pem`](Self::key_pem),
    /// checking that the certificate is a CA and that the key is its own.
    pub fn from_pem(cert_pem: &str, key_pem: &str) -> Result<ClusterCa> {
        const WHAT: &str = "cluster CA certificate";
        let cert_der = cert::single_cert_from_pem(WHAT, cert_pem)?;
        let parsed = cert::parse(WHAT, &cert_der)?;
        if !parsed.is_ca() {
            return Err(Error::invalid(WHAT, "not a CA certificate"));
        }
        let cluster_name = parsed
            .subject()
            .iter_organization()
            .next()
            .and_then(|o| o.as_str().ok())
            .ok_or_else(|| Error::invalid(WHAT, "no cluster name (subject organization)"))?
            .to_owned();
        let key =
            KeyPair::from_pem(key_pem).map_err(|e| Error::invalid("cluster CA private key", e))?;
        cert::check_key_matches("cluster CA private key", &parsed, &key)?;
        let issuer =
            Issuer::from_ca_cert_der(&cert_der, key).map_err(|e| Error::invalid(WHAT, e))?;
        Ok(ClusterCa {
            cluster_name,
            cert_pem: cert_pem.to_owned(),
            cert_der,
            issuer,
        })
    }

    /// Saves the CA to `dir` (created if missing) as `cluster-ca.crt` and
    /// `cluster-ca.key`; the key file gets mode 0600.
    pub fn save(&self, dir: &Path) -> Result<()> {
        files::ensure_dir(dir)?;
        files::write_file(&dir.join(CA_KEY_FILE), &self.key_pem(), Secrecy::Secret)?;
        files::write_file(&dir.join(CA_CERT_FILE), &self.cert_pem, Secrecy::Public)
    }

    /// Loads a CA written by [`save`](Self::save).
    pub fn load(dir: &Path) -> Result<ClusterCa> {
        let cert_pem = files::read_file(&dir.join(CA_CERT_FILE))?;
        let key_pem = files::read_file(&dir.join(CA_KEY_FILE))?;
        ClusterCa::from_pem(&cert_pem, &key_pem)
    }

    /// The cluster's name, as given to [`generate`](Self::generate).
    pub fn cluster_name(&self) -> &str {
        &self.cluster_name
    }

    /// The CA certificate, PEM: what every host trusts.
    pub fn cert_pem(&self) -> &str {
        &self.cert_pem
    }

    /// The CA certificate, DER.
    pub fn cert_der(&self) -> &CertificateDer<'static> {
        &self.cert_der
    }

    /// The CA's private key, PKCS#8 PEM. Keep it secret: whoever has it can add hosts.
    pub fn key_pem(&self) -> String {
        self.issuer.key().serialize_pem()
    }

    /// SHA-256 of the CA certificate (DER): what join tokens pin.
    pub fn fingerprint(&self) -> CaFingerprint {
        CaFingerprint::of_cert(&self.cert_der)
    }

    /// Signs a certificate for host `node_id` over the public key in `csr`. The request
    /// only proves that the host holds the private key: every field of the certificate
    /// (the name `node-<id>.cluster.cloudware`, usages, validity) is the CA's choice.
    pub fn issue_host(&self, node_id: u64, csr: &HostCsr) -> Result<HostCertificate> {
        let request = CertificateSigningRequestParams::from_der(&csr.der().into())
            .map_err(|e| Error::invalid("host certificate signing request", e))?;
        let name = host_dns_name(node_id);
        let mut params = CertificateParams::default();
        params.distinguished_name.push(DnType::CommonName, &name);
        params.subject_alt_names =
            vec![SanType::DnsName(name.try_into().map_err(|e| {
                Error::invalid("host name", format!("{e:?}"))
            })?)];
        params.is_ca = IsCa::ExplicitNoCa;
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![
            ExtendedKeyUsagePurpose::ServerAuth,
            ExtendedKeyUsagePurpose::ClientAuth,
        ];
        params.use_authority_key_identifier_extension = true;
        set_validity(&mut params, HOST_VALIDITY)?;
        params.serial_number = Some(random_serial());
        let cert = params
            .signed_by(&request.public_key, &self.issuer)
            .map_err(Error::generate("host certificate"))?;
        Ok(HostCertificate {
            node_id,
            cert_pem: cert.pem(),
            ca_pem: self.cert_pem.clone(),
        })
    }

    /// Makes a whole identity for host `node_id` here (key included): for the first host,
    /// which holds the CA anyway, and for tests.
    pub fn issue_identity(&self, node_id: u64) -> Result<HostIdentity> {
        let key = HostKey::generate()?;
        let cert = self.issue_host(node_id, &key.csr()?)?;
        key.into_identity(&cert)
    }
}

fn set_validity(params: &mut CertificateParams, validity: Duration) -> Result<()> {
    let now = OffsetDateTime::now_utc();
    let span = |d: Duration| {
        time::Duration::try_from(d).map_err(|e| Error::invalid("certificate validity", e))
    };
    params.not_before = now - span(BACKDATE)?;
    params.not_after = now + span(validity)?;
    Ok(())
}

/// A random, positive, 16-byte serial number.
fn random_serial() -> SerialNumber {
    let mut bytes: [u8; 16] = rand::random();
    bytes[0] = (bytes[0] & 0x7f) | 0x40;
    SerialNumber::from_slice(&bytes)
}

/// SHA-256 of a cluster CA certificate's DER; displays (and parses) as 64 lowercase hex
/// digits, and serializes as that string.
#[derive(Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(into = "String", try_from = "String")]
pub struct CaFingerprint([u8; 32]);

impl CaFingerprint {
    /// The fingerprint of a DER certificate.
    pub fn of_cert(der: &[u8]) -> CaFingerprint {
        CaFingerprint(Sha256::digest(der).into())
    }

    /// The raw digest.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }
}

impl fmt::Display for CaFingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&hex::encode(self.0))
    }
}

impl fmt::Debug for CaFingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "CaFingerprint({self})")
    }
}

impl FromStr for CaFingerprint {
    type Err = crate::TokenError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = |detail: &str| crate::TokenError::Fingerprint(detail.to_owned());
        if s.len() != 64 {
            return Err(bad(&format!("{} characters", s.len())));
        }
        let mut bytes = [0u8; 32];
        hex::decode_to_slice(s, &mut bytes).map_err(|e| bad(&e.to_string()))?;
        Ok(CaFingerprint(bytes))
    }
}

impl From<CaFingerprint> for String {
    fn from(fp: CaFingerprint) -> String {
        fp.to_string()
    }
}

impl TryFrom<String> for CaFingerprint {
    type Error = crate::TokenError;

    fn try_from(s: String) -> Result<Self, Self::Error> {
        s.parse()
    }
}
