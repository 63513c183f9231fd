//! Reading certificates: PEM to DER, and the facts this crate needs out of an X.509
//! certificate (the host's node id, the public key, whether it is a CA, who signed it).

use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;
use x509_parser::certificate::X509Certificate;
use x509_parser::extensions::GeneralName;

use crate::error::{Error, Result};
use crate::names::node_id_from_dns_name;

/// The single certificate in `pem`; more than one, or none, is an error.
pub(crate) fn single_cert_from_pem(
    what: &'static str,
    pem: &str,
) -> Result<CertificateDer<'static>> {
    let mut certs = CertificateDer::pem_slice_iter(pem.as_bytes());
    let first = match certs.next() {
        Some(Ok(cert)) => cert,
        Some(Err(e)) => return Err(Error::invalid(what, format!("bad PEM: {e}"))),
        None => return Err(Error::invalid(what, "no CERTIFICATE block in the PEM text")),
    };
    if certs.next().is_some() {
        return Err(Error::invalid(
            what,
            "more than one certificate in the PEM text",
        ));
    }
    Ok(first)
}

/// Parses a DER certificate with x509-parser.
pub(crate) fn parse<'a>(what: &'static str, der: &'a [u8]) -> Result<X509Certificate<'a>> {
    match x509_parser::parse_x509_certificate(der) {
        Ok(([], cert)) => Ok(cert),
        Ok((rest, _)) => Err(Error::invalid(
            what,
            format!("{} stray bytes after the certificate", rest.len()),
        )),
        Err(e) => Err(Error::invalid(
            what,
            format!("not an X.509 certificate: {e}"),
        )),
    }
}

/// The node id of a host certificate: its one `node-<id>.cluster.cloudware` DNS name.
pub(crate) fn host_node_id(what: &'static str, cert: &X509Certificate<'_>) -> Result<u64> {
    let san = cert
        .subject_alternative_name()
        .map_err(|e| Error::invalid(what, format!("bad subject alternative names: {e}")))?
        .ok_or_else(|| {
            Error::invalid(
                what,
                "no subject alternative names: not a cluster host certificate",
            )
        })?;
    let mut ids = san
        .value
        .general_names
        .iter()
        .filter_map(|name| match name {
            GeneralName::DNSName(dns) => node_id_from_dns_name(dns),
            _ => None,
        });
    match (ids.next(), ids.next()) {
        (Some(id), None) => Ok(id),
        (None, _) => Err(Error::invalid(
            what,
            "no node-<id>.cluster.cloudware name: not a cluster host certificate",
        )),
        (Some(_), Some(_)) => Err(Error::invalid(what, "names more than one host")),
    }
}

/// The node id named by the first certificate of a verified peer chain, if it is a host
/// certificate.
pub(crate) fn peer_node_id(chain: &[CertificateDer<'_>]) -> Option<u64> {
    let cert = parse("peer certificate", chain.first()?).ok()?;
    host_node_id("peer certificate", &cert).ok()
}

/// Checks that `key` is the private half of `cert`'s public key.
pub(crate) fn check_key_matches(
    what: &'static str,
    cert: &X509Certificate<'_>,
    key: &rcgen::KeyPair,
) -> Result<()> {
    use rcgen::PublicKeyData;
    if key.subject_public_key_info() == cert.public_key().raw {
        Ok(())
    } else {
        Err(Error::invalid(
            what,
            "the private key does not belong to the certificate",
        ))
    }
}

/// Checks that `ca` is a CA certificate and that it signed `cert`.
pub(crate) fn check_signed_by(
    what: &'static str,
    cert: &X509Certificate<'_>,
    ca: &X509Certificate<'_>,
) -> Result<()> {
    if !ca.is_ca() {
        return Err(Error::invalid("CA certificate", "not a CA certificate"));
    }
    if cert.issuer().as_raw() != ca.subject().as_raw() {
        return Err(Error::invalid(
            what,
            "not issued by this cluster CA (issuer differs)",
        ));
    }
    cert.verify_signature(Some(ca.public_key()))
        .map_err(|e| Error::invalid(what, format!("not signed by this cluster CA: {e}")))
}
