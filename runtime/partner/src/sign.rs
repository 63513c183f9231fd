//! SHA256withRSA ("RSA2") signatures over the canonical string of a request.
//!
//! The canonical string is every field except `sign` whose value is not
//! empty, sorted by key (byte order), written `key=value` and joined with
//! `&`. Values are the decoded field values — not URL-encoded again — so
//! `biz_content={"a":1}&method=shop.order` is signed as it reads. The
//! signature is RSASSA-PKCS1-v1_5 with SHA-256 over the UTF-8 bytes of that
//! string, in standard base64 (with padding). This is what Alipay calls
//! `sign_type=RSA2`, and what `openssl dgst -sha256 -sign key.pem` computes.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use rsa::rand_core::OsRng;
use rsa::{Pkcs1v15Sign, RsaPrivateKey, RsaPublicKey};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;

/// Why a signature could not be made or did not verify.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignError {
    /// The signature is not valid base64.
    #[error("signature is not valid base64")]
    BadBase64,
    /// The signature does not match the content and key.
    #[error("signature does not match")]
    Mismatch,
    /// The private key could not sign (it is too small for a SHA-256
    /// signature).
    #[error("cannot sign: {0}")]
    Signing(String),
}

/// The name of the field that carries the signature, excluded from the
/// canonical string.
pub const SIGN_FIELD: &str = "sign";

/// The canonical string of `fields`: every field except `sign` with a
/// non-empty value, in key order, as `key=value` joined with `&`, values as
/// they are (not URL-encoded).
pub fn canonical_string(fields: &BTreeMap<String, String>) -> String {
    let mut out = String::new();
    for (key, value) in fields {
        if key == SIGN_FIELD || value.is_empty() {
            continue;
        }
        if !out.is_empty() {
            out.push('&');
        }
        out.push_str(key);
        out.push('=');
        out.push_str(value);
    }
    out
}

/// Signs the canonical string of `fields` with `private_key`; returns the
/// base64 signature (the value of the `sign` field).
///
/// Fails only for keys too small to hold a SHA-256 PKCS#1 v1.5 signature
/// (under 496 bits), which the key parsers of this crate never return.
pub fn sign(
    private_key: &RsaPrivateKey,
    fields: &BTreeMap<String, String>,
) -> Result<String, SignError> {
    sign_bytes(private_key, canonical_string(fields).as_bytes())
}

/// Verifies `sign_b64` over the canonical string of `fields`.
pub fn verify(
    public_key: &RsaPublicKey,
    fields: &BTreeMap<String, String>,
    sign_b64: &str,
) -> Result<(), SignError> {
    verify_bytes(public_key, canonical_string(fields).as_bytes(), sign_b64)
}

/// Signs raw bytes with SHA256withRSA; returns standard base64. The private
/// key operation is blinded (random from the OS) against timing attacks.
pub fn sign_bytes(private_key: &RsaPrivateKey, content: &[u8]) -> Result<String, SignError> {
    let digest = Sha256::digest(content);
    let signature = private_key
        .sign_with_rng(&mut OsRng, Pkcs1v15Sign::new::<Sha256>(), &digest)
        .map_err(|e| SignError::Signing(e.to_string()))?;
    Ok(STANDARD.encode(signature))
}

/// Verifies a base64 SHA256withRSA signature over raw bytes.
///
/// Whitespace inside the base64 text (line breaks some clients insert) is
/// ignored.
pub fn verify_bytes(
    public_key: &RsaPublicKey,
    content: &[u8],
    sign_b64: &str,
) -> Result<(), SignError> {
    let compact: String = sign_b64.split_ascii_whitespace().collect();
    let signature = STANDARD
        .decode(compact.as_bytes())
        .map_err(|_| SignError::BadBase64)?;
    let digest = Sha256::digest(content);
    public_key
        .verify(Pkcs1v15Sign::new::<Sha256>(), &digest, &signature)
        .map_err(|_| SignError::Mismatch)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys::{parse_private_key, parse_public_key};

    fn fields(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn partner_key() -> RsaPrivateKey {
        parse_private_key(include_str!("../testdata/partner.key.pem")).expect("fixture key")
    }

    fn partner_public() -> RsaPublicKey {
        parse_public_key(include_str!("../testdata/partner.pub.pem")).expect("fixture key")
    }

    #[test]
    fn canonical_string_sorts_skips_sign_and_empty_and_does_not_encode() {
        let f = fields(&[
            ("timestamp", "2024-05-01 12:00:00"),
            ("sign", "xyz"),
            ("app_id", "a1"),
            ("notify_url", ""),
            ("biz_content", r#"{"q":"a&b=c d"}"#),
            ("method", "shop.place-order"),
        ]);
        assert_eq!(
            canonical_string(&f),
            r#"app_id=a1&biz_content={"q":"a&b=c d"}&method=shop.place-order&timestamp=2024-05-01 12:00:00"#
        );
        assert_eq!(canonical_string(&BTreeMap::new()), "");
    }

    #[test]
    fn sign_then_verify_round_trips_and_detects_changes() {
        let key = partner_key();
        let public = partner_public();
        let mut f = fields(&[("app_id", "a1"), ("method", "shop.order"), ("x", "1")]);
        let signature = sign(&key, &f).expect("sign");
        verify(&public, &f, &signature).expect("verifies");
        // The `sign` field itself and empty fields do not matter.
        f.insert("sign".into(), signature.clone());
        f.insert("empty".into(), String::new());
        verify(&public, &f, &signature).expect("still verifies");
        // Any other change does.
        f.insert("x".into(), "2".into());
        assert_eq!(verify(&public, &f, &signature), Err(SignError::Mismatch));
    }

    #[test]
    fn verify_rejects_other_keys_and_bad_base64() {
        let other = parse_private_key(include_str!("../testdata/other.key.pem")).expect("fixture");
        let f = fields(&[("app_id", "a1")]);
        let forged = sign(&other, &f).expect("sign");
        assert_eq!(
            verify(&partner_public(), &f, &forged),
            Err(SignError::Mismatch)
        );
        assert_eq!(
            verify(&partner_public(), &f, "not base64!"),
            Err(SignError::BadBase64)
        );
        assert_eq!(verify(&partner_public(), &f, ""), Err(SignError::Mismatch));
    }

    #[test]
    fn verifies_a_signature_made_by_openssl() {
        // openssl dgst -sha256 -sign partner.key.pem openssl.canonical.txt | base64
        let f = fields(&[
            ("app_id", "2021000000000001"),
            ("biz_content", r#"{"order":{"id":7}}"#),
            ("charset", "utf-8"),
            ("method", "shop.place-order"),
            ("sign_type", "RSA2"),
            ("timestamp", "2024-05-01 12:00:00"),
            ("version", "1.0"),
        ]);
        assert_eq!(
            canonical_string(&f),
            include_str!("../testdata/openssl.canonical.txt")
        );
        let openssl_sig = include_str!("../testdata/openssl.canonical.sig.b64");
        verify(&partner_public(), &f, openssl_sig).expect("openssl signature verifies");
        // PKCS#1 v1.5 is deterministic: ours is byte-identical to OpenSSL's.
        assert_eq!(sign(&partner_key(), &f).expect("sign"), openssl_sig.trim());
    }
}
