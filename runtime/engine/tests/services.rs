//! Internal service calls between real components: `svc-caller` (an HTTP
//! front) linked to `svc-echo` (the service, which imports its own
//! interface for `relay`). Each test goes through `handle`, as the gateway
//! would, and reads the typed result the caller rendered as text; a few
//! also call the service directly with [`LinkedComponent::call`].
//!
//! Covered: typed records round-trip; a mismatched record or a missing
//! link is refused at link time, naming the field or the interface; a
//! slow callee, a trapping callee and a cycle of calls each reach the
//! caller as a `platform(..)` error rather than a trap; a slow call does
//! not hold up other calls.

use bytes::Bytes;
use cloudware_engine::service::{ServiceImport, ServiceTarget};
use cloudware_engine::{
    CallError, CallOrigin, CompiledComponent, ComponentSettings, Engine, EngineConfig, Limits,
    LinkPlan, LinkedComponent, LoadError, MAX_CALL_DEPTH, ResponseBody,
};
use http_body_util::{BodyExt, Empty};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};
use wasmtime::component::Val;

/// The service interface, as both components import it.
const ECHO: &str = "bench:svc/echo@0.1.0";

/// How late a timed-out call may come back (epoch ticks, a busy machine).
const TOLERANCE: Duration = Duration::from_millis(750);

/// A service target filled in after linking, so that a component can be
/// linked to itself or two components to each other. Empty, it has no
/// instance.
#[derive(Default)]
struct Slot(OnceLock<LinkedComponent>);

impl ServiceTarget for Slot {
    fn resolve(&self) -> Option<LinkedComponent> {
        self.0.get().cloned()
    }
}

fn config() -> EngineConfig {
    EngineConfig {
        cache_dir: None,
        ..EngineConfig::default()
    }
}

fn limits() -> Limits {
    Limits {
        request_timeout: Duration::from_secs(10),
        max_memory: bytesize::ByteSize::mib(32),
        max_concurrent_instances: 32,
        ..Limits::default()
    }
}

fn engine() -> Engine {
    Engine::new(&config(), &limits()).expect("engine")
}

fn compile(engine: &Engine, path: &str) -> CompiledComponent {
    engine.compile_file(path.as_ref()).expect("compile")
}

/// `compiled`'s import of [`ECHO`] linked to `target`, whose component is
/// `exporter`.
fn link(
    compiled: &CompiledComponent,
    exporter: &CompiledComponent,
    target: Arc<dyn ServiceTarget>,
) -> Result<LinkedComponent, LoadError> {
    compiled.link(&LinkPlan {
        grants: Default::default(),
        services: vec![ServiceImport {
            interface: ECHO.to_owned(),
            exporter: exporter.clone(),
            target,
        }],
    })
}

/// `svc-echo` linked to itself.
fn echo_linked_to_itself(echo: &CompiledComponent) -> LinkedComponent {
    let slot = Arc::new(Slot::default());
    let linked = link(echo, echo, slot.clone()).expect("link echo to itself");
    assert!(slot.0.set(linked.clone()).is_ok(), "slot filled once");
    linked
}

/// The engine, `svc-echo` compiled, and `svc-caller` linked to `svc-echo`
/// (itself linked to itself).
fn caller_and_echo() -> (Engine, CompiledComponent, LinkedComponent, LinkedComponent) {
    let engine = engine();
    let echo = compile(&engine, cloudware_test_artifacts::SVC_ECHO);
    let echo_linked = echo_linked_to_itself(&echo);
    let caller = compile(&engine, cloudware_test_artifacts::SVC_CALLER);
    let caller = link(&caller, &echo, Arc::new(echo_linked.clone())).expect("link caller");
    (engine, echo, echo_linked, caller)
}

