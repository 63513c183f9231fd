//! The deployment's configuration values and secrets, through
//! `wasi:config/store@0.2.0-rc.1`.
//!
//! Values come from `cloudware deploy … --config KEY=VALUE`, secrets from
//! `--secret KEY=VALUE`; both are read the same way (a secret wins over a
//! configuration value of the same name). Secrets are sealed at rest and
//! never shown back by the platform: keep it that way by never logging or
//! returning them.
//!
//! ```no_run
//! let greeting = cloudware_sdk::config::get("greeting").unwrap_or_else(|| "Hello".into());
//! let has_key = cloudware_sdk::config::get("api_key").is_some();
//! for (key, _value) in cloudware_sdk::config::all() {
//!     cloudware_sdk::log::debug!("configured: {key}");
//! }
//! # let _ = (greeting, has_key);
//! ```

use std::collections::BTreeMap;
use std::fmt;

use crate::bindings::wasi::config::store;

/// Why the configuration could not be read.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Error {
    /// The platform's configuration source failed.
    Upstream(String),
    /// An I/O failure while reading it.
    Io(String),
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Upstream(message) => write!(f, "configuration unavailable: {message}"),
            Error::Io(message) => write!(f, "configuration I/O error: {message}"),
        }
    }
}

impl std::error::Error for Error {}

impl From<store::Error> for Error {
    fn from(err: store::Error) -> Self {
        match err {
            store::Error::Upstream(message) => Error::Upstream(message),
            store::Error::Io(message) => Error::Io(message),
        }
    }
}

/// The value of `key` (a configuration value or a secret), or `None` if the
/// deployment has none or it could not be read (see [`try_get`]).
pub fn get(key: &str) -> Option<String> {
    try_get(key).ok().flatten()
}

/// The value of `key`, telling an absent key from a failure to read it.
pub fn try_get(key: &str) -> Result<Option<String>, Error> {
    Ok(store::get(key)?)
}

/// Every configuration value and secret of the deployment, by key (empty
/// if they could not be read, see [`try_all`]).
pub fn all() -> BTreeMap<String, String> {
    try_all().unwrap_or_default()
}

/// Every configuration value and secret of the deployment, by key.
pub fn try_all() -> Result<BTreeMap<String, String>, Error> {
    Ok(store::get_all()?.into_iter().collect())
}
