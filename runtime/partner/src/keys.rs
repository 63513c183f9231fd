//! RSA key parsing and the platform's signing key.
//!
//! Partners register a public key in whichever form their tooling produced:
//! SPKI/PKCS#8 PEM (`-----BEGIN PUBLIC KEY-----`), PKCS#1 PEM
//! (`-----BEGIN RSA PUBLIC KEY-----`), or the bare base64 of the SPKI (or
//! PKCS#1) DER, which is what Alipay-style consoles show and partners paste.
//! [`parse_public_key`] takes all three. Keys under 2048 bits are refused:
//! `RSA2` means 2048 bits or more.
//!
//! The platform signs its replies with its own key, [`PlatformKey`], kept as
//! a PKCS#8 PEM file (mode 0600) that [`PlatformKey::load_or_create`]
//! generates on first start.

use rsa::pkcs1::{DecodeRsaPrivateKey, DecodeRsaPublicKey};
use rsa::pkcs8::{
    DecodePrivateKey, DecodePublicKey, EncodePrivateKey, EncodePublicKey, LineEnding,
};
use rsa::rand_core::OsRng;
use rsa::traits::PublicKeyParts;
use rsa::{RsaPrivateKey, RsaPublicKey};
use std::fmt;
use std::io::Write;
use std::path::Path;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;

/// The smallest modulus accepted, in bits.
pub const MIN_KEY_BITS: usize = 2048;

/// The modulus size of generated platform keys, in bits.
pub const PLATFORM_KEY_BITS: usize = 2048;

/// Why a key could not be parsed, generated, stored or loaded.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// The text is not a key in any accepted format.
    #[error("not an RSA key: {0}")]
    Parse(String),
    /// The key is smaller than [`MIN_KEY_BITS`].
    #[error("RSA key of {0} bits is too small (at least {MIN_KEY_BITS} bits required)")]
    TooSmall(usize),
    /// Key generation or encoding failed.
    #[error("key generation or encoding failed: {0}")]
    Crypto(String),
    /// Reading or writing the key file failed.
    #[error("key file {path}: {source}")]
    Io {
        /// The key file.
        path: String,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
}

fn check_size(bits: usize) -> Result<(), KeyError> {
    if bits < MIN_KEY_BITS {
        return Err(KeyError::TooSmall(bits));
    }
    Ok(())
}

/// Parses an RSA public key from SPKI PEM (`BEGIN PUBLIC KEY`), PKCS#1 PEM
/// (`BEGIN RSA PUBLIC KEY`) or bare base64 DER (SPKI or PKCS#1; whitespace
/// and line breaks ignored). Refuses keys under [`MIN_KEY_BITS`].
pub fn parse_public_key(text: &str) -> Result<RsaPublicKey, KeyError> {
    let text = text.trim();
    let key = if text.contains("-----BEGIN PUBLIC KEY-----") {
        RsaPublicKey::from_public_key_pem(text).map_err(|e| KeyError::Parse(e.to_string()))?
    } else if text.contains("-----BEGIN RSA PUBLIC KEY-----") {
        RsaPublicKey::from_pkcs1_pem(text).map_err(|e| KeyError::Parse(e.to_string()))?
    } else if text.starts_with("-----BEGIN") {
        return Err(KeyError::Parse(
            "expected a PUBLIC KEY or RSA PUBLIC KEY PEM block".into(),
        ));
    } else {
        let compact: String = text.split_ascii_whitespace().collect();
        let der = STANDARD
            .decode(compact.as_bytes())
            .map_err(|_| KeyError::Parse("neither PEM nor base64 DER".into()))?;
        RsaPublicKey::from_public_key_der(&der)
            .or_else(|_| RsaPublicKey::from_pkcs1_der(&der))
            .map_err(|e| KeyError::Parse(e.to_string()))?
    };
    check_size(key.n().bits())?;
    Ok(key)
}

