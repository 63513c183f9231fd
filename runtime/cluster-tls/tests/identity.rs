//! Keys, certificates and identities on their own: saving and loading, and the checks
//! that keep mismatched parts out.

use std::os::unix::fs::PermissionsExt;

use cloudware_cluster_tls::{
    ClusterCa, Error, HostCsr, HostIdentity, HostKey, JoinToken, host_dns_name,
};

fn mode(path: &std::path::Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

#[test]
fn identity_save_load_round_trip() {
    let ca = ClusterCa::generate("test").unwrap();
    let identity = ca.issue_identity(42).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let target = dir.path().join("tls");
    identity.save(&target).unwrap();

    assert_eq!(mode(&target.join("host.key")), 0o600);
    assert_eq!(mode(&target), 0o700);
    let loaded = HostIdentity::load(&target).unwrap();
    assert_eq!(loaded.node_id(), 42);
    assert_eq!(loaded.cert_pem(), identity.cert_pem());
    assert_eq!(loaded.key_pem(), identity.key_pem());
    assert_eq!(loaded.ca_pem(), ca.cert_pem());
    assert_eq!(loaded.ca_fingerprint(), ca.fingerprint());

    // Saving again replaces the files and keeps the key private.
    loaded.save(&target).unwrap();
    assert_eq!(mode(&target.join("host.key")), 0o600);
    let leftovers: Vec<_> = std::fs::read_dir(&target)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .filter(|n| n.to_string_lossy().contains(".tmp-"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");

    ca.save(dir.path()).unwrap();
    assert_eq!(mode(&dir.path().join("cluster-ca.key")), 0o600);
}

#[test]
fn load_names_the_missing_file() {
    let dir = tempfile::tempdir().unwrap();
    let err = HostIdentity::load(dir.path()).unwrap_err();
    assert!(matches!(err, Error::Io { .. }), "{err}");
    assert!(err.to_string().contains("host.crt"), "{err}");
}

#[test]
fn identity_parts_must_fit_together() {
    let ca = ClusterCa::generate("test").unwrap();
    let other_ca = ClusterCa::generate("other").unwrap();
    let a = ca.issue_identity(1).unwrap();
    let b = ca.issue_identity(2).unwrap();

    // Someone else's key.
    let err = HostIdentity::from_pem(a.cert_pem(), b.key_pem(), a.ca_pem()).unwrap_err();
    assert!(err.to_string().contains("does not belong"), "{err}");
    // Another cluster's CA.
    let err = HostIdentity::from_pem(a.cert_pem(), a.key_pem(), other_ca.cert_pem()).unwrap_err();
    assert!(err.to_string().contains("cluster CA"), "{err}");
    // The CA certificate is not a host certificate.
    let err = HostIdentity::from_pem(ca.cert_pem(), &ca.key_pem(), ca.cert_pem()).unwrap_err();
    assert!(
        err.to_string().contains("not a cluster host certificate"),
        "{err}"
    );
    // Not PEM at all.
    assert!(HostIdentity::from_pem("garbage", a.key_pem(), a.ca_pem()).is_err());
    let two = format!("{}{}", a.cert_pem(), b.cert_pem());
    let err = HostIdentity::from_pem(&two, a.key_pem(), a.ca_pem()).unwrap_err();
    assert!(err.to_string().contains("more than one"), "{err}");

    // A key from elsewhere cannot adopt a certificate issued for another key.
    let key = HostKey::generate().unwrap();
    let issued = ca
        .issue_host(3, &HostKey::generate().unwrap().csr().unwrap())
        .unwrap();
    assert!(key.into_identity(&issued).is_err());

    // A host certificate is not a CA.
    assert!(ClusterCa::from_pem(a.cert_pem(), a.key_pem()).is_err());
    // The CA's key must be its own.
    assert!(ClusterCa::from_pem(ca.cert_pem(), &other_ca.key_pem()).is_err());
}

#[test]
fn host_certificate_names_the_node() {
    let ca = ClusterCa::generate("test").unwrap();
    let key = HostKey::generate().unwrap();
    let key_again = HostKey::from_pem(&key.key_pem()).unwrap();
    let issued = ca.issue_host(7, &key.csr().unwrap()).unwrap();
    assert_eq!(issued.node_id, 7);
    assert_eq!(issued.ca_pem, ca.cert_pem());
    let identity = key_again.into_identity(&issued).unwrap();
    assert_eq!(identity.node_id(), 7);
    assert_eq!(host_dns_name(7), "node-7.cluster.cloudware");
}

#[test]
fn bad_requests_are_rejected() {
    assert!(HostCsr::from_pem("not pem").is_err());
    let csr = HostKey::generate().unwrap().csr().unwrap();
    // Flip a bit in the signature: the proof of possession no longer holds.
    let mut der = csr.der().to_vec();
    let last = der.len() - 1;
    der[last] ^= 1;
    let pem = {
        use base64::Engine;
        let body = base64::engine::general_purpose::STANDARD.encode(&der);
        format!("-----BEGIN CERTIFICATE REQUEST-----\n{body}\n-----END CERTIFICATE REQUEST-----\n")
    };
    assert!(HostCsr::from_pem(&pem).is_err());
    // Serde carries a request as its PEM text.
    let json = serde_json::to_string(&csr).unwrap();
    assert_eq!(serde_json::from_str::<HostCsr>(&json).unwrap(), csr);
}

#[test]
fn bad_cluster_names_are_rejected() {
    assert!(ClusterCa::generate("").is_err());
    assert!(ClusterCa::generate(&"x".repeat(65)).is_err());
    assert!(ClusterCa::generate("a\nb").is_err());
}

#[test]
fn token_carries_the_ca_fingerprint() {
    let ca = ClusterCa::generate("test").unwrap();
    let token = JoinToken::new(&ca.fingerprint());
    let text = token.to_string();
    assert_eq!(
        text.split('.').nth(1).unwrap(),
        ca.fingerprint().to_string()
    );
    let parsed: JoinToken = text.parse().unwrap();
    assert_eq!(parsed.ca_fingerprint(), &ca.fingerprint());
    assert!(parsed.verify(&token.secret_hash()));
    assert!(!JoinToken::new(&ca.fingerprint()).verify(&token.secret_hash()));
    let err = "cwjoin1.zz.abc".parse::<JoinToken>().unwrap_err();
    assert!(err.to_string().contains("fingerprint"), "{err}");
}
