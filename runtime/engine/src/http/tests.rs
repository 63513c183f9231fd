//! In-process tests of request handling against real guest components.

use super::*;
use crate::config::{EngineConfig, Limits};
use crate::{ComponentSettings, Engine};
use http_body_util::{BodyExt, Empty};
use std::time::Duration;

fn engine(limits: Limits) -> Engine {
    let config = EngineConfig {
        cache_dir: None,
        ..EngineConfig::default()
    };
    Engine::new(&config, &limits).expect("engine")
}

fn small_limits() -> Limits {
    Limits {
        request_timeout: Duration::from_millis(500),
        // Small, so `/memory` reaches the cap in a few ms even on a busy box.
        max_memory: bytesize::ByteSize::mib(16),
        max_concurrent_instances: 4,
        queue_timeout: Duration::from_millis(50),
        ..Limits::default()
    }
}

fn get(path: &str) -> http::Request<Empty<Bytes>> {
    http::Request::get(format!("http://localhost{path}"))
        .body(Empty::new())
        .expect("request")
}

async fn text(response: http::Response<ResponseBody>) -> String {
    let bytes = response
        .into_body()
        .collect()
        .await
        .expect("body")
        .to_bytes();
    String::from_utf8_lossy(&bytes).into_owned()
}

#[tokio::test(flavor = "multi_thread")]
async fn every_request_gets_a_fresh_instance() {
    let engine = engine(small_limits());
    let component = engine
        .load_file(cloudware_test_artifacts::HOSTILE.as_ref())
        .expect("load");
    for _ in 0..5 {
        let response = component
            .handle(get("/count"), Default::default())
            .await
            .expect("response");
        assert_eq!(response.status(), 200);
        assert_eq!(text(response).await, "1", "state leaked between requests");
    }
    assert_eq!(component.busy_instances(), 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn guest_time_is_measured() {
    let engine = engine(small_limits());
    let component = engine
        .load_file(cloudware_test_artifacts::HELLO.as_ref())
        .expect("load");
    let stats = Arc::new(RequestStats::default());
    let response = component
        .handle(get("/"), stats.clone())
        .await
        .expect("response");
    assert_eq!(text(response).await, "Hello from Cloudware!\n");
    assert!(stats.guest_time() > Duration::ZERO);
}

#[tokio::test(flavor = "multi_thread")]
async fn failures_are_classified() {
    let engine = engine(small_limits());
    let component = engine
        .load_file(cloudware_test_artifacts::HOSTILE.as_ref())
        .expect("load");
    let cases = [
        ("/trap", "trap"),
        ("/stack", "trap"),
        ("/memory", "trap"),
        ("/none", "no_response"),
        ("/loop", "deadline"),
        ("/sleep", "deadline"),
    ];
    for (path, kind) in cases {
        let err = component
            .handle(get(path), Default::default())
            .await
            .expect_err(path);
        assert_eq!(err.kind(), kind, "{path}: {err}");
    }
    // All slots were returned.
    assert_eq!(component.busy_instances(), 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn admission_is_bounded() {
    let engine = engine(Limits {
        max_concurrent_instances: 1,
        request_timeout: Duration::from_secs(2),
        ..small_limits()
    });
    let component = engine
        .load_file(cloudware_test_artifacts::HOSTILE.as_ref())
        .expect("load");
    let sleeper = {
        let component = component.clone();
        tokio::spawn(async move { component.handle(get("/sleep"), Default::default()).await })
    };
    // Wait until the sleeper holds the only slot.
    for _ in 0..200 {
        if component.busy_instances() == 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert_eq!(component.busy_instances(), 1);
    let err = component
        .handle(get("/ok"), Default::default())
        .await
        .expect_err("no free slot");
    assert_eq!(err.kind(), "overloaded");
    assert_eq!(err.status(), http::StatusCode::SERVICE_UNAVAILABLE);
    sleeper.abort();
}

#[tokio::test(flavor = "multi_thread")]
async fn deployment_settings_apply_and_are_clamped() {
    let engine = engine(small_limits());
    let component = engine
        .load_file(cloudware_test_artifacts::HOSTILE.as_ref())
        .expect("load");
    let tighter = component.with_settings(ComponentSettings {
        request_timeout: Duration::from_millis(150),
        ..ComponentSettings::defaults(&engine)
    });
    let err = tighter
        .handle(get("/loop"), Default::default())
        .await
        .expect_err("deadline");
    assert!(
        matches!(err, HandleError::DeadlineExceeded(d) if d == Duration::from_millis(150)),
        "{err}"
    );

    // Asking for more than the node allows gets the node's limit.
    let greedy = component.with_settings(ComponentSettings {
        request_timeout: Duration::from_secs(3600),
        max_memory: u64::MAX,
        ..ComponentSettings::defaults(&engine)
    });
    assert_eq!(
        greedy.settings().request_timeout,
        small_limits().request_timeout
    );
    assert_eq!(
        greedy.settings().max_memory,
        small_limits().max_memory.as_u64()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn peak_memory_is_recorded() {
    let engine = engine(small_limits());
    let component = engine
        .load_file(cloudware_test_artifacts::HELLO.as_ref())
        .expect("load");
    let stats = Arc::new(RequestStats::default());
    let response = component
        .handle(get("/"), stats.clone())
        .await
        .expect("response");
    assert_eq!(response.status(), 200);
    text(response).await;
    // At least the initial linear memory (one 64 KiB page or more).
    assert!(stats.peak_memory() >= 64 * 1024, "{}", stats.peak_memory());
}

#[tokio::test(flavor = "multi_thread")]
async fn reserved_slots_keep_an_app_running_on_a_busy_node() {
    let engine = engine(Limits {
        max_concurrent_instances: 2,
        request_timeout: Duration::from_secs(2),
        ..small_limits()
    });
    let hostile = engine
        .load_file(cloudware_test_artifacts::HOSTILE.as_ref())
        .expect("load");
    let app = |quota: InstanceQuota| {
        hostile.with_settings(ComponentSettings {
            quota,
            ..ComponentSettings::defaults(&engine)
        })
    };
    let reserved = InstanceQuota::new(4);
    reserved.set_reserved(&engine, 1);
    assert_eq!(reserved.reserved(), 1);
    let a = app(reserved.clone());
    let b = app(InstanceQuota::new(4));

    // B fills what is left of the pool: one slot.
    let sleeper = {
        let b = b.clone();
        tokio::spawn(async move { b.handle(get("/sleep"), Default::default()).await })
    };
    for _ in 0..200 {
        if b.busy_instances() == 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let err = b
        .handle(get("/ok"), Default::default())
        .await
        .expect_err("the pool's only unreserved slot is taken");
    assert_eq!(err.kind(), "overloaded");
    // A still runs, on its reserved slot.
    let response = a
        .handle(get("/ok"), Default::default())
        .await
        .expect("reserved slot");
    assert_eq!(text(response).await, "ok");
    sleeper.abort();

    // Giving the reservation back returns the slot to the pool.
    reserved.set_reserved(&engine, 0);
    assert_eq!(reserved.reserved(), 0);
}