/// `GET path` through `component`'s HTTP handler: status and body.
async fn get(component: &LinkedComponent, path: &str) -> (u16, String) {
    let request = http::Request::get(format!("http://localhost{path}"))
        .body(Empty::<Bytes>::new())
        .expect("request");
    let response = component
        .handle(request, Default::default())
        .await
        .unwrap_or_else(|err| panic!("GET {path} failed on the host: {err}"));
    let status = response.status().as_u16();
    (status, text(response).await)
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

/// The `echo` order record as a dynamically typed value.
fn order(id: u64, items: &[(&str, u32)], note: Option<&str>) -> Val {
    let items = items
        .iter()
        .map(|(sku, qty)| {
            Val::Record(vec![
                ("sku".into(), Val::String((*sku).into())),
                ("qty".into(), Val::U32(*qty)),
            ])
        })
        .collect();
    Val::Record(vec![
        ("id".into(), Val::U64(id)),
        ("items".into(), Val::List(items)),
        (
            "note".into(),
            Val::Option(note.map(|n| Box::new(Val::String(n.into())))),
        ),
    ])
}

/// `result<_, echo-error>`'s `err(platform(CASE))` without a payload.
fn platform_error(case: &str) -> Val {
    Val::Result(Err(Some(Box::new(Val::Variant(
        "platform".into(),
        Some(Box::new(Val::Variant(case.into(), None))),
    )))))
}

#[tokio::test(flavor = "multi_thread")]
async fn a_call_round_trips_the_typed_record() {
    let (_engine, _echo, echo_linked, caller) = caller_and_echo();
    let (status, body) = get(&caller, "/echo?id=7&items=apple*3,pear*4294967295&note=hi").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body, "ok:id=7;items=apple*3,pear*4294967295;note=hi");
    let (_, body) = get(&caller, "/echo?id=18446744073709551615&items=x*0").await;
    assert_eq!(body, "ok:id=18446744073709551615;items=x*0;note=-");
    // The service's own error case reaches the caller typed.
    let (_, body) = get(&caller, "/echo?id=9").await;
    assert_eq!(body, "err:invalid:an order needs items");
    let (_, body) = get(&caller, "/call?n=5").await;
    assert!(body.contains("\nok=5\n"), "{body}");
    assert!(
        body.contains("last=ok:id=42;items=apple*3,pear*1;note=fragile"),
        "{body}"
    );

    // The same record straight from the host, compared value by value.
    let sent = order(7, &[("apple", 3), ("", 0)], Some("ünïcode"));
    let back = echo_linked
        .call(
            ECHO,
            "echo",
            vec![sent.clone()],
            CallOrigin::external(),
            Default::default(),
        )
        .await
        .expect("call");
    assert_eq!(back, vec![Val::Result(Ok(Some(Box::new(sent))))]);
}

