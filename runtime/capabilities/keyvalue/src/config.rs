//! Configuration: the node's choice of backend ([`KvConfig`], from its TOML
//! file) and a deployment's grant section ([`KvGrantSection`], from JSON).

use crate::KeyValueGrant;
use crate::backend::{KvBackend, KvError, spawn_sweeper};
use crate::redis_backend::RedisBackend;
use crate::sled_backend::SledBackend;
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

/// How often the sled backend's sweeper runs.
pub const SWEEP_INTERVAL: Duration = Duration::from_secs(10);
/// How many entries one sweep looks at, at most.
pub const SWEEP_BATCH: usize = 1000;
/// The longest bucket name.
pub const MAX_BUCKET_NAME: usize = 63;

/// Which store holds the buckets.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BackendKind {
    /// The embedded sled database (the default).
    #[default]
    Sled,
    /// A Redis server, at [`KvConfig::redis_url`].
    Redis,
}

/// The `[keyvalue]` section of the node's configuration.
///
/// ```toml
/// [keyvalue]
/// backend = "redis"                 # or "sled" (the default)
/// redis_url = "redis://127.0.0.1:6379/0"
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KvConfig {
    /// Which store holds the buckets.
    #[serde(default)]
    pub backend: BackendKind,
    /// The Redis server, for `backend = "redis"`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub redis_url: Option<String>,
    /// The sled database directory, for `backend = "sled"`; by default
    /// `keyvalue/` in the node's data directory.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<PathBuf>,
}

/// Why a [`KvConfig`] cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The settings contradict each other.
    #[error("keyvalue configuration: {0}")]
    Invalid(String),
    /// The backend could not be opened.
    #[error("cannot open the keyvalue {backend} backend: {source}")]
    Open {
        /// `sled` or `redis`.
        backend: &'static str,
        /// Why.
        #[source]
        source: KvError,
    },
}

impl KvConfig {
    /// Checks that the settings fit the backend.
    pub fn validate(&self) -> Result<(), ConfigError> {
        match self.backend {
            BackendKind::Redis if self.redis_url.is_none() => Err(ConfigError::Invalid(
                "backend = \"redis\" needs redis_url (e.g. \"redis://127.0.0.1:6379\")".into(),
            )),
            BackendKind::Redis if self.path.is_some() => Err(ConfigError::Invalid(
                "path is for backend = \"sled\"; remove it or choose sled".into(),
            )),
            BackendKind::Sled if self.redis_url.is_some() => Err(ConfigError::Invalid(
                "redis_url is set but backend is \"sled\"; set backend = \"redis\" to use it"
                    .into(),
            )),
            _ => Ok(()),
        }
    }

    /// Opens the configured backend; for sled, in `data_dir` unless
    /// [`KvConfig::path`] says otherwise, and starts its expiry sweeper
    /// (so it needs a Tokio runtime).
    pub async fn open(&self, data_dir: &Path) -> Result<Arc<dyn KvBackend>, ConfigError> {
        self.validate()?;
        match self.backend {
            BackendKind::Sled => {
                let path = self
                    .path
                    .clone()
                    .unwrap_or_else(|| data_dir.join("keyvalue"));
                let sled = SledBackend::open(&path).map_err(|source| ConfigError::Open {
                    backend: "sled",
                    source,
                })?;
                let backend: Arc<dyn KvBackend> = Arc::new(sled);
                spawn_sweeper(&backend, SWEEP_INTERVAL, SWEEP_BATCH);
                Ok(backend)
            }
            BackendKind::Redis => {
                let url = self.redis_url.as_deref().unwrap_or_default();
                let redis =
                    RedisBackend::connect(url)
                        .await
                        .map_err(|source| ConfigError::Open {
                            backend: "redis",
                            source,
                        })?;
                Ok(Arc::new(redis))
            }
        }
    }
}

/// A deployment's `keyvalue` grant section: `{"buckets": ["cart", ...]}`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KvGrantSection {
    /// The bucket names the deployment may open.
    pub buckets: BTreeSet<String>,
}

/// Why a grant section was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GrantError {
    /// Not of the form `{"buckets": [...]}`.
    #[error("invalid keyvalue grant: {0} (expected {{\"buckets\": [\"name\", ...]}})")]
    Shape(String),
    /// A bucket name that is not a slug.
    #[error("invalid bucket name {name:?}: {reason}")]
    BucketName {
        /// The name given.
        name: String,
        /// What is wrong with it.
        reason: &'static str,
    },
}

