//! The capability through a real component (`tests/programs/kv-guest`),
//! served by the engine one fresh instance per request, on sled and on
//! Redis.

#[path = "support/redis_server.rs"]
mod redis_server;

use bytes::Bytes;
use cloudware_cap_keyvalue::{
    KeyValueCapability, KeyValueGrant, KvBackend, Namespace, RedisBackend, STORE_INTERFACE,
    SledBackend,
};
use cloudware_engine::{
    CompiledComponent, Engine, EngineConfig, Grants, Limits, LinkPlan, LinkedComponent, LoadError,
};
use http_body_util::{BodyExt, Full};
use redis_server::RedisServer;
use std::sync::Arc;
use std::time::{Duration, Instant};

fn compile() -> CompiledComponent {
    let config = EngineConfig {
        cache_dir: None,
        ..EngineConfig::default()
    };
    let engine =
        Engine::with_capabilities(&config, &Limits::default(), &[Arc::new(KeyValueCapability)])
            .expect("engine");
    engine
        .compile_file(cloudware_test_artifacts::KV_GUEST.as_ref())
        .expect("compile kv-guest")
}

fn link(component: &CompiledComponent, grants: Grants) -> Result<LinkedComponent, LoadError> {
    component.link(&LinkPlan {
        grants,
        services: vec![],
    })
}

fn deployment(
    component: &CompiledComponent,
    tenant: &str,
    backend: &Arc<dyn KvBackend>,
) -> LinkedComponent {
    let grant = KeyValueGrant::new(tenant, ["counters", "cart"], backend.clone());
    link(
        component,
        Grants::builder().grant("keyvalue", grant).build(),
    )
    .expect("link")
}

/// Sends `path` with `body`; answers the status and the body text.
async fn call(component: &LinkedComponent, path: &str, body: &[u8]) -> (u16, String) {
    let request = http::Request::post(format!("http://localhost{path}"))
        .body(Full::new(Bytes::copy_from_slice(body)))
        .expect("request");
    let response = component
        .handle(request, Default::default())
        .await
        .unwrap_or_else(|err| panic!("{path}: {err}"));
    let status = response.status().as_u16();
    let bytes = response
        .into_body()
        .collect()
        .await
        .expect("body")
        .to_bytes();
    (status, String::from_utf8_lossy(&bytes).into_owned())
}

async fn get(component: &LinkedComponent, path: &str) -> (u16, String) {
    call(component, path, b"").await
}

fn ok(text: &str) -> (u16, String) {
    (200, text.to_owned())
}

