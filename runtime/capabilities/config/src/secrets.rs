//! Secrets sealed at rest with XChaCha20-Poly1305 under a node key.
//!
//! A sealed secret is `v1:` followed by the base64 of a random 24-byte
//! nonce and the ciphertext. The secret's place (tenant, app, name) is the
//! associated data, so a sealed value copied to another app or name does
//! not open.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use rand::RngCore;
use std::fmt;
use std::io::Write;
use std::path::Path;

const PREFIX: &str = "v1:";

/// Why a secret could not be sealed or opened.
#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    /// The key file cannot be read or written.
    #[error("secret key file {path}: {source}")]
    KeyFile {
        /// The file.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// The key file does not hold a 32-byte key.
    #[error("secret key file {0} is corrupt (expected 32 bytes)")]
    CorruptKey(String),
    /// The sealed text is not one this key sealed for this place.
    #[error("the sealed secret `{0}` cannot be opened (wrong key, place or corrupt)")]
    CannotOpen(String),
}

/// The node's key for sealing secrets.
#[derive(Clone)]
pub struct SecretKey {
    cipher: XChaCha20Poly1305,
}

impl fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SecretKey([redacted])")
    }
}

impl SecretKey {
    /// Reads the key at `path`, or creates it (32 random bytes, mode 0600,
    /// written atomically) if there is none.
    pub fn load_or_create(path: &Path) -> Result<Self, SecretError> {
        let file_error = |source| SecretError::KeyFile {
            path: path.display().to_string(),
            source,
        };
        match std::fs::read(path) {
            Ok(bytes) => Self::from_bytes(&bytes)
                .ok_or_else(|| SecretError::CorruptKey(path.display().to_string())),
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => {
                let mut key = [0u8; 32];
                rand::rng().fill_bytes(&mut key);
                let dir = path.parent().unwrap_or(Path::new("."));
                let mut temp = tempfile_in(dir).map_err(file_error)?;
                temp.1.write_all(&key).map_err(file_error)?;
                temp.1.sync_all().map_err(file_error)?;
                std::fs::rename(&temp.0, path).map_err(file_error)?;
                Self::from_bytes(&key)
                    .ok_or_else(|| SecretError::CorruptKey(path.display().to_string()))
            }
            Err(err) => Err(file_error(err)),
        }
    }

    /// A key from its 32 bytes.
    pub fn from_bytes(bytes: &[u8]) -> Option<Self> {
        let cipher = XChaCha20Poly1305::new_from_slice(bytes).ok()?;
        Some(SecretKey { cipher })
    }

    /// Seals `value` for the secret at `place` (e.g. `tenant/app/name`).
    pub fn seal(&self, place: &str, value: &str) -> String {
        let mut nonce = [0u8; 24];
        rand::rng().fill_bytes(&mut nonce);
        let sealed = self
            .cipher
            .encrypt(
                XNonce::from_slice(&nonce),
                Payload {
                    msg: value.as_bytes(),
                    aad: place.as_bytes(),
                },
            )
            // Encryption fails only for messages beyond ~256 GiB.
            .unwrap_or_default();
        let mut bytes = nonce.to_vec();
        bytes.extend(sealed);
        format!("{PREFIX}{}", STANDARD.encode(bytes))
    }

    /// Opens a value sealed for `place`.
    pub fn open(&self, place: &str, sealed: &str) -> Result<SecretValue, SecretError> {
        let cannot = || SecretError::CannotOpen(place.to_owned());
        let bytes = sealed
            .strip_prefix(PREFIX)
            .and_then(|b64| STANDARD.decode(b64).ok())
            .ok_or_else(cannot)?;
        if bytes.len() < 24 {
            return Err(cannot());
        }
        let (nonce, ciphertext) = bytes.split_at(24);
        let plain = self
            .cipher
            .decrypt(
                XNonce::from_slice(nonce),
                Payload {
                    msg: ciphertext,
                    aad: place.as_bytes(),
                },
            )
            .map_err(|_| cannot())?;
        String::from_utf8(plain)
            .map(SecretValue::new)
            .map_err(|_| cannot())
    }
}

/// Whether `text` looks like a sealed secret.
pub fn is_sealed(text: &str) -> bool {
    text.starts_with(PREFIX)
}

/// A value that never shows itself in `Debug` or `Display`.
#[derive(Clone, PartialEq, Eq)]
pub struct SecretValue(String);

impl SecretValue {
    /// Wraps `value`.
    pub fn new(value: String) -> Self {
        SecretValue(value)
    }

    /// The value itself; only for handing it to the component.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for SecretValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

impl fmt::Display for SecretValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

/// A new file in `dir` with mode 0600 and a unique name.
fn tempfile_in(dir: &Path) -> std::io::Result<(std::path::PathBuf, std::fs::File)> {
    use std::os::unix::fs::OpenOptionsExt;
    let mut suffix = [0u8; 8];
    rand::rng().fill_bytes(&mut suffix);
    let path = dir.join(format!(".secrets.key.{}", hex_string(&suffix)));
    let file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&path)?;
    Ok((path, file))
}

fn hex_string(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sealed_secrets_open_only_in_their_place() {
        let key = SecretKey::from_bytes(&[7; 32]).expect("key");
        let sealed = key.seal("acme/shop/api_key", "s3cr3t");
        assert!(is_sealed(&sealed) && !sealed.contains("s3cr3t"));
        assert_eq!(
            key.open("acme/shop/api_key", &sealed)
                .expect("open")
                .expose(),
            "s3cr3t"
        );
        assert!(key.open("acme/other/api_key", &sealed).is_err());
        let other = SecretKey::from_bytes(&[8; 32]).expect("key");
        assert!(other.open("acme/shop/api_key", &sealed).is_err());
        assert!(key.open("acme/shop/api_key", "v1:AAAA").is_err());
        assert_eq!(format!("{:?}", SecretValue::new("x".into())), "[redacted]");
    }

    #[test]
    fn the_key_file_is_created_once_with_mode_0600() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().expect("dir");
        let path = dir.path().join("secrets.key");
        let first = SecretKey::load_or_create(&path).expect("create");
        let sealed = first.seal("p", "v");
        let mode = std::fs::metadata(&path).expect("meta").permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        let second = SecretKey::load_or_create(&path).expect("load");
        assert_eq!(second.open("p", &sealed).expect("open").expose(), "v");
        std::fs::write(&path, b"short").expect("write");
        assert!(matches!(
            SecretKey::load_or_create(&path),
            Err(SecretError::CorruptKey(_))
        ));
    }
}
