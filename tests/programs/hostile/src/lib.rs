//! A component that misbehaves on purpose, for the runtime's fault tests.
//! Each route fails in exactly one way; the host must contain every one of
//! them and stay healthy.
//!
//! | route       | behaviour |
//! | ----------- | --------- |
//! | `/ok`       | 200 `ok` (proves the component itself works) |
//! | `/count`    | 200 with how many requests this instance has seen (always `1` under per-request instances) |
//! | `/trap`     | executes `unreachable` |
//! | `/panic`    | `panic!("boom")` (prints the message to stderr, then traps) |
//! | `/loop`     | spins forever on the CPU without calling the host |
//! | `/sleep`    | blocks 60 s in a host call (`monotonic-clock` pollable), then 200 `slept` |
//! | `/memory`   | allocates and fills 1 MiB chunks, keeping all of them, until allocation fails and the allocator aborts (trap) |
//! | `/stack`    | recurses without bound until the wasm call stack overflows (trap) |
//! | `/half`     | sends a 200 head and 100 body bytes, then traps before finishing the body |
//! | `/half-big` | sends a 200 head and 2 MiB of body, then traps before finishing the body |
//! | `/none`     | returns without ever setting a response |
//! | other       | 404 |

use std::hint::black_box;
use std::sync::atomic::{AtomicU64, Ordering};

use wasip2::clocks::monotonic_clock;
use wasip2::exports::http::incoming_handler::Guest;
use wasip2::http::types::{
    Fields, IncomingRequest, OutgoingBody, OutgoingResponse, ResponseOutparam,
};
use wasip2::io::streams::{OutputStream, StreamError};

const MIB: usize = 1024 * 1024;

struct Component;

impl Guest for Component {
    fn handle(request: IncomingRequest, response_out: ResponseOutparam) {
        let target = request.path_with_query().unwrap_or_default();
        let path = target
            .split_once('?')
            .map_or(target.as_str(), |(path, _)| path);
        match path {
            "/ok" => respond(response_out, 200, b"ok"),
            "/count" => {
                // A fresh instance per request always answers 1.
                let count = REQUESTS_SEEN.fetch_add(1, Ordering::Relaxed) + 1;
                respond(response_out, 200, count.to_string().as_bytes());
            }
            "/trap" => trap(),
            "/panic" => panic!("boom"),
            "/loop" => spin(),
            "/sleep" => {
                monotonic_clock::subscribe_duration(60_000_000_000).block();
                respond(response_out, 200, b"slept");
            }
            "/memory" => exhaust_memory(),
            "/stack" => {
                black_box(recurse());
            }
            "/half" => half_response(response_out, 100),
            "/half-big" => half_response(response_out, 2 * MIB),
            // Dropping the outparam unset: the host sees no response at all.
            "/none" => drop(response_out),
            _ => respond(response_out, 404, b"not found\n"),
        }
    }
}

wasip2::http::proxy::export!(Component);

/// Executes the wasm `unreachable` instruction.
fn trap() -> ! {
    core::arch::wasm32::unreachable()
}

/// Spins forever; `black_box` keeps the optimizer from removing the loop.
fn spin() -> ! {
    let mut counter = 0u64;
    loop {
        counter = black_box(counter.wrapping_add(1));
    }
}

/// Allocates 1 MiB chunks and writes every byte of each (so the pages are
/// really committed), keeping all of them alive. When the host refuses to
/// grow memory the allocation fails and Rust aborts, which traps.
fn exhaust_memory() -> ! {
    let mut chunks: Vec<Vec<u8>> = Vec::new();
    loop {
        chunks.push(vec![0xa5; MIB]);
        black_box(&mut chunks);
    }
}

/// Requests this instance has handled; state that must not outlive a request.
static REQUESTS_SEEN: AtomicU64 = AtomicU64::new(0);

/// How deep [`recurse`] has gone. Reading and bumping a static keeps the
/// recursion opaque to the optimizer without touching the shadow stack in
/// linear memory (as `black_box` would), so the frames exhaust the host's
/// native wasm stack rather than the guest's own stack region.
static DEPTH: AtomicU64 = AtomicU64::new(0);

/// Recurses until the wasm call stack overflows. The result is combined
/// after the call in a way LLVM cannot turn into a loop.
#[inline(never)]
fn recurse() -> u64 {
    let depth = DEPTH.fetch_add(1, Ordering::Relaxed);
    if depth == u64::MAX {
        return depth;
    }
    recurse().rotate_left(1) ^ depth
}

/// Sends a 200 head and `len` body bytes, then traps without finishing the
/// body, so the client receives a truncated response.
fn half_response(response_out: ResponseOutparam, len: usize) -> ! {
    if let Some((_body, stream)) = start_response(response_out, 200) {
        let _ = write_all(&stream, &vec![b'x'; len]);
    }
    trap()
}

/// Sends a complete plain-text response.
fn respond(response_out: ResponseOutparam, status: u16, body: &[u8]) {
    if let Some((outgoing_body, stream)) = start_response(response_out, status)
        && write_all(&stream, body).is_ok()
    {
        drop(stream);
        let _ = OutgoingBody::finish(outgoing_body, None);
    }
}

/// Sets a `text/plain` response head and opens its body for writing.
fn start_response(
    response_out: ResponseOutparam,
    status: u16,
) -> Option<(OutgoingBody, OutputStream)> {
    let headers = Fields::from_list(&[("content-type".to_owned(), b"text/plain".to_vec())]).ok()?;
    let response = OutgoingResponse::new(headers);
    response.set_status_code(status).ok()?;
    let body = response.body().ok()?;
    ResponseOutparam::set(response_out, Ok(response));
    let stream = body.write().ok()?;
    Some((body, stream))
}

/// Writes all of `bytes`, as much per call as `check-write` allows.
fn write_all(stream: &OutputStream, mut bytes: &[u8]) -> Result<(), StreamError> {
    while !bytes.is_empty() {
        let permitted = stream.check_write()?;
        if permitted == 0 {
            stream.subscribe().block();
            continue;
        }
        let len = bytes
            .len()
            .min(usize::try_from(permitted).unwrap_or(usize::MAX));
        stream.write(&bytes[..len])?;
        bytes = &bytes[len..];
    }
    stream.blocking_flush()
}
