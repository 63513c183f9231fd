//! The service of the engine's service-call tests and benchmark: exports
//! `bench:svc/echo@0.1.0` (see `tests/programs/wit-svc/svc.wit`) and
//! imports the same interface, which `relay` calls.
//!
//! - `echo` returns its order unchanged (`invalid` if it has no items);
//! - `spin` busy-loops on the CPU for `ms` milliseconds;
//! - `trap` panics, so the instance traps;
//! - `relay(depth)` answers 0 at depth 0, else 1 + `relay(depth - 1)` on the
//!   imported `echo`. Linked to itself (or two instances to each other) it
//!   forms a cycle of service calls, which the platform cuts at its depth
//!   limit; a platform error is passed back to the caller unchanged.

wit_bindgen::generate!({
    path: ["../../../wit", "../wit-svc"],
    world: "bench:svc/echo-service",
    generate_all,
});

use bench::svc::echo as imported;
use exports::bench::svc::echo::{EchoError, Guest, Order};
use std::hint::black_box;
use wasi::clocks::monotonic_clock;

/// Nanoseconds in a millisecond.
const NANOS_PER_MS: u64 = 1_000_000;

struct Service;

impl Guest for Service {
    fn echo(o: Order) -> Result<Order, EchoError> {
        if o.items.is_empty() {
            return Err(EchoError::Invalid("an order needs items".into()));
        }
        Ok(o)
    }

    fn spin(ms: u32) -> Result<u32, EchoError> {
        let end = monotonic_clock::now().saturating_add(u64::from(ms) * NANOS_PER_MS);
        let mut turns: u64 = 0;
        while monotonic_clock::now() < end {
            turns = black_box(turns.wrapping_add(1));
        }
        Ok(ms)
    }

    fn trap() -> Result<u32, EchoError> {
        panic!("svc-echo: asked to trap");
    }

    fn relay(depth: u32) -> Result<u32, EchoError> {
        if depth == 0 {
            return Ok(0);
        }
        match imported::relay(depth - 1) {
            Ok(levels) => Ok(levels.saturating_add(1)),
            Err(imported::EchoError::Invalid(why)) => Err(EchoError::Invalid(why)),
            Err(imported::EchoError::Platform(err)) => Err(EchoError::Platform(err)),
        }
    }
}

export!(Service);
