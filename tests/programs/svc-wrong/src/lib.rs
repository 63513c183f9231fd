//! A caller with the wrong view of `bench:svc/echo@0.1.0`: its `item.qty`
//! is a `string` (see `wit/svc.wit`), the service's a `u32`. Linking it to
//! `svc-echo` must be refused, naming the field; it is never meant to run,
//! but if it did, any request would call `echo` once and answer `ok` or
//! `err`.

wit_bindgen::generate!({
    path: ["../../../wit", "wit"],
    world: "bench:svc/wrong",
    generate_all,
});

use bench::svc::echo::{self, Item, Order};
use exports::wasi::http::incoming_handler::Guest;
use wasi::http::types::{
    Fields, IncomingRequest, OutgoingBody, OutgoingResponse, ResponseOutparam,
};

struct Component;

impl Guest for Component {
    fn handle(_request: IncomingRequest, response_out: ResponseOutparam) {
        let order = Order {
            id: 1,
            items: vec![Item {
                sku: "apple".into(),
                qty: "three".into(),
            }],
            note: None,
        };
        let body: &[u8] = match echo::echo(&order) {
            Ok(_) => b"ok",
            Err(_) => b"err",
        };
        send(response_out, body);
    }
}

export!(Component);

/// Sends a 200 plain-text response.
fn send(response_out: ResponseOutparam, body: &[u8]) {
    let headers = [("content-type".to_owned(), b"text/plain".to_vec())];
    let Ok(fields) = Fields::from_list(&headers) else {
        return;
    };
    let response = OutgoingResponse::new(fields);
    let Ok(outgoing) = response.body() else {
        return;
    };
    ResponseOutparam::set(response_out, Ok(response));
    if let Ok(stream) = outgoing.write() {
        let _ = stream.blocking_write_and_flush(body);
    }
    let _ = OutgoingBody::finish(outgoing, None);
}
