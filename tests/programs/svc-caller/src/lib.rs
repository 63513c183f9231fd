//! An HTTP front for the service `bench:svc/echo@0.1.0` (see
//! `tests/programs/wit-svc/svc.wit`), for the engine's service-call tests
//! and benchmark. It imports the interface; the platform links it to a
//! deployment exporting it (`svc-echo`).
//!
//! Routes (`GET`; query values are taken literally, not percent-decoded).
//! Every typed result is answered as text: `ok:VALUE`, or `err:invalid:WHY`,
//! `err:platform:timeout`, `err:platform:depth-exceeded`,
//! `err:platform:unavailable:WHY`, `err:platform:failed:WHY`.
//!
//! - `/call?n=N` calls `echo` N times with a small order, timing the calls
//!   in the guest with `wasi:clocks/monotonic-clock`, and answers three
//!   lines: `elapsed_ns=NANOS`, `ok=CALLS` (calls whose order came back
//!   unchanged) and `last=RESULT` (`none` when N is 0).
//! - `/echo?id=7&items=a*2,b*3&note=hi` calls `echo` once with that order
//!   (`items` empty or absent: no items; no `note`: `none`) and answers the
//!   order that came back, as `ok:id=7;items=a*2,b*3;note=hi` (`note=-`
//!   for `none`).
//! - `/spin?ms=N`, `/trap`, `/relay?depth=N` call the function of that name.
//!
//! A missing or malformed number answers 400; another path, 404.

wit_bindgen::generate!({
    path: ["../../../wit", "../wit-svc"],
    world: "bench:svc/caller",
    generate_all,
});

use bench::svc::echo::{self, EchoError, Item, Order};
use cloudware::platform::services::CallError;
use exports::wasi::http::incoming_handler::Guest;
use std::fmt::Write as _;
use wasi::clocks::monotonic_clock;
use wasi::http::types::{
    Fields, IncomingRequest, OutgoingBody, OutgoingResponse, ResponseOutparam,
};

/// How many bytes one write of the response body hands over.
const WRITE_CHUNK: usize = 4096;

struct Component;

impl Guest for Component {
    fn handle(request: IncomingRequest, response_out: ResponseOutparam) {
        let target = request.path_with_query().unwrap_or_default();
        let (path, query) = target.split_once('?').unwrap_or((target.as_str(), ""));
        let (status, text) = match route(path, query) {
            Ok(text) => (200, text),
            Err((status, text)) => (status, text),
        };
        send(response_out, status, text.as_bytes());
    }
}

export!(Component);

/// The answer to one request, or a status and message.
fn route(path: &str, query: &str) -> Result<String, (u16, String)> {
    match path {
        "/call" => Ok(call_many(number(query, "n")?)),
        "/echo" => {
            let order = order_from(query)?;
            Ok(render(echo::echo(&order), render_order))
        }
        "/spin" => {
            let ms = u32::try_from(number(query, "ms")?)
                .map_err(|_| (400, "ms is too large".to_owned()))?;
            Ok(render(echo::spin(ms), u32::to_string))
        }
        "/trap" => Ok(render(echo::trap(), u32::to_string)),
        "/relay" => {
            let depth = u32::try_from(number(query, "depth")?)
                .map_err(|_| (400, "depth is too large".to_owned()))?;
            Ok(render(echo::relay(depth), u32::to_string))
        }
        _ => Err((404, "no such route".to_owned())),
    }
}

/// Calls `echo` `n` times with a small order; see the crate docs.
fn call_many(n: u64) -> String {
    let order = Order {
        id: 42,
        items: vec![
            Item {
                sku: "apple".into(),
                qty: 3,
            },
            Item {
                sku: "pear".into(),
                qty: 1,
            },
        ],
        note: Some("fragile".into()),
    };
    let mut ok = 0u64;
    let mut last = None;
    let started = monotonic_clock::now();
    for _ in 0..n {
        let result = echo::echo(&order);
        if result.as_ref().is_ok_and(|back| same(back, &order)) {
            ok += 1;
        }
        last = Some(result);
    }
    let elapsed = monotonic_clock::now().saturating_sub(started);
    let last = last.map_or_else(|| "none".to_owned(), |r| render(r, render_order));
    format!("elapsed_ns={elapsed}\nok={ok}\nlast={last}\n")
}