/// Every component that follows the `platform(call-error)` convention
/// imports the types-only `cloudware:platform/services@0.1.0`; a plain
/// engine links it without a grant or a service (this was once refused as
/// `Unlinked`).
#[tokio::test(flavor = "multi_thread")]
async fn the_platform_service_types_need_no_link() {
    let engine = engine();
    let echo = compile(&engine, cloudware_test_artifacts::SVC_ECHO);
    assert!(
        echo.interfaces()
            .imports
            .iter()
            .any(|name| name == cloudware_engine::service::SERVICE_TYPES_INTERFACE),
        "svc-echo should import the service types"
    );
    assert_eq!(echo.service_imports(), vec![ECHO.to_owned()]);
    if let Err(err) = link(&echo, &echo, Arc::new(Slot::default())) {
        panic!("svc-echo does not link on a plain engine: {err}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_mismatched_record_is_refused_naming_the_field() {
    let engine = engine();
    let echo = compile(&engine, cloudware_test_artifacts::SVC_ECHO);
    let echo_linked = echo_linked_to_itself(&echo);
    let wrong = compile(&engine, cloudware_test_artifacts::SVC_WRONG);
    match link(&wrong, &echo, Arc::new(echo_linked)) {
        Err(LoadError::BadLink { interface, reason }) => {
            assert_eq!(interface, ECHO);
            assert!(reason.contains("field qty"), "{reason}");
            assert!(reason.contains("expected string, found u32"), "{reason}");
        }
        Err(other) => panic!("expected BadLink, got {other}"),
        Ok(_) => panic!("a mismatched link was accepted"),
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn an_unlinked_import_is_refused_naming_it() {
    let engine = engine();
    let caller = compile(&engine, cloudware_test_artifacts::SVC_CALLER);
    assert_eq!(caller.service_imports(), vec![ECHO.to_owned()]);
    match caller.link(&LinkPlan::default()) {
        Err(LoadError::Unlinked { interface }) => assert_eq!(interface, ECHO),
        Err(other) => panic!("expected Unlinked, got {other}"),
        Ok(_) => panic!("an unlinked import was accepted"),
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_callee_past_the_deadline_is_a_platform_timeout() {
    let (_engine, _echo, _echo_linked, caller) = caller_and_echo();
    let deadline = Duration::from_secs(1);
    let caller = caller.with_settings(ComponentSettings {
        request_timeout: deadline,
        ..caller.settings().clone()
    });
    let started = Instant::now();
    let (status, body) = get(&caller, "/spin?ms=5000").await;
    let elapsed = started.elapsed();
    assert_eq!((status, body.as_str()), (200, "err:platform:timeout"));
    assert!(
        elapsed < deadline + TOLERANCE,
        "took {elapsed:?}, the deadline is {deadline:?}"
    );
    // A spin within the deadline is fine.
    let (_, body) = get(&caller, "/spin?ms=50").await;
    assert_eq!(body, "ok:50");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_trapping_callee_is_a_platform_failure() {
    let (_engine, _echo, echo_linked, caller) = caller_and_echo();
    let (status, body) = get(&caller, "/trap").await;
    assert_eq!(status, 200, "{body}");
    assert!(body.starts_with("err:platform:failed:"), "{body}");
    assert!(body.contains("unreachable"), "{body}");
    // The service still works afterwards.
    let (_, body) = get(&caller, "/echo?id=1&items=a*1").await;
    assert_eq!(body, "ok:id=1;items=a*1;note=-");
    // Straight from the host, a trap is the call's own error.
    let err = echo_linked
        .call(
            ECHO,
            "trap",
            vec![],
            CallOrigin::external(),
            Default::default(),
        )
        .await
        .expect_err("trap");
    assert!(matches!(err, CallError::Failed(_)), "{err:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_service_without_an_instance_is_unavailable() {
    let engine = engine();
    let echo = compile(&engine, cloudware_test_artifacts::SVC_ECHO);
    let caller = compile(&engine, cloudware_test_artifacts::SVC_CALLER);
    let caller = link(&caller, &echo, Arc::new(Slot::default())).expect("link");
    let (_, body) = get(&caller, "/echo?id=1&items=a*1").await;
    assert!(body.starts_with("err:platform:unavailable:"), "{body}");
    assert!(body.contains(ECHO), "{body}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_cycle_is_cut_at_the_depth_limit() {
    let (engine, echo, echo_linked, caller) = caller_and_echo();
    // From outside (depth 0), `relay(n)` runs n + 1 levels: depths 0..=n.
    let deepest = MAX_CALL_DEPTH - 1;
    let relay = |depth: u32, origin: CallOrigin| {
        let echo_linked = echo_linked.clone();
        async move {
            echo_linked
                .call(
                    ECHO,
                    "relay",
                    vec![Val::U32(depth)],
                    origin,
                    Default::default(),
                )
                .await
        }
    };
    let ok = |n: u32| vec![Val::Result(Ok(Some(Box::new(Val::U32(n)))))];
    let external = CallOrigin::external();
    assert_eq!(relay(deepest, external).await.expect("call"), ok(deepest));
    let cut = vec![platform_error("depth-exceeded")];
    assert_eq!(relay(deepest + 1, external).await.expect("call"), cut);
    assert_eq!(relay(1000, external).await.expect("call"), cut);
    // A call made at the limit itself is refused outright.
    let at_limit = CallOrigin {
        deadline: None,
        depth: MAX_CALL_DEPTH,
    };
    match relay(0, at_limit).await {
        Err(CallError::DepthExceeded(depth)) => assert_eq!(depth, MAX_CALL_DEPTH),
        other => panic!("expected DepthExceeded, got {other:?}"),
    }

    // Through HTTP the caller is level 0, so one relay fewer fits.
    let (_, body) = get(&caller, &format!("/relay?depth={}", deepest - 1)).await;
    assert_eq!(body, format!("ok:{}", deepest - 1));
    let (_, body) = get(&caller, &format!("/relay?depth={deepest}")).await;
    assert_eq!(body, "err:platform:depth-exceeded");
    let (_, body) = get(&caller, "/relay?depth=4000000000").await;
    assert_eq!(body, "err:platform:depth-exceeded");

    // Two instances linked to each other form the same cycle.
    let (a_slot, b_slot) = (Arc::new(Slot::default()), Arc::new(Slot::default()));
    let a = link(&echo, &echo, b_slot.clone()).expect("link a to b");
    let b = link(&echo, &echo, a_slot.clone()).expect("link b to a");
    assert!(a_slot.0.set(a.clone()).is_ok() && b_slot.0.set(b).is_ok());
    let front = compile(&engine, cloudware_test_artifacts::SVC_CALLER);
    let front = link(&front, &echo, Arc::new(a)).expect("link caller to a");
    let (_, body) = get(&front, &format!("/relay?depth={}", deepest - 1)).await;
    assert_eq!(body, format!("ok:{}", deepest - 1));
    let (_, body) = get(&front, "/relay?depth=100").await;
    assert_eq!(body, "err:platform:depth-exceeded");
}

#[tokio::test(flavor = "multi_thread")]
async fn other_calls_proceed_while_a_slow_call_runs() {
    let (_engine, _echo, _echo_linked, caller) = caller_and_echo();
    let spin_ms = 2000;
    let slow = {
        let caller = caller.clone();
        tokio::spawn(async move { get(&caller, &format!("/spin?ms={spin_ms}")).await })
    };
    // Let the slow call start.
    tokio::time::sleep(Duration::from_millis(100)).await;
    let started = Instant::now();
    let mut slowest = Duration::ZERO;
    for i in 0..20 {
        let one = Instant::now();
        let (_, body) = get(&caller, &format!("/echo?id={i}&items=a*{i}")).await;
        assert_eq!(body, format!("ok:id={i};items=a*{i};note=-"));
        slowest = slowest.max(one.elapsed());
    }
    let bystanders = started.elapsed();
    assert!(!slow.is_finished(), "the slow call ended before the others");
    assert!(
        bystanders < Duration::from_millis(spin_ms / 2),
        "20 calls took {bystanders:?} beside a slow one (slowest {slowest:?})"
    );
    let (_, body) = slow.await.expect("slow call");
    assert_eq!(body, format!("ok:{spin_ms}"));
}
