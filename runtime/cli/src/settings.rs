//! `serve` settings: built-in defaults, overridden by a TOML file, overridden
//! by flags.

use anyhow::Context;
use bytesize::ByteSize;
use clap::Args;
use cloudware_engine::{EngineConfig, Limits};
use serde::Deserialize;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

/// The default gateway address.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:8080";

/// The TOML configuration file of `cloudware serve`.
///
/// ```toml
/// listen = "127.0.0.1:8080"
/// allow_outbound = ["api.example.com"]
/// access_log = true
///
/// [limits]
/// request_timeout = "10s"
/// max_memory = "64 MiB"
/// max_concurrent_instances = 128
///
/// [engine]
/// pooling = true
/// cache_dir = "/var/cache/cloudware"
///
/// # `cloudware up` only: where key-value buckets live (default: sled in
/// # the data directory).
/// [keyvalue]
/// backend = "redis"
/// redis_url = "redis://127.0.0.1:6379/"
/// ```
#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ServeFile {
    pub listen: Option<SocketAddr>,
    pub allow_outbound: Option<Vec<String>>,
    pub access_log: Option<bool>,
    pub limits: Limits,
    pub engine: EngineConfig,
    pub keyvalue: cloudware_cap_keyvalue::KvConfig,
}

impl ServeFile {
    /// Reads and parses a configuration file.
    pub fn read(path: &Path) -> anyhow::Result<Self> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read config file {}", path.display()))?;
        Self::parse(&text).with_context(|| format!("config file {}", path.display()))
    }

    fn parse(text: &str) -> anyhow::Result<Self> {
        parse_toml(text)
    }
}

/// Parses TOML into `T` with a one-line error naming the line (toml's own
/// messages span several lines).
pub fn parse_toml<T: serde::de::DeserializeOwned>(text: &str) -> anyhow::Result<T> {
    toml::from_str(text).map_err(|err| {
        let message = err.message().to_string();
        match err.span() {
            Some(span) => {
                let line = text[..span.start].matches('\n').count() + 1;
                anyhow::anyhow!("line {line}: {message}")
            }
            None => anyhow::anyhow!(message),
        }
    })
}

/// Flags shared by the commands that run a gateway (`serve`, `up`).
#[derive(Args, Debug)]
pub struct RunArgs {
    /// Address of the HTTP gateway [default: 127.0.0.1:8080].
    #[arg(long, short, value_name = "ADDR")]
    pub listen: Option<SocketAddr>,
    /// TOML configuration file; flags override its settings.
    #[arg(long, short, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Log one line per request (method, path, status, latency, guest time).
    #[arg(long)]
    pub access_log: bool,
    #[command(flatten)]
    pub limits: LimitArgs,
    #[command(flatten)]
    pub engine: EngineArgs,
}

/// Settings resolved from built-in defaults, the file and the flags.
pub struct Resolved {
    /// Request and instance limits.
    pub limits: Limits,
    /// Engine configuration.
    pub engine: EngineConfig,
    /// Where the gateway listens.
    pub listen: SocketAddr,
    /// Outbound hosts the file allows (`serve` adds its flags).
    pub allow_outbound: Vec<String>,
    /// The key-value backend (`up`).
    pub keyvalue: cloudware_cap_keyvalue::KvConfig,
}

impl RunArgs {
    /// Reads the config file, installs logging, and merges everything.
    /// `cache_dir` replaces the default compile-cache location unless the
    /// file or a flag names one.
    pub fn resolve(
        &self,
        logging: &crate::logging::LoggingArgs,
        cache_dir: Option<PathBuf>,
    ) -> anyhow::Result<Resolved> {
        let file = match &self.config {
            Some(path) => ServeFile::read(path)?,
            None => ServeFile::default(),
        };
        crate::logging::init(logging, self.access_log || file.access_log.unwrap_or(false))?;
        let mut limits = file.limits;
        self.limits.apply(&mut limits);
        let mut engine = file.engine;
        if let Some(dir) = cache_dir
            && engine.cache_dir == cloudware_engine::default_cache_dir()
        {
            engine.cache_dir = Some(dir);
        }
        self.engine.apply(&mut engine);
        let listen = match (self.listen, file.listen) {
            (Some(addr), _) | (None, Some(addr)) => addr,
            (None, None) => DEFAULT_LISTEN.parse().context("default listen address")?,
        };
        Ok(Resolved {
            limits,
            engine,
            listen,
            allow_outbound: file.allow_outbound.unwrap_or_default(),
            keyvalue: file.keyvalue,
        })
    }
}

