//! Join tokens: what an operator copies from a cluster host to a new host.
//!
//! `cwjoin1.<ca-fingerprint-hex>.<secret-base64url>`: the CA fingerprint lets the new host
//! check that the peer it dials belongs to the intended cluster (see
//! [`join_client_config`](crate::join_client_config)); the 256-bit secret proves to the
//! cluster that the new host was invited. The cluster keeps only the secret's SHA-256
//! ([`TokenHash`]) and checks a presented token with [`JoinToken::verify`].

use std::fmt;
use std::str::FromStr;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use sha2::{Digest, Sha256};

use crate::ca::CaFingerprint;
use crate::error::TokenError;

const PREFIX: &str = "cwjoin1";

/// A join token: the cluster CA's fingerprint and a random 256-bit secret. Its
/// [`Display`](fmt::Display) form is the token text; its `Debug` form hides the secret.
#[derive(Clone, PartialEq, Eq)]
pub struct JoinToken {
    ca_fingerprint: CaFingerprint,
    secret: [u8; 32],
}

impl JoinToken {
    /// A new token with a fresh random secret for the cluster whose CA has `ca_fingerprint`.
    pub fn new(ca_fingerprint: &CaFingerprint) -> JoinToken {
        JoinToken {
            ca_fingerprint: *ca_fingerprint,
            secret: rand::random(),
        }
    }

    /// The fingerprint of the CA of the cluster this token joins.
    pub fn ca_fingerprint(&self) -> &CaFingerprint {
        &self.ca_fingerprint
    }

    /// SHA-256 of the secret: what the cluster stores to check tokens later.
    pub fn secret_hash(&self) -> TokenHash {
        TokenHash(Sha256::digest(self.secret).into())
    }

    /// Whether this token's secret is the one whose hash the cluster stored. The comparison
    /// takes the same time whichever bytes differ.
    pub fn verify(&self, stored: &TokenHash) -> bool {
        let presented = self.secret_hash();
        let diff = presented
            .0
            .iter()
            .zip(stored.0.iter())
            .fold(0u8, |acc, (a, b)| acc | (a ^ b));
        std::hint::black_box(diff) == 0
    }
}

impl fmt::Display for JoinToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{PREFIX}.{}.{}",
            self.ca_fingerprint,
            URL_SAFE_NO_PAD.encode(self.secret)
        )
    }
}

impl fmt::Debug for JoinToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JoinToken")
            .field("ca_fingerprint", &self.ca_fingerprint)
            .field("secret", &"<redacted>")
            .finish()
    }
}

impl FromStr for JoinToken {
    type Err = TokenError;

    /// Parses the token text; surrounding whitespace (from copy and paste) is ignored.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.trim();
        let parts: Vec<&str> = s.split('.').collect();
        if parts.first() != Some(&PREFIX) {
            return Err(TokenError::Prefix);
        }
        let [_, fingerprint, secret] = parts[..] else {
            return Err(TokenError::Parts(parts.len()));
        };
        let ca_fingerprint = fingerprint.parse()?;
        let bytes = URL_SAFE_NO_PAD
            .decode(secret)
            .map_err(|e| TokenError::Secret(e.to_string()))?;
        let secret = <[u8; 32]>::try_from(bytes.as_slice())
            .map_err(|_| TokenError::Secret(format!("{} bytes", bytes.len())))?;
        Ok(JoinToken {
            ca_fingerprint,
            secret,
        })
    }
}

/// SHA-256 of a join token's secret, as the cluster stores it; displays (and parses) as
/// 64 lowercase hex digits, and serializes as that string.
#[derive(Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(into = "String", try_from = "String")]
pub struct TokenHash([u8; 32]);

impl TokenHash {
    /// The raw digest.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }
}

impl fmt::Display for TokenHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&hex::encode(self.0))
    }
}

impl fmt::Debug for TokenHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TokenHash({self})")
    }
}

impl FromStr for TokenHash {
    type Err = hex::FromHexError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let mut bytes = [0u8; 32];
        hex::decode_to_slice(s, &mut bytes)?;
        Ok(TokenHash(bytes))
    }
}

impl From<TokenHash> for String {
    fn from(hash: TokenHash) -> String {
        hash.to_string()
    }
}

impl TryFrom<String> for TokenHash {
    type Error = hex::FromHexError;

    fn try_from(s: String) -> Result<Self, Self::Error> {
        s.parse()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fingerprint() -> CaFingerprint {
        CaFingerprint::of_cert(b"not really a certificate")
    }

    #[test]
    fn token_text_round_trips() {
        let token = JoinToken::new(&fingerprint());
        let text = token.to_string();
        assert!(text.starts_with("cwjoin1."), "{text}");
        assert_eq!(text.len(), "cwjoin1.".len() + 64 + 1 + 43);
        let parsed: JoinToken = text.parse().unwrap();
        assert_eq!(parsed, token);
        assert_eq!(format!(" {text}\n").parse::<JoinToken>().unwrap(), token);
        assert!(!format!("{token:?}").contains(&text[73..]));
    }

    #[test]
    fn malformed_tokens_are_rejected() {
        let good = JoinToken::new(&fingerprint()).to_string();
        let (head, secret) = good.rsplit_once('.').unwrap();
        let fp = &head["cwjoin1.".len()..];
        type Check = fn(&TokenError) -> bool;
        let cases: Vec<(String, Check)> = vec![
            (String::new(), |e| *e == TokenError::Prefix),
            (format!("cwjoin2.{fp}.{secret}"), |e| {
                *e == TokenError::Prefix
            }),
            (format!("cwjoin1.{fp}"), |e| *e == TokenError::Parts(2)),
            (format!("{good}.x"), |e| *e == TokenError::Parts(4)),
            (format!("cwjoin1.{}.{secret}", &fp[1..]), |e| {
                matches!(e, TokenError::Fingerprint(_))
            }),
            (format!("cwjoin1.{}g.{secret}", &fp[1..]), |e| {
                matches!(e, TokenError::Fingerprint(_))
            }),
            (format!("cwjoin1.{fp}.{}", &secret[1..]), |e| {
                matches!(e, TokenError::Secret(_))
            }),
            (format!("cwjoin1.{fp}.{secret}AAAA"), |e| {
                matches!(e, TokenError::Secret(_))
            }),
            (format!("cwjoin1.{fp}.{}=", secret), |e| {
                matches!(e, TokenError::Secret(_))
            }),
            (format!("cwjoin1.{fp}.{}+", &secret[1..]), |e| {
                matches!(e, TokenError::Secret(_))
            }),
        ];
        for (text, expected) in cases {
            let err = text.parse::<JoinToken>().unwrap_err();
            assert!(expected(&err), "{text:?} gave {err:?}");
            assert!(!err.to_string().is_empty());
        }
    }

    #[test]
    fn verify_checks_the_secret() {
        let token = JoinToken::new(&fingerprint());
        let stored = token.secret_hash();
        assert!(token.verify(&stored));
        let other = JoinToken::new(&fingerprint());
        assert!(!other.verify(&stored));
        // The stored form survives a trip through text and serde.
        let back: TokenHash = stored.to_string().parse().unwrap();
        assert!(token.verify(&back));
        let json = serde_json::to_string(&stored).unwrap();
        assert_eq!(serde_json::from_str::<TokenHash>(&json).unwrap(), stored);
    }
}