impl KvGrantSection {
    /// Parses and validates a grant section.
    pub fn parse(value: &serde_json::Value) -> Result<Self, GrantError> {
        let section =
            KvGrantSection::deserialize(value).map_err(|err| GrantError::Shape(err.to_string()))?;
        section.validate()?;
        Ok(section)
    }

    /// Parses and validates a grant section from JSON text.
    pub fn from_json(text: &str) -> Result<Self, GrantError> {
        let section: KvGrantSection =
            serde_json::from_str(text).map_err(|err| GrantError::Shape(err.to_string()))?;
        section.validate()?;
        Ok(section)
    }

    /// Checks every bucket name.
    pub fn validate(&self) -> Result<(), GrantError> {
        self.buckets
            .iter()
            .try_for_each(|name| validate_bucket_name(name))
    }

    /// The grant of these buckets to `tenant`, stored in `backend`.
    pub fn into_grant(self, tenant: &str, backend: Arc<dyn KvBackend>) -> KeyValueGrant {
        KeyValueGrant {
            tenant: tenant.to_owned(),
            buckets: self.buckets,
            backend,
        }
    }
}

/// Checks that `name` is a bucket slug: 1 to 63 characters of `a-z`,
/// `0-9`, `-`, `_` and `.`, starting with a letter or digit.
pub fn validate_bucket_name(name: &str) -> Result<(), GrantError> {
    let reason = if name.is_empty() {
        Some("it is empty")
    } else if name.len() > MAX_BUCKET_NAME {
        Some("it is longer than 63 characters")
    } else if !name.starts_with(|c: char| c.is_ascii_lowercase() || c.is_ascii_digit()) {
        Some("it must start with a lowercase letter or a digit")
    } else if !name
        .chars()
        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '-' | '_' | '.'))
    {
        Some("only lowercase letters, digits, '-', '_' and '.' are allowed")
    } else {
        None
    };
    match reason {
        Some(reason) => Err(GrantError::BucketName {
            name: name.to_owned(),
            reason,
        }),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grant_sections_are_validated() {
        let section = KvGrantSection::from_json(r#"{"buckets": ["cart", "sessions", "a.b-c_1"]}"#);
        assert_eq!(section.map(|s| s.buckets.len()), Ok(3));
        let unknown = KvGrantSection::from_json(r#"{"buckets": [], "bucket": "x"}"#);
        assert!(
            matches!(&unknown, Err(GrantError::Shape(m)) if m.contains("unknown field `bucket`")),
            "{unknown:?}"
        );
        assert!(matches!(
            KvGrantSection::parse(&serde_json::json!({})),
            Err(GrantError::Shape(m)) if m.contains("missing field `buckets`")
        ));
        assert!(KvGrantSection::parse(&serde_json::json!(["cart"])).is_err());
        for bad in ["", "Cart", "-x", ".x", "a b", "a:b", "ä", &"x".repeat(64)] {
            let json = serde_json::json!({ "buckets": [bad] });
            assert!(
                matches!(
                    KvGrantSection::parse(&json),
                    Err(GrantError::BucketName { .. })
                ),
                "{bad:?} accepted"
            );
        }
        assert!(validate_bucket_name(&"x".repeat(63)).is_ok());
        let message = validate_bucket_name("caRt").map_err(|e| e.to_string());
        assert_eq!(
            message,
            Err("invalid bucket name \"caRt\": only lowercase letters, digits, '-', '_' and '.' are allowed".into())
        );
    }

    #[test]
    fn node_config_is_checked() {
        let config: KvConfig = toml_like(r#"{"backend": "redis", "redis_url": "redis://x"}"#);
        assert!(config.validate().is_ok());
        let config: KvConfig = toml_like(r#"{"backend": "redis"}"#);
        assert!(config.validate().is_err());
        let config: KvConfig = toml_like(r#"{"redis_url": "redis://x"}"#);
        assert!(config.validate().is_err());
        assert_eq!(KvConfig::default().backend, BackendKind::Sled);
        assert!(serde_json::from_str::<KvConfig>(r#"{"backend": "mongo"}"#).is_err());
        assert!(serde_json::from_str::<KvConfig>(r#"{"url": "x"}"#).is_err());
    }

    fn toml_like(json: &str) -> KvConfig {
        serde_json::from_str(json).unwrap_or_else(|err| panic!("{json}: {err}"))
    }

    #[tokio::test]
    async fn sled_opens_in_the_data_dir() {
        let dir = tempfile::tempdir().expect("tempdir");
        let backend = KvConfig::default().open(dir.path()).await.expect("open");
        assert_eq!(backend.kind(), "sled");
        assert!(dir.path().join("keyvalue").exists());
    }
}