/// Flags that override limits from the file or the defaults.
#[derive(Args, Debug, Default)]
pub struct LimitArgs {
    /// Per-request deadline (e.g. `30s`, `500ms`); past it the client gets 504.
    #[arg(long, value_name = "DURATION")]
    pub request_timeout: Option<humantime::Duration>,
    /// Largest linear memory of one instance (e.g. `128MiB`).
    #[arg(long, value_name = "SIZE")]
    pub max_memory: Option<ByteSize>,
    /// Largest table of one instance, in elements.
    #[arg(long, value_name = "N")]
    pub max_table_elements: Option<u32>,
    /// Largest wasm call stack of one instance (e.g. `512KiB`).
    #[arg(long, value_name = "SIZE")]
    pub max_wasm_stack: Option<ByteSize>,
    /// Instances running at once (and the instance pool's size); requests
    /// beyond it wait up to --queue-timeout, then get 503.
    #[arg(long, value_name = "N")]
    pub max_concurrent_instances: Option<u32>,
    /// How long a request waits for a free instance before a 503.
    #[arg(long, value_name = "DURATION")]
    pub queue_timeout: Option<humantime::Duration>,
    /// Largest request body (e.g. `64MiB`); larger gets 413.
    #[arg(long, value_name = "SIZE")]
    pub max_request_body: Option<ByteSize>,
    /// Largest request head, request line plus headers (e.g. `64KiB`).
    #[arg(long, value_name = "SIZE")]
    pub max_request_headers: Option<ByteSize>,
}

impl LimitArgs {
    /// Applies the flags given on top of `limits`.
    pub fn apply(&self, limits: &mut Limits) {
        if let Some(v) = self.request_timeout {
            limits.request_timeout = v.into();
        }
        if let Some(v) = self.max_memory {
            limits.max_memory = v;
        }
        if let Some(v) = self.max_table_elements {
            limits.max_table_elements = v;
        }
        if let Some(v) = self.max_wasm_stack {
            limits.max_wasm_stack = v;
        }
        if let Some(v) = self.max_concurrent_instances {
            limits.max_concurrent_instances = v;
        }
        if let Some(v) = self.queue_timeout {
            limits.queue_timeout = v.into();
        }
        if let Some(v) = self.max_request_body {
            limits.max_request_body = v;
        }
        if let Some(v) = self.max_request_headers {
            limits.max_request_headers = v;
        }
    }
}

/// Flags that override the engine configuration.
#[derive(Args, Debug, Default)]
pub struct EngineArgs {
    /// Directory of the compiled-code cache.
    #[arg(long, value_name = "DIR", conflicts_with = "no_cache")]
    pub cache_dir: Option<PathBuf>,
    /// Compile every time; do not read or write the cache.
    #[arg(long)]
    pub no_cache: bool,
    /// Allocate instances on demand instead of from the pooling allocator.
    #[arg(long)]
    pub no_pooling: bool,
    /// Bytes of each pooled memory, table and stack kept resident between
    /// requests (e.g. `1MiB`).
    #[arg(long, value_name = "SIZE")]
    pub keep_resident: Option<ByteSize>,
}

impl EngineArgs {
    /// Applies the flags given on top of `config`.
    pub fn apply(&self, config: &mut EngineConfig) {
        if let Some(dir) = &self.cache_dir {
            config.cache_dir = Some(dir.clone());
        }
        if self.no_cache {
            config.cache_dir = None;
        }
        if self.no_pooling {
            config.pooling = false;
        }
        if let Some(v) = self.keep_resident {
            config.keep_resident = v;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn parses_a_full_file_with_units() {
        let file = ServeFile::parse(
            r#"
            listen = "127.0.0.1:9000"
            allow_outbound = ["api.example.com"]
            [limits]
            request_timeout = "1s 500ms"
            max_memory = "16 MiB"
            max_concurrent_instances = 8
            [engine]
            pooling = false
            "#,
        )
        .expect("parses");
        assert_eq!(file.listen, Some("127.0.0.1:9000".parse().expect("addr")));
        assert_eq!(file.limits.request_timeout, Duration::from_millis(1500));
        assert_eq!(file.limits.max_memory, ByteSize::mib(16));
        assert_eq!(file.limits.max_concurrent_instances, 8);
        assert_eq!(file.limits.queue_timeout, Limits::default().queue_timeout);
        assert!(!file.engine.pooling);
    }

    #[test]
    fn unknown_keys_are_named_with_their_line() {
        let err = ServeFile::parse("[limits]\nmax_memroy = \"1 MiB\"\n").expect_err("unknown");
        let text = format!("{err:#}");
        assert!(
            text.contains("max_memroy") && text.contains("line 2"),
            "{text}"
        );
        assert!(!text.contains('\n'), "{text}");
    }

    #[test]
    fn flags_override_the_file() {
        let mut limits = Limits {
            max_concurrent_instances: 8,
            ..Limits::default()
        };
        let flags = LimitArgs {
            max_concurrent_instances: Some(3),
            request_timeout: Some("250ms".parse().expect("duration")),
            ..LimitArgs::default()
        };
        flags.apply(&mut limits);
        assert_eq!(limits.max_concurrent_instances, 3);
        assert_eq!(limits.request_timeout, Duration::from_millis(250));
    }
}
