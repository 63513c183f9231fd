//! Configuration of the engine and the limits every guest runs under.
//!
//! Every limit has a default that is safe for an untrusted component on a
//! small machine; the CLI overrides them from flags and from a TOML file.

use bytesize::ByteSize;
use serde::{Deserialize, Serialize};
use std::path::PathBuf;
use std::time::Duration;

/// Limits applied to each request and to the instance that serves it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Limits {
    /// Wall-clock budget of one request, from admission to the end of the
    /// guest's handler (guest code and time waiting in host calls).
    #[serde(with = "humantime_serde")]
    pub request_timeout: Duration,
    /// Largest linear memory one instance may grow to.
    pub max_memory: ByteSize,
    /// Largest table (in elements) one instance may grow to.
    pub max_table_elements: u32,
    /// Largest wasm call stack of one instance.
    pub max_wasm_stack: ByteSize,
    /// Instances allowed to run at once; also the size of the instance pool.
    pub max_concurrent_instances: u32,
    /// How long a request waits for a free instance before it gets a 503.
    #[serde(with = "humantime_serde")]
    pub queue_timeout: Duration,
    /// Largest request body accepted (by `Content-Length` or by counting).
    pub max_request_body: ByteSize,
    /// Largest request head (request line plus headers) accepted.
    pub max_request_headers: ByteSize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            request_timeout: Duration::from_secs(30),
            max_memory: ByteSize::mib(128),
            max_table_elements: 100_000,
            max_wasm_stack: ByteSize::kib(512),
            max_concurrent_instances: 256,
            queue_timeout: Duration::from_millis(250),
            max_request_body: ByteSize::mib(64),
            max_request_headers: ByteSize::kib(64),
        }
    }
}

impl Limits {
    /// Checks that the limits make sense together, naming the offending one.
    pub fn validate(&self) -> Result<(), String> {
        fn positive(name: &str, ok: bool) -> Result<(), String> {
            if ok {
                Ok(())
            } else {
                Err(format!("limit `{name}` must be greater than zero"))
            }
        }
        positive("request_timeout", !self.request_timeout.is_zero())?;
        positive("max_memory", self.max_memory.as_u64() > 0)?;
        positive("max_table_elements", self.max_table_elements > 0)?;
        positive("max_wasm_stack", self.max_wasm_stack.as_u64() > 0)?;
        positive(
            "max_concurrent_instances",
            self.max_concurrent_instances > 0,
        )?;
        positive("max_request_headers", self.max_request_headers.as_u64() > 0)?;
        if self.max_memory.as_u64() > 4 * 1024 * 1024 * 1024 {
            return Err("limit `max_memory` cannot exceed 4 GiB (32-bit linear memory)".into());
        }
        if self.max_wasm_stack.as_u64() > 64 * 1024 * 1024 {
            return Err("limit `max_wasm_stack` cannot exceed 64 MiB".into());
        }
        if self.max_concurrent_instances > 100_000 {
            return Err("limit `max_concurrent_instances` cannot exceed 100000".into());
        }
        Ok(())
    }
}

/// How the shared wasmtime engine is built.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct EngineConfig {
    /// Use the pooling instance allocator (falls back to on-demand
    /// allocation, with a warning, when its address space cannot be reserved).
    pub pooling: bool,
    /// Bytes of each pooled linear memory, table and stack kept resident
    /// (reset with `memset`) between requests instead of being returned to the
    /// kernel; avoids an `madvise` and its TLB shootdown per request.
    pub keep_resident: ByteSize,
    /// How often the epoch ticks; a looping guest yields and has its deadline
    /// checked at this granularity.
    #[serde(with = "humantime_serde")]
    pub epoch_tick: Duration,
    /// Where compiled code is cached. `None` disables the cache.
    pub cache_dir: Option<PathBuf>,
}

impl Default for EngineConfig {
    fn default() -> Self {
        EngineConfig {
            pooling: true,
            keep_resident: ByteSize::mib(1),
            epoch_tick: Duration::from_millis(10),
            cache_dir: default_cache_dir(),
        }
    }
}

/// `$XDG_CACHE_HOME/cloudware/compiled`, or `~/.cache/cloudware/compiled`.
pub fn default_cache_dir() -> Option<PathBuf> {
    let base = std::env::var_os("XDG_CACHE_HOME")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .or_else(|| {
            std::env::var_os("HOME")
                .filter(|v| !v.is_empty())
                .map(|home| PathBuf::from(home).join(".cache"))
        })?;
    Some(base.join("cloudware").join("compiled"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid() {
        assert_eq!(Limits::default().validate(), Ok(()));
    }

    #[test]
    fn zero_limits_are_named() {
        let limits = Limits {
            max_concurrent_instances: 0,
            ..Limits::default()
        };
        let err = limits.validate().unwrap_err();
        assert!(err.contains("max_concurrent_instances"), "{err}");
    }
}