/// Whether two orders are equal, field by field.
fn same(a: &Order, b: &Order) -> bool {
    a.id == b.id
        && a.note == b.note
        && a.items.len() == b.items.len()
        && a.items
            .iter()
            .zip(&b.items)
            .all(|(x, y)| x.sku == y.sku && x.qty == y.qty)
}

/// The order `/echo` sends, from its query.
fn order_from(query: &str) -> Result<Order, (u16, String)> {
    let id = number(query, "id")?;
    let mut items = Vec::new();
    for entry in param(query, "items").unwrap_or("").split(',') {
        if entry.is_empty() {
            continue;
        }
        let (sku, qty) = entry
            .split_once('*')
            .ok_or_else(|| (400, format!("item `{entry}` is not SKU*QTY")))?;
        let qty = qty
            .parse()
            .map_err(|_| (400, format!("item `{entry}`: bad quantity")))?;
        items.push(Item {
            sku: sku.to_owned(),
            qty,
        });
    }
    let note = param(query, "note").map(str::to_owned);
    Ok(Order { id, items, note })
}

/// `ok:VALUE` or `err:…` (see the crate docs).
fn render<T>(result: Result<T, EchoError>, value: impl Fn(&T) -> String) -> String {
    match result {
        Ok(v) => format!("ok:{}", value(&v)),
        Err(EchoError::Invalid(why)) => format!("err:invalid:{why}"),
        Err(EchoError::Platform(err)) => format!("err:platform:{}", render_call_error(&err)),
    }
}

fn render_call_error(err: &CallError) -> String {
    match err {
        CallError::Timeout => "timeout".to_owned(),
        CallError::DepthExceeded => "depth-exceeded".to_owned(),
        CallError::Unavailable(why) => format!("unavailable:{why}"),
        CallError::Failed(why) => format!("failed:{why}"),
    }
}

fn render_order(order: &Order) -> String {
    let mut text = format!("id={};items=", order.id);
    for (i, item) in order.items.iter().enumerate() {
        let comma = if i == 0 { "" } else { "," };
        // `write!` into a `String` cannot fail.
        let _ = write!(text, "{comma}{}*{}", item.sku, item.qty);
    }
    let _ = write!(text, ";note={}", order.note.as_deref().unwrap_or("-"));
    text
}

/// The value of query parameter `name`, if present.
fn param<'a>(query: &'a str, name: &str) -> Option<&'a str> {
    query
        .split('&')
        .filter_map(|pair| pair.split_once('='))
        .find(|(key, _)| *key == name)
        .map(|(_, value)| value)
}

/// The number in query parameter `name`.
fn number(query: &str, name: &str) -> Result<u64, (u16, String)> {
    let text = param(query, name).ok_or_else(|| (400, format!("missing {name}")))?;
    text.parse()
        .map_err(|_| (400, format!("{name} is not a number")))
}

/// Sends a plain-text response.
fn send(response_out: ResponseOutparam, status: u16, body: &[u8]) {
    let headers = [
        ("content-type".to_owned(), b"text/plain".to_vec()),
        (
            "content-length".to_owned(),
            body.len().to_string().into_bytes(),
        ),
    ];
    let Ok(fields) = Fields::from_list(&headers) else {
        return;
    };
    let response = OutgoingResponse::new(fields);
    let _ = response.set_status_code(status);
    let Ok(outgoing) = response.body() else {
        return;
    };
    ResponseOutparam::set(response_out, Ok(response));
    let Ok(stream) = outgoing.write() else {
        return;
    };
    for chunk in body.chunks(WRITE_CHUNK) {
        if stream.blocking_write_and_flush(chunk).is_err() {
            return;
        }
    }
    drop(stream);
    let _ = OutgoingBody::finish(outgoing, None);
}