/// Parses an RSA private key from PKCS#8 PEM (`BEGIN PRIVATE KEY`) or PKCS#1
/// PEM (`BEGIN RSA PRIVATE KEY`). Refuses keys under [`MIN_KEY_BITS`].
pub fn parse_private_key(pem: &str) -> Result<RsaPrivateKey, KeyError> {
    let pem = pem.trim();
    let key = if pem.contains("-----BEGIN RSA PRIVATE KEY-----") {
        RsaPrivateKey::from_pkcs1_pem(pem).map_err(|e| KeyError::Parse(e.to_string()))?
    } else {
        RsaPrivateKey::from_pkcs8_pem(pem).map_err(|e| KeyError::Parse(e.to_string()))?
    };
    check_size(key.n().bits())?;
    Ok(key)
}

/// The SPKI PEM (`-----BEGIN PUBLIC KEY-----`) of a public key, LF line
/// endings.
pub fn public_key_pem(key: &RsaPublicKey) -> Result<String, KeyError> {
    key.to_public_key_pem(LineEnding::LF)
        .map_err(|e| KeyError::Crypto(e.to_string()))
}

/// The platform's signing key: signs every reply of the partner API. Its
/// public half ([`PlatformKey::public_key_pem`]) is given to partners so they
/// can verify replies.
#[derive(Clone)]
pub struct PlatformKey {
    private: RsaPrivateKey,
    public: RsaPublicKey,
}

impl fmt::Debug for PlatformKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PlatformKey")
            .field("bits", &self.public.n().bits())
            .finish_non_exhaustive()
    }
}

impl PlatformKey {
    /// Wraps an existing private key (refusing keys under [`MIN_KEY_BITS`]).
    pub fn new(private: RsaPrivateKey) -> Result<Self, KeyError> {
        check_size(private.n().bits())?;
        let public = private.to_public_key();
        Ok(Self { private, public })
    }

    /// Generates a fresh [`PLATFORM_KEY_BITS`]-bit key from the OS random
    /// source. Slow (around a second in release builds, far more in debug).
    pub fn generate() -> Result<Self, KeyError> {
        let private = RsaPrivateKey::new(&mut OsRng, PLATFORM_KEY_BITS)
            .map_err(|e| KeyError::Crypto(e.to_string()))?;
        Self::new(private)
    }

    /// Parses a PKCS#8 (or PKCS#1) private key PEM.
    pub fn from_pem(pem: &str) -> Result<Self, KeyError> {
        Self::new(parse_private_key(pem)?)
    }

    /// Loads the key from the PKCS#8 PEM file at `path`, or, when there is
    /// none, generates one and writes it there atomically (a temporary file
    /// in the same directory created with mode 0600, synced, then renamed
    /// over `path`; the directory is synced too). The parent directory must
    /// exist.
    pub fn load_or_create(path: &Path) -> Result<Self, KeyError> {
        let io = |source| KeyError::Io {
            path: path.display().to_string(),
            source,
        };
        match std::fs::read_to_string(path) {
            Ok(pem) => {
                warn_if_readable_by_others(path);
                return Self::from_pem(&pem);
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(io(e)),
        }
        let key = Self::generate()?;
        let pem = key
            .private
            .to_pkcs8_pem(LineEnding::LF)
            .map_err(|e| KeyError::Crypto(e.to_string()))?;
        write_private_file(path, pem.as_bytes()).map_err(io)?;
        tracing::info!(path = %path.display(), "generated the partner API platform key");
        Ok(key)
    }

    /// The private key.
    pub fn private_key(&self) -> &RsaPrivateKey {
        &self.private
    }

    /// The public key partners verify replies with.
    pub fn public_key(&self) -> &RsaPublicKey {
        &self.public
    }

    /// The public key as SPKI PEM, to hand to partners.
    pub fn public_key_pem(&self) -> Result<String, KeyError> {
        public_key_pem(&self.public)
    }
}

fn write_private_file(path: &Path, contents: &[u8]) -> std::io::Result<()> {
    let dir = match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    };
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "platform-key".into());
    let tmp = dir.join(format!(".{name}.tmp-{}", std::process::id()));
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let result = (|| {
        let mut file = options.open(&tmp)?;
        file.write_all(contents)?;
        file.sync_all()?;
        drop(file);
        std::fs::rename(&tmp, path)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result?;
    // Make the rename durable; not every platform can open a directory.
    if let Ok(d) = std::fs::File::open(dir) {
        let _ = d.sync_all();
    }
    Ok(())
}

fn warn_if_readable_by_others(path: &Path) {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        if let Ok(meta) = std::fs::metadata(path)
            && meta.permissions().mode() & 0o077 != 0
        {
            tracing::warn!(path = %path.display(), "platform key file is accessible to group/others; expected mode 0600");
        }
    }
    #[cfg(not(unix))]
    let _ = path;
}

