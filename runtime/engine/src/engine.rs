//! The one shared wasmtime [`wasmtime::Engine`] of a node, with its linker,
//! epoch ticker and compile cache.
//!
//! A node builds exactly one [`Engine`]; every component it serves is
//! compiled by it and instantiated from its pooling allocator.

use crate::cache::CompileCache;
use crate::capability::{Capability, CapabilityIndex};
use crate::config::{EngineConfig, Limits};
use crate::http::RequestState;
use std::sync::Arc;
use std::sync::mpsc;
use std::time::Duration;
use wasmtime::component::Linker;
use wasmtime::{Config, InstanceAllocationStrategy, PoolingAllocationConfig};

/// Core instances a pooled component may create (the main module plus the
/// adapter and shim instances toolchains add).
const CORE_INSTANCES_PER_COMPONENT: u32 = 32;
/// Linear memories a pooled component may own.
const MEMORIES_PER_COMPONENT: u32 = 2;
/// Tables a pooled component may own.
const TABLES_PER_COMPONENT: u32 = 8;
/// Host stack size for running guests; must exceed the wasm stack limit.
const HOST_STACK_HEADROOM: usize = 1024 * 1024;

/// How instance memory is allocated.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AllocationStrategy {
    /// Pre-reserved slots, reused across requests.
    Pooling,
    /// `mmap` per instance (the fallback when the pool cannot be reserved).
    OnDemand,
}

/// Errors building the engine.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// A limit is out of range.
    #[error("invalid limits: {0}")]
    InvalidLimits(String),
    /// wasmtime refused the configuration.
    #[error("cannot configure the wasm engine: {0:#}")]
    Wasmtime(wasmtime::Error),
}

/// The node's wasm engine: compiles components and hands out instances.
///
/// Cheap to clone; all clones share one wasmtime engine, linker and cache.
#[derive(Clone)]
pub struct Engine {
    inner: Arc<EngineInner>,
}

struct EngineInner {
    wasmtime: wasmtime::Engine,
    linker: Linker<RequestState>,
    capabilities: CapabilityIndex,
    cache: Option<CompileCache>,
    limits: Limits,
    allocation: AllocationStrategy,
    /// One permit per pool slot: the node-wide bound on running instances.
    slots: Arc<tokio::sync::Semaphore>,
    _epoch: EpochTicker,
}

impl Engine {
    /// Builds the engine. With `config.pooling`, tries the pooling allocator
    /// sized from `limits` and falls back, logging why, to on-demand
    /// allocation when the address space cannot be reserved.
    pub fn new(config: &EngineConfig, limits: &Limits) -> Result<Self, EngineError> {
        Self::with_capabilities(config, limits, &[])
    }

    /// Builds the engine with host `capabilities` in its linker (see
    /// [`Engine::new`]). Components may import them only where a
    /// deployment grants them.
    pub fn with_capabilities(
        config: &EngineConfig,
        limits: &Limits,
        capabilities: &[Arc<dyn Capability>],
    ) -> Result<Self, EngineError> {
        limits.validate().map_err(EngineError::InvalidLimits)?;
        let (wasmtime, allocation) = if config.pooling {
            match wasmtime::Engine::new(&wasmtime_config(config, limits, true)) {
                Ok(engine) => (engine, AllocationStrategy::Pooling),
                Err(err) => {
                    tracing::warn!(
                        error = %format!("{err:#}"),
                        "cannot reserve the instance pool; falling back to on-demand allocation"
                    );
                    let engine = wasmtime::Engine::new(&wasmtime_config(config, limits, false))
                        .map_err(EngineError::Wasmtime)?;
                    (engine, AllocationStrategy::OnDemand)
                }
            }
        } else {
            let engine = wasmtime::Engine::new(&wasmtime_config(config, limits, false))
                .map_err(EngineError::Wasmtime)?;
            (engine, AllocationStrategy::OnDemand)
        };

        let mut linker = crate::http::linker(&wasmtime).map_err(EngineError::Wasmtime)?;
        let mut index = CapabilityIndex::default();
        let builtin: [Arc<dyn Capability>; 1] = [Arc::new(crate::service::ServiceTypes)];
        for capability in builtin.iter().chain(capabilities) {
            capability
                .add_to_linker(&mut linker)
                .map_err(EngineError::Wasmtime)?;
            index.add(capability.as_ref());
        }
        let cache = config.cache_dir.as_deref().and_then(|dir| {
            match CompileCache::open(dir, &wasmtime) {
                Ok(cache) => Some(cache),
                Err(err) => {
                    tracing::warn!(dir = %dir.display(), error = %err, "compile cache disabled");
                    None
                }
            }
        });
        let epoch = EpochTicker::start(wasmtime.clone(), config.epoch_tick);
        tracing::debug!(
            ?allocation,
            pool_slots = limits.max_concurrent_instances,
            "engine ready"
        );
        Ok(Engine {
            inner: Arc::new(EngineInner {
                wasmtime,
                linker,
                capabilities: index,
                cache,
                limits: limits.clone(),
                allocation,
                slots: Arc::new(tokio::sync::Semaphore::new(
                    limits.max_concurrent_instances as usize,
                )),
                _epoch: epoch,
            }),
        })
    }