async fn exercise(component: &CompiledComponent, backend: Arc<dyn KvBackend>) {
    let acme = deployment(component, "acme", &backend);

    // State lives in the backend: every request runs in a fresh instance.
    for expected in ["1", "2", "3"] {
        assert_eq!(
            get(&acme, "/incr?bucket=counters&key=hits").await,
            ok(expected)
        );
    }
    assert_eq!(
        get(&acme, "/incr?bucket=counters&key=hits&delta=10").await,
        ok("13")
    );
    assert_eq!(
        backend
            .get(&Namespace::new("acme", "counters"), "hits")
            .await,
        Ok(Some(b"13".to_vec()))
    );

    // Only granted buckets open.
    assert_eq!(get(&acme, "/open?bucket=counters").await, ok("opened"));
    assert_eq!(
        get(&acme, "/open?bucket=secret").await,
        (403, "access-denied".to_owned())
    );

    // get / set / delete / exists.
    assert_eq!(
        call(&acme, "/set?bucket=cart&key=item", b"anvil").await,
        ok("ok")
    );
    assert_eq!(get(&acme, "/get?bucket=cart&key=item").await, ok("anvil"));
    assert_eq!(get(&acme, "/exists?bucket=cart&key=item").await, ok("true"));
    assert_eq!(
        get(&acme, "/get?bucket=cart&key=nothing").await,
        (404, "absent".to_owned())
    );

    // compare-and-swap.
    let swap = "/cas?bucket=cart&key=item&expected=anvil&value=rocket";
    assert_eq!(get(&acme, swap).await, ok("true"));
    assert_eq!(get(&acme, swap).await, ok("false"));
    assert_eq!(get(&acme, "/get?bucket=cart&key=item").await, ok("rocket"));
    assert_eq!(
        get(&acme, "/cas?bucket=cart&key=new&value=x").await,
        ok("true")
    );
    assert_eq!(
        get(&acme, "/cas?bucket=cart&key=new&value=y").await,
        ok("false")
    );

    // time-to-live.
    assert_eq!(
        call(&acme, "/ttl?bucket=cart&key=tmp&ms=200", b"temp").await,
        ok("ok")
    );
    assert_eq!(get(&acme, "/get?bucket=cart&key=tmp").await, ok("temp"));
    let started = Instant::now();
    while get(&acme, "/get?bucket=cart&key=tmp").await.0 != 404 {
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "tmp never expired"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(get(&acme, "/ttl?bucket=cart&key=tmp&ms=0").await.0, 500);

    // list and batch.
    assert_eq!(get(&acme, "/list?bucket=cart").await, ok("item\nnew"));
    assert_eq!(
        get(&acme, "/many?bucket=cart&keys=a,b").await,
        ok("a=a\nb=b\nmissing=<none>")
    );
    assert_eq!(get(&acme, "/delete?bucket=cart&key=new").await, ok("ok"));
    assert_eq!(get(&acme, "/list?bucket=cart").await, ok("item"));

    // Limits reach the guest as `other` with the numbers.
    let big = vec![b'x'; 1024 * 1024 + 1];
    assert_eq!(
        call(&acme, "/set?bucket=cart&key=big", &big).await,
        (
            500,
            "other: value too large: 1048577 bytes, limit 1048576".to_owned()
        )
    );
    assert_eq!(
        get(&acme, "/set?bucket=counters&key=hits").await,
        ok("ok"),
        "an empty body is a value"
    );
    assert_eq!(
        get(&acme, "/incr?bucket=counters&key=hits").await.1,
        "other: the value is not a counter (decimal digits of a number up to 9223372036854775807)"
    );

    // Another tenant's bucket of the same name is another bucket.
    let globex = deployment(component, "globex", &backend);
    assert_eq!(
        get(&globex, "/get?bucket=cart&key=item").await,
        (404, "absent".to_owned())
    );
    assert_eq!(
        get(&globex, "/incr?bucket=counters&key=hits").await,
        ok("1")
    );
    assert_eq!(get(&globex, "/list?bucket=cart").await, ok(""));
    assert_eq!(get(&acme, "/get?bucket=cart&key=item").await, ok("rocket"));

    // Granted by name but without a grant value: every call is denied.
    let bare = link(component, Grants::builder().allow("keyvalue").build()).expect("link");
    assert_eq!(
        get(&bare, "/open?bucket=counters").await,
        (403, "access-denied".to_owned())
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_component_uses_sled_buckets() {
    let dir = tempfile::tempdir().expect("tempdir");
    let backend: Arc<dyn KvBackend> = Arc::new(SledBackend::open(dir.path()).expect("sled"));
    exercise(&compile(), backend).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_component_uses_redis_buckets() {
    let Some(server) = RedisServer::start_or_skip("a_component_uses_redis_buckets") else {
        return;
    };
    let backend: Arc<dyn KvBackend> =
        Arc::new(RedisBackend::connect(&server.url).await.expect("redis"));
    exercise(&compile(), backend).await;
}

#[test]
fn a_component_without_the_grant_is_refused_at_link_time() {
    let err = link(&compile(), Grants::none())
        .err()
        .expect("linking must fail");
    match &err {
        LoadError::NotGranted {
            interface,
            capability,
        } => {
            assert_eq!(interface, STORE_INTERFACE);
            assert_eq!(capability, "keyvalue");
        }
        other => panic!("unexpected error: {other}"),
    }
    assert!(
        err.to_string().contains("wasi:keyvalue/store@0.2.0-draft"),
        "{err}"
    );
}