#[cfg(test)]
mod tests {
    use super::*;

    const PARTNER_PUB: &str = include_str!("../testdata/partner.pub.pem");

    #[test]
    fn public_key_formats_all_parse_to_the_same_key() {
        let spki = parse_public_key(PARTNER_PUB).expect("spki pem");
        let pkcs1 =
            parse_public_key(include_str!("../testdata/partner.pub.pkcs1.pem")).expect("pkcs1 pem");
        let der = parse_public_key(include_str!("../testdata/partner.pub.der.b64")).expect("der");
        assert_eq!(spki, pkcs1);
        assert_eq!(spki, der);
        // Base64 wrapped over lines, as pasted from a console.
        let raw = include_str!("../testdata/partner.pub.der.b64").trim();
        let wrapped: String = raw
            .as_bytes()
            .chunks(64)
            .map(|c| format!("{}\n", String::from_utf8_lossy(c)))
            .collect();
        assert_eq!(parse_public_key(&wrapped).expect("wrapped"), spki);
        // The PKCS#1 DER alone, base64 (the body of the PKCS#1 PEM).
        let pkcs1_b64: String = include_str!("../testdata/partner.pub.pkcs1.pem")
            .lines()
            .filter(|l| !l.starts_with("-----"))
            .collect();
        assert_eq!(parse_public_key(&pkcs1_b64).expect("pkcs1 der"), spki);
        let key = parse_private_key(include_str!("../testdata/partner.key.pem")).expect("key");
        assert_eq!(key.to_public_key(), spki);
    }

    #[test]
    fn garbage_and_weak_keys_are_refused() {
        assert!(matches!(parse_public_key("hello"), Err(KeyError::Parse(_))));
        assert!(matches!(
            parse_public_key("aGVsbG8="),
            Err(KeyError::Parse(_))
        ));
        assert!(matches!(
            parse_public_key(include_str!("../testdata/partner.key.pem")),
            Err(KeyError::Parse(_))
        ));
        assert!(matches!(
            parse_public_key(include_str!("../testdata/weak1024.pub.pem")),
            Err(KeyError::TooSmall(1024))
        ));
        assert!(matches!(
            parse_private_key(PARTNER_PUB),
            Err(KeyError::Parse(_))
        ));
    }

    #[test]
    fn private_key_pkcs1_and_pkcs8_agree() {
        let a = parse_private_key(include_str!("../testdata/partner.key.pem")).expect("pkcs8");
        let b =
            parse_private_key(include_str!("../testdata/partner.key.pkcs1.pem")).expect("pkcs1");
        assert_eq!(a, b);
        let pem = public_key_pem(&a.to_public_key()).expect("pem");
        assert_eq!(pem.trim(), PARTNER_PUB.trim());
    }

    #[test]
    fn load_or_create_generates_once_with_mode_0600_then_loads() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("partner-platform.pem");
        let created = PlatformKey::load_or_create(&path).expect("create");
        assert_eq!(created.public_key().n().bits(), PLATFORM_KEY_BITS);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).expect("meta").permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        let text = std::fs::read_to_string(&path).expect("read");
        assert!(text.starts_with("-----BEGIN PRIVATE KEY-----"));
        let loaded = PlatformKey::load_or_create(&path).expect("load");
        assert_eq!(loaded.public_key(), created.public_key());
        // No temporary file is left behind.
        let names: Vec<_> = std::fs::read_dir(dir.path())
            .expect("ls")
            .filter_map(|e| e.ok())
            .map(|e| e.file_name())
            .collect();
        assert_eq!(names.len(), 1);
        assert!(!format!("{created:?}").contains("BEGIN"));
    }

    #[test]
    fn load_or_create_refuses_a_corrupt_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("key.pem");
        std::fs::write(&path, "not a key").expect("write");
        assert!(matches!(
            PlatformKey::load_or_create(&path),
            Err(KeyError::Parse(_))
        ));
    }
}
