//! Time to create one request's store and instance, in-process.

use super::*;

/// Median and p99 of one request's instantiation, in µs.
pub(crate) struct InstantiationTime {
    pub(crate) median_us: f64,
    pub(crate) p99_us: f64,
}

/// Times `instantiate_once` in-process with the default engine configuration
/// (pooling allocator), with a private compile cache.
pub(crate) fn measure_instantiation(path: &Path, settings: &Settings) -> InstantiationTime {
    let cache = tempfile::tempdir().expect("cannot create a temporary directory");
    let config = EngineConfig {
        cache_dir: Some(cache.path().to_owned()),
        ..EngineConfig::default()
    };
    let engine = Engine::new(&config, &Limits::default()).expect("cannot create the engine");
    let component = engine
        .load_file(path)
        .unwrap_or_else(|err| panic!("cannot load {}: {err}", path.display()));
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("cannot start a tokio runtime");
    let mut micros: Vec<f64> = runtime.block_on(async {
        for _ in 0..INSTANTIATION_WARMUP {
            instantiate(&component).await;
        }
        let mut micros = Vec::with_capacity(settings.instantiations);
        for _ in 0..settings.instantiations {
            let start = Instant::now();
            instantiate(&component).await;
            micros.push(start.elapsed().as_secs_f64() * 1e6);
        }
        micros
    });
    micros.sort_by(f64::total_cmp);
    InstantiationTime {
        median_us: median(micros.iter().copied()),
        p99_us: percentile(&micros, 0.99),
    }
}

pub(crate) async fn instantiate(component: &cloudware_engine::LinkedComponent) {
    component
        .instantiate_once()
        .await
        .unwrap_or_else(|err| panic!("instantiation failed: {err:?}"));
}

/// The `q` quantile of sorted values (nearest rank).
pub(crate) fn percentile(sorted: &[f64], q: f64) -> f64 {
    let rank = (q * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

// ---------------------------------------------------------------------------
// Report