    /// The underlying wasmtime engine.
    pub fn wasmtime(&self) -> &wasmtime::Engine {
        &self.inner.wasmtime
    }

    /// The linker holding every host interface guests may import.
    pub(crate) fn linker(&self) -> &Linker<RequestState> {
        &self.inner.linker
    }

    /// The capability providing `interface`: its name and whether it is
    /// always granted.
    pub fn capability_of(&self, interface: &str) -> Option<(&'static str, bool)> {
        self.inner.capabilities.provider(interface)
    }

    /// The compile cache, if enabled.
    pub(crate) fn cache(&self) -> Option<&CompileCache> {
        self.inner.cache.as_ref()
    }

    /// The limits every request runs under.
    pub fn limits(&self) -> &Limits {
        &self.inner.limits
    }

    pub(crate) fn slots(&self) -> &Arc<tokio::sync::Semaphore> {
        &self.inner.slots
    }

    /// Which allocator instances come from.
    pub fn allocation(&self) -> AllocationStrategy {
        self.inner.allocation
    }
}

fn wasmtime_config(config: &EngineConfig, limits: &Limits, pooling: bool) -> Config {
    let mut cfg = Config::new();
    cfg.wasm_component_model(true);
    cfg.epoch_interruption(true);
    cfg.cranelift_opt_level(wasmtime::OptLevel::Speed);
    let wasm_stack = usize::try_from(limits.max_wasm_stack.as_u64()).unwrap_or(usize::MAX);
    cfg.max_wasm_stack(wasm_stack);
    cfg.async_stack_size(wasm_stack.saturating_add(HOST_STACK_HEADROOM));
    if pooling {
        let slots = limits.max_concurrent_instances;
        let keep = usize::try_from(config.keep_resident.as_u64()).unwrap_or(usize::MAX);
        let max_memory = usize::try_from(limits.max_memory.as_u64()).unwrap_or(usize::MAX);
        let mut pool = PoolingAllocationConfig::new();
        pool.total_component_instances(slots)
            .total_core_instances(slots.saturating_mul(CORE_INSTANCES_PER_COMPONENT))
            .total_memories(slots.saturating_mul(MEMORIES_PER_COMPONENT))
            .total_tables(slots.saturating_mul(TABLES_PER_COMPONENT))
            .total_stacks(slots)
            .max_memories_per_component(MEMORIES_PER_COMPONENT)
            .max_tables_per_component(TABLES_PER_COMPONENT)
            .max_core_instances_per_component(CORE_INSTANCES_PER_COMPONENT)
            .max_memory_size(max_memory)
            .table_elements(limits.max_table_elements as usize)
            .linear_memory_keep_resident(keep)
            .table_keep_resident(keep)
            .async_stack_keep_resident(keep)
            // Reset only the pages a request dirtied (Linux 6.7+), so keeping
            // memory resident costs a memset of what was used, not of `keep`.
            .pagemap_scan(wasmtime::Enabled::Auto)
            .max_unused_warm_slots(slots);
        cfg.allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
    }
    cfg
}

/// Advances the engine's epoch on a fixed period from a background thread;
/// stops when dropped.
struct EpochTicker {
    stop: Option<mpsc::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl EpochTicker {
    fn start(engine: wasmtime::Engine, tick: Duration) -> Self {
        let (stop, stopped) = mpsc::channel::<()>();
        let thread = std::thread::Builder::new()
            .name("cloudware-epoch".into())
            .spawn(move || {
                while let Err(mpsc::RecvTimeoutError::Timeout) = stopped.recv_timeout(tick) {
                    engine.increment_epoch();
                }
            })
            .map_err(|err| tracing::error!(error = %err, "cannot start the epoch thread"))
            .ok();
        EpochTicker {
            stop: Some(stop),
            thread,
        }
    }
}

impl Drop for EpochTicker {
    fn drop(&mut self) {
        drop(self.stop.take());
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}
